"""Export jobs for the export page: a Celery task (exports.tasks.export_job, queue `default`)
writes under VAR_DIR/exports/<id>/ and keeps the job's state in a status.json the page polls.

A task rather than a thread in the web process: a web worker recycled or killed mid-export left
its job "running" for good. The worker holds an exclusive lock on the job's folder while it
writes (flock: the OS drops it when the process dies), so a job whose status says queued or
running while nobody holds its lock was lost with its worker, and the next worker to start sends
it again (`export_jobs_resume`); a second delivery of the same job finds the lock taken or the
job finished and does nothing. The web process and the workers share VAR_DIR/exports (one
machine, or a shared volume). The status file is replaced atomically, so a poll never reads
half a write.
"""

from __future__ import annotations

import dataclasses
import fcntl
import json
import os
import shutil
import time
import traceback
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from django.conf import settings
from django.db import connection

from annotate.errors import ConcordanceError
from annotate.models import Project
from config.celery import task_send

from .filenames import export_stem
from .selectors import ExportFilters
from .services import ExportOptions, export_options_validate, export_write

# A poll rewrites nothing; the writer updates status at most this often.
PROGRESS_EVERY_S = 0.5
# A job lost with its worker is sent again at most this many times, then marked failed.
MAX_ATTEMPTS = 3
# A queued job nobody holds is taken to be lost (its message with it) after this long.
QUEUED_LOST_AFTER_S = 60


def jobs_root() -> Path:
    return Path(settings.VAR_DIR) / "exports"


def _job_dir(job_id: str) -> Path:
    # Job ids are uuid4 hex: anything else could walk out of the folder.
    if len(job_id) != 32 or any(c not in "0123456789abcdef" for c in job_id):
        raise FileNotFoundError(job_id)
    return jobs_root() / job_id


def _write_status(job_id: str, status: dict) -> None:
    folder = _job_dir(job_id)
    tmp = folder / "status.json.tmp"
    tmp.write_text(json.dumps(status), encoding="utf-8")
    os.replace(tmp, folder / "status.json")


def export_job_status(*, job_id: str) -> dict | None:
    try:
        return json.loads((_job_dir(job_id) / "status.json").read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def export_job_file(*, job_id: str, name: str) -> Path:
    """A finished job's file by the name listed in its status; nothing else is served."""
    status = export_job_status(job_id=job_id)
    if status is None or status["state"] != "done" or name not in status["files"]:
        raise FileNotFoundError(name)
    return _job_dir(job_id) / "out" / name


def _out_path(folder: Path, project: Project, fmt: str) -> Path:
    slug = export_stem(project.name, fmt)
    if fmt == "parquet":
        return folder / slug
    if fmt == "annotations":
        return folder / slug
    return folder / f"{slug}.jsonl"


@contextmanager
def _job_lock(job_id: str) -> Iterator[bool]:
    """Hold the job's lock while it runs; yields False when another process holds it."""
    fd = os.open(_job_dir(job_id) / "lock", os.O_CREAT | os.O_RDWR, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)  # releases the lock


def _options_from_status(status: dict) -> ExportOptions:
    o = dict(status["options"])
    filters = dict(o.pop("filters"))
    filters["splits"] = tuple(tuple(split) for split in filters.get("splits", ()))
    return ExportOptions(filters=ExportFilters(**filters), **o)


def export_job_execute(*, job_id: str) -> str:
    """The body of the Celery task: run the job unless it is finished or running elsewhere.
    Returns the state it leaves the job in."""
    status = export_job_status(job_id=job_id)
    if status is None:
        return "missing"
    if status["state"] in ("done", "failed"):
        return status["state"]
    with _job_lock(job_id) as mine:
        if not mine:
            return "running elsewhere"
        status = export_job_status(job_id=job_id) or status
        if status["state"] in ("done", "failed"):
            return status["state"]
        project = Project.objects.filter(pk=status["project_id"]).first()
        if project is None:
            status.update(state="failed", error="The project no longer exists.", finished_at=time.time())
            _write_status(job_id, status)
            return "failed"
        export_job_run(job_id=job_id, project=project, options=_options_from_status(status))
    return (export_job_status(job_id=job_id) or {}).get("state", "missing")


def export_jobs_resume(*, now: float | None = None) -> int:
    """Send again the jobs lost with a worker: queued or running, and nobody holds their lock
    (queued ones only after QUEUED_LOST_AFTER_S, since their message may just be waiting).
    Called when a worker starts. A job lost MAX_ATTEMPTS times is marked failed."""
    from .tasks import export_job

    now = time.time() if now is None else now
    root = jobs_root()
    if not root.is_dir():
        return 0
    sent = 0
    for folder in root.iterdir():
        status = export_job_status(job_id=folder.name) if len(folder.name) == 32 and folder.is_dir() else None
        if status is None or status["state"] not in ("queued", "running"):
            continue
        if status["state"] == "queued" and now - float(status.get("queued_at") or status["started_at"]) < QUEUED_LOST_AFTER_S:
            continue
        with _job_lock(folder.name) as free:
            if not free:
                continue  # a live worker is on it
            attempts = int(status.get("attempts", 1))
            if attempts >= MAX_ATTEMPTS:
                status.update(state="failed", error=f"The worker running this export stopped {attempts} times.",
                              finished_at=now)
            else:
                status.update(state="queued", attempts=attempts + 1, queued_at=now)
            _write_status(folder.name, status)
        if status["state"] == "queued":
            export_job.delay(folder.name)
            sent += 1
    return sent


def export_job_run(*, job_id: str, project: Project, options: ExportOptions) -> None:
    """Write one job's files and keep its status (the task's work; tests call it directly)."""
    status = export_job_status(job_id=job_id) or {}
    status.update(state="running")
    _write_status(job_id, status)
    out_dir = _job_dir(job_id) / "out"
    out_dir.mkdir(parents=True, exist_ok=True)
    last = 0.0

    def progress(done: int, total: int) -> None:
        nonlocal last
        status.update(state="running", done=done, total=total)
        now = time.monotonic()
        if now - last >= PROGRESS_EVERY_S or done >= total:
            last = now
            _write_status(job_id, status)

    try:
        result = export_write(
            project=project, options=options, out=_out_path(out_dir, project, options.format), progress=progress
        )
        if options.format == "parquet":
            # The folder is downloaded as one zip; it keeps the layout load_dataset expects.
            folder = result.files[0].parent
            archive = shutil.make_archive(str(folder), "zip", root_dir=folder)
            files = [Path(archive).name]
        else:
            files = [p.name for p in result.files]
        status.update(state="done", files=files, rows=result.rows, finished_at=time.time(), done=status.get("total", 0))
        _write_status(job_id, status)
    except Exception as exc:  # noqa: BLE001 - the page must show the failure, not spin forever
        message = str(exc) if isinstance(exc, ConcordanceError) else f"{type(exc).__name__}: {exc}"
        status.update(state="failed", error=message, trace=traceback.format_exc(), finished_at=time.time())
        _write_status(job_id, status)
    finally:
        # A long export's connection is not kept idle in the worker between tasks.
        connection.close()


def export_jobs_prune(*, keep_seconds: float, now: float | None = None) -> int:
    """Remove job folders finished (done or failed) more than `keep_seconds` ago, and folders with
    no readable status that old (a crash mid-start); running jobs stay. Returns how many went."""
    now = time.time() if now is None else now
    root = jobs_root()
    if not root.is_dir():
        return 0
    removed = 0
    for folder in root.iterdir():
        if not folder.is_dir():
            continue
        status = export_job_status(job_id=folder.name) if len(folder.name) == 32 else None
        if status is None:
            ended = folder.stat().st_mtime
        elif status.get("state") in ("done", "failed"):
            ended = float(status.get("finished_at") or status.get("started_at") or folder.stat().st_mtime)
        else:
            continue
        if now - ended > keep_seconds:
            shutil.rmtree(folder, ignore_errors=True)
            removed += 1
    return removed


def export_job_start(*, project: Project, options: ExportOptions, user_id: int | None, run: bool = True) -> str:
    """Validate, record the job and send it to a worker; returns the job id. Old finished jobs
    are pruned first, so the exports folder holds about a day of files, not every export ever.

    If the broker does not take the task the job is removed again and BrokerUnavailable says so
    (a 503 for the page): no job is left "queued" that nothing will run."""
    options = export_options_validate(options=options)
    export_jobs_prune(keep_seconds=settings.CONCORDANCE["EXPORT_KEEP_HOURS"] * 3600)
    job_id = uuid.uuid4().hex
    _job_dir(job_id).mkdir(parents=True, exist_ok=True)
    _write_status(job_id, {
        "id": job_id, "project_id": project.pk, "user_id": user_id, "format": options.format,
        "options": dataclasses.asdict(options), "state": "queued", "done": 0, "total": 0,
        "files": [], "rows": {}, "error": "", "started_at": time.time(), "queued_at": time.time(), "attempts": 1,
    })
    if run:
        from .tasks import export_job

        try:
            task_send(export_job, (job_id,))
        except Exception:
            shutil.rmtree(_job_dir(job_id), ignore_errors=True)
            raise
    return job_id
