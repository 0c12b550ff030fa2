"""The report, cached: pages and the JSON API recompute only when the annotations change.

A whole report over a large project takes seconds (bench/reports.py), and every report page,
tab switch and API call needs it. The cache key is the project, the filters and options, and a
fingerprint of what the report reads that is cheap to ask the database for: per annotation table
(Rating, Preference) of the project, the row count, the largest id and the latest `updated_at`
(a new row raises the count and the id, an edit or upsert moves `updated_at`, a deletion lowers
the count); the raters' names and models (labels and self-preference depend on them); and the
project's attributes. Judge runs write through the same two tables, so a run's progress changes
the fingerprint too. Item or response edits (roles, texts) are not in it and show after the
timeout.

Incremental (reports.incremental): beside each report this process keeps the report's state (the
long table, every figure's per-item bootstrap sums) under a key without the fingerprint. When
the fingerprint moved only because annotations were added (per table: the rows up to the last
seen id are as many as before and none was updated since; the raters, exclusions and options
are the same), only the rows above the last seen ids are loaded and absorbed; judgments, runs
and reviewers' decisions are reloaded whole (they are not annotation rows). Anything else (an
edit, an upsert, a rater renamed or excluded (a new rater is fine), a checklist added) is a full
rebuild, and so is a state whose last full build is older than TIMEOUT_SECONDS (item and
response edits are not in the fingerprint).

The states are kept live in the process (KEPT_STATES), not in the report cache: the default
cache is a file cache shared by the web workers, which pickles and zlib-compresses what it
stores, and a 1M-annotation state (278 MB pickled) took 10.5 s to store there and 1.1 s to read
back (measured here), where absorbing 10,000 annotations into it takes under 1 s: every absorb
cost ten times a rebuild. Live, an update reads and stores nothing. What they may take in all is
settings.CONCORDANCE["REPORT_STATE_MAX_MB"] per process (512 MB by default; about 272 MB at
1M annotations), least recently used out first; a state that alone exceeds it is not kept
(one that could not fit, by its annotation count, is not even built: the plain report is,
without the state's sums and memo). An evicted or expired state, or a request served by another
web worker than the one that kept it, means a full rebuild; the report says which it was
(details.incremental).

Django's cache framework, alias "default": per-process LocMemCache unless settings name another.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
from django.conf import settings
from django.core.cache import caches
from django.db.models import Count, Max, Q

from annotate.lru import BoundedLRU
from annotate.models import Adjudication, ChecklistQuestion, Preference, Project, Rater, Rating, Standing

from .build import finish_report, report_from_table, report_inputs, report_options, table_filters
from .incremental import ReportState, absorb, build_state, worth_keeping
from .selectors import ReportFilters, annotations_table

CACHE_ALIAS = "default"
TIMEOUT_SECONDS = 60 * 60
VERSION = 7  # bump when the report's content changes shape


def annotations_fingerprint(project: Project) -> list[Any]:
    """A few aggregate queries; any change to the project's annotations changes the result."""
    return fingerprint_since(project, None)[0]


def fingerprint_since(project: Project, seen: list[Any] | None) -> tuple[list[Any], bool]:
    """(annotations_fingerprint(project), whether the annotation rows seen at `seen` (per table
    [count, top id, latest updated_at], a kept state's marks) are all still there, unchanged:
    nothing deleted, edited or upserted since, so what changed is rows above the top ids).
    The second is read in the fingerprint's own scans (a filtered count and max beside the
    whole ones): asked for separately, it scanned the project's annotations again (0.28 s of an
    absorbed page view at 1M annotations, measured here)."""
    out: list[Any] = []
    unchanged = seen is not None
    for qs, (n, top, last) in zip(_annotation_tables(project), seen or [(None, None, None)] * 2, strict=True):
        aggregates: dict[str, Any] = dict(n=Count("id"), top=Max("id"), last=Max("updated_at"))
        if top is not None:  # nothing seen in a table: every row of it is new
            upto = Q(id__lte=top)
            aggregates.update(n_seen=Count("id", filter=upto), last_seen=Max("updated_at", filter=upto))
        agg = qs.order_by().aggregate(**aggregates)
        out.append([agg["n"], agg["top"], _iso(agg["last"])])
        if top is not None:
            unchanged = unchanged and [agg["n_seen"], _iso(agg["last_seen"])] == [n, last]
    # The judge cards read judgments too (valid mass, repetition, throughput): an unparseable
    # answer writes no annotation but changes them.
    from judges.models import Judgment

    judged = Judgment.objects.filter(run__project=project).order_by().aggregate(n=Count("id"), last=Max("completed_at"))
    out.append([judged["n"], _iso(judged["last"])])
    raters = hashlib.sha256(
        json.dumps(list(Rater.objects.order_by("id").values_list("id", "kind", "name", "model"))).encode()
    ).hexdigest()
    out.append(raters)
    out.append(list(project.attributes.order_by("position", "id").values_list("name", flat=True)))
    # Who is excluded (annotate.training) and what reviewers decided (adjudicated gold).
    out.append(list(Standing.objects.filter(project=project).order_by("rater_id").values_list("rater_id", "state")))
    adjudications = Adjudication.objects.filter(pair__item__project=project).order_by()
    out.append(list(adjudications.aggregate(n=Count("id"), top=Max("id")).values()))
    out.append(project.gold_source)
    # Which items have a checklist splits the checklist section (a question added or retired).
    agg = ChecklistQuestion.objects.filter(item__project=project, retired_at__isnull=True).order_by().aggregate(
        n=Count("id"), top=Max("id"))
    out.append([agg["n"], agg["top"]])
    # Judge qualifications (the "not qualified" marks) are appended, never edited; panel members
    # decide the panels section.
    from judges.models import JudgeQualification, Panel

    out.append(list(JudgeQualification.objects.filter(project=project).order_by().aggregate(n=Count("id"), top=Max("id")).values()))
    out.append(list(Panel.members.through.objects.filter(panel__project=project).order_by("panel_id", "judge_id")
                    .values_list("panel_id", "judge_id")))  # fmt: skip
    return out, unchanged


def _annotation_tables(project: Project) -> list[Any]:
    return [Rating.objects.filter(response__item__project=project), Preference.objects.filter(pair__item__project=project)]


def _marks(project: Project, fingerprint: list[Any]) -> tuple[list[Any], list[Any]]:
    """(the annotation tables' [count, top id, latest updated_at], what forces a rebuild when it
    changes: raters' names and models, in id order, and exclusions). The rest of the
    fingerprint (judgments, adjudications, attributes, checklists, gold source) is reloaded or
    lies in the options."""
    raters = [list(r) for r in Rater.objects.order_by("id").values_list("id", "kind", "name", "model")]
    return fingerprint[:2], [raters, fingerprint[5]]


def _same_guard(old: list[Any], new: list[Any]) -> bool:
    """Raters added since (a new judge, a new annotator) label only new rows: the old raters
    must be the first ones now, unchanged."""
    return new[0][: len(old[0])] == old[0] and old[1] == new[1]


def _iso(moment: Any) -> str | None:
    return moment.isoformat() if moment else None


def report_cache_key(
    project: Project, filters: ReportFilters, options: dict[str, Any], fingerprint: list[Any] | None = None
) -> str:
    filt = {k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in dataclasses.asdict(filters).items()}
    fingerprint = annotations_fingerprint(project) if fingerprint is None else fingerprint
    payload = json.dumps(
        [VERSION, project.pk, filt, sorted(options.items()), fingerprint],
        default=str,
        sort_keys=True,
    )
    return "reports:" + hashlib.sha256(payload.encode()).hexdigest()


def state_cache_key(project: Project, filters: ReportFilters, options: dict[str, Any]) -> str:
    filt = {k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in dataclasses.asdict(filters).items()}
    payload = json.dumps([VERSION, project.pk, filt, sorted(options.items())], default=str, sort_keys=True)
    return "reports:state:" + hashlib.sha256(payload.encode()).hexdigest()


def cached_report(project: Project, filters: ReportFilters | None = None, **options: Any) -> dict:
    """build_report(project, filters, **options), from the cache when nothing it reads changed,
    updated from the kept state when only annotations were added.

    The report is cached with its details; callers that did not ask for them get it without.
    """
    filters = filters or ReportFilters()
    details = bool(options.pop("details", False))
    options.setdefault("rounds", settings.CONCORDANCE["BOOTSTRAP_ROUNDS"])
    options = {k: v for k, v in options.items() if v is not None}
    cache = caches[CACHE_ALIAS]
    skey = state_cache_key(project, filters, options)
    kept = KEPT_STATES.get(skey)
    fingerprint, only_added = fingerprint_since(project, kept[0] if kept is not None else None)
    key = report_cache_key(project, filters, options, fingerprint)
    report = cache.get(key)
    if report is None:
        report = _updated_report(project, filters, options, fingerprint, skey, kept if only_added else None)
        cache.set(key, report, timeout=TIMEOUT_SECONDS)
    if not details:
        report = {k: v for k, v in report.items() if k != "details"}
    return report


def _updated_report(
    project: Project, filters: ReportFilters, options: dict[str, Any], fingerprint: list[Any], skey: str,
    kept: tuple[list[Any], list[Any], ReportState] | None,
) -> dict:
    """The report with its details: absorbed into the kept state (`kept`, given only when
    nothing but annotations was added since it was computed: fingerprint_since) when its raters
    and options still hold, else built in full (and its state kept under `skey`)."""
    opts = report_options(project, filters, {**options, "details": True})
    marks, guard = _marks(project, fingerprint)
    state: ReportState | None = None
    if kept is not None:
        old_marks, old_guard, old_state = kept
        # Item and response edits (roles, texts) are not in the fingerprint: a state is rebuilt
        # in full at least every TIMEOUT_SECONDS, as the cached report always was.
        fresh = time.time() - old_state.built_at < TIMEOUT_SECONDS
        if fresh and _same_guard(old_guard, guard) and old_state.opts == opts:
            after = tuple(top or 0 for _, top, _ in old_marks)
            new_rows = annotations_table(project, table_filters(filters), apply_rater_group=False,
                                         after_ids=(after[1], after[0]))  # fmt: skip
            inputs, adjudicated = report_inputs(project, opts, known=old_state.inputs)
            state = absorb(old_state, new_rows, inputs=inputs, adjudicated=adjudicated)
            state.report = _stamped(state.report, state, old_state)
    max_bytes = KEPT_STATES.budget
    if state is None:
        table = annotations_table(project, table_filters(filters), apply_rater_group=False)
        inputs, adjudicated = report_inputs(project, opts)
        if not worth_keeping(len(table), max_bytes):
            # Too large to keep: the plain build, without the state's sums and memo beside it.
            KEPT_STATES.discard(skey)
            report = report_from_table(table, opts, inputs, adjudicated=adjudicated)
            report["details"]["incremental"] = None
            return finish_report(project, report, opts)
        state = build_state(table, opts, inputs, adjudicated)
        state.report = _stamped(state.report, state, None)
    KEPT_STATES.put(skey, (marks, guard, state), state_bytes(state))
    report = dict(state.report)
    report["details"] = dict(report["details"])  # finish_report adds to it; the state's stays as it was
    return finish_report(project, report, opts)


def _stamped(report: dict, state: ReportState, previous: ReportState | None) -> dict:
    """details.incremental: how this report came about (a full build, or N new annotations
    absorbed into the one computed at ...)."""
    report["details"]["incremental"] = (
        None if previous is None
        else {"new_annotations": state.absorbed, "base_computed_at": previous.computed_at,
              "base_annotations": len(previous.table),
              # (computed_by names the code's functions: for the benches and tests, not the report)
              **{k: v for k, v in state.stats.items() if k != "computed_by"}}
    )  # fmt: skip
    return report


def state_bytes(state: ReportState) -> int:
    """What a kept state holds, about: the bytes of its arrays, frames and sparse sums (each
    shared object once) and a little per container. Within 2% of its pickle's size at 1M
    annotations (272 MB against 278), in 0.02 s where pickling it took 0.19 (measured here)."""
    return _nbytes(state, set())


def _nbytes(obj: Any, seen: set[int]) -> int:
    if id(obj) in seen:
        return 0
    seen.add(id(obj))
    if isinstance(obj, np.ndarray):
        # A view holds its base's memory: counted once, by the base.
        return _nbytes(obj.base, seen) if isinstance(obj.base, np.ndarray) else int(obj.nbytes)
    if isinstance(obj, pd.Index):
        return int(obj.memory_usage(deep=False))
    if isinstance(obj, pd.DataFrame | pd.Series):
        return int(np.sum(obj.memory_usage(index=True, deep=False)))
    if sp.issparse(obj):
        return sum(_nbytes(getattr(obj, name), seen) for name in ("data", "indices", "indptr", "row", "col")
                   if hasattr(obj, name))  # fmt: skip
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return 64 + sum(_nbytes(getattr(obj, f.name), seen) for f in dataclasses.fields(obj))
    if isinstance(obj, dict):
        return 64 + sum(_nbytes(k, seen) + _nbytes(v, seen) for k, v in obj.items())
    if isinstance(obj, list | tuple | set | frozenset):
        return 56 + sum(_nbytes(v, seen) for v in obj)
    if isinstance(obj, str | bytes):
        return 49 + len(obj)
    return 16


# Report states by state_cache_key, live in this process (no pickling: see the module's docstring),
# under REPORT_STATE_MAX_MB in all and the cache's timeout (annotate.lru). A state is never
# changed once kept (absorb returns a new one), so a reader may use it while another request
# replaces it.
KEPT_STATES: BoundedLRU[str, tuple[Any, Any, ReportState]] = BoundedLRU(
    lambda: settings.CONCORDANCE["REPORT_STATE_MAX_MB"] * 2**20, max_age=TIMEOUT_SECONDS)
