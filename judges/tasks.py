"""Celery tasks: thin wrappers that take ids and call a service.

`judge_batch` is routed to the `gpu` queue (settings.CELERY_TASK_ROUTES), `run_plan` and the
watchdog to `default`. Each worker process keeps the models it loaded (inference.registry), so a
model loads once per process, not per batch. Tasks are acks_late and idempotent: a redelivered
or duplicated batch finds its judgments already claimed or finished and does nothing twice.
"""

from __future__ import annotations

import logging
import random

from celery import shared_task
from celery.signals import worker_ready
from django.conf import settings
from django.db import close_old_connections

from . import services

log = logging.getLogger(__name__)


def retry_countdown(retries: int) -> float:
    """2 s, 4 s, 8 s, ... at most 120 s, with jitter (many batches hit the same server)."""
    return min(120.0, 2.0 ** (retries + 1)) * random.uniform(0.8, 1.0)  # noqa: S311 - jitter, not crypto


@shared_task(bind=True, acks_late=True, reject_on_worker_lost=True, max_retries=settings.JUDGE_RETRIES)
def judge_batch(self, run_id: int, judgment_ids: list[int], claim_token: str = "") -> int:  # noqa: ANN001
    last = self.request.retries >= self.max_retries
    countdown = retry_countdown(self.request.retries)
    try:
        return services.judgments_process(
            run_id=run_id, judgment_ids=judgment_ids, token=claim_token, retry_in=None if last else countdown
        )
    except services.BatchRetry as exc:
        log.warning("run %s: batch retry %d/%d in %.0f s: %s", run_id, self.request.retries + 1,
                    self.max_retries, countdown, exc)
        raise self.retry(args=(run_id, judgment_ids), kwargs={"claim_token": exc.token}, countdown=countdown) from exc


@shared_task(bind=True, acks_late=True, reject_on_worker_lost=True, max_retries=10,
             autoretry_for=services.TRANSIENT_ERRORS, retry_backoff=2, retry_backoff_max=60)
def run_plan(self, run_id: int) -> int:  # noqa: ANN001
    planned = services.run_plan(run_id=run_id)
    if planned is None:
        # run_start sends this before its caller's transaction may have committed.
        raise self.retry(countdown=1)
    return planned


@shared_task(acks_late=True, autoretry_for=services.TRANSIENT_ERRORS, retry_backoff=2, max_retries=8)
def run_watch(run_id: int, token: str) -> None:
    delay = services.run_watch(run_id=run_id, token=token)
    if delay is not None:
        run_watch.apply_async((run_id, token), countdown=delay)


@worker_ready.connect
def _watch_running_runs(**_: object) -> None:
    # A worker that died may have held a run's delayed watchdog message; every new worker
    # restarts the watchdogs so a run never waits on the broker's visibility timeout.
    try:
        count = services.runs_watch_restart()
        if count:
            log.info("restarted the watchdog of %d running judge run(s)", count)
    except Exception:  # the worker must start even if the database is briefly unreachable
        log.exception("could not restart judge run watchdogs")
    finally:
        close_old_connections()


@shared_task(acks_late=True, reject_on_worker_lost=True, autoretry_for=services.TRANSIENT_ERRORS,
             retry_backoff=2, max_retries=settings.JUDGE_RETRIES)
def checklist_generate(judge_id: int, item_ids: list[int], replace: bool = False) -> int:
    """TICK's checklist generation for the items (judges.checklists); sent to the judges' queue."""
    from .checklists import checklists_generate
    from .models import Judge

    judge = Judge.objects.select_related("rater").get(pk=judge_id)
    return len(checklists_generate(judge=judge, item_ids=item_ids, replace=replace))


@shared_task(acks_late=True, autoretry_for=services.TRANSIENT_ERRORS, retry_backoff=2, max_retries=8)
def panel_refresh(panel_id: int) -> int:
    """Recompute a panel's verdicts (judges.panels.panel_refresh: idempotent, so a retry or a
    duplicate delivery writes nothing twice)."""
    from .models import Panel
    from .panels import panel_refresh as refresh

    panel = Panel.objects.filter(pk=panel_id).first()
    return 0 if panel is None else refresh(panel)
