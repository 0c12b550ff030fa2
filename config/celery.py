from __future__ import annotations

import os
from typing import Any

from celery import Celery
from kombu.exceptions import OperationalError

from annotate.errors import ConcordanceError

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("concordance")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

BROKER_DOWN_MESSAGE = (
    "The task queue (Celery broker) is not answering, so nothing was started. "
    "Try again in a moment; if it lasts, the operator should check CELERY_BROKER_URL and the broker."
)


class BrokerUnavailable(ConcordanceError):
    """The broker did not take a task. Pages and the API answer 503; the service that raised it
    has left nothing half-started."""


def task_send(task: Any, args: tuple = (), **options: Any) -> None:
    """Send a task now (not on commit), so a broker that is down is known before we answer.

    kombu's own publish retry would wait for the broker for a long time; one quick retry is
    enough to ride over a reconnect, and the caller then answers 503."""
    try:
        task.apply_async(
            args, retry=True,
            retry_policy={"max_retries": 1, "interval_start": 0, "interval_step": 0.5, "interval_max": 0.5},
            **options,
        )
    except (OperationalError, OSError) as exc:
        raise BrokerUnavailable(BROKER_DOWN_MESSAGE) from exc


def broker_check() -> None:
    """BrokerUnavailable unless the broker takes a connection now: for writes that enqueue
    after their commit (resuming a run), asked before anything is changed."""
    try:
        with app.connection_for_write() as connection:
            connection.ensure_connection(max_retries=1, interval_start=0, interval_step=1, timeout=3)
    except (OperationalError, OSError) as exc:
        raise BrokerUnavailable(BROKER_DOWN_MESSAGE) from exc
