"""Reads for judges and runs. Who may read which judge or run: annotate.access."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from django.db.models import Avg, Count, Max, Min, Q, QuerySet
from django.urls import reverse
from django.utils import timezone

from annotate.models import Pair

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
    # Finished units (judgments, or answers for a generate run) per second, measured from the
    # run's first claim to its latest finished unit; None until something finished.
    per_second: float | None
    eta_seconds: float | None
    recent_errors: list[str]
    # Mean share of the next-token probability the valid answers held, over the judgments that
    # read token probabilities: how much the judge answers inside the scale at all.
    mean_valid_mass: float | None = None
    # A worker has not planned the run's judgments yet (judges.tasks.run_plan).
    planning: bool = False
    kind: str = Run.Kind.JUDGE
    # A generate run: answer tokens written so far (in flight included) and their rate.
    tokens: int = 0
    tokens_per_second: float | None = None
    # True when the ETA is an upper bound (no answer finished yet: every row may use its whole
    # token budget).
    eta_is_bound: bool = False
    # Seconds since the first batch was claimed (till the run finished, for a finished run).
    working_seconds: float | None = None

    @property
    def done(self) -> int:
        return self.ok + self.unparseable + self.error

    @property
    def percent(self) -> int:
        if self.planning:
            return 0
        return int(100 * self.done / self.total) if self.total else 100

    @property
    def unit(self) -> str:
        return "answers" if self.kind == Run.Kind.GENERATE else "judgments"


def rate_and_eta(
    *, run: Run, done: int, begin: datetime | None, last: datetime | None, now: datetime
) -> tuple[float | None, float | None]:
    """Units per second and seconds left, for the run page and the runs API alike.

    The rate as of the latest finished unit (not "now"): between two batches it would sink
    while nothing can finish, and the ETA would climb for no reason."""
    if not (done and begin is not None and last is not None and (last - begin).total_seconds() > 0):
        return None, None
    per_second = done / (last - begin).total_seconds()
    if run.is_finished:
        return per_second, None
    return per_second, max(0.0, max(0, run.total - done) / per_second - (now - last).total_seconds())


def run_progress(*, run: Run) -> Progress:
    judgments = Judgment.objects.filter(run=run)
    counts = dict(judgments.values_list("status").annotate(n=Count("id")))
    done = sum(counts.get(s, 0) for s in ("ok", "unparseable", "error"))
    times = judgments.aggregate(first=Min("claimed_at"), last=Max("completed_at"))
    now = timezone.now()
    begin = times["first"] or run.started_at
    last = times["last"]
    remaining = max(0, run.total - done)
    per_second, eta = rate_and_eta(run=run, done=done, begin=begin, last=last, now=now)
    working = None
    if begin is not None and times["first"] is not None and (done or counts.get("claimed")):
        working = max(0.0, ((run.finished_at or now) - begin).total_seconds())
    tokens = run.generated_tokens if run.kind == Run.Kind.GENERATE else 0
    tokens_per_second = tokens / working if tokens and working else None
    bound = False
    if run.kind == Run.Kind.GENERATE and not run.is_finished and per_second is None and tokens_per_second:
        # Nothing finished yet: every unfinished answer may use its whole budget.
        from .services import judge_decoding

        budget = remaining * judge_decoding(judge=run.judge).max_new_tokens
        eta, bound = max(0.0, budget - tokens) / tokens_per_second, True
    errors = list(
        judgments.filter(status=Judgment.Status.ERROR).order_by("-completed_at").values_list("error", flat=True)[:5]
    )
    mass = judgments.filter(valid_mass__isnull=False).aggregate(mean=Avg("valid_mass"))["mean"]
    return Progress(
        total=run.total, pending=counts.get("pending", 0), claimed=counts.get("claimed", 0),
        ok=counts.get("ok", 0), unparseable=counts.get("unparseable", 0), error=counts.get("error", 0),
        per_second=per_second, eta_seconds=eta, recent_errors=errors, mean_valid_mass=mass,
        planning=run.planned_at is None and not run.is_finished,
        kind=run.kind, tokens=tokens, tokens_per_second=tokens_per_second, eta_is_bound=bound,
        working_seconds=working,
    )


@dataclass
class RunRow:
    """One finished judgment (or answer) as the run page lists it: what it was about, in words,
    and where to read it (the pair, or a pair holding the response)."""

    judgment: Judgment
    task: str
    url: str | None


def run_rows(*, run: Run, limit: int = 25) -> list[RunRow]:
    """The latest `limit` finished units, listed in the run's plan order (item, response and
    attribute, pair and shown order): a batch finishes all at once, so "latest first" alone
    would shuffle the rows of one batch."""
    latest = list(
        run.judgments.exclude(status__in=[Judgment.Status.PENDING, Judgment.Status.CLAIMED])
        .order_by("-completed_at", "-id").values_list("id", flat=True)[:limit]
    )
    judgments = list(
        Judgment.objects.filter(id__in=latest).order_by("id")
        .select_related("item", "attribute", "response", "generated", "pair__response_a", "pair__response_b")
    )
    responses = {j.response_id for j in judgments if j.response_id} | {j.generated_id for j in judgments if j.generated_id}
    pair_of: dict[int, int] = {}
    for pair_id, a, b in Pair.objects.filter(Q(response_a_id__in=responses) | Q(response_b_id__in=responses)).order_by(
        "id"
    ).values_list("id", "response_a_id", "response_b_id"):
        pair_of.setdefault(a, pair_id)
        pair_of.setdefault(b, pair_id)
    rows = []
    for j in judgments:
        item = j.item.external_id
        if j.pair_id:
            first = "A" if j.shown_order == "ab" else "B"
            probe = f" · probe {j.variant}" if j.variant else ""  # judges.probes: what was appended where
            rows.append(RunRow(j, f"{item} · pair #{j.pair_id}, {first} shown first{probe}", _pair_url(j.pair_id)))
        elif j.question_id and j.response is not None:
            rows.append(RunRow(j, f"{item} · response {j.response.external_id} · checklist question {j.question_id}",
                               _pair_url(pair_of.get(j.response.pk))))
        elif j.attribute_id and j.response is not None:
            rows.append(RunRow(j, f"{item} · response {j.response.external_id} · {j.attribute.name}",  # type: ignore[union-attr]
                               _pair_url(pair_of.get(j.response.pk))))
        else:
            url = _pair_url(pair_of.get(j.generated_id)) if j.generated_id else None
            rows.append(RunRow(j, f"{item}", url))
    return rows


def _pair_url(pair_id: int | None) -> str | None:
    return reverse("annotate_pair", kwargs={"pair_id": pair_id}) if pair_id else None


def runs_with_counts(runs: QuerySet[Run]) -> QuerySet[Run]:
    """Runs with their judgment counts by status (n_pending ... n_error), mean valid mass and
    first claim / last completion, in the list's one query (run_progress per row was N+1): the
    runs table and the runs API both read them."""
    by = {f"n_{s}": Count("judgments", filter=Q(judgments__status=s)) for s in Judgment.Status.values}
    return runs.annotate(
        **by, mean_mass=Avg("judgments__valid_mass"),
        first_claim=Min("judgments__claimed_at"), last_done=Max("judgments__completed_at"),
    )
