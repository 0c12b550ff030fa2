"""The bugs issue 10 found in who may change what, each attacked the way it was found.

Written before the fix (they failed on the code before annotate.access): a researcher of one
project edited and deleted another project's judge (and the delete cascaded to that project's
runs and judgments); a researcher wrote ratings and preferences in an annotator's or a judge's
name; an import's "human:alice" landed on the real user alice's rater.
"""

from __future__ import annotations

import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from rest_framework.test import APIClient

from annotate.models import Pair, Preference, Rater, Rating
from annotate.roles import user_set_role
from annotate.services import preference_submit, project_create, rater_for_user, ratings_submit
from judges.models import Judge, Judgment, Run
from tests.conftest import _user


def api(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


@pytest.fixture
def two_labs(db):
    """Project X (researcher rx, annotator ax) and project Y (researcher ry)."""
    rx, ry, ax = _user("rx", "researcher"), _user("ry", "researcher"), _user("ax", "annotator")
    x = project_create(name="X")
    y = project_create(name="Y")
    x.members.add(rx, ax)
    y.members.add(ry)
    item = x.items.create(external_id="q1", prompt="Say hi")
    a = item.responses.create(external_id="a", text="Hi", model="m1")
    b = item.responses.create(external_id="b", text="Hello", model="m2")
    pair = Pair.objects.create(item=item, response_a=a, response_b=b)
    return {"rx": rx, "ry": ry, "ax": ax, "x": x, "y": y, "a": a, "b": b, "pair": pair}


def _judge_of_rx(lab) -> Judge:
    """rx makes a judge through the API and runs it on X (one finished judgment)."""
    body = {"name": "rx-judge", "model_ref": "/nowhere/model", "response_model": "m9"}
    created = api(lab["rx"]).post("/api/judges/", body, format="json")
    assert created.status_code == 201, created.content
    judge = Judge.objects.get(pk=created.json()["id"])
    run = Run.objects.create(judge=judge, project=lab["x"], protocols=["rating"], total=1, status="done")
    rating = ratings_submit(rater=judge.rater, response=lab["a"], values={"helpfulness": 2})[0]
    Judgment.objects.create(run=run, protocol="rating", item=lab["a"].item, response=lab["a"],
                            attribute=rating.attribute, status="ok", rating=rating)
    return judge


# --- Judges belong to a researcher --------------------------------------------------------------


def test_a_researcher_of_another_project_cannot_edit_or_delete_a_judge(two_labs):
    judge = _judge_of_rx(two_labs)
    ry = api(two_labs["ry"])
    patched = ry.patch(f"/api/judges/{judge.pk}/", {"model_ref": "http://evil/"}, format="json")
    assert patched.status_code == 404  # not shared with Y: ry does not even see it
    assert ry.post(f"/api/judges/{judge.pk}/templates/", {"protocol": "rating", "user": "x {answer_format}"},
                   format="json").status_code == 404
    assert ry.delete(f"/api/judges/{judge.pk}/").status_code == 404
    client = APIClient()
    client.force_login(two_labs["ry"])
    page = client.post(reverse("judges:judge", args=[judge.pk]), {"backend": "openai", "model_ref": "evil"})
    assert page.status_code == 404
    judge.refresh_from_db()
    assert judge.model_ref == "/nowhere/model" and judge.archived_at is None
    assert Judgment.objects.filter(run__judge=judge).count() == 1


def test_a_shared_judge_can_be_used_but_not_changed(two_labs):
    judge = _judge_of_rx(two_labs)
    judge.shared_with.add(two_labs["y"])
    ry = api(two_labs["ry"])
    assert ry.get(f"/api/judges/{judge.pk}/").status_code == 200
    assert [j["id"] for j in ry.get("/api/judges/").json()["results"]] == [judge.pk]
    refused = ry.patch(f"/api/judges/{judge.pk}/", {"model_ref": "other"}, format="json")
    assert refused.status_code == 403 and "rx" in refused.json()["detail"]
    assert ry.delete(f"/api/judges/{judge.pk}/").status_code == 403
    # Usable on Y, where it is shared, and only there: ry is no researcher of X.
    y_item = two_labs["y"].items.create(external_id="q", prompt="p")
    y_item.responses.create(external_id="r", text="t")
    assert ry.post("/api/runs/", {"judge": judge.pk, "project": two_labs["y"].pk, "protocols": ["rating"]},
                   format="json").status_code == 201
    assert ry.post("/api/runs/", {"judge": judge.pk, "project": two_labs["x"].pk},
                   format="json").status_code == 404


def test_a_judge_not_shared_with_a_project_cannot_run_there(two_labs):
    judge = _judge_of_rx(two_labs)
    judge.shared_with_owner_projects = False
    judge.save()
    two_labs["y"].members.add(two_labs["rx"])  # rx researches Y too; ry's own judge is not shared with X
    ry_judge = api(two_labs["ry"]).post("/api/judges/", {"name": "ry-judge", "model_ref": "m"}, format="json")
    refused = api(two_labs["rx"]).post(
        "/api/runs/", {"judge": ry_judge.json()["id"], "project": two_labs["x"].pk}, format="json"
    )
    assert refused.status_code == 403 and "not shared" in refused.json()["detail"]
    assert not Run.objects.filter(judge_id=ry_judge.json()["id"]).exists()


def test_deleting_a_judge_archives_it_and_keeps_its_runs_and_annotations(two_labs):
    judge = _judge_of_rx(two_labs)
    rx = api(two_labs["rx"])
    assert rx.delete(f"/api/judges/{judge.pk}/").status_code == 204
    judge.refresh_from_db()
    assert judge.archived_at is not None
    assert Run.objects.filter(judge=judge).count() == 1
    assert Judgment.objects.filter(run__judge=judge).count() == 1
    assert Rating.objects.filter(rater=judge.rater).count() == 1
    assert rx.get("/api/judges/").json()["results"] == []
    assert rx.get(f"/api/judges/{judge.pk}/").status_code == 404
    # The run stays readable, and no new run can start with an archived judge.
    run = Run.objects.get(judge=judge)
    assert rx.get(f"/api/runs/{run.pk}/").status_code == 200
    assert rx.post("/api/runs/", {"judge": judge.pk, "project": two_labs["x"].pk},
                   format="json").status_code == 400


def test_deleting_a_project_archives_it(two_labs):
    rx = api(two_labs["rx"])
    ratings_submit(rater=rater_for_user(user=two_labs["ax"]), response=two_labs["a"], values={"helpfulness": 3})
    assert api(two_labs["ax"]).delete(f"/api/projects/{two_labs['x'].pk}/").status_code == 403
    assert rx.delete(f"/api/projects/{two_labs['x'].pk}/").status_code == 204
    two_labs["x"].refresh_from_db()
    assert two_labs["x"].archived_at is not None
    assert Rating.objects.filter(response__item__project=two_labs["x"]).count() == 1
    assert [p["name"] for p in rx.get("/api/projects/").json()["results"]] == []
    # Hidden from the queue, kept for reports and exports.
    assert api(two_labs["ax"]).post(f"/api/projects/{two_labs['x'].pk}/queue/next/").status_code == 403
    assert rx.get(f"/api/projects/{two_labs['x'].pk}/report/?rounds=0").status_code == 200
    assert rx.get(f"/api/projects/{two_labs['x'].pk}/export/?format=annotations").status_code == 200


def test_the_default_judge_is_usable_everywhere_and_edited_by_admins_only(two_labs, admin_user):
    from judges.services import judge_create

    default = judge_create(name="installation-judge", model_ref="m")  # no owner, as the default judge
    rx = api(two_labs["rx"])
    assert rx.get(f"/api/judges/{default.pk}/").status_code == 200
    assert rx.patch(f"/api/judges/{default.pk}/", {"model_ref": "x"}, format="json").status_code == 403
    assert api(admin_user).patch(f"/api/judges/{default.pk}/", {"model_ref": "x"}, format="json").status_code == 200


# --- Humans write only as themselves -------------------------------------------------------------


def test_a_researcher_cannot_write_ratings_in_another_raters_name(two_labs):
    annotator_rater = rater_for_user(user=two_labs["ax"])
    ratings_submit(rater=annotator_rater, response=two_labs["a"], values={"helpfulness": 4})
    judge_rater = _judge_of_rx(two_labs).rater
    rx = api(two_labs["rx"])
    for rater in (annotator_rater, judge_rater):
        response = rx.post("/api/ratings/", {"response": two_labs["a"].pk, "rater": rater.pk,
                                             "values": {"helpfulness": 0}}, format="json")
        assert response.status_code == 403, response.content
    assert Rating.objects.get(rater=annotator_rater).value == 4
    assert Rating.objects.get(rater=judge_rater).value == 2
    # Without a rater, the researcher's own rating is stored.
    own = rx.post("/api/ratings/", {"response": two_labs["a"].pk, "values": {"helpfulness": 1}}, format="json")
    assert own.status_code == 201 and own.json()[0]["rater"] == rater_for_user(user=two_labs["rx"]).pk


def test_a_researcher_cannot_write_preferences_in_another_raters_name(two_labs):
    annotator_rater = rater_for_user(user=two_labs["ax"])
    preference_submit(rater=annotator_rater, pair=two_labs["pair"], strength=-3)
    response = api(two_labs["rx"]).post(
        "/api/preferences/", {"pair": two_labs["pair"].pk, "rater": annotator_rater.pk, "strength": 3},
        format="json",
    )
    assert response.status_code == 403
    assert Preference.objects.get(rater=annotator_rater).strength == -3


# --- Imported raters belong to their project -----------------------------------------------------


def _import(user, project: str, lines: list[dict]):
    body = "\n".join(json.dumps(line) for line in lines).encode()
    upload = SimpleUploadedFile("data.jsonl", body, content_type="application/jsonl")
    return api(user).post("/api/projects/import/", {"project": project, "format": "jsonl", "files": [upload]},
                          format="multipart")


def _lines(value: int) -> list[dict]:
    return [{
        "id": "q1", "prompt": "Say hi",
        "responses": [{"id": "a", "model": "m1", "text": "Hi"}, {"id": "b", "model": "m2", "text": "Hello"}],
        "ratings": [{"rater": "human:ax", "response": "a", "attribute": "helpfulness", "value": value}],
        "preferences": [{"rater": "judge:rx-judge", "pair": ["a", "b"], "strength": 1, "shown_order": "ab"}],
    }]


def test_an_import_never_attaches_to_a_users_rater_or_a_real_judge(two_labs):
    own = rater_for_user(user=two_labs["ax"])  # the real user "ax" has a rater already
    real_judge = _judge_of_rx(two_labs)
    response = _import(two_labs["rx"], "Imported", _lines(1))
    assert response.status_code == 201, response.content
    assert not Rating.objects.filter(rater=own).exists()
    assert not Preference.objects.filter(rater=real_judge.rater).exists()
    imported = Rater.objects.get(kind="human", name="ax", project__name="Imported")
    assert imported.user is None and Rating.objects.get(rater=imported).value == 1


def test_imports_into_two_projects_make_two_raters(two_labs):
    user_set_role(user=two_labs["ry"], role="researcher")
    assert _import(two_labs["rx"], "P1", _lines(1)).status_code == 201
    assert _import(two_labs["ry"], "P2", _lines(4)).status_code == 201
    raters = Rater.objects.filter(kind="human", name="ax").exclude(project=None)
    assert {r.project.name: Rating.objects.get(rater=r).value for r in raters} == {"P1": 1, "P2": 4}


def test_a_user_never_adopts_an_imported_rater_of_their_name(two_labs):
    assert _import(two_labs["rx"], "Imported", _lines(1)).status_code == 201
    newcomer = _user("ax2", "annotator")
    Rater.objects.filter(name="ax", project__isnull=False).update(name="ax2")
    rater = rater_for_user(user=newcomer)
    assert rater.project is None and rater.user == newcomer
    assert not Rating.objects.filter(rater=rater).exists()


def test_importing_into_someone_elses_project_is_refused(two_labs):
    response = _import(two_labs["ry"], "X", _lines(2))
    assert response.status_code == 403
    assert not Rating.objects.filter(response__item__project=two_labs["x"]).exists()


# --- Roles per project ---------------------------------------------------------------------------


def test_a_membership_role_lowers_but_never_raises_the_global_role(two_labs):
    from annotate import access
    from annotate.models import Membership

    x, y = two_labs["x"], two_labs["y"]
    Membership.objects.filter(project=x, user=two_labs["rx"]).update(role="annotator")
    Membership.objects.create(project=y, user=two_labs["ax"], role="researcher")
    assert access.project_role(two_labs["rx"], x) == "annotator"
    assert access.project_role(two_labs["ax"], y) == "annotator"  # global annotator: the ceiling
    assert list(access.projects_visible(two_labs["rx"], need="research")) == []
    assert api(two_labs["rx"]).get(f"/api/projects/{x.pk}/report/").status_code == 403
    assert api(two_labs["ax"]).get(f"/api/projects/{y.pk}/report/").status_code == 403


# --- What annotators see -------------------------------------------------------------------------


def test_annotators_get_a_403_page_in_the_layout_and_no_api_link(two_labs):
    client = APIClient()
    client.force_login(two_labs["ax"])
    home = client.get("/")
    assert home.status_code == 200 and b'href="/api/docs/"' not in home.content
    refused = client.get(reverse("reports:project", args=[two_labs["x"].pk]))
    assert refused.status_code == 403
    body = refused.content.decode()
    assert 'class="topbar"' in body and "researchers" in body and 'href="/"' in body
    client.force_login(two_labs["rx"])
    assert b'href="/api/docs/"' in client.get("/").content


def test_the_judge_page_offers_changes_only_to_who_may_make_them(two_labs):
    judge = _judge_of_rx(two_labs)
    judge.shared_with.add(two_labs["y"])
    client = APIClient()
    client.force_login(two_labs["ry"])
    page = client.get(reverse("judges:judge", args=[judge.pk])).content.decode()
    assert "rx's judge" in page and "Save settings" not in page and "Archive this judge" not in page
    assert client.post(reverse("judges:judge-archive", args=[judge.pk])).status_code == 403
    client.force_login(two_labs["rx"])
    page = client.get(reverse("judges:judge", args=[judge.pk])).content.decode()
    assert "Save settings" in page and "Archive this judge" in page
    assert client.post(reverse("judges:judge-archive", args=[judge.pk])).status_code == 302
    judge.refresh_from_db()
    assert judge.archived_at is not None and Judgment.objects.filter(run__judge=judge).count() == 1
    listed = client.get(reverse("judges:judges")).content.decode()
    assert reverse("judges:judge", args=[judge.pk]) not in listed


def test_the_run_form_offers_only_judges_usable_on_the_project(two_labs):
    mine = _judge_of_rx(two_labs)
    theirs = api(two_labs["ry"]).post("/api/judges/", {"name": "ry-judge", "model_ref": "m"}, format="json")
    client = APIClient()
    client.force_login(two_labs["rx"])
    page = client.get(reverse("judges:runs", args=[two_labs["x"].pk])).content.decode()
    assert "rx-judge" in page and "ry-judge" not in page
    refused = client.post(reverse("judges:runs", args=[two_labs["x"].pk]),
                          {"judge": theirs.json()["id"], "kind": "judge", "protocols": ["rating"]})
    assert refused.status_code == 422 or "Select a valid choice" in refused.content.decode()
    assert not Run.objects.filter(judge_id=theirs.json()["id"]).exists()
    assert Run.objects.filter(judge=mine).count() == 1


def test_an_archived_project_takes_no_import_and_says_so(two_labs):
    assert api(two_labs["rx"]).delete(f"/api/projects/{two_labs['x'].pk}/").status_code == 204
    refused = _import(two_labs["rx"], "X", _lines(2))
    assert refused.status_code == 403 and "archived" in refused.json()["detail"]
