"""Real Celery workers against real PostgreSQL: a kill -9 mid-run loses nothing and doubles nothing.

The test database is committed (transaction=True) so the subprocesses see it: the run is started
with `manage.py run_judge` and judged by `celery -A config worker -Q default,gpu -c 1`, over
Redis (the suite's CELERY_BROKER_URL, db 7 by default) and over the default filesystem:// broker. The judge is a tiny random Llama with a
short rationale, so batches take a moment and the kill lands mid-run.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from django.db import connection
from test_judge_fixtures import make_project, tiny_model_dir  # noqa: F401  (fixture)

from annotate.models import Preference
from judges import services
from judges.models import Judgment, Run

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]

ROOT = Path(__file__).resolve().parent.parent
# The suite's Redis (make test's REDIS_URL, or a helper's own db number); db 7 without one.
_BROKER = os.environ.get("CELERY_BROKER_URL", "")
REDIS_URL = _BROKER if _BROKER.startswith("redis://") else "redis://127.0.0.1:6379/7"
FINAL = ("ok", "unparseable", "error")


def _database_url() -> str:
    s = connection.settings_dict
    auth = s["USER"] + (f":{s['PASSWORD']}" if s.get("PASSWORD") else "")
    return f"postgres://{auth}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}"


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("CELERY_BROKER_URL", "DATABASE_TEST_NAME")}
    env |= {"DATABASE_URL": _database_url(), "CONCORDANCE_VAR_DIR": str(tmp_path / "var"), "PYTHONUNBUFFERED": "1"}
    return env


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[Callable[[dict[str, str], str], subprocess.Popen]]:
    started: list[subprocess.Popen] = []

    def start(env: dict[str, str], name: str) -> subprocess.Popen:
        log = open(tmp_path / f"{name}.log", "w")  # noqa: SIM115  (closed with the process)
        proc = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "config", "worker", "-Q", "default,gpu", "-c", "1",
             "--loglevel", "info", "-n", f"{name}@%h", "--without-gossip", "--without-mingle"],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        started.append(proc)
        return proc

    yield start
    for proc in started:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _start_run(env: dict[str, str], project_id: int, judge: str, *extra: str) -> Run:
    subprocess.run(
        [sys.executable, "manage.py", "run_judge", str(project_id), judge, "--protocol", "ranking", *extra],
        cwd=ROOT, env=env, check=True, capture_output=True, timeout=120,
    )
    return Run.objects.get(project_id=project_id)


def _wait(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def _finished(run: Run) -> int:
    return Judgment.objects.filter(run=run, status__in=FINAL).count()


def _assert_complete_exactly_once(run: Run, expected: int) -> None:
    run.refresh_from_db()
    assert run.status == Run.Status.DONE
    judgments = list(Judgment.objects.filter(run=run).values_list("pair_id", "shown_order", "status"))
    assert len(judgments) == expected == run.total
    assert len({(p, o) for p, o, _ in judgments}) == expected
    assert {s for _, _, s in judgments} <= set(FINAL)
    ok = sum(1 for *_, s in judgments if s == "ok")
    prefs = list(Preference.objects.filter(rater=run.judge.rater).values_list("pair_id", "shown_order"))
    assert len(prefs) == len(set(prefs)) == ok


@pytest.fixture
def slow_tiny_judge(tiny_model_dir):  # noqa: F811
    # A short rationale makes each batch take a moment, so the kill lands between batches' starts.
    return services.judge_create(name="tiny-worker", model_ref=str(tiny_model_dir), rationale=True,
                                 decoding={"rationale_tokens": 24, "max_batch_size": 2})


@pytest.mark.slow  # minutes on a busy 2-core machine: the full suite runs it, not the fast lane
def test_kill_9_mid_run_then_a_new_worker_completes_every_judgment_once(env, workers, slow_tiny_judge):
    import redis

    redis.Redis.from_url(REDIS_URL).flushdb()
    env = env | {"CELERY_BROKER_URL": REDIS_URL}
    project = make_project(name="Fault", items=24)
    run = _start_run(env, project.pk, "tiny-worker", "--batch-size", "2", "--lease-seconds", "6")
    assert run.total == 48

    first = workers(env, "first")
    _wait(lambda: _finished(run) >= 6, 180, "the first worker to finish some judgments")
    os.killpg(first.pid, signal.SIGKILL)  # the worker and its pool process, no goodbye
    first.wait()
    at_kill = _finished(run)
    claimed_at_kill = Judgment.objects.filter(run=run, status="claimed").count()
    assert at_kill < run.total, "the run finished before the kill; make it longer"

    workers(env, "second")
    _wait(lambda: Run.objects.get(pk=run.pk).status == Run.Status.DONE, 240, "the run to complete")
    _assert_complete_exactly_once(run, 48)
    if claimed_at_kill:
        # The dead worker's batch was handed out again once its lease ran out.
        assert Judgment.objects.filter(run=run, attempts__gte=2).count() >= claimed_at_kill


def test_worker_runs_a_judge_over_the_default_filesystem_broker(env, workers, slow_tiny_judge):
    project = make_project(name="Filesystem broker", items=2)
    run = _start_run(env, project.pk, "tiny-worker")
    workers(env, "fs")
    _wait(lambda: Run.objects.get(pk=run.pk).status == Run.Status.DONE, 180, "the run to complete")
    _assert_complete_exactly_once(run, 4)
