"""Report-only verdict helpers. The vocabulary itself (codes, the verdict of a strength, the
combined verdict and strength of two shown orders, gold) is annotate/verdicts.py's, re-exported
here for the metrics modules."""

from __future__ import annotations

import numpy as np
import pandas as pd

from annotate.verdicts import TIE, VERDICT_LABELS, A, B, combine_orders, gold_verdicts, verdict_of

__all__ = [
    "A", "B", "TIE", "VERDICT_LABELS", "apply_wildbench_rule", "both_orders", "combine_orders", "gold_at",
    "gold_verdicts", "verdict_of", "win_score",
]


def gold_at(pairs: np.ndarray | pd.Series, gold: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Gold beside each of `pairs`: (gold's row for the pair, -1 where gold has none; gold's
    verdict code there, -1 where none). What a left merge of the pairs with gold on "pair"
    gives, row for row, without the merge: a rater's figures against gold (position,
    self-preference, length, calibration, the gold scores and cards) each merged once per rater,
    2 ms of a figure's 3 at 1M annotations. Gold has one row per pair (gold_verdicts,
    with_adjudicated)."""
    keys = np.asarray(pairs, dtype=np.int64)
    if not len(gold):
        none = np.full(len(keys), -1, dtype=np.int64)
        return none, none.copy()
    index = pd.Index(gold["pair"].to_numpy(dtype=np.int64))
    if not index.is_unique:
        raise ValueError("gold has more than one row for a pair")
    at = index.get_indexer(keys)
    code = gold["gold"].to_numpy(dtype=np.int64)[np.maximum(at, 0)]
    return at, np.where(at >= 0, code, -1)


def apply_wildbench_rule(prefs: pd.DataFrame, k: int) -> pd.DataFrame:
    """WildBench (Lin et al., 2024): a slight win (|s| = 1) of a response longer than the loser
    by more than K characters counts as a tie, to discount the judges' taste for length."""
    s = prefs["strength"].to_numpy()
    winner_longer = np.where(s < 0, prefs["len_a"] - prefs["len_b"], prefs["len_b"] - prefs["len_a"])
    out = prefs.copy()
    out.loc[(np.abs(s) == 1) & (winner_longer > k), "strength"] = 0
    return out


def win_score(verdict: np.ndarray, side: np.ndarray) -> np.ndarray:
    """1 if the verdict picks `side` (A or B code), 0.5 for a tie, 0 otherwise."""
    return np.where(verdict == TIE, 0.5, (verdict == side).astype(float))


def both_orders(prefs: pd.DataFrame) -> pd.DataFrame:
    """One rater's per-order rows (pair, item, strength, shown_order, in stored order) as one
    row per pair seen in both orders: pair, item, ab, ba (the verdict of the pair's first
    annotation in each order), sorted by pair. What a pivot on shown_order with "first" and
    dropna gives, without the pivot's cost (it was most of the position figures' time)."""
    v = np.asarray(verdict_of(prefs["strength"]), dtype=np.int64)
    pair = prefs["pair"].to_numpy(dtype=np.int64)
    firsts = []
    for order in ("ab", "ba"):
        rows = np.flatnonzero((prefs["shown_order"] == order).to_numpy(dtype=bool))
        pairs, first = np.unique(pair[rows], return_index=True)  # the first row of each pair
        firsts.append((pairs, rows[first]))
    common, i_ab, i_ba = np.intersect1d(firsts[0][0], firsts[1][0], assume_unique=True, return_indices=True)
    at_ab, at_ba = firsts[0][1][i_ab], firsts[1][1][i_ba]
    return pd.DataFrame({"pair": common, "item": prefs["item"].to_numpy(dtype=np.int64)[at_ab], "ab": v[at_ab],
                         "ba": v[at_ba]})  # fmt: skip
