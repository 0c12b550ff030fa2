"""Debian's Chromium under the real Content-Security-Policy: no page breaks it (the browser logs
every refused script, style, worker or image), htmx still swaps, and the docs pages still render."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model

from annotate.models import Pair
from annotate.roles import user_set_role
from annotate.services import project_create

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def browser(chromium):
    return chromium


def _login(browser, live_server, username: str, password: str):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.set_default_timeout(15_000)
    violations: list[str] = []
    page.on("console", lambda m: violations.append(m.text) if "Content Security Policy" in m.text else None)
    page.goto(f"{live_server.url}/accounts/login/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_server.url}/")
    return page, violations


def test_pages_work_under_the_policy_with_nothing_refused(live_server, browser):
    project = project_create(name="CSP project", overlap=1)
    item = project.items.create(external_id="q1", prompt="Say hi")
    a = item.responses.create(external_id="a", text="Hi", model="m1")
    b = item.responses.create(external_id="b", text="Hello", model="m2")
    Pair.objects.create(item=item, response_a=a, response_b=b)
    users = get_user_model().objects
    ann = users.create_user(username="ann", password="pw-ann-123")
    user_set_role(user=ann, role="annotator")
    boss = users.create_user(username="boss", password="pw-boss-123", is_staff=True, is_superuser=True)
    user_set_role(user=boss, role="admin")
    project.members.add(ann, boss)

    page, violations = _login(browser, live_server, "ann", "pw-ann-123")
    page.goto(f"{live_server.url}/projects/{project.pk}/annotate/")
    page.wait_for_selector("#task[data-view-key]")
    first = page.locator("#task").get_attribute("data-view-key")
    # Answer the task (a rating or a ranking), submit, and htmx swaps in the next task.
    for group in page.locator("#task-form fieldset.attribute").all():
        group.locator("input[type=radio]").first.check()
    strength = page.locator("#task-form input[name=shown_strength][value='0']")
    if strength.count():
        strength.check()
    page.locator("#task-form button[type=submit]").first.click()
    page.wait_for_function("old => document.querySelector('#task')?.dataset.viewKey !== old", arg=first)
    assert violations == []

    admin_page, admin_violations = _login(browser, live_server, "boss", "pw-boss-123")
    for path in (
        f"/reports/projects/{project.pk}/",
        f"/projects/{project.pk}/dashboard/",
        "/admin/",
        f"/admin/annotate/project/{project.pk}/change/",
        "/admin/annotate/auditevent/",
    ):
        response = admin_page.goto(f"{live_server.url}{path}")
        assert response is not None and response.status == 200, path
    admin_page.goto(f"{live_server.url}/api/docs/")
    admin_page.wait_for_selector(".swagger-ui .opblock")  # Swagger UI ran its (file) init script
    admin_page.goto(f"{live_server.url}/api/redoc/")
    admin_page.wait_for_selector("redoc .api-content, [role=navigation]", timeout=30_000)
    admin_page.wait_for_timeout(500)
    # Redoc's side menu asks for its logo from the vendor's CDN: the policy refusing an outside
    # fetch is the point of it. Anything else refused (our own files, inline code) is a break.
    assert [v for v in admin_violations if "https://cdn.redoc.ly/" not in v] == []
