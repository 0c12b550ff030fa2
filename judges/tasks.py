"""Celery tasks: thin wrappers that take ids and call a service.

`judge_batch` is routed to the `gpu` queue (settings.CELERY_TASK_ROUTES). Each worker process
keeps the models it loaded (inference.registry), so a model loads once per process, not per
batch. Tasks are acks_late and idempotent: a redelivered or duplicated batch finds its
judgments already claimed or finished and does nothing twice.
"""

from __future__ import annotations

import logging

from celery import shared_task
from celery.signals import worker_ready
from django.db import close_old_connections

from . import services

log = logging.getLogger(__name__)


@shared_task(
    bind=True,
    acks_late=True,
    reject_on_worker_lost=True,
    autoretry_for=services.TRANSIENT_ERRORS,
    retry_backoff=2,
    retry_backoff_max=120,
    retry_jitter=True,
    max_retries=8,
)
def judge_batch(self, run_id: int, judgment_ids: list[int]) -> int:  # noqa: ANN001
    return services.judgments_process(run_id=run_id, judgment_ids=judgment_ids)


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
