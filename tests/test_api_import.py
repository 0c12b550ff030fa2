from __future__ import annotations

import json
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework.test import APIClient

from annotate.models import Preference, Project, Rating
from annotate.services import project_create

LINES = [
    {"raters": [{"name": "gpt-judge", "kind": "judge", "model": "m1"}]},
    {
        "id": "q1",
        "prompt": "Say hi",
        "responses": [{"id": "a", "model": "m1", "text": "Hi"}, {"id": "b", "model": "m2", "text": "Hello"}],
        "ratings": [{"rater": "human:ann", "response": "a", "attribute": "helpfulness", "value": 3}],
        "preferences": [{"rater": "judge:gpt-judge", "pair": ["a", "b"], "strength": 1, "shown_order": "ba"}],
    },
]


@pytest.fixture(autouse=True)
def fast_passwords(settings):
    # The shared fixtures create five users; PBKDF2 makes that seconds per test.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def jsonl(lines: list[dict], name: str = "items.jsonl") -> SimpleUploadedFile:
    body = "\n".join(json.dumps(line) for line in lines) + "\n"
    return SimpleUploadedFile(name, body.encode(), content_type="application/jsonl")


def client_for(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def post_import(client: APIClient, project: str, fmt: str, *files: SimpleUploadedFile):
    return client.post("/api/projects/import/", {"project": project, "format": fmt, "files": list(files)}, format="multipart")


def test_import_creates_project_and_reports_counts_then_reimport_creates_nothing(researcher):
    client = client_for(researcher)
    first = post_import(client, "Imported", "jsonl", jsonl(LINES))
    assert first.status_code == 201, first.content
    body = first.json()
    assert body["created_project"] is True
    assert body["created"]["items"] == 1
    assert body["created"]["pairs"] == 1
    project = Project.objects.get(name="Imported")
    assert body["project"] == {"id": project.pk, "name": "Imported"}
    assert Rating.objects.filter(response__item__project=project).count() == 1
    assert Preference.objects.filter(pair__item__project=project, rater_kind="judge").count() == 1
    # The importer is now a member and sees the project through the API.
    assert client.get(f"/api/projects/{project.pk}/").status_code == 200

    again = post_import(client, "Imported", "jsonl", jsonl(LINES))
    assert again.status_code == 200
    assert set(again.json()["created"].values()) == {0}


def test_bad_file_is_a_400_naming_file_line_and_field_and_writes_nothing(researcher):
    bad = [LINES[0], {**LINES[1], "ratings": [{**LINES[1]["ratings"][0], "value": 9}]}]
    response = post_import(client_for(researcher), "Broken", "jsonl", jsonl(bad, "broken.jsonl"))
    assert response.status_code == 400
    body = response.json()
    assert body["file"] == "broken.jsonl"
    assert body["line"] == 2
    assert body["field"]
    assert body["detail"]
    assert not Project.objects.filter(name="Broken").exists()


def test_import_input_is_validated(researcher):
    client = client_for(researcher)
    assert "format" in post_import(client, "X", "xml", jsonl(LINES)).json()
    assert "files" in client.post("/api/projects/import/", {"project": "X", "format": "jsonl"}, format="multipart").json()


def test_annotators_and_non_members_cannot_import(annotator, researcher):
    assert post_import(client_for(annotator), "Imported", "jsonl", jsonl(LINES)).status_code == 403
    project_create(name="Someone else's")
    assert post_import(client_for(researcher), "Someone else's", "jsonl", jsonl(LINES)).status_code == 403


def test_pandalm_files_import_in_order_through_the_api(researcher, shared_data: Path):
    folder = shared_data / "pandalm"
    names = ["testset-v1.json", "gpt-3.5-turbo-testset-v1.json", "pandalm-7b-testset-v1.json"]
    files = [SimpleUploadedFile(name, (folder / name).read_bytes()) for name in names]
    response = post_import(client_for(researcher), "pandalm", "pandalm", *files)
    assert response.status_code == 201, response.content
    assert response.json()["created"]["pairs"] == 999
    assert response.json()["created"]["preferences"] == 2997 + 1998


# --- the page and the API go through one upload service ----------------------------------------


def _item_line(ext: str) -> dict:
    return {"id": ext, "prompt": f"Prompt {ext}", "responses": [{"id": "a", "text": "x"}, {"id": "b", "text": "y"}]}


@pytest.mark.parametrize("via", ["api", "page"])
def test_two_files_with_the_same_name_both_import(researcher, client, via):
    files = [jsonl([_item_line("q1")], "items.jsonl"), jsonl([_item_line("q2")], "items.jsonl")]
    if via == "api":
        assert post_import(client_for(researcher), "Same", "jsonl", *files).status_code == 201
    else:
        client.force_login(researcher)
        assert client.post("/import/", {"project": "Same", "format": "jsonl", "files": files}).status_code == 302
    project = Project.objects.get(name="Same")
    assert sorted(project.items.values_list("external_id", flat=True)) == ["q1", "q2"]


@pytest.mark.parametrize("via", ["api", "page"])
def test_an_error_names_the_uploaded_file_not_a_temporary_path(researcher, client, via):
    bad = [_item_line("q1"), {**_item_line("q2"), "ratings": [{"rater": "human:x", "response": "a",
                                                               "attribute": "helpfulness", "value": 9}]}]
    files = [jsonl([_item_line("q0")], "fine.jsonl"), jsonl(bad, "broken.jsonl")]
    if via == "api":
        body = post_import(client_for(researcher), "Err", "jsonl", *files).json()
        assert (body["file"], body["line"], body["field"]) == ("broken.jsonl", 2, "helpfulness")
        message = body["detail"]
    else:
        client.force_login(researcher)
        page = client.post("/import/", {"project": "Err", "format": "jsonl", "files": files})
        message = page.content.decode()
        assert "broken.jsonl:2 (field &#x27;helpfulness&#x27;)" in message
    assert "concordance-import" not in message and "/tmp" not in message
    assert not Project.objects.filter(name="Err").exists()
