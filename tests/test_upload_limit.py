"""An upload larger than CONCORDANCE_MAX_UPLOAD_MB is answered 413 with a message, JSON on the
API and a page on the import page, before the body is read (issue 10, item 4)."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework.test import APIClient

from annotate.models import Project

pytestmark = pytest.mark.django_db

LINE = b'{"id": "q1", "prompt": "p", "responses": [{"id": "a", "text": "t"}]}\n'


@pytest.fixture
def one_mb_limit(settings):
    settings.CONCORDANCE = {**settings.CONCORDANCE, "MAX_UPLOAD_MB": 1}


def big_upload() -> SimpleUploadedFile:
    return SimpleUploadedFile("big.jsonl", LINE * (1_100_000 // len(LINE) + 1))


def test_default_limit_is_a_few_hundred_mb(settings):
    assert 100 <= settings.CONCORDANCE["MAX_UPLOAD_MB"] <= 1024


def test_api_import_over_the_limit_is_a_413_json(one_mb_limit, researcher):
    client = APIClient()
    client.force_authenticate(researcher)
    response = client.post("/api/projects/import/", {"project": "p", "format": "jsonl", "files": [big_upload()]},
                           format="multipart")
    assert response.status_code == 413
    body = response.json()
    assert "at most 1 MB" in body["detail"]
    assert body["limit_mb"] == 1
    assert not Project.objects.exists()


def test_import_page_over_the_limit_is_a_413_page(one_mb_limit, researcher, client):
    client.force_login(researcher)
    response = client.post("/import/", {"project": "p", "format": "jsonl", "files": [big_upload()]})
    assert response.status_code == 413
    assert response["Content-Type"].startswith("text/html")
    assert b"Upload too large" in response.content
    assert b"CONCORDANCE_MAX_UPLOAD_MB" in response.content
    assert not Project.objects.exists()


def test_under_the_limit_imports(one_mb_limit, researcher):
    client = APIClient()
    client.force_authenticate(researcher)
    upload = SimpleUploadedFile("small.jsonl", LINE)
    response = client.post("/api/projects/import/", {"project": "p", "format": "jsonl", "files": [upload]},
                           format="multipart")
    assert response.status_code == 201, response.content


def test_unmatched_api_url_is_a_json_404(researcher):
    client = APIClient()
    client.force_authenticate(researcher)
    response = client.get("/api/items/not-a-number/")
    assert response.status_code == 404
    assert response.json() == {"detail": "Not found."}
