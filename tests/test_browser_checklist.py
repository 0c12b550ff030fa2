"""Chromium answers an item's checklist in the rating task with the keyboard only: one key per
question toggles it (static/js/checklist.js), and the answers are stored with the ratings."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model

from annotate import checklists
from annotate.models import ChecklistAnswer, Project, Rating
from annotate.roles import user_set_role
from annotate.services import project_create

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_checklist_keys_toggle_questions_and_the_answers_are_stored(live_server, chromium):
    project = project_create(name="Checklist browser", overlap=1, protocols=Project.Protocols.RATING)
    item = project.items.create(external_id="q1", prompt="Name three primary colours.")
    item.responses.create(external_id="a", text="Red, blue and yellow.")
    q1, q2, q3 = checklists.checklist_set(item=item, questions=["Three colours?", "Only colours?", "All primary?"])
    user = get_user_model().objects.create_user(username="ck", password="pw-ck-12345")
    user_set_role(user=user, role="annotator")
    project.members.add(user)

    page = chromium.new_page(viewport={"width": 1280, "height": 900})
    page.set_default_timeout(30_000)  # a busy 2-core machine
    page.goto(f"{live_server.url}/accounts/login/")
    page.fill("input[name=username]", "ck")
    page.fill("input[name=password]", "pw-ck-12345")
    page.keyboard.press("Enter")
    page.wait_for_url(f"{live_server.url}/")
    page.goto(f"{live_server.url}/projects/{project.pk}/annotate/")
    page.wait_for_selector("body[data-task-ready]")
    assert page.locator("#checklist kbd").all_inner_texts() == ["Q", "W", "E"]
    page.keyboard.press("q")
    page.keyboard.press("e")
    page.keyboard.press("w")
    page.keyboard.press("w")  # pressed twice: back to no
    assert page.locator(f"input[name=checklist-{q1.pk}]").is_checked()
    assert not page.locator(f"input[name=checklist-{q2.pk}]").is_checked()
    assert page.locator(f"input[name=checklist-{q3.pk}]").is_checked()
    for digit in "43213":
        page.keyboard.press(digit)
    page.keyboard.press("Enter")
    page.wait_for_function("() => document.body.textContent.includes('All done here')")
    answers = dict(ChecklistAnswer.objects.filter(rater__user=user).values_list("question_id", "answer"))
    assert answers == {q1.pk: True, q2.pk: False, q3.pk: True}
    assert Rating.objects.filter(rater__user=user).count() == 5
