from __future__ import annotations

import re

import pytest
from django.core.management import call_command
from drf_spectacular.drainage import GENERATOR_STATS
from drf_spectacular.generators import SchemaGenerator

CORE_PATHS = [
    "/api/projects/", "/api/projects/{id}/", "/api/projects/import/", "/api/items/", "/api/items/{id}/",
    "/api/responses/", "/api/responses/{id}/", "/api/pairs/", "/api/pairs/{id}/", "/api/raters/",
    "/api/raters/{id}/", "/api/ratings/", "/api/preferences/",
]


@pytest.fixture(autouse=True)
def fast_passwords(settings):
    # The shared fixtures create five users; PBKDF2 makes that seconds per test.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def test_schema_generates_without_warnings_for_the_core_api():
    GENERATOR_STATS.reset()
    schema = SchemaGenerator().get_schema(request=None, public=True)
    messages = [*GENERATOR_STATS._warn_cache, *GENERATOR_STATS._error_cache]
    # Other apps' views are theirs to keep clean; these are the core API's files and views.
    ours = re.compile(r"annotate/(api|serializers|filters)\.py|(Project|Item|Response|Pair|Rater|Rating|Preference)\w*Api")
    assert [m for m in messages if ours.search(m)] == []
    assert set(CORE_PATHS) <= set(schema["paths"])
    ratings = schema["paths"]["/api/ratings/"]["get"]
    params = {p["name"] for p in ratings["parameters"]}
    assert {"page", "page_size", "project", "rater", "kind", "attribute", "model", "created_after"} <= params
    assert "multipart/form-data" in schema["paths"]["/api/projects/import/"]["post"]["requestBody"]["content"]


def test_schema_endpoint_serves_it(researcher, client):
    client.force_login(researcher)
    response = client.get("/api/schema/")
    assert response.status_code == 200
    assert b"/api/preferences/" in response.content


@pytest.mark.django_db
def test_spectacular_validate_passes(tmp_path):
    call_command("spectacular", "--validate", "--file", str(tmp_path / "schema.yaml"))
    assert (tmp_path / "schema.yaml").read_text().count("/api/") >= len(CORE_PATHS)


def test_swagger_docs_render_without_external_urls(researcher, client):
    client.force_login(researcher)
    response = client.get("/api/docs/")
    assert response.status_code == 200
    html = response.content.decode()
    external = re.findall(r"""(?:src|href)=["'](https?:)?//[^"']+""", html)
    assert external == []
    assert "cdn" not in html.lower()
    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/" in html
