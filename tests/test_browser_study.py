"""Debian's Chromium, keyboard only: a participant opens a Prolific-style study link, gets an
account without a password, goes through the training round (the expected answer and the guideline
passage after each submit), qualifies, does the study's ten main-queue tasks and lands on
Prolific's completion URL with the study's code; one below the bar lands on its screened-out code.

Prolific itself is not reachable from the test machine: the test records the navigation request
the browser makes to it. No mouse: every step is a key press."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlencode

import pytest

from annotate.crowd import study_create, study_token
from annotate.models import Assignment, Participant, Rating, Standing
from annotate.services import project_create
from tests.browser_helpers import axe_serious, focus_settled, task_ready

OUT = Path(__file__).resolve().parent.parent / "test-output"
PID = "60a1b2c3d4e5f60718293a4b"
CODE = "C1A2B3C4"
SCREENED_OUT_CODE = "S5C6R7"
GUIDELINE = "A **complete** answer that is correct is a 4."

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _study(training: int = 0):
    """A rating study of ten tasks a participant (twelve items); with `training` gold items of
    gold 4 and a training round of that many, passed at one in two."""
    project = project_create(name="Crowd study", protocols="rating", overlap=1,
                             attributes=[{"name": "helpfulness"}], guidelines="Rate how helpful it is.")
    for n in range(12):
        project.items.create(external_id=f"q{n}", prompt=f"Question {n}?").responses.create(
            external_id="a", text=f"Answer number {n}.")
    if training:
        project.training_size, project.qualification_bar = training, 0.5
        project.save()
        for n in range(training):
            project.items.create(external_id=f"gold{n}", prompt=f"Gold question {n}?", role="gold",
                                 metadata={"guideline": GUIDELINE}).responses.create(
                external_id="a", text=f"The gold answer {n}.", gold_ratings={"helpfulness": 4})
    return study_create(project=project, creator=None, name="Pilot", completion_code=CODE, quota=10,
                        external_study_id="STUDY-9", screened_out_code=SCREENED_OUT_CODE)


def _open_link(chromium, live_server, study, pid: str = PID):
    page = chromium.new_page(viewport={"width": 1280, "height": 900})
    page.set_default_timeout(30_000)  # a busy 2-core machine
    query = urlencode({"PROLIFIC_PID": pid, "STUDY_ID": "STUDY-9", "SESSION_ID": "sess-abc"})
    page.goto(f"{live_server.url}/study/{study_token(study)}/?{query}")
    page.wait_for_selector("body[data-task-ready]")
    return page


def _train(page, values: list[int]) -> str:
    """The training round by keyboard: each value typed and submitted, the feedback read, Continue
    pressed. Returns the last training task's view key."""
    key = ""
    for n, value in enumerate(values):
        task_ready(page, key)
        assert f"Training task {n + 1} of {len(values)}" in page.locator("#task").inner_text()
        assert "0 / 10" in page.locator(".progress-label").first.inner_text()  # training is not the quota
        key = page.locator("#task").get_attribute("data-view-key") or ""
        page.keyboard.press(str(value))
        page.keyboard.press("Enter")
        page.wait_for_selector("#feedback")
        feedback = page.locator("#feedback")
        # The expected answer beside theirs, and the guideline passage that decides it.
        assert feedback.locator("tbody tr").first.inner_text().split() == ["helpfulness", "4", str(value)]
        assert feedback.locator(".guideline-passage strong").inner_text() == "complete"
        assert ("matches the expected one" if abs(value - 4) <= 1 else "differs from the expected one") in \
            feedback.inner_text()
        focus_settled(page, "training-continue")
        assert page.evaluate("document.activeElement.id") == "training-continue"
        if n == 0:
            page.screenshot(path=str(OUT / "study-training-feedback.png"), full_page=True)
        if n < len(values) - 1:
            page.keyboard.press("Enter")  # Continue
    return key


def test_a_participant_goes_from_the_study_link_through_training_and_ten_tasks_to_the_completion_redirect(
    live_server, chromium
):
    OUT.mkdir(exist_ok=True)
    study = _study(training=2)
    page = _open_link(chromium, live_server, study)
    assert "/annotate/" in page.url
    participant = Participant.objects.get()
    assert participant.external_id == PID and not participant.user.has_usable_password()
    assert page.get_by_text("Leave the study without finishing").is_visible()
    assert axe_serious(page, ".study-bar") == []

    key = _train(page, [4, 0])  # one of two right: the bar of one in two is met
    assert "you are in the main queue" in page.locator("#feedback").inner_text()
    assert Standing.objects.get(rater__user=participant.user).state == "qualified"
    page.keyboard.press("Enter")  # Continue, into the main queue

    for n in range(9):
        task_ready(page, key)
        assert "Training task" not in page.locator("#task").inner_text()
        counter = page.locator(".progress-label").first.inner_text()
        assert f"{n} / 10" in counter, counter
        if n == 0:
            page.screenshot(path=str(OUT / "study-task.png"), full_page=True)
        key = page.locator("#task").get_attribute("data-view-key") or ""
        page.keyboard.press(str(n % 5))
        page.keyboard.press("Enter")
    task_ready(page, key)
    assert "9 / 10" in page.locator(".progress-label").first.inner_text()
    # The tenth submit: the page is sent to the study's completion, which sends it to Prolific.
    with page.expect_request("https://app.prolific.com/**") as sent:
        page.keyboard.press(str(9 % 5))
        page.keyboard.press("Enter")
    assert sent.value.url == f"https://app.prolific.com/submissions/complete?cc={CODE}"
    assert sent.value.is_navigation_request()

    participant.refresh_from_db()
    assert participant.session_id == "sess-abc"
    assert participant.completed_at is not None and participant.screened_out_at is None
    main = Rating.objects.filter(rater__user=participant.user, response__item__role="task")
    assert sorted(main.values_list("value", flat=True)) == sorted(n % 5 for n in range(10))
    # Ten main-queue tasks after two training tasks, nothing held past the quota: the two other
    # tasks stay free for other participants.
    assignments = Assignment.objects.filter(rater__user=participant.user)
    assert assignments.filter(status="done", training=True).count() == 2
    assert assignments.filter(status="done", training=False).count() == 10
    assert not assignments.exclude(status="done").exists()


def test_a_participant_below_the_bar_lands_on_the_screened_out_code(live_server, chromium):
    study = _study(training=2)
    page = _open_link(chromium, live_server, study, pid="lowscore01")
    _train(page, [0, 1])  # neither within a point of 4: none of two right, below one in two
    assert "the study ends here for you" in page.locator("#feedback").inner_text()
    with page.expect_request("https://app.prolific.com/**") as sent:
        page.keyboard.press("Enter")  # Continue
    assert sent.value.url == f"https://app.prolific.com/submissions/complete?cc={SCREENED_OUT_CODE}"
    participant = Participant.objects.get()
    assert participant.screened_out_at is not None and participant.completed_at is None
    assert not Assignment.objects.filter(rater__user=participant.user, status="claimed").exists()


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
    assert axe_serious(page) == []
    page.get_by_label("Name").focus()
    page.keyboard.type("Second wave")
    page.keyboard.press("Enter")  # the form's defaults (Prolific's parameters, a code) do the rest
    page.wait_for_selector("text=Study 'Second wave' made")
    assert Study.objects.filter(name="Second wave", quota=10).exists()
    page.screenshot(path=str(OUT / "studies.png"), full_page=True)

    page.goto(f"{live_server.url}/projects/{study.project_id}/members/")
    assert axe_serious(page) == []
    page.locator("#invite input[name=days]").focus()
    page.keyboard.press("Enter")  # the default role (annotator), no address: a link open for 7 days
    page.wait_for_selector("text=Invitation link made")
    assert Invite.objects.filter(project=study.project, role="annotator", email="").count() == 1
    assert page.get_by_label("Invitation link").input_value().startswith(f"{live_server.url}/invites/")
    page.screenshot(path=str(OUT / "members.png"), full_page=True)

    page.goto(f"{live_server.url}/studies/{study.pk}/payments/")
    assert axe_serious(page) == []


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
    task_ready(page, key)
    participant = Participant.objects.get()
    held = Assignment.objects.get(rater__user=participant.user, status="claimed")
    page.get_by_role("button", name="Leave the study without finishing").focus()
    page.keyboard.press("Enter")
    page.wait_for_selector("text=You left the study")
    held.refresh_from_db()
    participant.refresh_from_db()
    assert held.status == "expired" and participant.returned_at is not None and participant.completed_at is None
    assert Assignment.objects.filter(rater__user=participant.user, status="done").count() == 1
