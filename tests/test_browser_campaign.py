"""Debian's Chromium, keyboard only: an annotator goes through the training round and
qualification into the main queue, and a reviewer adjudicates one split pair."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.contrib.auth import get_user_model

from annotate.models import Adjudication, Assignment, Item, Project, Standing
from annotate.roles import user_set_role
from annotate.services import item_create, preference_submit, project_create, rater_for_user
from tests.browser_helpers import focus_settled, task_ready

OUT = Path(__file__).resolve().parent.parent / "test-output"
pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def browser_page(chromium):
    OUT.mkdir(exist_ok=True)
    page = chromium.new_page(viewport={"width": 1280, "height": 900})
    page.set_default_timeout(10_000)
    return page


def _user(name: str, role: str):
    user = get_user_model().objects.create_user(username=name, password=f"pw-{name}-123")
    user_set_role(user=user, role=role)
    return user


def _item(project: Project, ext: str, role: str = "task", gold: int | None = None) -> Item:
    return item_create(
        project=project, external_id=ext, prompt=f"Which answer to {ext} is better?", role=role,
        metadata={"guideline": "Prefer the **correct** answer over the longer one."} if gold is not None else {},
        responses=[{"external_id": "a", "text": f"The right answer to {ext}."}, {"external_id": "b", "text": f"A wrong answer to {ext}."}],
        gold={"pairs": [{"pair": ["a", "b"], "strength": gold}]} if gold is not None else None,
    )


def _login(page, url: str, name: str) -> None:
    page.goto(f"{url}/accounts/login/")
    # The username field's autofocus, not the load event, is what typing needs: typing straight
    # after goto raced it under load (the name went nowhere, and the login page came back).
    page.wait_for_function("() => document.activeElement && document.activeElement.name === 'username'")
    page.keyboard.type(name)
    page.keyboard.press("Tab")
    page.keyboard.type(f"pw-{name}-123")
    page.keyboard.press("Enter")
    page.wait_for_url(f"{url}/")


def test_an_annotator_trains_qualifies_and_enters_the_main_queue(live_server, browser_page):
    project = project_create(name="Campaign", protocols="ranking", overlap=1, guidelines="Read both answers.")
    project.training_size, project.qualification_bar = 2, 0.5
    project.save()
    for n in range(2):
        _item(project, f"gold{n}", "gold", gold=-2)  # A (stored) is better
    _item(project, "task0")
    ann = _user("ann", "annotator")
    project.members.add(ann)
    page = browser_page
    _login(page, live_server.url, "ann")
    page.get_by_role("link", name="Start annotating").focus()
    page.keyboard.press("Enter")
    page.wait_for_selector("body[data-task-ready]")
    old = ""
    for n in range(2):
        task_ready(page, old)
        assert f"Training task {n + 1} of 2" in page.content()
        held = Assignment.objects.get(rater__user=ann, status="claimed")
        assert held.training
        # The expected side on screen: stored A is on the left when shown "ab". Right once, wrong once.
        right = "a" if held.shown_order == "ab" else "b"
        wrong = "b" if right == "a" else "a"
        old = str(held.view_key)
        page.keyboard.press(right if n == 0 else wrong)
        page.keyboard.press("Enter")
        page.wait_for_selector("#feedback")
        focus_settled(page, "training-continue")
        assert page.evaluate("document.activeElement.id") == "training-continue"
        text = page.locator("#feedback").inner_text()
        assert ("matches the expected one" if n == 0 else "differs from the expected one") in text
        assert "Prefer the correct answer" in text
        if n == 0:
            page.screenshot(path=str(OUT / "training-feedback.png"), full_page=True)
        else:
            assert "you are in the main queue" in text
        page.keyboard.press("Enter")  # Continue
    task_ready(page, old)
    assert "Training task" not in page.content()
    held = Assignment.objects.get(rater__user=ann, status="claimed")
    assert not held.training and held.pair.item.external_id == "task0"
    assert Standing.objects.get(rater__user=ann).state == "qualified"
    page.keyboard.press("a")
    page.keyboard.press("Enter")
    page.wait_for_selector("#all-done")
    assert Assignment.objects.filter(rater__user=ann, status="done", training=False).count() == 1


def test_a_reviewer_adjudicates_a_split_pair_with_the_keyboard(live_server, browser_page):
    project = project_create(name="Review", protocols="ranking", overlap=3)
    item = _item(project, "q1")
    pair = item.pairs.get()
    for name, strength, why in (("h1", -2, "A is right."), ("h2", 2, "B is shorter."), ("h3", 0, "Both fine.")):
        user = _user(name, "annotator")
        project.members.add(user)
        preference_submit(rater=rater_for_user(user=user), pair=pair, strength=strength, justification=why)
    reviewer = _user("rev", "reviewer")
    project.members.add(reviewer)
    page = browser_page
    _login(page, live_server.url, "rev")
    page.get_by_role("link", name="Review").focus()
    page.keyboard.press("Enter")
    page.wait_for_selector("#review-queue")
    page.get_by_role("link", name=f"Review pair #{pair.pk}").focus()
    page.keyboard.press("Enter")
    page.wait_for_selector("#decision")
    labels = page.locator("#labels").inner_text()
    for why in ("A is right.", "B is shorter.", "Both fine."):
        assert why in labels
    # Into the verdict: the first choice ("A is much better"), then arrow keys move within the group.
    page.get_by_label("A is much better").focus()
    page.keyboard.press("ArrowDown")  # "A is better"
    assert page.evaluate("document.activeElement.value") == "-2"
    page.keyboard.press("Tab")
    page.keyboard.type("A answers the question; B is shorter but wrong.")
    page.keyboard.press("Tab")
    page.keyboard.press("Enter")
    page.wait_for_selector("#review-queue")
    page.screenshot(path=str(OUT / "review-done.png"), full_page=True)
    decision = Adjudication.objects.get()
    assert (decision.pair_id, decision.strength, decision.reviewer.username) == (pair.pk, -2, "rev")
    assert decision.note == "A answers the question; B is shorter but wrong."
    assert "Nothing to review" in page.content()
