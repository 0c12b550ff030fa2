"""`python manage.py report PROJECT --format json|csv`: the report the API serves, on stdout."""

from __future__ import annotations

import csv
import json
import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from annotate.models import Project
from reports.build import build_report
from reports.cards import CARD_RATES
from reports.selectors import ReportFilters


def report_rows(report: dict) -> list[dict[str, Any]]:
    """Flatten the report to long rows: section, subject, other, metric, value, n, ci_lo, ci_hi."""
    rows: list[dict[str, Any]] = []

    def add(section: str, subject: str, other: str, metric: str, value: Any, n: Any = None, ci=None) -> None:
        lo, hi = ci if ci else (None, None)
        rows.append({"section": section, "subject": subject, "other": other, "metric": metric,
                     "value": value, "n": n, "ci_lo": lo, "ci_hi": hi})  # fmt: skip

    ag = report["agreement"]
    for p in ag["pairs"]:
        add("agreement", p["rater_a"], p["rater_b"], "cohen_kappa", p["cohen_kappa"], p["n"], p["ci"])
        add("agreement", p["rater_a"], p["rater_b"], "percent", p["percent"], p["n"], p.get("percent_ci"))
        add("agreement", p["rater_a"], p["rater_b"], "cohen_kappa_quadratic", p["cohen_kappa_quadratic"], p["n"],
            p.get("cohen_kappa_quadratic_ci"))  # fmt: skip
    add("agreement", "humans", "", "fleiss_kappa", ag["fleiss_kappa"], None, ag.get("fleiss_kappa_ci"))
    alpha_cis = ag.get("krippendorff_alpha_ci", {})
    for name, value in ag["krippendorff_alpha"].items():
        add("agreement", name, "", "krippendorff_alpha", value, None, alpha_cis.get(name))
    for row in ag.get("scores", []):
        other = f"{row['rater_b']} ({row['attribute']})"
        add("agreement", row["rater_a"], other, "spearman", row["spearman"], row["n"], row["ci_spearman"])
        add("agreement", row["rater_a"], other, "kendall_tau_b", row["kendall_tau_b"], row["n"], row["ci_kendall"])
    for j in report["judge_vs_gold"]:
        for metric in ("accuracy", "accuracy_no_ties", "macro_precision", "macro_recall", "macro_f1"):
            n = j.get("n_no_ties", j["n"]) if metric == "accuracy_no_ties" else j["n"]
            add("judge_vs_gold", j["judge"], "gold", metric, j[metric], n, j["ci"] if metric == "accuracy" else j.get(f"{metric}_ci"))
    for c in report["consistency"]:
        add("consistency", c["rater"], "", "consistency", c["consistency"], c["n"], c["ci"])
    for p in report["position"]:
        ns = {"consistency": p["n"], "first_position_rate": p.get("n_inconsistent") or p["n"],
              "agreement_both_orders": p.get("n_gold")}  # fmt: skip
        for metric in ("consistency", "first_position_rate", "agreement_both_orders"):
            add("position", p["judge"], "", metric, p[metric], ns[metric], p.get(f"{metric}_ci"))
    for s in report["self_preference"]:
        for metric in ("raw_win_rate", "gold_win_rate", "dbg", "equal_opportunity_gap"):
            add("self_preference", s["judge"], s["model"] or "", metric, s[metric],
                s["n"] if metric == "raw_win_rate" else s.get("n_gold", s["n"]),
                s["dbg_ci"] if metric == "dbg" else s.get(f"{metric}_ci"))  # fmt: skip
    for row in report["length"]:
        add("length", row["rater"], "", "longer_wins_rate", row["longer_wins_rate"], row["n"],
            row.get("longer_wins_rate_ci"))  # fmt: skip
        add("length", row["rater"], "gold", "gold_longer_wins_rate", row["gold_longer_wins_rate"],
            row.get("n_gold", row["n"]), row.get("gold_longer_wins_rate_ci"))  # fmt: skip
    for card in report.get("judge_cards", []):
        ns = {"position_consistency": card["position_n"], "first_position_rate": card["n_inconsistent"],
              "preference_fairness": card["position_n"], "repetition_stability": card["repetition_n"],
              "length_preference": card["length_n"], "human_length_preference": card["human_length_n"],
              "valid_mass": card["valid_mass_n"]}  # fmt: skip
        for metric in CARD_RATES:
            add("judge_cards", card["judge"], "", metric, card[metric], ns.get(metric, card["n"]), card.get(f"{metric}_ci"))
    for group, board in report["leaderboard"].items():
        for r in board["bradley_terry"]:
            add("leaderboard", group, r["model"], "elo", r["elo"], None, r["ci"])
        for r in board["ratings"]:
            add("leaderboard", group, r["model"], "mean_rating", r["mean"], None, r["ci"])
        add("leaderboard", group, "", "kendall_tau", board["kendall_tau"], None, board.get("kendall_tau_ci"))
        style = board.get("style_controlled") or {}
        for r in style.get("models", []):
            add("leaderboard", group, r["model"], "style_controlled_elo", r["elo"], style["n"], r["ci"])
        if style:
            add("leaderboard", group, "", "kendall_tau_style_vs_plain", style["kendall_tau"], len(style["models"]))
        for r in style.get("length_controlled", []):
            add("leaderboard", group, r["model"], "lc_win_rate", r["lc_win_rate"], r["n"], r["lc_win_rate_ci"])
    for comparison in ("human_human", "judge_human"):
        effect = report.get("checklists", {}).get(comparison)
        for split in ("with", "without", "difference") if effect else ():
            part = effect[split]
            for metric in ("percent", "cohen_kappa"):
                add("checklists", comparison, split, metric, part[metric], part.get("n"), part[f"{metric}_ci"])
    return rows


class Command(BaseCommand):
    help = "Print a project's report (agreement, judge vs gold, consistency, bias audit, leaderboards)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("project", help="project name or id")
        parser.add_argument("--format", choices=["json", "csv"], default="json")
        parser.add_argument("--attribute")
        parser.add_argument("--rater-group", help='"humans", "judges" or one rater as kind:name')
        parser.add_argument("--exclude-gold", action="store_true")
        parser.add_argument("--wildbench-k", type=int)
        parser.add_argument("--rounds", type=int, help="bootstrap rounds (default: settings)")
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--details", action="store_true", help="add the chart data (json only)")

    def handle(self, *args: Any, **opts: Any) -> None:
        key = opts["project"]
        project = Project.objects.filter(pk=int(key)).first() if key.isdigit() else None
        project = project or Project.objects.filter(name=key).first()
        if project is None:
            raise CommandError(f"no project {key!r}")
        filters = ReportFilters(
            attribute=opts["attribute"], rater_group=opts["rater_group"], exclude_gold=opts["exclude_gold"]
        )
        options: dict[str, Any] = {"seed": opts["seed"], "wildbench_k": opts["wildbench_k"]}
        if opts["rounds"] is not None:
            options["rounds"] = opts["rounds"]
        report = build_report(project, filters, details=opts["details"], **options)
        if opts["format"] == "json":
            self.stdout.write(json.dumps(report, indent=2))
            return
        rows = report_rows(report)
        writer = csv.DictWriter(self.stdout if self.stdout else sys.stdout,
                                fieldnames=["section", "subject", "other", "metric", "value", "n", "ci_lo", "ci_hi"])  # fmt: skip
        writer.writeheader()
        writer.writerows(rows)
