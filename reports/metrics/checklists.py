"""The effect of checklists (TICK, Cook et al., 2024, Table 3: exact agreement of judges with
humans, and of humans with each other, with and without a checklist).

On the pairs of items that have a checklist and on those that have none, separately:

- percent agreement = sum_k O_kk / N and Cohen's kappa = 1 - sum(w O) / sum(w E), E_ij =
  row_i * col_j / N (Cohen, 1960; agreement.cohen_kappa_from_confusion), over the pooled 3x3
  confusion O of every two raters' combined verdicts (A / tie / B) on the same pair:
  human-human, every two humans; judge-human, every judge with every human;
- the difference with - without, each figure.

Intervals come from the report's item bootstrap (an item is in one group or the other, so each
resample redraws both); n counts rater pairs on a pair, and n_items the items behind them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .agreement import cohen_kappa_from_confusion, percent_from_confusion
from .bootstrap import Estimate, Resampler, per_unit_sums

COMPARISONS = ("human_human", "judge_human")


def _effect(sums: np.ndarray) -> np.ndarray:
    """Columns: 9 confusion cells without a checklist, then 9 with. -> (percent with, kappa
    with, percent without, kappa without, percent difference, kappa difference)."""
    without = sums[..., :9].reshape(*sums.shape[:-1], 3, 3)
    with_ = sums[..., 9:18].reshape(*sums.shape[:-1], 3, 3)
    pw, kw = percent_from_confusion(with_), cohen_kappa_from_confusion(with_)
    po, ko = percent_from_confusion(without), cohen_kappa_from_confusion(without)
    return np.stack([pw, kw, po, ko, pw - po, kw - ko], axis=-1)


@dataclass
class ChecklistEffect:
    estimate: Estimate | None
    n_with: int
    n_without: int
    items_with: int
    items_without: int


def co_rated(verdicts: pd.DataFrame, kinds: dict[str, str], comparison: str) -> pd.DataFrame:
    """Every two raters' verdicts on the same pair (columns item, va, vb): two humans once per
    pair of them, or a judge (va) with a human (vb)."""
    rater = verdicts["rater"]
    # Any order serves to count each two humans once; the report's raters are categoricals, which
    # do not compare with <, so their codes do the ordering there.
    order = rater.cat.codes if isinstance(rater.dtype, pd.CategoricalDtype) else rater
    v = verdicts[["pair", "item", "verdict"]].assign(
        rater=order.to_numpy(), kind=rater.astype(object).map(kinds).to_numpy()
    )
    co = v.merge(v, on=["pair", "item"], suffixes=("_a", "_b"))
    if comparison == "human_human":
        # Rater names may be an unordered categorical (reports.selectors): order them as text.
        once = co["rater_a"].astype(str) < co["rater_b"].astype(str)
        co = co[(co["kind_a"] == "human") & (co["kind_b"] == "human") & once]
    elif comparison == "judge_human":
        co = co[(co["kind_a"] == "judge") & (co["kind_b"] == "human")]
    else:
        raise ValueError(f"unknown comparison {comparison!r}")
    return pd.DataFrame({"item": co["item"].to_numpy(), "va": co["verdict_a"].to_numpy(), "vb": co["verdict_b"].to_numpy()})


def checklist_effect(
    verdicts: pd.DataFrame, kinds: dict[str, str], has_checklist: np.ndarray, boot: Resampler, comparison: str,
) -> ChecklistEffect:
    """verdicts: combined per (rater, pair) with item codes 0..n_units-1 (the report's);
    has_checklist: one bool per item code."""
    co = co_rated(verdicts, kinds, comparison)
    if co.empty:
        return ChecklistEffect(None, 0, 0, 0, 0)
    item = co["item"].to_numpy(dtype=np.int64)
    group = np.asarray(has_checklist, dtype=bool)[item].astype(np.int64)
    cols = group * 9 + co["va"].to_numpy(dtype=np.int64) * 3 + co["vb"].to_numpy(dtype=np.int64)
    per_unit = per_unit_sums(item, cols, 1.0, n_units=boot.n_units, width=18)
    est = boot.estimate(per_unit, _effect, n=len(co))
    return ChecklistEffect(est, int(group.sum()), int((group == 0).sum()),
                           int(np.unique(item[group == 1]).size), int(np.unique(item[group == 0]).size))
