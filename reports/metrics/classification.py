"""A rater's verdicts scored against gold: accuracy, accuracy without tied gold, macro P/R/F1.

PandaLM (Wang et al., 2023) reports accuracy with tie as a class and scikit-learn's macro
precision, recall and F1 over {A, tie, B}; the same definitions are used here, batched over
confusion matrices (gold in rows, rater in columns) so the bootstrap reuses them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .bootstrap import Estimate, Resampler, per_unit_sums
from .memo import memoised
from .verdicts import TIE, gold_at

SCORES = ("accuracy", "accuracy_no_ties", "macro_precision", "macro_recall", "macro_f1")


def scores_from_confusion(conf_flat: np.ndarray) -> np.ndarray:
    """(..., 9) confusion (gold x rater) -> (..., 5) in the order of SCORES."""
    conf = conf_flat.reshape(*conf_flat.shape[:-1], 3, 3)
    diag = np.diagonal(conf, axis1=-2, axis2=-1)
    rows, cols = conf.sum(axis=-1), conf.sum(axis=-2)
    with np.errstate(all="ignore"):
        accuracy = diag.sum(axis=-1) / conf.sum(axis=(-2, -1))
        no_tie = np.delete(np.arange(3), TIE)
        accuracy_no_ties = diag[..., no_tie].sum(axis=-1) / rows[..., no_tie].sum(axis=-1)
        # scikit-learn's zero_division=0: an empty class scores 0 and still counts in the mean.
        precision = np.where(cols > 0, diag / np.where(cols > 0, cols, 1), 0.0)
        recall = np.where(rows > 0, diag / np.where(rows > 0, rows, 1), 0.0)
        denom = precision + recall
        f1 = np.where(denom > 0, 2 * precision * recall / np.where(denom > 0, denom, 1), 0.0)
    return np.stack(
        [accuracy, accuracy_no_ties, precision.mean(-1), recall.mean(-1), f1.mean(-1)], axis=-1
    )


@dataclass
class GoldScores:
    n: int
    estimate: Estimate  # value and samples in the order of SCORES
    confusion: np.ndarray  # 3x3, gold in rows


@memoised
def score_against_gold(verdicts: pd.DataFrame, gold: pd.DataFrame, boot: Resampler) -> GoldScores:
    """verdicts: pair, verdict (one rater); gold: pair, item, gold."""
    at, g = gold_at(verdicts["pair"], gold)
    keep = at >= 0  # the pairs with gold (an inner join on pair)
    cells = g[keep] * 3 + verdicts["verdict"].to_numpy(dtype=np.int64)[keep]
    item = gold["item"].to_numpy(dtype=np.int64)[at[keep]]
    per_unit = per_unit_sums(item, cells, 1.0, n_units=boot.n_units, width=9)
    est = boot.estimate(per_unit, scores_from_confusion, n=len(cells))
    conf = np.bincount(cells, minlength=9).reshape(3, 3)
    return GoldScores(n=len(cells), estimate=est, confusion=conf)
