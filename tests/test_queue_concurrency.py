"""Many annotators claim from one project at once, on real PostgreSQL, each thread on its own
connection: the queue's locks and constraints must hold under contention."""

from __future__ import annotations

import random
import threading
import time
from collections import Counter

import pytest
from django.contrib.auth import get_user_model
from django.db import connection, connections

from annotate.models import (
    Assignment,
    Pair,
    PairRouting,
    Preference,
    Rating,
    Response,
    RoutingDecision,
    RoutingPolicy,
)
from annotate.queue import (
    assignment_claim_next,
    assignment_skip,
    assignment_submit_preference,
    assignment_submit_rating,
)
from annotate.roles import user_set_role
from annotate.routing import JudgeSignal, decide
from annotate.routing_services import MIN_CALIBRATION_PAIRS, as_policy, human_verdicts, routing_refresh
from annotate.services import preference_submit, project_create, rater_for_user
from judges.models import JudgeQualification
from judges.services import judge_create

ANNOTATORS = 24
ALL = {"helpfulness": 3, "correctness": 2, "coherence": 4, "complexity": 1, "verbosity": 2}


def _qualified_judge(project):
    """A judge qualified on the project, calibrated on gold pairs (never served: gold rate 0):
    right on 9 in 10. On the task pairs its orders agree (A) on even pairs and disagree on odd
    ones, so both routing paths run: confirm-and-close, and unsure-first at full overlap."""
    judge = judge_create(name="race-judge", model_ref="m")
    for n in range(MIN_CALIBRATION_PAIRS + 10):
        item = project.items.create(external_id=f"g{n}", prompt="g", role="gold")
        a = item.responses.create(external_id="a", text="a")
        b = item.responses.create(external_id="b", text="b")
        pair = Pair.objects.create(item=item, response_a=a, response_b=b, gold_strength=-1)
        s = 1 if n % 10 == 0 else -1
        for order in ("ab", "ba"):
            preference_submit(rater=judge.rater, pair=pair, strength=s, shown_order=order, verdict_only=True)
    for k, pair in enumerate(Pair.objects.filter(item__project=project, item__role="task").order_by("pk")):
        preference_submit(rater=judge.rater, pair=pair, strength=-1, shown_order="ab", verdict_only=True)
        preference_submit(rater=judge.rater, pair=pair, strength=-1 if k % 2 == 0 else 1, shown_order="ba",
                          verdict_only=True)  # fmt: skip
    JudgeQualification.objects.create(project=project, judge=judge, n=40, min_kappa=0.4, min_consistency=0.7,
                                      qualified=True)  # fmt: skip
    return judge.rater


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("routing", [None, "adaptive", "judge"])
def test_concurrent_annotators_never_exceed_overlap_or_repeat_a_task(routing):
    """With a routing policy on (issue 13), the same guarantees, and each pair stops exactly
    where the policy says: no label after it closed a pair, none missing before."""
    if connection.vendor != "postgresql":
        pytest.skip("the race-free claim relies on PostgreSQL row locks")
    project = project_create(name="Race", overlap=3)
    for n in range(8):
        item = project.items.create(external_id=f"i{n}", prompt=f"p{n}")
        responses = [item.responses.create(external_id=f"r{k}", text=f"t{k}") for k in range(3)]
        for i, a in enumerate(responses):
            for b in responses[i + 1 :]:
                Pair.objects.create(item=item, response_a=a, response_b=b)
    if routing:
        judge = _qualified_judge(project) if routing == "judge" else None
        RoutingPolicy.objects.create(project=project, kind=routing, k=2, judge=judge, threshold=0.0, spot_check_rate=0.0)
        routing_refresh(project=project)
    raters = []
    for n in range(ANNOTATORS):
        user = get_user_model().objects.create_user(username=f"ann{n}", password="pw")
        user_set_role(user=user, role="annotator")
        project.members.add(user)
        raters.append(rater_for_user(user=user))

    barrier = threading.Barrier(ANNOTATORS)
    seen: dict[int, list[tuple[str, int]]] = {}
    errors: list[BaseException] = []

    def work(index: int) -> None:
        rater = raters[index]
        rng = random.Random(index)
        mine: list[tuple[str, int]] = []
        try:
            barrier.wait()
            deadline = time.monotonic() + 90
            while time.monotonic() < deadline:
                a = assignment_claim_next(project=project, rater=rater, rng=rng)
                if a is None:
                    # Nothing free for me now; a claim someone else still holds may yet be
                    # skipped back into the pool, so check back (as a person would) until
                    # no claim is in flight anywhere.
                    if Assignment.objects.filter(project=project, status="claimed").exists():
                        time.sleep(0.05)
                        continue
                    break
                key = (a.protocol, a.response_id or a.pair_id)
                if mine and mine[-1] == key:
                    raise AssertionError(f"rater {index} was served {key} again after finishing it")
                mine.append(key)
                if rng.random() < 0.05:
                    assignment_skip(rater=rater, view_key=a.view_key, reason="unsure")
                elif a.protocol == "rating":
                    assignment_submit_rating(rater=rater, view_key=a.view_key, values=ALL)
                else:
                    assignment_submit_preference(rater=rater, view_key=a.view_key, shown_strength=rng.randint(-2, 2))
        except BaseException as exc:  # surfaced in the main thread
            errors.append(exc)
        finally:
            seen[index] = mine
            connections.close_all()

    threads = [threading.Thread(target=work, args=(n,)) for n in range(ANNOTATORS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors[:3]

    for index, keys in seen.items():
        assert len(keys) == len(set(keys)), f"annotator {index} saw a task twice"
    done = Assignment.objects.filter(status="done")
    per_response = Counter(done.filter(protocol="rating").values_list("response_id", flat=True))
    per_pair = Counter(done.filter(protocol="ranking").values_list("pair_id", flat=True))
    # Every task reached its overlap exactly: none over, none starved (skips went back to the pool).
    assert set(per_response.values()) == {3} and len(per_response) == Response.objects.filter(item__role="task").count()
    assert len(per_pair) == Pair.objects.filter(item__role="task").count()
    if routing is None:
        assert set(per_pair.values()) == {3}
    else:
        policy = as_policy(RoutingPolicy.objects.get(project=project), overlap=project.overlap)
        votes = human_verdicts(per_pair)
        for pair_id, n in per_pair.items():
            state = PairRouting.objects.get(pair_id=pair_id)
            signal = None
            if state.judge_verdict is not None and state.judge_confidence is not None:
                signal = JudgeSignal(state.judge_verdict, state.judge_confidence, bool(state.judge_orders_agree))
            assert (1 if routing == "judge" else 2) <= n <= 3, f"pair {pair_id} got {n} labels"
            # The policy wanted each label it got, and no more after the last one.
            assert all(decide(policy, votes[pair_id][:k], signal, pair_key=pair_id, seed=project.pk).need_more
                       for k in range(n))  # fmt: skip
            assert not decide(policy, votes[pair_id], signal, pair_key=pair_id, seed=project.pk).need_more
            assert state.need_more is False
        if routing == "judge":  # the judge did its part: some pairs closed on one confirming human
            assert 1 in per_pair.values()
            assert RoutingDecision.objects.filter(reason="judge_confirmed").exists()
        # Every decision is on record with its reason.
        assert RoutingDecision.objects.filter(need_more=False).count() == len(per_pair)
        assert not RoutingDecision.objects.filter(reason="").exists()
    # Nothing lost, nothing doubled: one stored annotation per done assignment.
    assert Rating.objects.count() == sum(per_response.values()) * len(ALL)
    assert Preference.objects.filter(rater_kind="human").count() == sum(per_pair.values())
    assert sum(len(keys) for keys in seen.values()) == Assignment.objects.count()
