"""From stored preferences to one verdict per rater and pair, and to gold.

Codes: 0 = A better, 1 = tie, 2 = B better (A and B in the pair's stored order), so that
sign(strength) + 1 is the verdict and the 3x3 confusion matrices read A / tie / B.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

A, TIE, B = 0, 1, 2
VERDICT_LABELS = ("A", "tie", "B")


def verdict_of(strength: np.ndarray | pd.Series) -> np.ndarray:
    return np.sign(np.asarray(strength, dtype=np.int64)) + 1


def apply_wildbench_rule(prefs: pd.DataFrame, k: int) -> pd.DataFrame:
    """WildBench (Lin et al., 2024): a slight win (|s| = 1) of a response longer than the loser
    by more than K characters counts as a tie, to discount the judges' taste for length."""
    s = prefs["strength"].to_numpy()
    winner_longer = np.where(s < 0, prefs["len_a"] - prefs["len_b"], prefs["len_b"] - prefs["len_a"])
    out = prefs.copy()
    out.loc[(np.abs(s) == 1) & (winner_longer > k), "strength"] = 0
    return out


def combine_orders(prefs: pd.DataFrame) -> pd.DataFrame:
    """One verdict per (rater, pair): the verdict both shown orders agree on, else tie.

    MT-Bench (Zheng et al., 2023) counts a verdict that flips with the order as a tie. The
    combined strength keeps the agreed sign with the smaller magnitude (the more cautious call).
    Columns kept: every pair-level column of `prefs` plus verdict, strength, order (earliest).
    """
    p = prefs.assign(verdict=verdict_of(prefs["strength"]), mag=np.abs(prefs["strength"].to_numpy()))
    g = p.groupby(["rater", "pair"], sort=False, observed=True)
    agg = g.agg(
        vmin=("verdict", "min"), vmax=("verdict", "max"), mag=("mag", "min"), order=("order", "min")
    )
    first = p.drop_duplicates(["rater", "pair"]).set_index(["rater", "pair"])
    pair_cols = [c for c in ("kind", "item", "model_a", "model_b", "len_a", "len_b") if c in p.columns]
    out = first[pair_cols].join(agg)
    agreed = (out["vmin"] == out["vmax"]).to_numpy()
    verdict = np.where(agreed, out["vmin"].to_numpy(), TIE)
    out["verdict"] = verdict
    out["strength"] = np.where(verdict == TIE, 0, (verdict - 1) * out["mag"].to_numpy())
    return out.drop(columns=["vmin", "vmax", "mag"]).reset_index()


def gold_verdicts(human: pd.DataFrame) -> pd.DataFrame:
    """Majority verdict of the human raters of each pair; a tie between verdict counts falls to
    the earliest annotation among the tied verdicts (METRICS.md, Gold).

    `human`: combined verdicts with columns pair, item, verdict, order. Returns pair, item, gold.
    """
    if human.empty:
        return pd.DataFrame({"pair": [], "item": [], "gold": []}, dtype=np.int64)
    pair_codes, pairs = pd.factorize(human["pair"])
    v = human["verdict"].to_numpy()
    counts = np.bincount(pair_codes * 3 + v, minlength=len(pairs) * 3).reshape(-1, 3)
    tied_top = counts == counts.max(axis=1, keepdims=True)
    candidate = tied_top[pair_codes, v]
    cand = human.loc[candidate, ["pair", "item", "verdict", "order"]].sort_values(
        ["pair", "order"], kind="stable"
    )
    gold = cand.drop_duplicates("pair")
    return gold.rename(columns={"verdict": "gold"})[["pair", "item", "gold"]].reset_index(drop=True)


def win_score(verdict: np.ndarray, side: np.ndarray) -> np.ndarray:
    """1 if the verdict picks `side` (A or B code), 0.5 for a tie, 0 otherwise."""
    return np.where(verdict == TIE, 0.5, (verdict == side).astype(float))
