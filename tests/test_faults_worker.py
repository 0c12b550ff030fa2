"""Faults with real Celery workers on real Redis and PostgreSQL (issue 10, deliverable 6).

- The broker down (CELERY_BROKER_URL at a closed port): starting a run or an export answers 503
  with a clear message, and nothing is left half-started.
- Planning and exports run in a worker, not in the web process; a planning or export message lost
  with a worker is sent again when the next worker starts, so nothing stays "running" for ever.
- A judge whose server refuses connections goes through the task's real retries and then fails
  its judgments with the reason, instead of being retried for ever.

Workers are started and killed as in tests/test_worker_fault.py (whose fixtures these reuse).
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time

import pytest
from test_judge_fixtures import make_project, tiny_model_dir  # noqa: F401  (fixture)
from test_worker_fault import REDIS_URL, ROOT, _wait, env, workers  # noqa: F401  (fixtures)

from exports import jobs
from judges import services
from judges.models import Judgment, Run

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]

BROKER_DOWN_SCRIPT = """
import json, sys
import django
django.setup()
from django.contrib.auth import get_user_model
from django.test import Client
from rest_framework.test import APIClient
user = get_user_model().objects.get(username=sys.argv[1])
project, judge = int(sys.argv[2]), int(sys.argv[3])
api = APIClient()
api.force_authenticate(user)
started = api.post("/api/runs/", {"judge": judge, "project": project, "protocols": ["ranking"]}, format="json")
page = Client()
page.force_login(user)
form = page.post(f"/judges/projects/{project}/runs/", {"judge": judge, "kind": "judge", "protocols": ["ranking"]})
export = page.post(f"/exports/projects/{project}/", {"format": "dpo", "raters": "humans", "dpo_source": "human",
                                                    "min_agreement": "0", "splits": "train=1", "seed": "0", "licence": "other"})
resumed = api.post(f"/api/runs/{sys.argv[4]}/resume/") if len(sys.argv) > 4 else None
print(json.dumps({"api": [started.status_code, started.json()], "page": [form.status_code, form.content.decode()],
                  "resume": [resumed.status_code, resumed.json()] if resumed is not None else None,
                  "export": [export.status_code, export.content.decode()]}))
"""


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _flush() -> None:
    import redis

    redis.Redis.from_url(REDIS_URL).flushdb()


@pytest.fixture
def judge(tiny_model_dir):  # noqa: F811
    return services.judge_create(name="tiny-faults", model_ref=str(tiny_model_dir))


def test_broker_down_answers_503_and_leaves_no_run_or_export_behind(env, researcher, judge, tmp_path):  # noqa: F811
    project = make_project(name="Broker down", items=2)
    project.members.add(researcher)
    down = env | {"CELERY_BROKER_URL": f"redis://127.0.0.1:{_closed_port()}/0"}
    started = time.monotonic()
    out = subprocess.run([sys.executable, "-c", BROKER_DOWN_SCRIPT, researcher.username, str(project.pk), str(judge.pk)],
                         cwd=ROOT, env=down, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    answer = json.loads(out.stdout.strip().splitlines()[-1])
    code, body = answer["api"]
    assert code == 503 and "broker" in body["detail"] and "nothing was started" in body["detail"]
    code, html = answer["page"]
    assert code == 503 and "nothing was started" in html
    code, html = answer["export"]
    assert code == 503 and "nothing was started" in html
    assert time.monotonic() - started < 60
    assert not Run.objects.exists() and not Judgment.objects.exists()
    exports = tmp_path / "var" / "exports"
    assert not exports.exists() or not any(exports.iterdir())


def test_resuming_a_run_while_the_broker_is_down_answers_503_and_leaves_the_run_as_it_was(env, researcher, judge):  # noqa: F811
    from django.utils import timezone

    project = make_project(name="Resume, broker down", items=1)
    project.members.add(researcher)
    run = Run.objects.create(judge=judge, project=project, status=Run.Status.CANCELLED, planned_at=timezone.now(),
                             protocols=["ranking"], started_at=timezone.now(), finished_at=timezone.now())
    down = env | {"CELERY_BROKER_URL": f"redis://127.0.0.1:{_closed_port()}/0"}
    out = subprocess.run([sys.executable, "-c", BROKER_DOWN_SCRIPT, researcher.username, str(project.pk), str(judge.pk),
                          str(run.pk)], cwd=ROOT, env=down, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    code, body = json.loads(out.stdout.strip().splitlines()[-1])["resume"]
    assert code == 503 and "nothing was started" in body["detail"]
    run.refresh_from_db()
    assert run.status == Run.Status.CANCELLED  # not flipped to running with no batch sent


def test_a_run_is_planned_and_judged_by_a_worker_and_a_lost_plan_is_planned_again(env, workers, judge):  # noqa: F811
    _flush()
    project = make_project(name="Planned by a worker", items=3)
    run = services.run_start(judge=judge, project=project, protocols=["ranking"])
    assert run.planned_at is None and run.total == 0
    _flush()  # the planning message is lost (a worker killed holding it, on a broker that forgets)
    workers(env | {"CELERY_BROKER_URL": REDIS_URL}, "planner")
    # The new worker restarts the watchdogs; the run's finds it unplanned with no planner and plans it.
    _wait(lambda: Run.objects.get(pk=run.pk).status == Run.Status.DONE, 180, "the run to be planned and judged")
    run.refresh_from_db()
    assert run.total == 6 and run.planned_at is not None
    assert Judgment.objects.filter(run=run).count() == 6
    assert set(Judgment.objects.filter(run=run).values_list("status", flat=True)) <= {"ok", "unparseable"}


def test_a_server_that_refuses_connections_fails_its_judgments_after_the_retries(env, workers):  # noqa: F811
    _flush()
    judge = services.judge_create(name="wrong-url", backend="openai", model_ref="m",
                                  base_url=f"http://127.0.0.1:{_closed_port()}/v1")
    project = make_project(name="Wrong URL", items=1)
    run = services.run_start(judge=judge, project=project, protocols=["ranking"])
    workers(env | {"CELERY_BROKER_URL": REDIS_URL, "CONCORDANCE_JUDGE_RETRIES": "2"}, "retrier")
    _wait(lambda: Run.objects.get(pk=run.pk).status == Run.Status.DONE, 180, "the run to give up")
    judgments = list(Judgment.objects.filter(run=run))
    assert {(j.status, j.error) for j in judgments} == {("error", "connection refused (gave up after the retries)")}
    assert {j.attempts for j in judgments} == {3}  # the first try and two retries, each claiming again


def test_exports_run_in_a_worker_and_one_lost_with_its_worker_is_resumed(env, workers, researcher, settings, tmp_path):  # noqa: F811
    _flush()
    settings.VAR_DIR = tmp_path / "var"  # the worker's CONCORDANCE_VAR_DIR (env fixture)
    project = make_project(name="Exported", items=3)
    waiting = jobs.export_job_start(project=project, options=jobs.ExportOptions("helpsteer2-preference"), user_id=None)
    lost = jobs.export_job_start(project=project, options=jobs.ExportOptions("dpo"), user_id=researcher.pk)
    _flush()  # the second job's message is gone, as with a worker killed -9 on a broker that forgets
    status = jobs.export_job_status(job_id=lost)
    # What a killed worker leaves: "running", its lock released with the process.
    jobs._write_status(lost, {**status, "state": "running", "started_at": time.time() - 3600})
    first = jobs.export_job_start(project=project, options=jobs.ExportOptions("helpsteer2-preference"), user_id=None)
    workers(env | {"CELERY_BROKER_URL": REDIS_URL}, "exporter")
    for job_id in (first, lost):
        _wait(lambda job_id=job_id: jobs.export_job_status(job_id=job_id)["state"] in ("done", "failed"), 120,
              "the export to finish")
        status = jobs.export_job_status(job_id=job_id)
        assert status["state"] == "done", status.get("error")
        assert jobs.export_job_file(job_id=job_id, name=status["files"][0]).is_file()
    assert jobs.export_job_status(job_id=lost)["attempts"] == 2
    # Queued a moment ago, its message may still be waiting in the broker: not sent twice (yet).
    assert jobs.export_job_status(job_id=waiting)["state"] == "queued"
