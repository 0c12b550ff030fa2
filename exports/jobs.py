"""Export jobs for the export page: run in a background thread, write under VAR_DIR/exports/<id>/
and keep their state in a status.json the page polls.

A thread rather than a Celery task: an export is I/O against our own database and disk, needs no
GPU queue, and the page must work on a bare `make run` where no worker may be listening. The
status file is replaced atomically, so a poll never reads half a write.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import threading
import time
import traceback
import uuid
from pathlib import Path

from django.conf import settings
from django.db import connection

from annotate.errors import ConcordanceError
from annotate.models import Project

from .filenames import export_stem
from .services import ExportOptions, export_options_validate, export_write

# A poll rewrites nothing; the writer thread updates status at most this often.
PROGRESS_EVERY_S = 0.5


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


def export_job_run(*, job_id: str, project: Project, options: ExportOptions) -> None:
    """The body of a job (the thread's target; tests call it directly)."""
    status = export_job_status(job_id=job_id) or {}
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
        # The thread's own connection: Django opens one per thread and never closes it for us.
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
    """Validate, record the job and start its thread; returns the job id. Old finished jobs are
    pruned first, so the exports folder holds about a day of files, not every export ever."""
    options = export_options_validate(options=options)
    export_jobs_prune(keep_seconds=settings.CONCORDANCE["EXPORT_KEEP_HOURS"] * 3600)
    job_id = uuid.uuid4().hex
    _job_dir(job_id).mkdir(parents=True, exist_ok=True)
    _write_status(job_id, {
        "id": job_id, "project_id": project.pk, "user_id": user_id, "format": options.format,
        "options": dataclasses.asdict(options), "state": "queued", "done": 0, "total": 0,
        "files": [], "rows": {}, "error": "", "started_at": time.time(),
    })
    if run:
        threading.Thread(
            target=export_job_run, kwargs={"job_id": job_id, "project": project, "options": options},
            name=f"export-{job_id[:8]}", daemon=True,
        ).start()
    return job_id
