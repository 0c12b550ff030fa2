"""Reads for judges and runs. Who may read which judge or run: annotate.access."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from django.db.models import Avg, Count
from django.utils import timezone

from .models import Judge, Judgment, Run


def judge_model_found(*, judge: Judge) -> tuple[bool | None, str]:
    """Whether this machine holds the judge's model, without downloading anything: (found, what).

    None for an `openai` judge (the server holds it). Workers on other machines may hold a model
    this one lacks, so the judge page shows this as a hint, never as an error.
    """
    if judge.backend != Judge.Backend.TRANSFORMERS:
        return None, f"served by {judge.base_url or 'an OpenAI-compatible server (no URL set)'}"
    path = Path(judge.model_ref).expanduser()
    if path.is_dir():
        wanted = path / judge.gguf_file if judge.gguf_file else path / "config.json"
        if wanted.is_file():
            return True, f"local directory, {wanted.name} present"
        return False, f"local directory without {wanted.name}"
    if path.exists():
        return False, "a file, not a directory (put a GGUF file's folder in model and its name in GGUF file)"
    from huggingface_hub import try_to_load_from_cache

    try:
        cached = try_to_load_from_cache(
            judge.model_ref, judge.gguf_file or "config.json", revision=judge.revision or None
        )
    except ValueError:  # not a valid hub id either
        cached = None
    if isinstance(cached, str):
        return True, "in this machine's Hugging Face cache"
    return False, ("neither a local directory nor a cached hub id on this machine; nothing is downloaded at "
                   "run time, so fetch it first (huggingface-cli download) where the workers run")


@dataclass
class Progress:
    total: int
    pending: int
    claimed: int
    ok: int
    unparseable: int
    error: int
    per_second: float | None
    eta_seconds: float | None
    recent_errors: list[str]
    # Mean share of the next-token probability the valid answers held, over the judgments that
    # read token probabilities: how much the judge answers inside the scale at all.
    mean_valid_mass: float | None = None
    # A worker has not planned the run's judgments yet (judges.tasks.run_plan).
    planning: bool = False

    @property
    def done(self) -> int:
        return self.ok + self.unparseable + self.error

    @property
    def percent(self) -> int:
        if self.planning:
            return 0
        return int(100 * self.done / self.total) if self.total else 100


def run_progress(*, run: Run) -> Progress:
    counts = dict(Judgment.objects.filter(run=run).values_list("status").annotate(n=Count("id")))
    done = sum(counts.get(s, 0) for s in ("ok", "unparseable", "error"))
    end = run.finished_at or timezone.now()
    elapsed = (end - run.started_at).total_seconds() if run.started_at else 0.0
    per_second = done / elapsed if done and elapsed > 0 else None
    remaining = run.total - done
    eta = remaining / per_second if per_second and not run.is_finished else None
    errors = list(
        Judgment.objects.filter(run=run, status=Judgment.Status.ERROR)
        .order_by("-completed_at").values_list("error", flat=True)[:5]
    )
    mass = Judgment.objects.filter(run=run, valid_mass__isnull=False).aggregate(mean=Avg("valid_mass"))["mean"]
    return Progress(
        total=run.total, pending=counts.get("pending", 0), claimed=counts.get("claimed", 0),
        ok=counts.get("ok", 0), unparseable=counts.get("unparseable", 0), error=counts.get("error", 0),
        per_second=per_second, eta_seconds=eta, recent_errors=errors, mean_valid_mass=mass,
        planning=run.planned_at is None and not run.is_finished,
    )
