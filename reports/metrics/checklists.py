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
from .memo import memoised

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


def _kinds(rater: pd.Series, kinds: dict[str, str]) -> tuple[np.ndarray, np.ndarray]:
    """Per row, whether its rater is a human and whether a judge (a rater of no known kind is
    neither): one lookup per label, from a categorical's codes or the factorized names."""
    if isinstance(rater.dtype, pd.CategoricalDtype):
        codes, names = rater.cat.codes.to_numpy(), [str(n) for n in rater.cat.categories]
    else:
        codes, uniques = pd.factorize(rater.to_numpy())
        names = [str(n) for n in uniques]
    kind_of = np.array([kinds.get(n) for n in names] + [None], dtype=object)  # code -1 (missing): no kind
    return (kind_of == "human")[codes], (kind_of == "judge")[codes]


def co_rated(verdicts: pd.DataFrame, kinds: dict[str, str], comparison: str) -> pd.DataFrame:
    """Every two raters' verdicts on the same pair (columns item, va, vb): two humans once per
    pair of them, or a judge (va) with a human (vb).

    The rows a self-merge on (pair, item) kept, found without the merge: with the verdicts sorted
    by pair and item, rows i and i + d of one pair are two of its raters. At 10M annotations the
    merge made 12M rows and a Python string per row and side (1 GB, half a minute)."""
    if comparison not in COMPARISONS:
        raise ValueError(f"unknown comparison {comparison!r}")
    rater = verdicts["rater"]
    # Any order serves to count each two humans once. The rows' order keys (a categorical's codes,
    # else the names) compare as text, as they always have here, ranked once per distinct key.
    order = rater.cat.codes if isinstance(rater.dtype, pd.CategoricalDtype) else rater
    key_codes, keys = pd.factorize(order.to_numpy())
    as_text = [str(k) for k in keys]
    text_rank = np.empty(len(keys), dtype=np.int64)
    text_rank[sorted(range(len(keys)), key=as_text.__getitem__)] = np.arange(len(keys))
    rank = text_rank[key_codes]
    human, judge = _kinds(rater, kinds)
    pair, item = verdicts["pair"].to_numpy(), verdicts["item"].to_numpy()
    verdict = verdicts["verdict"].to_numpy()
    sort = np.lexsort((item, pair))
    pair, item, verdict, rank, human, judge = (x[sort] for x in (pair, item, verdict, rank, human, judge))
    a_parts: list[np.ndarray] = []
    b_parts: list[np.ndarray] = []
    d = 1
    while d < len(pair):
        i = np.flatnonzero((pair[d:] == pair[:-d]) & (item[d:] == item[:-d]))
        if not len(i):
            break
        j = i + d
        for first, second in ((i, j), (j, i)):  # both orders of the two rows, as the merge had them
            if comparison == "human_human":
                keep = human[first] & human[second] & (rank[first] < rank[second])
            else:
                keep = judge[first] & human[second]
            a_parts.append(first[keep])
            b_parts.append(second[keep])
        d += 1
    a = np.concatenate(a_parts) if a_parts else np.zeros(0, dtype=np.int64)
    b = np.concatenate(b_parts) if b_parts else np.zeros(0, dtype=np.int64)
    return pd.DataFrame({"item": item[a], "va": verdict[a], "vb": verdict[b]})


def judge_human_cells(verdicts: pd.DataFrame, kinds: dict[str, str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """co_rated's judge-human rows counted, not listed: (item, cell va * 3 + vb, count) of every
    judge verdict va with the humans' verdicts vb on the same pair and item. Each judge row
    meets its pair's human verdict counts, so this reads every row once (co_rated's rows of
    judge-human were a pass per rater position over the whole table, every absorb)."""
    human, judge = _kinds(verdicts["rater"], kinds)
    pair, item = verdicts["pair"].to_numpy(dtype=np.int64), verdicts["item"].to_numpy(dtype=np.int64)
    verdict = verdicts["verdict"].to_numpy(dtype=np.int64)
    on, _ = pd.factorize(pair * (int(item.max(initial=0)) + 1) + item)  # (pair, item): what co_rated matches on
    humans = np.bincount(on[human] * 3 + verdict[human], minlength=3 * (int(on.max(initial=-1)) + 1)).reshape(-1, 3)
    rows = np.flatnonzero(judge)
    counts = humans[on[rows]]  # (judge rows, 3): the humans' verdicts beside each judge verdict
    cells = verdict[rows, None] * 3 + np.arange(3)[None, :]
    nonzero = counts > 0
    return np.broadcast_to(item[rows, None], counts.shape)[nonzero], cells[nonzero], counts[nonzero]


@memoised
def checklist_effect(
    verdicts: pd.DataFrame, kinds: dict[str, str], has_checklist: np.ndarray, boot: Resampler, comparison: str,
) -> ChecklistEffect:
    """verdicts: combined per (rater, pair) with item codes 0..n_units-1 (the report's);
    has_checklist: one bool per item code."""
    if comparison == "judge_human":
        item, cell, count = judge_human_cells(verdicts, kinds)
    else:
        co = co_rated(verdicts, kinds, comparison)
        item = co["item"].to_numpy(dtype=np.int64)
        cell = co["va"].to_numpy(dtype=np.int64) * 3 + co["vb"].to_numpy(dtype=np.int64)
        count = np.ones(len(co), dtype=np.int64)
    if not len(item):
        return ChecklistEffect(None, 0, 0, 0, 0)
    group = np.asarray(has_checklist, dtype=bool)[item].astype(np.int64)
    per_unit = per_unit_sums(item, group * 9 + cell, count, n_units=boot.n_units, width=18)
    est = boot.estimate(per_unit, _effect, n=int(count.sum()))
    return ChecklistEffect(est, int(count[group == 1].sum()), int(count[group == 0].sum()),
                           int(np.unique(item[group == 1]).size), int(np.unique(item[group == 0]).size))
