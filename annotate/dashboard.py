"""Reads for the researcher pages: progress, annotator quality from gold, annotations per day,
and every annotation of one pair. Each function touches the ORM in a few aggregate queries."""

from __future__ import annotations

import statistics
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from django.db.models import Count, Q, QuerySet
from django.db.models.functions import TruncDate

from .models import (
    Assignment,
    Attribute,
    Item,
    Pair,
    Preference,
    Project,
    Rater,
    Rating,
    Response,
)
from .verdicts import (
    PreferenceReading,
    gold_preference_passes,
    gold_rating_errors,
    gold_rating_passes,
    preference_reading,
)


@dataclass
class ProtocolProgress:
    protocol: str
    tasks: int
    slots: int
    done: int
    claimed: int
    checks: int

    @property
    def percent(self) -> int:
        return 100 if self.slots == 0 else min(100, round(100 * self.done / self.slots))


@dataclass
class AnnotatorRow:
    rater: Rater
    rating_done: int = 0
    ranking_done: int = 0
    skipped: int = 0
    median_seconds: float | None = None
    last_active: datetime | None = None
    gold_total: int = 0
    gold_passed: int = 0
    attention_total: int = 0
    attention_passed: int = 0
    gold_abs_errors: list[float] = field(default_factory=list)

    @property
    def gold_rate(self) -> int | None:
        return None if not self.gold_total else round(100 * self.gold_passed / self.gold_total)

    @property
    def attention_rate(self) -> int | None:
        return None if not self.attention_total else round(100 * self.attention_passed / self.attention_total)

    @property
    def gold_mae(self) -> float | None:
        return None if not self.gold_abs_errors else round(statistics.fmean(self.gold_abs_errors), 2)


def protocol_progress(*, project: Project) -> list[ProtocolProgress]:
    rows = []
    specs: list[tuple[str, QuerySet[Any], str]] = []
    if project.uses_rating:
        specs.append((Assignment.Protocol.RATING, Response.objects.filter(item__project=project), "response"))
    if project.uses_ranking:
        specs.append((Assignment.Protocol.RANKING, Pair.objects.filter(item__project=project), "pair"))
    for protocol, tasks_qs, rel in specs:
        counts = tasks_qs.aggregate(
            tasks=Count("pk", filter=Q(item__role=Item.Role.TASK)),
            checks=Count("pk", filter=~Q(item__role=Item.Role.TASK)),
        )
        assignments = Assignment.objects.filter(project=project, protocol=protocol, **{f"{rel}__item__role": Item.Role.TASK})
        status = dict(assignments.values_list("status").annotate(n=Count("pk")).values_list("status", "n"))
        rows.append(
            ProtocolProgress(
                protocol=protocol, tasks=counts["tasks"], slots=counts["tasks"] * project.overlap,
                done=status.get(Assignment.Status.DONE, 0), claimed=status.get(Assignment.Status.CLAIMED, 0),
                checks=counts["checks"],
            )
        )
    return rows


def annotator_rows(*, project: Project) -> list[AnnotatorRow]:
    """Per human annotator: work done, time, and how they did on gold and attention checks."""
    rows: dict[int, AnnotatorRow] = {}
    assignments = Assignment.objects.filter(project=project).select_related("rater")
    times: dict[int, list[int]] = defaultdict(list)
    for a in assignments.only("rater", "protocol", "status", "time_on_task_ms", "completed_at"):
        row = rows.setdefault(a.rater_id, AnnotatorRow(rater=a.rater))
        if a.status == Assignment.Status.DONE:
            if a.protocol == Assignment.Protocol.RATING:
                row.rating_done += 1
            else:
                row.ranking_done += 1
            if a.time_on_task_ms is not None:
                times[a.rater_id].append(a.time_on_task_ms)
        elif a.status == Assignment.Status.SKIPPED:
            row.skipped += 1
        if a.completed_at and (row.last_active is None or a.completed_at > row.last_active):
            row.last_active = a.completed_at
    for rater_id, ms in times.items():
        rows[rater_id].median_seconds = round(statistics.median(ms) / 1000, 1)

    checks = ~Q(response__item__role=Item.Role.TASK)
    ratings = Rating.objects.filter(
        checks, response__item__project=project, rater__kind=Rater.Kind.HUMAN, response__gold_ratings__isnull=False
    ).values_list("rater_id", "rater__name", "response_id", "response__item__role", "attribute__name", "value",
                  "response__gold_ratings")
    rated: dict[tuple[int, int], dict] = {}
    for rater_id, _name, response_id, role, attribute, value, gold in ratings:
        entry = rated.setdefault((rater_id, response_id), {"role": role, "values": {}, "gold": gold})
        entry["values"][attribute] = value
    preferences = Preference.objects.filter(
        ~Q(pair__item__role=Item.Role.TASK), pair__item__project=project, rater_kind=Rater.Kind.HUMAN,
        pair__gold_strength__isnull=False,
    ).values_list("rater_id", "pair__item__role", "strength", "pair__gold_strength")
    results: list[tuple[int, str, bool, float]] = []
    # The pass rule is annotate.verdicts' (the training round and the continuous check use it too).
    for (rater_id, _), entry in rated.items():
        passed = gold_rating_passes(entry["values"], entry["gold"])
        if passed is not None:
            results.append((rater_id, entry["role"], passed, statistics.fmean(gold_rating_errors(entry["values"], entry["gold"]))))
    for rater_id, role, strength, gold in preferences:
        verdict_passed = gold_preference_passes(strength, gold)
        if verdict_passed is None or gold is None:
            continue
        results.append((rater_id, role, verdict_passed, abs(strength - gold)))
    raters = {r.pk: r for r in Rater.objects.filter(pk__in={r[0] for r in results} - set(rows))}
    for rater_id, role, passed, error in results:
        row = rows.setdefault(rater_id, AnnotatorRow(rater=raters.get(rater_id) or Rater.objects.get(pk=rater_id)))
        if role == Item.Role.GOLD:
            row.gold_total += 1
            row.gold_passed += passed
            row.gold_abs_errors.append(error)
        else:
            row.attention_total += 1
            row.attention_passed += passed
    return sorted(rows.values(), key=lambda r: r.rater.name)


def annotations_per_day(*, project: Project, days: int = 30) -> list[dict]:
    """Rated responses and preferences per day, humans and judges apart, newest day first."""
    per_day: dict[date, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    first_attribute = Attribute.objects.filter(project=project).order_by("position", "pk").first()
    if first_attribute is not None:
        # One rating of the first attribute per rated response: a count of rated responses.
        rating_days = (
            Rating.objects.filter(attribute=first_attribute)
            .annotate(day=TruncDate("created_at"))
            .values("day", "rater__kind")
            .annotate(n=Count("pk"))
        )
        for row in rating_days:
            per_day[row["day"]][f"rating_{row['rater__kind']}"] += row["n"]
    preference_days = (
        Preference.objects.filter(pair__item__project=project)
        .annotate(day=TruncDate("created_at"))
        .values("day", "rater_kind")
        .annotate(n=Count("pk"))
    )
    for prow in preference_days:
        per_day[prow["day"]][f"ranking_{prow['rater_kind']}"] += prow["n"]
    ordered = sorted(per_day.items(), reverse=True)[:days]
    peak = max((sum(v.values()) for _, v in ordered), default=0) or 1
    return [
        {
            "day": day,
            "rating_human": v["rating_human"], "rating_judge": v["rating_judge"],
            "ranking_human": v["ranking_human"], "ranking_judge": v["ranking_judge"],
            "total": sum(v.values()), "percent": round(100 * sum(v.values()) / peak),
        }
        for day, v in ordered
    ]


def pairs_page(*, project: Project, page: int, per_page: int = 50) -> tuple[list[Pair], bool]:
    qs = (
        Pair.objects.filter(item__project=project)
        .select_related("item")
        .annotate(
            humans=Count("preferences", filter=Q(preferences__rater_kind=Rater.Kind.HUMAN)),
            judges=Count("preferences", filter=Q(preferences__rater_kind=Rater.Kind.JUDGE)),
        )
        .order_by("-humans", "pk")
    )
    start = (page - 1) * per_page
    rows: list[Pair] = list(qs[start : start + per_page + 1])
    return rows[:per_page], len(rows) > per_page


@dataclass
class PairAnnotation:
    rater: Rater
    strength: int | None  # None for a verdict-only preference (annotate.verdicts)
    shown_order: str
    label: str
    justification: str
    time_on_task_ms: int | None
    created_at: object
    probabilities: dict | None
    reading: PreferenceReading


def pair_annotations(*, pair: Pair) -> dict:
    """Every preference on the pair and every rating of its two responses, humans and judges."""
    preferences = [
        PairAnnotation(
            rater=p.rater, strength=reading.strength, shown_order=p.shown_order, label=reading.summary,
            justification=p.justification, time_on_task_ms=p.time_on_task_ms, created_at=p.created_at,
            probabilities=p.probabilities, reading=reading,
        )
        for p in Preference.objects.filter(pair=pair).select_related("rater").order_by("rater__kind", "rater__name", "shown_order")
        for reading in [preference_reading(strength=p.strength, verdict_only=p.verdict_only, probabilities=p.probabilities)]
    ]
    attributes = list(Attribute.objects.filter(project_id=pair.item.project_id).order_by("position", "pk"))
    table: dict[int, dict] = {}
    for rating in Rating.objects.filter(response_id__in=[pair.response_a_id, pair.response_b_id]).select_related("rater"):
        row = table.setdefault(rating.rater_id, {"rater": rating.rater, "a": {}, "b": {}})
        side = "a" if rating.response_id == pair.response_a_id else "b"
        row[side][rating.attribute_id] = rating.value
    rating_rows = [
        {
            "rater": row["rater"],
            "cells": [(row["a"].get(attr.pk), row["b"].get(attr.pk)) for attr in attributes],
        }
        for row in sorted(table.values(), key=lambda r: (r["rater"].kind, r["rater"].name))
    ]
    return {"preferences": preferences, "attributes": attributes, "rating_rows": rating_rows}
