"""reports.metrics.effort on hand-made cases, and the report's human-effort page."""

from __future__ import annotations

import numpy as np
import pytest
from django.test import Client
from django.urls import reverse

from annotate.models import Pair
from annotate.routing import JudgeSignal, Policy, decide, routed_gold
from annotate.routing_services import routing_policy_save
from annotate.services import preference_submit, rater_for_user
from annotate.verdicts import TIE, A, B
from reports.metrics.bootstrap import percentile_ci
from reports.metrics.effort import effort_curve, effort_summary, gold_of
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


def _replayed_pair_by_pair(votes, *, overlap, policies, signals, rounds, seed):
    """The curve the naive way: every pair replayed under every point, each round's agreement
    from resampling every pair's hit (what effort_curve did before it replayed each label
    sequence once)."""
    full = {pid: list(v[:overlap]) for pid, v in votes.items() if len(v) >= overlap}
    ids = sorted(full)
    gold = [gold_of(full[p]) for p in ids]
    draws = np.random.default_rng(seed).integers(0, len(ids), size=(rounds, len(ids)))
    named = [(f"first {m} human{'s' if m > 1 else ''}", m, None) for m in range(1, overlap + 1)]
    named += [(name, None, policy) for name, policy in policies]
    points = []
    for name, m, policy in named:
        used, hits = 0, np.zeros(len(ids), dtype=bool)
        for i, pid in enumerate(ids):
            if policy is None:
                asked = full[pid][:m]
                hits[i] = gold_of(asked) == gold[i]
            else:
                asked = []
                while True:
                    d = decide(policy, asked, signals.get(pid), pair_key=pid, seed=seed)
                    if not d.need_more or len(asked) == overlap:
                        break
                    asked.append(full[pid][len(asked)])
                hits[i] = routed_gold(asked, signals.get(pid), d) == gold[i]
            used += len(asked)
        lo, hi = percentile_ci(hits[draws].mean(axis=1)[:, None])[:, 0]
        points.append({"policy": name, "labels": used, "full_labels": len(ids) * overlap,
                       "saved_fraction": 1.0 - used / (len(ids) * overlap), "agreement": float(hits.mean()),
                       "agreement_ci": [float(lo), float(hi)], "n": len(ids)})  # fmt: skip
    return points


def test_effort_curve_replaying_each_label_sequence_once_equals_replaying_every_pair():
    rng = np.random.default_rng(7)
    votes = {int(pid): [int(v) for v in rng.integers(0, 3, int(rng.integers(1, 5)))] for pid in rng.permutation(600)[:400]}
    signals = {pid: JudgeSignal(verdict=int(rng.integers(0, 3)), confidence=float(rng.random()),
                                orders_agree=bool(rng.random() < 0.8))
               for pid in votes if rng.random() < 0.7}  # fmt: skip
    policies = [("uniform", Policy("uniform", overlap=3)), ("adaptive k=2", Policy("adaptive", overlap=3, k=2)),
                ("judge t=0.7", Policy("judge", overlap=3, k=2, threshold=0.7, spot_check_rate=0.2)),
                ("judge alone", Policy("judge", overlap=3, k=2, threshold=0.5, min_humans=0, unsure="adaptive"))]  # fmt: skip
    got = effort_curve(votes, overlap=3, policies=policies, signals=signals, rounds=200, seed=3)
    assert got == _replayed_pair_by_pair(votes, overlap=3, policies=policies, signals=signals, rounds=200, seed=3)
    assert len(got) == 7 and len({p["labels"] for p in got}) > 3  # the points differ: the check compares something


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
