"""The demo project that `make run` loads works for each demo login."""

from __future__ import annotations

import pytest

from annotate.demo import DEMO_PASSWORD, demo_project_create
from annotate.models import Assignment, Pair

pytestmark = pytest.mark.django_db


def test_demo_project_is_ready_for_each_role(client):
    project = demo_project_create().project
    assert demo_project_create().created is False  # idempotent
    assert Pair.objects.filter(item__project=project, gold_strength__isnull=False).count() == 1
    assert client.login(username="alice", password=DEMO_PASSWORD)
    page = client.get(f"/projects/{project.pk}/annotate/")
    assert page.status_code == 200
    body = page.content.decode()
    assert "aurora-7b" not in body and "basalt-13b" not in body
    assert Assignment.objects.filter(rater__user__username="alice").count() == 1
    client.logout()
    assert client.login(username="researcher", password=DEMO_PASSWORD)
    assert client.get(f"/projects/{project.pk}/dashboard/").status_code == 200
    assert client.get(f"/reports/projects/{project.pk}/").status_code == 200
