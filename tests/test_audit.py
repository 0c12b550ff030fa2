"""The audit trail: every change to an annotation (undo included), a project's settings and
membership, a judge and its templates is recorded with who, when, before and after, and an
admin reads it per object and per user."""

from __future__ import annotations

import pytest
from django.urls import reverse
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from annotate.models import AuditEvent, Membership, Pair, Project, Rating
from annotate.services import (
    judge_rater_get_or_create,
    preference_submit,
    project_create,
    project_update,
    rater_for_user,
)
from judges.services import judge_create, judge_template_edit, judge_update

pytestmark = pytest.mark.django_db


def _events(obj, action: str | None = None) -> list[AuditEvent]:
    events = AuditEvent.objects.filter(object_type=f"{obj._meta.app_label}.{obj._meta.model_name}", object_id=str(obj.pk))
    if action:
        events = events.filter(action=action)
    return list(events.order_by("at", "id"))


@pytest.fixture
def pair(project) -> Pair:
    item = project.items.create(external_id="i1", prompt="Say hi")
    a = item.responses.create(external_id="r1", text="Hi", model="m1")
    b = item.responses.create(external_id="r2", text="Hello", model="m2")
    return Pair.objects.create(item=item, response_a=a, response_b=b)


def test_an_api_rating_records_the_token_user_and_each_replacement(pair, researcher):
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=researcher).key}")
    body = {"response": pair.response_a_id, "values": {"helpfulness": 2}}
    assert api.post("/api/ratings/", body, format="json").status_code == 201
    rating = Rating.objects.get()
    (created,) = _events(rating)
    assert created.action == "rating.submit" and created.actor == researcher and created.actor_name == "researcher"
    assert created.before is None and created.after["value"] == 2 and created.after["rater_id"] == rating.rater_id

    # The same values again is a replay, not a change: nothing new.
    assert api.post("/api/ratings/", body, format="json").status_code == 201
    assert len(_events(rating)) == 1

    body["values"] = {"helpfulness": 4}
    assert api.post("/api/ratings/", body, format="json").status_code == 201
    replaced = _events(rating)[-1]
    assert (replaced.before["value"], replaced.after["value"]) == (2, 4)
    assert replaced.at >= created.at


def test_queue_submit_and_undo_are_recorded_as_the_annotator(project, annotator):
    item = project.items.create(external_id="i1", prompt="Q?")
    item.responses.create(external_id="a", text="one")
    api = APIClient()
    api.force_authenticate(annotator)
    task = api.post(f"/api/projects/{project.pk}/queue/next/").json()["task"]
    values = {a.name: 3 for a in project.attributes.all()}
    assert api.post("/api/queue/submit/", {"view_key": task["view_key"], "values": values}, format="json").status_code == 201
    ratings = list(Rating.objects.filter(rater__user=annotator))
    assert len(ratings) == 5
    assert api.post(f"/api/projects/{project.pk}/queue/undo/", {}, format="json").status_code == 200
    assert not Rating.objects.exists()
    for rating in ratings:
        submit, undo = _events(rating)
        assert (submit.action, undo.action) == ("rating.submit", "rating.undo")
        assert undo.actor == annotator and undo.before["value"] == 3 and undo.after is None


def test_preferences_and_their_undo_are_recorded(pair, annotator, rf):
    judge = judge_rater_get_or_create(name="j", model="m9")
    preference, _ = preference_submit(rater=judge, pair=pair, strength=1)
    (event,) = _events(preference)
    # Outside a request (a judge worker): the system, no user.
    assert event.action == "preference.submit" and event.actor is None and event.actor_name == ""
    assert event.after["strength"] == 1 and event.after["rater_id"] == judge.pk

    from annotate.queue import assignment_claim_next, assignment_submit_preference, assignment_undo

    rater = rater_for_user(user=annotator)
    pair.item.project.protocols = Project.Protocols.RANKING
    pair.item.project.save()
    assignment = assignment_claim_next(project=pair.item.project, rater=rater)
    assert assignment is not None and assignment.pair_id == pair.pk
    assignment_submit_preference(rater=rater, view_key=assignment.view_key, shown_strength=-1)
    human = pair.preferences.get(rater=rater)
    assignment_undo(project=pair.item.project, rater=rater)
    submit, undo = _events(human)
    assert undo.action == "preference.undo" and undo.before["strength"] == human.strength and undo.after is None


def test_project_settings_and_membership_changes_are_recorded(researcher, annotator, client):
    project = project_create(name="Audited")
    (created,) = _events(project)
    assert created.action == "project.create" and created.before is None and created.after["name"] == "Audited"

    project_update(project=project, overlap=5, guidelines="Read twice.")
    update = _events(project, "project.update")[-1]
    assert (update.before["overlap"], update.after["overlap"]) == (3, 5)
    assert update.after["guidelines"] == "Read twice."

    project.members.add(researcher, annotator)
    annotator.projects.remove(project)  # the other side of the relation is recorded too
    project.members.clear()
    added, removed, cleared = _events(project, "project.members")
    assert (added.before, added.after) == ({"members": []}, {"members": ["annotator", "researcher"]})
    assert (removed.before, removed.after) == ({"members": ["annotator", "researcher"]}, {"members": ["researcher"]})
    assert (cleared.before, cleared.after) == ({"members": ["researcher"]}, {"members": []})


def test_judge_changes_and_template_edits_are_recorded(researcher):
    judge = judge_create(name="auditee", model_ref="/models/x", response_model="m1")
    assert [e.action for e in _events(judge)] == ["judge.create"]
    judge_update(judge=judge, base_url="http://127.0.0.1:9000/v1", response_model="m2")
    update = _events(judge, "judge.update")[-1]
    assert update.before["base_url"] == "" and update.after["base_url"] == "http://127.0.0.1:9000/v1"
    assert (update.before["response_model"], update.after["response_model"]) == ("m1", "m2")
    judge_update(judge=judge, base_url="http://127.0.0.1:9000/v1")  # no change, no event
    assert len(_events(judge, "judge.update")) == 1

    old = judge.rating_template
    template = judge_template_edit(judge=judge, protocol="rating", system=old.system + " Be strict.", user=old.user)
    edit = _events(judge, "judge.template")[-1]
    assert edit.before["rating_template"]["id"] == old.pk and edit.after["rating_template"]["id"] == template.pk
    assert edit.after["rating_template"]["system"].endswith("Be strict.")


def test_an_import_is_recorded_once_with_its_row_counts(researcher, client, tmp_path):
    client.force_login(researcher)
    rows = '{"id": "q1", "prompt": "P", "responses": [{"id": "a", "text": "one"}, {"id": "b", "text": "two"}]}\n'
    upload = tmp_path / "pairs.jsonl"
    upload.write_text(rows)
    with upload.open("rb") as handle:
        page = client.post("/import/", {"project": "imported", "files": handle, "format": "jsonl"})
    assert page.status_code in (200, 302), page.content[:500]
    project = Project.objects.get(name="imported")
    (event,) = _events(project, "project.import")
    assert event.actor == researcher
    assert event.after["items"] - (event.before or {}).get("items", 0) == 1


def test_admin_reads_the_trail_per_object_and_per_user(pair, annotator, admin_user, client):
    api = APIClient()
    api.force_authenticate(annotator)
    project = pair.item.project
    task = api.post(f"/api/projects/{project.pk}/queue/next/").json()["task"]
    body = {"view_key": task["view_key"], "values": {a.name: 1 for a in project.attributes.all()}}
    if task["protocol"] == "ranking":
        body = {"view_key": task["view_key"], "shown_strength": 1}
    assert api.post("/api/queue/submit/", body, format="json").status_code == 201
    project_update(project=project, overlap=4)
    client.force_login(admin_user)

    # The project's admin page links to its trail; the trail lists its events.
    page = client.get(reverse("admin:annotate_project_change", args=[project.pk])).content.decode()
    trail = reverse("admin:annotate_auditevent_changelist") + f"?object_type=annotate.project&amp;object_id={project.pk}"
    assert trail in page
    listed = client.get(trail.replace("&amp;", "&"))
    assert listed.status_code == 200
    assert listed.context["cl"].result_count == len(_events(project))
    assert {e.action for e in listed.context["cl"].result_list} == {"project.create", "project.update", "project.members"}

    # Per user: everything the annotator changed, and only that.
    mine = client.get(reverse("admin:annotate_auditevent_changelist") + f"?actor__id__exact={annotator.pk}")
    assert mine.status_code == 200 and {e.actor_id for e in mine.context["cl"].result_list} == {annotator.pk}
    user_page = client.get(reverse("admin:auth_user_change", args=[annotator.pk])).content.decode()
    assert f"?actor__id__exact={annotator.pk}" in user_page

    # The trail is not editable, even by a superuser.
    event = AuditEvent.objects.filter(actor=annotator).first()
    assert event is not None
    change = reverse("admin:annotate_auditevent_change", args=[event.pk])
    assert client.get(change).status_code == 200
    assert client.post(change, {"action": "forged"}).status_code == 403
    assert client.post(reverse("admin:annotate_auditevent_delete", args=[event.pk]), {"post": "yes"}).status_code == 403
    assert client.get(reverse("admin:annotate_auditevent_add")).status_code == 403
    event.refresh_from_db()
    assert event.action in ("rating.submit", "preference.submit")


def test_admin_edits_are_recorded_with_the_admin_as_actor(project, admin_user, researcher, client):
    client.force_login(admin_user)
    url = reverse("admin:annotate_project_change", args=[project.pk])
    form = client.get(url).context["adminform"].form
    data = {k: v for k, v in form.initial.items() if v is not None and not isinstance(v, list)}
    data.update({"name": project.name, "overlap": 7, "attributes-TOTAL_FORMS": "0", "attributes-INITIAL_FORMS": "0"})
    # Members are the Membership inline (a role per project): keep the researcher, drop the others.
    memberships = list(Membership.objects.filter(project=project).select_related("user").order_by("pk"))
    data.update({"memberships-TOTAL_FORMS": str(len(memberships)), "memberships-INITIAL_FORMS": str(len(memberships))})
    for i, m in enumerate(memberships):
        data.update({f"memberships-{i}-id": m.pk, f"memberships-{i}-project": project.pk,
                     f"memberships-{i}-user": m.user_id, f"memberships-{i}-role": m.role})
        if m.user_id != researcher.pk:
            data[f"memberships-{i}-DELETE"] = "on"
    response = client.post(url, data)
    assert response.status_code == 302, response.context["adminform"].form.errors if response.context else response
    update = _events(project, "project.update")[-1]
    assert update.actor == admin_user
    assert (update.before["overlap"], update.after["overlap"]) == (3, 7)
    assert len(update.after["attributes"]) == 5
    removed = _events(project, "project.membership")
    assert {e.before["user"] for e in removed} == {"annotator", "annotator2"}
    assert all(e.actor == admin_user and e.after is None for e in removed)
    assert list(project.members.values_list("username", flat=True)) == ["researcher"]


def test_archiving_a_project_and_a_judge_is_recorded_with_who_did_it(project, researcher):
    from judges.services import judge_archive

    api = APIClient()
    api.force_authenticate(researcher)
    assert api.delete(f"/api/projects/{project.pk}/").status_code == 204
    (event,) = _events(project, "project.archive")
    assert event.actor == researcher and event.before["archived_at"] is None and event.after["archived_at"]
    judge = judge_create(name="archived-judge", model_ref="m", owner=researcher)
    judge_archive(judge=judge)
    judge_archive(judge=judge)  # archiving again changes nothing and records nothing
    assert len(_events(judge, "judge.archive")) == 1
