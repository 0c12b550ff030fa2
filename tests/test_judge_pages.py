"""Run pages (htmx progress that stops with 286, cancel, resume) and the judges/runs API."""

from __future__ import annotations

import pytest
from django.urls import reverse
from rest_framework.test import APIClient
from test_judge_fixtures import make_project, tiny_model_dir  # noqa: F401  (fixture)

from judges import services
from judges.models import Judge, Judgment, Run

pytestmark = pytest.mark.django_db


@pytest.fixture
def judged_project(researcher):
    project = make_project(name="Paged", items=1)
    project.members.add(researcher)
    return project


@pytest.fixture
def tiny_judge(tiny_model_dir, researcher):  # noqa: F811
    return services.judge_create(name="tiny-pages", model_ref=str(tiny_model_dir), owner=researcher)


def test_runs_page_lists_runs_and_starts_one(client, researcher, judged_project, tiny_judge):
    client.force_login(researcher)
    url = reverse("judges:runs", kwargs={"project_id": judged_project.pk})
    assert client.get(url).status_code == 200
    response = client.post(url, {"judge": tiny_judge.pk, "kind": "judge", "protocols": ["ranking"]})
    run = Run.objects.get(project=judged_project)
    assert response.status_code == 302 and response["Location"] == reverse("judges:run", kwargs={"run_id": run.pk})
    # The page only records the run; a worker plans it (the task's body, run here).
    assert run.planned_at is None and not run.judgments.exists()
    assert "Waiting for a worker to plan" in client.get(response["Location"]).content.decode()
    services.run_plan(run_id=run.pk)
    run.refresh_from_db()
    assert run.total == 2 and run.created_by == researcher
    assert f"#{run.pk}" in client.get(url).content.decode()


def test_progress_polls_until_the_run_is_done_then_answers_286(client, researcher, judged_project, tiny_judge):
    client.force_login(researcher)
    run = services.run_start(plan_now=True, judge=tiny_judge, project=judged_project, protocols=["ranking"])
    progress = reverse("judges:run-progress", kwargs={"run_id": run.pk})
    page = client.get(reverse("judges:run", kwargs={"run_id": run.pk})).content.decode()
    assert 'id="run-progress"' in page and 'hx-trigger="every 2s"' in page
    assert client.get(progress).status_code == 200
    services.judgments_process(run_id=run.pk, judgment_ids=list(run.judgments.values_list("id", flat=True)))
    done = client.get(progress)
    assert done.status_code == 286 and "hx-trigger" not in done.content.decode()
    assert "2 / 2" in done.content.decode()


def test_cancel_and_resume_from_the_run_page(client, researcher, judged_project, tiny_judge):
    client.force_login(researcher)
    run = services.run_start(plan_now=True, judge=tiny_judge, project=judged_project, protocols=["ranking"])
    client.post(reverse("judges:run-cancel", kwargs={"run_id": run.pk}))
    assert Run.objects.get(pk=run.pk).status == "cancelled"
    client.post(reverse("judges:run-resume", kwargs={"run_id": run.pk}))
    assert Run.objects.get(pk=run.pk).status == "running"


def test_annotators_cannot_see_runs(client, annotator, judged_project, tiny_judge):
    judged_project.members.add(annotator)
    client.force_login(annotator)
    assert client.get(reverse("judges:runs", kwargs={"project_id": judged_project.pk})).status_code == 403
    run = services.run_start(plan_now=True, judge=tiny_judge, project=judged_project, protocols=["ranking"])
    assert client.get(reverse("judges:run", kwargs={"run_id": run.pk})).status_code == 403


def test_api_judges_crud_and_runs_start_list_cancel(researcher, judged_project, tiny_model_dir):  # noqa: F811
    api = APIClient()
    api.force_authenticate(researcher)
    created = api.post("/api/judges/", {"name": "api-judge", "model_ref": str(tiny_model_dir),
                                        "response_model": "tiny"}, format="json")
    assert created.status_code == 201, created.data
    judge_id = created.data["id"]
    assert api.get("/api/judges/").data["count"] == 1
    patched = api.patch(f"/api/judges/{judge_id}/", {"rationale": True}, format="json")
    assert patched.status_code == 200 and patched.data["rationale"] is True

    started = api.post("/api/runs/", {"judge": judge_id, "project": judged_project.pk, "protocols": ["ranking"]},
                       format="json")
    assert started.status_code == 201, started.data
    run_id = started.data["id"]
    assert started.data["total"] == 0 and started.data["status"] == "running"
    services.run_plan(run_id=run_id)  # what the worker's run_plan task does
    assert api.get(f"/api/runs/{run_id}/").data["progress"]["pending"] == 2
    listed = api.get(f"/api/runs/?project={judged_project.pk}").data
    assert [r["id"] for r in listed["results"]] == [run_id]
    assert api.post(f"/api/runs/{run_id}/cancel/").data["status"] == "cancelled"
    assert api.post(f"/api/runs/{run_id}/resume/").data["status"] == "running"
    assert Judgment.objects.filter(run_id=run_id).count() == 2

    # DELETE archives: the judge leaves the list, its run and judgments stay.
    assert api.delete(f"/api/judges/{judge_id}/").status_code == 204
    assert Judge.objects.get(pk=judge_id).archived_at is not None
    assert Judgment.objects.filter(run_id=run_id).count() == 2
    assert api.get("/api/judges/").data["count"] == 0


def test_api_refuses_annotators(annotator):
    api = APIClient()
    api.force_authenticate(annotator)
    assert api.get("/api/judges/").status_code == 403
    assert api.get("/api/runs/").status_code == 403


@pytest.mark.parametrize(("decoding", "field"), [
    ({"min_valid_mass": 1.5}, "decoding.min_valid_mass"),
    ({"min_valid_mass": "high"}, "decoding.min_valid_mass"),
    ({"max_new_tokens": 2.5}, "decoding.max_new_tokens"),
    ({"max_batch_size": True}, "decoding.max_batch_size"),
    ({"temprature": 0.2}, "decoding.temprature"),
    (["not", "an", "object"], "decoding"),
])
def test_api_refuses_bad_decoding_settings_naming_the_key(researcher, tiny_model_dir, decoding, field):  # noqa: F811
    api = APIClient()
    api.force_authenticate(researcher)
    created = api.post("/api/judges/", {"name": "j", "model_ref": str(tiny_model_dir), "decoding": decoding},
                       format="json")
    assert created.status_code == 400, created.data
    assert field in str(created.data)
    assert not Judge.objects.exists()


def test_api_keeps_good_decoding_settings_and_runs_use_them(researcher, tiny_model_dir):  # noqa: F811
    from judges.services import judge_decoding

    api = APIClient()
    api.force_authenticate(researcher)
    created = api.post("/api/judges/", {"name": "j", "model_ref": str(tiny_model_dir),
                                        "decoding": {"min_valid_mass": 0, "max_padding": None, "temperature": 0}},
                       format="json")
    assert created.status_code == 201, created.data
    judge = Judge.objects.get(pk=created.data["id"])
    assert judge_decoding(judge=judge).min_valid_mass == 0.0
    patched = api.patch(f"/api/judges/{judge.pk}/", {"decoding": {"min_valid_mass": -0.1}}, format="json")
    assert patched.status_code == 400 and "decoding.min_valid_mass" in str(patched.data)
    judge.refresh_from_db()
    assert judge.decoding["min_valid_mass"] == 0


# -- judge pages and templates -------------------------------------------------------------------


def test_judge_pages_create_a_judge_and_refuse_bad_input_naming_the_field(client, researcher, tiny_model_dir):  # noqa: F811
    client.force_login(researcher)
    url = reverse("judges:judges")
    assert client.get(url).status_code == 200
    form = {"name": "page-judge", "response_model": "tiny", "backend": "transformers", "model_ref": str(tiny_model_dir),
            "dtype": "auto", "device": "auto", "decoding": '{"min_valid_mass": 2}'}
    refused = client.post(url, form)
    assert refused.status_code == 422
    assert "decoding.min_valid_mass must be between 0.0 and 1.0" in refused.content.decode()
    assert not Judge.objects.exists()
    assert "Not JSON" in client.post(url, form | {"decoding": "{min_valid_mass: 0"}).content.decode()
    created = client.post(url, form | {"decoding": '{"min_valid_mass": 0}'})
    judge = Judge.objects.get()
    assert created.status_code == 302 and created["Location"] == reverse("judges:judge", kwargs={"judge_id": judge.pk})
    assert (judge.rater.name, judge.rater.model, judge.decoding) == ("page-judge", "tiny", {"min_valid_mass": 0})
    page = client.get(created["Location"]).content.decode()
    assert "helpsteer2-rating v1" in page and "mtbench-pairwise v1" in page
    # The preview shows the default template filled with the example.
    assert "boiling point of water" in page


def test_judge_settings_save_and_keep_the_name(client, researcher, tiny_judge):
    client.force_login(researcher)
    url = reverse("judges:judge", kwargs={"judge_id": tiny_judge.pk})
    saved = client.post(url, {"response_model": "SmolLM2-135M-Instruct", "backend": "transformers",
                              "model_ref": tiny_judge.model_ref, "dtype": "float32", "device": "cpu",
                              "rationale": "on", "decoding": '{"temperature": 0}'})
    assert saved.status_code == 302
    tiny_judge.refresh_from_db()
    assert tiny_judge.rationale and tiny_judge.dtype == "float32" and tiny_judge.rater.model == "SmolLM2-135M-Instruct"
    assert tiny_judge.rater.name == "tiny-pages"


def test_editing_a_template_on_the_page_makes_a_new_version_once(client, researcher, tiny_judge):
    client.force_login(researcher)
    url = reverse("judges:judge-template", kwargs={"judge_id": tiny_judge.pk})
    old = tiny_judge.ranking_template
    edited = {"protocol": "ranking", "system": "Be strict.",
              "user": "Q: {prompt}\n[A]\n{response_first}\n[B]\n{response_second}\nAnswer [[A]], [[B]] or [[C]]."}
    first = client.post(url, edited)
    assert first.status_code == 302
    tiny_judge.refresh_from_db()
    new = tiny_judge.ranking_template
    assert (new.name, new.version, new.system) == (old.name, old.version + 1, "Be strict.")
    # The same text again (a double submit) mints nothing.
    client.post(url, edited)
    tiny_judge.refresh_from_db()
    assert tiny_judge.ranking_template.pk == new.pk
    # A typo in a placeholder is refused with what is wrong, and nothing changes.
    typo = client.post(url, edited | {"user": "{prompt} {respone_first} {response_second}"})
    assert typo.status_code == 422
    body = typo.content.decode()
    assert "Unknown placeholder {respone_first}" in body
    tiny_judge.refresh_from_db()
    assert tiny_judge.ranking_template.pk == new.pk


@pytest.mark.parametrize(("protocol", "user", "expected"), [
    ("ranking", "{prompt} {response_first}", "never shows {response_second}"),
    ("ranking", "{prompt} {response_first} {response_second} {attribute}", "Unknown placeholder {attribute}"),
    ("rating", "{prompt} {response} {attribute} {", "Single '{' encountered"),
    ("rating", "", "user message is empty"),
])
def test_template_problems_say_what_is_wrong(protocol, user, expected):
    from judges.prompts import template_problems

    problems = template_problems(protocol=protocol, system="", user=user)
    assert any(expected in message for _, message in problems), problems


def test_default_templates_have_no_problems():
    from judges.prompts import DEFAULT_TEMPLATES, template_problems

    for protocol, spec in DEFAULT_TEMPLATES.items():
        assert template_problems(protocol=protocol, system=spec["system"], user=spec["user"]) == []


def test_preview_renders_the_edit_with_the_example_or_lists_its_problems(client, researcher, tiny_judge):
    client.force_login(researcher)
    url = reverse("judges:template-preview", kwargs={"judge_id": tiny_judge.pk})
    good = client.post(url, {"protocol": "rating", "system": "",
                             "user": "{prompt}|{response}|rate {attribute} {min_value}-{max_value}"}).content.decode()
    assert "What is the boiling point of water at sea level?|100 degrees Celsius" in good
    assert "rate correctness 0-4" in good and "[[" in good
    bad = client.post(url, {"protocol": "rating", "system": "", "user": "{prompt}"}).content.decode()
    assert "never shows {response}" in bad


def test_annotators_cannot_reach_judge_pages(client, annotator, tiny_judge):
    client.force_login(annotator)
    assert client.get(reverse("judges:judges")).status_code == 403
    assert client.get(reverse("judges:judge", kwargs={"judge_id": tiny_judge.pk})).status_code == 403
    preview = reverse("judges:template-preview", kwargs={"judge_id": tiny_judge.pk})
    assert client.post(preview, {"protocol": "rating", "user": "{prompt}"}).status_code == 403


def test_api_template_versions_and_edits(researcher, tiny_judge):
    api = APIClient()
    api.force_authenticate(researcher)
    url = f"/api/judges/{tiny_judge.pk}/templates/"
    assert {(t["protocol"], t["version"]) for t in api.get(url).data} == {("rating", 1), ("ranking", 1)}
    body = {"protocol": "rating", "system": "",
            "user": "{prompt}\n{response}\nRate {attribute} from {min_value} to {max_value}."}
    created = api.post(url, body, format="json")
    assert created.status_code == 201 and created.data["version"] == 2
    assert api.post(url, body, format="json").status_code == 200
    bad = api.post(url, body | {"user": "{prompt}"}, format="json")
    assert bad.status_code == 400 and "never shows {response}" in str(bad.data["user"])
    assert len(api.get(url).data) == 3


def test_admin_shows_template_versions_read_only(client, admin_user, tiny_judge):
    client.force_login(admin_user)
    template = tiny_judge.ranking_template
    url = reverse("admin:judges_prompttemplate_change", args=[template.pk])
    page = client.get(url)
    assert page.status_code == 200
    client.post(url, {"name": template.name, "version": template.version, "protocol": "ranking",
                      "system": "rewritten", "user": "{prompt}"})
    template.refresh_from_db()
    assert template.system != "rewritten"


def test_runs_page_starts_a_filtered_run(client, researcher, judged_project, tiny_judge):
    client.force_login(researcher)
    url = reverse("judges:runs", kwargs={"project_id": judged_project.pk})
    page = client.get(url).content.decode()
    assert "good-model" in page and "bad-model" in page  # the project's models offered as a filter
    response = client.post(url, {"judge": tiny_judge.pk, "kind": "judge", "protocols": ["rating"],
                                 "models": ["good-model"], "items": "item-0"})
    assert response.status_code == 302
    run = Run.objects.get(project=judged_project)
    services.run_plan(run_id=run.pk)
    run.refresh_from_db()
    assert run.filters == {"models": ["good-model"], "items": ["item-0"]} and run.total == 1
    refused = client.post(url, {"judge": tiny_judge.pk, "kind": "judge", "protocols": ["rating"], "items": "nope"})
    assert refused.status_code == 200 and "not in project" in refused.content.decode()


def test_api_run_filters(researcher, judged_project, tiny_judge):
    api = APIClient()
    api.force_authenticate(researcher)
    started = api.post("/api/runs/", {"judge": tiny_judge.pk, "project": judged_project.pk, "protocols": ["ranking"],
                                      "filters": {"models": ["bad-model"]}}, format="json")
    assert started.status_code == 201 and started.data["filters"] == {"models": ["bad-model"]}
    bad = api.post("/api/runs/", {"judge": tiny_judge.pk, "project": judged_project.pk,
                                  "filters": {"roles": ["x"]}}, format="json")
    assert bad.status_code == 400 and "filters.roles" in bad.data


def test_run_page_says_what_part_of_the_project_the_run_covers(client, researcher, judged_project, tiny_judge):
    client.force_login(researcher)
    run = services.run_start(plan_now=True, judge=tiny_judge, project=judged_project, protocols=["ranking"],
                             filters={"models": ["bad-model"], "unjudged_only": True})
    page = client.get(reverse("judges:run", kwargs={"run_id": run.pk})).content.decode()
    assert "responses by bad-model" in page and "only what tiny-pages had not annotated" in page


def test_judge_page_says_whether_this_machine_holds_the_model(client, researcher, tiny_judge, tmp_path):
    from judges.selectors import judge_model_found

    assert judge_model_found(judge=tiny_judge) == (True, "local directory, config.json present")
    default = services.judge_get_or_create_default()
    found, what = judge_model_found(judge=default)
    assert found and ".gguf present" in what
    missing = services.judge_create(name="nowhere", model_ref="no-such-org/no-such-model")
    found, what = judge_model_found(judge=missing)
    assert found is False and "nothing is downloaded at run time" in what
    empty = services.judge_create(name="empty-dir", model_ref=str(tmp_path))
    assert judge_model_found(judge=empty) == (False, "local directory without config.json")
    served = services.judge_create(name="served", backend="openai", model_ref="m", base_url="http://127.0.0.1:9/v1")
    assert judge_model_found(judge=served) == (None, "served by http://127.0.0.1:9/v1")
    client.force_login(researcher)
    page = client.get(reverse("judges:judge", kwargs={"judge_id": missing.pk})).content.decode()
    assert 'class="warning"' in page and "not found on this machine" in page


def test_run_page_shows_how_much_the_judge_answers_inside_the_scale(client, researcher, judged_project, tiny_judge):
    from django.db.models import Avg

    client.force_login(researcher)
    run = services.run_start(plan_now=True, judge=tiny_judge, project=judged_project)
    services.judgments_process(run_id=run.pk, judgment_ids=list(run.judgments.values_list("id", flat=True)))
    mean = Judgment.objects.filter(run=run).aggregate(m=Avg("valid_mass"))["m"]
    assert mean is not None and 0 < mean < 1
    page = client.get(reverse("judges:run", kwargs={"run_id": run.pk})).content.decode()
    assert f"answers inside the scale: {round(mean * 100)}%" in page
    api = APIClient()
    api.force_authenticate(researcher)
    assert api.get(f"/api/runs/{run.pk}/").data["progress"]["mean_valid_mass"] == pytest.approx(mean)
