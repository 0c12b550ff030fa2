from __future__ import annotations

import pytest
from django.core.management import call_command
from rest_framework.test import APIClient

from annotate.models import Item, Pair, Preference, Rater, Rating
from annotate.services import (
    judge_rater_get_or_create,
    preference_submit,
    project_create,
    rater_for_user,
    ratings_submit,
)

# Every GET endpoint of the core API, with a placeholder for a detail id.
LISTS = ["projects", "items", "responses", "pairs", "raters", "ratings", "preferences"]


@pytest.fixture(autouse=True)
def fast_passwords(settings):
    # The shared fixtures create five users; PBKDF2 makes that seconds per test.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def client_for(user) -> APIClient:
    client = APIClient()
    if user is not None:
        client.force_authenticate(user)
    return client


@pytest.fixture
def data(project, annotator, other_annotator):
    """One item, two responses by known models, human and judge annotations of both kinds."""
    item = project.items.create(external_id="i1", prompt="Say hi")
    a = item.responses.create(external_id="r1", text="Hi", model="secret-model-a")
    b = item.responses.create(external_id="r2", text="Hello there", model="secret-model-b")
    pair = Pair.objects.create(item=item, response_a=a, response_b=b)
    judge = judge_rater_get_or_create(name="judge-1", model="secret-model-a")
    mine = rater_for_user(user=annotator)
    theirs = rater_for_user(user=other_annotator)
    ratings_submit(rater=mine, response=a, values={"helpfulness": 3})
    ratings_submit(rater=theirs, response=a, values={"helpfulness": 1})
    ratings_submit(rater=judge, response=b, values={"helpfulness": 4, "verbosity": 2})
    preference_submit(rater=mine, pair=pair, strength=-2)
    preference_submit(rater=theirs, pair=pair, strength=1, shown_order="ba")
    preference_submit(rater=judge, pair=pair, strength=2, shown_order="ab")
    preference_submit(rater=judge, pair=pair, strength=1, shown_order="ba")
    return {"item": item, "a": a, "b": b, "pair": pair, "judge": judge, "mine": mine, "theirs": theirs}


# --- Permissions ------------------------------------------------------------------------------


def test_unauthenticated_gets_401_everywhere(data):
    for name in LISTS:
        assert client_for(None).get(f"/api/{name}/").status_code == 401, name


def test_outsider_without_role_gets_403_everywhere(data, outsider):
    client = client_for(outsider)
    for name in LISTS:
        assert client.get(f"/api/{name}/").status_code == 403, name
    assert client.post("/api/projects/", {"name": "x"}, format="json").status_code == 403


def test_token_auth_works_and_create_token_prints_the_key(data, researcher, capsys):
    call_command("create_token", "researcher")
    key = capsys.readouterr().out.strip()
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    response = client.get("/api/projects/")
    assert response.status_code == 200
    assert [p["name"] for p in response.json()["results"]] == ["Test project"]
    client.credentials(HTTP_AUTHORIZATION="Token not-a-key")
    assert client.get("/api/projects/").status_code == 401


def test_session_auth_works(data, annotator):
    client = APIClient()
    assert client.login(username="annotator", password="pw-annotator")
    assert [p["name"] for p in client.get("/api/projects/").json()["results"]] == ["Test project"]


def test_annotator_never_receives_a_response_model(data, annotator):
    client = client_for(annotator)
    bodies = [client.get(f"/api/{name}/") for name in LISTS]
    bodies += [client.get(f"/api/{name}/?model=secret-model-a") for name in ("ratings", "preferences", "raters")]
    bodies.append(client.get(f"/api/raters/{data['judge'].pk}/"))
    bodies.append(client.get(f"/api/raters/{data['mine'].pk}/"))
    for response in bodies:
        text = response.content.decode()
        assert "secret-model" not in text, response.request["PATH_INFO"]
        if response.status_code == 200:
            assert '"model' not in text, response.request["PATH_INFO"]


def test_annotator_cannot_read_items_responses_or_pairs(data, annotator):
    client = client_for(annotator)
    for name in ("items", "responses", "pairs"):
        assert client.get(f"/api/{name}/").status_code == 403
    assert client.get(f"/api/responses/{data['a'].pk}/").status_code == 403


def test_annotator_sees_only_own_rater_and_annotations(data, annotator):
    client = client_for(annotator)
    raters = client.get("/api/raters/").json()["results"]
    assert [r["id"] for r in raters] == [data["mine"].pk]
    assert client.get(f"/api/raters/{data['judge'].pk}/").status_code == 404
    ratings = client.get("/api/ratings/").json()["results"]
    assert [(r["rater"], r["attribute"], r["value"]) for r in ratings] == [(data["mine"].pk, "helpfulness", 3)]
    preferences = client.get("/api/preferences/").json()["results"]
    assert [(p["rater"], p["strength"]) for p in preferences] == [(data["mine"].pk, -2)]
    # Filtering by another rater finds nothing rather than their annotations.
    assert client.get(f"/api/ratings/?rater={data['theirs'].pk}").json()["count"] == 0


def test_annotator_cannot_filter_by_model_or_write(data, annotator):
    client = client_for(annotator)
    response = client.get("/api/ratings/?model=secret-model-a")
    assert response.status_code == 400
    assert "model" in response.json()
    write = client.post("/api/ratings/", {"response": data["a"].pk, "values": {"helpfulness": 2}}, format="json")
    assert write.status_code == 403
    assert client.post("/api/projects/", {"name": "Mine"}, format="json").status_code == 403


def test_researcher_sees_everything_of_own_projects_only(data, researcher):
    project_create(name="Someone else's")  # researcher is no member
    client = client_for(researcher)
    assert [p["name"] for p in client.get("/api/projects/").json()["results"]] == ["Test project"]
    assert client.get("/api/ratings/").json()["count"] == 4
    assert client.get("/api/preferences/").json()["count"] == 4
    responses = client.get("/api/responses/").json()["results"]
    assert {r["model"] for r in responses} == {"secret-model-a", "secret-model-b"}
    raters = {r["name"]: r for r in client.get("/api/raters/").json()["results"]}
    assert raters["judge-1"]["model"] == "secret-model-a"
    assert {"annotator", "annotator2", "judge-1"} <= set(raters)
    pair = client.get(f"/api/pairs/{data['pair'].pk}/").json()
    assert (pair["model_a"], pair["model_b"]) == ("secret-model-a", "secret-model-b")


def test_researcher_gets_404_for_other_projects_rows(researcher):
    other = project_create(name="Elsewhere")
    item = other.items.create(external_id="x", prompt="p")
    client = client_for(researcher)
    assert client.get(f"/api/projects/{other.pk}/").status_code == 404
    assert client.get(f"/api/items/{item.pk}/").status_code == 404


def test_admin_sees_every_project(data, admin_user):
    project_create(name="Another")
    names = [p["name"] for p in client_for(admin_user).get("/api/projects/").json()["results"]]
    assert names == ["Another", "Test project"]


# --- Pagination and filters -------------------------------------------------------------------


def test_lists_are_paginated_with_page_size(project, researcher):
    Item.objects.bulk_create(Item(project=project, external_id=f"i{n:03d}", prompt="p") for n in range(7))
    client = client_for(researcher)
    first = client.get("/api/items/?page_size=3").json()
    assert first["count"] == 7
    assert len(first["results"]) == 3
    assert first["next"] and first["previous"] is None
    last = client.get("/api/items/?page_size=3&page=3").json()
    assert [i["external_id"] for i in last["results"]] == ["i006"]


def test_filters_by_project_item_rater_kind_attribute_model(data, researcher):
    client = client_for(researcher)

    def count(url: str) -> int:
        response = client.get(url)
        assert response.status_code == 200, response.content
        return response.json()["count"]

    assert count(f"/api/ratings/?project={data['item'].project_id}") == 4
    assert count("/api/ratings/?kind=judge") == 2
    assert count("/api/ratings/?attribute=verbosity") == 1
    assert count(f"/api/ratings/?rater={data['mine'].pk}&attribute=helpfulness") == 1
    assert count("/api/ratings/?model=secret-model-a") == 2
    assert count(f"/api/ratings/?item={data['item'].pk}&value=4") == 1
    assert count("/api/preferences/?kind=judge&shown_order=ba") == 1
    assert count(f"/api/preferences/?pair={data['pair'].pk}") == 4
    assert count("/api/preferences/?model=secret-model-b") == 4
    assert count("/api/responses/?model=secret-model-b") == 1
    assert count("/api/pairs/?model=secret-model-a") == 1
    assert count("/api/items/?model=secret-model-a") == 1
    assert count("/api/items/?role=gold") == 0
    assert count("/api/raters/?kind=judge") == 1
    assert count(f"/api/raters/?project={data['item'].project_id}&kind=human") == 2  # the annotators (the researcher has no rater yet)
    assert count("/api/ratings/?created_after=2000-01-01") == 4
    assert count("/api/ratings/?created_before=2000-01-01T00:00:00Z") == 0


def test_bad_filter_value_is_a_400_naming_the_parameter(data, researcher):
    response = client_for(researcher).get("/api/ratings/?created_after=yesterday&kind=robot&project=x")
    assert response.status_code == 400
    assert set(response.json()) == {"created_after", "kind", "project"}


# --- Projects ---------------------------------------------------------------------------------


def test_researcher_creates_project_with_attributes_and_becomes_member(researcher):
    client = client_for(researcher)
    response = client.post(
        "/api/projects/",
        {
            "name": "Overall",
            "protocols": "rating",
            "attributes": [{"name": "overall", "min_value": 1, "max_value": 7, "description": "Overall quality"}],
        },
        format="json",
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert [(a["name"], a["min_value"], a["max_value"]) for a in body["attributes"]] == [("overall", 1, 7)]
    assert client.get(f"/api/projects/{body['id']}/").status_code == 200


def test_project_create_defaults_to_helpsteer2_and_rejects_bad_input(researcher):
    client = client_for(researcher)
    created = client.post("/api/projects/", {"name": "Default"}, format="json").json()
    assert [a["name"] for a in created["attributes"]][:2] == ["helpfulness", "correctness"]
    duplicate = client.post("/api/projects/", {"name": "Default"}, format="json")
    assert duplicate.status_code == 400 and duplicate.json()["field"] == "name"
    bad_scale = client.post(
        "/api/projects/", {"name": "Bad", "attributes": [{"name": "x", "min_value": 3, "max_value": 3}]}, format="json"
    )
    assert bad_scale.status_code == 400 and bad_scale.json()["field"] == "max_value"
    assert client.post("/api/projects/", {"name": "Bad", "overlap": 0}, format="json").json() == {
        "overlap": ["Ensure this value is greater than or equal to 1."]
    }


def test_project_update(project, researcher, annotator):
    response = client_for(researcher).patch(
        f"/api/projects/{project.pk}/", {"overlap": 5, "guidelines": "New"}, format="json"
    )
    assert response.status_code == 200
    project.refresh_from_db()
    assert (project.overlap, project.guidelines) == (5, "New")
    assert client_for(annotator).patch(f"/api/projects/{project.pk}/", {"overlap": 1}, format="json").status_code == 403


# --- Items ------------------------------------------------------------------------------------


def test_create_item_with_responses_pairs_every_two(project, researcher):
    response = client_for(researcher).post(
        "/api/items/",
        {
            "project": project.pk,
            "external_id": "new",
            "prompt": "Compare",
            "responses": [
                {"external_id": "x", "text": "X", "model": "m1"},
                {"external_id": "y", "text": "Y", "model": "m2"},
                {"external_id": "z", "text": "Z", "model": "m3"},
            ],
        },
        format="json",
    )
    assert response.status_code == 201, response.content
    item = Item.objects.get(pk=response.json()["id"])
    assert item.responses.count() == 3
    assert item.pairs.count() == 3


def test_create_item_with_named_pairs_and_errors(project, researcher):
    client = client_for(researcher)
    payload = {
        "project": project.pk,
        "external_id": "named",
        "prompt": "p",
        "responses": [{"external_id": "x", "text": "X"}, {"external_id": "y", "text": "Y"}],
        "pairs": [["y", "x"]],
    }
    assert client.post("/api/items/", payload, format="json").status_code == 201
    pair = Pair.objects.get(item__external_id="named")
    assert (pair.response_a.external_id, pair.response_b.external_id) == ("y", "x")
    again = client.post("/api/items/", payload, format="json")
    assert again.status_code == 400 and again.json()["field"] == "external_id"
    bad_pair = client.post("/api/items/", {**payload, "external_id": "n2", "pairs": [["x", "q"]]}, format="json")
    assert bad_pair.status_code == 400 and "pairs" in bad_pair.json()
    other = project_create(name="Not mine")
    foreign = client.post("/api/items/", {**payload, "external_id": "n3", "project": other.pk}, format="json")
    assert foreign.status_code == 400 and foreign.json()["field"] == "project"


# --- Ratings and preferences ------------------------------------------------------------------


def test_rating_create_uses_service_validation_naming_the_attribute(data, researcher):
    client = client_for(researcher)
    response = client.post(
        "/api/ratings/", {"response": data["a"].pk, "values": {"helpfulness": 5}}, format="json"
    )
    assert response.status_code == 400
    assert response.json()["field"] == "helpfulness"
    assert "0-4" in response.json()["detail"]
    unknown = client.post("/api/ratings/", {"response": data["a"].pk, "values": {"charm": 1}}, format="json")
    assert unknown.status_code == 400 and unknown.json()["field"] == "charm"
    not_int = client.post("/api/ratings/", {"response": data["a"].pk, "values": {"coherence": "3"}}, format="json")
    assert not_int.status_code == 400 and not_int.json()["field"] == "coherence"
    missing = client.post("/api/ratings/", {"values": {"coherence": 3}}, format="json")
    assert missing.status_code == 400 and "response" in missing.json()


def test_rating_create_as_oneself_and_resubmit_replaces(data, researcher):
    client = client_for(researcher)
    payload = {"response": data["a"].pk, "values": {"coherence": 2, "verbosity": 1}}
    created = client.post("/api/ratings/", payload, format="json")
    assert created.status_code == 201, created.content
    assert sorted(r["attribute"] for r in created.json()) == ["coherence", "verbosity"]
    client.post("/api/ratings/", {**payload, "values": {"coherence": 4}}, format="json")
    me = Rater.objects.get(user=researcher)
    stored = Rating.objects.get(rater=me, response=data["a"], attribute__name="coherence")
    assert stored.value == 4
    # A judge's ratings come only from its runs; another rater's id is refused (tests/test_access.py).
    as_judge = client.post("/api/ratings/", {**payload, "rater": data["judge"].pk}, format="json")
    assert as_judge.status_code == 403
    assert not Rating.objects.filter(rater=data["judge"], response=data["a"]).exists()


def test_preference_create_is_idempotent_and_validates_strength(data, researcher):
    client = client_for(researcher)
    pair = data["pair"].pk
    first = client.post("/api/preferences/", {"pair": pair, "strength": 3, "justification": "B"}, format="json")
    assert first.status_code == 201, first.content
    again = client.post("/api/preferences/", {"pair": pair, "strength": 3, "justification": "B"}, format="json")
    assert again.status_code == 200
    assert again.json()["id"] == first.json()["id"]
    me = Rater.objects.get(user=researcher)
    assert Preference.objects.filter(rater=me).count() == 1
    out_of_scale = client.post("/api/preferences/", {"pair": pair, "strength": 4}, format="json")
    assert out_of_scale.status_code == 400 and out_of_scale.json()["field"] == "strength"
    bad_order = client.post("/api/preferences/", {"pair": pair, "strength": 1, "shown_order": "ca"}, format="json")
    assert bad_order.status_code == 400 and "shown_order" in bad_order.json()


def test_preference_create_on_ternary_project_rejects_strength_two(researcher):
    project = project_create(name="Ternary", ranking_scale="ternary")
    project.members.add(researcher)
    item = project.items.create(external_id="i", prompt="p")
    a = item.responses.create(external_id="a", text="A")
    b = item.responses.create(external_id="b", text="B")
    pair = Pair.objects.create(item=item, response_a=a, response_b=b)
    response = client_for(researcher).post("/api/preferences/", {"pair": pair.pk, "strength": 2}, format="json")
    assert response.status_code == 400
    assert response.json()["field"] == "strength"
    assert "-1..1" in response.json()["detail"]


def test_lists_run_a_fixed_number_of_queries(data, researcher, django_assert_max_num_queries):
    client = client_for(researcher)
    for n in range(30):
        ratings_submit(rater=judge_rater_get_or_create(name=f"j{n}"), response=data["a"], values={"coherence": 1})
    for name in LISTS:
        # role and groups, projects, count, page, prefetches: no query per row
        with django_assert_max_num_queries(8):
            assert client.get(f"/api/{name}/").status_code == 200
