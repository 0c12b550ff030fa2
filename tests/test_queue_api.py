from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from annotate.models import Pair, Preference, Project, Rating

ALL = {"helpfulness": 3, "correctness": 2, "coherence": 4, "complexity": 1, "verbosity": 2}


@pytest.fixture
def api(annotator):
    client = APIClient()
    client.force_authenticate(annotator)
    return client


def _pair(project: Project) -> Pair:
    item = project.items.create(external_id="i", prompt="Q?")
    a = item.responses.create(external_id="a", text="one", model="secret-model")
    b = item.responses.create(external_id="b", text="two", model="secret-model-2")
    return Pair.objects.create(item=item, response_a=a, response_b=b)


def test_api_runs_a_project_to_the_end_without_model_names(api, project):
    _pair(project)
    stored = 0
    while True:
        response = api.post(f"/api/projects/{project.pk}/queue/next/?progress=1")
        assert response.status_code == 200
        task = response.json()["task"]
        if task is None:
            break
        assert "secret-model" not in response.content.decode()
        if task["protocol"] == "rating":
            body = {"view_key": task["view_key"], "values": ALL, "time_on_task_ms": 1500}
        else:
            assert [r["label"] for r in task["responses"]] == ["A", "B"]
            body = {"view_key": task["view_key"], "shown_strength": 1}
        first = api.post("/api/queue/submit/", body, format="json")
        again = api.post("/api/queue/submit/", body, format="json")
        assert first.status_code == 201 and again.status_code == 200 and again.json()["duplicate"]
        stored += 1
    assert stored == 3
    assert Rating.objects.count() == 10 and Preference.objects.count() == 1


def test_api_errors_are_clear_not_500(api, project):
    _pair(project)
    task = api.post(f"/api/projects/{project.pk}/queue/next/").json()["task"]
    missing = api.post("/api/queue/submit/", {"view_key": "00000000-0000-0000-0000-000000000000", "shown_strength": 1}, format="json")
    assert missing.status_code == 404
    bad = api.post("/api/queue/submit/", {"view_key": task["view_key"]}, format="json")
    assert bad.status_code == 400
    nothing = api.post(f"/api/projects/{project.pk}/queue/undo/", {}, format="json")
    assert nothing.status_code == 409
    skip = api.post("/api/queue/skip/", {"view_key": task["view_key"], "reason": "broken"}, format="json")
    assert skip.status_code == 200


def test_outsider_gets_no_tasks(outsider, project):
    client = APIClient()
    client.force_authenticate(outsider)
    assert client.post(f"/api/projects/{project.pk}/queue/next/").status_code in (403, 404)
