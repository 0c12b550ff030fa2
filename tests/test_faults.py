"""Faults and re-runs in the services the Celery tasks call (issue 10, deliverables 3, 6, 8):
a re-run replaces a judge's preferences as it replaces its ratings; storing a batch takes a fixed
number of queries; a batch longer than its lease keeps it (heartbeat) and is not redone; the
watchdog hands out only stale claims; planning runs outside the request and survives its planner.
Real workers on real Redis: tests/test_faults_worker.py."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from test_judge_fixtures import make_project, tiny_model_dir  # noqa: F401  (fixture)

from annotate.models import Preference, Rating
from judges import services
from judges.inference import load_backend
from judges.models import Judgment, Run
from reports.selectors import annotations_table

pytestmark = pytest.mark.django_db


@pytest.fixture
def argmax_judge(tiny_model_dir):  # noqa: F811
    # min_valid_mass 0: every answer is a verdict (the argmax over the labels), so every
    # judgment writes an annotation and a re-run has something to replace.
    return services.judge_create(name="argmax", model_ref=str(tiny_model_dir), decoding={"min_valid_mass": 0})


def _process(run: Run, **kwargs: object) -> int:
    ids = list(Judgment.objects.filter(run=run).values_list("id", flat=True))
    done = services.judgments_process(run_id=run.pk, judgment_ids=ids, **kwargs)  # type: ignore[arg-type]
    run.refresh_from_db()
    return done


def test_a_rerun_after_a_template_change_replaces_preferences_as_ratings_and_keeps_the_old_judgments(argmax_judge):
    project = make_project(name="Rerun", items=3)
    first = services.run_start(plan_now=True, judge=argmax_judge, project=project)
    _process(first)
    before = {(p.pair_id, p.shown_order): p.probabilities for p in Preference.objects.filter(rater=argmax_judge.rater)}
    for protocol in ("rating", "ranking"):
        current = argmax_judge.rating_template if protocol == "rating" else argmax_judge.ranking_template
        services.judge_template_edit(judge=argmax_judge, protocol=protocol, system="Judge strictly. " + current.system,
                                     user=current.user)
    second = services.run_start(plan_now=True, judge=argmax_judge, project=project)
    _process(second)

    new = {(j.pair_id, j.shown_order): j for j in Judgment.objects.filter(run=second, protocol="ranking")}
    prefs = list(Preference.objects.filter(rater=argmax_judge.rater))
    assert len(prefs) == len(new) == 6  # replaced, not added
    changed = 0
    for p in prefs:
        judgment = new[(p.pair_id, p.shown_order)]
        assert judgment.preference_id == p.pk
        assert p.probabilities == services.stored_order_probabilities(judgment.probabilities, p.shown_order)
        changed += p.probabilities != before[(p.pair_id, p.shown_order)]
    assert changed == 6, "the template change must change what the judge says, or this proves nothing"
    for r in Rating.objects.filter(rater=argmax_judge.rater):
        judgment = Judgment.objects.get(run=second, response=r.response, attribute=r.attribute)
        assert r.value == int(judgment.verdict) and r.probabilities == judgment.probabilities
    # The report reads the new verdicts: one row per pair and order, the second run's numbers.
    table = annotations_table(project)
    judge_rows = table[(table["kind"] == "judge") & (table["protocol"] == "ranking")]
    assert len(judge_rows) == 6
    assert sorted(judge_rows["p_a"].round(9)) == sorted(round(j.preference.probabilities["A"], 9) for j in new.values())
    # The first run's judgments stay, with what that run's judge said (history of that run).
    old = list(Judgment.objects.filter(run=first, protocol="ranking"))
    assert len(old) == 6 and all(j.status == "ok" and j.template_id != new[(j.pair_id, j.shown_order)].template_id
                                 for j in old)
    assert {(j.pair_id, j.shown_order): services.stored_order_probabilities(j.probabilities, j.shown_order)
            for j in old} == before


@pytest.mark.parametrize("items", [1, 8])
def test_storing_a_batch_takes_the_same_few_queries_whatever_its_size(argmax_judge, items):
    project = make_project(name=f"Queries {items}", items=items)
    run = services.run_start(plan_now=True, judge=argmax_judge, project=project)
    ids = list(Judgment.objects.filter(run=run).values_list("id", flat=True))
    token, claimed = services.judgments_claim(run=run, judgment_ids=ids)
    backend = load_backend(services.judge_backend_config(judge=argmax_judge))
    results = backend.score([services.judgment_request(run=run, judgment=j) for j in claimed],
                            decoding=services.judge_decoding(judge=argmax_judge))
    by_id = {j.id: j for j in claimed}
    run = Run.objects.select_related("judge__rater", "judge__rating_template", "judge__ranking_template",
                                     "project").get(pk=run.pk)
    with CaptureQueriesContext(connection) as queries:
        stored = services.judgments_store(run=run, token=token, outcomes=[(by_id[r.key], r) for r in results])
    assert stored == len(claimed) == items * 4
    # lock the batch, upsert its ratings, upsert its preferences, update its judgments (+ savepoint)
    statements = [q["sql"] for q in queries.captured_queries if not q["sql"].startswith(("SAVEPOINT", "RELEASE"))]
    assert len(statements) == 4, statements
    assert Rating.objects.filter(rater=argmax_judge.rater).count() == items * 2
    assert Preference.objects.filter(rater=argmax_judge.rater).count() == items * 2


def test_the_watchdog_hands_out_only_claims_whose_lease_ran_out(argmax_judge):
    run = services.run_start(plan_now=True, judge=argmax_judge, project=make_project(name="Watch", items=3),
                             protocols=["ranking"], batch_size=2, lease_seconds=60)
    ids = list(Judgment.objects.filter(run=run).order_by("id").values_list("id", flat=True))
    live, _ = services.judgments_claim(run=run, judgment_ids=ids[:2])
    dead, _ = services.judgments_claim(run=run, judgment_ids=ids[2:4])
    Judgment.objects.filter(claim_token=dead).update(lease_expires_at=timezone.now() - timedelta(seconds=1))
    assert services.run_watch(run_id=run.pk, token=run.watch_token) == 30
    states = dict(Judgment.objects.filter(run=run).values_list("id", "status"))
    # The dead batch is pending again (re-enqueued once); the live one and the never-claimed pending
    # judgments are left alone, however long nothing finished.
    assert [states[i] for i in ids] == ["claimed", "claimed", "pending", "pending", "pending", "pending"]
    assert Judgment.objects.filter(claim_token=live).count() == 2
    assert services.run_watch(run_id=run.pk, token=run.watch_token) == 30
    assert Judgment.objects.filter(claim_token=live).count() == 2


def test_a_stalled_run_has_its_pending_judgments_sent_again_once_a_lease(argmax_judge):
    # A worker killed with -9 takes its prefetched batches along (Redis returns them after an
    # hour, the filesystem broker never): nothing claimed, nothing finished for a whole lease.
    run = services.run_start(plan_now=True, judge=argmax_judge, project=make_project(name="Stalled", items=2),
                             protocols=["ranking"], batch_size=2, lease_seconds=60)
    assert services.run_watch(run_id=run.pk, token=run.watch_token) == 30
    assert not Judgment.objects.filter(run=run, lease_expires_at__isnull=False).exists()  # just planned: not stalled
    Run.objects.filter(pk=run.pk).update(planned_at=timezone.now() - timedelta(seconds=61))
    assert services.run_watch(run_id=run.pk, token=run.watch_token) == 30
    resent = list(Judgment.objects.filter(run=run).values_list("status", "lease_expires_at"))
    assert len(resent) == 4 and all(status == "pending" and until is not None for status, until in resent)
    marks = sorted(until for _, until in resent)
    assert services.run_watch(run_id=run.pk, token=run.watch_token) == 30  # within the lease: no second re-send
    assert sorted(Judgment.objects.filter(run=run).values_list("lease_expires_at", flat=True)) == marks


def test_run_start_leaves_planning_to_a_worker_and_a_planner_that_died_is_replaced(argmax_judge):
    project = make_project(name="Plan later", items=2)
    run = services.run_start(judge=argmax_judge, project=project, protocols=["ranking"])
    assert run.status == Run.Status.RUNNING and run.planned_at is None and not run.judgments.exists()
    # No planner holds the run (its task was lost with a worker): the watchdog plans it again.
    assert services.run_watch(run_id=run.pk, token=run.watch_token) is not None
    assert services.run_plan(run_id=run.pk) == 4
    assert services.run_plan(run_id=run.pk) == 0  # a second delivery plans nothing twice
    run.refresh_from_db()
    assert run.total == 4 and run.planned_at is not None and run.judgments.count() == 4


@pytest.mark.django_db(transaction=True)
def test_a_batch_longer_than_its_lease_keeps_it_and_is_not_redone(tiny_model_dir):  # noqa: F811
    judge = services.judge_create(name="slow", model_ref=str(tiny_model_dir), rationale=True,
                                  decoding={"rationale_tokens": 1500, "min_valid_mass": 0})
    # 1,500 rationale tokens for 16 pairs: a few seconds even on a fast machine (300 finished
    # inside the 1.6 s window on one CI run), so the batch outlives its 1 s lease.
    run = services.run_start(plan_now=True, judge=judge, project=make_project(name="Long batch", items=8),
                             protocols=["ranking"], batch_size=16, lease_seconds=1)
    ids = list(Judgment.objects.filter(run=run).values_list("id", flat=True))
    first: list[int] = []
    worker = threading.Thread(target=lambda: first.append(services.judgments_process(run_id=run.pk, judgment_ids=ids)))
    worker.start()
    deadline = time.monotonic() + 30
    while not Judgment.objects.filter(run=run, status="claimed").count() == 16:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    time.sleep(1.6)  # more than a lease and a half into the batch
    assert worker.is_alive(), ("the batch finished within its lease; make it longer", first, list(Judgment.objects.filter(run=run).values_list("status", "error", "raw_text")))
    # A redelivered message and the watchdog both find the claims alive.
    assert services.judgments_process(run_id=run.pk, judgment_ids=ids) == 0
    assert services.run_watch(run_id=run.pk, token=run.watch_token) is not None
    # Nothing was taken back: every judgment is still the first worker's claim, or done by it
    # (the batch may finish between the watchdog's pass and this query).
    assert set(Judgment.objects.filter(run=run).values_list("status", flat=True)) <= {"claimed", "ok"}
    worker.join(300)
    assert first == [16]
    judgments = list(Judgment.objects.filter(run=run))
    assert {j.status for j in judgments} == {"ok"} and {j.attempts for j in judgments} == {1}
    assert Preference.objects.filter(rater=judge.rater).count() == 16
    # Both backends keep the rationale as the preference's justification.
    assert all(j.preference.justification for j in judgments)
