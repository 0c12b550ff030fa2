"""One verdict vocabulary (annotate/verdicts.py): hand-computed cases, every scalar form equal to
its array form over every case the scales allow, and the report and the export agreeing on the
same stored annotations."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pandas as pd
import pytest

from annotate.verdicts import (
    TIE,
    A,
    B,
    combine_orders,
    combine_strengths,
    combined_strengths,
    gold_codes,
    gold_label,
    gold_verdicts,
    judge_verdict_strength,
    leave_one_out_gold,
    mirrored_probabilities,
    round_ratio,
    round_ratios,
    stored_order_probabilities,
    stored_strength,
    verdict_code,
    verdict_label,
    verdict_of,
)
from exports.aggregate import combine_orders as export_combine
from exports.aggregate import majority_verdict
from reports.metrics.verdicts import combine_orders as report_combine
from tests.test_judge_fixtures import make_project, tiny_model_dir  # noqa: F401  (fixture)

STRENGTHS = range(-3, 4)


def _report_strength(first: int, second: int) -> int:
    df = pd.DataFrame({"rater": ["judge:j", "judge:j"], "pair": [1, 1], "strength": [first, second],
                       "shown_order": ["ab", "ba"], "order": [0, 1], "item": [1, 1], "kind": ["judge", "judge"]})
    return int(report_combine(df)["strength"].iloc[0])


# METRICS.md's own examples: the report used to keep the smaller magnitude ((-3, -1) -> -1).
@pytest.mark.parametrize(("first", "second", "expected"), [(-3, -1, -2), (-2, -1, -2), (1, 2, 2)])
def test_report_and_export_combine_two_orders_as_metrics_md(first, second, expected):
    assert export_combine([first, second]) == expected
    assert _report_strength(first, second) == expected


# Every combination of two strengths on -3..3, computed by hand from the rule: 0 when the
# verdicts differ, else the mean rounded half away from zero.
HAND = {
    (-3, -3): -3, (-3, -2): -3, (-3, -1): -2, (-2, -2): -2, (-2, -1): -2, (-1, -1): -1,
    (1, 1): 1, (1, 2): 2, (1, 3): 2, (2, 2): 2, (2, 3): 3, (3, 3): 3, (0, 0): 0,
}


@pytest.mark.parametrize(("first", "second"), list(itertools.product(STRENGTHS, STRENGTHS)))
def test_combined_strength_of_every_two_orders(first, second):
    same_verdict = verdict_code(first) == verdict_code(second)
    expected = HAND.get((min(first, second), max(first, second)), 0) if same_verdict else 0
    assert combine_strengths([first, second]) == expected
    assert _report_strength(first, second) == expected
    assert export_combine([first, second]) == expected
    # Swapping A and B flips the sign exactly, and the combined strength carries the verdict.
    assert combine_strengths([-first, -second]) == -expected
    combined = report_combine(pd.DataFrame({
        "rater": ["j", "j"], "pair": [1, 1], "strength": [first, second], "order": [0, 1], "item": [1, 1],
    })).iloc[0]
    assert combined["verdict"] == (verdict_code(first) if same_verdict else TIE) == verdict_code(expected)


def test_one_order_is_its_own_strength():
    for s in STRENGTHS:
        assert combine_strengths([s]) == s
    with pytest.raises(ValueError):
        combine_strengths([])


def test_scalar_forms_equal_the_array_forms():
    values = np.arange(-30, 31)
    assert [verdict_code(int(v)) for v in values] == verdict_of(values).tolist()
    assert verdict_of([-0.5, 0.0, 0.25]).tolist() == [A, TIE, B]  # score differences are floats
    assert [verdict_label(s) for s in (-2, 0, 3)] == ["A", "tie", "B"]
    num, den = np.meshgrid(np.arange(-21, 22), np.arange(1, 8))
    arrays = round_ratios(num.ravel(), den.ravel()).tolist()
    assert [round_ratio(int(n), int(d)) for n, d in zip(num.ravel(), den.ravel(), strict=True)] == arrays
    totals = np.array([a + b for a, b in itertools.product(STRENGTHS, STRENGTHS)])
    agreed = np.array([verdict_code(a) == verdict_code(b) for a, b in itertools.product(STRENGTHS, STRENGTHS)])
    assert combined_strengths(totals, np.full(49, 2), agreed).tolist() == [
        combine_strengths([a, b]) for a, b in itertools.product(STRENGTHS, STRENGTHS)
    ]


@pytest.mark.parametrize(("value", "expected"), [((5, 2), 3), ((-5, 2), -3), ((7, 3), 2), ((-7, 3), -2), ((1, 2), 1),
                                                 ((-1, 2), -1), ((1, 3), 0), ((0, 3), 0), ((8, 3), 3)])
def test_rounding_halves_away_from_zero(value, expected):
    assert round_ratio(*value) == expected


# --- gold ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("strengths", "expected"),
    [
        ([-1, -2, 1], "A"),  # majority
        ([1, 0, -1], "B"),  # 1-1-1: the earliest
        ([0, 1, -1, 1, -1], "B"),  # 2-2 between A and B: the earliest of those, not the earlier tie
        ([0, 0, 3], "tie"),
        ([2], "B"),
        ([], None),
    ],
)
def test_gold_by_hand(strengths, expected):
    assert gold_label(strengths) == expected


def test_gold_scalar_equals_the_table_form_on_every_sequence_of_up_to_five_votes():
    frames, expected = [], {}
    pair = 0
    for n in range(1, 6):
        for verdicts in itertools.product((A, TIE, B), repeat=n):
            strengths = [v - 1 for v in verdicts]
            frames.append(pd.DataFrame({"pair": pair, "item": pair, "verdict": list(verdicts),
                                        "order": range(pair * 10, pair * 10 + n)}))
            expected[pair] = gold_label(strengths)
            pair += 1
    table = pd.concat(frames).sample(frac=1.0, random_state=0)  # row order must not matter, only `order`
    g = gold_verdicts(table).set_index("pair")["gold"]
    assert {p: ("A", "tie", "B")[c] for p, c in g.items()} == expected
    assert gold_codes(np.array([], dtype=np.int64), np.array([]), np.array([]), 2).tolist() == [-1, -1]


def test_export_gold_is_the_same_gold():
    from exports.aggregate import Vote

    for verdicts in itertools.product((-2, 0, 1), repeat=4):
        assert majority_verdict([Vote(s) for s in verdicts]) == gold_label(list(verdicts))


def test_report_gold_from_combined_verdicts():
    df = pd.DataFrame([
        ("human:a", 1, -1, 0), ("human:b", 1, -1, 1), ("human:c", 1, 1, 2),  # majority A
        ("human:a", 2, 1, 5), ("human:b", 2, 0, 3), ("human:c", 2, -1, 4),  # 1-1-1: earliest = tie
        ("human:a", 3, 0, 6), ("human:b", 3, 1, 7), ("human:c", 3, -1, 8), ("human:d", 3, 1, 9), ("human:e", 3, -1, 10),
    ], columns=["rater", "pair", "strength", "order"]).assign(item=lambda d: d["pair"])  # fmt: skip
    g = gold_verdicts(combine_orders(df)).set_index("pair")["gold"]
    assert g.to_dict() == {1: A, 2: TIE, 3: B}


# --- shown order -> stored order ---------------------------------------------------------------


def test_shown_order_maps_to_stored_order():
    assert [stored_strength(s, "ab") for s in (-3, 0, 2)] == [-3, 0, 2]
    assert [stored_strength(s, "ba") for s in (-3, 0, 2)] == [3, 0, -2]
    # "A" is whatever was shown first: in order ba that is the stored B.
    assert [judge_verdict_strength(label, "ab") for label in "ABC"] == [-1, 1, 0]
    assert [judge_verdict_strength(label, "ba") for label in "ABC"] == [1, -1, 0]
    shown = {"A": 0.7, "B": 0.2, "C": 0.1}
    assert stored_order_probabilities(shown, "ab") == {"A": 0.7, "tie": 0.1, "B": 0.2}
    assert stored_order_probabilities(shown, "ba") == {"A": 0.2, "tie": 0.1, "B": 0.7}
    assert mirrored_probabilities({"A": 0.7, "tie": 0.1, "B": 0.2}) == {"A": 0.2, "tie": 0.1, "B": 0.7}
    with pytest.raises(ValueError):
        stored_strength(1, "xy")


# --- the report and the export on the same stored annotations ----------------------------------


@pytest.mark.django_db
def test_report_and_export_agree_on_the_same_data(researcher):
    from annotate.models import Pair, Preference, Rater
    from annotate.services import item_create, judge_rater_get_or_create, preference_submit, project_create
    from exports.formats import helpsteer2_preference_rows
    from exports.selectors import ExportFilters, pair_records
    from reports.build import build_report

    project = project_create(name="agree", overlap=1)
    # Judge j reads (-3, -1) on p1, (1, 2) on p2, (-2, 1) on p3; three humans give gold.
    plan = {"p1": (-3, -1, [-1, -2, 1]), "p2": (1, 2, [0, 0, 2]), "p3": (-2, 1, [1, 2, -3])}
    judge = judge_rater_get_or_create(name="j", model="m")
    humans = [Rater.objects.create(kind="human", name=f"h{k}") for k in range(3)]
    for ext, (ab, ba, votes) in plan.items():
        item = item_create(project=project, external_id=ext, prompt=f"Prompt {ext}",
                           responses=[{"external_id": "a", "text": "x", "model": "ma"},
                                      {"external_id": "b", "text": "yy", "model": "mb"}])
        pair = Pair.objects.get(item=item)
        preference_submit(rater=judge, pair=pair, strength=ab, shown_order="ab")
        preference_submit(rater=judge, pair=pair, strength=ba, shown_order="ba")
        for human, s in zip(humans, votes, strict=True):
            preference_submit(rater=human, pair=pair, strength=s)
    assert Preference.objects.count() == 15

    rows = list(helpsteer2_preference_rows(pair_records(project, ExportFilters(rater_group="judges")),
                                           ExportFilters(rater_group="judges")))
    exported = {r["prompt"]: r["preference_strength"] for r in rows}
    assert exported == {"Prompt p1": -2, "Prompt p2": 2, "Prompt p3": 0}

    report = build_report(project, rounds=10, details=True)
    # The report's judge verdicts against gold: p1 judge A / gold A, p2 B / tie, p3 tie / B.
    (row,) = [r for r in report["judge_vs_gold"] if r["judge"] == judge.label]
    assert row["n"] == 3 and row["accuracy"] == pytest.approx(1 / 3)
    assert report["details"]["gold_counts"] == {"A": 1, "tie": 1, "B": 1}
    json.dumps(report)


# --- a verdict without a strength (issue 11, item 5) -------------------------------------------


def test_a_verdict_only_preference_reads_as_a_verdict_with_its_probability():
    from annotate.verdicts import is_verdict_only, preference_reading

    judged = preference_reading(strength=1, verdict_only=True, probabilities={"A": 0.1, "tie": 0.2, "B": 0.7})
    assert (judged.verdict, judged.strength, judged.probability) == ("B", None, 0.7)
    assert judged.summary == "B is better (p = 0.70)" and "slightly" not in judged.summary
    assert preference_reading(strength=0, verdict_only=True, probabilities=None).summary == "Tie"
    ranked = preference_reading(strength=-1, verdict_only=False, probabilities=None)
    assert (ranked.verdict, ranked.strength, ranked.summary) == ("A", -1, "A is slightly better")
    assert is_verdict_only(ranking_scale="ternary") and not is_verdict_only(ranking_scale="strength")
    assert is_verdict_only(ranking_scale="strength", verdict_only=True)


@pytest.mark.django_db
def test_a_judges_verdict_is_stored_and_shown_as_a_verdict(client, researcher, tiny_model_dir):  # noqa: F811
    from annotate.models import Preference
    from judges import services
    from judges.models import Judgment

    project = make_project(items=2)
    project.members.add(researcher)
    judge = services.judge_create(name="tiny", model_ref=str(tiny_model_dir), response_model="tiny-llama",
                                  decoding={"max_new_tokens": 8, "min_valid_mass": 0})
    run = services.run_start(plan_now=True, judge=judge, project=project, protocols=["ranking"])
    services.judgments_process(run_id=run.pk, judgment_ids=list(Judgment.objects.filter(run=run).values_list("id", flat=True)))
    prefs = list(Preference.objects.filter(rater=judge.rater))
    assert prefs and all(p.verdict_only and abs(p.strength) <= 1 for p in prefs)
    p = prefs[0]
    client.force_login(researcher)
    page = client.get(f"/pairs/{p.pair_id}/").content.decode()
    label = ("A", "tie", "B")[verdict_code(p.strength)]
    # The pair view's answer column names the verdict, the next column its probability.
    assert f"verdict <strong>{label}</strong>" in page
    assert f">{p.probabilities[label]:.2f}</td>" in page
    assert "slightly better" not in page


@pytest.mark.django_db
def test_preferences_of_a_ternary_project_are_verdicts(tmp_path):
    from annotate.importers import import_files
    from annotate.models import Pair, Preference, Rater
    from annotate.services import preference_submit, project_create

    project = project_create(name="tern", ranking_scale="ternary")
    path = tmp_path / "t.jsonl"
    path.write_text(json.dumps({"id": "q", "prompt": "?", "responses": [{"id": "a", "text": "x"}, {"id": "b", "text": "y"}],
                                "preferences": [{"rater": "human:h", "pair": ["a", "b"], "strength": -1}]}) + "\n")
    import_files(project_name="tern", fmt="jsonl", paths=[path])
    assert Preference.objects.get(rater__name="h").verdict_only
    pair = Pair.objects.get(item__project=project)
    submitted, _ = preference_submit(rater=Rater.objects.create(kind="human", name="h2"), pair=pair, strength=1)
    assert submitted.verdict_only


def test_leave_one_out_gold_is_gold_codes_over_the_other_votes():
    """Every vote's gold from the others equals gold_codes run on its pair without that vote,
    over random pairs of one to six votes (ties between counts included, broken by order)."""
    rng = np.random.default_rng(7)
    for _ in range(200):
        n_pairs = int(rng.integers(1, 6))
        sizes = rng.integers(1, 7, n_pairs)
        pc = np.repeat(np.arange(n_pairs), sizes)
        v = rng.integers(0, 3, len(pc))
        order = rng.permutation(len(pc)) * 3 + 1  # distinct, in no particular row order
        got = leave_one_out_gold(pc, v, order, n_pairs)
        for i in range(len(pc)):
            rest = np.arange(len(pc)) != i
            want = gold_codes(pc[rest], v[rest], order[rest], n_pairs)[pc[i]]
            assert got[i] == want, (pc.tolist(), v.tolist(), order.tolist(), i)
    assert leave_one_out_gold(np.array([0]), np.array([2]), np.array([0]), 1).tolist() == [-1]
