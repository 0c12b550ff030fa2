"""The report pages render their charts in a real browser (Debian's Chromium via Playwright)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from annotate.importers import import_files
from annotate.models import Project

OUTPUT = Path(__file__).resolve().parent.parent / "test-output"


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_report_pages_draw_charts_in_chromium(live_server, shared_data, settings, admin_user):
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    settings.CONCORDANCE = {**settings.CONCORDANCE, "BOOTSTRAP_ROUNDS": 50}
    d = shared_data / "pandalm"
    import_files(project_name="pandalm", fmt="pandalm",
                 paths=[d / "testset-v1.json", d / "gpt-3.5-turbo-testset-v1.json", d / "pandalm-7b-testset-v1.json"])  # fmt: skip
    project = Project.objects.get(name="pandalm")
    sync_api = pytest.importorskip("playwright.sync_api")
    OUTPUT.mkdir(exist_ok=True)
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path="/usr/bin/chromium",
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"],
        )
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(f"{live_server.url}/accounts/login/")
        page.fill("input[name=username]", "admin")
        page.fill("input[name=password]", "pw-admin")
        page.click("button[type=submit], input[type=submit]")
        for slug in ("agreement", "consistency", "bias", "leaderboards"):
            page.goto(f"{live_server.url}/reports/projects/{project.pk}/{slug}/")
            lead = page.locator(".report-lead svg").first
            if slug != "consistency":  # PandaLM has no ratings: that page says so instead
                lead.wait_for()
                box = lead.bounding_box()
                assert box and box["width"] > 200 and box["height"] > 80
            page.screenshot(path=str(OUTPUT / f"report-{slug}.png"), full_page=True)
        assert "0.852" in page.goto(f"{live_server.url}/reports/projects/{project.pk}/agreement/").text()
        browser.close()
