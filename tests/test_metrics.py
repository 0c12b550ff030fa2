"""Hand-computed cases for every figure, and equality with the reference libraries."""

from __future__ import annotations

import itertools

import krippendorff
import numpy as np
import pandas as pd
import pytest
from scipy import optimize, stats
from sklearn.metrics import cohen_kappa_score, precision_recall_fscore_support

from reports.metrics import bootstrap, leaderboard
from reports.metrics.agreement import (
    cohen_kappa,
    coincidences_per_unit,
    fleiss_from_sums,
    fleiss_kappa,
    fleiss_unit_stats,
    kendall_tau_b,
    krippendorff_alpha,
    krippendorff_from_coincidences,
    percent_agreement,
    rank_correlations,
    rank_correlations_from_table,
    spearman_rho,
)
from reports.metrics.bootstrap import Resampler, per_unit_sums, ratio
from reports.metrics.classification import score_against_gold
from reports.metrics.consistency import consistency, implied_verdicts
from reports.metrics.judges import (
    calibration,
    first_shown_win_rate,
    length_bias,
    position_both_orders,
    rating_self_preference,
    self_preference,
)
from reports.metrics.leaderboard import (
    bradley_terry,
    bradley_terry_elo,
    kendall_tau_b_rounds,
    kendall_tau_between,
    kendall_tau_ci,
)
from reports.metrics.verdicts import TIE, A, B, apply_wildbench_rule, combine_orders, gold_verdicts

NO_BOOT = Resampler(n_units=100, rounds=0)


def _boot(n: int = 100, rounds: int = 0) -> Resampler:
    return Resampler(n_units=n, rounds=rounds, seed=0)


# --- agreement -------------------------------------------------------------------------------


@pytest.mark.parametrize("weights", [None, "linear", "quadratic"])
@pytest.mark.parametrize("seed", range(5))
def test_cohen_kappa_equals_scikit_learn(weights, seed):
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 5, 200)
    b = np.where(rng.random(200) < 0.6, a, rng.integers(0, 5, 200))
    assert cohen_kappa(a, b, weights) == pytest.approx(cohen_kappa_score(a, b, weights=weights), abs=1e-12)


def test_cohen_kappa_when_one_rater_never_uses_a_label():
    a = np.array([0, 0, 1, 2, 2, 2])
    b = np.array([0, 0, 2, 2, 2, 0])
    for w in (None, "linear", "quadratic"):
        assert cohen_kappa(a, b, w) == pytest.approx(cohen_kappa_score(a, b, weights=w), abs=1e-12)


def test_percent_agreement_by_hand():
    assert percent_agreement(np.array([0, 1, 2, 2]), np.array([0, 1, 1, 2])) == 0.75


@pytest.mark.parametrize("level", ["nominal", "ordinal", "interval"])
@pytest.mark.parametrize("seed", range(4))
def test_krippendorff_alpha_equals_package_with_missing_values(level, seed):
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, 5, 60)
    data = np.array([np.where(rng.random(60) < 0.7, truth, rng.integers(0, 5, 60)) for _ in range(4)], float)
    data[rng.random(data.shape) < 0.3] = np.nan
    expected = krippendorff.alpha(reliability_data=data, level_of_measurement=level)
    assert abs(krippendorff_alpha(data, level) - expected) < 1e-9


def test_krippendorff_alpha_package_example():
    data = [[1, 2, 3, 3, 2, 1, 4, 1, 2, np.nan, np.nan, np.nan],
            [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, np.nan, 3],
            [np.nan, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, np.nan],
            [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, np.nan]]  # fmt: skip
    assert round(krippendorff_alpha(data, "nominal"), 3) == 0.743
    assert round(krippendorff_alpha(data, "ordinal"), 3) == 0.815


def test_fleiss_kappa_by_hand():
    # Two raters; units agree, agree, split: mean P_i = 2/3, p = (1/2, 1/2), P_e = 1/2 -> 1/3.
    assert fleiss_kappa(np.array([[2, 0], [0, 2], [1, 1]])) == pytest.approx(1 / 3)
    # Fleiss (1971) with perfect agreement is 1.
    assert fleiss_kappa(np.array([[3, 0, 0], [0, 3, 0], [0, 0, 3]])) == pytest.approx(1.0)


def test_rank_correlations_on_ties():
    a = np.array([1, 2, 2, 3, 4, 4, 5])
    b = np.array([2, 1, 2, 3, 3, 5, 4])
    # Spearman's rho is Pearson's r on mid-ranks.
    ra, rb = np.array([1, 2.5, 2.5, 4, 5.5, 5.5, 7]), np.array([2.5, 1, 2.5, 4.5, 4.5, 7, 6])
    assert spearman_rho(a, b) == pytest.approx(np.corrcoef(ra, rb)[0, 1])
    # tau-b by hand over the 21 pairs: concordant 15, discordant 2, tied in a only 2, in b only 2.
    assert kendall_tau_b(a, b) == pytest.approx((15 - 2) / np.sqrt((15 + 2 + 2) * (15 + 2 + 2)))


@pytest.mark.parametrize("seed", range(6))
def test_rank_correlations_from_the_score_table_equal_scipy(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(3, 80))
    a = rng.integers(0, 5, n)
    b = np.clip(a + rng.integers(-2, 3, n), 1, 7)  # different scales, many ties
    rho, tau = rank_correlations(a, b)
    assert rho == pytest.approx(stats.spearmanr(a, b).statistic, abs=1e-12)
    assert tau == pytest.approx(stats.kendalltau(a, b, variant="b").statistic, abs=1e-12)


def test_rank_correlations_undefined_for_a_constant_rater():
    rho, tau = rank_correlations(np.array([2, 2, 2]), np.array([1, 2, 3]))
    assert np.isnan(rho) and np.isnan(tau)


def test_rank_correlation_bootstrap_equals_scipy_on_the_resampled_rows():
    # A resample is the table of multiplicity-weighted counts: equal to scipy on the rows drawn.
    rng = np.random.default_rng(5)
    items = np.arange(30)
    a = rng.integers(0, 5, 30)
    b = np.clip(a + rng.integers(-1, 2, 30), 0, 4)
    boot = Resampler(n_units=30, rounds=20, seed=2)
    per_unit = per_unit_sums(items, a * 5 + b, 1.0, n_units=30, width=25)
    est = boot.estimate(per_unit, lambda s: rank_correlations_from_table(s.reshape(*s.shape[:-1], 5, 5)), n=30)
    boot.run()
    w = boot.weights(0, 20).astype(int)
    for k in range(20):
        rows = np.repeat(items, w[k])
        assert est.samples[k, 0] == pytest.approx(stats.spearmanr(a[rows], b[rows]).statistic, abs=1e-12)
        assert est.samples[k, 1] == pytest.approx(stats.kendalltau(a[rows], b[rows], variant="b").statistic, abs=1e-12)


def _fleiss_boot(counts: np.ndarray, units: np.ndarray, *, n_units: int, rounds: int, seed: int):
    """Fleiss' kappa on the item bootstrap, registered as the report registers it."""
    stats_ = fleiss_unit_stats(counts)
    boot = Resampler(n_units=n_units, rounds=rounds, seed=seed)
    per_unit = per_unit_sums(np.repeat(units, stats_.shape[1]), np.tile(np.arange(stats_.shape[1]), len(counts)),
                             stats_.ravel(), n_units=n_units, width=stats_.shape[1])  # fmt: skip
    est = boot.estimate(per_unit, fleiss_from_sums, n=len(counts))
    boot.run()
    return est


def test_fleiss_kappa_bootstrap_equals_fleiss_on_the_resampled_units():
    rng = np.random.default_rng(7)
    truth = rng.integers(0, 3, 40)
    # Four raters, each right 70% of the time; some units have only two or three ratings.
    labels = np.where(rng.random((40, 4)) < 0.7, truth[:, None], rng.integers(0, 3, (40, 4)))
    present = rng.random((40, 4)) < 0.8
    present[:, :2] = True
    counts = np.stack([((labels == c) & present).sum(axis=1) for c in range(3)], axis=1)
    est = _fleiss_boot(counts, np.arange(40), n_units=40, rounds=30, seed=4)
    assert float(est.value) == pytest.approx(fleiss_kappa(counts))
    w = Resampler(n_units=40, rounds=30, seed=4).weights(0, 30).astype(int)
    for k in range(30):
        assert est.samples[k] == pytest.approx(fleiss_kappa(np.repeat(counts, w[k], axis=0)), abs=1e-12)
    lo, hi = est.ci
    assert lo < est.value < hi
    # Seeded: the same seed gives the same interval, another seed another one.
    again = _fleiss_boot(counts, np.arange(40), n_units=40, rounds=30, seed=4)
    assert np.array_equal(again.samples, est.samples)
    assert not np.array_equal(_fleiss_boot(counts, np.arange(40), n_units=40, rounds=30, seed=5).samples, est.samples)


def test_fleiss_kappa_interval_of_unanimous_raters_is_the_point():
    # Every unit unanimous: kappa 1 in every round (rounds that drew one category only have no
    # kappa and are left out), so the interval is [1, 1].
    counts = np.array([[3, 0, 0], [0, 3, 0], [0, 0, 3], [3, 0, 0], [0, 0, 3], [0, 3, 0]])
    est = _fleiss_boot(counts, np.arange(6), n_units=6, rounds=200, seed=0)
    assert float(est.value) == pytest.approx(1.0)
    assert est.ci == pytest.approx([1.0, 1.0])


@pytest.mark.parametrize("level", ["nominal", "ordinal", "interval"])
def test_krippendorff_bootstrap_equals_the_package_on_the_resampled_units(level):
    rng = np.random.default_rng(8)
    truth = rng.integers(0, 5, 30)
    data = np.array([np.where(rng.random(30) < 0.7, truth, rng.integers(0, 5, 30)) for _ in range(3)], float)
    data[rng.random(data.shape) < 0.2] = np.nan
    domain = np.unique(data[~np.isnan(data)])
    counts = (data.T[..., None] == domain[None, None, :]).sum(axis=1)
    boot = Resampler(n_units=30, rounds=25, seed=3)
    v = len(domain)
    est = boot.estimate(coincidences_per_unit(counts),
                        lambda s: krippendorff_from_coincidences(s.reshape(*s.shape[:-1], v, v), domain, level),
                        n=30)  # fmt: skip
    boot.run()
    # The point is the package's; each round is the package's alpha on the units drawn.
    assert abs(float(est.value) - krippendorff.alpha(reliability_data=data, level_of_measurement=level)) < 1e-9
    w = boot.weights(0, 25).astype(int)
    for k in range(25):
        drawn = np.repeat(data, w[k], axis=1)
        expected = krippendorff.alpha(reliability_data=drawn, level_of_measurement=level, value_domain=domain)
        assert abs(est.samples[k] - expected) < 1e-9
    lo, hi = est.ci
    assert lo < est.value < hi


# --- verdicts and gold -----------------------------------------------------------------------


def _prefs(rows: list[tuple]) -> pd.DataFrame:
    """rows: (rater, pair, strength, shown_order, order)."""
    df = pd.DataFrame(rows, columns=["rater", "pair", "strength", "shown_order", "order"])
    df["item"] = df["pair"]
    df["kind"] = df["rater"].str.split(":").str[0]
    return df


def test_combined_verdict_is_the_agreed_one_else_tie():
    df = _prefs([("judge:j", 1, -2, "ab", 0), ("judge:j", 1, -1, "ba", 1),
                 ("judge:j", 2, -2, "ab", 2), ("judge:j", 2, 3, "ba", 3),
                 ("human:h", 3, 2, "ba", 4)])  # fmt: skip
    v = combine_orders(df).set_index("pair")
    assert v.loc[1, "verdict"] == A and v.loc[1, "strength"] == -2  # mean -1.5, half away from zero
    assert v.loc[2, "verdict"] == TIE and v.loc[2, "strength"] == 0
    assert v.loc[3, "verdict"] == B


def test_gold_majority_and_ties_to_the_earliest_annotation():
    df = _prefs([
        ("human:a", 1, -1, "ab", 0), ("human:b", 1, -1, "ab", 1), ("human:c", 1, 1, "ab", 2),  # majority A
        ("human:a", 2, 1, "ab", 5), ("human:b", 2, 0, "ab", 3), ("human:c", 2, -1, "ab", 4),  # 1-1-1: earliest = tie
        # 2-2 between A and B; the earliest annotation overall is a tie (not among the tied counts).
        ("human:a", 3, 0, "ab", 6), ("human:b", 3, 1, "ab", 7), ("human:c", 3, -1, "ab", 8),
        ("human:d", 3, 1, "ab", 9), ("human:e", 3, -1, "ab", 10),
    ])  # fmt: skip
    g = gold_verdicts(combine_orders(df)).set_index("pair")["gold"]
    assert g.to_dict() == {1: A, 2: TIE, 3: B}


def test_wildbench_rule_turns_slight_wins_of_much_longer_responses_into_ties():
    df = pd.DataFrame({"strength": [-1, -1, 1, -2], "len_a": [900, 100, 100, 900], "len_b": [100, 900, 700, 100]})
    assert apply_wildbench_rule(df, 500)["strength"].tolist() == [0, -1, 0, -2]


# --- judge vs gold -------------------------------------------------------------------------


def test_judge_vs_gold_by_hand_and_against_scikit_learn():
    gold = pd.DataFrame({"pair": [1, 2, 3, 4, 5], "item": [0, 1, 2, 3, 4], "gold": [A, A, TIE, B, B]})
    judge = pd.DataFrame({"pair": [1, 2, 3, 4, 6], "verdict": [A, B, TIE, B, A]})  # pair 6 has no gold
    s = score_against_gold(judge, gold, NO_BOOT)
    acc, acc_no_ties, p, r, f1 = s.estimate.value
    assert s.n == 4
    assert acc == 0.75
    assert acc_no_ties == pytest.approx(2 / 3)
    ep, er, ef, _ = precision_recall_fscore_support([A, A, TIE, B], [A, B, TIE, B], average="macro", zero_division=0)
    assert (p, r, f1) == pytest.approx((ep, er, ef))


# --- consistency ---------------------------------------------------------------------------


def test_consistency_with_a_missing_rating_and_by_strength():
    pairs = pd.DataFrame({"pair": [1, 2, 3, 4], "item": [0, 1, 2, 3], "response_a": [10, 20, 30, 40],
                          "response_b": [11, 21, 31, 41], "verdict": [A, TIE, B, A], "strength": [-2, 0, 1, -1]})  # fmt: skip
    scores = pd.DataFrame({"response": [10, 11, 20, 21, 30, 31, 40], "score": [5, 3, 4, 4, 6, 2, 1]})
    joined = implied_verdicts(pairs, scores)  # pair 4: response 41 has no rating
    c = consistency(joined, NO_BOOT)
    assert c.n == 3
    assert c.estimate.value == pytest.approx(2 / 3)  # pair 3: ratings say A, ranking says B
    assert c.confusion[A, B] == 1 and c.confusion.trace() == 2
    assert {row["strength"]: row["consistency"] for row in c.by_strength} == {0: 1.0, 1: 0.0, 2: 1.0}
    assert c.by_strength_estimate.value.tolist() == [1.0, 0.0, 1.0]  # the same rates, bootstrapped in the report


# --- position ------------------------------------------------------------------------------


def test_position_consistency_first_position_and_both_orders_agreement():
    rows = []
    ab = [A, A, B, A]
    ba = [A, B, A, TIE]
    for pair, (x, y) in enumerate(zip(ab, ba, strict=True)):
        rows += [("judge:j", pair, x - 1, "ab", 2 * pair), ("judge:j", pair, y - 1, "ba", 2 * pair + 1)]
    gold = pd.DataFrame({"pair": [0, 1, 2], "item": [0, 1, 2], "gold": [A, A, B]})
    pos = position_both_orders(_prefs(rows), gold, NO_BOOT)
    consistency_rate, first_rate, both = pos.estimate.value
    assert pos.n == 4 and pos.n_inconsistent == 3 and pos.n_gold == 3
    assert consistency_rate == 0.25
    assert first_rate == pytest.approx(1 / 3)  # pair 1: A shown first, then B shown first: both "first"
    # Both orders equal gold: pair 0 only, over the 3 pairs with gold.
    assert both == pytest.approx(1 / 3)


def test_human_first_shown_win_rate_ignores_ties():
    df = _prefs([("human:h", 1, -1, "ab", 0), ("human:h", 2, 1, "ba", 1), ("human:h", 3, 1, "ab", 2),
                 ("human:h", 4, 0, "ab", 3)])  # fmt: skip
    pos = first_shown_win_rate(df, NO_BOOT)
    assert pos.n == 3
    assert pos.first_shown_win_rate.value == pytest.approx(2 / 3)


# --- self-preference -----------------------------------------------------------------------


def test_self_preference_raw_gold_dbg_and_equal_opportunity():
    v = pd.DataFrame({
        "pair": [1, 2, 3, 4, 5], "item": [0, 1, 2, 3, 4],
        "model_a": ["me", "x", "me", "y", "x"], "model_b": ["x", "me", "y", "me", "y"],  # pair 5: not own
        "verdict": [A, B, TIE, A, A],
    })  # fmt: skip
    gold = pd.DataFrame({"pair": [1, 2, 3, 4], "item": [0, 1, 2, 3], "gold": [A, A, B, A]})
    sp = self_preference(v, gold, "me", NO_BOOT)
    raw, gold_wr, dbg, eo = sp.estimate.value
    assert sp.n == 4
    assert raw == pytest.approx((1 + 1 + 0.5 + 0) / 4)
    assert gold_wr == pytest.approx((1 + 0 + 0 + 0) / 4)
    assert dbg == pytest.approx(raw - gold_wr)
    # Gold prefers own in pair 1 (judge agrees): 1/1. Gold prefers other in 2, 3, 4: judge agrees in 4 only.
    assert eo == pytest.approx(1 - 1 / 3)


def test_judge_with_no_own_model_pairs_has_no_self_preference():
    v = pd.DataFrame({"pair": [1], "item": [0], "model_a": ["x"], "model_b": ["y"], "verdict": [A]})
    gold = pd.DataFrame({"pair": [1], "item": [0], "gold": [A]})
    sp = self_preference(v, gold, "me", NO_BOOT)
    assert sp.n == 0 and sp.estimate is None


def test_rating_form_of_self_preference():
    ratings = pd.DataFrame({
        "rater": ["human:h", "human:h", "judge:j", "judge:j"], "kind": ["human", "human", "judge", "judge"],
        "response": [1, 2, 1, 2], "model": ["me", "x", "me", "x"], "attribute": ["helpfulness"] * 4,
        "value": [2, 3, 4, 3],
    })  # fmt: skip
    human, judge = ratings[ratings["kind"] == "human"], ratings[ratings["rater"] == "judge:j"]
    assert rating_self_preference(human, judge, "me") == {"helpfulness": 2.0}


# --- calibration and length ----------------------------------------------------------------


def test_calibration_bins_and_expected_calibration_error():
    prefs = pd.DataFrame({
        "pair": [1, 1, 2, 3, 4], "item": [0, 0, 1, 2, 3],
        "p_a": [0.9, 0.7, 0.4, 0.5, 0.2], "p_tie": [0.0] * 5, "p_b": [0.1, 0.3, 0.6, 0.5, 0.8],
    })  # fmt: skip
    gold = pd.DataFrame({"pair": [1, 2, 3, 4], "item": [0, 1, 2, 3], "gold": [A, A, B, TIE]})
    cal = calibration(prefs, gold, NO_BOOT)
    # Pair 1: P(B) = 0.2, pick A, conf 0.8, right. Pair 2: 0.6 -> B, conf 0.6, wrong. Pair 3: 0.5 -> A,
    # conf 0.5, wrong. Pair 4: tied gold, left out.
    assert cal.n == 3
    assert cal.ece.value == pytest.approx((abs(0.8 - 1) + abs(0.6 - 0) + abs(0.5 - 0)) / 3)
    assert [b["n"] for b in cal.bins] == [1, 0, 1, 0, 0, 0, 1, 0, 0, 0]


def test_longer_wins_rate_against_gold():
    v = pd.DataFrame({"pair": [1, 2, 3, 4], "item": [0, 1, 2, 3], "len_a": [10, 50, 30, 5],
                      "len_b": [20, 40, 30, 9], "verdict": [B, A, A, TIE]})  # fmt: skip
    gold = pd.DataFrame({"pair": [1, 2, 4], "item": [0, 1, 3], "gold": [A, A, B]})
    lb = length_bias(v, gold, NO_BOOT)
    longer, gold_longer = lb.estimate.value
    assert lb.n == 2 and longer == 1.0  # pair 3 has equal lengths, pair 4 a tie
    assert gold_longer == pytest.approx(2 / 3)  # gold on pairs 1, 2, 4


# --- leaderboards --------------------------------------------------------------------------


def test_bradley_terry_equals_a_direct_maximum_likelihood_fit():
    wins = np.array([[0, 7, 5], [3, 0, 6], [2.5, 4, 0]])

    def nll(e: np.ndarray) -> float:
        diff = (e[None, :] - e[:, None]) / 400
        return float((wins * np.log1p(10**diff)).sum())

    ref = optimize.minimize(nll, np.zeros(3), method="BFGS", options={"gtol": 1e-10}).x
    ref = ref - ref.mean() + 1000
    assert bradley_terry_elo(wins) == pytest.approx(ref, abs=1e-3)
    assert bradley_terry_elo(wins).mean() == pytest.approx(1000)


def test_bradley_terry_ties_are_half_wins_and_bootstrap_brackets_the_median():
    comps = pd.DataFrame({"model_a": ["x"] * 60 + ["y"] * 40, "model_b": ["y"] * 60 + ["x"] * 40,
                          "verdict": [A] * 40 + [TIE] * 20 + [B] * 10 + [A] * 30})  # fmt: skip
    bt = bradley_terry(comps, rounds=200, seed=1)
    exact = bradley_terry(comps, rounds=0, seed=1)
    # x: 40 + 10 + 10 (ties) = 60 of 100 -> e_x - e_y = 400 log10(60/40).
    assert exact.elo[0] - exact.elo[1] == pytest.approx(400 * np.log10(1.5))
    assert bt.ci[0, 0] < bt.elo[0] < bt.ci[1, 0]


def test_kendall_tau_between_orderings_uses_common_models():
    assert kendall_tau_between({"a": 3, "b": 2, "c": 1}, {"a": 9, "b": 8, "c": 7, "d": 1}) == 1.0
    assert kendall_tau_between({"a": 3}, {"a": 1}) is None


def test_kendall_tau_b_per_round_equals_scipy_and_drops_missing_models():
    rng = np.random.default_rng(2)
    x = rng.integers(0, 4, (25, 6)).astype(float)  # ties in both
    y = rng.integers(0, 4, (25, 6)).astype(float)
    y[rng.random(y.shape) < 0.15] = np.nan  # a model missing from a round of the rating board
    taus = kendall_tau_b_rounds(x, y)
    for k in range(25):
        keep = ~np.isnan(y[k])
        expected = kendall_tau_between(dict(enumerate(x[k][keep])), dict(enumerate(y[k][keep])))
        if expected is None:
            assert np.isnan(taus[k])
        else:
            assert taus[k] == pytest.approx(expected, abs=1e-12)


def test_kendall_tau_interval_pairs_round_k_with_round_k():
    # Bradley-Terry always orders a > b > c; the rating board's four rounds order them so that
    # round by round tau is 1, 1/3, -1/3, 1 (by hand). Pairing by round, not across rounds.
    bt = np.tile([3.0, 2.0, 1.0], (4, 1))
    ratings = np.array([[9.0, 8, 7], [9, 7, 8], [8, 7, 9], [9, 8, 7]])
    ci = kendall_tau_ci(["a", "b", "c"], bt, ["a", "b", "c"], ratings)
    assert ci == pytest.approx(np.percentile([1, 1 / 3, -1 / 3, 1], [2.5, 97.5]))
    # Models are matched by name, over the models both boards have.
    ci = kendall_tau_ci(["c", "b", "a"], bt[:, ::-1], ["a", "b", "c", "d"], np.column_stack([ratings, np.zeros(4)]))
    assert ci == pytest.approx(np.percentile([1, 1 / 3, -1 / 3, 1], [2.5, 97.5]))


def test_kendall_tau_interval_degenerate_cases():
    # The same ordering in every round: [v, v].
    same = np.tile([1.0, 2.0, 3.0], (50, 1))
    assert kendall_tau_ci(["a", "b", "c"], same, ["a", "b", "c"], same) == pytest.approx([1.0, 1.0])
    assert kendall_tau_ci(["a", "b", "c"], same, ["a", "b", "c"], -same) == pytest.approx([-1.0, -1.0])
    # No bootstrap, or fewer than two common models: no interval.
    assert kendall_tau_ci(["a", "b"], None, ["a", "b"], same[:, :2]) is None
    assert kendall_tau_ci(["a", "b"], same[:, :2], ["a", "x"], same[:, :2]) is None


def test_kendall_tau_interval_contains_the_point_and_is_seeded():
    rng = np.random.default_rng(0)
    strength = {"m0": 0.0, "m1": 0.6, "m2": 1.2, "m3": 1.8}
    names = list(strength)
    a, b = rng.integers(0, 4, 400), rng.integers(0, 4, 400)
    keep = a != b
    a, b = a[keep], b[keep]
    p_b = 1 / (1 + np.exp(np.array([strength[names[i]] - strength[names[j]] for i, j in zip(a, b, strict=True)])))
    comps = pd.DataFrame({"model_a": [names[i] for i in a], "model_b": [names[j] for j in b],
                          "verdict": np.where(rng.random(len(a)) < p_b, B, A)})  # fmt: skip
    means = np.array([[1.0, 1.5, 2.5, 2.0]]) + rng.normal(0, 0.4, (300, 4))  # rating order m0 < m1 < m3 < m2

    def ci(seed: int) -> np.ndarray | None:
        bt = bradley_terry(comps, rounds=300, seed=seed)
        return kendall_tau_ci(bt.models, bt.samples, names, means)

    bt = bradley_terry(comps, rounds=300, seed=1)
    point = kendall_tau_between(dict(zip(bt.models, bt.elo, strict=True)), dict(zip(names, [1.0, 1.5, 2.5, 2.0], strict=True)))
    assert point == pytest.approx(4 / 6)  # one discordant pair (m2, m3) of six
    lo, hi = ci(1)
    assert -1 <= lo <= point <= hi <= 1
    assert np.array_equal(ci(1), ci(1))


# --- bootstrap -----------------------------------------------------------------------------


def test_resampler_matches_naive_index_resampling():
    rng = np.random.default_rng(3)
    items = rng.integers(0, 40, 300)
    hits = rng.random(300) < 0.7
    boot = Resampler(n_units=40, rounds=300, seed=11)
    cols = np.column_stack([hits, np.ones(300)]).astype(float)
    per_unit = per_unit_sums(np.repeat(items, 2), np.tile([0, 1], 300), cols.ravel(), n_units=40, width=2)
    est = boot.estimate(per_unit, ratio, n=300)
    boot.run()
    # The same draws, resampled naively row by row.
    naive = []
    for start in range(0, 300, 100):
        w = boot.weights(start, min(start + 100, 300))
        for row in w:
            num = sum(row[i] * h for i, h in zip(items, hits, strict=True))
            den = sum(row[i] for i in items)
            naive.append(num / den)
    assert est.samples == pytest.approx(np.array(naive))
    assert est.value == pytest.approx(hits.mean())
    lo, hi = est.ci
    assert lo < est.value < hi


def test_bootstrap_is_seeded():
    def run(seed: int) -> np.ndarray:
        b = Resampler(n_units=10, rounds=50, seed=seed)
        e = b.estimate(per_unit_sums(np.arange(10), np.zeros(10), np.arange(10.0), n_units=10, width=1),
                       lambda s: s[..., 0], n=10)  # fmt: skip
        b.run()
        return e.samples

    assert np.array_equal(run(1), run(1))
    assert not np.array_equal(run(1), run(2))


def test_bradley_terry_flags_a_model_that_never_lost():
    import pandas as pd

    from reports.metrics.leaderboard import bradley_terry, mle_exists

    # m1 beats m2 and m3 every time; m2 and m3 split: no finite MLE for m1.
    comps = pd.DataFrame({
        "model_a": ["m1", "m1", "m2", "m3"], "model_b": ["m2", "m3", "m3", "m2"], "verdict": [0, 0, 0, 0],
    })
    bt = bradley_terry(comps, rounds=0, seed=0)
    assert not bt.identifiable and bt.never_lost == ["m1"] and bt.never_won == []
    assert list(bt.models[i] for i in bt.elo.argsort()[::-1])[0] == "m1"
    # A cycle of wins is strongly connected: the MLE exists (all equal here).
    cyc = pd.DataFrame({"model_a": ["m1", "m2", "m3"], "model_b": ["m2", "m3", "m1"], "verdict": [0, 0, 0]})
    bt = bradley_terry(cyc, rounds=0, seed=0)
    assert bt.identifiable and abs(bt.elo - 1000).max() < 1e-6
    import numpy as np

    assert mle_exists(np.array([[0, 1], [1, 0]])) and not mle_exists(np.array([[0, 1], [0, 0]]))


def test_both_orders_is_the_pivot_on_shown_order():
    """both_orders gives what pivot_table(first) + dropna gave: pairs seen in both orders, the
    verdict of each order's first annotation, sorted by pair (repeats and one-order pairs too)."""
    from annotate.verdicts import verdict_of
    from reports.metrics.verdicts import both_orders

    rng = np.random.default_rng(3)
    for _ in range(50):
        n = int(rng.integers(0, 40))
        pair = rng.integers(0, 12, n)
        prefs = pd.DataFrame({"pair": pair, "item": pair // 3, "strength": rng.integers(-3, 4, n),
                              "shown_order": pd.Categorical(rng.choice(["ab", "ba"], n), categories=["ab", "ba"])})  # fmt: skip
        got = both_orders(prefs)
        wide = prefs.assign(v=verdict_of(prefs["strength"])).pivot_table(
            index=["pair", "item"], columns="shown_order", values="v", aggfunc="first", observed=False
        )
        want = wide.reindex(columns=["ab", "ba"]).dropna().astype(np.int64).reset_index()
        assert got[["pair", "item", "ab", "ba"]].to_numpy().tolist() == want[["pair", "item", "ab", "ba"]].to_numpy().tolist()


# --- The nested draw (bootstrap.nested_weights) ------------------------------------------------


def _draws(n: int, rounds: int, seed: int, block: int) -> np.ndarray:
    counts = bootstrap.block_counts(n, seed, rounds, block)
    return bootstrap.nested_weights(n, seed, 0, rounds, counts, block).astype(int)


@pytest.mark.parametrize(("n", "block"), [(5, 2), (6, 4), (4, 4), (3, 16384)])
def test_nested_draw_is_the_multinomial_of_n_items_with_replacement(n, block):
    # Every multiplicity vector of n draws over n items, counted over many rounds, against its
    # multinomial probability (chi-square; blocks of 2 and 4 items make every step matter: the
    # binomial block counts, the full blocks' picks, a partial block's picks below its size).
    rounds = 6000
    w = _draws(n, rounds, seed=3, block=block)
    assert (w.sum(axis=1) == n).all() and (w >= 0).all()
    seen = {tuple(row): 0 for row in w}
    for row in map(tuple, w):
        seen[row] += 1
    outcomes = [c for c in itertools.product(range(n + 1), repeat=n) if sum(c) == n]
    expected = np.array([stats.multinomial.pmf(c, n, [1 / n] * n) for c in outcomes]) * rounds
    observed = np.array([seen.get(c, 0) for c in outcomes])
    assert observed.sum() == rounds  # no vector outside the outcomes
    assert stats.chisquare(observed, expected).pvalue > 1e-3


def test_nested_draw_is_seeded_and_drawn_round_by_round():
    boot = Resampler(n_units=50, rounds=40, seed=7)
    whole = boot.weights(0, 40)
    # Any chunk of rounds alone is those rounds of the whole draw: each round has its own stream.
    assert np.array_equal(Resampler(n_units=50, rounds=40, seed=7).weights(13, 29), whole[13:29])
    assert not np.array_equal(Resampler(n_units=50, rounds=40, seed=8).weights(0, 40), whole)


def test_the_draw_for_more_items_moves_few_multiplicities_of_the_old_ones():
    # 1,000 items in blocks of 64, then 20 more: beside the new items' columns, a round's old
    # multiplicities change where a block count moved by a draw or two, and in the partial block
    # where the new items take a share of its picks; a plain draw would change most of them.
    n, k, block = 1000, 20, 64
    before, after = _draws(n, 300, 2, block), _draws(n + k, 300, 2, block)
    changed = (after[:, :n] != before).sum(axis=1)
    assert np.median(changed) < 0.05 * n
    rng = np.random.default_rng(2)
    plain = [np.bincount(rng.integers(0, m, m), minlength=m)[:n] for m in (n, n + k)]
    assert (plain[0] != plain[1]).sum() > 0.5 * n


def test_a_blocks_picks_are_the_low_bits_of_its_stream():
    # A block's picks are its stream's 16-bit values cut to the block's bits, in order; a
    # partial block takes those below its size, however many words it reads at a time.
    words = np.random.PCG64(np.random.SeedSequence([1, 2, 1, 0])).random_raw(500)
    values = np.asarray(words, dtype="<u8").view("<u2") % 64
    assert np.array_equal(bootstrap._picks(1, 2, 0, 100, 64, 64), values[:100])
    assert np.array_equal(bootstrap._picks(1, 2, 0, 40, 50, 64), values[values < 50][:40])
    # One item in a block of 16,384 slots: about as many values read as picks need, often fewer
    # (the stream is then read on); each pick is that one item, and there are as many as asked.
    for seed in range(5):
        assert np.array_equal(bootstrap._picks(seed, 0, 0, 5, 1, 16384), np.zeros(5))


def test_kendall_rounds_take_scores_equal_up_to_rounding_as_tied():
    # 0.1 + 0.2 and 0.3 are one score summed in two orders: a tie, as the exact sums are.
    x = np.array([[0.1 + 0.2, 0.3, 0.5]])
    y = np.array([[1.0, 2.0, 3.0]])
    exact = stats.kendalltau([0.3, 0.3, 0.5], [1.0, 2.0, 3.0], variant="b").statistic
    assert leaderboard.kendall_tau_b_rounds(x, y)[0] == pytest.approx(exact)
    assert leaderboard.kendall_tau_b_rounds(np.array([[0.3, 0.3 + 1e-9, 0.5]]), y)[0] == pytest.approx(1.0)
