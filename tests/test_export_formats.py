"""Every export format, loaded back with Hugging Face `datasets` and checked value by value."""

from __future__ import annotations

import csv
import dataclasses
import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from datasets import load_dataset

from annotate.errors import ValidationError
from exports.selectors import ExportFilters, parse_splits
from exports.services import ExportOptions, export_stream, export_write
from tests.export_fixtures import (
    ATTRS,
    EXPECTED_STRENGTH,
    HUMAN_PREFS,
    JUDGE_STRENGTH,
    R1_EXPECTED,
    R1_RATINGS,
    R2_EXPECTED,
    build_export_project,
)


@pytest.fixture
def export_project(db):
    return build_export_project()


def _load_json(path: Path, tmp_path: Path):
    return load_dataset("json", data_files=str(path), split="train", cache_dir=str(tmp_path / "hf"))


def _by_prompt(ds) -> dict[str, dict]:
    return {row["prompt"]: row for row in ds}


def test_helpsteer2_scores_follow_three_closest_and_half_up(export_project, tmp_path):
    out = tmp_path / "hs2.jsonl"
    result = export_write(project=export_project, options=ExportOptions(format="helpsteer2"), out=out)
    ds = _load_json(out, tmp_path)
    assert ds.column_names == ["split", "prompt", "response", *ATTRS, *(f"{a}_n" for a in ATTRS)]
    rows = {row["response"]: row for row in ds}
    assert len(rows) == 2  # unrated responses are left out
    assert {a: rows["i1 answer one"][a] for a in ATTRS} == R1_EXPECTED
    assert {a: rows["i1 answer two"][a] for a in ATTRS} == R2_EXPECTED
    assert rows["i1 answer one"]["helpfulness_n"] == 5
    assert rows["i1 answer two"]["verbosity_n"] == 2
    lists = _load_json(result.files[1], tmp_path)
    one = next(r for r in lists if r["response"] == "i1 answer one")
    assert {a: one[a] for a in ATTRS} == R1_RATINGS
    assert one["raters"] == ["h1", "h2", "h3", "h4", "h5"]


def test_helpsteer2_judges_group_uses_only_judge_ratings(export_project, tmp_path):
    out = tmp_path / "hs2.jsonl"
    options = ExportOptions(format="helpsteer2", filters=ExportFilters(rater_group="judges"))
    export_write(project=export_project, options=options, out=out)
    rows = list(_load_json(out, tmp_path))
    assert len(rows) == 1
    assert {a: rows[0][a] for a in ATTRS} == dict.fromkeys(ATTRS, 0)


def test_helpsteer2_preference_matches_published_layout(export_project, tmp_path):
    out = tmp_path / "pref.jsonl"
    export_write(project=export_project, options=ExportOptions(format="helpsteer2-preference"), out=out)
    ds = _load_json(out, tmp_path)
    assert ds.column_names == [
        "split", "prompt", "response_1", "response_2", "preference_strength", "preference_statement",
        "preference_elaboration", "three_most_similar_preferences", "all_preferences_unprocessed",
    ]
    rows = _by_prompt(ds)
    assert {p[len("Prompt "):-1]: r["preference_strength"] for p, r in rows.items()} == EXPECTED_STRENGTH
    first = rows["Prompt i1?"]
    assert first["response_1"] == "i1 answer one"  # stored order A
    assert (first["preference_statement"], first["preference_elaboration"]) == ("A is better.", "More detail.")
    assert [p["strength"] for p in first["three_most_similar_preferences"]] == [-3, -2, -2]
    assert first["all_preferences_unprocessed"] == [
        {"strength": s, "justification": j} for s, j in HUMAN_PREFS["i1"]
    ]
    assert rows["Prompt i2?"]["preference_statement"] == "B is a bit better."  # tie -> earliest


def test_preference_filters_rater_group_agreement_and_roles(export_project, tmp_path):
    def strengths(filters: ExportFilters) -> dict[str, int]:
        out = tmp_path / "p.jsonl"
        export_write(project=export_project, options=ExportOptions("helpsteer2-preference", filters), out=out)
        with out.open() as fh:
            return {json.loads(line)["prompt"][7:-1]: json.loads(line)["preference_strength"] for line in fh}

    assert strengths(ExportFilters(rater_group="judges")) == JUDGE_STRENGTH
    assert strengths(ExportFilters(exclude_gold=True, exclude_attention=True)) == {"i1": -2, "i2": 2}
    # i1: 3 of 5 votes side with A (0.6); i3: 2 of 3 are ties (0.67).
    assert strengths(ExportFilters(min_agreement=0.7)) == {"i2": 2, "i4": -2}
    both = strengths(ExportFilters(rater_group="both"))
    assert both["i1"] == -2  # (-3, -2, -2) of six votes, the judge's -3 among them, still -7/3


def test_dpo_from_humans_judge_and_agreement(export_project, tmp_path):
    def load(source: str, judge: str | None = None):
        out = tmp_path / f"dpo-{source}.jsonl"
        filters = ExportFilters(judge=judge)
        export_write(project=export_project, options=ExportOptions("dpo", filters, dpo_source=source), out=out)
        ds = _load_json(out, tmp_path)
        for column in ("prompt", "chosen", "rejected"):
            assert ds.features[column].dtype == "string"  # TRL's standard preference format
        return _by_prompt(ds)

    human = load("human")
    assert set(human) == {"Prompt i1?", "Prompt i2?", "Prompt i4?"}  # i3's gold is a tie
    assert human["Prompt i1?"]["chosen"] == "i1 answer one"
    assert human["Prompt i1?"]["rejected"] == "i1 answer two"
    assert human["Prompt i1?"]["margin"] == pytest.approx(7 / 3)
    assert human["Prompt i2?"]["chosen"] == "i2 answer two"
    assert human["Prompt i1?"]["provenance"]["source"] == "human"
    assert human["Prompt i1?"]["provenance"]["human_votes"] == 5

    judge = load("judge", "j1")
    assert set(judge) == {"Prompt i1?", "Prompt i3?"}  # i4: the orders disagree -> tie, dropped
    assert judge["Prompt i3?"]["chosen"] == "i3 answer two"
    assert judge["Prompt i3?"]["provenance"]["judge"] == "j1"

    agreement = load("agreement", "j1")
    assert set(agreement) == {"Prompt i1?"}

    with pytest.raises(ValidationError):
        export_write(project=export_project, options=ExportOptions("dpo", dpo_source="judge"), out=tmp_path / "x")


def test_annotations_long_format_csv_and_parquet(export_project, tmp_path):
    result = export_write(project=export_project, options=ExportOptions("annotations"), out=tmp_path / "ann")
    csv_path, parquet_path = result.files
    # 5 humans x 5 attributes on r1 + 2 x 5 on r2, and 12 human preferences.
    expected = 25 + 10 + 12
    with csv_path.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == expected
    assert {r["rater_kind"] for r in rows} == {"human"}
    h2_pref = next(r for r in rows if r["annotation"] == "preference" and r["rater_name"] == "h2")
    assert (h2_pref["shown_order"], h2_pref["strength"], h2_pref["time_on_task_ms"]) == ("ba", "1", "500")
    table = pq.read_table(parquet_path)
    assert table.num_rows == expected
    ds = load_dataset("parquet", data_files=str(parquet_path), split="train", cache_dir=str(tmp_path / "hf"))
    assert ds.features["strength"].dtype == "int64"
    assert ds.features["created_at"].dtype == "string"
    # Rows of one item come together.
    items = [r["item_id"] for r in rows]
    assert items == sorted(items, key=items.index)

    both = export_write(
        project=export_project, options=ExportOptions("annotations", ExportFilters(rater_group="both")),
        out=tmp_path / "ann2",
    )
    assert both.rows["ann2.csv"] == expected + 5 + 6  # the judge's 5 ratings and 3 x 2 orders


def test_parquet_folder_loads_with_datasets_and_has_a_card(export_project, tmp_path):
    folder = tmp_path / "ds"
    filters = ExportFilters(splits=parse_splits("train=0.5,validation=0.5"), seed=3)
    result = export_write(
        project=export_project, options=ExportOptions("parquet", filters, licence="cc-by-4.0"), out=folder
    )
    card = (folder / "README.md").read_text()
    assert "license: cc-by-4.0" in card
    assert "config_name: preferences" in card and "smallest range" in card
    pref_files = sorted(str(p) for p in (folder / "preferences").glob("*.parquet"))
    ds = load_dataset("parquet", data_files=pref_files, split="train", cache_dir=str(tmp_path / "hf"))
    assert len(ds) == 4
    assert "split" not in ds.column_names  # the file is the split
    assert sorted(ds["preference_strength"]) == sorted(EXPECTED_STRENGTH.values())
    by_config = load_dataset(str(folder), "preferences", cache_dir=str(tmp_path / "hf2"))
    assert sum(len(s) for s in by_config.values()) == 4
    assert set(by_config) <= {"train", "validation"}
    for split_name, n in ((k.split("/")[1][:-8], v) for k, v in result.rows.items() if k.startswith("preferences/")):
        assert f"| preferences | {split_name} | {n} |" in card
    ratings = load_dataset(str(folder), "ratings", cache_dir=str(tmp_path / "hf3"))
    assert sorted(r["helpfulness"] for s in ratings.values() for r in s) == [3, 4]


def test_split_assignment_is_seeded_and_by_item(export_project, tmp_path):
    filters = ExportFilters(splits=parse_splits("train=0.5,validation=0.5"), seed=7)

    def splits(f: ExportFilters) -> dict[str, str]:
        out = tmp_path / "a.csv"
        export_write(project=export_project, options=ExportOptions("annotations", f), out=out)
        with out.open(newline="") as fh:
            by_item: dict[str, set[str]] = {}
            for row in csv.DictReader(fh):
                by_item.setdefault(row["item_id"], set()).add(row["split"])
        assert all(len(s) == 1 for s in by_item.values())  # a prompt never straddles splits
        return {k: next(iter(v)) for k, v in by_item.items()}

    first = splits(filters)
    assert splits(filters) == first
    many = [splits(dataclasses.replace(filters, seed=s)) for s in range(6)]
    assert len({tuple(sorted(m.items())) for m in many}) > 1  # the seed matters
    with pytest.raises(ValueError):
        parse_splits("train=0.5,validation=0.4")


def test_stream_matches_file_export(export_project, tmp_path):
    out = tmp_path / "pref.jsonl"
    export_write(project=export_project, options=ExportOptions("helpsteer2-preference"), out=out)
    stream = export_stream(project=export_project, options=ExportOptions("helpsteer2-preference"))
    assert b"".join(stream.chunks) == out.read_bytes()
    lists = export_stream(project=export_project, options=ExportOptions("helpsteer2"), part="disagreements")
    assert lists.filename.endswith(".disagreements.jsonl")
    assert b"[4, 0, 3, 4, 2]" in b"".join(lists.chunks)



def test_item_batches_do_not_change_the_output(export_project):
    from exports.formats import helpsteer2_preference_rows
    from exports.selectors import pair_records

    filters = ExportFilters()
    one_by_one = list(helpsteer2_preference_rows(pair_records(export_project, filters, batch=1), filters))
    whole = list(helpsteer2_preference_rows(pair_records(export_project, filters), filters))
    assert one_by_one == whole
    assert [r["prompt"] for r in whole] == ["Prompt i1?", "Prompt i2?", "Prompt i3?", "Prompt i4?"]
