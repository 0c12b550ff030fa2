"""The import streams: files are parsed and written batch by batch in one transaction. With
batches of two items, these files span several batches, so each test checks a guarantee that
only holds across batches: a bad line in a late batch writes nothing, ids are checked against
every earlier batch, a csv item whose rows are apart is one item with all its pairs, and a
gold share picks the same items as when the file is parsed whole."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from annotate.errors import ImportFileError
from annotate.importers import formats, import_files, parse_files, seen
from annotate.importers.gold import mark_gold
from annotate.models import Item, Pair, Preference, Project, Response

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _small_batches(monkeypatch):
    monkeypatch.setattr(formats, "BATCH_ITEMS", 2)


def _item(i: int, strength: int = 1) -> dict:
    return {
        "id": f"q{i}", "prompt": f"Question {i}?",
        "responses": [{"id": "a", "text": f"A{i}"}, {"id": "b", "text": f"B{i}"}],
        "preferences": [{"rater": f"human:h{k}", "pair": ["a", "b"], "strength": strength} for k in range(3)],
    }


def _jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_batches_write_every_item(tmp_path: Path):
    path = _jsonl(tmp_path / "ok.jsonl", [_item(i) for i in range(7)])
    result = import_files(project_name="stream", fmt="jsonl", paths=[path])
    assert result.counts == {"items": 7, "responses": 14, "pairs": 7, "ratings": 0, "preferences": 21}
    assert result.totals["pairs"] == 7 and result.totals["raters"] == 3
    again = import_files(project_name="stream", fmt="jsonl", paths=[path])
    assert again.counts == {"items": 0, "responses": 0, "pairs": 0, "ratings": 0, "preferences": 0}


@pytest.mark.parametrize(("bad", "field", "words"), [
    ({"id": "q9", "prompt": "Q?", "responses": []}, "responses", "at least one response"),
    (_item(9, strength=7), "strength", "outside"),  # the project's scale: checked by the writer
    (_item(1), "id", "item id 'q1' appears twice (first at line 3)"),  # q1 went out in batch 1
])
def test_a_bad_line_in_a_late_batch_writes_nothing(tmp_path: Path, bad: dict, field: str, words: str):
    rows = [{"raters": [{"name": "h0"}]}, *[_item(i) for i in range(6)], bad]
    path = _jsonl(tmp_path / "bad.jsonl", rows)
    with pytest.raises(ImportFileError) as err:
        import_files(project_name="late", fmt="jsonl", paths=[path])
    assert (err.value.line, err.value.field) == (8, field), str(err.value)
    assert words in str(err.value)
    assert not Project.objects.filter(name="late").exists()
    assert Item.objects.count() == Response.objects.count() == Preference.objects.count() == 0


def test_the_id_index_remembers_across_merges(monkeypatch):
    monkeypatch.setattr(seen, "MERGE_AT", 3)
    ids = seen.SeenIds()
    for line in range(1, 11):
        assert ids.add(f"id{line}", line) is None
    assert len(ids) == 10
    assert [ids.first_line(f"id{k}") for k in (1, 4, 10)] == [1, 4, 10]
    assert ids.add("id4", 99) == 4 and ids.first_line("id11") is None


CSV = (
    "item_id,prompt,response_id,text,role,gold_correctness,gold_pair_with,gold_strength\n"
    "g1,12 + 30?,a,42.,gold,4,c,-3\n"
    "t1,Hi?,a,Hello,,,,\n"
    "t2,Yo?,a,Hey,,,,\n"
    "t3,Hm?,a,Hm,,,,\n"
    "g1,12 + 30?,b,52.,gold,0,,\n"
    "g1,12 + 30?,c,41.,gold,1,,\n"
)


def test_csv_item_continued_in_later_batches(tmp_path: Path):
    """g1's rows are apart, so its responses come in three batches; every pair of them is made,
    in file order, and its gold pair names a response of its last row."""
    path = tmp_path / "apart.csv"
    path.write_text(CSV)
    result = import_files(project_name="apart", fmt="csv", paths=[path])
    assert result.totals["items"] == 4 and result.totals["responses"] == 6
    assert result.totals["pairs"] == 3 and result.totals["gold_pairs"] == 1
    item = Item.objects.get(project=result.project, external_id="g1")
    assert item.role == "gold"
    pairs = {(p.response_a.external_id, p.response_b.external_id): p.gold_strength for p in Pair.objects.filter(item=item)}
    assert pairs == {("a", "b"): None, ("a", "c"): -3, ("b", "c"): None}
    assert {r.external_id: r.gold_ratings for r in item.responses.all()} == {
        "a": {"correctness": 4}, "b": {"correctness": 0}, "c": {"correctness": 1}}
    whole = parse_files(fmt="csv", paths=[path]).items["g1"]
    assert list(whole.responses) == ["a", "b", "c"] and [g.pair for g in whole.gold_pairs] == [("a", "c")]


@pytest.mark.parametrize(("row", "field", "words"), [
    ("g1,12 + 31?,d,x,gold,,,", "prompt", "different prompt than at line 2"),
    ("g1,12 + 30?,a,x,gold,,,", "response_id", "appears twice"),
    ("g1,12 + 30?,d,x,,,,", "role", "has role 'gold' at line 2"),
])
def test_csv_later_rows_checked_against_earlier_batches(tmp_path: Path, row: str, field: str, words: str):
    path = tmp_path / "bad.csv"
    path.write_text(CSV + row + "\n")
    with pytest.raises(ImportFileError) as err:
        import_files(project_name="bad-apart", fmt="csv", paths=[path])
    assert (err.value.line, err.value.field) == (8, field), str(err.value)
    assert words in str(err.value)
    assert not Project.objects.filter(name="bad-apart").exists() and Item.objects.count() == 0


def test_csv_gold_pair_to_a_response_never_given(tmp_path: Path):
    path = tmp_path / "bad.csv"
    path.write_text(CSV.replace("4,c,-3", "4,z,-3"))
    with pytest.raises(ImportFileError) as err:
        import_files(project_name="bad-gold", fmt="csv", paths=[path])
    assert (err.value.line, err.value.field) == (2, "gold_pair_with"), str(err.value)
    assert Item.objects.count() == 0


def test_gold_share_picks_what_the_whole_file_would(tmp_path: Path):
    rows = [_item(i, strength=(i % 7) - 3) for i in range(9)]
    path = _jsonl(tmp_path / "g.jsonl", rows)
    whole = parse_files(fmt="jsonl", paths=[path])
    assert mark_gold(whole, 0.34) == 3
    expected = {i for i, spec in whole.items.items() if spec.role == "gold"}
    result = import_files(project_name="share", fmt="jsonl", paths=[path], gold_share=0.34)
    gold = Item.objects.filter(project=result.project, role="gold")
    assert set(gold.values_list("external_id", flat=True)) == expected
    for item in gold:
        votes = (int(item.external_id[1:]) % 7) - 3
        assert Pair.objects.get(item=item).gold_strength == votes
