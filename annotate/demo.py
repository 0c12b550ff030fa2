"""Build the demo project: users for each role, prompts and responses of our own, a gold item,
and a few seeded annotations so the dashboards and reports have something to show."""

from __future__ import annotations

import json
import random
import tempfile
from dataclasses import dataclass
from pathlib import Path

from django.contrib.auth import get_user_model
from django.db import transaction

from .demo_data import DEMO_GOLD, DEMO_ITEMS
from .importers import import_files
from .models import Item, Project, Rater
from .roles import ensure_role_groups, user_set_role
from .services import preference_submit, ratings_submit

DEMO_PROJECT = "Demo: everyday assistant answers"
DEMO_PASSWORD = "concordance"
DEMO_USERS: list[tuple[str, str]] = [
    ("admin", "admin"),
    ("researcher", "researcher"),
    ("alice", "annotator"),
    ("bob", "annotator"),
    ("carol", "annotator"),
]
GUIDELINES = """\
## How to judge

* Read the prompt (and context) first, then the response(s).
* **Rating**: score each attribute 0-4 using the anchors under each row.
* **Ranking**: pick how much better one response is; explain why when the difference is large.
* You are not told which model wrote a response, and the left/right order is random.
"""


@dataclass
class DemoResult:
    project: Project
    created: bool


def demo_users_create() -> None:
    ensure_role_groups()
    User = get_user_model()
    for username, role in DEMO_USERS:
        user, created = User.objects.get_or_create(username=username)
        if created:
            user.set_password(DEMO_PASSWORD)
            user.is_staff = role == "admin"
            user.is_superuser = role == "admin"
            user.save()
        user_set_role(user=user, role=role)  # type: ignore[arg-type]


def demo_project_create() -> DemoResult:
    existing = Project.objects.filter(name=DEMO_PROJECT).first()
    if existing is not None:
        return DemoResult(existing, False)
    demo_users_create()
    with tempfile.TemporaryDirectory() as tmp, transaction.atomic():
        path = Path(tmp) / "demo.jsonl"
        rows = [_with_gold(item) for item in DEMO_ITEMS + DEMO_GOLD]
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
        project = import_files(project_name=DEMO_PROJECT, fmt="jsonl", paths=[path]).project
        project.guidelines = GUIDELINES
        project.gold_rate = 0.1
        project.save(update_fields=["guidelines", "gold_rate"])
        project.members.add(*get_user_model().objects.filter(username__in=[u for u, _ in DEMO_USERS]))
        _seed_annotations(project)
    return DemoResult(project, True)


def _with_gold(item: dict) -> dict:
    """A demo item as a jsonl line: its known answer in the import format's "gold" key."""
    row = {k: v for k, v in item.items() if k not in ("gold_strength", "gold_ratings")}
    if "gold_strength" in item or "gold_ratings" in item:
        ids = [r["id"] for r in item["responses"]]
        row["gold"] = {
            "ratings": [
                {"response": rid, "attribute": name, "value": value}
                for rid, values in item.get("gold_ratings", {}).items() for name, value in values.items()
            ],
            "pairs": [{"pair": ids[:2], "strength": item["gold_strength"]}] if "gold_strength" in item else [],
        }
    return row


def _seed_annotations(project: Project) -> None:
    """Three seeded raters annotate half the tasks, so reports are not empty on first start.
    They are named seed-* so nobody mistakes them for people."""
    rng = random.Random(7)
    # The demo's "a" responses are the better ones except where the data says otherwise.
    better_b = {"capital-australia", "prime-check"}
    items = list(Item.objects.filter(project=project, role="task").order_by("id"))[:6]
    for k in (1, 2, 3):
        rater, _ = Rater.objects.get_or_create(kind="human", name=f"seed-{k}")
        for item in items:
            sign = 1 if item.external_id in better_b else -1
            for pair in item.pairs.all():
                strength = max(-3, min(3, sign * rng.choice([1, 2, 2, 3]) + rng.choice([0, 0, 0, 1, -1])))
                preference_submit(rater=rater, pair=pair, strength=strength,
                                  shown_order=rng.choice(["ab", "ba"]), justification="seeded example")
            for response in item.responses.all():
                good = (response.external_id == "b") == (item.external_id in better_b)
                base = 3 if good else 1
                values = {a.name: max(0, min(4, base + rng.choice([-1, 0, 0, 1]))) for a in project.attributes.all()}
                ratings_submit(rater=rater, response=response, values=values)


# The demo's answers are short: on a busy 2-core machine SmolLM2-135M wrote about 1.4 tokens a
# second over a batch of the demo's prompts (load average 9), and a newcomer should see its
# answers judged within minutes, not wait for 256-token essays. Only the demo's own judge gets
# this budget, and only when its decoding does not set one already.
DEMO_MAX_NEW_TOKENS = 32


def demo_judge():  # -> judges.models.Judge
    """The default judge (SmolLM2-135M from the installed wheel), with the demo's answer budget."""
    from judges.services import judge_get_or_create_default, judge_update

    judge = judge_get_or_create_default()
    if "max_new_tokens" not in (judge.decoding or {}):
        judge_update(judge=judge, decoding={**(judge.decoding or {}), "max_new_tokens": DEMO_MAX_NEW_TOKENS})
    return judge


def demo_steps(*, judge) -> list[dict]:
    """The demo's runs, cheapest and most telling first, each started when the one before ends.

    1. The pairwise judge run: every pair in both shown orders (22 judgments); the report's
       human-judge agreement and the position-bias audit have data within minutes.
    2. The judge writes its own short answers (a generate run, DEMO_MAX_NEW_TOKENS each);
    3. and judges the pairs that hold them: the self-preference case.
    4. The rating run, last because it is the largest (every response x 5 attributes).
    """
    own = judge.rater.model or judge.rater.name
    return [
        {"title": "pairwise judge", "kind": "judge", "protocols": ["ranking"], "filters": {}},
        {"title": "generate", "kind": "generate", "protocols": [], "filters": {}},
        {"title": "self-preference judge", "kind": "judge", "protocols": ["ranking"],
         "filters": {"models": [own], "unjudged_only": True}},
        {"title": "rating judge", "kind": "judge", "protocols": ["rating"], "filters": {}},
    ]
