"""The judge bias audit: position, self-preference, calibration and length.

All functions take combined or per-order verdicts (see verdicts.py) and the gold table, and
register their per-item sums with the report's Resampler so each figure gets its interval.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from judges.calibration import bin_index

from .bootstrap import Estimate, Resampler, per_unit_sums, ratio
from .memo import memoised
from .verdicts import TIE, A, B, both_orders, gold_at, verdict_of, win_score


def _ratios(sums: np.ndarray) -> np.ndarray:
    """Columns (num_0, den_0, num_1, den_1, ...) -> the rates num_i / den_i."""
    with np.errstate(all="ignore"):
        return sums[..., 0::2] / sums[..., 1::2]


def _register(boot: Resampler, item: np.ndarray, cols: np.ndarray, statistic, n: int) -> Estimate:
    """cols: (rows, w) per-row contributions, summed per item."""
    width = cols.shape[1]
    units = np.repeat(item, width)
    col_idx = np.tile(np.arange(width), len(item))
    per_unit = per_unit_sums(units, col_idx, cols.ravel(), n_units=boot.n_units, width=width)
    return boot.estimate(per_unit, statistic, n=n)


# --- Position bias (Zheng et al., 2023, MT-Bench; Wang et al., 2023, "LLMs are not fair evaluators")


@dataclass
class Position:
    n: int
    estimate: Estimate | None  # rates: consistency, first_position_rate, agreement_both_orders
    first_shown_win_rate: Estimate | None = None  # raters who saw one order per pair
    n_inconsistent: int = 0  # the first-position rate's denominator
    n_gold: int = 0  # agreement with both orders: pairs with a gold verdict


@memoised
def position_both_orders(prefs: pd.DataFrame, gold: pd.DataFrame, boot: Resampler) -> Position:
    """prefs: one rater's per-order rows (pair, item, strength, shown_order), in stored order."""
    wide = both_orders(prefs)
    if wide.empty:
        return Position(n=0, estimate=None)
    at, g = gold_at(wide["pair"], gold)  # g: -1 where the pair has no gold
    ab, ba = wide["ab"].to_numpy(), wide["ba"].to_numpy()
    agree = ab == ba
    # Shown first: A in the ab order, B in the ba order (verdicts are mapped to stored order).
    first_both = (ab == A) & (ba == B)
    has_gold = at >= 0
    both_gold = has_gold & (ab == g) & (ba == g)
    cols = np.column_stack([agree, np.ones(len(wide)), first_both, ~agree, both_gold, has_gold]).astype(float)
    est = _register(boot, wide["item"].to_numpy(), cols, _ratios, n=len(wide))
    return Position(n=len(wide), estimate=est, n_inconsistent=int((~agree).sum()), n_gold=int(has_gold.sum()))


@memoised
def first_shown_win_rate(prefs: pd.DataFrame, boot: Resampler) -> Position:
    """Share of non-tied verdicts won by the response shown first (0.5 = no position bias)."""
    v = verdict_of(prefs["strength"])
    decided = v != TIE
    first = np.where(prefs["shown_order"].to_numpy() == "ab", A, B)
    won = (v == first)[decided]
    cols = np.column_stack([won, np.ones(len(won))]).astype(float)
    n = int(decided.sum())
    if n == 0:
        return Position(n=0, estimate=None)
    est = _register(boot, prefs["item"].to_numpy()[decided], cols, ratio, n=n)
    return Position(n=n, estimate=None, first_shown_win_rate=est)


# --- Self-preference ("Beyond the Surface: Measuring Self-Preference in LLM Judgments") -----


@dataclass
class SelfPreference:
    n: int
    n_gold: int
    estimate: Estimate | None  # raw_win_rate, gold_win_rate, dbg, equal_opportunity_gap


def _self_pref_stat(s: np.ndarray) -> np.ndarray:
    with np.errstate(all="ignore"):
        raw = s[..., 0] / s[..., 1]
        judge_on_gold = s[..., 2] / s[..., 4]
        gold = s[..., 3] / s[..., 4]
        eo = s[..., 5] / s[..., 6] - s[..., 7] / s[..., 8]
        return np.stack([raw, gold, judge_on_gold - gold, eo], axis=-1)


@memoised
def self_preference(verdicts: pd.DataFrame, gold: pd.DataFrame, model: str, boot: Resampler) -> SelfPreference:
    """verdicts: the judge's combined verdicts with model_a, model_b; model: the model it is."""
    own_a = (verdicts["model_a"] == model) & (verdicts["model_b"] != model)
    own_b = (verdicts["model_b"] == model) & (verdicts["model_a"] != model)
    v = verdicts.loc[(own_a | own_b).to_numpy()]
    if v.empty:
        return SelfPreference(n=0, n_gold=0, estimate=None)
    own = np.where(v["model_a"].to_numpy() == model, A, B)
    other = 2 - own
    j = v["verdict"].to_numpy()
    at, g = gold_at(v["pair"], gold)
    has_gold = at >= 0
    g = np.where(has_gold, g, TIE)
    wj = win_score(j, own)
    gold_own = has_gold & (g == own)
    gold_other = has_gold & (g == other)
    cols = np.column_stack(
        [
            wj,
            np.ones(len(v)),
            wj * has_gold,
            win_score(g, own) * has_gold,
            has_gold,
            # Equal opportunity (Hardt et al., 2016) applied to verdicts: the judge's "true
            # positive rate" for its own responses minus that for the others', on non-tied gold.
            (j == own) & gold_own,
            gold_own,
            (j == other) & gold_other,
            gold_other,
        ]
    ).astype(float)
    est = _register(boot, v["item"].to_numpy(), cols, _self_pref_stat, n=len(v))
    return SelfPreference(n=len(v), n_gold=int(has_gold.sum()), estimate=est)


@memoised
def rating_self_preference(human: pd.DataFrame, judge: pd.DataFrame, model: str) -> dict[str, float | None]:
    """Rating form, per attribute: mean(J - gold mean) over own responses minus the same over
    other models' responses. human: the humans' ratings, judge: the judge's (response, model,
    attribute, value)."""
    gold_mean = human.groupby(["response", "attribute"], observed=True)["value"].mean().rename("gold")
    j = judge.join(gold_mean, on=["response", "attribute"]).dropna(subset=["gold"])
    out: dict[str, float | None] = {}
    for attribute, grp in j.groupby("attribute", observed=True):
        diff = grp["value"] - grp["gold"]
        is_own = (grp["model"] == model).to_numpy()
        if is_own.any() and (~is_own).any():
            out[str(attribute)] = float(diff[is_own].mean() - diff[~is_own].mean())
        else:
            out[str(attribute)] = None
    return out


# --- Calibration (Guo et al., 2017, "On Calibration of Modern Neural Networks") ------------

N_BINS = 10


@dataclass
class Calibration:
    n: int
    ece: Estimate | None
    bins: list[dict]  # {"lo", "hi", "n", "confidence", "accuracy"}


def _ece(s: np.ndarray) -> np.ndarray:
    count, conf, correct = s[..., 0::3], s[..., 1::3], s[..., 2::3]
    with np.errstate(all="ignore"):
        return np.abs(conf - correct).sum(axis=-1) / count.sum(axis=-1)


@memoised
def calibration(prefs: pd.DataFrame, gold: pd.DataFrame, boot: Resampler) -> Calibration:
    """prefs: one judge's per-order rows with p_a, p_b (stored order) and pair, item."""
    p = prefs.dropna(subset=["p_a", "p_b"])
    with np.errstate(all="ignore"):
        p = p.assign(p_b_norm=p["p_b"] / (p["p_a"] + p["p_b"]))
    per_pair = p.groupby(["pair", "item"], observed=True)["p_b_norm"].mean().dropna().reset_index()
    at, g = gold_at(per_pair["pair"], gold)
    keep = (at >= 0) & (g != TIE)
    m = per_pair[keep].assign(gold=g[keep])
    if m.empty:
        return Calibration(n=0, ece=None, bins=[])
    pb = m["p_b_norm"].to_numpy()
    pick = np.where(pb > 0.5, B, A)
    conf = np.maximum(pb, 1 - pb)
    correct = (pick == m["gold"].to_numpy()).astype(float)
    # Ten equal-width bins over [0.5, 1]: the one binning rule, judges.calibration's.
    b = bin_index(conf, bins=N_BINS, lo=0.5, hi=1.0)
    units = np.repeat(m["item"].to_numpy(), 3)
    col = (b[:, None] * 3 + np.arange(3)[None, :]).ravel()
    vals = np.column_stack([np.ones(len(m)), conf, correct]).ravel()
    per_unit = per_unit_sums(units, col, vals, n_units=boot.n_units, width=3 * N_BINS)
    est = boot.estimate(per_unit, _ece, n=len(m))
    bins = []
    for k in range(N_BINS):
        sel = b == k
        bins.append(
            {
                "lo": 0.5 + k * 0.05,
                "hi": 0.5 + (k + 1) * 0.05,
                "n": int(sel.sum()),
                "confidence": float(conf[sel].mean()) if sel.any() else None,
                "accuracy": float(correct[sel].mean()) if sel.any() else None,
            }
        )
    return Calibration(n=len(m), ece=est, bins=bins)


# --- Length bias (Dubois et al., 2024, length-controlled AlpacaEval; WildBench) -------------


@dataclass
class LengthBias:
    n: int
    n_gold: int
    estimate: Estimate | None  # longer_wins_rate, gold_longer_wins_rate


@memoised
def length_bias(verdicts: pd.DataFrame, gold: pd.DataFrame, boot: Resampler) -> LengthBias:
    """Among a rater's non-tied verdicts on pairs of unequal length, the share the longer
    response won; beside it, gold's share on the same pairs (its non-tied verdicts)."""
    v = verdicts[(verdicts["len_a"] != verdicts["len_b"]).to_numpy()]
    longer = np.where(v["len_a"].to_numpy() > v["len_b"].to_numpy(), A, B)
    j = v["verdict"].to_numpy()
    at, g = gold_at(v["pair"], gold)
    g = np.where(at >= 0, g, TIE)
    decided, gold_decided = j != TIE, g != TIE
    if not decided.any():
        return LengthBias(n=0, n_gold=0, estimate=None)
    cols = np.column_stack([(j == longer) & decided, decided, (g == longer) & gold_decided, gold_decided])
    est = _register(boot, v["item"].to_numpy(), cols.astype(float), _ratios, n=int(decided.sum()))
    return LengthBias(n=int(decided.sum()), n_gold=int(gold_decided.sum()), estimate=est)
