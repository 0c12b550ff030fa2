from __future__ import annotations

import pytest
from django.contrib import admin
from django.urls import reverse

from annotate.models import Assignment, Attribute, Item, Pair, Preference, Project, Rater, Rating, Response
from annotate.services import judge_rater_get_or_create, preference_submit, rater_for_user, ratings_submit

MODELS = [Project, Attribute, Item, Response, Pair, Rater, Rating, Preference, Assignment]


@pytest.fixture(autouse=True)
def fast_passwords(settings):
    # The shared fixtures create five users; PBKDF2 makes that seconds per test.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def test_every_annotate_model_is_registered_with_raw_id_foreign_keys():
    for model in MODELS:
        model_admin = admin.site._registry.get(model)
        assert model_admin is not None, model
        foreign_keys = {f.name for f in model._meta.fields if f.many_to_one and f.related_model is not Project}
        # Large tables must not render a <select> of every row of a related table.
        assert foreign_keys <= set(model_admin.raw_id_fields), model


@pytest.fixture
def annotated(project, annotator):
    item = project.items.create(external_id="i1", prompt="Say hi")
    a = item.responses.create(external_id="r1", text="Hi", model="m1")
    b = item.responses.create(external_id="r2", text="Hello", model="m2")
    pair = Pair.objects.create(item=item, response_a=a, response_b=b)
    ratings_submit(rater=rater_for_user(user=annotator), response=a, values={"helpfulness": 2})
    preference_submit(rater=judge_rater_get_or_create(name="j", model="m1"), pair=pair, strength=1)
    return {Project: project, Item: item, Response: a, Pair: pair}


def test_admin_changelists_and_change_pages_render(annotated, admin_user, client):
    client.force_login(admin_user)
    for model in MODELS:
        prefix = f"admin:{model._meta.app_label}_{model._meta.model_name}"
        response = client.get(reverse(f"{prefix}_changelist") + "?q=r1")
        assert response.status_code == 200, model
        obj = annotated.get(model) or model.objects.first()
        if obj is not None:
            assert client.get(reverse(f"{prefix}_change", args=[obj.pk])).status_code == 200, model
    project_page = client.get(reverse("admin:annotate_project_change", args=[annotated[Project].pk]))
    assert b"helpfulness" in project_page.content  # the attribute inline
    item_page = client.get(reverse("admin:annotate_item_change", args=[annotated[Item].pk]))
    assert b"Hello" in item_page.content  # the response inline


def test_non_staff_cannot_open_admin(researcher, client):
    client.force_login(researcher)
    assert client.get("/admin/annotate/rating/").status_code == 302


@pytest.fixture
def judgment(annotated):
    from judges.models import Judgment, Run
    from judges.services import judge_create

    judge = judge_create(name="admin-judge", model_ref="/models/x")
    pair = annotated[Pair]
    run = Run.objects.create(judge=judge, project=annotated[Project], protocols=["ranking"], status=Run.Status.DONE)
    preference, _ = preference_submit(rater=judge.rater, pair=pair, strength=-1, shown_order="ab")
    return Judgment.objects.create(
        run=run, protocol=Judgment.Protocol.RANKING, item=pair.item, pair=pair, shown_order="ab",
        status=Judgment.Status.OK, raw_text="[[A]]", verdict="A", probabilities={"A": 0.9, "B": 0.05, "C": 0.05},
        preference=preference,
    )


def test_annotations_and_judgments_are_read_only_in_the_admin(annotated, judgment, admin_user, client):
    """A superuser can read ratings, preferences and judgments, but no POST changes, adds or
    deletes one: they change only through the services (checked, and audited)."""
    from judges.models import Judgment

    client.force_login(admin_user)
    rating = Rating.objects.first()
    preference = Preference.objects.filter(rater__kind="judge").first()
    assert rating is not None and preference is not None
    forged = {
        Rating: (rating, {"value": 0, "rater": rating.rater_id, "response": rating.response_id,
                          "attribute": rating.attribute_id}),
        Preference: (preference, {"strength": 3, "rater": preference.rater_id, "rater_kind": "judge",
                                  "pair": preference.pair_id, "shown_order": "ab"}),
        Judgment: (judgment, {"raw_text": "[[B]]", "verdict": "B", "probabilities": '{"B": 1.0}',
                              "run": judgment.run_id, "protocol": "ranking", "item": judgment.item_id,
                              "status": "ok"}),
    }
    for model, (obj, data) in forged.items():
        prefix = f"admin:{model._meta.app_label}_{model._meta.model_name}"
        before = {f.attname: getattr(obj, f.attname) for f in model._meta.concrete_fields}
        change = reverse(f"{prefix}_change", args=[obj.pk])
        page = client.get(change)
        assert page.status_code == 200, model  # readable
        assert b'name="_save"' not in page.content, model  # no save button
        assert client.post(change, data).status_code == 403, model
        assert client.post(reverse(f"{prefix}_delete", args=[obj.pk]), {"post": "yes"}).status_code == 403, model
        assert client.get(reverse(f"{prefix}_add")).status_code == 403, model
        bulk = client.post(reverse(f"{prefix}_changelist"), {"action": "delete_selected", "_selected_action": [obj.pk], "post": "yes"})
        assert model.objects.filter(pk=obj.pk).exists(), model
        assert bulk.status_code in (200, 302), model
        obj.refresh_from_db()
        assert {f.attname: getattr(obj, f.attname) for f in model._meta.concrete_fields} == before, model


def test_the_admin_refuses_deletes_that_would_cascade_to_annotations(annotated, judgment, admin_user, client):
    from judges.models import Judge

    client.force_login(admin_user)
    project = annotated[Project]
    judge = Judge.objects.get(rater__name="admin-judge")
    for url in (reverse("admin:annotate_project_delete", args=[project.pk]),
                reverse("admin:judges_judge_delete", args=[judge.pk])):
        page = client.post(url, {"post": "yes"})
        assert page.status_code in (200, 403), url  # the "you may not delete" page, never the delete
    assert Project.objects.filter(pk=project.pk).exists() and Judge.objects.filter(pk=judge.pk).exists()
    assert Rating.objects.exists() and Preference.objects.exists()
