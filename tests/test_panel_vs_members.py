"""Does the panel beat its best member (issue 13 item 3), and the "not qualified" marks (item 1)
in the report JSON and pages, on a small project with known labels computed by hand."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
from django.test import Client
from django.urls import reverse

from annotate.models import Pair, Preference
from annotate.routing_services import NEVER_QUALIFIED, PANEL_STANDING, judge_qualified
from annotate.services import preference_submit, rater_for_user
from annotate.verdicts import TIE, A, B
from judges.models import JudgeQualification
from judges.panels import panel_create, panel_refresh
from judges.services import judge_create
from reports.build import build_report
from reports.cache import cached_report
from reports.metrics.bootstrap import Resampler, percentile_ci
from reports.metrics.panels import panel_vs_members
from tests.conftest import _user

# Six pairs, gold by two agreeing humans; three judges; the majority panel is right on all six.
GOLD = [A, A, B, B, A, B]
J0 = [A, A, B, A, B, B]  # right on 4 of 6; kappa (2/3 - 1/2) / (1/2) = 1/3
J1 = [A, B, B, B, A, A]  # right on 4 of 6; kappa 1/3
J2 = [B, A, B, B, A, B]  # right on 5 of 6; judge marginals A 2, B 4: p_e = 1/2, kappa 2/3
REPEAT = 2  # the six pairs twice over (12 pairs: above the pages' "too few to say" floor of 10)
STRENGTH = {A: -1, TIE: 0, B: 1}


def _pairs(project, n: int) -> list[Pair]:
    out = []
    for k in range(n):
        item = project.items.create(external_id=f"i{k}", prompt=f"p{k}")
        a = item.responses.create(external_id="a", text="a", model="m1")
        b = item.responses.create(external_id="b", text="b", model="m2")
        out.append(Pair.objects.create(item=item, response_a=a, response_b=b))
    return out


def _judge(researcher, project, name: str):
    judge = judge_create(name=name, model_ref="m", owner=researcher)
    judge.shared_with.add(project)
    return judge


def _say(judge, pair, verdict: int) -> None:
    for order in ("ab", "ba"):
        Preference.objects.update_or_create(
            rater=judge.rater, pair=pair, shown_order=order,
            defaults={"rater_kind": "judge", "strength": STRENGTH[verdict], "verdict_only": True},
        )


def _project_with_panel(project, researcher):
    pairs = _pairs(project, len(GOLD) * REPEAT)
    humans = [rater_for_user(user=_user(f"h{k}", "annotator")) for k in range(2)]
    judges = [_judge(researcher, project, f"j{k}") for k in range(3)]
    for k, pair in enumerate(pairs):
        i = k % len(GOLD)
        for h in humans:
            preference_submit(rater=h, pair=pair, strength=STRENGTH[GOLD[i]] * 2)
        for judge, says in zip(judges, (J0, J1, J2), strict=True):
            _say(judge, pair, says[i])
    panel = panel_create(project=project, name="trio", rule="majority", members=judges)
    panel_refresh(panel)
    return judges, panel


@pytest.mark.django_db
def test_panel_beats_its_best_member_by_hand(project, researcher):
    _project_with_panel(project, researcher)
    report = build_report(project, rounds=200)
    (row,) = report["panels"]
    assert row["panel"] == "judge:panel-trio" and row["rule"] == "majority" and row["n"] == 12
    by_rater = {r["rater"]: r for r in row["raters"]}
    assert [r["role"] for r in row["raters"]] == ["panel", "member", "member", "member"]
    assert by_rater["judge:panel-trio"]["accuracy"] == pytest.approx(1.0)
    assert by_rater["judge:panel-trio"]["kappa"] == pytest.approx(1.0)
    assert by_rater["judge:j0"]["accuracy"] == pytest.approx(4 / 6)
    assert by_rater["judge:j1"]["kappa"] == pytest.approx(1 / 3)
    assert by_rater["judge:j2"]["accuracy"] == pytest.approx(5 / 6)
    assert by_rater["judge:j2"]["kappa"] == pytest.approx(2 / 3)
    assert row["best_member"] == {"accuracy": "judge:j2", "kappa": "judge:j2"}
    assert row["difference"]["accuracy"] == pytest.approx(1 / 6)
    assert row["difference"]["kappa"] == pytest.approx(1 / 3)
    assert row["beats_best_member"] is True
    lo, hi = row["difference"]["accuracy_ci"]
    assert lo <= 1 / 6 <= hi
    assert row["answer"].startswith("judge:panel-trio beats its best member judge:j2 by +0.17 accuracy [")
    assert "n=12" in row["answer"]
    # The same figures beside the judge-vs-gold section's own (one definition of accuracy).
    vs_gold = {r["judge"]: r for r in report["judge_vs_gold"]}
    assert vs_gold["judge:j2"]["accuracy"] == pytest.approx(by_rater["judge:j2"]["accuracy"])


def test_difference_interval_is_paired():
    """The difference's samples are panel minus best member round by round (the same resampled
    items), not two independent bootstraps: its interval is the percentile interval of those."""
    rng = np.random.default_rng(3)
    n = 60
    gold = rng.integers(0, 3, n)
    rows = []
    for rater, p_right in (("judge:panel", 0.85), ("judge:a", 0.7), ("judge:b", 0.75)):
        right = rng.uniform(size=n) < p_right
        verdict = np.where(right, gold, (gold + 1) % 3)
        rows += [{"rater": rater, "pair": k, "verdict": int(v)} for k, v in enumerate(verdict)]
    verdicts = pd.DataFrame(rows)
    gold_df = pd.DataFrame({"pair": np.arange(n), "item": np.arange(n) // 2, "gold": gold})
    boot = Resampler(n_units=n // 2, rounds=300, seed=1)
    c = panel_vs_members(verdicts, gold_df, "judge:panel", ["judge:a", "judge:b"], boot)
    boot.run()
    assert c.estimate is not None and c.estimate.samples is not None and c.n == n
    samples = c.estimate.samples
    size = 3
    best = 1 + int(np.argmax([c.value("accuracy", 1), c.value("accuracy", 2)]))
    assert c.best["accuracy"] == ["judge:panel", "judge:a", "judge:b"][best]
    paired = samples[:, 0] - samples[:, best]
    np.testing.assert_allclose(samples[:, 2 * size], paired)
    np.testing.assert_allclose(c.estimate.ci[:, 2 * size], percentile_ci(paired))
    # Paired is narrower than the two intervals taken apart would suggest (the rounds co-vary).
    ci_panel, ci_best = c.estimate.ci[:, 0], c.estimate.ci[:, best]
    assert np.diff(c.estimate.ci[:, 2 * size])[0] < (ci_panel[1] - ci_panel[0]) + (ci_best[1] - ci_best[0])


def _row(html: str, label: str) -> str:
    """The table row (<tr>...</tr>) of a page that names `label` first."""
    match = re.search(r"<tr[^>]*><td>" + re.escape(label) + r"(?:(?!</tr>).)*</tr>", html, re.S)
    assert match, f"no row for {label}"
    return match.group(0)


def _qualify(project, judge, *, kappa: float, qualified: bool) -> None:
    JudgeQualification.objects.create(
        project=project, judge=judge, n=40, accuracy=0.8, kappa=kappa, consistency=0.9, min_kappa=0.4,
        min_consistency=0.7, qualified=qualified,
    )


@pytest.mark.django_db
def test_not_qualified_marks_in_the_json_and_the_pages(project, researcher):
    (j0, j1, j2), panel = _project_with_panel(project, researcher)
    _qualify(project, j0, kappa=0.62, qualified=True)
    _qualify(project, j1, kappa=0.31, qualified=False)
    assert judge_qualified(project, j0.rater) and not judge_qualified(project, j1.rater)
    report = cached_report(project, details=True)
    vs_gold = {r["judge"]: r["qualification"] for r in report["judge_vs_gold"]}
    assert vs_gold["judge:j0"]["qualified"] is True
    assert vs_gold["judge:j1"] == {"qualified": False, "reason": "below bar: kappa 0.31 < 0.40",
                                   "at": vs_gold["judge:j1"]["at"]}  # fmt: skip
    assert vs_gold["judge:j2"]["qualified"] is False and vs_gold["judge:j2"]["reason"] == NEVER_QUALIFIED
    assert vs_gold["judge:panel-trio"]["reason"] == PANEL_STANDING
    cards = {c["judge"]: c["qualification"] for c in report["judge_cards"] if c["kind"] != "human"}
    assert cards["judge:j1"]["qualified"] is False and cards["judge:j0"]["qualified"] is True
    assert report["evaluators"]["qualification"]["judge:j2"]["reason"] == NEVER_QUALIFIED
    # The report API serves the same JSON.
    client = Client()
    client.force_login(researcher)
    api = client.get(f"/api/projects/{project.pk}/report/").json()
    assert {r["judge"]: r["qualification"]["qualified"] for r in api["judge_vs_gold"]}["judge:j1"] is False
    assert api["panels"][0]["best_member"]["accuracy"] == "judge:j2"

    page = client.get(reverse("reports:page", args=[project.pk, "agreement"])).content.decode()
    agreement = page[page.index("Judges against"):]  # the judge-vs-gold table, then the panels'
    assert "not qualified" not in _row(agreement, "judge:j0")
    assert "not qualified" in _row(agreement, "judge:j1") and "kappa 0.31 &lt; 0.40" in _row(agreement, "judge:j1")
    assert "not qualified" in _row(agreement, "judge:j2") and "never run" in _row(agreement, "judge:j2")
    # The panels section leads with the answer.
    assert "judge:panel-trio beats its best member judge:j2 by +0.17 accuracy" in agreement
    evaluators = client.get(reverse("reports:page", args=[project.pk, "evaluators"])).content.decode()
    assert "not qualified" not in _row(evaluators, "judge:j0")
    assert "not qualified" in _row(evaluators, "judge:j1")
    # A new qualification shows at once (the cached report's fingerprint has them).
    _qualify(project, j1, kappa=0.55, qualified=True)
    page = client.get(reverse("reports:page", args=[project.pk, "agreement"])).content.decode()
    assert "not qualified" not in _row(page[page.index("Judges against"):], "judge:j1")
    # The judge's own page marks the project it is not qualified on.
    page = client.get(reverse("judges:judge", args=[j2.pk])).content.decode()
    summary = re.search(rf'id="judge-card-{project.pk}".*?</summary>', page, re.S)
    assert summary and "not qualified" in summary.group(0)
    page = client.get(reverse("judges:judge", args=[j0.pk])).content.decode()
    summary = re.search(rf'id="judge-card-{project.pk}".*?</summary>', page, re.S)
    assert summary and "not qualified" not in summary.group(0)
