"""Report pages: each leads with a chart and the answer (the number, its n and interval)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from annotate import access
from annotate.models import Project
from annotate.verdicts import VERDICT_LABELS

from . import charts, glossary
from .cache import cached_report
from .card_views import project_evaluators
from .charts import Bar
from .forms import ReportFilterForm

PAGES = {
    "consistency": "Ratings vs rankings",
    "agreement": "Agreement",
    "bias": "Judge bias audit",
    "leaderboards": "Leaderboards",
    "evaluators": "Evaluators",
    "effort": "Human effort",
}
VERDICTS = list(VERDICT_LABELS)


def project_for_reports(request: HttpRequest, project_id: int) -> Project:
    """Reports show every rater's annotations and the judge audit: the project's researchers
    (archived projects keep their reports)."""
    return access.project_for(request.user, project_id, need="research", archived=True)


@login_required
@require_GET
def project(request: HttpRequest, project_id: int, page: str = "consistency") -> HttpResponse:
    if page not in PAGES:
        raise Http404
    proj = project_for_reports(request, project_id)
    form = ReportFilterForm(request.GET or None, project=proj)
    report = cached_report(proj, form.filters(), details=True, wildbench_k=form.wildbench_rule_k(), gold=form.gold_source())
    context = {
        "project": proj,
        "can_research": access.can_research_in(request.user, proj),
        "form": form,
        "page": page,
        "pages": PAGES,
        "title": PAGES[page],
        "query": request.GET.urlencode(),
        "report": report,
        "min_n": glossary.MIN_N,
        "min_models": glossary.MIN_MODELS_FOR_RANK,
    }
    # The evaluator leaderboard sorts by the query (reports/card_views.py); the others take none.
    context.update(project_evaluators(report, proj, request) if page == "evaluators" else PAGE_CONTEXT[page](report, proj))
    if page == "bias":
        context.update(_probes(request, proj))
    template = "reports/_report.html" if request.headers.get("HX-Request") else "reports/page.html"
    return render(request, template, context)


# --- page contexts -------------------------------------------------------------------------
# Every figure goes to the templates with its n, so that below glossary.MIN_N the pages print
# "too few to say (n = k)" instead of a number; rows that have nothing to say are split off to
# fold away (<details>) rather than fill the page with "n/a".


def _bar(label: str, value: float | None, ci: list | None, note: str = "", n: int | None = None) -> Bar:
    lo, hi = (ci or [None, None])[:2]
    return Bar(label=label, value=value, lo=lo, hi=hi, note=note, n=n)


def _headline(value: float | None, n: int, ci: list | None, *, percent: bool = True,
              minimum: int = glossary.MIN_N) -> dict[str, Any]:  # fmt: skip
    return {"value": value, "n": n, "ci": ci, "percent": percent, "too_few": glossary.too_few(n, minimum=minimum)}


def _split(rows: list[dict], label: Callable[[dict], str]) -> tuple[list[dict], list[dict]]:
    """(rows with enough units to say something, the rest as {label, n} to fold away)."""
    enough = [r for r in rows if not glossary.too_few(r.get("n"))]
    thin = [{"label": label(r), "n": r.get("n") or 0} for r in rows if glossary.too_few(r.get("n"))]
    return enough, thin


def _rater(key: str) -> Callable[[dict], str]:
    return lambda row: str(row[key])


def _both(row: dict) -> str:
    return f"{row['rater_a']} × {row['rater_b']}" + (f" ({row['attribute']})" if "attribute" in row else "")


def _first_enough(rows: list[dict], key: str) -> dict | None:
    """The first row whose figure rests on enough units, else the first row (shown as too few)."""
    usable = [r for r in rows if r.get(key) is not None]
    return next((r for r in usable if not glossary.too_few(r["n"])), usable[0] if usable else None)


def _consistency(report: dict, project: Project) -> dict:
    rows = report["consistency"]
    details = report["details"]
    lead = _first_enough(rows, "consistency")
    enough, thin = _split(rows, _rater("rater"))
    by_strength = {rater: r for rater, r in details.get("consistency_by_strength", {}).items() if r}
    cross = details.get("consistency_cross", [])
    return {
        "lead_chart": charts.bars_with_intervals(
            [_bar(r["rater"], r["consistency"], r["ci"], f"n={r['n']}", r["n"]) for r in rows],
            title="Consistency of ratings with rankings (95% CI)",
            percent=True,
            digits=4,
            base_label="Bars start at 0%.",
        )
        if rows
        else None,
        "headline": _headline(lead["consistency"], lead["n"], lead["ci"]) if lead else None,
        "headline_label": f"{lead['rater']}: implied preference from ratings equals the ranking" if lead else "",
        "headline_term": "consistency",
        "confusions": [
            (r["rater"], charts.heatmap(r["confusion"], VERDICTS, VERDICTS, title=r["rater"],
                                        row_title="implied by ratings", col_title="ranked"))
            for r in enough
        ],  # fmt: skip
        "thin": thin,
        "by_strength": by_strength,
        "cross": cross,
        # Open only where some row has enough data to show a figure: a table of "too few to
        # say" rows is a section with nothing to say, and folds like an empty one.
        "by_strength_says": any(not glossary.too_few(row["n"]) for r in by_strength.values() for row in r),
        "cross_says": any(not glossary.too_few(row.get("n")) for row in cross),
    }


def _agreement(report: dict, project: Project) -> dict:
    agreement = report["agreement"]
    pairs = agreement["pairs"]
    names = sorted({p["rater_a"] for p in pairs} | {p["rater_b"] for p in pairs}, key=lambda s: (s[:5] != "human", s))
    index = {n: i for i, n in enumerate(names)}
    matrix: list[list[float | None]] = [[1.0 if i == j else None for j in range(len(names))] for i in range(len(names))]
    ns: list[list[int | None]] = [[None] * len(names) for _ in names]
    for p in pairs:
        i, j = index[p["rater_a"]], index[p["rater_b"]]
        matrix[i][j] = matrix[j][i] = p["cohen_kappa"]
        ns[i][j] = ns[j][i] = p["n"]
    fleiss = report["details"]["fleiss_kappa"]
    judges = report["judge_vs_gold"]
    extra = {d["judge"]: d for d in report["details"].get("judge_vs_gold", [])}
    alpha_rows = [
        {"name": name, "levels": (levels := report["details"]["krippendorff_alpha"].get(name, {})),
         "level": "nominal" if name == "preference" else "ordinal", "value": value,
         "n": ((levels.get("nominal" if name == "preference" else "ordinal") or {}).get("n") or 0),
         "ci": agreement.get("krippendorff_alpha_ci", {}).get(name)}
        for name, value in agreement["krippendorff_alpha"].items()
    ]  # fmt: skip
    pairs_enough, pairs_thin = _split(pairs, _both)
    scores_enough, scores_thin = _split(agreement["scores"], _both)
    alpha_enough, alpha_thin = _split(alpha_rows, _rater("name"))
    judges_enough, judges_thin = _split(judges, _rater("judge"))
    return {
        "lead_chart": charts.heatmap(matrix, names, names, title="Cohen's kappa between raters",
                                     vmin=0, vmax=1, digits=2, ns=ns) if names else None,  # fmt: skip
        "headline": _headline(agreement["fleiss_kappa"], fleiss["n"], agreement.get("fleiss_kappa_ci"), percent=False)
        if agreement["fleiss_kappa"] is not None
        else None,
        "headline_label": "Fleiss' kappa of the human pool",
        "headline_term": "fleiss_kappa",
        "pairs": pairs_enough,
        "pairs_thin": pairs_thin,
        "pair_details": report["details"]["agreement_pairs"],
        # The report's alpha per attribute (ordinal; nominal on preference verdicts) and its interval.
        "alpha_rows": alpha_enough,
        "alpha_thin": alpha_thin,
        "scores": scores_enough,
        "scores_thin": scores_thin,
        "judges": judges_enough,
        "judges_thin": judges_thin,
        "gold_source": report["details"].get("gold_source", "majority"),
        "panels": report.get("panels", []),  # does each panel beat its best member (reports.build._panels)
        "judge_chart": charts.bars_with_intervals(
            [_bar(j["judge"], j["accuracy"], j["ci"], f"n={j['n']}", j["n"]) for j in judges],
            title="Judge accuracy against gold (95% CI)", percent=True, digits=4, base_label="Bars start at 0%.",
        ) if judges else None,  # fmt: skip
        "judge_confusions": [
            (j, charts.heatmap(d["confusion"], VERDICTS, VERDICTS, title=j, row_title="gold", col_title="judge"))
            for j, d in extra.items()
            if j in {row["judge"] for row in judges_enough}
        ],
    }


def _bias(report: dict, project: Project) -> dict:
    position = report["position"]
    sp = report["self_preference"]
    sp_notes = {d["judge"]: d for d in report["details"].get("self_preference", [])}
    judges_pos = [p for p in position if p["judge"].startswith("judge:") and p["consistency"] is not None]
    lead = _first_enough(judges_pos, "consistency")
    lead_chart = charts.bars_with_intervals(
        [_bar(p["judge"], p["consistency"] if p["consistency"] is not None else p["first_position_rate"],
              p["consistency_ci"] if p["consistency"] is not None else p["first_position_rate_ci"],
              f"consistent, n={p['n']}" if p["consistency"] is not None else f"first-shown wins, n={p['n']}", p["n"])
         for p in position],
        title="Position consistency (judges, both orders) or first-shown win rate (one order), 95% CI",
        percent=True, digits=4, reference=0.5, base_label="Bars start at 0%; dashed line: 50%.",
    ) if position else None  # fmt: skip
    sp_bars = []
    for row in sp:
        if row["model"] is None:
            sp_bars.append(Bar(row["judge"], None, note="no response model of its own"))
        elif not row["n"]:
            sp_bars.append(Bar(row["judge"], None, note=f"no pairs with its own model ({row['model']})"))
        else:
            sp_bars.append(_bar(row["judge"], row["dbg"], row["dbg_ci"], f"n={row['n']}", row["n"]))
    calib = report["details"].get("calibration", [])
    position_enough, position_thin = _split(position, _rater("judge"))
    own = [row for row in sp if row["model"] is not None]
    length_enough, length_thin = _split(report["length"], _rater("rater"))
    # Nobody saw both orders (e.g. imported single-order verdicts): the first-shown win rate leads.
    one_order = _first_enough(position, "first_position_rate") if lead is None else None
    headline = (
        _headline(lead["consistency"], lead["n"], lead["consistency_ci"]) if lead
        else _headline(one_order["first_position_rate"], one_order["n"], one_order["first_position_rate_ci"])
        if one_order else None
    )  # fmt: skip
    return {
        "lead_chart": lead_chart,
        "headline": headline,
        "headline_label": f"{lead['judge']}: position consistency" if lead
        else f"{one_order['judge']}: first-shown win rate (0.5 = no position bias)" if one_order else "",
        "headline_term": "position_consistency" if lead else "first_shown_win_rate",
        "both_orders": any(p["consistency"] is not None for p in position),
        "position": position_enough,
        "position_thin": position_thin,
        "self_preference": [(row, sp_notes.get(row["judge"], {})) for row in own],
        "no_own_model": [row["judge"] for row in sp if row["model"] is None],
        "sp_chart": charts.bars_with_intervals(
            sp_bars, lo=-0.5, hi=0.5, reference=0.0, title="Self-preference: DBG = WR(own) − gold WR(own), 95% CI",
            base_label="Bars are differences from 0 (no self-preference); right = favours itself.",
        ) if own else None,  # fmt: skip
        "length": length_enough,
        "length_thin": length_thin,
        "length_chart": charts.bars_with_intervals(
            [_bar(r["rater"], r["longer_wins_rate"], r["longer_wins_rate_ci"],
                  f"n={r['n']}, gold {r['gold_longer_wins_rate'] or 0:.1%}", r["n"])
             for r in report["length"]],
            title="Longer response wins (rater's non-tied verdicts, 95% CI)", percent=True, digits=3, reference=0.5,
            base_label="Bars start at 0%; dashed line: 50%.",
        ) if report["length"] else None,  # fmt: skip
        "calibration": [
            (c, charts.reliability_diagram(c["bins"], title=f"{c['judge']} (ECE {c['ece']:.3f})"))
            for c in calib if not glossary.too_few(c["n"]) and c["ece"] is not None
        ],
        "calibration_thin": [{"label": c["judge"], "n": c["n"]} for c in calib
                             if glossary.too_few(c["n"]) or c["ece"] is None],  # fmt: skip
    }


def _probes(request: HttpRequest, project: Project) -> dict:
    """The bias page's probes section: its start form (posting to judges:probes) and results."""
    from judges.forms import ProbeStartForm
    from judges.probes import project_probe_rows

    return {"probe_form": ProbeStartForm(project=project, user=request.user),
            "probe_rows": project_probe_rows(project_id=project.pk)}


def _rating_scale(report: dict, project: Project, means: list[float]) -> tuple[float, float]:
    """The rating scale of the report's attribute (floor and top), else what the data spans."""
    name = report["details"].get("attribute")
    attribute = project.attributes.filter(name=name).first() if name else None
    if attribute is not None:
        return float(attribute.min_value), float(attribute.max_value)
    return min([0.0, *means]), max([1.0, *means])


def _leaderboards(report: dict, project: Project) -> dict:
    boards = []
    for group, board in report["leaderboard"].items():
        bt = board["bradley_terry"]
        rt = board["ratings"]
        elos = [v for r in bt for v in [r["elo"], *(r["ci"] or [])] if v is not None]
        # Centred on the mean model (1000): a bar is a model's difference from it.
        spread = max([abs(e - ELO_REFERENCE) for e in elos] + [40.0]) * 1.1
        bt_chart = charts.bars_with_intervals(
            [_bar(r["model"], r["elo"], r["ci"]) for r in bt], lo=ELO_REFERENCE - spread, hi=ELO_REFERENCE + spread,
            digits=0, title="Bradley-Terry (Elo scale, 95% CI)", reference=ELO_REFERENCE, base=ELO_REFERENCE,
            base_label="Bars are differences from the mean model, anchored at 1000.",
        ) if bt else None  # fmt: skip
        means = [v for r in rt for v in [r["mean"], *(r["ci"] or [])] if v is not None]
        floor, top = _rating_scale(report, project, means)
        rt_chart = charts.bars_with_intervals(
            [_bar(r["model"], r["mean"], r["ci"]) for r in rt], lo=floor, hi=top, digits=2,
            title="Mean rating (95% CI)", base_label=f"Bars start at the scale's minimum, {floor:g}.",
        ) if rt else None  # fmt: skip
        n_models = len({r["model"] for r in bt} & {r["model"] for r in rt})
        style = board.get("style_controlled")
        style_chart = None
        if style and style["models"]:
            s_elos = [v for r in style["models"] for v in [r["elo"], *(r["ci"] or [])] if v is not None]
            s_spread = max([abs(e - ELO_REFERENCE) for e in s_elos] + [40.0]) * 1.1
            style_chart = charts.bars_with_intervals(
                [_bar(r["model"], r["elo"], r["ci"], f"plain {r['plain_elo']:.0f}") for r in style["models"]],
                lo=ELO_REFERENCE - s_spread, hi=ELO_REFERENCE + s_spread, digits=0, reference=ELO_REFERENCE,
                base=ELO_REFERENCE, title="Style-controlled Bradley-Terry (Elo scale, 95% Wald CI)",
                base_label="Length and markdown differences held equal; bars from the mean model, 1000.",
            )  # fmt: skip
        boards.append({"group": group, "bt_chart": bt_chart, "rt_chart": rt_chart, "tau": board["kendall_tau"],
                       "tau_ci": board.get("kendall_tau_ci"), "n_models": n_models,
                       "tau_too_few": glossary.too_few(n_models, minimum=glossary.MIN_MODELS_FOR_RANK),
                       "bt": bt, "ratings": rt, "identifiable": board.get("bradley_terry_identifiable"),
                       "never_lost": board.get("never_lost", []), "never_won": board.get("never_won", []),
                       "style": style, "style_chart": style_chart})  # fmt: skip
    first = boards[0] if boards else None
    return {
        "lead_chart": first["bt_chart"] if first else None,
        "boards": boards,
        "headline": _headline(first["tau"], first["n_models"], first["tau_ci"], percent=False,
                              minimum=glossary.MIN_MODELS_FOR_RANK)
        if first and (first["tau"] is not None or first["n_models"])
        else None,  # fmt: skip
        "headline_label": f"{first['group']}: Kendall's tau between the two orderings" if first else "",
        "headline_term": "kendall_tau",
        "lead_note": f"No finite Bradley-Terry fit for {first['group']} yet: the bars keep the order, but their size "
        "means nothing until more comparisons arrive." if first and first["identifiable"] is False else "",
        "headline_unit": "models",
    }


# The Elo scale's anchor: METRICS.md fixes the mean model at 1000.
ELO_REFERENCE = 1000.0

def _effort(report: dict, project: Project) -> dict:
    """Human labels spent (annotate.routing), and the labels-vs-agreement curve of the policies
    replayed on the project's fully labelled pairs (reports.metrics.effort)."""
    effort = report.get("details", {}).get("human_effort", {})
    curve = effort.get("curve", [])
    bars = [
        _bar(f"{p['policy']} ({p['saved_fraction']:.0%} saved)", p["agreement"], p["agreement_ci"], n=p["n"])
        for p in curve
    ]
    diagrams = [
        (j, [charts.reliability_diagram(j["reliability"][when]["bins"], lo=0.0,
                                        title=f"{when} calibration (ECE {j['reliability'][when]['ece']:.3f})")
             for when in ("before", "after") if j.get("reliability", {}).get(when)])
        for j in effort.get("judges", [])
    ]  # fmt: skip
    return {
        "effort": effort,
        "judge_diagrams": diagrams,
        "headline": _headline(effort.get("saved_fraction"), effort.get("pairs", 0), None),
        "headline_label": "human labels saved against uniform overlap",
        "headline_term": "labels_saved",
        "lead_chart": charts.bars_with_intervals(
            bars, title="Agreement with full gold, by policy (labels saved in brackets)", percent=True
        ) if bars else None,
    }  # fmt: skip


PAGE_CONTEXT: dict[str, Callable[[dict, Project], dict]] = {
    "consistency": _consistency, "agreement": _agreement, "bias": _bias, "leaderboards": _leaderboards,
    "effort": _effort,
}


@login_required
@require_POST
def qualify(request: HttpRequest, project_id: int) -> HttpResponse:
    """Qualify a judge, or a panel of the project (POST `panel`), on the project's human gold
    (reports.qualification), then back to the project's routing page, where the result is shown."""
    from annotate.routing_services import routing_refresh

    from .qualification import judge_qualify, panel_qualify

    project = access.project_for(request.user, project_id, need="research")
    if "panel" in request.POST:
        from judges.models import Panel

        try:
            panel_id = int(request.POST.get("panel", ""))
        except ValueError:
            return HttpResponse("Choose a panel to qualify.", status=400, content_type="text/plain")
        panel = Panel.objects.filter(pk=panel_id, project=project).select_related("rater").first()
        if panel is None:  # another project's panel is as unknown here as a missing one
            raise Http404("No such panel on this project.")
        q = panel_qualify(project=project, panel=panel)
        who = f"Panel {panel.rater.name}"
    else:
        try:
            judge_id = int(request.POST.get("judge", ""))
        except ValueError:
            return HttpResponse("Choose a judge to qualify.", status=400, content_type="text/plain")
        judge = access.judge_for(request.user, judge_id)
        access.judge_check_usable(request.user, judge, project)
        q = judge_qualify(project=project, judge=judge)
        who = f"Judge {judge.rater.name}"
    routing_refresh(project=project)  # a judge or panel routing this project now routes by its new standing
    verdict = "qualified" if q.qualified else "not qualified"
    messages.info(request, f"{who} is {verdict} on {q.n} pairs with human gold.")
    return redirect("annotate_routing", project_id=project.pk)
