"""Report-only verdict helpers. The vocabulary itself (codes, the verdict of a strength, the
combined verdict and strength of two shown orders, gold) is annotate/verdicts.py's, re-exported
here for the metrics modules."""

from __future__ import annotations

import numpy as np
import pandas as pd

from annotate.verdicts import TIE, VERDICT_LABELS, A, B, combine_orders, gold_verdicts, verdict_of

__all__ = [
    "A", "B", "TIE", "VERDICT_LABELS", "apply_wildbench_rule", "combine_orders", "gold_verdicts",
    "verdict_of", "win_score",
]


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
