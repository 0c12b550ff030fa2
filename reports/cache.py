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

Django's cache framework, alias "default": per-process LocMemCache unless settings name another.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from typing import Any

from django.conf import settings
from django.core.cache import caches
from django.db.models import Count, Max

from annotate.models import Adjudication, ChecklistQuestion, Preference, Project, Rater, Rating, Standing

from .build import build_report
from .selectors import ReportFilters

CACHE_ALIAS = "default"
TIMEOUT_SECONDS = 60 * 60
VERSION = 6  # bump when the report's content changes shape


def annotations_fingerprint(project: Project) -> list[Any]:
    """A few aggregate queries; any change to the project's annotations changes the result."""
    out: list[Any] = []
    for qs in (
        Rating.objects.filter(response__item__project=project),
        Preference.objects.filter(pair__item__project=project),
    ):
        agg = qs.order_by().aggregate(n=Count("id"), top=Max("id"), last=Max("updated_at"))
        out.append([agg["n"], agg["top"], agg["last"].isoformat() if agg["last"] else None])
    # The judge cards read judgments too (valid mass, repetition, throughput): an unparseable
    # answer writes no annotation but changes them.
    from judges.models import Judgment

    judged = Judgment.objects.filter(run__project=project).order_by().aggregate(n=Count("id"), last=Max("completed_at"))
    out.append([judged["n"], judged["last"].isoformat() if judged["last"] else None])
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
    return out


def report_cache_key(project: Project, filters: ReportFilters, options: dict[str, Any]) -> str:
    filt = {k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in dataclasses.asdict(filters).items()}
    payload = json.dumps(
        [VERSION, project.pk, filt, sorted(options.items()), annotations_fingerprint(project)],
        default=str,
        sort_keys=True,
    )
    return "reports:" + hashlib.sha256(payload.encode()).hexdigest()


def cached_report(project: Project, filters: ReportFilters | None = None, **options: Any) -> dict:
    """build_report(project, filters, **options), from the cache when nothing it reads changed.

    The report is cached with its details; callers that did not ask for them get it without.
    """
    filters = filters or ReportFilters()
    details = bool(options.pop("details", False))
    options.setdefault("rounds", settings.CONCORDANCE["BOOTSTRAP_ROUNDS"])
    options = {k: v for k, v in options.items() if v is not None}
    cache = caches[CACHE_ALIAS]
    key = report_cache_key(project, filters, options)
    report = cache.get(key)
    if report is None:
        report = build_report(project, filters, details=True, **options)
        cache.set(key, report, timeout=TIMEOUT_SECONDS)
    if not details:
        report = {k: v for k, v in report.items() if k != "details"}
    return report
