"""axe-core in a real browser on the pages issue 13's report parts sit on: the judge's page with
its reliability diagrams and bin table, and the Agreement report page with a panel compared to
its members and the "not qualified" marks. No serious or critical violation; nothing fetched
from another host."""

from __future__ import annotations

import os
from urllib.parse import urlparse

import pytest
from django.urls import reverse

from judges.models import Judge
from reports.qualification import judge_qualify
from tests.test_browser_a11y import OUT, _login, _serious
from tests.test_judge_calibration_page import _calibrated_judge
from tests.test_panel_vs_members import _project_with_panel

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_calibration_and_panel_sections_have_no_serious_axe_violation(live_server, chromium, project, researcher,
                                                                       settings):  # fmt: skip
    axe_module = pytest.importorskip("axe_playwright_python.sync_playwright")
    settings.CONCORDANCE = {**settings.CONCORDANCE, "BOOTSTRAP_ROUNDS": 50}
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    judge = _calibrated_judge(project, researcher)
    judge_qualify(project=project, judge=judge, rounds=20)
    _project_with_panel(project, researcher)
    assert Judge.objects.count() == 4
    OUT.mkdir(exist_ok=True)
    axe = axe_module.Axe()
    host = urlparse(live_server.url).netloc
    outside: list[str] = []
    context = chromium.new_context(viewport={"width": 1280, "height": 900})
    context.on("request", lambda request: urlparse(request.url).netloc != host and outside.append(request.url))
    _login(context, live_server, researcher.username)
    page = context.new_page()
    page.set_default_timeout(20_000)
    problems: list[str] = []
    page.goto(f"{live_server.url}{reverse('judges:judge', args=[judge.pk])}")
    assert page.locator(f"#calibration-{project.pk} svg > title").count() == 2
    page.locator("#judge-calibration").screenshot(path=str(OUT / "judge-calibration.png"))
    problems += _serious(page, axe, "judge page with calibration")
    page.goto(f"{live_server.url}{reverse('reports:page', args=[project.pk, 'agreement'])}")
    assert "beats its best member" in page.locator("#panels").inner_text()
    page.locator("#panels").screenshot(path=str(OUT / "report-panels.png"))
    problems += _serious(page, axe, "agreement page with a panel")
    context.close()
    assert not problems, "\n".join(problems)
    assert not outside, outside
