"""Celery tasks of exports: a job runs in a worker (queue `default`), never in the web process."""

from __future__ import annotations

import logging

from celery import shared_task
from celery.signals import worker_ready

from . import jobs

log = logging.getLogger(__name__)


@shared_task(acks_late=True, reject_on_worker_lost=True)
def export_job(job_id: str) -> str:
    return jobs.export_job_execute(job_id=job_id)


@worker_ready.connect
def _resume_lost_exports(**_: object) -> None:
    # A worker killed mid-export leaves its job "running" with its lock released: send it again.
    try:
        count = jobs.export_jobs_resume()
        if count:
            log.info("sent again %d export job(s) lost with a worker", count)
    except Exception:  # the worker must start whatever state the exports folder is in
        log.exception("could not resume lost export jobs")
