"""The judge report card (on the judge's page, /judges/ID/, and as JSON) and the evaluator
leaderboard (a report page per project, and one across the caller's projects).

Every figure is the report's (reports/cards.py, cached per project by reports/cache.py); these
views pick the rows, sort them and draw the chart. Who sees what is annotate/access.py's: a
judge through judge_for, its projects among those the caller researches.
"""

from __future__ import annotations

import math
from typing import Any

from django.contrib.auth.decorators import login_required
from django.db.models import Q
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from annotate import access
from annotate.api import viewer_for
from annotate.models import Preference, Project, Rating
from judges.models import Judge, Run
from judges.probes import injection_summary, sanity_summary

from . import charts, glossary
from .cache import cached_report
from .charts import Bar
from .metrics.judge_card import POOLED_HUMANS

# The evaluator leaderboard's columns: (key in the row, heading, is a rate in [0, 1]).
EVALUATOR_COLUMNS: tuple[tuple[str, str, bool], ...] = (
    ("n", "n", False),
    ("accuracy", "accuracy", True),
    ("kappa", "κ vs gold", False),
    ("macro_f1", "macro F1", False),
    ("position_consistency", "position consistency", True),
    ("preference_fairness", "preference fairness", False),
    ("length_preference", "P(prefers longer)", True),
    ("valid_mass", "valid mass", True),
    ("judgments_per_second", "judgments / s", False),
)
SORT_KEYS = {key for key, _, _ in EVALUATOR_COLUMNS} | {"rater", "project"}


# --- the judge's card ------------------------------------------------------------------------


def judge_label(judge: Judge) -> str:
    """The judge's rater label, as the report names raters (kind:name)."""
    return f"{judge.rater.kind}:{judge.rater.name}"


def judged_projects(user: Any, judge: Judge) -> list[Project]:
    """The projects the caller researches (archived ones too: their reports stay) in which the
    judge has annotations."""
    projects = access.projects_visible(user, need="research", archived=True)
    rater = judge.rater
    with_prefs = Preference.objects.filter(rater=rater).values("pair__item__project")
    with_ratings = Rating.objects.filter(rater=rater).values("response__item__project")
    # One filter with OR, not a UNION: SQLite (the no-setup default) refuses a UNION of ordered
    # querysets, and projects_visible's queryset is ordered (the demo's judge page was a 500).
    return list(projects.filter(Q(pk__in=with_prefs) | Q(pk__in=with_ratings)).distinct().order_by("name"))


def judge_card(user: Any, judge: Judge) -> dict[str, Any]:
    """{"judge", "judge_id", "projects": [{"project_id", "project", **the report's card}], "probes"}."""
    label = judge_label(judge)
    rows = []
    for project in judged_projects(user, judge):
        report = cached_report(project)
        card = next((c for c in report.get("judge_cards", []) if c["judge"] == label), None)
        if card is not None:
            rows.append({"project_id": project.pk, "project": project.name, **card})
    return {"judge": label, "judge_id": judge.pk, "projects": rows, "probes": judge_probes(user, judge)}


def judge_probes(user: Any, judge: Judge) -> list[dict[str, Any]]:
    """{"project_id", "project", **judges.probes' summary} for each probe run on the judge in a
    project the caller researches. Only the probes that ran (injection, sanity): the position
    probe's figure is the card's own position consistency, already on each project's row."""
    summaries: dict[str, Any] = {Run.Probe.INJECTION.value: injection_summary, Run.Probe.SANITY.value: sanity_summary}
    projects = access.projects_visible(user, need="research", archived=True)
    ran = (Run.objects.filter(judge=judge, project__in=projects).exclude(probe="")
           .values_list("project_id", "project__name", "probe").distinct().order_by("project__name", "probe"))  # fmt: skip
    return [{"project_id": project_id, "project": name, **summaries[probe](judge, project_id=project_id)}
            for project_id, name, probe in ran if probe in summaries]  # fmt: skip


def judge_calibrations(user: Any, judge: Judge) -> list[dict[str, Any]]:
    """Per project the caller researches where the judge has been qualified: its stored
    calibration (judges.JudgeQualification.reliability, binned by judges.calibration.reliability
    when it was measured) before and after, as two reliability diagrams and one table, with the
    ECE of each and n. The latest qualification per project; nothing is binned again here."""
    from judges.models import JudgeQualification

    projects = access.projects_visible(user, need="research", archived=True)
    latest: dict[int, JudgeQualification] = {}
    for q in (JudgeQualification.objects.filter(judge=judge, project__in=projects).select_related("project")
              .order_by("-at", "-id")):  # fmt: skip
        latest.setdefault(q.project_id, q)
    out = []
    for q in sorted(latest.values(), key=lambda q: q.project.name):
        stages = {when: q.reliability.get(when) for when in ("before", "after") if q.reliability.get(when)}
        if not stages:
            continue
        diagrams = [
            (when, charts.reliability_diagram(
                stage["bins"], lo=0.0,
                title=f"{when.capitalize()} calibration: ECE {stage['ece']:.3f}, n={q.n}"))
            for when, stage in stages.items()
        ]  # fmt: skip
        bins = stages.get("before", stages.get("after", {}))["bins"]
        table = [{"lo": b["lo"], "hi": b["hi"], **{when: stages[when]["bins"][k] for when in stages}}
                 for k, b in enumerate(bins)]  # fmt: skip
        out.append({"project_id": q.project_id, "project": q.project.name, "n": q.n, "at": q.at,
                    "ece_before": stages.get("before", {}).get("ece"), "ece_after": stages.get("after", {}).get("ece"),
                    "ece_ci": q.ece_ci, "diagrams": diagrams, "table": table})  # fmt: skip
    return out


def _bar(label: str, value: float | None, ci: list | None, note: str = "", n: int | None = None) -> Bar:
    lo, hi = (ci or [None, None])[:2]
    return Bar(label=label, value=value, lo=lo, hi=hi, note=note, n=n)


def judge_card_context(request: HttpRequest, judge: Judge) -> dict[str, Any]:
    """What templates/reports/_judge_card.html needs: the card, its chart and headline."""
    card = judge_card(request.user, judge)
    rows = card["projects"]
    lead = next((r for r in rows if r["accuracy"] is not None and not glossary.too_few(r["n"])),
                next((r for r in rows if r["accuracy"] is not None), None))  # fmt: skip
    chart = charts.bars_with_intervals(
        [_bar(r["project"], r["accuracy"], r["accuracy_ci"], f"n={r['n']}", r["n"]) for r in rows],
        title="Accuracy against human gold, per project (95% CI)", percent=True, digits=4,
        base_label="Bars start at 0%.",
    ) if rows else None  # fmt: skip
    headline = None
    if lead is not None:
        headline = {"value": lead["accuracy"], "n": lead["n"], "ci": lead["accuracy_ci"], "percent": True,
                    "too_few": glossary.too_few(lead["n"]), "project": lead["project"]}  # fmt: skip
    return {"card": card, "card_rows": rows, "card_chart": chart, "card_headline": headline,
            "card_probes": card["probes"], "min_n": glossary.MIN_N,
            "card_calibrations": judge_calibrations(request.user, judge)}  # fmt: skip


class JudgeCardApi(APIView):
    @extend_schema(
        responses={200: dict},
        summary="A judge's report card: per project it judged, agreement with human gold, position bias "
        "(consistency, first-position rate, preference fairness), repetition stability, length and "
        "self-preference, valid-answer mass and throughput, each rate with its 95% interval.",
    )
    def get(self, request: Request, judge_id: int) -> Response:
        viewer_for(request)  # 401 without credentials, as the rest of the API
        judge = access.judge_for(request.user, judge_id)
        return Response(judge_card(request.user, judge))


# --- the evaluator leaderboard ------------------------------------------------------------------


def evaluator_rows(report: dict, project: Project | None = None) -> list[dict[str, Any]]:
    """The judges' cards and the human reference rows of one report, on the same columns."""
    where = {"project_id": project.pk, "project": project.name} if project else {}
    rows = []
    for card in report.get("judge_cards", []):
        rows.append({**where, "rater": card["judge"], "kind": card["kind"], "reference": False,
                     "qualification": card.get("qualification"),
                     **{k: card.get(k) for k, _, _ in EVALUATOR_COLUMNS},
                     **{f"{k}_ci": card.get(f"{k}_ci") for k, _, _ in EVALUATOR_COLUMNS}})  # fmt: skip
    longer = {r["rater"]: r for r in report.get("length", [])}
    for ref in report.get("evaluators", {}).get("human_reference", []):
        row = {**where, "rater": ref["rater"], "kind": "human", "reference": True}
        for key, _, _ in EVALUATOR_COLUMNS:
            row[key], row[f"{key}_ci"] = ref.get(key), ref.get(f"{key}_ci")
        own = longer.get(ref["rater"])
        if own:  # a human's own P(prefers longer), from the report's length section
            row["length_preference"], row["length_preference_ci"] = own["longer_wins_rate"], own["longer_wins_rate_ci"]
        rows.append(row)
    return rows


def sort_rows(rows: list[dict], key: str | None, descending: bool) -> list[dict]:
    """Rows sorted by a column, missing values last whichever the direction."""
    if key not in SORT_KEYS:
        return rows

    def value(row: dict) -> tuple:
        v = row.get(key)
        if v is None or (isinstance(v, float) and math.isnan(v)):
            return (1, 0)
        return (0, -v if descending and not isinstance(v, str) else v)

    out = sorted(rows, key=value)
    if descending and key in ("rater", "project"):
        present = [r for r in out if r.get(key) is not None]
        out = sorted(present, key=lambda r: r[key], reverse=True) + [r for r in out if r.get(key) is None]
    return out


def evaluators_context(rows: list[dict], request: HttpRequest) -> dict[str, Any]:
    sort = request.GET.get("sort") or "accuracy"
    descending = request.GET.get("dir", "desc") != "asc"
    rows = sort_rows(rows, sort, descending)
    # The reference line: humans against each other, where the rows are of one project.
    pooled_rows = [r for r in rows if r["rater"] == POOLED_HUMANS]
    pooled = pooled_rows[0] if len(pooled_rows) == 1 else None
    chart_rows = [r for r in rows if r["accuracy"] is not None]
    label = (lambda r: f"{r['rater']} · {r['project']}") if rows and "project" in rows[0] else (lambda r: r["rater"])
    chart = charts.bars_with_intervals(
        [_bar(label(r), r["accuracy"], r["accuracy_ci"], f"n={r['n']}", r["n"]) for r in chart_rows],
        title="Accuracy against human gold (95% CI); dashed: humans against each other",
        percent=True, digits=4, reference=pooled["accuracy"] if pooled else None,
        base_label="Bars start at 0%. Humans are scored against the other humans' gold.",
    ) if chart_rows else None  # fmt: skip
    columns = [{"key": k, "label": label_, "rate": rate, "sorted": k == sort,
                "next_dir": "asc" if k == sort and descending else "desc"} for k, label_, rate in EVALUATOR_COLUMNS]
    return {"evaluator_rows": rows, "evaluator_columns": columns, "evaluator_chart": chart, "pooled_humans": pooled,
            "sort": sort, "sort_dir": "desc" if descending else "asc"}  # fmt: skip


def project_evaluators(report: dict, project: Project, request: HttpRequest) -> dict[str, Any]:
    """The context of the per-project report page "evaluators" (reports.views.PAGES)."""
    rows = evaluator_rows(report)
    ctx = evaluators_context(rows, request)
    judges = [r for r in ctx["evaluator_rows"] if not r["reference"] and r["accuracy"] is not None]
    lead = next((r for r in judges if not glossary.too_few(r["n"])), judges[0] if judges else None)
    return {
        **ctx,
        "lead_chart": ctx["evaluator_chart"],
        "headline": {"value": lead["accuracy"], "n": lead["n"], "ci": lead["accuracy_ci"], "percent": True,
                     "too_few": glossary.too_few(lead["n"])} if lead else None,  # fmt: skip
        "headline_label": f"{lead['rater']}: accuracy against human gold" if lead else "",
        "headline_term": "accuracy",
    }


def _across(user: Any) -> list[dict]:
    rows: list[dict] = []
    for project in access.projects_visible(user, need="research", archived=True).order_by("name"):
        rows += evaluator_rows(cached_report(project), project)
    return rows


POOLED_LABEL = "all your projects"


def pooled_rows(user: Any) -> list[dict]:
    """The evaluator leaderboard pooled over the caller's projects: one report over their
    annotation tables together (each pair keeps its own project's gold; items are the bootstrap
    units across projects), cached until any of their annotations or judgments change. Empty
    with fewer than two projects (the per-project rows say it all)."""
    import hashlib
    import json

    import pandas as pd
    from django.conf import settings
    from django.core.cache import caches

    from .build import ReportOptions, report_from_table
    from .cache import CACHE_ALIAS, VERSION, annotations_fingerprint
    from .cards import CardInputs
    from .selectors import annotations_table, finish_table, judge_runs_table, judgments_table, response_styles

    projects = list(access.projects_visible(user, need="research", archived=True).order_by("pk"))
    if len(projects) < 2:
        return []
    rounds = settings.CONCORDANCE["BOOTSTRAP_ROUNDS"]
    key = "reports:evaluators-pooled:" + hashlib.sha256(json.dumps(
        [VERSION, rounds, [[p.pk, annotations_fingerprint(p)] for p in projects]], default=str).encode()).hexdigest()  # fmt: skip
    cache = caches[CACHE_ALIAS]
    rows = cache.get(key)
    if rows is None:
        tables = [annotations_table(p) for p in projects]
        table = finish_table(pd.concat([t.astype({c: str for c in t.select_dtypes("category").columns}) for t in tables],
                                       ignore_index=True))  # fmt: skip
        inputs = CardInputs(judgments=pd.concat([judgments_table(p) for p in projects], ignore_index=True),
                            runs=pd.concat([judge_runs_table(p) for p in projects], ignore_index=True),
                            styles=pd.concat([response_styles(p) for p in projects], ignore_index=True))  # fmt: skip
        report = report_from_table(table, ReportOptions(rounds=rounds), inputs)
        rows = [{**r, "project": POOLED_LABEL} for r in evaluator_rows(report)]
        cache.set(key, rows, timeout=60 * 60)
    return rows


@login_required
@require_GET
def evaluators_page(request: HttpRequest) -> HttpResponse:
    """Every evaluator of every project the caller researches, one row per (rater, project)."""
    access.require_researcher(request.user)
    context = evaluators_context(_across(request.user), request)
    pooled = evaluators_context(pooled_rows(request.user), request)
    return render(request, "reports/evaluators.html", {**context, "min_n": glossary.MIN_N,
                                                       "pooled": pooled if pooled["evaluator_rows"] else None})


class EvaluatorsApi(APIView):
    class InputSerializer(serializers.Serializer):
        sort = serializers.ChoiceField(choices=sorted(SORT_KEYS), required=False)
        dir = serializers.ChoiceField(choices=["asc", "desc"], required=False, default="desc")

    @extend_schema(
        parameters=[OpenApiParameter("sort", str, required=False), OpenApiParameter("dir", str, required=False)],
        responses={200: dict},
        summary="The evaluator leaderboard across the caller's projects: every judge's card and the human "
        "reference rows (each human against the others' gold), one row per rater and project.",
    )
    def get(self, request: Request) -> Response:
        viewer_for(request)
        access.require_researcher(request.user)
        params = self.InputSerializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        sort, descending = params.validated_data.get("sort", "accuracy"), params.validated_data["dir"] == "desc"
        return Response({"columns": [k for k, _, _ in EVALUATOR_COLUMNS],
                         "rows": sort_rows(_across(request.user), sort, descending),
                         "pooled": sort_rows(pooled_rows(request.user), sort, descending)})  # fmt: skip
