"""Debian's Chromium, keyboard only: a participant opens a Prolific-style study link, does the
study's ten tasks and lands on Prolific's completion URL with the study's code.

(The training/qualification step between the link and the queue is annotate.crowd.study_gate, a
hook the training round joins; this walk starts at the queue.) Prolific itself is not reachable
from the test machine: the test records the navigation request the browser makes to it."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlencode

import pytest

from annotate.crowd import study_create, study_token
from annotate.models import Assignment, Participant, Rating
from annotate.services import project_create

OUT = Path(__file__).resolve().parent.parent / "test-output"
PID = "60a1b2c3d4e5f60718293a4b"
CODE = "C1A2B3C4"

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _study():
    project = project_create(name="Crowd study", protocols="rating", overlap=1,
                             attributes=[{"name": "helpfulness"}], guidelines="Rate how helpful it is.")
    for n in range(12):
        project.items.create(external_id=f"q{n}", prompt=f"Question {n}?").responses.create(
            external_id="a", text=f"Answer number {n}.")
    return study_create(project=project, creator=None, name="Pilot", completion_code=CODE, quota=10,
                        external_study_id="STUDY-9")


def test_a_participant_goes_from_the_study_link_through_ten_tasks_to_the_completion_redirect(
    live_server, chromium
):
    OUT.mkdir(exist_ok=True)
    study = _study()
    page = chromium.new_page(viewport={"width": 1280, "height": 900})
    page.set_default_timeout(30_000)  # a busy 2-core machine
    query = urlencode({"PROLIFIC_PID": PID, "STUDY_ID": "STUDY-9", "SESSION_ID": "sess-abc"})
    page.goto(f"{live_server.url}/study/{study_token(study)}/?{query}")
    page.wait_for_selector("body[data-task-ready]")
    assert "/annotate/" in page.url
    assert page.get_by_text("Leave the study without finishing").is_visible()
    page.screenshot(path=str(OUT / "study-task.png"), full_page=True)
    assert _serious(page, ".study-bar") == []

    for n in range(9):
        key = page.locator("#task").get_attribute("data-view-key") or ""
        counter = page.locator(".progress-label").first.inner_text()
        assert f"{n} / 10" in counter, counter
        page.keyboard.press(str(n % 5))
        page.keyboard.press("Enter")
        page.wait_for_function(
            "old => { const t = document.querySelector('#task'); "
            "return t && t.dataset.viewKey !== old && document.body.dataset.taskReady === t.dataset.viewKey; }",
            arg=key,
        )
    assert "9 / 10" in page.locator(".progress-label").first.inner_text()
    # The tenth submit: the page is sent to the study's completion, which sends it to Prolific.
    with page.expect_request("https://app.prolific.com/**") as sent:
        page.keyboard.press(str(9 % 5))
        page.keyboard.press("Enter")
    assert sent.value.url == f"https://app.prolific.com/submissions/complete?cc={CODE}"
    assert sent.value.is_navigation_request()

    participant = Participant.objects.get()
    assert participant.external_id == PID and participant.session_id == "sess-abc"
    assert participant.completed_at is not None
    assert Rating.objects.filter(rater__user=participant.user).count() == 10
    assert sorted(Rating.objects.filter(rater__user=participant.user).values_list("value", flat=True)) == sorted(
        n % 5 for n in range(10))
    # Ten done, nothing held past the quota: the two other tasks stay free for other participants.
    assignments = Assignment.objects.filter(rater__user=participant.user)
    assert assignments.filter(status="done").count() == 10 and not assignments.exclude(status="done").exists()


def _serious(page, context: str | None = None) -> list[str]:
    """axe-core's serious and critical violations on the page (or inside `context`, a selector)."""
    from axe_playwright_python.sync_playwright import Axe

    results = Axe().run(page, context=context)
    return [f"{v['id']}: {v['help']}" for v in results.response["violations"] if v["impact"] in ("serious", "critical")]


def test_the_researcher_makes_a_study_and_an_invitation_with_the_keyboard_and_the_pages_pass_axe(
    live_server, chromium
):
    from django.contrib.auth import get_user_model

    from annotate.models import Invite, Membership, Study
    from annotate.roles import user_set_role

    study = _study()
    researcher = get_user_model().objects.create_user(username="res", password="pw-res-123")
    user_set_role(user=researcher, role="researcher")
    Membership.objects.create(project=study.project, user=researcher, role="researcher")
    page = chromium.new_page(viewport={"width": 1280, "height": 900})
    page.set_default_timeout(30_000)  # a busy 2-core machine
    page.goto(f"{live_server.url}/accounts/login/")
    page.keyboard.type("res")
    page.keyboard.press("Tab")
    page.keyboard.type("pw-res-123")
    page.keyboard.press("Enter")
    page.wait_for_url(f"{live_server.url}/")

    page.goto(f"{live_server.url}/projects/{study.project_id}/studies/")
    assert _serious(page) == []
    page.get_by_label("Name").focus()
    page.keyboard.type("Second wave")
    page.keyboard.press("Enter")  # the form's defaults (Prolific's parameters, a code) do the rest
    page.wait_for_selector("text=Study 'Second wave' made")
    assert Study.objects.filter(name="Second wave", quota=10).exists()
    page.screenshot(path=str(OUT / "studies.png"), full_page=True)

    page.goto(f"{live_server.url}/projects/{study.project_id}/members/")
    assert _serious(page) == []
    page.locator("#invite input[name=days]").focus()
    page.keyboard.press("Enter")  # the default role (annotator), no address: a link open for 7 days
    page.wait_for_selector("text=Invitation link made")
    assert Invite.objects.filter(project=study.project, role="annotator", email="").count() == 1
    assert page.get_by_label("Invitation link").input_value().startswith(f"{live_server.url}/invites/")
    page.screenshot(path=str(OUT / "members.png"), full_page=True)

    page.goto(f"{live_server.url}/studies/{study.pk}/payments/")
    assert _serious(page) == []


def test_a_participant_who_leaves_early_frees_the_task_in_hand(live_server, chromium):
    study = _study()
    page = chromium.new_page(viewport={"width": 1280, "height": 900})
    page.set_default_timeout(30_000)  # a busy 2-core machine
    query = urlencode({"PROLIFIC_PID": "leaver01", "STUDY_ID": "STUDY-9", "SESSION_ID": "s1"})
    page.goto(f"{live_server.url}/study/{study_token(study)}/?{query}")
    page.wait_for_selector("body[data-task-ready]")
    key = page.locator("#task").get_attribute("data-view-key") or ""
    page.keyboard.press("2")
    page.keyboard.press("Enter")
    page.wait_for_function("old => document.querySelector('#task').dataset.viewKey !== old", arg=key)
    participant = Participant.objects.get()
    held = Assignment.objects.get(rater__user=participant.user, status="claimed")
    page.get_by_role("button", name="Leave the study without finishing").focus()
    page.keyboard.press("Enter")
    page.wait_for_selector("text=You left the study")
    held.refresh_from_db()
    participant.refresh_from_db()
    assert held.status == "expired" and participant.returned_at is not None and participant.completed_at is None
    assert Assignment.objects.filter(rater__user=participant.user, status="done").count() == 1
