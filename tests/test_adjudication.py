"""The reviewer queue and adjudicated gold (annotate.adjudication, annotate.verdicts), through the
pages a reviewer uses and the report and export that read the result."""

from __future__ import annotations

import pandas as pd
import pytest
from django.urls import reverse

from annotate import adjudication
from annotate.models import Adjudication, AuditEvent, Item, Pair, Project
from annotate.services import item_create, judge_rater_get_or_create, preference_submit, rater_for_user
from annotate.verdicts import gold_label_from, with_adjudicated
from exports.formats import dpo_rows
from exports.selectors import ExportFilters, pair_records
from reports.build import build_report
from tests.conftest import _user

pytestmark = pytest.mark.django_db


def _pair(project: Project, n: int, role: str = "task", gold: int | None = None) -> Pair:
    item = item_create(
        project=project, external_id=f"i{n}", prompt=f"Question {n}?", role=role,
        responses=[{"external_id": "a", "text": f"First {n}."}, {"external_id": "b", "text": f"Second {n}."}],
        gold={"pairs": [{"pair": ["a", "b"], "strength": gold}]} if gold is not None else None,
    )
    return item.pairs.get()


@pytest.fixture
def split(project: Project, annotator, other_annotator):
    """Four pairs: 0 split three ways, 1 unanimous, 2 gold contested by the humans, 3 split 1-1."""
    project.protocols = Project.Protocols.RANKING
    project.save()
    third = _user("annotator3", "annotator")
    project.members.add(third)
    humans = [rater_for_user(user=u) for u in (annotator, other_annotator, third)]
    votes = {0: [-2, 1, 0], 1: [-2, -1, -3], 2: [-1, -1], 3: [-1, 1]}
    pairs = {n: _pair(project, n, *(("gold", 2) if n == 2 else ())) for n in votes}
    for n, strengths in votes.items():
        for rater, strength in zip(humans, strengths, strict=False):
            preference_submit(rater=rater, pair=pairs[n], strength=strength, justification=f"{rater.name} on {n}: {strength}")
    return project, pairs


def test_the_queue_holds_split_and_contested_pairs(split):
    project, pairs = split
    rows = {r.pair.pk: r for r in adjudication.review_queue(project)}
    assert set(rows) == {pairs[0].pk, pairs[2].pk, pairs[3].pk}
    assert rows[pairs[0].pk].reason == "split" and rows[pairs[0].pk].counts == {"A": 1, "tie": 1, "B": 1}
    assert rows[pairs[0].pk].majority == "A"  # a three-way split falls to the earliest vote
    assert rows[pairs[0].pk].agreement == pytest.approx(1 / 3)
    assert rows[pairs[2].pk].reason == "contested gold" and rows[pairs[2].pk].agreement == 1.0
    assert rows[pairs[3].pk].agreement == 0.5
    project.review_agreement_below = 0.5  # 1-1 is no longer "beyond the threshold"
    project.save()
    assert pairs[3].pk not in {r.pair.pk for r in adjudication.review_queue(project)}


def test_a_reviewer_sees_every_label_and_sets_the_final_verdict(client, split):
    project, pairs = split
    reviewer = _user("rev", "reviewer")
    project.members.add(reviewer)
    client.force_login(reviewer)
    queue = client.get(reverse("annotate_review", args=[project.pk]))
    assert queue.status_code == 200
    assert f"Review pair #{pairs[0].pk}" in queue.content.decode()
    page = client.get(reverse("annotate_review_pair", args=[project.pk, pairs[0].pk])).content.decode()
    for line in ("annotator on 0: -2", "annotator2 on 0: 1", "annotator3 on 0: 0"):
        assert line in page
    url = reverse("annotate_review_pair", args=[project.pk, pairs[0].pk])
    missing = client.post(url, {"strength": "1"})
    assert missing.status_code == 422 and "Please say briefly why" in missing.content.decode()
    assert not Adjudication.objects.exists()
    out_of_scale = client.post(url, {"strength": "9", "note": "x"})
    assert out_of_scale.status_code == 422
    done = client.post(url, {"strength": "2", "note": "B is right: A misreads the question."})
    assert done.status_code == 302
    decision = Adjudication.objects.get()
    assert (decision.pair_id, decision.strength, decision.reviewer) == (pairs[0].pk, 2, reviewer)
    assert AuditEvent.objects.filter(action="pair.adjudicate").count() == 1
    assert pairs[0].pk not in {r.pair.pk for r in adjudication.review_queue(project)}
    # Straight on to the next pair waiting.
    assert done["Location"].startswith(reverse("annotate_review", args=[project.pk]))
    # A second decision is a new row; the newest counts, nothing is overwritten.
    client.post(url, {"strength": "-1", "note": "On reflection A."})
    assert Adjudication.objects.count() == 2
    assert adjudication.adjudicated_strengths(project) == {pairs[0].pk: -1}


def test_annotators_never_see_the_review_pages(client, annotator, split):
    project, pairs = split
    client.force_login(annotator)
    assert client.get(reverse("annotate_review", args=[project.pk])).status_code == 403
    assert client.get(reverse("annotate_review_pair", args=[project.pk, pairs[0].pk])).status_code == 403


def test_gold_source_rules_by_hand():
    gold = pd.DataFrame({"pair": [1, 2, 3], "item": [10, 20, 30], "gold": [0, 1, 2]})
    decided = pd.DataFrame({"pair": [2, 4], "item": [20, 40], "verdict": [2, 0]})
    out = with_adjudicated(gold, decided, "adjudicated")
    assert out.to_dict("list") == {"pair": [1, 2, 3, 4], "item": [10, 20, 30, 40], "gold": [0, 2, 2, 0]}
    assert with_adjudicated(gold, decided, "majority") is gold
    with pytest.raises(ValueError):
        with_adjudicated(gold, decided, "loudest")  # type: ignore[arg-type]
    assert gold_label_from([-1, -2, 1], 3, "adjudicated") == "B"
    assert gold_label_from([-1, -2, 1], 3, "majority") == "A"
    assert gold_label_from([-1, -2, 1], None, "adjudicated") == "A"


def test_reports_and_exports_use_adjudicated_gold_and_say_which(split, researcher):
    project, pairs = split
    judge = judge_rater_get_or_create(name="j")
    for pair in pairs.values():
        for order in ("ab", "ba"):
            preference_submit(rater=judge, pair=pair, strength=1, shown_order=order)  # always B
    # The humans' majority on pair 0 is A; the reviewer says B.
    adjudication.adjudicate(pair=pairs[0], reviewer=researcher, strength=2, note="B.")
    majority = build_report(project, rounds=0)["judge_vs_gold"][0]
    decided = build_report(project, rounds=0, gold="adjudicated")["judge_vs_gold"][0]
    assert majority["gold"] == "majority" and decided["gold"] == "adjudicated"
    # Gold (majority): 0 A, 1 A, 2 A, 3 A -> the always-B judge is right on none; adjudicated: pair 0 is B.
    assert majority["n"] == decided["n"] == 4
    assert majority["accuracy"] == 0.0 and decided["accuracy"] == 0.25
    project.gold_source = "adjudicated"
    project.save()
    assert build_report(project, rounds=0)["judge_vs_gold"][0]["gold"] == "adjudicated"

    def chosen(gold: str) -> dict[str, str]:
        filters = ExportFilters(gold=gold)
        return {r["prompt"]: r["chosen"] for r in dpo_rows(pair_records(project, filters), filters, source="human", judge=None)}

    assert chosen("majority")["Question 0?"] == "First 0."
    assert chosen("adjudicated")["Question 0?"] == "Second 0."
    rows = list(dpo_rows(pair_records(project, ExportFilters(gold="adjudicated")), ExportFilters(gold="adjudicated"), source="human", judge=None))
    assert {r["provenance"]["gold"] for r in rows} == {"adjudicated"}


def test_report_page_and_api_take_the_gold_choice(client, researcher, split):
    project, pairs = split
    client.force_login(researcher)
    page = client.get(reverse("reports:page", args=[project.pk, "agreement"]) + "?gold=adjudicated")
    assert page.status_code == 200
    assert "gold: adjudicated" in page.content.decode()
    api = client.get(reverse("api-project-report", args=[project.pk]) + "?gold=adjudicated&details=true&rounds=0")
    assert api.status_code == 200, api.content[:300]
    assert api.json()["details"]["gold_source"] == "adjudicated"
    assert Item.objects.filter(project=project, role="gold").count() == 1
