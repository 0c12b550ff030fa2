"""Report pages, the JSON API and the management command, on a small project of known content."""

from __future__ import annotations

import csv
import io
import json
import re
from html import escape, unescape
from unittest import mock

import numpy as np
import pytest
from django.core.cache import caches
from django.core.management import call_command
from django.urls import reverse
from rest_framework.test import APIClient

from annotate.models import Item, Pair, Preference, Rater, Rating, Response
from reports import cache as report_cache
from reports.build import TOP_LEVEL
from reports.cache import CACHE_ALIAS

pytestmark = pytest.mark.django_db

MODELS = ["alpha", "beta", "gamma"]


@pytest.fixture(autouse=True)
def few_rounds(settings):
    settings.CONCORDANCE = {**settings.CONCORDANCE, "BOOTSTRAP_ROUNDS": 30}
    caches[CACHE_ALIAS].clear()
    yield
    caches[CACHE_ALIAS].clear()


@pytest.fixture
def filled(project):
    """12 items, each with a pair of responses by two of three models; three humans rank and
    rate, judge "alpha-judge" (which is model alpha) ranks both orders with probabilities,
    judge "plain" (no model of its own) ranks one order."""
    humans = [Rater.objects.create(kind="human", name=f"h{k}") for k in range(3)]
    own = Rater.objects.create(kind="judge", name="alpha-judge", model="alpha")
    plain = Rater.objects.create(kind="judge", name="plain")
    helpfulness = project.attributes.get(name="helpfulness")
    for i in range(12):
        item = Item.objects.create(project=project, external_id=f"i{i}", prompt=f"prompt {i}")
        ma, mb = MODELS[i % 3], MODELS[(i + 1) % 3]
        ra = Response.objects.create(item=item, external_id="a", text="x" * (10 + i), model=ma)
        rb = Response.objects.create(item=item, external_id="b", text="y" * (30 - i), model=mb)
        pair = Pair.objects.create(item=item, response_a=ra, response_b=rb)
        truth = -1 if i % 4 else 1
        for k, h in enumerate(humans):
            s = truth if (i + k) % 5 else 0
            Preference.objects.create(rater=h, rater_kind="human", pair=pair, strength=s,
                                      shown_order="ab" if k % 2 else "ba")  # fmt: skip
            Rating.objects.create(rater=h, response=ra, attribute=helpfulness, value=3 if truth < 0 else 1)
            Rating.objects.create(rater=h, response=rb, attribute=helpfulness, value=2 if s else 3)
        for order in ("ab", "ba"):
            # Always for its own model; otherwise for whatever it was shown first.
            s = -2 if ma == "alpha" else 2 if mb == "alpha" else (-2 if order == "ab" else 2)
            p_a = 0.8 if s < 0 else 0.3
            Preference.objects.create(rater=own, rater_kind="judge", pair=pair, strength=s, shown_order=order,
                                      probabilities={"A": p_a, "tie": 0.0, "B": 1 - p_a})  # fmt: skip
        Preference.objects.create(rater=plain, rater_kind="judge", pair=pair, strength=truth, shown_order="ab")
    return project


def _login(client, user):
    client.force_login(user)
    return client


@pytest.mark.parametrize("page", ["consistency", "agreement", "bias", "leaderboards"])
def test_researcher_sees_each_page_with_a_chart(client, researcher, filled, page):
    response = _login(client, researcher).get(reverse("reports:page", args=[filled.pk, page]))
    assert response.status_code == 200
    body = response.content.decode()
    assert "<svg" in body
    assert "n = " in body or page == "leaderboards"


def test_page_says_when_and_from_how_many_annotations(client, researcher, filled):
    # 12 items: 3 humans x (1 preference + 2 ratings), 2 + 1 judge preferences = 12 x 12.
    body = _login(client, researcher).get(reverse("reports:page", args=[filled.pk, "agreement"])).content.decode()
    stamp = re.search(r"Computed (\S+) from (\d+) annotations \((\d+) items, (\d+) bootstrap rounds\)", body)
    assert stamp is not None
    assert stamp.group(2) == "144" and stamp.group(3) == "12" and stamp.group(4) == "30"
    assert stamp.group(1).startswith(str(Item.objects.first().created_at.year))


def test_overview_url_and_htmx_partial(client, researcher, filled):
    c = _login(client, researcher)
    assert c.get(reverse("reports:project", args=[filled.pk])).status_code == 200
    partial = c.get(reverse("reports:page", args=[filled.pk, "bias"]), {"rater_group": "judges"},
                    headers={"HX-Request": "true"})  # fmt: skip
    body = partial.content.decode()
    assert body.startswith('<section id="report">') or 'id="report"' in body[:200]
    assert "<html" not in body
    assert "no response model of its own" in body


def test_annotators_and_outsiders_get_no_report(client, annotator, outsider, filled):
    url = reverse("reports:project", args=[filled.pk])
    assert _login(client, annotator).get(url).status_code == 403
    client.logout()
    assert _login(client, outsider).get(url).status_code in (403, 404)


def test_api_returns_the_issue_shape(researcher, annotator, filled):
    api = APIClient()
    api.force_authenticate(researcher)
    data = api.get(reverse("api-project-report", args=[filled.pk]), {"rounds": 20}).json()
    assert tuple(data) == TOP_LEVEL
    assert set(data["agreement"]) == {"pairs", "fleiss_kappa", "krippendorff_alpha", "scores",
                                      "fleiss_kappa_ci", "krippendorff_alpha_ci"}  # fmt: skip
    # The issue's keys, each row's rates with their intervals beside them (added keys).
    assert set(data["agreement"]["pairs"][0]) >= {
        "rater_a", "rater_b", "n", "percent", "cohen_kappa", "cohen_kappa_quadratic", "ci"
    }  # fmt: skip
    assert set(data["judge_vs_gold"][0]) >= {"judge", "n", "accuracy", "accuracy_no_ties", "macro_precision",
                                             "macro_recall", "macro_f1", "ci"}  # fmt: skip
    assert set(data["consistency"][0]) == {"rater", "n", "consistency", "ci", "confusion"}
    assert set(data["position"][0]) >= {"judge", "n", "consistency", "first_position_rate", "agreement_both_orders"}
    sp = {row["judge"]: row for row in data["self_preference"]}
    assert set(sp["judge:alpha-judge"]) >= {"judge", "model", "n", "raw_win_rate", "gold_win_rate", "dbg", "dbg_ci",
                                            "equal_opportunity_gap"}  # fmt: skip
    # The judge that is model alpha always favours alpha's response: raw win rate 1 on own pairs.
    assert sp["judge:alpha-judge"]["n"] == 8
    assert sp["judge:alpha-judge"]["raw_win_rate"] == 1.0
    assert sp["judge:alpha-judge"]["dbg"] > 0
    assert sp["judge:plain"]["model"] is None and sp["judge:plain"]["dbg"] is None
    assert set(data["length"][0]) >= {"rater", "n", "longer_wins_rate", "gold_longer_wins_rate"}
    board = data["leaderboard"]["humans"]
    assert set(board) >= {"bradley_terry", "ratings", "kendall_tau"}
    assert set(board) - {"bradley_terry", "ratings", "kendall_tau"} == {
        "kendall_tau_ci", "bradley_terry_identifiable", "never_lost", "never_won",
        "style_controlled",  # issue 14: the style-controlled twin of the board
    }  # fmt: skip
    assert set(board["bradley_terry"][0]) == {"model", "elo", "ci"}
    assert set(board["ratings"][0]) == {"model", "mean", "ci"}
    assert "judge:alpha-judge" in data["leaderboard"]

    api.force_authenticate(annotator)
    assert api.get(reverse("api-project-report", args=[filled.pk])).status_code == 403


def test_api_filters_rater_group_and_attribute(researcher, filled):
    api = APIClient()
    api.force_authenticate(researcher)
    url = reverse("api-project-report", args=[filled.pk])
    judges_only = api.get(url, {"rounds": 0, "rater_group": "judges"}).json()
    assert all(r["judge"].startswith("judge:") for r in judges_only["position"])
    assert judges_only["judge_vs_gold"]  # gold still comes from the humans
    assert api.get(url, {"rounds": 0, "exclude_gold": "true", "details": "true"}).json()["details"]["attribute"] == (
        "helpfulness"
    )


def test_management_command_json_and_csv(filled):
    out = io.StringIO()
    call_command("report", filled.name, "--format", "json", "--rounds", "10", stdout=out)
    assert tuple(json.loads(out.getvalue())) == TOP_LEVEL
    out = io.StringIO()
    call_command("report", str(filled.pk), "--format", "csv", "--rounds", "10", stdout=out)
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert {r["section"] for r in rows} >= {"agreement", "judge_vs_gold", "position", "leaderboard"}


@pytest.fixture
def scored(project):
    """Two humans and a judge score 10 responses on two attributes; some scores are missing,
    so each rater pair and attribute has its own set of responses both rated."""
    raters = [Rater.objects.create(kind="human", name="s1"), Rater.objects.create(kind="human", name="s2"),
              Rater.objects.create(kind="judge", name="scorer")]  # fmt: skip
    attrs = {name: project.attributes.get(name=name) for name in ("helpfulness", "correctness")}
    values = {
        "helpfulness": [[4, 3, 3, 2, 0, 1, 4, 2, 2, None], [3, 3, 4, 1, 0, 2, 4, None, 2, 1],
                        [2, 2, 4, 1, 1, 1, 3, 0, 3, 2]],
        "correctness": [[1, 1, 1, 2, 0, 3, 4, 4, 2, 2], [0, 1, 2, 2, 1, 3, 3, 4, 1, None],
                        [None, 4, 3, 3, 0, 2, 2, 1, 4, 0]],
    }  # fmt: skip
    for i in range(10):
        item = Item.objects.create(project=project, external_id=f"s{i}", prompt=f"p{i}")
        response = Response.objects.create(item=item, external_id="a", text="x" * (5 + i), model=MODELS[i % 3])
        for name, per_rater in values.items():
            for rater, row in zip(raters, per_rater, strict=True):
                if row[i] is not None:
                    Rating.objects.create(rater=rater, response=response, attribute=attrs[name], value=row[i])
    return project, values


def test_score_correlations_per_rater_pair_and_attribute_equal_scipy(researcher, scored):
    from scipy import stats

    project, values = scored
    api = APIClient()
    api.force_authenticate(researcher)
    data = api.get(reverse("api-project-report", args=[project.pk]), {"rounds": 200}).json()
    rows = {(r["rater_a"], r["rater_b"], r["attribute"]): r for r in data["agreement"]["scores"]}
    names = ["human:s1", "human:s2", "judge:scorer"]
    assert len(rows) == 6
    assert {r["n"] for r in rows.values()} == {8, 9}  # missing scores drop responses pair by pair
    for attribute, per_rater in values.items():
        for i, j in [(0, 1), (0, 2), (1, 2)]:
            row = rows[(names[i], names[j], attribute)]
            both = [(x, y) for x, y in zip(per_rater[i], per_rater[j], strict=True) if x is not None and y is not None]
            a, b = np.array(both).T
            assert row["n"] == len(both)
            assert row["spearman"] == pytest.approx(stats.spearmanr(a, b).statistic, abs=1e-12)
            assert row["kendall_tau_b"] == pytest.approx(stats.kendalltau(a, b, variant="b").statistic, abs=1e-12)
            for key, value in (("ci_spearman", row["spearman"]), ("ci_kendall", row["kendall_tau_b"])):
                lo, hi = row[key]
                assert -1 <= lo <= value <= hi <= 1


def test_agreement_page_shows_the_score_correlations(client, researcher, scored):
    project, _ = scored
    body = _login(client, researcher).get(reverse("reports:page", args=[project.pk, "agreement"])).content.decode()
    assert "Spearman" in body and "Kendall" in body and "judge:scorer" in body


# Every rate of the JSON and the key of its interval ("ci" where the issue names it so).
RATE_CIS = {
    "judge_vs_gold": {"accuracy": "ci", "accuracy_no_ties": "accuracy_no_ties_ci",
                      "macro_precision": "macro_precision_ci", "macro_recall": "macro_recall_ci",
                      "macro_f1": "macro_f1_ci"},
    "consistency": {"consistency": "ci"},
    "position": {"consistency": "consistency_ci", "first_position_rate": "first_position_rate_ci",
                 "agreement_both_orders": "agreement_both_orders_ci"},
    "self_preference": {"raw_win_rate": "raw_win_rate_ci", "gold_win_rate": "gold_win_rate_ci", "dbg": "dbg_ci",
                        "equal_opportunity_gap": "equal_opportunity_gap_ci"},
    "length": {"longer_wins_rate": "longer_wins_rate_ci", "gold_longer_wins_rate": "gold_longer_wins_rate_ci"},
}  # fmt: skip


def test_every_rate_has_its_interval_beside_n(researcher, filled):
    api = APIClient()
    api.force_authenticate(researcher)
    data = api.get(reverse("api-project-report", args=[filled.pk]), {"rounds": 200, "details": "true"}).json()
    checked = 0
    for section, rates in RATE_CIS.items():
        assert data[section], section
        for row in data[section]:
            assert "n" in row
            for rate, ci_key in rates.items():
                value, ci = row[rate], row[ci_key]
                if value is None:
                    assert ci is None, (section, rate)
                    continue
                lo, hi = ci
                assert lo - 1e-12 <= value <= hi + 1e-12, (section, rate, row)
                checked += 1
    for p in data["agreement"]["pairs"]:
        for rate, ci_key in (("percent", "percent_ci"), ("cohen_kappa", "ci"),
                             ("cohen_kappa_quadratic", "cohen_kappa_quadratic_ci")):  # fmt: skip
            assert (p[rate] is None) == (p[ci_key] is None)
    pos = {row["judge"]: row for row in data["position"]}
    judge = pos["judge:alpha-judge"]
    assert judge["n"] == 12 and judge["n_gold"] == 12
    assert judge["n_inconsistent"] == round((1 - judge["consistency"]) * 12)
    human = pos["human:h0"]  # one order: the first-shown win rate and its interval
    assert human["consistency"] is None and human["consistency_ci"] is None
    assert human["first_position_rate_ci"] is not None
    for rows in data["details"]["consistency_by_strength"].values():
        assert all("ci" in row for row in rows)
    assert checked > 20


def test_bias_page_shows_intervals_beside_each_position_figure(client, researcher, filled):
    body = _login(client, researcher).get(reverse("reports:page", args=[filled.pk, "bias"])).content.decode()
    position = body[body.index("<h3>Position</h3>"):body.index("<h3>Self-preference</h3>")]
    assert position.count("95% CI") == 3
    row = position[position.index("<td>judge:alpha-judge</td>"):]
    row = row[:row.index("</tr>")]
    # Consistency and agreement with both orders over its 12 pairs; the first-position rate is
    # over its 4 inconsistent pairs only, below MIN_N: no number, no interval.
    assert row.count("[") == 2
    assert "too few to say (n = 4)" in row


def test_report_is_cached_until_an_annotation_changes(client, researcher, filled):
    api = APIClient()
    api.force_authenticate(researcher)
    url = reverse("api-project-report", args=[filled.pk])
    page = reverse("reports:page", args=[filled.pk, "agreement"])
    c = _login(client, researcher)
    with (
        mock.patch.object(report_cache, "build_state", wraps=report_cache.build_state) as build,
        mock.patch.object(report_cache, "absorb", wraps=report_cache.absorb) as absorbed,
    ):
        first = api.get(url).json()
        assert api.get(url).json() == first
        # The pages share the entry (it holds the details), tab after tab.
        for slug in ("agreement", "bias", "leaderboards"):
            assert c.get(reverse("reports:page", args=[filled.pk, slug])).status_code == 200
        assert "details" in api.get(url, {"details": "true"}).json()
        assert build.call_count == 1
        # Other filters or options are other entries.
        api.get(url, {"rater_group": "judges"})
        api.get(url, {"rounds": 5})
        assert build.call_count == 3

        # A new rating: recomputed (absorbed into the kept state), and the new figure is in it.
        h0 = Rater.objects.get(name="h0")
        response = Response.objects.filter(item__project=filled).first()
        Rating.objects.create(rater=h0, response=response, attribute=filled.attributes.get(name="correctness"), value=4)
        second = api.get(url).json()
        assert (build.call_count, absorbed.call_count) == (3, 1)
        assert second != first and "correctness" in second["agreement"]["krippendorff_alpha"]
        assert api.get(url).json() == second and build.call_count == 3
        assert api.get(url, {"details": "true"}).json()["details"]["incremental"]["new_annotations"] == 1
        assert "updated from 1 new annotation" in c.get(page).content.decode()

        # A new judge and its preference (absorbed: a new rater labels only new rows), then an
        # edited one and a deleted one each invalidate it (rebuilt: old rows changed).
        judge = Rater.objects.create(kind="judge", name="late")
        pref = Preference.objects.create(rater=judge, rater_kind="judge", pair=Pair.objects.filter(item__project=filled).first(),
                                         strength=1, shown_order="ab")  # fmt: skip
        third = api.get(url).json()
        assert (build.call_count, absorbed.call_count) == (3, 2)
        assert "judge:late" in {row["judge"] for row in third["position"]}
        pref.strength = -3
        pref.save()
        api.get(url)
        assert build.call_count == 4
        pref.delete()
        assert c.get(page).status_code == 200
        assert (build.call_count, absorbed.call_count) == (5, 2)


def test_pool_and_leaderboard_coefficients_have_intervals(researcher, filled):
    api = APIClient()
    api.force_authenticate(researcher)
    url = reverse("api-project-report", args=[filled.pk])
    data = api.get(url, {"rounds": 200, "seed": 3}).json()
    ag = data["agreement"]
    lo, hi = ag["fleiss_kappa_ci"]
    assert lo <= ag["fleiss_kappa"] <= hi
    assert set(ag["krippendorff_alpha_ci"]) == set(ag["krippendorff_alpha"]) == {"helpfulness", "preference"}
    for name, value in ag["krippendorff_alpha"].items():
        lo, hi = ag["krippendorff_alpha_ci"][name]
        assert lo <= value <= hi, name
    board = data["leaderboard"]["humans"]
    lo, hi = board["kendall_tau_ci"]
    assert -1 <= lo <= board["kendall_tau"] <= hi <= 1
    # Judges rate nothing here: no tau, so no interval.
    assert data["leaderboard"]["judge:plain"]["kendall_tau"] is None
    assert data["leaderboard"]["judge:plain"]["kendall_tau_ci"] is None
    # Seeded: the same seed gives the same intervals, another seed other ones.
    assert api.get(url, {"rounds": 200, "seed": 3}).json() == data
    other = api.get(url, {"rounds": 200, "seed": 4}).json()
    assert other["agreement"]["fleiss_kappa"] == ag["fleiss_kappa"]
    assert (other["agreement"]["fleiss_kappa_ci"], other["agreement"]["krippendorff_alpha_ci"]) != (
        ag["fleiss_kappa_ci"], ag["krippendorff_alpha_ci"])  # fmt: skip
    # No bootstrap: the points stay, the intervals are null.
    none = api.get(url, {"rounds": 0}).json()
    assert none["agreement"]["fleiss_kappa"] == ag["fleiss_kappa"]
    assert none["agreement"]["fleiss_kappa_ci"] is None
    assert set(none["agreement"]["krippendorff_alpha_ci"].values()) == {None}
    assert none["leaderboard"]["humans"]["kendall_tau_ci"] is None


@pytest.fixture
def unanimous(project):
    """Two humans who agree on every verdict and every rating: alpha wins every pair it is in,
    beta beats gamma; ratings 4, 2, 0 for alpha, beta, gamma."""
    humans = [Rater.objects.create(kind="human", name=f"u{k}") for k in range(2)]
    helpfulness = project.attributes.get(name="helpfulness")
    score = {"alpha": 4, "beta": 2, "gamma": 0}
    for i in range(9):
        item = Item.objects.create(project=project, external_id=f"u{i}", prompt=f"prompt {i}")
        ma, mb = MODELS[i % 3], MODELS[(i + 1) % 3]
        ra = Response.objects.create(item=item, external_id="a", text="x" * (10 + i), model=ma)
        rb = Response.objects.create(item=item, external_id="b", text="y" * (10 + i), model=mb)
        pair = Pair.objects.create(item=item, response_a=ra, response_b=rb)
        for h in humans:
            Preference.objects.create(rater=h, rater_kind="human", pair=pair,
                                      strength=-2 if score[ma] > score[mb] else 2, shown_order="ab")  # fmt: skip
            Rating.objects.create(rater=h, response=ra, attribute=helpfulness, value=score[ma])
            Rating.objects.create(rater=h, response=rb, attribute=helpfulness, value=score[mb])
    return project


def test_unanimous_raters_get_degenerate_intervals(researcher, unanimous):
    api = APIClient()
    api.force_authenticate(researcher)
    data = api.get(reverse("api-project-report", args=[unanimous.pk]), {"rounds": 200}).json()
    ag = data["agreement"]
    assert ag["fleiss_kappa"] == pytest.approx(1.0)
    assert ag["fleiss_kappa_ci"] == pytest.approx([1.0, 1.0])
    assert ag["krippendorff_alpha"] == pytest.approx({"helpfulness": 1.0, "preference": 1.0})
    assert ag["krippendorff_alpha_ci"]["helpfulness"] == pytest.approx([1.0, 1.0])
    assert ag["krippendorff_alpha_ci"]["preference"] == pytest.approx([1.0, 1.0])
    board = data["leaderboard"]["humans"]
    assert [r["model"] for r in board["ratings"]] == ["alpha", "beta", "gamma"]
    assert board["kendall_tau"] == pytest.approx(1.0)
    # Every round keeps the order (alpha > beta > gamma on both boards): [1, 1].
    assert board["kendall_tau_ci"] == pytest.approx([1.0, 1.0])


def test_agreement_and_leaderboard_pages_show_the_new_intervals(client, researcher, filled):
    api = APIClient()
    api.force_authenticate(researcher)
    c = _login(client, researcher)
    data = api.get(reverse("api-project-report", args=[filled.pk]), {"details": "true"}).json()
    ag = data["agreement"]
    body = c.get(reverse("reports:page", args=[filled.pk, "agreement"])).content.decode()
    lead = body[body.index('class="headline"'):body.index("</p>", body.index('class="headline"'))]
    assert "Fleiss" in lead and f"95% CI {ag['fleiss_kappa_ci'][0]:.3f}–{ag['fleiss_kappa_ci'][1]:.3f}" in lead
    alpha = body[body.index("Krippendorff"):body.index("<h3>Scores")]
    for name, (lo, hi) in ag["krippendorff_alpha_ci"].items():
        row = alpha[alpha.index(f"<td>{name}</td>"):]
        assert f"[{lo:.3f}, {hi:.3f}]" in row[:row.index("</tr>")]
    body = c.get(reverse("reports:page", args=[filled.pk, "leaderboards"])).content.decode()
    lo, hi = data["leaderboard"]["humans"]["kendall_tau_ci"]
    assert f"95% CI [{lo:.3f}, {hi:.3f}]" in body


# --- honest charts ------------------------------------------------------------------------------


def _rects(svg: str) -> list[tuple[float, float]]:
    """(x, width) of each bar of a bars_with_intervals chart."""
    return [(float(x), float(w)) for x, w in re.findall(r'<rect x="([\d.]+)" y="[\d.]+" width="([\d.]+)" height="14"', svg)]


def test_rate_bars_start_at_zero_and_elo_bars_at_the_stated_reference():
    from reports.charts import Bar, bars_with_intervals

    label_w, plot_w = 190, 380  # the chart's geometry
    rates = bars_with_intervals([Bar("a", 0.5), Bar("b", 0.9)], percent=True)
    assert [x for x, _ in _rects(rates)] == [label_w, label_w]  # both from 0%
    assert [w for _, w in _rects(rates)] == [pytest.approx(0.5 * plot_w, abs=0.1), pytest.approx(0.9 * plot_w, abs=0.1)]
    elo = bars_with_intervals([Bar("up", 1050), Bar("down", 950)], lo=900, hi=1100, base=1000,
                              base_label="Bars are differences from the mean model, anchored at 1000.")  # fmt: skip
    centre = label_w + plot_w / 2
    (x_up, w_up), (x_down, w_down) = _rects(elo)
    assert x_up == pytest.approx(centre, abs=0.1) and w_up == pytest.approx(plot_w / 4, abs=0.1)
    assert x_down + w_down == pytest.approx(centre, abs=0.1) and w_down == pytest.approx(plot_w / 4, abs=0.1)
    assert "anchored at 1000" in elo


def test_leaderboard_charts_start_at_the_rating_floor_and_centre_elo_on_1000(client, researcher, filled):
    body = _login(client, researcher).get(reverse("reports:page", args=[filled.pk, "leaderboards"])).content.decode()
    charts_ = re.findall(r"<svg.*?</svg>", body, re.S)
    rating = next(c for c in charts_ if "Mean rating" in c)
    ticks = re.findall(r'text-anchor="middle" fill="#60656b">([^<]+)</text>', rating)
    # helpfulness is 0-4: the axis runs over the whole scale, not from 1.88.
    assert ticks[0] == "0.00" and ticks[-1] == "4.00"
    assert "Bars start at the scale's minimum, 0." in unescape(rating)
    elo = next(c for c in charts_ if "Bradley-Terry" in c)
    ticks = re.findall(r'text-anchor="middle" fill="#60656b">([^<]+)</text>', elo)
    assert ticks[1] == "1000"  # the middle tick is the reference
    assert float(ticks[0]) + float(ticks[2]) == pytest.approx(2000, abs=1)
    assert "differences from the mean model, anchored at 1000" in elo


@pytest.fixture
def thin(project):
    """One pair, two humans who agree and rate it, two models: every figure rests on n = 1."""
    helpfulness = project.attributes.get(name="helpfulness")
    item = Item.objects.create(project=project, external_id="only", prompt="p")
    ra = Response.objects.create(item=item, external_id="a", text="short", model="alpha")
    rb = Response.objects.create(item=item, external_id="b", text="much longer", model="beta")
    pair = Pair.objects.create(item=item, response_a=ra, response_b=rb)
    judge = Rater.objects.create(kind="judge", name="j", model="alpha")
    for k in range(2):
        h = Rater.objects.create(kind="human", name=f"t{k}")
        Preference.objects.create(rater=h, rater_kind="human", pair=pair, strength=-2, shown_order="ab")
        Rating.objects.create(rater=h, response=ra, attribute=helpfulness, value=4)
        Rating.objects.create(rater=h, response=rb, attribute=helpfulness, value=1)
    for order in ("ab", "ba"):
        Preference.objects.create(rater=judge, rater_kind="judge", pair=pair, strength=-1, shown_order=order,
                                  probabilities={"A": 0.9, "tie": 0.0, "B": 0.1})  # fmt: skip
    return project


@pytest.mark.parametrize("page", ["consistency", "agreement", "bias", "leaderboards"])
def test_figures_on_too_little_data_say_too_few_instead_of_a_number(client, researcher, thin, page):
    body = _login(client, researcher).get(reverse("reports:page", args=[thin.pk, page])).content.decode()
    assert "[100.00%, 100.00%]" not in body and "[1.000, 1.000]" not in body
    assert "100.00% n=" not in body and "100.00%</td>" not in body  # e.g. consistency 1/1 is no finding
    assert "too few to say (n = " in body


def test_headline_on_one_pair_is_too_few_to_say_with_its_n(client, researcher, thin):
    body = _login(client, researcher).get(reverse("reports:page", args=[thin.pk, "consistency"])).content.decode()
    lead = body[body.index('class="headline"'):body.index("</p>", body.index('class="headline"'))]
    assert re.search(r"too few to say \(n = [12]\)", lead)
    assert "95% CI" not in lead


def test_kendall_tau_on_two_models_is_too_few_to_say(client, researcher, thin):
    api = APIClient()
    api.force_authenticate(researcher)
    board = api.get(reverse("api-project-report", args=[thin.pk])).json()["leaderboard"]["humans"]
    assert len(board["bradley_terry"]) == 2  # the JSON keeps its figure; the page does not print it
    body = _login(client, researcher).get(reverse("reports:page", args=[thin.pk, "leaderboards"])).content.decode()
    lead = body[body.index('class="headline"'):body.index("</p>", body.index('class="headline"'))]
    assert "too few to say (n = 2)" in lead
    section = body[body.index("<h3>humans</h3>"):]
    assert "too few to say (n = 2)" in section[:section.index("</p>")]
    assert "a rank correlation needs 3" in section


def test_sections_with_nothing_to_say_fold_away(client, researcher, thin):
    body = _login(client, researcher).get(reverse("reports:page", args=[thin.pk, "agreement"])).content.decode()
    sections = re.findall(r'<details class="report-section" ?(open)?>', body)
    assert len(sections) == 4 and not any(sections)  # all folded: nothing rests on 10 pairs
    assert body.count("n/a") == 0
    assert "3 rater pairs with too few to say" in body  # named in the fold, with their n


def test_sections_with_figures_stay_open(client, researcher, filled):
    body = _login(client, researcher).get(reverse("reports:page", args=[filled.pk, "agreement"])).content.decode()
    assert re.findall(r'<details class="report-section" ?(open)?>', body)[0] == "open"  # rater pairs, n = 12


def test_every_report_page_explains_its_terms_on_hover_and_in_the_page(client, researcher, filled):
    from reports.glossary import PAGE_TERMS, TERMS

    c = _login(client, researcher)
    for page, keys in PAGE_TERMS.items():
        body = c.get(reverse("reports:page", args=[filled.pk, page])).content.decode()
        glossary_html = body[body.index('id="glossary"'):]
        hovers = {unescape(t) for t in re.findall(r'<abbr class="term" title="([^"]*)"', body)}
        for key in keys:
            definition = TERMS[key].definition
            assert f"<dd>{escape(definition)}</dd>" in glossary_html, (page, key)
        assert hovers <= {t.definition for t in TERMS.values()}  # one definition per term everywhere
        assert len(hovers) >= 2, page
    for key in ("wildbench_k", "dbg", "eo_gap", "fleiss_kappa"):
        assert key in {k for keys in PAGE_TERMS.values() for k in keys}
    # The filter's WildBench K explains itself on hover too.
    body = c.get(reverse("reports:page", args=[filled.pk, "bias"])).content.decode()
    assert f'<label title="{escape(TERMS["wildbench_k"].definition)}">WildBench K' in body


def test_bias_page_without_both_order_raters_shows_no_empty_columns(client, researcher, filled):
    # Only the one-order raters: the humans and judge "plain" (PandaLM-style imported verdicts).
    Preference.objects.filter(rater__name="alpha-judge").delete()
    body = _login(client, researcher).get(reverse("reports:page", args=[filled.pk, "bias"])).content.decode()
    position = body[body.index("<h3>Position</h3>"):body.index("<h3>Self-preference</h3>")]
    assert "position consistency</abbr>" not in position and "n/a" not in position
    # header + three raters; the fourth has 9 non-tied verdicts, below MIN_N: folded with its n.
    assert position.count("<tr>") == 1 + 3
    assert "1 raters with too few to say" in position and "(n = 9)" in position
    lead = body[body.index('class="headline"'):body.index("</p>", body.index('class="headline"'))]
    assert "first-shown win rate" in lead and "95% CI" in lead


def test_a_table_of_only_too_few_rows_folds_like_an_empty_section(client, researcher, thin):
    body = _login(client, researcher).get(reverse("reports:page", args=[thin.pk, "consistency"])).content.decode()
    by_strength = body[body.index("By ranking strength") - 200:body.index("By ranking strength")]
    assert '<details class="report-section" >' in by_strength or '<details class="report-section">' in by_strength


def test_the_stamp_says_what_an_update_took_in():
    """An update with new annotations says how many; one that only reloaded judgments or
    reviewers' decisions (the cards read them; they are not annotation rows) says so, not
    "0 new annotations absorbed"."""
    from django.template.loader import render_to_string

    details = {"computed_at": "2026-12-02T21:52:42+00:00", "n_annotations": 424, "n_items": 11, "bootstrap_rounds": 1000}
    base = {"base_computed_at": "2026-12-02T21:50:00+00:00", "base_annotations": 400}
    with_rows = render_to_string("reports/_report.html", {"page": "leaderboards", "report": {
        "details": {**details, "incremental": {**base, "new_annotations": 24}}}})  # fmt: skip
    assert "updated from 24 new annotations absorbed into the report computed 2026-12-02T21:50:00+00:00 from 400" in with_rows
    without = render_to_string("reports/_report.html", {"page": "leaderboards", "report": {
        "details": {**details, "incremental": {**base, "new_annotations": 0}}}})  # fmt: skip
    assert "no new annotations" in without and "0 new annotation" not in without
    full = render_to_string("reports/_report.html", {"page": "leaderboards", "report": {"details": {**details, "incremental": None}}})
    assert "Computed 2026-12-02T21:52:42+00:00 from 424 annotations" in full and "updated" not in full
