"""Accessibility in a real browser (issue 12, item 8): axe-core, through axe-playwright-python
(its bundled axe.min.js, injected by Playwright: nothing is fetched), finds no serious or critical
violation on the rating, ranking, done, dashboard and report pages; the justification message is
announced beside its field; focus is visible; what colour shows is also said in words.

The training round (a gold task with its banner, then the expected answer and the guideline
passage after the submit) is checked like the other annotator pages.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlparse

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import reverse

from annotate.importers import import_files
from annotate.models import Item, Pair, Project
from annotate.roles import user_set_role
from annotate.services import project_create

OUT = Path(__file__).resolve().parent.parent / "test-output"
SERIOUS = ("serious", "critical")
CONVERSATION = [
    {"role": "user", "content": "How do I add two numbers in Python?"},
    {"role": "assistant", "content": "Use `+`:\n\n```python\nprint(1 + 2)\n```"},
    {"role": "user", "content": "And as a function? اشرح بالعربية أيضا."},
]
LONG = "\n\n".join(f"Paragraph {i}: " + "a long line of response text " * 12 for i in range(40))

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _user(username: str, role: str):
    user = get_user_model().objects.create_user(username=username, password=f"pw-{username}")
    user_set_role(user=user, role=role)
    return user


def _projects(shared_data: Path) -> dict[str, Project]:
    """A rating project, a ranking project (a conversation, code, right-to-left text, long
    responses), an empty one (the done page) and PandaLM's data (the dashboard and the reports
    have figures to draw)."""
    ann, researcher = _user("ann", "annotator"), _user("res", "researcher")
    projects = {}
    for name, protocols in (("rating", Project.Protocols.RATING), ("ranking", Project.Protocols.RANKING),
                            ("done", Project.Protocols.BOTH)):
        project = project_create(name=f"A11y {name}", protocols=protocols, overlap=1,
                                 guidelines="Compare the **whole** answer.")
        project.members.add(ann, researcher)
        projects[name] = project
    for key in ("rating", "ranking"):
        item = projects[key].items.create(external_id="c", prompt=CONVERSATION[-1]["content"], conversation=CONVERSATION)
        a = item.responses.create(external_id="a", text="```python\ndef add(a, b):\n    return a + b\n```\n\n" + LONG)
        b = item.responses.create(external_id="b", text="مرحبا! " + LONG)
        Pair.objects.create(item=item, response_a=a, response_b=b)
    # A training round of one gold pair before the main queue (annotate.training).
    training = project_create(name="A11y training", protocols=Project.Protocols.RANKING, overlap=1,
                              guidelines="Prefer the correct answer.")
    training.training_size, training.qualification_bar = 1, 0.5
    training.save()
    training.members.add(ann, researcher)
    for external_id, role in (("gold", Item.Role.GOLD), ("task", Item.Role.TASK)):
        item = training.items.create(external_id=external_id, prompt="What is 2+2?", role=role)
        a = item.responses.create(external_id="a", text="4")
        b = item.responses.create(external_id="b", text="5")
        Pair.objects.create(item=item, response_a=a, response_b=b,
                            gold_strength=-2 if role == Item.Role.GOLD else None)
    projects["training"] = training
    d = shared_data / "pandalm"
    pandalm = import_files(project_name="A11y pandalm", fmt="pandalm",
                           paths=[d / "testset-v1.json", d / "gpt-3.5-turbo-testset-v1.json", d / "pandalm-7b-testset-v1.json"]).project
    pandalm.members.add(researcher)
    projects["pandalm"] = pandalm
    return projects


def _login(context, live_server, username: str) -> None:
    """A session made by Django's test client, handed to the browser as its cookie."""
    client = Client()
    client.force_login(get_user_model().objects.get(username=username))
    host = urlparse(live_server.url).hostname
    context.add_cookies([{"name": "sessionid", "value": client.cookies["sessionid"].value, "domain": host, "path": "/"}])


def _serious(page, axe, label: str) -> list[str]:
    results = axe.run(page)
    if os.environ.get("A11Y_DEBUG"):
        print(label, [(v["id"], v["impact"], len(v["nodes"])) for v in results.response["violations"]],
              results.response["testEngine"], len(results.response.get("passes", [])))
    found = []
    for violation in results.response["violations"]:
        if violation.get("impact") in SERIOUS:
            targets = "; ".join(", ".join(node["target"]) for node in violation["nodes"][:5])
            found.append(f"{label}: {violation['id']} ({violation['impact']}): {violation['help']} at {targets}")
    return found


def test_pages_have_no_serious_axe_violation(live_server, chromium, shared_data, settings):
    axe_module = pytest.importorskip("axe_playwright_python.sync_playwright")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    settings.CONCORDANCE = {**settings.CONCORDANCE, "BOOTSTRAP_ROUNDS": 50}
    OUT.mkdir(exist_ok=True)
    projects = _projects(shared_data)
    axe = axe_module.Axe()
    host = urlparse(live_server.url).netloc
    outside: list[str] = []
    problems: list[str] = []
    for width in (1280, 600):  # side by side, and stacked on a narrow screen
        context = chromium.new_context(viewport={"width": width, "height": 900})
        context.on("request", lambda request: urlparse(request.url).netloc != host and outside.append(request.url))
        page = context.new_page()
        page.set_default_timeout(20_000)
        _login(context, live_server, "ann")
        for name in ("rating", "ranking", "done", "training"):
            page.goto(f"{live_server.url}{reverse('annotate_task', args=[projects[name].pk])}")
            page.wait_for_selector("body[data-task-ready]")
            if name in ("rating", "ranking"):
                page.keyboard.press("c")  # the folded turns too, opened from the keyboard
                assert page.locator("details.conversation").get_attribute("open") is not None
            page.screenshot(path=str(OUT / f"a11y-{name}-{width}.png"), full_page=True)
            problems += _serious(page, axe, f"{name} task page at {width}px")
        if width == 1280:
            # The training task's answer: the expected verdict and the guideline passage.
            page.goto(f"{live_server.url}{reverse('annotate_task', args=[projects['training'].pk])}")
            page.wait_for_selector("body[data-task-ready]")
            page.keyboard.press("a")
            page.keyboard.press("Enter")
            page.wait_for_selector("#feedback")
            problems += _serious(page, axe, f"training feedback at {width}px")
        page.goto(f"{live_server.url}{reverse('annotate_task', args=[projects['ranking'].pk])}")
        page.wait_for_selector("body[data-task-ready]")
        page.keyboard.press("?")
        page.wait_for_selector("dialog#help[open]")
        problems += _serious(page, axe, f"keyboard help at {width}px")
        page.keyboard.press("Escape")
        for label, url in (("projects", reverse("home")), ("403", reverse("annotate_dashboard", args=[projects["rating"].pk])),
                           ("404", "/no/such/page/")):
            page.goto(f"{live_server.url}{url}")
            problems += _serious(page, axe, f"{label} page at {width}px")
        _login(context, live_server, "res")
        pair = Pair.objects.get(item__project=projects["ranking"])
        page.goto(f"{live_server.url}{reverse('annotate_pair', args=[pair.pk])}")
        problems += _serious(page, axe, f"pair page at {width}px")
        pandalm = projects["pandalm"].pk
        for label, url in (("dashboard", reverse("annotate_dashboard", args=[pandalm])),
                           ("report", reverse("reports:project", args=[pandalm])),
                           ("report bias", reverse("reports:page", args=[pandalm, "bias"])),
                           ("report leaderboards", reverse("reports:page", args=[pandalm, "leaderboards"]))):
            page.goto(f"{live_server.url}{url}")
            page.wait_for_load_state("networkidle")
            problems += _serious(page, axe, f"{label} at {width}px")
        if width == 1280:
            # The check can fail: an unlabelled button (axe's button-name, critical) is found.
            page.evaluate("document.querySelector('main').appendChild(document.createElement('button'))")
            assert any("button-name" in p for p in _serious(page, axe, "control"))
        context.close()
    assert not problems, "\n".join(problems)
    # axe ran from the package's own copy: the browser asked nothing of any other host.
    assert not outside, outside


def test_strong_preference_without_justification_is_announced_beside_the_field(live_server, chromium, shared_data):
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    project = project_create(name="A11y justify", protocols=Project.Protocols.RANKING, overlap=1)
    _user("ann", "annotator")
    project.members.add(get_user_model().objects.get(username="ann"))
    item = project.items.create(external_id="q", prompt="Which is better?")
    Pair.objects.create(item=item, response_a=item.responses.create(external_id="a", text="A"),
                        response_b=item.responses.create(external_id="b", text="B"))
    context = chromium.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(10_000)
    _login(context, live_server, "ann")
    page.goto(f"{live_server.url}{reverse('annotate_task', args=[project.pk])}")
    page.wait_for_selector("body[data-task-ready]")
    note = page.locator("#justification-error")
    assert not note.is_visible()
    page.keyboard.press("1")  # "A is much better": beyond the threshold, a justification is due
    # Said in words, not only by the box's colour.
    assert page.locator("label.justification .required-now").is_visible()
    page.keyboard.press("Escape")  # leave the text box, as a keyboard user would
    page.keyboard.press("Enter")
    note.wait_for(state="visible")
    assert "justification is required" in note.inner_text()
    assert note.get_attribute("role") == "alert"
    box = page.locator("#justification")
    assert box.get_attribute("aria-invalid") == "true"
    assert "justification-error" in (box.get_attribute("aria-describedby") or "")
    assert page.evaluate("document.activeElement.id") == "justification"
    # Focus is visible: the focused box is outlined.
    assert page.evaluate("getComputedStyle(document.activeElement).outlineStyle") != "none"
    page.keyboard.type("A answers the question; B does not.")
    assert not note.is_visible()
    key = page.locator("#task").get_attribute("data-view-key")
    page.keyboard.press("Control+Enter")
    page.wait_for_function("old => document.querySelector('#task').dataset.viewKey !== old", arg=key)
    assert "All done here" in page.content()
    context.close()
