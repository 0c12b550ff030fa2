"""Round trip: export helpsteer2 / helpsteer2-preference, import the files into a new project,
export again: the aggregated values come back unchanged."""

from __future__ import annotations

import json
from pathlib import Path

from annotate.importers import import_files
from annotate.models import Project
from exports.services import ExportOptions, export_write
from tests.export_fixtures import ATTRS, build_export_project


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def test_helpsteer2_round_trip_keeps_aggregated_scores(db, tmp_path):
    source = build_export_project()
    first = tmp_path / "first.jsonl"
    export_write(project=source, options=ExportOptions("helpsteer2"), out=first)
    import_files(project_name="Round trip ratings", fmt="helpsteer2", paths=[first])
    second = tmp_path / "second.jsonl"
    export_write(project=Project.objects.get(name="Round trip ratings"), options=ExportOptions("helpsteer2"), out=second)

    def scores(path: Path) -> dict:
        return {(r["prompt"], r["response"]): {a: r[a] for a in ATTRS} for r in _rows(path)}

    assert scores(second) == scores(first)
    assert len(scores(first)) == 2
    # The imported file is one rating per response: the counts say so.
    assert {r["helpfulness_n"] for r in _rows(second)} == {1}


def test_helpsteer2_preference_round_trip_keeps_strength_and_text(db, tmp_path):
    source = build_export_project()
    first = tmp_path / "first.jsonl"
    export_write(project=source, options=ExportOptions("helpsteer2-preference"), out=first)
    import_files(project_name="Round trip preferences", fmt="helpsteer2-preference", paths=[first])
    second = tmp_path / "second.jsonl"
    export_write(
        project=Project.objects.get(name="Round trip preferences"), options=ExportOptions("helpsteer2-preference"),
        out=second,
    )
    keys = ("split", "prompt", "response_1", "response_2", "preference_strength", "preference_statement",
            "preference_elaboration")
    assert [{k: r[k] for k in keys} for r in _rows(second)] == [{k: r[k] for k in keys} for r in _rows(first)]
