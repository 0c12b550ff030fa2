"""Report pages: each leads with a chart and the answer (the number, its n and interval)."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from annotate import access
from annotate.models import Project

from . import charts
from .cache import cached_report
from .charts import Bar
from .forms import ReportFilterForm

PAGES = {
    "consistency": "Ratings vs rankings",
    "agreement": "Agreement",
    "bias": "Judge bias audit",
    "leaderboards": "Leaderboards",
}
VERDICTS = ["A", "tie", "B"]


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
    report = cached_report(proj, form.filters(), details=True, wildbench_k=form.wildbench_rule_k())
    context = {
        "project": proj,
        "form": form,
        "page": page,
        "pages": PAGES,
        "title": PAGES[page],
        "query": request.GET.urlencode(),
        "report": report,
        **PAGE_CONTEXT[page](report),
    }
    template = "reports/_report.html" if request.headers.get("HX-Request") else "reports/page.html"
    return render(request, template, context)


# --- page contexts -------------------------------------------------------------------------


def _bar(label: str, value: float | None, ci: list | None, note: str = "") -> Bar:
    lo, hi = (ci or [None, None])[:2]
    return Bar(label=label, value=value, lo=lo, hi=hi, note=note)


def _headline(value: float | None, n: int, ci: list | None, *, percent: bool = True) -> dict[str, Any]:
    return {"value": value, "n": n, "ci": ci, "percent": percent}


def _consistency(report: dict) -> dict:
    rows = report["consistency"]
    details = report["details"]
    lead = rows[0] if rows else None
    return {
        "lead_chart": charts.bars_with_intervals(
            [_bar(r["rater"], r["consistency"], r["ci"], f"n={r['n']}") for r in rows],
            title="Consistency of ratings with rankings (95% CI)",
            percent=True,
            digits=4,
        )
        if rows
        else None,
        "headline": _headline(lead["consistency"], lead["n"], lead["ci"]) if lead else None,
        "headline_label": f"{lead['rater']}: implied preference from ratings equals the ranking" if lead else "",
        "confusions": [
            (r["rater"], charts.heatmap(r["confusion"], VERDICTS, VERDICTS, title=r["rater"],
                                        row_title="implied by ratings", col_title="ranked"))
            for r in rows
        ],  # fmt: skip
        "by_strength": details.get("consistency_by_strength", {}),
        "cross": details.get("consistency_cross", []),
    }


def _agreement(report: dict) -> dict:
    pairs = report["agreement"]["pairs"]
    names = sorted({p["rater_a"] for p in pairs} | {p["rater_b"] for p in pairs}, key=lambda s: (s[:5] != "human", s))
    index = {n: i for i, n in enumerate(names)}
    matrix: list[list[float | None]] = [[1.0 if i == j else None for j in range(len(names))] for i in range(len(names))]
    for p in pairs:
        i, j = index[p["rater_a"]], index[p["rater_b"]]
        matrix[i][j] = matrix[j][i] = p["cohen_kappa"]
    agreement = report["agreement"]
    fleiss = report["details"]["fleiss_kappa"]
    judges = report["judge_vs_gold"]
    extra = {d["judge"]: d for d in report["details"].get("judge_vs_gold", [])}
    return {
        "lead_chart": charts.heatmap(matrix, names, names, title="Cohen's kappa between raters",
                                     vmin=0, vmax=1, digits=2) if names else None,  # fmt: skip
        "headline": _headline(agreement["fleiss_kappa"], fleiss["n"], agreement.get("fleiss_kappa_ci"), percent=False)
        if agreement["fleiss_kappa"] is not None
        else None,
        "headline_label": "Fleiss' kappa of the human pool",
        "pairs": pairs,
        "pair_details": report["details"]["agreement_pairs"],
        # The report's alpha per attribute (ordinal; nominal on preference verdicts) and its interval.
        "alpha_rows": [
            {"name": name, "levels": report["details"]["krippendorff_alpha"].get(name, {}),
             "level": "nominal" if name == "preference" else "ordinal", "value": value,
             "ci": agreement.get("krippendorff_alpha_ci", {}).get(name)}
            for name, value in agreement["krippendorff_alpha"].items()
        ],  # fmt: skip
        "scores": report["agreement"]["scores"],
        "judges": judges,
        "judge_chart": charts.bars_with_intervals(
            [_bar(j["judge"], j["accuracy"], j["ci"], f"n={j['n']}") for j in judges],
            title="Judge accuracy against gold (95% CI)", percent=True, digits=4,
        ) if judges else None,  # fmt: skip
        "judge_confusions": [
            (j, charts.heatmap(d["confusion"], VERDICTS, VERDICTS, title=j, row_title="gold", col_title="judge"))
            for j, d in extra.items()
        ],
    }


def _bias(report: dict) -> dict:
    position = report["position"]
    sp = report["self_preference"]
    sp_notes = {d["judge"]: d for d in report["details"].get("self_preference", [])}
    judges_pos = [p for p in position if p["judge"].startswith("judge:") and p["consistency"] is not None]
    lead = judges_pos[0] if judges_pos else None
    lead_chart = charts.bars_with_intervals(
        [_bar(p["judge"], p["consistency"] if p["consistency"] is not None else p["first_position_rate"],
              p["consistency_ci"] if p["consistency"] is not None else p["first_position_rate_ci"],
              f"consistent, n={p['n']}" if p["consistency"] is not None else f"first-shown wins, n={p['n']}")
         for p in position],
        title="Position consistency (judges, both orders) or first-shown win rate (one order), 95% CI",
        percent=True, digits=4, reference=0.5,
    ) if position else None  # fmt: skip
    sp_bars = []
    for row in sp:
        if row["model"] is None:
            sp_bars.append(Bar(row["judge"], None, note="no response model of its own"))
        elif not row["n"]:
            sp_bars.append(Bar(row["judge"], None, note=f"no pairs with its own model ({row['model']})"))
        else:
            sp_bars.append(_bar(row["judge"], row["dbg"], row["dbg_ci"], f"n={row['n']}"))
    calib = report["details"].get("calibration", [])
    return {
        "lead_chart": lead_chart,
        "headline": _headline(lead["consistency"], lead["n"], lead["consistency_ci"]) if lead else None,
        "headline_label": f"{lead['judge']}: position consistency" if lead else "",
        "position": position,
        "self_preference": [(row, sp_notes.get(row["judge"], {})) for row in sp],
        "sp_chart": charts.bars_with_intervals(
            sp_bars, lo=-0.5, hi=0.5, reference=0.0, title="Self-preference: DBG = WR(own) − gold WR(own), 95% CI"
        ) if sp_bars else None,  # fmt: skip
        "length": report["length"],
        "length_chart": charts.bars_with_intervals(
            [_bar(r["rater"], r["longer_wins_rate"], r["longer_wins_rate_ci"],
                  f"n={r['n']}, gold {r['gold_longer_wins_rate'] or 0:.1%}")
             for r in report["length"]],
            title="Longer response wins (rater's non-tied verdicts, 95% CI)", percent=True, digits=3, reference=0.5,
        ) if report["length"] else None,  # fmt: skip
        "calibration": [
            (c, charts.reliability_diagram(c["bins"], title=f"{c['judge']} (ECE {c['ece']:.3f})")) for c in calib
        ],
    }


def _leaderboards(report: dict) -> dict:
    boards = []
    for group, board in report["leaderboard"].items():
        bt = board["bradley_terry"]
        rt = board["ratings"]
        elos = [r["elo"] for r in bt] + [v for r in bt for v in (r["ci"] or [])]
        lo = min([e for e in elos if e is not None], default=900)
        hi = max([e for e in elos if e is not None], default=1100)
        margin = max((hi - lo) * 0.1, 10)
        bt_chart = charts.bars_with_intervals(
            [_bar(r["model"], r["elo"], r["ci"]) for r in bt], lo=lo - margin, hi=hi + margin, digits=0,
            title="Bradley-Terry (Elo scale, mean 1000)", reference=1000,
        ) if bt else None  # fmt: skip
        means = [v for r in rt for v in [r["mean"], *(r["ci"] or [])] if v is not None]
        rt_chart = charts.bars_with_intervals(
            [_bar(r["model"], r["mean"], r["ci"]) for r in rt],
            lo=min(means, default=0) - 0.2, hi=max(means, default=1) + 0.2, digits=2, title="Mean rating",
        ) if rt else None  # fmt: skip
        boards.append({"group": group, "bt_chart": bt_chart, "rt_chart": rt_chart, "tau": board["kendall_tau"],
                       "tau_ci": board.get("kendall_tau_ci"),
                       "bt": bt, "ratings": rt, "identifiable": board.get("bradley_terry_identifiable"),
                       "never_lost": board.get("never_lost", []), "never_won": board.get("never_won", [])})  # fmt: skip
    first = boards[0] if boards else None
    return {
        "lead_chart": first["bt_chart"] if first else None,
        "boards": boards,
        "headline": _headline(first["tau"], len(first["bt"]), first["tau_ci"], percent=False)
        if first and first["tau"] is not None
        else None,
        "headline_label": f"{first['group']}: Kendall's tau between the two orderings" if first else "",
    }


PAGE_CONTEXT = {"consistency": _consistency, "agreement": _agreement, "bias": _bias, "leaderboards": _leaderboards}
