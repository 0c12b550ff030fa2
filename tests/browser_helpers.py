"""Helpers the Chromium walks share (tests/test_browser_study.py, tests/test_browser_campaign.py):
one way to wait for the next task, one way to wait for where focus lands, and one way to read
axe-core's findings."""

from __future__ import annotations


def task_ready(page, old: str) -> None:
    """Wait until #task holds a task other than `old` (a view key; "" for the first) and
    annotate.js has bound its keys to it (body[data-task-ready] names the task's view key)."""
    page.wait_for_function(
        "old => { const t = document.querySelector('#task'); "
        "return t && t.dataset.viewKey && t.dataset.viewKey !== old && document.body.dataset.taskReady === t.dataset.viewKey; }",
        arg=old,
    )


def focus_settled(page, element_id: str) -> None:
    """Wait until the element with this id has the focus. annotate.js moves it when htmx has
    settled a swap, a moment after the swapped content is in the DOM (reading
    document.activeElement straight after wait_for_selector raced it)."""
    page.wait_for_function("id => document.activeElement && document.activeElement.id === id", arg=element_id)


def axe_serious(page, context: str | None = None) -> list[str]:
    """axe-core's serious and critical violations on the page (or inside `context`, a selector)."""
    from axe_playwright_python.sync_playwright import Axe

    results = Axe().run(page, context=context)
    return [f"{v['id']}: {v['help']}" for v in results.response["violations"] if v["impact"] in ("serious", "critical")]
