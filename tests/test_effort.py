"""reports.metrics.effort on hand-made cases, and the report's human-effort page."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from annotate.models import Pair
from annotate.routing import Policy
from annotate.routing_services import routing_policy_save
from annotate.services import preference_submit, rater_for_user
from annotate.verdicts import TIE, A, B
from reports.metrics.effort import effort_curve, effort_summary
from tests.conftest import _user


def test_effort_summary_by_hand():
    votes = {1: [A, A], 2: [A, B, B], 3: [B, A, A, A]}
    # Pair 3 was closed after 1 human (a confident judge, say) and then got the full overlap:
    # routed gold B, full gold A. Pair 1 closed at 2 and never got more: not compared.
    s = effort_summary(votes, {1: 2, 3: 1}, pairs=4, overlap=3)
    assert s["labels"] == 9 and s["uniform_labels"] == 12
    assert s["saved_fraction"] == pytest.approx(0.25)
    assert s["labels_per_pair"] == pytest.approx(9 / 4)
    assert s["pairs_by_labels"] == {"2": 1, "3": 1, "4": 1}
    assert s["compared_with_full_gold"] == 1 and s["routed_differs_from_full"] == [3]


def test_effort_curve_by_hand():
    votes = {1: [A, A, A], 2: [A, B, B], 3: [TIE, B, TIE], 4: [A]}  # pair 4 is not complete
    points = effort_curve(votes, overlap=3, policies=[("adaptive", Policy("adaptive", overlap=3, k=2))], rounds=50)
    by = {p["policy"]: p for p in points}
    assert [p["policy"] for p in points] == ["first 1 human", "first 2 humans", "first 3 humans", "adaptive"]
    # First human alone: gold A, A, tie vs full A, B, tie -> 2 of 3.
    assert by["first 1 human"]["labels"] == 3 and by["first 1 human"]["agreement"] == pytest.approx(2 / 3)
    # First two: [A, A] -> A; [A, B] -> A (earliest); [tie, B] -> tie: 2 of 3 again.
    assert by["first 2 humans"]["agreement"] == pytest.approx(2 / 3)
    assert by["first 3 humans"]["agreement"] == 1.0 and by["first 3 humans"]["saved_fraction"] == 0.0
    # Adaptive: 2 + 3 + 3 labels, every gold right.
    assert by["adaptive"]["labels"] == 8 and by["adaptive"]["agreement"] == 1.0
    assert all(p["n"] == 3 for p in points)


@pytest.mark.django_db
def test_effort_page_shows_labels_spent_and_the_curve(project, researcher):
    project.overlap = 3
    project.save()
    humans = [rater_for_user(user=_user(f"h{k}", "annotator")) for k in range(3)]
    for n in range(4):
        item = project.items.create(external_id=f"i{n}", prompt="p")
        a = item.responses.create(external_id="a", text="a", model="m1")
        b = item.responses.create(external_id="b", text="b", model="m2")
        pair = Pair.objects.create(item=item, response_a=a, response_b=b)
        for k, h in enumerate(humans[: 3 if n < 2 else 2]):
            preference_submit(rater=h, pair=pair, strength=-1 if k != 1 or n else 1)
    routing_policy_save(project=project, kind="adaptive", k=2, judge=None, threshold=0.7, spot_check_rate=0.1,
                        unsure="full")  # fmt: skip
    client = Client()
    client.force_login(researcher)
    page = client.get(reverse("reports:page", args=[project.pk, "effort"]))
    assert page.status_code == 200
    html = page.content.decode()
    assert "Human effort" in html and "10 / 12" in html  # 3 + 3 + 2 + 2 labels of 4 x 3
    assert "first 1 human" in html and "adaptive k=2" in html and "<svg" in html


@pytest.mark.django_db
def test_effort_page_marks_unqualified_judges_with_reliability_before_and_after(project, researcher):
    import numpy as np

    from judges.models import JudgeQualification
    from judges.services import judge_create
    from reports.qualification import qualification_figures

    rng = np.random.default_rng(0)
    gold = rng.integers(0, 3, 100)
    verdict = np.where(rng.uniform(size=100) < 0.6, gold, 1)
    f = qualification_figures(verdict, gold, rng.uniform(size=100), np.ones(100, bool), np.ones(100, bool),
                              np.arange(100), rounds=20)  # fmt: skip
    judge = judge_create(name="weak-judge", model_ref="m", owner=researcher)
    JudgeQualification.objects.create(
        project=project, judge=judge, n=f.n, accuracy=f.accuracy, kappa=f.kappa, consistency=f.consistency,
        ece=f.ece, ece_ci=f.ece_ci, reliability=f.reliability, min_kappa=0.9, min_consistency=0.7, qualified=False,
    )
    client = Client()
    client.force_login(researcher)
    html = client.get(reverse("reports:page", args=[project.pk, "effort"])).content.decode()
    section = html[html.index('id="effort-judges"'):]
    assert "weak-judge" in section and "not qualified" in section
    assert "before calibration" in section and "after calibration" in section


def test_a_replayed_curve_is_reused_while_its_inputs_are_the_same(monkeypatch):
    """The report recomputes the human-effort section whenever annotations arrive (a judge's
    run); its replay is kept by a digest of what it reads, so an unchanged one is not replayed."""
    from reports import effort

    calls = []

    def counted(*args, **kwargs):
        calls.append(1)
        return effort_curve(*args, **kwargs)

    monkeypatch.setattr(effort, "effort_curve", counted)
    monkeypatch.setattr(effort, "_CURVES", type(effort._CURVES)(32))
    votes = {1: [A, A, B], 2: [B, B, B], 3: [A, TIE, A]}
    policies = [("adaptive k=2", Policy("adaptive", overlap=3, k=2))]
    first = effort._curve(votes, overlap=3, policies=policies, signals={}, rounds=20, seed=0)
    again = effort._curve(dict(votes), overlap=3, policies=policies, signals={}, rounds=20, seed=0)
    assert again == first == effort_curve(votes, overlap=3, policies=policies, signals={}, rounds=20, seed=0)
    assert len(calls) == 1
    effort._curve({**votes, 4: [B, A, B]}, overlap=3, policies=policies, signals={}, rounds=20, seed=0)
    assert len(calls) == 2  # a new fully labelled pair: replayed again
