"""Gold, attention and sanity items from files (jsonl, csv), the items API, and a share of a
dataset's human labels (helpsteer2, pandalm); then the dashboard's gold figures on such a project."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework.test import APIClient

from annotate import dashboard
from annotate.errors import ImportFileError, ValidationError
from annotate.importers import import_files
from annotate.models import Item, Pair, Project, Rater, Response
from annotate.services import preference_submit, rater_for_user, ratings_submit
from annotate.verdicts import gold_preference_passes, gold_rating_passes, gold_strength_from

pytestmark = pytest.mark.django_db


def _jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


TWO = [{"id": "a", "text": "42."}, {"id": "b", "text": "52."}]


def test_jsonl_gold_item_stores_known_ratings_and_strength_in_stored_order(tmp_path: Path):
    path = _jsonl(tmp_path / "g.jsonl", [
        {"id": "t1", "prompt": "Hi?", "responses": TWO},
        {"id": "g1", "role": "gold", "prompt": "12 + 30?", "responses": TWO, "pairs": [["a", "b"]],
         # named against the stored order: stored as a-vs-b with the sign flipped
         "gold": {"ratings": [{"response": "a", "attribute": "correctness", "value": 4},
                              {"response": "b", "attribute": "correctness", "value": 0}],
                  "pairs": [{"pair": ["b", "a"], "strength": 3}]}},
        {"id": "s1", "role": "sanity", "prompt": "Capital of France?", "responses": TWO,
         "gold": {"pairs": [{"pair": ["a", "b"], "strength": 1}]}},
        {"id": "c1", "role": "attention", "prompt": "Pick A.", "responses": TWO,
         "gold": {"ratings": [{"response": "a", "attribute": "helpfulness", "value": 4}]}},
    ])
    result = import_files(project_name="gold", fmt="jsonl", paths=[path])
    assert result.totals["gold_pairs"] == 2 and result.totals["gold_ratings"] == 3
    roles = dict(Item.objects.filter(project=result.project).values_list("external_id", "role"))
    assert roles == {"t1": "task", "g1": "gold", "s1": "sanity", "c1": "attention"}
    pair = Pair.objects.get(item__external_id="g1")
    assert (pair.response_a.external_id, pair.gold_strength) == ("a", -3)
    assert Response.objects.get(item__external_id="g1", external_id="b").gold_ratings == {"correctness": 0}
    assert Pair.objects.get(item__external_id="s1").gold_strength == 1
    assert Pair.objects.get(item__external_id="t1").gold_strength is None
    # A re-import is a no-op, gold included.
    again = import_files(project_name="gold", fmt="jsonl", paths=[path])
    assert sum(again.counts.values()) == 0
    assert Pair.objects.get(item__external_id="g1").gold_strength == -3


@pytest.mark.parametrize(("row", "field", "words"), [
    ({"role": "gold"}, "gold", "needs its known answer"),
    ({"role": "task", "gold": {"pairs": [{"pair": ["a", "b"], "strength": 1}]}}, "role", "role gold"),
    ({"role": "boss"}, "role", "role must be"),
    ({"role": "gold", "gold": [1]}, "gold", "must be an object"),
    ({"role": "gold", "gold": {"pairs": [], "answers": []}}, "gold", "unknown key"),
    ({"role": "gold", "gold": {"ratings": [{"response": "z", "attribute": "helpfulness", "value": 1}]}},
     "gold.ratings[0].response", "unknown response"),
    ({"role": "gold", "gold": {"ratings": [{"response": "a", "attribute": "helpfulness"}]}}, "gold.ratings[0].value", "missing"),
    ({"role": "gold", "gold": {"ratings": [{"response": "a", "attribute": "helpfulness", "value": 9}]}},
     "gold.ratings[0].value", "outside helpfulness's scale 0-4"),
    ({"role": "gold", "gold": {"ratings": [{"response": "a", "attribute": "charm", "value": 1}]}},
     "gold.ratings[0].value", "not one of project"),
    ({"role": "gold", "gold": {"pairs": [{"pair": ["a", "b"], "strength": 4}]}}, "gold.pairs[0].strength", "outside"),
    ({"role": "gold", "gold": {"pairs": [{"pair": ["a", "b"], "strength": "much"}]}}, "gold.pairs[0].strength", "integer"),
    ({"role": "gold", "gold": {"pairs": [{"pair": ["a", "a"], "strength": 1}]}}, "gold.pairs[0].pair", "two different"),
    ({"role": "gold", "gold": {"pairs": [{"pair": ["a", "b"], "strength": 1}, {"pair": ["b", "a"], "strength": 1}]}},
     "gold.pairs[1].pair", "twice"),
])
def test_jsonl_bad_gold_names_file_line_field_and_writes_nothing(tmp_path: Path, row: dict, field: str, words: str):
    path = _jsonl(tmp_path / "bad.jsonl", [
        {"id": "t1", "prompt": "Hi?", "responses": TWO},
        {"id": "g1", "prompt": "12 + 30?", "responses": TWO, **row},
    ])
    with pytest.raises(ImportFileError) as err:
        import_files(project_name="bad", fmt="jsonl", paths=[path])
    assert (err.value.line, err.value.field) == (2, field), str(err.value)
    assert words in str(err.value) and "bad.jsonl:2" in str(err.value)
    assert not Project.objects.filter(name="bad").exists() and Item.objects.count() == 0


CSV = (
    "item_id,prompt,response_id,text,role,gold_correctness,gold_pair_with,gold_strength\n"
    "t1,Hi?,a,Hello,,,,\n"
    "t1,Hi?,b,Hey,,,,\n"
    "g1,12 + 30?,a,42.,gold,4,b,-3\n"
    "g1,12 + 30?,b,52.,gold,0,,\n"
)


def test_csv_role_and_gold_columns(tmp_path: Path):
    path = tmp_path / "g.csv"
    path.write_text(CSV)
    project = import_files(project_name="csv-gold", fmt="csv", paths=[path]).project
    item = Item.objects.get(project=project, external_id="g1")
    assert item.role == "gold"
    assert Pair.objects.get(item=item).gold_strength == -3
    assert {r.external_id: r.gold_ratings for r in item.responses.all()} == {"a": {"correctness": 4}, "b": {"correctness": 0}}
    assert Item.objects.get(project=project, external_id="t1").role == "task"


@pytest.mark.parametrize(("row", "line", "field"), [
    ("g1,12 + 30?,b,52.,,0,,", 5, "role"),  # the item's second row drops its role
    ("g1,12 + 30?,b,52.,gold,x,,", 5, "gold_correctness"),
    ("g1,12 + 30?,b,52.,gold,7,,", 5, "gold_correctness"),
    ("g1,12 + 30?,b,52.,gold,0,a,", 5, "gold_strength"),
    ("g1,12 + 30?,b,52.,gold,0,z,1", 5, "gold_pair_with"),
    ("g1,12 + 30?,b,52.,gold,0,a,2", 5, "gold_strength"),  # the same pair's gold twice
])
def test_csv_bad_gold_names_line_and_column(tmp_path: Path, row: str, line: int, field: str):
    path = tmp_path / "bad.csv"
    path.write_text(CSV.rsplit("g1,12 + 30?,b", 1)[0] + row + "\n")
    with pytest.raises(ImportFileError) as err:
        import_files(project_name="bad-csv", fmt="csv", paths=[path])
    assert (err.value.line, err.value.field) == (line, field), str(err.value)
    assert not Project.objects.filter(name="bad-csv").exists()


def test_csv_gold_item_without_an_answer_is_refused(tmp_path: Path):
    path = tmp_path / "bad.csv"
    path.write_text("item_id,prompt,response_id,text,role\ng1,Q?,a,x,gold\ng1,Q?,b,y,gold\n")
    with pytest.raises(ImportFileError) as err:
        import_files(project_name="bad-csv", fmt="csv", paths=[path])
    assert err.value.line == 2 and "known answer" in str(err.value)


def _api(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def test_items_api_creates_a_gold_item_and_reads_its_answer(researcher, project: Project):
    client = _api(researcher)
    body = {"project": project.pk, "external_id": "g1", "prompt": "12 + 30?", "role": "gold",
            "responses": [{"external_id": "a", "text": "42."}, {"external_id": "b", "text": "52."}],
            "gold": {"ratings": [{"response": "a", "attribute": "correctness", "value": 4}],
                     "pairs": [{"pair": ["b", "a"], "strength": 2}]}}
    answer = client.post("/api/items/", body, format="json")
    assert answer.status_code == 201, answer.content
    assert answer.json()["gold"] == {"ratings": [{"response": "a", "attribute": "correctness", "value": 4}],
                                     "pairs": [{"pair": ["a", "b"], "strength": -2}]}
    assert Pair.objects.get(item__external_id="g1").gold_strength == -2
    listed = client.get(f"/api/items/?project={project.pk}&role=gold").json()["results"]
    assert [i["external_id"] for i in listed] == ["g1"]
    schema = client.get("/api/schema/?format=json").json()
    assert "gold" in schema["components"]["schemas"]["ItemCreate"]["properties"]
    assert "gold" in schema["components"]["schemas"]["Item"]["properties"]


@pytest.mark.parametrize(("change", "field"), [
    ({"gold": None}, "gold"),
    ({"role": "task"}, "gold"),
    ({"gold": {"pairs": [{"pair": ["a", "b"], "strength": 5}]}}, "gold.pairs[0]"),
    ({"gold": {"ratings": [{"response": "a", "attribute": "charm", "value": 1}]}}, "gold.ratings[0]"),
    ({"gold": {"ratings": [{"response": "q", "attribute": "correctness", "value": 1}]}}, "gold"),
])
def test_items_api_refuses_bad_gold_and_writes_nothing(researcher, project: Project, change: dict, field: str):
    body = {"project": project.pk, "external_id": "g1", "prompt": "Q?", "role": "gold",
            "responses": [{"external_id": "a", "text": "x"}, {"external_id": "b", "text": "y"}],
            "gold": {"pairs": [{"pair": ["a", "b"], "strength": 1}]}, **change}
    answer = _api(researcher).post("/api/items/", body, format="json")
    assert answer.status_code == 400, answer.content
    data = answer.json()
    assert field in (data.get("field") or "") or field in data, data
    assert not Item.objects.filter(external_id="g1").exists()


def _helpsteer2(path: Path, n: int) -> Path:
    return _jsonl(path, [
        {"prompt": f"Question {i}?", "response": f"Answer {i}.", "helpfulness": i % 5, "correctness": 4,
         "coherence": 3, "complexity": 1, "verbosity": 2}
        for i in range(n)
    ])


def test_helpsteer2_gold_share_marks_items_from_the_human_ratings_stably(tmp_path: Path):
    path = _helpsteer2(tmp_path / "hs2.jsonl", 20)
    result = import_files(project_name="hs2", fmt="helpsteer2", paths=[path], gold_share=0.25)
    gold = Item.objects.filter(project=result.project, role="gold")
    assert gold.count() == 5
    for item in gold:
        response = item.responses.get()
        i = int(item.prompt.split()[1].rstrip("?"))
        assert response.gold_ratings == {"helpfulness": i % 5, "correctness": 4, "coherence": 3, "complexity": 1, "verbosity": 2}
    chosen = set(gold.values_list("external_id", flat=True))
    again = import_files(project_name="hs2", fmt="helpsteer2", paths=[path], gold_share=0.25)
    assert sum(again.counts.values()) == 0
    assert set(Item.objects.filter(project=result.project, role="gold").values_list("external_id", flat=True)) == chosen


def test_pandalm_gold_share_takes_the_three_annotators_majority(shared_data: Path):
    result = import_files(project_name="pandalm-gold", fmt="pandalm", paths=[shared_data / "pandalm" / "testset-v1.json"],
                          gold_share=0.1)
    gold = Pair.objects.filter(item__project=result.project, item__role="gold")
    assert gold.count() == 100  # 10% of 999, rounded
    rows = json.loads((shared_data / "pandalm" / "testset-v1.json").read_text())
    labels = {str(r["idx"]): [r["annotator1"], r["annotator2"], r["annotator3"]] for r in rows}
    to_strength = {0: 0, 1: -1, 2: 1}
    for pair in gold.select_related("item"):
        votes = [to_strength[v] for v in labels[pair.item.external_id]]
        # The majority by hand: the most common label, the earliest on a three-way split.
        counts = {v: votes.count(v) for v in votes}
        top = max(counts.values())
        expected = next(v for v in votes if counts[v] == top)
        assert pair.gold_strength == expected


def test_gold_share_is_checked(tmp_path: Path):
    path = _helpsteer2(tmp_path / "hs2.jsonl", 3)
    with pytest.raises(ValidationError) as err:
        import_files(project_name="hs2", fmt="helpsteer2", paths=[path], gold_share=1.5)
    assert err.value.field == "gold_share"
    plain = _jsonl(tmp_path / "plain.jsonl", [{"id": "t1", "prompt": "Hi?", "responses": TWO}])
    with pytest.raises(ValidationError, match="no human labels"):
        import_files(project_name="plain", fmt="jsonl", paths=[plain], gold_share=0.5)
    assert not Project.objects.exists()


def test_gold_share_through_the_api_and_the_page(researcher, client, tmp_path: Path):
    body = _helpsteer2(tmp_path / "hs2.jsonl", 10).read_bytes()
    answer = _api(researcher).post("/api/projects/import/", {
        "project": "hs2-api", "format": "helpsteer2", "gold_share": 0.5,
        "files": [SimpleUploadedFile("hs2.jsonl", body)]}, format="multipart")
    assert answer.status_code == 201, answer.content
    assert Item.objects.filter(project__name="hs2-api", role="gold").count() == 5
    client.force_login(researcher)
    page = client.post("/import/", {"project": "hs2-page", "format": "helpsteer2", "gold_share": "0.3",
                                    "files": [SimpleUploadedFile("hs2.jsonl", body)]})
    assert page.status_code == 302, page.content.decode()[:2000]
    assert Item.objects.filter(project__name="hs2-page", role="gold").count() == 3
    bad = client.post("/import/", {"project": "hs2-bad", "format": "helpsteer2", "gold_share": "lots",
                                   "files": [SimpleUploadedFile("hs2.jsonl", body)]})
    assert "gold_share" in bad.content.decode() and not Project.objects.filter(name="hs2-bad").exists()


def test_gold_rules_by_hand():
    assert gold_rating_passes({"helpfulness": 3}, {"helpfulness": 4}) is True
    assert gold_rating_passes({"helpfulness": 2, "correctness": 4}, {"helpfulness": 4, "correctness": 4}) is False
    assert gold_rating_passes({"helpfulness": 2}, {"correctness": 4}) is None
    assert gold_preference_passes(-1, -3) is True and gold_preference_passes(0, -3) is False
    assert gold_preference_passes(2, None) is None
    assert gold_strength_from([-1, -3, 2]) == -2 and gold_strength_from([1, 0, -1]) == 1
    assert gold_strength_from([]) is None


def test_dashboard_gold_figures_on_an_imported_project(tmp_path: Path, annotator, other_annotator):
    path = _jsonl(tmp_path / "g.jsonl", [
        {"id": f"g{k}", "role": "gold", "prompt": f"Q{k}?", "responses": TWO,
         "gold": {"pairs": [{"pair": ["a", "b"], "strength": -2}],
                  "ratings": [{"response": "a", "attribute": "helpfulness", "value": 4}]}}
        for k in range(3)
    ])
    project = import_files(project_name="dash", fmt="jsonl", paths=[path]).project
    alice, bob = rater_for_user(user=annotator), rater_for_user(user=other_annotator)
    for k, pair in enumerate(Pair.objects.filter(item__project=project).select_related("response_a").order_by("item__external_id")):
        # alice: A, A, B on the pairs (2 of 3 pass); bob: tie everywhere (0 of 3).
        preference_submit(rater=alice, pair=pair, strength=-1 if k < 2 else 1)
        preference_submit(rater=bob, pair=pair, strength=0)
        ratings_submit(rater=alice, response=pair.response_a, values={"helpfulness": 3, "correctness": 0, "coherence": 0, "complexity": 0, "verbosity": 0})
    rows = {r.rater.name: r for r in dashboard.annotator_rows(project=project)}
    # alice: 3 pairs (2 pass) + 3 rated gold responses (all within 1 of 4) = 5 of 6.
    assert (rows[alice.name].gold_passed, rows[alice.name].gold_total) == (5, 6)
    assert (rows[bob.name].gold_passed, rows[bob.name].gold_total) == (0, 3)
    assert not Rater.objects.filter(project=project).exists()  # no imported raters: only the two people
