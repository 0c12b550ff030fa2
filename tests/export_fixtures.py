"""A small project with hand-known HelpSteer2-style aggregates, shared by the export tests.

Item i1 (task): r1 rated by five humans, r2 by two; pair p1 = (r1, r2).
Items i2 (task), i3 (gold), i4 (attention): one pair each.
Judge j1 judged p1, p3, p4 in both shown orders and rated r1.
"""

from __future__ import annotations

from annotate.models import Pair, Project, Rater
from annotate.services import preference_submit, project_create, ratings_submit

ATTRS = ["helpfulness", "correctness", "coherence", "complexity", "verbosity"]

R1_RATINGS = {  # per attribute, in rater order h1..h5
    "helpfulness": [4, 0, 3, 4, 2],  # closest (4,3,4) -> 11/3 -> 4
    "correctness": [1, 2, 3, 4, 0],  # ranges tie at 2: earliest (1,2,3) -> 2
    "coherence": [3, 3, 3, 3, 3],  # 3
    "complexity": [1, 2, 2, 4, 4],  # (1,2,2) -> 5/3 -> 2
    "verbosity": [0, 0, 1, 4, 4],  # (0,0,1) -> 1/3 -> 0
}
R1_EXPECTED = {"helpfulness": 4, "correctness": 2, "coherence": 3, "complexity": 2, "verbosity": 0}
R2_RATINGS = {  # h1, h2 only: n < 3
    "helpfulness": [2, 3],  # 2.5 -> 3 (round() would say 2)
    "correctness": [1, 2],  # 1.5 -> 2
    "coherence": [4, 4],
    "complexity": [0, 1],  # 0.5 -> 1 (round() would say 0)
    "verbosity": [3, 3],
}
R2_EXPECTED = {"helpfulness": 3, "correctness": 2, "coherence": 4, "complexity": 1, "verbosity": 3}

# Human strengths per pair (h1..), with justifications; judge j1 (ab, ba) in stored order.
HUMAN_PREFS = {
    "i1": [(-3, "A is far better. It answers."), (1, "B is slightly better."),
           (-2, "A is better. More detail."), (-2, "A wins."), (3, "B!")],  # -7/3 -> -2
    "i2": [(1, "B is a bit better. Shorter."), (2, "B is better.")],  # 1.5 -> 2
    "i3": [(0, "Same."), (0, "Same."), (1, "B slightly.")],  # 1/3 -> 0
    "i4": [(-1, "A slightly."), (-2, "A better.")],  # -1.5 -> -2
}
JUDGE_PREFS = {"i1": (-3, -2), "i3": (2, 1), "i4": (-1, 1)}  # combined: -3, 2, 0 (tie)
EXPECTED_STRENGTH = {"i1": -2, "i2": 2, "i3": 0, "i4": -2}
JUDGE_STRENGTH = {"i1": -3, "i3": 2, "i4": 0}


def build_export_project(name: str = "Export project") -> Project:
    project = project_create(name=name)
    humans = [Rater.objects.create(kind="human", name=f"h{i}") for i in range(1, 6)]
    judge = Rater.objects.create(kind="judge", name="j1", model="m-judge")
    roles = {"i1": "task", "i2": "task", "i3": "gold", "i4": "attention"}
    pairs: dict[str, Pair] = {}
    for ext, role in roles.items():
        item = project.items.create(external_id=ext, prompt=f"Prompt {ext}?", role=role)
        a = item.responses.create(external_id="r1", text=f"{ext} answer one", model="m1")
        b = item.responses.create(external_id="r2", text=f"{ext} answer two", model="m2")
        pairs[ext] = Pair.objects.create(item=item, response_a=a, response_b=b)
    r1, r2 = pairs["i1"].response_a, pairs["i1"].response_b
    for i, rater in enumerate(humans):
        ratings_submit(rater=rater, response=r1, values={a: R1_RATINGS[a][i] for a in ATTRS}, time_on_task_ms=1000 + i)
        if i < 2:
            ratings_submit(rater=rater, response=r2, values={a: R2_RATINGS[a][i] for a in ATTRS})
    ratings_submit(rater=judge, response=r1, values={a: 0 for a in ATTRS})
    for ext, prefs in HUMAN_PREFS.items():
        for rater, (strength, text) in zip(humans, prefs, strict=False):
            preference_submit(rater=rater, pair=pairs[ext], strength=strength, justification=text,
                              shown_order="ba" if rater.name == "h2" else "ab", time_on_task_ms=500)
    for ext, (ab, ba) in JUDGE_PREFS.items():
        preference_submit(rater=judge, pair=pairs[ext], strength=ab, shown_order="ab", justification="judge ab")
        preference_submit(rater=judge, pair=pairs[ext], strength=ba, shown_order="ba", justification="judge ba")
    return project
