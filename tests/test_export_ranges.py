"""The preference export reads a batch's pairs, texts and preferences by id range: rows of
another project whose ids fall inside the range, and items a filter leaves out, must not leak
into the file, and a batch whose ids are sparse (asked for by IN) exports the same rows."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from annotate.importers import import_files
from exports import selectors
from exports.services import ExportOptions, export_write

pytestmark = pytest.mark.django_db


def _import(tmp_path: Path, project: str, i: int, role: str = "task") -> None:
    row = {
        "id": f"{project}{i}", "prompt": f"{project} question {i}?", "role": role,
        "responses": [{"id": "a", "text": f"{project} A{i}"}, {"id": "b", "text": f"{project} B{i}"}],
        "preferences": [{"rater": f"human:{project}-h{k}", "pair": ["a", "b"], "strength": (i + k) % 3 - 1,
                         "justification": f"{project} says {i}."} for k in range(3)],
    }
    if role == "gold":
        row["gold"] = {"pairs": [{"pair": ["a", "b"], "strength": 1}]}
    path = tmp_path / f"{project}{i}.jsonl"
    path.write_text(json.dumps(row) + "\n")
    import_files(project_name=project, fmt="jsonl", paths=[path])


def _export(project, tmp_path: Path, **filters) -> list[dict]:
    out = tmp_path / "out.jsonl"
    options = ExportOptions("helpsteer2-preference", selectors.ExportFilters(**filters))
    export_write(project=project, options=options, out=out)
    return [json.loads(line) for line in out.read_text().splitlines()]


@pytest.mark.parametrize("sparse", [4, 0])  # 0: every batch asks by IN
def test_interleaved_projects_export_only_their_own_rows(tmp_path: Path, monkeypatch, sparse: int):
    monkeypatch.setattr(selectors, "SPARSE", sparse)
    for i in range(6):  # one item of each project in turn: their ids interleave
        _import(tmp_path, "p", i, role="gold" if i == 2 else "task")
        _import(tmp_path, "q", i)
    from annotate.models import Project

    p = Project.objects.get(name="p")
    rows = _export(p, tmp_path)
    assert [r["prompt"] for r in rows] == [f"p question {i}?" for i in range(6)]
    assert all(r["response_1"].startswith("p A") and len(r["all_preferences_unprocessed"]) == 3 for r in rows)
    assert {u["justification"] for r in rows for u in r["all_preferences_unprocessed"]} == {f"p says {i}." for i in range(6)}
    kept = _export(p, tmp_path, exclude_gold=True)
    assert [r["prompt"] for r in kept] == [f"p question {i}?" for i in (0, 1, 3, 4, 5)]
