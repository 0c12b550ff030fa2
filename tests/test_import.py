"""Imports of the real datasets in ../shared/data, with the counts their README states."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from annotate.errors import ImportFileError
from annotate.importers import import_files
from annotate.models import Item, Pair, Preference, Project, Rater, Rating, Response

pytestmark = pytest.mark.django_db


def _prefs(project: Project, kind: str) -> int:
    return Preference.objects.filter(pair__item__project=project, rater_kind=kind).count()


def test_pandalm_import_counts(shared_data: Path):
    d = shared_data / "pandalm"
    result = import_files(
        project_name="pandalm", fmt="pandalm",
        paths=[d / "testset-v1.json", d / "gpt-3.5-turbo-testset-v1.json", d / "pandalm-7b-testset-v1.json"],
    )
    project = result.project
    assert project.ranking_scale == "ternary"
    assert Pair.objects.filter(item__project=project).count() == 999
    assert _prefs(project, "human") == 2997
    assert _prefs(project, "judge") == 1998
    models = set(Response.objects.filter(item__project=project).values_list("model", flat=True))
    assert models == {"llama-7b", "bloom-7b", "cerebras-gpt-6.7B", "opt-7b", "pythia-6.9b"}
    first = Pair.objects.get(item__project=project, item__external_id="0")
    assert (first.response_a.model, first.response_b.model) == ("bloom-7b", "llama-7b")
    assert result.counts["preferences"] == 4995


def test_autoj_import_counts_both_orders(shared_data: Path):
    d = shared_data / "autoj"
    result = import_files(
        project_name="autoj", fmt="autoj",
        paths=[d / "autoj_pairwise.jsonl", d / "autoj13b_verdicts_original_order.jsonl", d / "autoj13b_verdicts_swapped_order.jsonl"],
    )
    project = result.project
    assert Pair.objects.filter(item__project=project).count() == 1392
    assert _prefs(project, "judge") == 2784
    assert _prefs(project, "human") == 1392
    judge = Rater.objects.get(kind="judge", name="autoj-13b")
    assert Preference.objects.filter(rater=judge, shown_order="ba").count() == 1392


def test_autoj_without_verdict_files(shared_data: Path):
    result = import_files(project_name="autoj-h", fmt="autoj", paths=[shared_data / "autoj" / "autoj_pairwise.jsonl"])
    assert _prefs(result.project, "judge") == 0
    assert result.counts["pairs"] == 1392


def test_sparse_feedback_deduplicated(shared_data: Path):
    d = shared_data / "sparse_feedback"
    result = import_files(
        project_name="sparse", fmt="sparse-feedback",
        paths=[d / "feedback_ratings_sample_generation.csv", d / "feedback_rankings_sample_generation.csv"],
    )
    project = result.project
    assert [a.name for a in project.attributes.all()] == ["overall"]
    assert Item.objects.filter(project=project).count() == 20
    assert Pair.objects.filter(item__project=project).count() == 118
    texts = Response.objects.filter(item__project=project).values_list("item_id", "text").distinct()
    assert len(set(texts)) == 98
    rated = Rating.objects.filter(response__item__project=project).values_list("response__item_id", "response__text").distinct()
    assert len(set(rated)) == 97
    both = [
        p for p in Pair.objects.filter(item__project=project)
        if p.response_a.ratings.exists() and p.response_b.ratings.exists()
    ]
    assert len(both) == 117


def test_reimport_creates_no_duplicates(shared_data: Path):
    paths = [shared_data / "pandalm" / "testset-v1.json"]
    import_files(project_name="p", fmt="pandalm", paths=paths)
    again = import_files(project_name="p", fmt="pandalm", paths=paths)
    assert again.counts == {"items": 0, "responses": 0, "pairs": 0, "ratings": 0, "preferences": 0}
    assert Preference.objects.count() == 2997


def _write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_jsonl_import_with_declared_raters_and_default_pairs(tmp_path: Path):
    path = _write_jsonl(tmp_path / "a.jsonl", [
        {"raters": [{"name": "gpt", "kind": "judge", "model": "m2"}, {"name": "ann", "kind": "human"}]},
        {"id": "q1", "prompt": "Hi?", "responses": [
            {"id": "a", "model": "m1", "text": "Hello"}, {"id": "b", "model": "m2", "text": "Hey"}, {"id": "c", "model": "m3", "text": "Yo"}],
         "ratings": [{"rater": "human:ann", "response": "a", "attribute": "helpfulness", "value": 3}],
         "preferences": [{"rater": "judge:gpt", "pair": ["b", "a"], "strength": 2, "shown_order": "ba"}]},
    ])
    result = import_files(project_name="j", fmt="jsonl", paths=[path])
    assert result.counts["pairs"] == 3
    pref = Preference.objects.get()
    # Written against the mirrored pair: stored with the sign flipped to the stored A/B order.
    assert (pref.pair.response_a.external_id, pref.pair.response_b.external_id, pref.strength) == ("a", "b", -2)
    assert Rater.objects.get(kind="judge", name="gpt").model == "m2"


def test_bad_value_names_file_line_field_and_writes_nothing(tmp_path: Path):
    path = _write_jsonl(tmp_path / "bad.jsonl", [
        {"id": "q1", "prompt": "Hi?", "responses": [{"id": "a", "text": "Hello"}, {"id": "b", "text": "Hey"}]},
        {"id": "q2", "prompt": "Yo?", "responses": [{"id": "a", "text": "x"}],
         "ratings": [{"rater": "human:ann", "response": "a", "attribute": "helpfulness", "value": 9}]},
    ])
    with pytest.raises(ImportFileError) as err:
        import_files(project_name="bad", fmt="jsonl", paths=[path])
    assert err.value.line == 2 and err.value.field == "helpfulness"
    assert "bad.jsonl:2" in str(err.value) and "0-4" in str(err.value)
    assert not Project.objects.filter(name="bad").exists()
    assert Item.objects.count() == 0


def test_unknown_attribute_is_reported(tmp_path: Path, project: Project):
    path = _write_jsonl(tmp_path / "x.jsonl", [
        {"id": "q1", "prompt": "Hi?", "responses": [{"id": "a", "text": "Hello"}],
         "ratings": [{"rater": "human:ann", "response": "a", "attribute": "overall", "value": 3}]},
    ])
    with pytest.raises(ImportFileError, match="'overall' is not one of project"):
        import_files(project_name=project.name, fmt="jsonl", paths=[path])


def test_strength_outside_ternary_scale_rejected(shared_data: Path, tmp_path: Path):
    import_files(project_name="p", fmt="pandalm", paths=[shared_data / "pandalm" / "testset-v1.json"])
    path = _write_jsonl(tmp_path / "s.jsonl", [
        {"id": "new", "prompt": "Hi?", "responses": [{"id": "a", "text": "1"}, {"id": "b", "text": "2"}],
         "preferences": [{"rater": "human:z", "pair": ["a", "b"], "strength": 3}]},
    ])
    with pytest.raises(ImportFileError, match=r"outside project 'p'.s scale -1..1"):
        import_files(project_name="p", fmt="jsonl", paths=[path])


def test_invalid_json_line(tmp_path: Path):
    path = tmp_path / "broken.jsonl"
    path.write_text('{"id": "q1", "prompt": "x", "responses": []}\n{not json}\n')
    with pytest.raises(ImportFileError) as err:
        import_files(project_name="b", fmt="jsonl", paths=[path])
    assert err.value.line in (1, 2)


def test_csv_import_and_missing_column(tmp_path: Path):
    good = tmp_path / "r.csv"
    good.write_text("item_id,prompt,context,response_id,model,text\nq1,Hi?,,a,m1,Hello\nq1,Hi?,,b,m2,Hey\n")
    result = import_files(project_name="c", fmt="csv", paths=[good])
    assert result.counts == {"items": 1, "responses": 2, "pairs": 1, "ratings": 0, "preferences": 0}
    bad = tmp_path / "bad.csv"
    bad.write_text("item_id,prompt,text\nq1,Hi?,Hello\n")
    with pytest.raises(ImportFileError, match="response_id"):
        import_files(project_name="c", fmt="csv", paths=[bad])


def test_import_command_reports_error(tmp_path: Path):
    path = tmp_path / "e.jsonl"
    path.write_text('{"id": "q1"}\n')
    with pytest.raises(CommandError, match=r"e.jsonl:1 \(field 'prompt'\)"):
        call_command("import_pairs", "cmd", "--format", "jsonl", str(path))


def test_upload_page_imports_and_reports_errors(client, researcher, tmp_path: Path):
    client.force_login(researcher)
    assert client.get("/import/").status_code == 200
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "q1", "prompt": "x", "responses": [{"id": "a", "text": "t"}], "ratings": [{"rater": "human:a", "response": "a", "attribute": "helpfulness", "value": 7}]}\n')
    with bad.open("rb") as fh:
        page = client.post("/import/", {"project": "up", "format": "jsonl", "files": [fh]})
    assert page.status_code == 200
    assert "bad.jsonl:1" in page.content.decode() and "nothing was written" in page.content.decode()
    assert not Project.objects.filter(name="up").exists()
    good = tmp_path / "good.jsonl"
    good.write_text('{"id": "q1", "prompt": "x", "responses": [{"id": "a", "text": "t"}, {"id": "b", "text": "u"}]}\n')
    with good.open("rb") as fh:
        page = client.post("/import/", {"project": "up", "format": "jsonl", "files": [fh]})
    assert page.status_code == 302
    assert Pair.objects.filter(item__project__name="up").count() == 1
    assert Project.objects.get(name="up").members.filter(pk=researcher.pk).exists()


def test_upload_page_is_for_researchers(client, annotator):
    client.force_login(annotator)
    assert client.get("/import/").status_code == 403


def test_redoc_page_loads_nothing_from_outside(client, researcher):
    client.force_login(researcher)
    page = client.get("/api/redoc/")
    assert page.status_code == 200
    assert "googleapis" not in page.content.decode() and "https://" not in page.content.decode()


def test_helpsteer2_layouts_import(tmp_path: Path):
    hs2 = _write_jsonl(tmp_path / "hs2.jsonl", [
        {"prompt": "P1", "response": "R1", "helpfulness": 3, "correctness": 4, "coherence": 4, "complexity": 1, "verbosity": 2},
        {"prompt": "P1", "response": "R2", "helpfulness": 1, "correctness": 1, "coherence": 3, "complexity": 1, "verbosity": 0},
    ])
    result = import_files(project_name="hs2", fmt="helpsteer2", paths=[hs2])
    assert result.counts == {"items": 1, "responses": 2, "pairs": 1, "ratings": 10, "preferences": 0}
    r1 = Response.objects.get(item__project=result.project, text="R1")
    assert {r.attribute.name: r.value for r in r1.ratings.all()}["correctness"] == 4
    pref = _write_jsonl(tmp_path / "pref.jsonl", [
        {"split": "train", "prompt": "P1", "response_1": "R1", "response_2": "R2", "preference_strength": -2,
         "preference_statement": "@Response 1 is better.", "preference_elaboration": "It is correct.",
         "three_most_similar_preferences": [], "all_preferences_unprocessed": []},
    ])
    result = import_files(project_name="hs2p", fmt="helpsteer2-preference", paths=[pref])
    stored = Preference.objects.get(pair__item__project=result.project)
    assert stored.strength == -2 and stored.pair.response_a.text == "R1"
    assert stored.justification.startswith("@Response 1 is better.")
    assert stored.pair.item.metadata["split"] == "train"
    bad = _write_jsonl(tmp_path / "badpref.jsonl", [
        {"prompt": "P", "response_1": "a", "response_2": "b", "preference_strength": 4},
    ])
    with pytest.raises(ImportFileError, match=r"badpref.jsonl:1 \(field 'strength'\).*-3..3"):
        import_files(project_name="hs2p", fmt="helpsteer2-preference", paths=[bad])


# --- a pair is unordered: (a, b) and its mirror (b, a) are one pair ----------------------------


def _item_row(pairs: list[list[str]], preferences: list[dict]) -> dict:
    return {"id": "q", "prompt": "Which?", "responses": [{"id": "a", "text": "Alpha"}, {"id": "b", "text": "Beta"}],
            "pairs": pairs, "preferences": preferences}


def _stored(project: Project) -> dict[tuple[str, str], tuple[int, str]]:
    return {(p.rater.name, p.shown_order): (p.strength, f"{p.pair.response_a.external_id}{p.pair.response_b.external_id}")
            for p in Preference.objects.filter(pair__item__project=project).select_related("rater", "pair__response_a", "pair__response_b")}


def test_import_of_a_pair_then_its_mirror_is_one_pair_with_signed_strengths(tmp_path: Path):
    first = _write_jsonl(tmp_path / "ab.jsonl", [_item_row([["a", "b"]], [
        {"rater": "human:h1", "pair": ["a", "b"], "strength": -2},
        {"rater": "judge:j", "pair": ["a", "b"], "strength": -3, "shown_order": "ab"},
    ])])
    # The same pair named the other way round: strengths about (b, a), b shown first for "ab".
    second = _write_jsonl(tmp_path / "ba.jsonl", [_item_row([["b", "a"]], [
        {"rater": "human:h2", "pair": ["b", "a"], "strength": 1},  # the second named, a, is better
        {"rater": "judge:j", "pair": ["b", "a"], "strength": 2, "shown_order": "ab"},  # b first, a better
    ])])
    project = import_files(project_name="mirror", fmt="jsonl", paths=[first]).project
    again = import_files(project_name="mirror", fmt="jsonl", paths=[second])
    assert Pair.objects.filter(item__project=project).count() == 1
    assert again.counts["pairs"] == 0 and again.counts["preferences"] == 2
    assert _stored(project) == {
        ("h1", "ab"): (-2, "ab"), ("h2", "ba"): (-1, "ab"), ("j", "ab"): (-3, "ab"), ("j", "ba"): (-2, "ab"),
    }
    # Importing the mirror again changes nothing: the judge's "ab" on (b, a) is its "ba" on (a, b).
    assert import_files(project_name="mirror", fmt="jsonl", paths=[second]).counts["preferences"] == 0


def test_one_file_naming_both_orders_stores_one_pair(tmp_path: Path):
    path = _write_jsonl(tmp_path / "both.jsonl", [_item_row([["a", "b"], ["b", "a"]], [
        {"rater": "judge:j", "pair": ["a", "b"], "strength": -1, "shown_order": "ab"},
        {"rater": "judge:j", "pair": ["b", "a"], "strength": -3, "shown_order": "ab"},  # b first: b much better
    ])])
    result = import_files(project_name="both", fmt="jsonl", paths=[path])
    assert result.counts["pairs"] == 1 and result.totals["pairs"] == 1
    assert _stored(result.project) == {("j", "ab"): (-1, "ab"), ("j", "ba"): (3, "ab")}


def test_a_human_judging_a_pair_and_its_mirror_is_rejected(tmp_path: Path):
    path = _write_jsonl(tmp_path / "twice.jsonl", [_item_row([["a", "b"], ["b", "a"]], [
        {"rater": "human:h", "pair": ["a", "b"], "strength": -1},
        {"rater": "human:h", "pair": ["b", "a"], "strength": 2},
    ])])
    with pytest.raises(ImportFileError, match="one preference per pair"):
        import_files(project_name="twice", fmt="jsonl", paths=[path])
    assert not Project.objects.filter(name="twice").exists()


def test_helpsteer2_preference_rows_of_a_pair_and_its_mirror(tmp_path: Path):
    path = _write_jsonl(tmp_path / "hs2p.jsonl", [
        {"prompt": "P", "response_1": "R1", "response_2": "R2", "preference_strength": -2},
        {"prompt": "P", "response_1": "R2", "response_2": "R1", "preference_strength": 3},
    ])
    # One published annotator per row ("helpsteer2"): the second row is the same pair mirrored,
    # and a human has one preference per pair.
    with pytest.raises(ImportFileError, match="one preference per pair"):
        import_files(project_name="hs2m", fmt="helpsteer2-preference", paths=[path])
    one = _write_jsonl(tmp_path / "one.jsonl", [{"prompt": "P", "response_1": "R1", "response_2": "R2", "preference_strength": -2}])
    mirror = _write_jsonl(tmp_path / "mirror.jsonl", [{"prompt": "P", "response_1": "R2", "response_2": "R1", "preference_strength": 3}])
    project = import_files(project_name="hs2m", fmt="helpsteer2-preference", paths=[one]).project
    import_files(project_name="hs2m", fmt="helpsteer2-preference", paths=[mirror])
    (pair,) = Pair.objects.filter(item__project=project)
    assert (pair.response_a.text, pair.response_b.text) == ("R1", "R2")
    # The mirror's preference of the same annotator is the one already stored: kept, not doubled.
    assert list(pair.preferences.values_list("strength", flat=True)) == [-2]
