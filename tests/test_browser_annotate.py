"""Debian's Chromium, driven by Playwright, finishes a rating and a ranking task keyboard-only."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.contrib.auth import get_user_model

from annotate.models import Assignment, Pair, Preference, Rating
from annotate.roles import user_set_role
from annotate.services import project_create

OUT = Path(__file__).resolve().parent.parent / "test-output"
HOSTILE = (
    "Here is the fix:\n\n```python\ndef add(a, b):\n    return a + b\n```\n\n"
    "<script>window.__pwned = 1</script><img src=x onerror=\"window.__pwned = 2\"> "
    "[docs](javascript:window.__pwned=3) and **bold** text.\n\n| x | y |\n|---|---|\n| 1 | 2 |"
)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def browser_page(chromium):
    OUT.mkdir(exist_ok=True)
    page = chromium.new_page(viewport={"width": 1280, "height": 900})
    page.set_default_timeout(10_000)
    return page


def _setup() -> None:
    project = project_create(
        name="Browser project", overlap=1,
        guidelines="Read the **prompt** first. Rate each attribute on its own; compare the pair as a whole.",
    )
    item = project.items.create(
        external_id="q1", prompt="How do I add two numbers in Python? Show a short function.",
        context="The user is a beginner.",
    )
    a = item.responses.create(external_id="a", text=HOSTILE, model="secret-model-alpha")
    b = item.responses.create(
        external_id="b", text="Use the `+` operator:\n\n```python\nprint(1 + 2)\n```\n\nThat prints `3`.",
        model="secret-model-beta",
    )
    Pair.objects.create(item=item, response_a=a, response_b=b)
    user = get_user_model().objects.create_user(username="ann", password="pw-ann-123")
    user_set_role(user=user, role="annotator")
    project.members.add(user)


def _view_key(page) -> str:
    return page.locator("#task").get_attribute("data-view-key") or ""


def _wait_new_task(page, old_key: str) -> None:
    try:
        _wait(page, old_key)
    except Exception:
        page.screenshot(path=str(OUT / "failure.png"), full_page=True)
        raise


def _wait(page, old_key: str) -> None:
    page.wait_for_function(
        "old => { const t = document.querySelector('#task'); "
        "return t && t.dataset.viewKey !== old && document.body.dataset.taskReady === t.dataset.viewKey; }",
        arg=old_key,
    )


def test_annotator_finishes_rating_and_ranking_with_the_keyboard_only(live_server, browser_page):
    _setup()
    page = browser_page
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))

    page.goto(f"{live_server.url}/accounts/login/")
    page.keyboard.type("ann")
    page.keyboard.press("Tab")
    page.keyboard.type("pw-ann-123")
    page.keyboard.press("Enter")
    page.wait_for_url(f"{live_server.url}/")
    page.screenshot(path=str(OUT / "home.png"))
    page.keyboard.press("Tab")  # skip link
    page.keyboard.press("Tab")  # brand
    # Follow "Start annotating" by keyboard: focus it and press Enter.
    page.get_by_role("link", name="Start annotating").focus()
    page.keyboard.press("Enter")
    page.wait_for_selector("body[data-task-ready]")

    done = {"rating": 0, "ranking": 0}
    shot = set()
    for _ in range(3):
        protocol = page.locator("#task").get_attribute("data-protocol")
        key = _view_key(page)
        assert "secret-model" not in page.content()
        if protocol not in shot:
            page.screenshot(path=str(OUT / f"{protocol}.png"), full_page=True)
            shot.add(protocol)
        if protocol == "rating":
            for digit in "43213":
                page.keyboard.press(digit)
            page.keyboard.press("Enter")
        else:
            page.keyboard.press("b")  # "B is better", under the justification threshold
            page.keyboard.press("Enter")
        _wait_new_task(page, key)
        done[protocol] += 1
    assert done == {"rating": 2, "ranking": 1}
    assert "All done here" in page.content()

    assert Rating.objects.filter(rater__user__username="ann").count() == 10
    assert sorted(Rating.objects.filter(attribute__name="helpfulness").values_list("value", flat=True)) == [4, 4]
    preference = Preference.objects.get(rater__user__username="ann")
    assignment = Assignment.objects.get(pair=preference.pair)
    assert preference.shown_order == assignment.shown_order
    # B on screen is the pair's A when it was shown second.
    assert preference.strength == (2 if assignment.shown_order == "ab" else -2)
    assert preference.time_on_task_ms is not None and preference.time_on_task_ms > 0

    # Hostile markdown did nothing: no script ran, no alert, no handler in the DOM.
    assert dialogs == []
    assert page.evaluate("window.__pwned") is None

    # U takes the last submission back; Enter submits the restored answer again.
    key = _view_key(page)
    page.keyboard.press("u")
    _wait_new_task(page, key)
    assert "Undone" in page.content()
    restored = Preference.objects.filter(rater__user__username="ann").count() + Rating.objects.filter(
        rater__user__username="ann"
    ).count()
    assert restored in (1 + 5, 0 + 10)  # the newest (a rating or the ranking) is gone
    page.keyboard.press("?")
    page.wait_for_selector("#help[open]")
    page.screenshot(path=str(OUT / "help.png"))
    page.keyboard.press("Escape")
    key = _view_key(page)
    page.keyboard.press("Enter")
    _wait_new_task(page, key)
    assert Rating.objects.filter(rater__user__username="ann").count() == 10
    assert Preference.objects.filter(rater__user__username="ann").count() == 1


def test_ranking_requires_a_justification_when_strong_and_works_on_a_narrow_screen(live_server, browser_page):
    _setup()
    page = browser_page
    page.set_viewport_size({"width": 420, "height": 860})
    page.goto(f"{live_server.url}/accounts/login/")
    page.fill("input[name=username]", "ann")
    page.fill("input[name=password]", "pw-ann-123")
    page.keyboard.press("Enter")
    page.wait_for_url(f"{live_server.url}/")
    page.goto(f"{live_server.url}/projects/{Pair.objects.get().item.project_id}/annotate/")
    page.wait_for_selector("body[data-task-ready]")
    while page.locator("#task").get_attribute("data-protocol") == "rating":
        key = _view_key(page)
        for digit in "22222":
            page.keyboard.press(digit)
        page.keyboard.press("Enter")
        _wait_new_task(page, key)
    key = _view_key(page)
    page.keyboard.press("7")  # "B is much better": needs a reason, focus goes to the box
    assert page.evaluate("document.activeElement.name") == "justification"
    page.keyboard.type("B runs and explains the output.")
    page.screenshot(path=str(OUT / "ranking-narrow.png"), full_page=True)
    page.keyboard.press("Control+Enter")
    _wait_new_task(page, key)
    preference = Preference.objects.get()
    assert abs(preference.strength) == 3 and preference.justification == "B runs and explains the output."
