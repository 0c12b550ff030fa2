"""What the report needs from the database about panels and judge qualification (issue 13):
which raters are panels and who sits on them, and each judge's standing on the project. The
rule "is this judge qualified here" is annotate.routing_services' (standing_of); this module
only loads it for every judge at once and writes the marks into the report's rows."""

from __future__ import annotations

from typing import Any

from annotate.models import Project, Rater
from annotate.routing_services import PANEL_STANDING, Standing, judge_standings, standing_of


def _label(kind: str, name: str) -> str:
    """A rater's label as the report writes it (reports.selectors: kind:name)."""
    return f"{kind}:{name}"


def panel_members(project: Project) -> dict[str, dict]:
    """Panel label -> {"members": [member labels, by judge id], "rule"}, in two queries."""
    from judges.models import Panel  # reports read judges; judges never import reports

    panels = Panel.objects.filter(project=project).select_related("rater").prefetch_related("members__rater")
    return {
        _label(p.rater.kind, p.rater.name): {
            "rule": p.rule,
            "members": [_label(m.rater.kind, m.rater.name) for m in sorted(p.members.all(), key=lambda j: j.pk)],
        }
        for p in panels.order_by("pk")
    }


def qualification_marks(project: Project) -> dict[str, dict]:
    """Judge rater label -> standing as JSON ({"qualified", "reason", "at"}) for the judges with a
    qualification on the project and its panels, in three small queries (never a scan of the
    annotations); any other judge of the report has never been qualified here. A panel is
    qualified as one rater (reports.qualification.panel_qualify); one never qualified says so."""
    from judges.models import Panel

    standings = judge_standings(project)
    panel_raters = set(Panel.objects.filter(project=project).values_list("rater_id", flat=True))
    out: dict[str, dict] = {}
    for rater_id, kind, name in Rater.objects.filter(pk__in=set(standings) | panel_raters).values_list(
        "pk", "kind", "name"
    ):
        # A panel is qualified as one rater; one never qualified says how to qualify it.
        standing = standings[rater_id] if rater_id in standings else Standing(False, PANEL_STANDING)
        out[_label(kind, name)] = standing.as_json()
    return out


def mark_qualification(report: dict, marks: dict[str, dict]) -> None:
    """Add `qualification` to every judge row of the report that lists judges against gold: the
    judge-vs-gold table, the judge cards (the evaluator leaderboard's rows), the panels section;
    and the evaluators section's index of them."""
    def mark(label: str) -> dict[str, Any]:
        return marks.get(label) or standing_of(None).as_json()

    for row in report.get("judge_vs_gold", []):
        row["qualification"] = mark(row["judge"])
    for card in report.get("judge_cards", []):
        if card.get("kind") != "human":
            card["qualification"] = mark(card["judge"])
    for panel in report.get("panels", []):
        for row in panel["raters"]:
            row["qualification"] = mark(row["rater"])
    if isinstance(report.get("evaluators"), dict):
        judges = [c["judge"] for c in report.get("judge_cards", []) if c.get("kind") != "human"]
        report["evaluators"]["qualification"] = {j: mark(j) for j in judges}
