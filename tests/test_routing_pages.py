"""Routing on a live project: the routing page (preview, turning a policy on), the stored
decisions and their reasons, the judge's calibrated signal and the queue's priority."""

from __future__ import annotations

import random

import pytest
from django.test import Client
from django.urls import reverse

from annotate.models import Item, Pair, PairRouting, RoutingDecision, RoutingPolicy
from annotate.queue import assignment_claim_next
from annotate.routing import JUDGE_CONFIRMED, ORDERS_DISAGREE
from annotate.routing_services import (
    MIN_CALIBRATION_PAIRS,
    judge_raw,
    judge_signals,
    routed_candidates,
    routing_policy_save,
    routing_preview,
    routing_refresh,
)
from annotate.services import preference_submit, rater_for_user
from annotate.verdicts import TIE, B
from judges.models import JudgeQualification
from judges.services import judge_create
from tests.conftest import _user

pytestmark = pytest.mark.django_db


def _pairs(project, n: int, role: str = Item.Role.TASK) -> list[Pair]:
    out = []
    for k in range(n):
        item = project.items.create(external_id=f"{role}{k}", prompt=f"p{k}", role=role)
        a = item.responses.create(external_id="a", text="a", model="m1")
        b = item.responses.create(external_id="b", text="b", model="m2")
        out.append(Pair.objects.create(item=item, response_a=a, response_b=b))
    return out


def _humans(n: int):
    return [rater_for_user(user=_user(f"h{k}", "annotator")) for k in range(n)]


def test_adaptive_policy_closes_agreeing_pairs_and_records_why(project):
    project.overlap = 3
    project.save()
    p1, p2 = _pairs(project, 2)
    h = _humans(3)
    routing_policy_save(project=project, kind="adaptive", k=2, judge=None, threshold=0.7, spot_check_rate=0.1, unsure="full")
    assert PairRouting.objects.filter(need_more=True).count() == 2
    for rater in h[:2]:
        preference_submit(rater=rater, pair=p1, strength=-2)  # two humans agree on A
    preference_submit(rater=h[0], pair=p2, strength=-1)
    preference_submit(rater=h[1], pair=p2, strength=2)  # they disagree
    routing_refresh(project=project)
    assert PairRouting.objects.get(pair=p1).need_more is False
    assert PairRouting.objects.get(pair=p2).need_more is True
    reasons = list(RoutingDecision.objects.filter(pair=p1).values_list("humans", "reason"))
    assert reasons == [(0, "need_k"), (2, "agreed")]
    # The queue no longer serves the closed pair.
    ids = set(routed_candidates(Pair.objects.filter(item__project=project), project=project, now=p1.created_at)
              .values_list("pk", flat=True))  # fmt: skip
    assert ids == {p2.pk}


def _judge_rater(researcher, project):
    judge = judge_create(name="j", model_ref="m", owner=researcher)
    judge.shared_with.add(project)
    return judge.rater


def test_judge_signal_is_calibrated_on_human_gold(project, researcher):
    project.overlap = 3
    project.save()
    judge = _judge_rater(researcher, project)
    gold_pairs = _pairs(project, MIN_CALIBRATION_PAIRS + 10, role=Item.Role.GOLD)
    rng = random.Random(0)
    right = 0
    for pair in gold_pairs:
        pair.gold_strength = -1
        pair.save()
        # The judge is right (A) on about 80% of them, in both orders.
        ok = rng.random() < 0.8
        right += ok
        s = -1 if ok else 1
        preference_submit(rater=judge, pair=pair, strength=s, shown_order="ab", verdict_only=True)
        preference_submit(rater=judge, pair=pair, strength=s, shown_order="ba", verdict_only=True)
    (task, split) = _pairs(project, 2)
    preference_submit(rater=judge, pair=task, strength=1, shown_order="ab", verdict_only=True)
    preference_submit(rater=judge, pair=task, strength=1, shown_order="ba", verdict_only=True)
    preference_submit(rater=judge, pair=split, strength=1, shown_order="ab", verdict_only=True)
    preference_submit(rater=judge, pair=split, strength=-1, shown_order="ba", verdict_only=True)
    raw = judge_raw(judge, [task.pk, split.pk])
    assert (raw[task.pk].verdict, raw[task.pk].orders_agree) == (B, True)
    assert (raw[split.pk].verdict, raw[split.pk].orders_agree) == (TIE, False)
    # Not qualified yet: no signal, whatever its figures.
    assert judge_signals(project, judge, [task.pk, split.pk], min_humans=2) == {}
    client = Client()
    client.force_login(researcher)
    answer = client.post(reverse("reports:qualify", args=[project.pk]), {"judge": judge.judge.pk})
    assert answer.status_code == 302
    q = JudgeQualification.objects.get(project=project)
    # Gold is A on every gold pair and the judge says A or B: kappa is 0 (gold has one class),
    # so against the default bar (kappa >= 0.4) it is not qualified.
    assert q.n == len(gold_pairs) and q.accuracy == pytest.approx(right / len(gold_pairs))
    assert q.consistency == 1.0 and not q.qualified
    JudgeQualification.objects.filter(pk=q.pk).update(qualified=True)  # as if it met the bar
    signals = judge_signals(project, judge, [task.pk, split.pk], min_humans=2)
    # Every consistent gold judgment has score 1: isotonic regression gives their share right.
    assert signals[task.pk].confidence == pytest.approx(right / len(gold_pairs))
    assert signals[split.pk].orders_agree is False

    routing_policy_save(project=project, kind="judge", k=2, judge=judge, threshold=0.5, spot_check_rate=0.0, unsure="full")
    assert PairRouting.objects.get(pair=split).reason == ORDERS_DISAGREE
    # The order-inconsistent pair is served first.
    annotator = _humans(1)[0]
    first = assignment_claim_next(project=project, rater=annotator, rng=random.Random(1))
    while first is not None and first.pair_id not in (task.pk, split.pk):  # rating tasks first, maybe
        first.status = "done"
        first.save()
        first = assignment_claim_next(project=project, rater=annotator, rng=random.Random(1))
    assert first is not None and first.pair_id == split.pk
    # A human agreeing with the confident judge closes the other pair at once.
    preference_submit(rater=annotator, pair=task, strength=2)
    routing_refresh(project=project, pair_ids=[task.pk])
    assert PairRouting.objects.get(pair=task).reason == JUDGE_CONFIRMED
    assert RoutingDecision.objects.filter(pair=task, judge_confidence__isnull=False).exists()


def test_preview_counts_expected_labels(project):
    project.overlap = 3
    project.save()
    pairs = _pairs(project, 10)
    h = _humans(2)
    for k, pair in enumerate(pairs):
        preference_submit(rater=h[0], pair=pair, strength=-1)
        preference_submit(rater=h[1], pair=pair, strength=-1 if k < 8 else 1)  # agree on 8 of 10
    row = RoutingPolicy(project=project, kind="adaptive", k=2)
    preview = routing_preview(project=project, row=row)
    assert preview.uniform_labels == 30
    assert preview.human_agreement == pytest.approx(0.8)
    assert preview.expected_labels == pytest.approx(10 * (2 + 0.2 * 1))
    uniform = routing_preview(project=project, row=RoutingPolicy(project=project, kind="uniform"))
    assert uniform.expected_labels == 30 and uniform.saved_fraction == 0


def test_routing_page_previews_then_turns_a_policy_on(project, researcher, annotator):
    _pairs(project, 3)
    client = Client()
    client.force_login(researcher)
    url = reverse("annotate_routing", args=[project.pk])
    page = client.get(url)
    assert page.status_code == 200 and "Off: uniform overlap" in page.content.decode()
    data = {"kind": "adaptive", "k": "2", "judge": "", "threshold": "0.7", "spot_check_rate": "0.1", "unsure": "full"}
    preview = client.post(url, {**data, "action": "preview"})
    assert preview.status_code == 200 and "Expected under this policy" in preview.content.decode()
    assert not RoutingPolicy.objects.filter(project=project).exists()  # a preview changes nothing
    saved = client.post(url, {**data, "action": "save"})
    assert saved.status_code == 302
    assert RoutingPolicy.objects.get(project=project).kind == "adaptive"
    assert PairRouting.objects.filter(pair__item__project=project).count() == 3
    # Judge routing without a judge is refused with a message, not a 500.
    bad = client.post(url, {**data, "kind": "judge", "action": "save"})
    assert bad.status_code == 422 and "needs a judge" in bad.content.decode()
    # An annotator of the project may not change it.
    client.force_login(annotator)
    assert client.post(url, {**data, "action": "save"}).status_code == 403


def test_a_judge_the_researcher_may_not_use_is_not_offered(project, researcher):
    other = _user("someone", "researcher")
    judge_create(name="theirs", model_ref="m", owner=other)
    client = Client()
    client.force_login(researcher)
    url = reverse("annotate_routing", args=[project.pk])
    assert "theirs" not in client.get(url).content.decode()
