"""The export command, page (background job + htmx progress) and streamed API download."""

from __future__ import annotations

import io
import json
import os
import re
import time
import zipfile

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse
from rest_framework.test import APIClient

from annotate.models import Rater
from annotate.services import project_create, ratings_submit
from exports import jobs, views
from tests.export_fixtures import EXPECTED_STRENGTH, build_export_project


@pytest.fixture
def export_project(db, researcher, annotator):
    project = build_export_project()
    project.members.add(researcher, annotator)
    return project


@pytest.fixture
def inline_jobs(monkeypatch):
    """Run export jobs in the request's thread: under the `db` fixture a second thread could not
    see the test's uncommitted rows."""

    def start(**kwargs):
        job_id = jobs.export_job_start(**kwargs, run=False)
        jobs.export_job_run(job_id=job_id, project=kwargs["project"], options=jobs.export_options_validate(options=kwargs["options"]))
        return job_id

    monkeypatch.setattr(views, "export_job_start", start)
    # export_job_run closes the connection at the end of a real thread; not here.
    monkeypatch.setattr(jobs.connection, "close", lambda: None)


def _strengths(text: str) -> dict[str, int]:
    rows = [json.loads(line) for line in text.splitlines() if line]
    return {r["prompt"][7:-1]: r["preference_strength"] for r in rows}


def test_command_writes_the_export(export_project, tmp_path):
    out = tmp_path / "pref.jsonl"
    stdout = io.StringIO()
    call_command("export", export_project.name, "--format", "helpsteer2-preference", "--out", str(out), stdout=stdout)
    assert _strengths(out.read_text()) == EXPECTED_STRENGTH
    assert "4 rows" in stdout.getvalue()
    call_command(
        "export", str(export_project.pk), "--format", "dpo", "--dpo-source", "judge", "--judge", "j1",
        "--exclude-gold", "--out", str(tmp_path / "dpo.jsonl"), stdout=io.StringIO(),
    )
    assert len((tmp_path / "dpo.jsonl").read_text().splitlines()) == 1  # i1 only: i3 is gold, i4 a tie


def test_command_rejects_bad_input(export_project, tmp_path):
    with pytest.raises(CommandError, match="No project"):
        call_command("export", "nope", "--format", "dpo", "--out", str(tmp_path / "x"))
    with pytest.raises(CommandError, match="sum to"):
        call_command("export", export_project.name, "--format", "dpo", "--splits", "train=0.3",
                     "--out", str(tmp_path / "x"))
    with pytest.raises(CommandError, match="judge"):
        call_command("export", export_project.name, "--format", "dpo", "--dpo-source", "agreement",
                     "--out", str(tmp_path / "x"))


def test_export_page_is_for_researchers_only(client, export_project, annotator, researcher, outsider):
    url = reverse("exports:project", kwargs={"project_id": export_project.pk})
    client.force_login(annotator)
    assert client.get(url).status_code == 403
    client.force_login(outsider)
    assert client.get(url).status_code in (403, 404)
    client.force_login(researcher)
    page = client.get(url)
    assert page.status_code == 200
    assert b'id="export-job"' in page.content and b"j1" in page.content  # the judge is offered


def test_export_page_job_polls_then_stops_with_286_and_serves_files(
    client, export_project, researcher, inline_jobs, settings, tmp_path
):
    settings.VAR_DIR = tmp_path
    client.force_login(researcher)
    url = reverse("exports:project", kwargs={"project_id": export_project.pk})
    form = {"format": "parquet", "raters": "humans", "dpo_source": "human", "min_agreement": "0",
            "splits": "train=1", "seed": "0", "licence": "cc-by-4.0"}
    answer = client.post(url, form, HTTP_HX_REQUEST="true")
    assert answer.status_code == 286  # already done: htmx must not poll
    assert b"<progress" in answer.content
    job_id = next(p.name for p in (tmp_path / "exports").iterdir())
    poll = client.get(reverse("exports:job", kwargs={"project_id": export_project.pk, "job_id": job_id}),
                      HTTP_HX_REQUEST="true")
    assert poll.status_code == 286
    name = jobs.export_job_status(job_id=job_id)["files"][0]
    download = client.get(reverse("exports:job_file", kwargs={"project_id": export_project.pk, "job_id": job_id, "name": name}))
    assert download.status_code == 200
    archive = zipfile.ZipFile(io.BytesIO(b"".join(download.streaming_content)))
    assert "README.md" in archive.namelist() and "preferences/train.parquet" in archive.namelist()
    # Without htmx the form redirects to the job page.
    plain = client.post(url, {**form, "format": "dpo"})
    assert plain.status_code == 302
    assert client.get(plain["Location"]).status_code == 200


def test_export_page_reports_running_job_with_progress(client, export_project, researcher, settings, tmp_path):
    settings.VAR_DIR = tmp_path
    client.force_login(researcher)
    job_id = jobs.export_job_start(project=export_project, options=jobs.ExportOptions("dpo"), user_id=researcher.pk, run=False)
    status = jobs.export_job_status(job_id=job_id)
    jobs._write_status(job_id, {**status, "state": "running", "done": 2, "total": 4})
    poll = client.get(reverse("exports:job", kwargs={"project_id": export_project.pk, "job_id": job_id}),
                      HTTP_HX_REQUEST="true")
    assert poll.status_code == 200
    assert b'hx-trigger="every 1s"' in poll.content and b'value="2"' in poll.content
    assert client.get(reverse("exports:job", kwargs={"project_id": export_project.pk, "job_id": "0" * 32})).status_code == 404


@pytest.mark.django_db(transaction=True)
def test_the_export_task_finishes_the_export(researcher, settings, tmp_path):
    # The Celery task's body (a real worker runs it in tests/test_faults_worker.py).
    settings.VAR_DIR = tmp_path
    project = build_export_project("Threaded")
    job_id = jobs.export_job_start(project=project, options=jobs.ExportOptions("helpsteer2-preference"),
                                   user_id=None, run=False)
    assert jobs.export_job_execute(job_id=job_id) == "done"
    status = jobs.export_job_status(job_id=job_id)
    assert status["state"] == "done", status.get("error")
    assert status["done"] == status["total"] == 4
    path = jobs.export_job_file(job_id=job_id, name=status["files"][0])
    assert _strengths(path.read_text()) == EXPECTED_STRENGTH


def test_api_streams_exports_to_researchers(export_project, researcher, annotator):
    api = APIClient()
    url = reverse("api-project-export", kwargs={"pk": export_project.pk})
    api.force_authenticate(annotator)
    assert api.get(url, {"format": "dpo"}).status_code == 403
    api.force_authenticate(researcher)
    answer = api.get(url, {"format": "helpsteer2-preference"})
    assert answer.status_code == 200 and answer.streaming
    assert _strengths(b"".join(answer.streaming_content).decode()) == EXPECTED_STRENGTH
    assert "attachment" in answer["Content-Disposition"]
    lists = api.get(url, {"format": "helpsteer2", "part": "disagreements"})
    assert b"[4, 0, 3, 4, 2]" in b"".join(lists.streaming_content)
    csv_answer = api.get(url, {"format": "annotations", "raters": "judges"})
    assert len(b"".join(csv_answer.streaming_content).decode().splitlines()) == 1 + 5 + 6
    parquet = api.get(url, {"format": "parquet"})
    assert parquet.status_code == 200 and parquet["Content-Type"] == "application/zip"
    assert api.get(url, {"format": "dpo", "dpo_source": "judge"}).status_code == 400
    assert api.get(url, {"format": "nope"}).status_code == 400


def test_old_finished_jobs_are_pruned_when_a_new_one_starts(export_project, researcher, settings, tmp_path):
    settings.VAR_DIR = tmp_path
    settings.CONCORDANCE = {**settings.CONCORDANCE, "EXPORT_KEEP_HOURS": 1}
    start = lambda: jobs.export_job_start(  # noqa: E731
        project=export_project, options=jobs.ExportOptions("dpo"), user_id=researcher.pk, run=False)
    old_done, old_failed, old_running, fresh_done = start(), start(), start(), start()
    two_hours_ago = time.time() - 2 * 3600
    for job_id, state, finished in ((old_done, "done", two_hours_ago), (old_failed, "failed", two_hours_ago),
                                    (old_running, "running", None), (fresh_done, "done", time.time())):
        status = jobs.export_job_status(job_id=job_id)
        jobs._write_status(job_id, {**status, "state": state, "finished_at": finished, "started_at": two_hours_ago})
    stray = jobs.jobs_root() / ("f" * 32)  # a folder a crash left without a status file
    stray.mkdir()
    os.utime(stray, (two_hours_ago, two_hours_ago))
    newest = start()
    left = {p.name for p in jobs.jobs_root().iterdir()}
    assert left == {old_running, fresh_done, newest}


# --- file names and choices ---------------------------------------------------------------------

UNSAFE = set('<>:"/\\|?*\'') | {chr(c) for c in range(32)}


@pytest.mark.parametrize(
    ("name", "expected"),
    [("HS2: v1/test", "HS2_v1_test"), ('a<b>c"d|e?f*g\\h', "a_b_c_d_e_f_g_h"), ("CON", "_CON"),
     ("nul.jsonl", "_nul.jsonl"), ("...", "export"), ("", "export"), (".hidden", "hidden"),
     ("Café résumé", "Cafe_resume"), ("line\nbreak\ttab", "line_break_tab"), ("trailing. ", "trailing"),
     ("x" * 300, "x" * 120)],
)  # fmt: skip
def test_safe_filename_holds_on_every_os(name, expected):
    from exports.filenames import safe_filename

    assert safe_filename(name) == expected
    assert not (set(safe_filename(name)) & UNSAFE)


def test_every_download_of_a_project_with_a_colon_has_a_safe_name(client, researcher, inline_jobs, settings, tmp_path):
    settings.VAR_DIR = tmp_path
    project = build_export_project('HS2: "v1"/test')
    project.members.add(researcher)
    client.force_login(researcher)
    url = reverse("exports:project", kwargs={"project_id": project.pk})
    form = {"raters": "humans", "dpo_source": "human", "min_agreement": "0", "splits": "train=1", "seed": "0",
            "licence": "other"}  # fmt: skip
    names = []
    for fmt in ("helpsteer2", "helpsteer2-preference", "dpo", "annotations", "parquet"):
        client.post(url, {**form, "format": fmt}, HTTP_HX_REQUEST="true")
    for folder in (tmp_path / "exports").iterdir():
        status = jobs.export_job_status(job_id=folder.name)
        assert status["state"] == "done", status.get("error")
        names += status["files"]
        for name in status["files"]:
            download = client.get(reverse("exports:job_file", kwargs={"project_id": project.pk, "job_id": folder.name,
                                                                      "name": name}))  # fmt: skip
            assert download.status_code == 200
            assert f'filename="{name}"' in download["Content-Disposition"]
    api = APIClient()
    api.force_authenticate(researcher)
    api_url = reverse("api-project-export", kwargs={"pk": project.pk})
    for query in ({"format": "helpsteer2-preference"}, {"format": "annotations"}, {"format": "parquet"}):
        disposition = api.get(api_url, query)["Content-Disposition"]
        names.append(disposition.split("filename=")[1].strip('"'))
    assert len(names) >= 8
    for name in names:
        assert not (set(name) & UNSAFE), name
        assert name.startswith("HS2_v1_test-"), name


def test_judge_filter_is_a_choice_of_the_projects_judges(client, export_project, researcher):
    # A judge that only rated responses here is as much a choice as one that ranked pairs.
    rated_only = Rater.objects.create(kind="judge", name="rater-only")
    response = export_project.items.get(external_id="i2").responses.first()
    ratings_submit(rater=rated_only, response=response, values={"helpfulness": 3})
    Rater.objects.create(kind="judge", name="elsewhere")  # annotates nothing here: not offered
    client.force_login(researcher)
    body = client.get(reverse("exports:project", kwargs={"project_id": export_project.pk})).content.decode()
    select = body[body.index('<select name="judge"'):]
    select = select[:select.index("</select>")]
    assert re.findall(r'<option value="([^"]*)"', select) == ["", "j1", "rater-only"]
    assert 'type="text" name="judge"' not in body
    # A project no judge annotated still offers a choice ("any"), not a text box.
    empty = project_create(name="Empty")
    empty.members.add(researcher)
    body = client.get(reverse("exports:project", kwargs={"project_id": empty.pk})).content.decode()
    assert '<select name="judge"' in body and "No judge has annotated this project yet." in body
    # A name that is not one of the choices is refused, not exported as nothing.
    url = reverse("exports:project", kwargs={"project_id": export_project.pk})
    answer = client.post(url, {"format": "dpo", "raters": "judges", "judge": "elsewhere", "dpo_source": "judge",
                               "min_agreement": "0", "splits": "train=1", "seed": "0", "licence": "other"})  # fmt: skip
    assert answer.status_code == 200 and "Select a valid choice" in answer.content.decode()
