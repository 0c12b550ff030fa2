"""Bad input the database cannot hold is a 400 naming the field, never a 500 (issue 10, item 4):
NUL characters, out-of-range time zones, integers past the column's width, ids past 2^63,
control characters in a project's name."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from annotate.models import Pair, Project
from annotate.services import preference_submit, rater_for_user, ratings_submit

pytestmark = pytest.mark.django_db

BIG = 2**31  # one past PostgreSQL's integer
HUGE = 2**64  # past bigint (ids)


def client_for(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


@pytest.fixture
def data(project, annotator):
    item = project.items.create(external_id="i1", prompt="Say hi")
    a = item.responses.create(external_id="r1", text="Hi", model="m-a")
    b = item.responses.create(external_id="r2", text="Hello", model="m-b")
    pair = Pair.objects.create(item=item, response_a=a, response_b=b)
    mine = rater_for_user(user=annotator)
    ratings_submit(rater=mine, response=a, values={"helpfulness": 3})
    preference_submit(rater=mine, pair=pair, strength=-1)
    return {"item": item, "a": a, "b": b, "pair": pair}


def assert_names(response, field: str) -> None:
    assert response.status_code == 400, (response.status_code, response.content[:300])
    body = response.json()
    assert field in body or body.get("field") == field, body


# --- Query parameters -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "field"),
    [
        ("/api/items/?external_id=a%00b", "external_id"),
        ("/api/responses/?model=a%00b", "model"),
        ("/api/raters/?name=%00", "name"),
        ("/api/ratings/?attribute=help%00", "attribute"),
        ("/api/projects/?name=x%00", "name"),
        ("/api/items/?project=99999999999999999999", "project"),
        ("/api/pairs/?response=-5", "response"),
        ("/api/ratings/?value=2147483648", "value"),
        ("/api/preferences/?strength=-99999999999", "strength"),
        ("/api/ratings/?created_after=0001-01-01T00:00:00%2B05:00", "created_after"),
        ("/api/ratings/?created_before=9999-12-31T23:00:00-05:00", "created_before"),
        ("/api/ratings/?created_after=2020-01-01T00:00:00%2B25:00", "created_after"),
    ],
)
def test_bad_filter_is_a_400_naming_it(data, researcher, url, field):
    assert_names(client_for(researcher).get(url), field)


def test_a_far_but_valid_time_zone_filters_as_its_utc_moment(data, researcher):
    # +23:00 is a valid ISO 8601 offset that PostgreSQL refuses as a literal: it must not reach it.
    response = client_for(researcher).get("/api/ratings/?created_before=2999-01-01T00:00:00%2B23:00")
    assert response.status_code == 200
    assert response.json()["count"] == 1


@pytest.mark.parametrize(
    ("url", "field"),
    [("/api/runs/?project=abc", "project"), ("/api/runs/?status=a%00", "status"), ("/api/runs/?project=0", "project")],
)
def test_run_list_filters_are_checked(data, researcher, url, field):
    assert_names(client_for(researcher).get(url), field)


@pytest.mark.parametrize(
    ("query", "field"),
    [("judge=a%00", "judge"),
     ("licence=a%00b", "licence")],
)
def test_export_parameters_are_checked(data, researcher, query, field):
    project = data["item"].project
    response = client_for(researcher).get(f"/api/projects/{project.pk}/export/?format=dpo&{query}")
    assert_names(response, field)


@pytest.mark.parametrize(("query", "field"), [("attribute=a%00", "attribute"), ("wildbench_k=99999999999", "wildbench_k")])
def test_report_parameters_are_checked(data, researcher, query, field):
    project = data["item"].project
    assert_names(client_for(researcher).get(f"/api/projects/{project.pk}/report/?{query}"), field)


# --- Bodies -----------------------------------------------------------------------------------


def test_item_metadata_with_nul_is_a_400(project, researcher):
    body = {"project": project.pk, "external_id": "x", "prompt": "p", "metadata": {"k": "a\u0000b"},
            "responses": [{"external_id": "r", "text": "t"}]}
    assert_names(client_for(researcher).post("/api/items/", body, format="json"), "metadata")


def test_item_metadata_key_with_nul_is_a_400(project, researcher):
    body = {"project": project.pk, "external_id": "x", "prompt": "p", "metadata": {"a\u0000": 1}}
    assert_names(client_for(researcher).post("/api/items/", body, format="json"), "metadata")


def test_item_project_id_past_bigint_is_a_400(project, researcher):
    body = {"project": HUGE, "external_id": "x", "prompt": "p"}
    assert_names(client_for(researcher).post("/api/items/", body, format="json"), "project")


def test_rating_time_past_integer_is_a_400(data, researcher):
    body = {"response": data["a"].pk, "values": {"helpfulness": 2}, "time_on_task_ms": BIG}
    assert_names(client_for(researcher).post("/api/ratings/", body, format="json"), "time_on_task_ms")


def test_rating_response_id_past_bigint_is_a_400(data, researcher):
    body = {"response": HUGE, "values": {"helpfulness": 2}}
    assert_names(client_for(researcher).post("/api/ratings/", body, format="json"), "response")


def test_rating_probabilities_with_nul_is_a_400(data, researcher):
    body = {"response": data["a"].pk, "values": {"helpfulness": 2}, "probabilities": {"helpfulness": {"\u0000": 1.0}}}
    assert_names(client_for(researcher).post("/api/ratings/", body, format="json"), "probabilities")


def test_preference_probabilities_with_nul_is_a_400(data, researcher):
    body = {"pair": data["pair"].pk, "strength": 1, "probabilities": {"a\u0000": 0.5}}
    assert_names(client_for(researcher).post("/api/preferences/", body, format="json"), "probabilities")


def test_preference_time_past_integer_is_a_400(data, researcher):
    body = {"pair": data["pair"].pk, "strength": 1, "time_on_task_ms": BIG}
    assert_names(client_for(researcher).post("/api/preferences/", body, format="json"), "time_on_task_ms")


@pytest.mark.parametrize("name", ["two\nlines", "tab\there", "bell\x07", "nul\x00", "rtl\u202eevil", "   "])
def test_project_name_with_control_characters_is_refused(researcher, name):
    before = Project.objects.count()
    response = client_for(researcher).post("/api/projects/", {"name": name}, format="json")
    assert_names(response, "name")
    assert Project.objects.count() == before


def test_project_rename_with_a_newline_is_refused(project, researcher):
    response = client_for(researcher).patch(f"/api/projects/{project.pk}/", {"name": "a\r\nb"}, format="json")
    assert_names(response, "name")


def test_project_name_with_unicode_letters_is_fine(researcher):
    response = client_for(researcher).post("/api/projects/", {"name": "Évaluation – 評価 ✓"}, format="json")
    assert response.status_code == 201, response.content


@pytest.mark.parametrize(
    ("field", "value"), [("claim_seconds", BIG), ("overlap", 40000), ("justification_required_above", -1)]
)
def test_project_integer_settings_fit_their_columns(project, researcher, field, value):
    response = client_for(researcher).patch(f"/api/projects/{project.pk}/", {field: value}, format="json")
    assert_names(response, field)


def test_attribute_anchor_key_with_nul_is_a_400(researcher):
    body = {"name": "p", "attributes": [{"name": "x", "anchors": {"\u0000": "low"}}]}
    assert_names(client_for(researcher).post("/api/projects/", body, format="json"), "attributes")


def test_import_project_name_with_a_newline_is_refused(researcher, tmp_path):
    from django.core.files.uploadedfile import SimpleUploadedFile

    upload = SimpleUploadedFile("a.jsonl", b'{"id": "1", "prompt": "p", "responses": [{"id": "r", "text": "t"}]}\n')
    response = client_for(researcher).post(
        "/api/projects/import/", {"project": "new\nproject", "format": "jsonl", "files": [upload]}, format="multipart"
    )
    assert_names(response, "project")


def test_run_start_project_past_bigint_is_a_400(data, researcher):
    response = client_for(researcher).post("/api/runs/", {"judge": 1, "project": HUGE}, format="json")
    assert response.status_code == 400
    assert "project" in response.json()


def test_queue_submit_time_past_integer_is_a_400(project, annotator):
    body = {"view_key": "00000000-0000-0000-0000-000000000000", "shown_strength": 1, "time_on_task_ms": BIG}
    assert_names(client_for(annotator).post("/api/queue/submit/", body, format="json"), "time_on_task_ms")


def test_queue_submit_strength_past_smallint_is_a_400(project, annotator):
    body = {"view_key": "00000000-0000-0000-0000-000000000000", "shown_strength": BIG}
    assert_names(client_for(annotator).post("/api/queue/submit/", body, format="json"), "shown_strength")
