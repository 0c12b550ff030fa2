"""Gold and attention tasks look like every other task (issue 12, item 7): the same markup, the
same counter, the same timing. Diffed page against page, with only the content swapped out."""

from __future__ import annotations

import difflib
import re

import pytest
from django.urls import reverse

from annotate.models import Assignment, Project
from annotate.services import item_create
from annotate.verdicts import stored_strength

pytestmark = pytest.mark.django_db
HX = {"HTTP_HX_REQUEST": "true"}


def _item(project: Project, ext: str, role: str, words: tuple[str, str, str]) -> None:
    prompt, a, b = words
    item_create(
        project=project, external_id=ext, prompt=prompt, role=role,
        responses=[{"external_id": "a", "text": a}, {"external_id": "b", "text": b}],
        gold={"pairs": [{"pair": ["a", "b"], "strength": -2}]} if role != "task" else None,
    )


def _normalised(html: str, held: Assignment) -> str:
    """The page with the task's own content (prompt, both responses in either order), ids,
    tokens and counts replaced by placeholders: what is left is the markup around them."""
    pair = held.pair
    html = html.replace(pair.item.prompt, "<prompt>")
    for text in (pair.response_a.text, pair.response_b.text):
        html = html.replace(text, "<response>")
    html = re.sub(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", "<uuid>", html)
    html = re.sub(r'name="csrfmiddlewaretoken" value="[^"]+"', 'name="csrfmiddlewaretoken" value="<csrf>"', html)
    html = re.sub(r'"X-CSRFToken": "[^"]+"', '"X-CSRFToken": "<csrf>"', html)
    html = re.sub(r'(value|max)="\d+"', r'\1="<n>"', html)
    html = re.sub(r"\d+ / \d+", "<n> / <n>", html)
    html = re.sub(r"\d+%", "<n>%", html)
    return html


def _submit(client, project: Project, annotator) -> None:
    held = Assignment.objects.get(rater__user=annotator, status="claimed")
    client.post(reverse("annotate_submit", args=[project.pk]), {
        "view_key": held.view_key, "protocol": "ranking", "justification": "",
        "shown_strength": stored_strength(-1, held.shown_order)}, **HX)


@pytest.mark.parametrize("role", ["gold", "attention"])
def test_a_check_task_page_differs_from_a_regular_one_only_in_its_content(client, annotator, project: Project, role: str):
    project.protocols = Project.Protocols.RANKING
    project.save()
    for n in range(3):
        _item(project, f"t{n}", "task", (f"Regular prompt {n}", f"Regular answer {n} one", f"Regular answer {n} two"))
    _item(project, "c1", role, ("Checking prompt", "Checking reply first", "Checking reply second"))
    client.force_login(annotator)
    seen: dict[str, str] = {}
    counters: list[str] = []
    for step in range(4):
        page = client.get(reverse("annotate_task", args=[project.pk])).content.decode()
        counters.append(re.search(r'You <progress[^>]*value="(\d+)"', page).group(1))
        held = Assignment.objects.select_related("pair__item", "pair__response_a", "pair__response_b").get(
            rater__user=annotator, status="claimed")
        if step in (1, 2):  # after one submit each (both pages offer the undo of the one before)
            seen[held.pair.item.role] = _normalised(page, held)
        if step == 1:  # the next claim (made by this submit) is the check: the project's rate says so
            project.gold_rate, project.attention_rate = (1.0, 0.0) if role == "gold" else (0.0, 1.0)
            project.save()
        _submit(client, project, annotator)
    assert set(seen) == {"task", role}, seen.keys()
    diff = [line for line in difflib.unified_diff(seen["task"].splitlines(), seen[role].splitlines(), lineterm="", n=0)
            if line[:1] in "+-" and not line.startswith(("+++", "---"))]
    assert diff == []
    # "You n / N" moved by one on every submit, the check's included.
    assert counters == ["0", "1", "2", "3"]
    # And time on task is measured the same way for both (the client's visible time, else the claim's age).
    times = Assignment.objects.filter(rater__user=annotator, status="done").values_list("time_on_task_ms", flat=True)
    assert all(t is not None for t in times)
