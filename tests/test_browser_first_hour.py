"""A researcher's first hour on the demo, in Debian's Chromium: log in, open the dashboard, go to
the judge runs, start a small run and watch it finish with the page updating itself (a real
Celery worker judging with the demo's SmolLM2), open the report and an export.

A screenshot of each page goes to test-output/first-hour-*.png (ignored by git)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

from annotate.demo import DEMO_PASSWORD, demo_judge, demo_project_create
from judges.models import Judgment, Run

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "test-output"
# SmolLM2's GGUF is de-quantized when the worker loads it: seconds on an idle machine, minutes on
# a busy one; the run itself is one item's pair in both orders.
RUN_TIMEOUT_MS = 600_000

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def _database_url() -> str:
    s = connection.settings_dict
    if s["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{s['NAME']}"
    auth = s["USER"] + (f":{s['PASSWORD']}" if s.get("PASSWORD") else "")
    return f"postgres://{auth}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}"


@pytest.fixture
def worker(tmp_path: Path) -> Iterator[subprocess.Popen]:
    """A real worker on this test's database and on the broker the live server sends to."""
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_TEST_NAME"}
    env |= {"DATABASE_URL": _database_url(), "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
            "CONCORDANCE_VAR_DIR": str(settings.VAR_DIR), "PYTHONUNBUFFERED": "1"}
    log = open(tmp_path / "worker.log", "w")  # noqa: SIM115  (closed with the process)
    proc = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "config", "worker", "-Q", "default,gpu", "-c", "1",
         "--loglevel", "info", "-n", "first-hour@%h", "--without-gossip", "--without-mingle"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    yield proc
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    log.close()


@pytest.fixture
def browser_page(chromium):
    OUT.mkdir(exist_ok=True)
    page = chromium.new_page(viewport={"width": 1280, "height": 900})
    page.set_default_timeout(20_000)
    return page


def _shot(page, name: str) -> None:
    page.screenshot(path=str(OUT / f"first-hour-{name}.png"), full_page=True)


def _follow(page, base: str, url: str, name: str) -> None:
    """Follow the page's link to `url` where there is one (a researcher clicks), else go there."""
    link = page.locator(f'a[href="{url}"]')
    if link.count():
        link.first.click()
        page.wait_for_url(base + url)
    else:
        page.goto(base + url)
    assert page.url == base + url, f"{name}: at {page.url}, wanted {url}"


def test_a_researchers_first_hour_on_the_demo(live_server, browser_page, worker):
    project = demo_project_create().project
    judge = demo_judge()
    page = browser_page
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))

    # Log in.
    page.goto(f"{live_server.url}/accounts/login/")
    page.fill("input[name=username]", "researcher")
    page.fill("input[name=password]", DEMO_PASSWORD)
    _shot(page, "01-login")
    page.press("input[name=password]", "Enter")
    page.wait_for_url(f"{live_server.url}/")
    _shot(page, "02-home")

    # The project's dashboard, then its judge runs.
    _follow(page, live_server.url, f"/projects/{project.pk}/dashboard/", "dashboard")
    assert project.name in page.content()
    _shot(page, "03-dashboard")
    _follow(page, live_server.url, f"/judges/projects/{project.pk}/runs/", "judge runs")
    _shot(page, "04-judge-runs")

    # Start a small run: one item's pair, both shown orders.
    page.select_option("select[name=judge]", str(judge.pk))
    page.uncheck("input[name=protocols][value=rating]")
    page.check("input[name=protocols][value=ranking]")
    page.fill("input[name=limit]", "1")
    page.click("#run-start button[type=submit]")
    page.wait_for_url("**/judges/runs/*/")
    run = Run.objects.get(project=project)
    # The page records the run; the worker plans it (judges.tasks.run_plan) and the page says so.
    deadline = time.monotonic() + RUN_TIMEOUT_MS / 1000
    while run.planned_at is None and time.monotonic() < deadline:
        time.sleep(0.2)
        run.refresh_from_db()
    assert run.total == 2
    page.evaluate("window.__sameDocument = true")  # gone if the page reloads
    assert page.locator("#run-actions button", has_text="Cancel").count() == 1
    _shot(page, "05-run-in-flight")

    # The page updates itself until the worker is done: status, buttons and rows swap in.
    page.wait_for_selector('#run-live[data-status="done"]', timeout=RUN_TIMEOUT_MS)
    assert page.evaluate("window.__sameDocument === true"), "the run page reloaded instead of updating itself"
    assert page.locator("#run-actions button").count() == 0  # no Cancel or Resume on a done run
    assert "Nothing finished yet" not in page.content()
    rows = page.locator("#run-judgments tbody tr")
    assert rows.count() == 2
    assert page.locator("#run-judgments tbody a[href^='/pairs/']").count() == 2
    assert Judgment.objects.filter(run=run, status__in=["ok", "unparseable"]).count() == 2
    _shot(page, "06-run-done")

    # The runs table now shows when it finished and how it came out.
    _follow(page, live_server.url, f"/judges/projects/{project.pk}/runs/", "judge runs again")
    assert "Finished" in page.content()
    _shot(page, "07-judge-runs-after")

    # The report, with the judge among the raters.
    _follow(page, live_server.url, f"/reports/projects/{project.pk}/", "report")
    assert page.locator("h1").count() >= 1
    _shot(page, "08-report")

    # An export: the job bar runs, then its files are offered.
    _follow(page, live_server.url, f"/exports/projects/{project.pk}/", "export")
    page.click("button.primary:has-text('Export')")
    page.wait_for_selector("#export-job a", timeout=120_000)
    files = page.locator("#export-job a")
    assert files.count() >= 1
    _shot(page, "09-export")
    assert not errors, errors
