"""Panels (issue 13 item 3): the majority and mean-probability rules on hand-made cases (ties
included), a panel as a rater in the report JSON and the annotations export, an idempotent
refresh that follows a member's re-run, and the panel form on the routing page."""

from __future__ import annotations

import json

import pytest
from django.test import Client
from django.urls import reverse

from annotate.models import Pair, Preference
from annotate.services import preference_submit, rater_for_user
from annotate.verdicts import TIE, A, B
from exports.selectors import ExportFilters
from exports.services import ExportOptions, export_stream
from judges.models import Panel
from judges.panels import member_distribution, panel_create, panel_majority, panel_mean, panel_refresh
from judges.services import judge_create
from reports.build import build_report
from tests.conftest import _user


def test_majority_by_hand():
    assert panel_majority([A, A, B]) == (A, (2 / 3, 0.0, 1 / 3))
    assert panel_majority([B, TIE, B])[0] == B
    # An even split has no majority: a tie, whichever member came first.
    assert panel_majority([A, B])[0] == TIE
    assert panel_majority([B, A])[0] == TIE
    assert panel_majority([A, TIE, B])[0] == TIE
    assert panel_majority([A, A, B, B])[0] == TIE
    # A tie verdict can win a majority too.
    assert panel_majority([TIE, TIE, A]) == (TIE, (1 / 3, 2 / 3, 0.0))
    with pytest.raises(ValueError):
        panel_majority([])


def test_mean_probability_by_hand():
    assert member_distribution(A, 0.8) == pytest.approx((0.8, 0.1, 0.1))
    # A (0.9) and B (0.6): A = (0.9 + 0.2) / 2 = 0.55, tie = (0.05 + 0.2) / 2 = 0.125, B = (0.05 + 0.6) / 2.
    verdict, probs = panel_mean([(A, 0.9), (B, 0.6)])
    assert verdict == A and probs == pytest.approx((0.55, 0.125, 0.325))
    # Majority would call this one a tie; the mean sides with the more confident member.
    assert panel_majority([A, B])[0] == TIE
    # Equal confidence on opposite verdicts: A and B tie at the top -> tie.
    assert panel_mean([(A, 0.7), (B, 0.7)])[0] == TIE
    # Two unsure members for A outweighed by one sure member for B: A = (0.4 + 0.4 + 0.0) / 3,
    # B = (0.3 + 0.3 + 1.0) / 3 -> B.
    verdict, probs = panel_mean([(A, 0.4), (A, 0.4), (B, 1.0)])
    assert verdict == B and probs == pytest.approx((0.8 / 3, 0.6 / 3, 1.6 / 3))
    assert sum(probs) == pytest.approx(1.0)


def _pairs(project, n: int) -> list[Pair]:
    out = []
    for k in range(n):
        item = project.items.create(external_id=f"i{k}", prompt=f"p{k}")
        a = item.responses.create(external_id="a", text="a", model="m1")
        b = item.responses.create(external_id="b", text="b", model="m2")
        out.append(Pair.objects.create(item=item, response_a=a, response_b=b))
    return out


def _judges(researcher, project, n: int):
    out = []
    for k in range(n):
        judge = judge_create(name=f"j{k}", model_ref="m", owner=researcher)
        judge.shared_with.add(project)
        out.append(judge)
    return out


def _judge_both_orders(judge, pair, ab: int, ba: int, p: float | None = None) -> None:
    for order, s in (("ab", ab), ("ba", ba)):
        probs = None
        if p is not None:
            probs = {"A": p if s < 0 else (1 - p) / 2, "tie": (1 - p) / 2 if s else p, "B": p if s > 0 else (1 - p) / 2}
        Preference.objects.update_or_create(
            rater=judge.rater, pair=pair, shown_order=order,
            defaults={"rater_kind": "judge", "strength": s, "verdict_only": True, "probabilities": probs},
        )


@pytest.mark.django_db
def test_refresh_combines_both_orders_and_is_idempotent(project, researcher):
    (p1, p2, p3) = _pairs(project, 3)
    j0, j1, j2 = _judges(researcher, project, 3)
    # p1: A, A, B -> A. p2: j0's orders disagree (tie), j1 B, j2 B -> B. p3: only j0 and j1, split -> tie.
    _judge_both_orders(j0, p1, -1, -1)
    _judge_both_orders(j1, p1, -1, -1)
    _judge_both_orders(j2, p1, 1, 1)
    _judge_both_orders(j0, p2, -1, 1)
    _judge_both_orders(j1, p2, 1, 1)
    _judge_both_orders(j2, p2, 1, 1)
    _judge_both_orders(j0, p3, -1, -1)
    _judge_both_orders(j1, p3, 1, 1)
    panel = panel_create(project=project, name="trio", rule="majority", members=[j0, j1, j2], user=researcher)
    assert panel.rater.kind == "judge" and panel.rater.project == project
    assert panel_refresh(panel) == 3
    got = dict(Preference.objects.filter(rater=panel.rater).values_list("pair_id", "strength"))
    assert got == {p1.pk: -1, p2.pk: 1, p3.pk: 0}
    assert Preference.objects.get(rater=panel.rater, pair=p1).probabilities == {"A": 0.666667, "tie": 0.0, "B": 0.333333}
    # Again: nothing changes, nothing is written twice.
    assert panel_refresh(panel) == 0
    assert Preference.objects.filter(rater=panel.rater).count() == 3
    # j1 re-runs and now says A on p3: the panel's p3 follows (2 of 2... j0 A, j1 A -> A).
    _judge_both_orders(j1, p3, -1, -1)
    assert panel_refresh(panel) == 1
    assert Preference.objects.get(rater=panel.rater, pair=p3).strength == -1
    assert Preference.objects.filter(rater=panel.rater).count() == 3


@pytest.mark.django_db
def test_mean_panel_uses_member_probabilities(project, researcher):
    (pair,) = _pairs(project, 1)
    j0, j1 = _judges(researcher, project, 2)
    # Neither judge is qualified, so their raw probabilities stand in for calibrated ones:
    # j0 A at 0.9, j1 B at 0.6 -> A (as test_mean_probability_by_hand).
    _judge_both_orders(j0, pair, -1, -1, p=0.9)
    _judge_both_orders(j1, pair, 1, 1, p=0.6)
    panel = panel_create(project=project, name="mean", rule="mean", members=[j0, j1])
    panel_refresh(panel)
    pref = Preference.objects.get(rater=panel.rater, pair=pair)
    assert pref.strength == -1 and pref.probabilities["A"] == pytest.approx(0.55)
    assert "0 calibrated" in pref.justification


@pytest.mark.django_db
def test_panel_is_a_rater_in_the_report_and_the_export(project, researcher):
    pairs = _pairs(project, 4)
    humans = [rater_for_user(user=_user(f"h{k}", "annotator")) for k in range(2)]
    j0, j1, j2 = _judges(researcher, project, 3)
    for pair in pairs:
        for h in humans:
            preference_submit(rater=h, pair=pair, strength=-2)
        _judge_both_orders(j0, pair, -1, -1)
        _judge_both_orders(j1, pair, -1, -1)
        _judge_both_orders(j2, pair, 1, 1)
    panel = panel_create(project=project, name="trio", rule="majority", members=[j0, j1, j2])
    panel_refresh(panel)
    report = build_report(project)
    by_judge = {row["judge"]: row for row in report["judge_vs_gold"]}
    assert by_judge["judge:panel-trio"]["n"] == 4 and by_judge["judge:panel-trio"]["accuracy"] == 1.0
    assert by_judge["judge:j2"]["accuracy"] == 0.0
    # The evaluator leaderboard's cards treat every non-human rater alike: the panel has one.
    assert "judge:panel-trio" in json.dumps(report["judge_cards"])
    options = ExportOptions(format="annotations", filters=ExportFilters(rater_group="judges", judge="panel-trio"))
    lines = b"".join(export_stream(project=project, options=options).chunks).decode().splitlines()
    # The header and the panel's one verdict-only preference per pair, in stored order.
    assert len(lines) == 1 + 4 and all(",judge,panel-trio," in line for line in lines[1:])


@pytest.mark.django_db
def test_panel_form_creates_a_panel_of_usable_judges_only(project, researcher):
    j0, j1 = _judges(researcher, project, 2)
    stranger = judge_create(name="theirs", model_ref="m", owner=_user("other-res", "researcher"))
    stranger.shared_with_owner_projects = False
    stranger.save()
    client = Client()
    client.force_login(researcher)
    url = reverse("annotate_panel_create", args=[project.pk])
    refused = client.post(url, {"name": "x", "rule": "majority", "members": [j0.pk, stranger.pk]})
    assert refused.status_code == 422 and not Panel.objects.exists()
    one = client.post(url, {"name": "x", "rule": "majority", "members": [j0.pk]})
    assert one.status_code == 422 and not Panel.objects.exists()
    made = client.post(url, {"name": "duo", "rule": "mean", "members": [j0.pk, j1.pk]})
    assert made.status_code == 302
    panel = Panel.objects.get()
    assert panel.rule == "mean" and set(panel.members.all()) == {j0, j1}
    again = client.post(url, {"name": "duo", "rule": "mean", "members": [j0.pk, j1.pk]})
    assert again.status_code == 422 and Panel.objects.count() == 1
    page = client.get(reverse("annotate_routing", args=[project.pk]))
    assert page.status_code == 200 and "panel-duo" in page.content.decode()


@pytest.mark.django_db
def test_a_member_run_finishing_queues_its_panels_refresh(project, researcher, django_capture_on_commit_callbacks):
    from judges import services, tasks
    from judges.models import Run

    (pair,) = _pairs(project, 1)
    j0, j1 = _judges(researcher, project, 2)
    _judge_both_orders(j0, pair, 1, 1)
    _judge_both_orders(j1, pair, 1, 1)
    panel = panel_create(project=project, name="duo", rule="majority", members=[j0, j1])
    run = Run.objects.create(judge=j0, project=project, status=Run.Status.RUNNING)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        services._run_finish(run=run)
        services._run_finish(run=run)  # finished already: nothing more is queued
    assert len(callbacks) == 1
    # The task itself (run in-process) refreshes, and a duplicate delivery writes nothing.
    assert tasks.panel_refresh(panel.pk) == 1 and tasks.panel_refresh(panel.pk) == 0
    assert Preference.objects.get(rater=panel.rater, pair=pair).strength == 1


@pytest.mark.django_db
def test_panel_verdicts_are_in_the_preference_dpo_and_parquet_exports(project, researcher, tmp_path):
    """A panel is a rater like any judge in the aggregated exports: its combined verdicts (one
    verdict-only preference per pair) feed HelpSteer2-Preference, DPO and the parquet folder."""
    import pyarrow.parquet as pq

    from exports.services import export_write

    pairs = _pairs(project, 3)
    j0, j1, j2 = _judges(researcher, project, 3)
    # p0: A, A, B -> A; p1: B, B, A -> B; p2: A, B, tie -> tie.
    for pair, verdicts in zip(pairs, ((-1, -1, 1), (1, 1, -1), (-1, 1, 0)), strict=True):
        for judge, s in zip((j0, j1, j2), verdicts, strict=True):
            _judge_both_orders(judge, pair, s, s)
    panel = panel_create(project=project, name="trio", rule="majority", members=[j0, j1, j2])
    panel_refresh(panel)
    only_panel = ExportFilters(rater_group="judges", judge="panel-trio")

    out = tmp_path / "pref.jsonl"
    export_write(project=project, options=ExportOptions("helpsteer2-preference", only_panel), out=out)
    rows = {json.loads(line)["prompt"]: json.loads(line) for line in out.read_text().splitlines()}
    assert {p: r["preference_strength"] for p, r in rows.items()} == {"p0": -1, "p1": 1, "p2": 0}
    assert all(len(r["all_preferences_unprocessed"]) == 1 for r in rows.values())  # the panel's one vote

    out = tmp_path / "dpo.jsonl"
    export_write(project=project, options=ExportOptions("dpo", only_panel, dpo_source="judge"), out=out)
    dpo = {json.loads(line)["prompt"]: json.loads(line) for line in out.read_text().splitlines()}
    assert set(dpo) == {"p0", "p1"}  # the tie is no preference
    assert dpo["p1"]["chosen"] == "b" and dpo["p1"]["provenance"]["judge"] == "panel-trio"

    folder = tmp_path / "ds"
    export_write(project=project, options=ExportOptions("parquet", only_panel), out=folder)
    table = pq.read_table(sorted((folder / "preferences").glob("*.parquet"))).to_pylist()
    assert sorted((r["prompt"], r["preference_strength"]) for r in table) == [("p0", -1), ("p1", 1), ("p2", 0)]
