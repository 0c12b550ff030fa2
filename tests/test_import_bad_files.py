"""Every decoding or structure error in an import file is an ImportFileError naming file, line and
field, and writes nothing: invalid UTF-8, binary files, very deep JSON, wrong top-level types,
CSV oddities, values the database cannot hold (issue 10, item 4)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework.test import APIClient

from annotate.errors import ImportFileError
from annotate.errors import ValidationError as ServiceValidationError
from annotate.importers import import_files, parse_files
from annotate.models import Item, Project

GOOD_LINE = {"id": "q1", "prompt": "Say hi", "responses": [{"id": "a", "text": "Hi"}, {"id": "b", "text": "Hey"}]}


def write(tmp_path: Path, name: str, content: bytes | str) -> Path:
    path = tmp_path / name
    path.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
    return path


def fails(fmt: str, *paths: Path) -> ImportFileError:
    with pytest.raises(ImportFileError) as caught:
        parse_files(fmt=fmt, paths=list(paths))
    return caught.value


def line(obj: object) -> str:
    return json.dumps(obj) + "\n"


# --- Decoding ---------------------------------------------------------------------------------


def test_invalid_utf8_in_jsonl_names_the_line(tmp_path):
    path = write(tmp_path, "a.jsonl", line(GOOD_LINE).encode() + b'{"id": "q2", "prompt": "caf\xe9"}\n')
    error = fails("jsonl", path)
    assert (error.path, error.line) == (str(path), 2)
    assert "UTF-8" in error.detail


def test_invalid_utf8_in_csv_names_the_line(tmp_path):
    path = write(tmp_path, "a.csv", b"item_id,prompt,response_id,text\nq1,p,a,ok\nq1,p,b,caf\xe9\n")
    error = fails("csv", path)
    assert error.line == 3
    assert "UTF-8" in error.detail


def test_invalid_utf8_in_a_json_list_names_the_line(tmp_path):
    path = write(tmp_path, "testset.json", b'[\n{"idx": 1,\n "instruction": "\xff"}\n]')
    error = fails("pandalm", path)
    assert error.line == 3
    assert "UTF-8" in error.detail


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "helpsteer2", "autoj", "pandalm"])
def test_a_binary_file_is_refused_clearly(tmp_path, fmt):
    path = write(tmp_path, "picture.png", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x01\x00" + bytes(range(256)))
    error = fails(fmt, path)
    assert error.path == str(path)
    assert "binary" in error.detail or "UTF-8" in error.detail


def test_a_utf8_bom_is_accepted(tmp_path):
    csv_path = write(tmp_path, "a.csv", "\ufeffitem_id,prompt,response_id,text\nq1,p,a,ok\n")
    jsonl_path = write(tmp_path, "a.jsonl", "\ufeff" + line(GOOD_LINE))
    assert list(parse_files(fmt="csv", paths=[csv_path]).items) == ["q1"]
    assert list(parse_files(fmt="jsonl", paths=[jsonl_path]).items) == ["q1"]


# --- Structure --------------------------------------------------------------------------------


def test_very_deep_json_in_jsonl_is_an_error_not_a_crash(tmp_path):
    path = write(tmp_path, "a.jsonl", line(GOOD_LINE) + "[" * 100_000 + "]" * 100_000 + "\n")
    error = fails("jsonl", path)
    assert error.line == 2
    assert "deep" in error.detail


def test_very_deep_json_list_file_is_an_error_not_a_crash(tmp_path):
    path = write(tmp_path, "testset.json", "[" * 100_000 + "]" * 100_000)
    error = fails("pandalm", path)
    assert "deep" in error.detail


def test_deep_metadata_is_refused(tmp_path):
    deep: object = "x"
    for _ in range(60):
        deep = {"k": deep}
    path = write(tmp_path, "a.jsonl", line({**GOOD_LINE, "metadata": deep}))
    error = fails("jsonl", path)
    assert (error.line, error.field) == (1, "metadata")


@pytest.mark.parametrize("top", ['{"idx": 1}', '"text"', "3", "null"])
def test_a_json_list_file_of_the_wrong_type(tmp_path, top):
    error = fails("pandalm", write(tmp_path, "testset.json", top))
    assert "list" in error.detail


def test_pandalm_verdicts_that_are_not_objects(tmp_path, shared_data=None):
    testset = write(tmp_path, "testset.json", json.dumps([{
        "idx": 1, "cmp_key": "m1_m2", "instruction": "i", "response1": "a", "response2": "b",
        "annotator1": 1, "annotator2": 1, "annotator3": 0,
    }]))
    verdicts = write(tmp_path, "gpt.json", json.dumps([1, 2]))
    error = fails("pandalm", testset, verdicts)
    assert (error.path, error.line) == (str(verdicts), 1)
    assert "object" in error.detail


@pytest.mark.parametrize(
    ("field", "value"),
    [("context", 3), ("metadata", ["a"]), ("prompt", "a\u0000b"), ("context", "\u0000"), ("id", "x" * 201)],
)
def test_jsonl_item_values_the_database_cannot_hold(tmp_path, field, value):
    error = fails("jsonl", write(tmp_path, "a.jsonl", line({**GOOD_LINE, field: value})))
    assert (error.line, error.field) == (1, field)


@pytest.mark.parametrize(
    ("field", "value"), [("id", "r" * 201), ("text", "nul\u0000"), ("model", "m" * 201)]
)
def test_jsonl_response_values_the_database_cannot_hold(tmp_path, field, value):
    responses = [{"id": "a", "text": "Hi"}, {"id": "b", "text": "Hey", field: value}]
    error = fails("jsonl", write(tmp_path, "a.jsonl", line({**GOOD_LINE, "responses": responses})))
    assert (error.line, error.field) == (1, f"responses[1].{field}")


def test_jsonl_rater_name_too_long(tmp_path):
    row = {**GOOD_LINE, "preferences": [{"rater": "human:" + "n" * 201, "pair": ["a", "b"], "strength": 1}]}
    error = fails("jsonl", write(tmp_path, "a.jsonl", line(row)))
    assert (error.line, error.field) == (1, "preferences[0].rater")


def test_jsonl_justification_with_nul(tmp_path):
    row = {**GOOD_LINE, "preferences": [{"rater": "human:x", "pair": ["a", "b"], "strength": 1, "justification": "\u0000"}]}
    error = fails("jsonl", write(tmp_path, "a.jsonl", line(row)))
    assert (error.line, error.field) == (1, "preferences[0].justification")


def test_csv_with_a_nul_byte(tmp_path):
    path = write(tmp_path, "a.csv", b"item_id,prompt,response_id,text\nq1,p,a,o\x00k\n")
    error = fails("csv", path)
    assert error.line == 2


def test_csv_with_an_unterminated_quote(tmp_path):
    path = write(tmp_path, "a.csv", 'item_id,prompt,response_id,text\nq1,p,a,"never closed\n')
    error = fails("csv", path)
    assert error.path == str(path)
    assert error.line is not None


def test_csv_row_shorter_than_the_header(tmp_path):
    path = write(tmp_path, "a.csv", "item_id,prompt,response_id,text\nq1,p,a\n")
    error = fails("csv", path)
    assert (error.line, error.field) == (2, "text")


def test_csv_id_longer_than_the_column(tmp_path):
    path = write(tmp_path, "a.csv", f"item_id,prompt,response_id,text\n{'q' * 201},p,a,t\n")
    error = fails("csv", path)
    assert (error.line, error.field) == (2, "item_id")


def test_sparse_feedback_invalid_utf8(tmp_path):
    ratings = write(tmp_path, "ratings.csv", b"i,,o,\xff\n")
    rankings = write(tmp_path, "rankings.csv", "i,,a,b,(a)\n")
    error = fails("sparse-feedback", ratings, rankings)
    assert (error.path, error.line) == (str(ratings), 1)


def test_empty_file_is_fine_or_clear(tmp_path):
    # An empty JSONL file holds no items: parsed as nothing, not a crash.
    assert parse_files(fmt="jsonl", paths=[write(tmp_path, "a.jsonl", "")]).items == {}
    error = fails("pandalm", write(tmp_path, "testset.json", ""))
    assert "JSON" in error.detail


# --- Through the import service, the API and the page -----------------------------------------


@pytest.mark.django_db
def test_a_bad_file_writes_nothing(tmp_path):
    path = write(tmp_path, "a.jsonl", line(GOOD_LINE).encode() + b"\xff\n")
    with pytest.raises(ImportFileError):
        import_files(project_name="p", fmt="jsonl", paths=[path])
    assert not Project.objects.filter(name="p").exists()
    assert not Item.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize("name", ["two\nlines", "x" * 201, "  "])
def test_import_service_refuses_a_bad_project_name(tmp_path, name):
    path = write(tmp_path, "a.jsonl", line(GOOD_LINE))
    with pytest.raises(ServiceValidationError) as caught:
        import_files(project_name=name, fmt="jsonl", paths=[path])
    assert caught.value.field == "project"
    assert not Project.objects.exists()


@pytest.mark.django_db
def test_api_answers_a_binary_upload_with_file_and_line(researcher):
    client = APIClient()
    client.force_authenticate(researcher)
    upload = SimpleUploadedFile("blob.jsonl", b"\x00\x01\x02\xff\xfe" * 100)
    response = client.post("/api/projects/import/", {"project": "p", "format": "jsonl", "files": [upload]}, format="multipart")
    assert response.status_code == 400
    body = response.json()
    assert body["file"] == "blob.jsonl"
    assert body["line"] == 1


@pytest.mark.django_db
def test_page_answers_a_deep_json_upload_with_the_error(researcher, client):
    client.force_login(researcher)
    upload = SimpleUploadedFile("deep.jsonl", ("[" * 50_000 + "]" * 50_000 + "\n").encode())
    response = client.post("/import/", {"project": "p", "format": "jsonl", "files": [upload]})
    assert response.status_code == 200
    assert b"deep.jsonl:1" in response.content


@pytest.mark.django_db
def test_page_answers_a_bad_project_name_with_the_error(researcher, client):
    client.force_login(researcher)
    upload = SimpleUploadedFile("a.jsonl", line(GOOD_LINE).encode())
    response = client.post("/import/", {"project": "bad\x07name", "format": "jsonl", "files": [upload]})
    assert response.status_code == 200
    assert b"one line of printable text" in response.content
    assert not Project.objects.exists()


@pytest.mark.django_db
def test_page_answers_a_nul_in_the_project_name_with_the_error(researcher, client):
    client.force_login(researcher)
    upload = SimpleUploadedFile("a.jsonl", line(GOOD_LINE).encode())
    response = client.post("/import/", {"project": "bad\x00name", "format": "jsonl", "files": [upload]})
    assert response.status_code == 200
    assert b"one line of printable text" in response.content
