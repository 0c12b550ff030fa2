"""The judge report card's and the style-controlled leaderboard's figures (issue 14): hand-computed
cases, and equality with scikit-learn where it has the same estimator."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import cohen_kappa_score, f1_score

from reports.build import ReportOptions, report_from_table
from reports.cards import CARD_RATES, CardInputs
from reports.metrics.bootstrap import Resampler
from reports.metrics.judge_card import (
    against_gold,
    human_reference,
    mean_valid_mass,
    preference_fairness,
    preference_fairness_score,
    repetition_stability,
    throughput,
)
from reports.metrics.leaderboard import bradley_terry
from reports.metrics.style import (
    ELO_PER_LOGIT,
    STYLE_FEATURES,
    length_controlled_win_rates,
    markdown_counts,
    standardise,
    style_controlled_bt,
    style_differences,
)
from reports.metrics.verdicts import TIE, A, B, combine_orders

NO_BOOT = Resampler(n_units=100, rounds=0)


def _prefs(rows: list[tuple]) -> pd.DataFrame:
    """rows: (rater, pair, strength, shown_order)."""
    df = pd.DataFrame(rows, columns=["rater", "pair", "strength", "shown_order"])
    df["item"] = df["pair"]
    df["kind"] = df["rater"].str.split(":").str[0]
    df["order"] = np.arange(len(df))
    return df


# --- agreement with gold ---------------------------------------------------------------------


def test_accuracy_kappa_and_macro_f1_against_gold_equal_scikit_learn():
    gold = pd.DataFrame({"pair": range(8), "item": range(8), "gold": [A, A, A, TIE, B, B, B, A]})
    judge = pd.DataFrame({"pair": range(9), "verdict": [A, A, B, TIE, B, TIE, B, B, A]})  # pair 8: no gold
    card = against_gold(judge, gold, NO_BOOT)
    accuracy, kappa, f1 = card.estimate.value
    g, j = gold["gold"].to_numpy(), judge["verdict"].to_numpy()[:8]
    assert card.n == 8
    assert accuracy == pytest.approx(5 / 8)
    assert kappa == pytest.approx(cohen_kappa_score(g, j))
    assert f1 == pytest.approx(f1_score(g, j, average="macro", zero_division=0))
    # By hand: observed 5/8; marginals gold (4, 1, 3), judge (2, 2, 4): expected (8 + 2 + 12) / 64.
    assert kappa == pytest.approx((5 / 8 - 22 / 64) / (1 - 22 / 64))


def test_each_human_is_scored_against_the_other_humans_gold():
    # Pair 0: a=A, b=A, c=B; pair 1: a=B, b=A, c=A (the others' gold for a is A: a is wrong).
    rows = [("human:a", 0, -1, "ab"), ("human:b", 0, -2, "ab"), ("human:c", 0, 1, "ab"),
            ("human:a", 1, 1, "ab"), ("human:b", 1, -1, "ab"), ("human:c", 1, -1, "ab")]  # fmt: skip
    v = combine_orders(_prefs(rows))
    ref = human_reference(v, NO_BOOT)
    # a vs {b, c}: pair 0: b=A, c=B is a 1-1 tie in counts, the earliest (b) wins: A; a right.
    # pair 1: b=A, c=A: gold A; a said B: wrong. a: 1/2.
    assert ref["human:a"].estimate.value[0] == pytest.approx(0.5)
    # b vs {a, c}: pair 0: a=A (earliest) vs c=B: A, right; pair 1: a=B earliest vs c=A: B, wrong.
    assert ref["human:b"].estimate.value[0] == pytest.approx(0.5)
    # c vs {a, b}: pair 0: A (both), c=B wrong; pair 1: a=B earliest vs b=A: B; c=A wrong.
    assert ref["human:c"].estimate.value[0] == pytest.approx(0.0)


# --- preference fairness (Shi et al.) --------------------------------------------------------


def test_preference_fairness_counts_primacy_and_recency_pairs():
    rows = []
    # (ab verdict, ba verdict) in stored order; shown first: A in ab, B in ba.
    cases = [(A, B), (A, B), (A, B),  # primacy-preferred: the first shown both times
             (B, A),                  # recency-preferred
             (A, A), (B, B),          # consistent
             (A, TIE)]                # inconsistent only through a tie: neither
    for pair, (x, y) in enumerate(cases):
        rows += [("judge:j", pair, x - 1, "ab"), ("judge:j", pair, y - 1, "ba")]
    pf = preference_fairness(_prefs(rows), NO_BOOT)
    assert (pf.n, pf.primacy, pf.recency) == (7, 3, 1)
    assert pf.estimate.value == pytest.approx((1 - 3) / (1 + 3))
    # The paper's form, PF_raw = rc * irr - pc * ipr min-max scaled, is the same number.
    assert preference_fairness_score(1, 3, 7) == pytest.approx(-0.5)
    assert preference_fairness_score(4, 0, 9) == pytest.approx(1.0)
    assert preference_fairness_score(0, 0, 5) == 0.0


def test_preference_fairness_of_a_consistent_judge_is_zero():
    rows = [("judge:j", 0, -1, "ab"), ("judge:j", 0, -1, "ba"), ("judge:j", 1, 2, "ab"), ("judge:j", 1, 1, "ba")]
    assert preference_fairness(_prefs(rows), NO_BOOT).estimate.value == 0.0


def test_preference_fairness_needs_both_orders():
    assert preference_fairness(_prefs([("judge:j", 0, -1, "ab")]), NO_BOOT).estimate is None


# --- repetition stability ---------------------------------------------------------------------


def test_repetition_stability_is_the_mean_share_of_the_modal_verdict():
    trials = pd.DataFrame({
        "unit": ["p1ab", "p1ab", "p1ab", "p2ba", "p2ba", "p3ab"],
        "item": [0, 0, 0, 1, 1, 2],
        "verdict": ["A", "A", "B", "C", "C", "A"],  # p3ab was judged once: not counted
    })  # fmt: skip
    rep = repetition_stability(trials, NO_BOOT, temperature=0.7)
    assert rep.n == 2 and not rep.greedy
    assert rep.estimate.value == pytest.approx((2 / 3 + 1) / 2)


def test_repetition_stability_of_a_greedy_judge_never_repeated_is_one_by_construction():
    once = pd.DataFrame({"unit": ["p1ab"], "item": [0], "verdict": ["A"]})
    greedy = repetition_stability(once, NO_BOOT, temperature=0.0)
    assert greedy.greedy and greedy.value == 1.0 and greedy.estimate is None
    sampled = repetition_stability(once, NO_BOOT, temperature=1.0)
    assert sampled.value is None  # sampled and never repeated: unknown, not 1


# --- valid mass and throughput ------------------------------------------------------------------


def test_valid_mass_is_the_mean_over_judgments_that_have_one():
    j = pd.DataFrame({"item": [0, 1, 1], "valid_mass": [0.9, 0.5, np.nan]})
    est = mean_valid_mass(j, NO_BOOT)
    assert est.n == 2 and est.value == pytest.approx(0.7)


def test_throughput_is_judgments_over_the_runs_working_time():
    runs = pd.DataFrame({"done": [6, 4], "begin": pd.to_datetime(["2025-01-01 00:00:00", "2025-01-01 01:00:00"]),
                         "end": pd.to_datetime(["2025-01-01 00:00:03", "2025-01-01 01:00:02"])})  # fmt: skip
    j = pd.DataFrame({"latency_ms": [100.0, 300.0], "size": [1000.0, 3000.0]})
    t = throughput(j, runs)
    assert t.judgments == 10 and t.seconds == 5.0 and t.per_second == 2.0
    assert t.latency_ms == 200.0 and t.prompt_chars == 2000.0


# --- style control (Chatbot Arena) ----------------------------------------------------------------


def test_markdown_counts_by_hand():
    text = "# Title\n\nSome **bold** and __more__.\n\n- one\n- two\n1. three\n## Sub\n#not a header"
    assert markdown_counts(text) == {"length": len(text), "headers": 2, "list_items": 3, "bold": 2}


def test_style_differences_and_standardisation():
    d = style_differences(np.array([[3, 0], [1, 0]]), np.array([[1, 0], [3, 0]]))
    assert d.tolist() == [[0.5, 0.0], [-0.5, 0.0]]
    z, keep = standardise(d)
    assert keep.tolist() == [True, False]  # the second feature never varies: dropped
    assert z[:, 0].tolist() == [1.0, -1.0]


def _comparisons(seed: int, n: int = 400) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    models = np.array(["m0", "m1", "m2", "m3"])
    strength = np.array([0.8, 0.3, 0.0, -0.6])
    ia = rng.integers(0, 4, n)
    ib = (ia + rng.integers(1, 4, n)) % 4
    styles = pd.DataFrame({"response": np.arange(2 * n), "length": rng.integers(50, 2000, 2 * n),
                           "headers": rng.integers(0, 4, 2 * n), "list_items": rng.integers(0, 8, 2 * n),
                           "bold": rng.integers(0, 3, 2 * n)})  # fmt: skip
    la, lb = styles["length"].to_numpy()[0::2], styles["length"].to_numpy()[1::2]
    logit = strength[ia] - strength[ib] + 0.8 * (la - lb) / (la + lb)
    u = rng.random(n)
    p = 1 / (1 + np.exp(-logit))
    verdict = np.where(u < p * 0.9, A, np.where(u < p * 0.9 + 0.1, TIE, B))
    comps = pd.DataFrame({"model_a": models[ia], "model_b": models[ib], "verdict": verdict,
                          "response_a": np.arange(n) * 2, "response_b": np.arange(n) * 2 + 1,
                          "len_a": la, "len_b": lb})  # fmt: skip
    return comps, styles


def _sklearn_design(comps: pd.DataFrame, styles: pd.DataFrame, control: bool) -> tuple[np.ndarray, ...]:
    """The same model written out for scikit-learn: indicators (first model dropped), style
    z-scores, ties as two half-weight rows."""
    models = sorted(set(comps["model_a"]) | set(comps["model_b"]))
    x = np.zeros((len(comps), len(models)))
    x[np.arange(len(comps)), comps["model_a"].map(models.index)] += 1
    x[np.arange(len(comps)), comps["model_b"].map(models.index)] -= 1
    x = x[:, 1:]
    if control:
        s = styles.set_index("response")[list(STYLE_FEATURES)]
        fa, fb = s.loc[comps["response_a"]].to_numpy(float), s.loc[comps["response_b"]].to_numpy(float)
        with np.errstate(invalid="ignore"):
            d = np.nan_to_num((fa - fb) / (fa + fb))
        x = np.column_stack([x, (d - d.mean(0)) / d.std(0)])
    v = comps["verdict"].to_numpy()
    tie = v == TIE
    xs = np.vstack([x, x[tie]])
    ys = np.concatenate([(v != B).astype(int), np.zeros(tie.sum(), int)])
    ws = np.concatenate([np.where(tie, 0.5, 1.0), np.full(tie.sum(), 0.5)])
    return xs, ys, ws


@pytest.mark.parametrize("control", [False, True])
def test_style_controlled_bradley_terry_equals_scikit_learn_unpenalised(control):
    comps, styles = _comparisons(seed=3)
    board = style_controlled_bt(comps, styles, control=control)
    xs, ys, ws = _sklearn_design(comps, styles, control)
    ref = LogisticRegression(C=np.inf, fit_intercept=False, tol=1e-12, max_iter=10_000).fit(xs, ys, sample_weight=ws)
    beta = np.concatenate([[0.0], ref.coef_[0][:3]])
    expected = 1000 + ELO_PER_LOGIT * (beta - beta.mean())
    assert board.elo == pytest.approx(expected, abs=1e-3)
    if control:
        assert board.features == list(STYLE_FEATURES)
        assert [board.coefficients[f] for f in STYLE_FEATURES] == pytest.approx(ref.coef_[0][3:], abs=1e-5)
        assert board.coefficients["length"] > 0  # the simulated judge likes length


def test_plain_fit_equals_the_report_bradley_terry_board():
    comps, styles = _comparisons(seed=5)
    plain = style_controlled_bt(comps, styles, control=False)
    mm = bradley_terry(comps[["model_a", "model_b", "verdict"]], rounds=0, seed=0)
    assert plain.elo == pytest.approx(mm.elo, abs=1e-4)


def test_two_model_wald_interval_by_hand():
    # m0 beat m1 30 times in 40: beta = logit(0.75), var = 1 / (n p (1 - p)); each model's
    # centred Elo is +-beta / 2 on the Elo scale.
    comps = pd.DataFrame({"model_a": ["m0"] * 40, "model_b": ["m1"] * 40, "verdict": [A] * 30 + [B] * 10,
                          "response_a": 0, "response_b": 1})  # fmt: skip
    board = style_controlled_bt(comps, pd.DataFrame(columns=["response", *STYLE_FEATURES]), control=False)
    beta = math.log(3)
    se = math.sqrt(1 / (40 * 0.75 * 0.25))
    assert board.elo[0] == pytest.approx(1000 + ELO_PER_LOGIT * beta / 2)
    assert board.ci[1, 0] - board.elo[0] == pytest.approx(1.959963984540054 * ELO_PER_LOGIT * se / 2)


# --- length-controlled win rate (AlpacaEval 2) ---------------------------------------------------


def test_length_controlled_win_rate_equals_scikit_learn():
    comps, _ = _comparisons(seed=7)
    rows = {r.model: r for r in length_controlled_win_rates(comps)}
    delta = (comps["len_a"] - comps["len_b"]).to_numpy(float)
    sd = delta.std()
    for model in ("m0", "m3"):
        as_a = (comps["model_a"] == model).to_numpy()
        sel = as_a | (comps["model_b"] == model).to_numpy()
        d = np.where(as_a, delta, -delta)[sel]
        v = comps["verdict"].to_numpy()
        own = np.where(as_a, v, 2 - v)[sel]
        tie = own == TIE
        x = np.tanh(d / sd)[:, None]
        xs = np.vstack([x, x[tie]])
        ys = np.concatenate([(own != B).astype(int), np.zeros(tie.sum(), int)])
        ws = np.concatenate([np.where(tie, 0.5, 1.0), np.full(tie.sum(), 0.5)])
        ref = LogisticRegression(C=np.inf, tol=1e-12, max_iter=10_000).fit(xs, ys, sample_weight=ws)
        assert rows[model].lc_win_rate == pytest.approx(1 / (1 + math.exp(-ref.intercept_[0])), abs=1e-6)
        assert rows[model].length_coefficient == pytest.approx(ref.coef_[0][0], abs=1e-5)
        raw = np.mean(np.where(tie, 0.5, (own == A).astype(float)))
        assert rows[model].win_rate == pytest.approx(raw)


def test_length_controlled_win_rate_at_equal_lengths_is_the_raw_rate():
    comps = pd.DataFrame({"model_a": ["x"] * 4 + ["y"] * 2, "model_b": ["y"] * 4 + ["x"] * 2,
                          "verdict": [A, A, B, TIE, B, A], "len_a": 100, "len_b": 100})  # fmt: skip
    x = {r.model: r for r in length_controlled_win_rates(comps)}["x"]
    # x's games: W W L T (as A), W L (as B): 3.5 / 6.
    assert x.win_rate == pytest.approx(3.5 / 6)
    assert x.lc_win_rate == pytest.approx(3.5 / 6)
    assert x.length_coefficient is None  # no length difference to control for


# --- the report's keys ------------------------------------------------------------------------------


def test_report_has_judge_cards_evaluators_and_style_controlled_boards():
    from bench.reports import synthetic_table

    table = synthetic_table(120)
    responses = np.arange(240)
    styles = pd.DataFrame({"response": responses, "length": 100 + responses, "headers": responses % 3,
                           "list_items": responses % 4, "bold": (responses // 2) % 2})  # fmt: skip
    report = report_from_table(table, ReportOptions(rounds=50), CardInputs(styles=styles))
    cards = {c["judge"]: c for c in report["judge_cards"]}
    assert set(cards) == {"judge:m0-judge", "judge:positional", "judge:verbose", "judge:plain"}
    for card in cards.values():
        for key in ("judge", "n", "accuracy", "kappa", "position_consistency", "preference_fairness",
                    "length_preference", "valid_mass"):
            assert key in card
        for key in CARD_RATES:
            assert f"{key}_ci" in card
        assert card["repetition_stability"] == 1.0 and card["repetition_greedy"]
    # The positional judge picks the first shown a quarter of the time: its fairness leans primacy.
    assert cards["judge:positional"]["preference_fairness"] < cards["judge:plain"]["preference_fairness"]
    assert cards["judge:verbose"]["length_preference"] > cards["judge:verbose"]["human_length_preference"]
    assert cards["judge:m0-judge"]["self_preference"]["n"] > 0
    # Judge vs gold agrees with the report's own judge_vs_gold section.
    jvg = {r["judge"]: r for r in report["judge_vs_gold"]}
    assert cards["judge:plain"]["accuracy"] == pytest.approx(jvg["judge:plain"]["accuracy"])
    assert cards["judge:plain"]["macro_f1"] == pytest.approx(jvg["judge:plain"]["macro_f1"])
    refs = {r["rater"]: r for r in report["evaluators"]["human_reference"]}
    assert "humans (each vs the others)" in refs
    board = report["leaderboard"]["humans"]["style_controlled"]
    assert {r["model"] for r in board["models"]} == {f"m{k}" for k in range(8)}
    assert -1 <= board["kendall_tau"] <= 1
    assert board["length_controlled"]


def test_style_board_of_a_model_that_never_lost_is_finite_and_flagged():
    comps = pd.DataFrame({"model_a": ["m0", "m0", "m1", "m1"], "model_b": ["m1", "m2", "m2", "m2"],
                          "verdict": [A, A, A, B], "response_a": [0, 2, 4, 6], "response_b": [1, 3, 5, 7]})  # fmt: skip
    styles = pd.DataFrame({"response": range(8), "length": [10, 20, 30, 40, 50, 60, 70, 80], "headers": 0,
                           "list_items": [1, 0, 1, 0, 0, 1, 0, 1], "bold": 0})  # fmt: skip
    board = style_controlled_bt(comps, styles)
    assert not board.identifiable
    assert np.isfinite(board.elo).all() and np.isfinite(board.ci).all()
    # Four comparisons and two covariates leave style free to explain them; the plain fit keeps
    # the never-beaten model on top.
    plain = style_controlled_bt(comps, styles, control=False)
    assert not plain.identifiable and np.isfinite(plain.elo).all()
    assert plain.models[int(np.argmax(plain.elo))] == "m0"


def test_a_style_covariate_that_repeats_the_model_indicators_is_dropped():
    # m0's responses always have one list item, m1's none: the list difference is m0's indicator.
    comps = pd.DataFrame({"model_a": ["m0", "m1"] * 6, "model_b": ["m1", "m0"] * 6, "verdict": [A, B, B, A] * 3,
                          "response_a": range(0, 24, 2), "response_b": range(1, 24, 2)})  # fmt: skip
    resp = np.arange(24)
    model_of = np.where((resp % 2 == 0) == (resp // 2 % 2 == 0), "m0", "m1")
    styles = pd.DataFrame({"response": resp, "length": 100 + (resp * 7) % 13, "headers": 0,
                           "list_items": (model_of == "m0").astype(int), "bold": 0})  # fmt: skip
    board = style_controlled_bt(comps, styles)
    assert "list_items" not in board.features and "length" in board.features
