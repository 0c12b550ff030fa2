"""A panel qualified as one rater (issue 13, item 4: "a qualified judge or panel"): the same
figures and bar as a judge (reports.qualification), routing by it through the same signal
(annotate.routing_services.judge_signals), and the form refusing an unqualified one."""

from __future__ import annotations

import pytest
from django.db import IntegrityError, transaction
from django.test import Client
from django.urls import reverse

from annotate import routing
from annotate.errors import ValidationError
from annotate.models import Item, PairRouting, RoutingDecision, RoutingPolicy
from annotate.routing_services import (
    judge_qualified,
    judge_raw,
    judge_signals,
    routing_policy_save,
    routing_preview,
    routing_refresh,
)
from annotate.services import preference_submit
from annotate.verdicts import TIE, A, B
from judges.models import JudgeQualification
from judges.panels import panel_create
from judges.services import judge_create
from reports.panels import qualification_marks
from reports.qualification import panel_qualify
from tests.test_routing_pages import _humans, _pairs

pytestmark = pytest.mark.django_db

# Gold per gold pair (strength sign) and each member's verdicts in the two shown orders:
#  0-14 gold A, both members A            -> panel A (right)
# 15-29 gold B, both members B            -> panel B (right)
# 30-34 gold A, j1 A, j2 B                -> panel split: tie (wrong), vote share of tie 0
# 35    gold B, j1 A, j2 A then B (split) -> j2 combined tie; panel (A, tie): tie (wrong)
# 36-39 gold B, both members A            -> panel A (wrong)
N_GOLD = 40


def _plan(k: int) -> tuple[int, tuple[int, int], tuple[int, int]]:
    """(gold strength, j1's (ab, ba) strengths, j2's) of gold pair k."""
    if k < 15:
        return -1, (-1, -1), (-1, -1)
    if k < 30:
        return 1, (1, 1), (1, 1)
    if k < 35:
        return -1, (-1, -1), (1, 1)
    if k == 35:
        return 1, (-1, -1), (-1, 1)
    return 1, (-1, -1), (-1, -1)


def _judge(researcher, project, name: str):
    judge = judge_create(name=name, model_ref="m", owner=researcher)
    judge.shared_with.add(project)
    return judge


def _project_with_panel(project, researcher):
    project.overlap = 3
    project.save()
    j1, j2 = _judge(researcher, project, "j1"), _judge(researcher, project, "j2")
    gold_pairs = _pairs(project, N_GOLD, role=Item.Role.GOLD)
    for k, pair in enumerate(gold_pairs):
        gold, s1, s2 = _plan(k)
        pair.gold_strength = gold
        pair.save()
        for judge, (ab, ba) in ((j1, s1), (j2, s2)):
            preference_submit(rater=judge.rater, pair=pair, strength=ab, shown_order="ab", verdict_only=True)
            preference_submit(rater=judge.rater, pair=pair, strength=ba, shown_order="ba", verdict_only=True)
    panel = panel_create(project=project, name="duo", rule="majority", members=[j1, j2])
    return j1, j2, panel, gold_pairs


def test_a_panel_is_qualified_on_its_own_verdicts_with_hand_computed_figures(project, researcher):
    _, _, panel, gold_pairs = _project_with_panel(project, researcher)
    q = panel_qualify(project=project, panel=panel, rounds=50)
    assert (q.panel_id, q.judge_id, q.rater) == (panel.pk, None, panel.rater)
    # 30 of 40 right. Confusion (panel rows A, tie, B; gold columns A, tie, B):
    # A: 15, 0, 4; tie: 5, 0, 1; B: 0, 0, 15. p_o = 0.75; p_e = (19*20 + 6*0 + 15*20) / 40^2 = 0.425;
    # kappa = (0.75 - 0.425) / (1 - 0.425) = 13/23.
    assert q.n == N_GOLD and q.accuracy == pytest.approx(0.75)
    assert q.kappa == pytest.approx(13 / 23)
    # Pair 35: one member's orders disagree, so the panel's do: 39 of 40 consistent.
    assert q.consistency == pytest.approx(39 / 40)
    assert q.accuracy_ci[0] <= 0.75 <= q.accuracy_ci[1] and q.ece is not None and q.ece_ci is not None
    assert set(q.reliability) == {"before", "after"}
    assert (q.min_kappa, q.min_consistency, q.qualified) == (0.4, 0.7, True)
    # The raw score is the stored vote share of the panel's verdict (judges.panels).
    raw = judge_raw(panel.rater, [gold_pairs[0].pk, gold_pairs[30].pk, gold_pairs[35].pk])
    assert [(r.verdict, r.score, r.orders_agree) for r in raw.values()] == [(A, 1.0, True), (TIE, 0.0, True), (TIE, 0.5, False)]
    assert judge_qualified(project, panel.rater)
    # The report's marks show it qualified, as for a judge.
    mark = qualification_marks(project)["judge:panel-duo"]
    assert mark["qualified"] is True and mark["reason"] == f"qualified on 40 pairs: kappa {13 / 23:.2f} >= 0.40"


def test_a_panel_below_the_bar_is_not_qualified(project, researcher):
    _, _, panel, _ = _project_with_panel(project, researcher)
    RoutingPolicy.objects.create(project=project, min_kappa=0.6)
    q = panel_qualify(project=project, panel=panel, rounds=20)
    assert not q.qualified and not judge_qualified(project, panel.rater)
    assert qualification_marks(project)["judge:panel-duo"]["reason"] == f"below bar: kappa {13 / 23:.2f} < 0.60"


def test_a_qualification_names_exactly_one_of_judge_and_panel(project, researcher):
    j1, _, panel, _ = _project_with_panel(project, researcher)
    row = {"project": project, "n": 0, "min_kappa": 0.4, "min_consistency": 0.7, "qualified": False}
    for owners in ({}, {"judge": j1, "panel": panel}):
        with pytest.raises(IntegrityError), transaction.atomic():
            JudgeQualification.objects.create(**row, **owners)


def test_routing_by_a_qualified_panel_closes_confident_pairs_on_one_human(project, researcher):
    j1, j2, panel, _ = _project_with_panel(project, researcher)
    confident, split = _pairs(project, 2)
    for judge in (j1, j2):  # both members say B on `confident`, in both orders
        preference_submit(rater=judge.rater, pair=confident, strength=1, shown_order="ab", verdict_only=True)
        preference_submit(rater=judge.rater, pair=confident, strength=1, shown_order="ba", verdict_only=True)
    for judge, s in ((j1, -1), (j2, 1)):
        preference_submit(rater=judge.rater, pair=split, strength=s, shown_order="ab", verdict_only=True)
        preference_submit(rater=judge.rater, pair=split, strength=s, shown_order="ba", verdict_only=True)
    # Not qualified: the same signal function gives nothing, and the policy cannot name it.
    assert judge_signals(project, panel.rater, [confident.pk], min_humans=2) == {}
    with pytest.raises(ValidationError):
        routing_policy_save(project=project, kind="judge", k=2, judge=panel.rater, threshold=0.8,
                            spot_check_rate=0.0, unsure="full")  # fmt: skip
    client = Client()
    client.force_login(researcher)
    assert client.post(reverse("reports:qualify", args=[project.pk]), {"panel": panel.pk}).status_code == 302
    # Calibrated on the 40 gold pairs: vote share 1.0 on 34 of them, right on 30 (isotonic: 30/34);
    # 0.5 and 0.0 on the six wrong ties.
    signals = judge_signals(project, panel.rater, [confident.pk, split.pk], min_humans=2)
    assert signals[confident.pk] == routing.JudgeSignal(B, pytest.approx(30 / 34), True)
    assert signals[split.pk].verdict == TIE and signals[split.pk].confidence == pytest.approx(0.0)

    routing_policy_save(project=project, kind="judge", k=2, judge=panel.rater, threshold=0.8,
                        spot_check_rate=0.0, unsure="full")  # fmt: skip
    policy = routing.Policy("judge", overlap=3, k=2, threshold=0.8, spot_check_rate=0.0)
    human = _humans(1)[0]
    preference_submit(rater=human, pair=confident, strength=2)
    preference_submit(rater=human, pair=split, strength=2)
    routing_refresh(project=project)
    # One human closes the confident pair (adaptive overlap needs two, uniform three); the unsure
    # pair keeps asking for the full overlap: the pure rule's decisions, as for a judge.
    for pair in (confident, split):
        want = routing.decide(policy, [B], signals[pair.pk], pair_key=pair.pk, seed=project.pk)
        got = PairRouting.objects.get(pair=pair)
        assert (got.need_more, got.reason, got.priority) == (want.need_more, want.reason, want.priority)
    assert PairRouting.objects.get(pair=confident).reason == routing.JUDGE_CONFIRMED
    assert PairRouting.objects.get(pair=split).need_more is True
    last = RoutingDecision.objects.filter(pair=confident).order_by("-id").first()
    assert last is not None and last.judge_confidence == pytest.approx(30 / 34)
    row = RoutingPolicy.objects.get(project=project)
    assert routing_preview(project=project, row=row).confident_pairs == 1


def test_the_routing_page_offers_qualify_for_panels_and_refuses_an_unqualified_one(project, researcher):
    _, _, panel, _ = _project_with_panel(project, researcher)
    client = Client()
    client.force_login(researcher)
    page = client.get(reverse("annotate_routing", args=[project.pk])).content.decode()
    assert f'name="panel" value="{panel.pk}"' in page and "panel-duo (panel)" in page
    form = {"kind": "judge", "k": 2, "judge": panel.rater_id, "threshold": 0.8, "spot_check_rate": 0.0,
            "unsure": "full", "action": "save"}  # fmt: skip
    answer = client.post(reverse("annotate_routing", args=[project.pk]), form)
    assert answer.status_code == 422 and "is not qualified on this project" in answer.content.decode()
    assert not RoutingPolicy.objects.filter(project=project, kind="judge").exists()
    panel_qualify(project=project, panel=panel, rounds=20)
    answer = client.post(reverse("annotate_routing", args=[project.pk]), form)
    assert answer.status_code == 302
    assert RoutingPolicy.objects.get(project=project).judge_id == panel.rater_id


def test_qualifying_another_projects_panel_is_not_found(project, researcher):
    from annotate.services import project_create

    _, _, panel, _ = _project_with_panel(project, researcher)
    other = project_create(name="Other", guidelines="x")
    other.members.add(researcher)
    client = Client()
    client.force_login(researcher)
    assert client.post(reverse("reports:qualify", args=[other.pk]), {"panel": panel.pk}).status_code == 404
    assert client.post(reverse("reports:qualify", args=[project.pk]), {"panel": "x"}).status_code == 400
    assert not JudgeQualification.objects.exists()
