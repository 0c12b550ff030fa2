"""Does a panel beat its best member? (issue 13, item 3)

A panel (judges.panels) and each of its members against the same human gold, on the same pairs:
those with gold that the panel and every member judged. Accuracy (ties a class, as judge vs gold)
and Cohen's kappa against gold come from one gold x rater confusion per rater, registered as
per-item sums on the report's shared Resampler, so every rater's figures and the paired
difference "panel minus best member" are computed in the same bootstrap round from the same
resampled items. The best member is the one with the highest point estimate, per figure.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .agreement import cohen_kappa_from_confusion
from .bootstrap import Estimate, Resampler, per_unit_sums
from .classification import scores_from_confusion

FIGURES = ("accuracy", "kappa")


def _figures(flat: np.ndarray) -> np.ndarray:
    """(..., R * 9) confusions (gold x rater, one per rater) -> (..., 2, R): accuracy, kappa."""
    conf = flat.reshape(*flat.shape[:-1], -1, 9)
    accuracy = scores_from_confusion(conf)[..., 0]
    kappa = cohen_kappa_from_confusion(conf.reshape(*conf.shape[:-1], 3, 3))
    return np.stack([accuracy, kappa], axis=-2)


def _best(values: np.ndarray) -> int:
    """The member (index among values) with the highest figure; an undefined one never wins."""
    clean = np.where(np.isnan(values), -np.inf, values)
    return int(np.argmax(clean))


@dataclass
class PanelVsMembers:
    panel: str
    members: list[str]  # the members that judged the common pairs, in the panel's order
    absent: list[str]  # members with no verdict on any pair with gold: left out of the comparison
    n: int  # common pairs
    # Columns: accuracy then kappa of [panel, *members], then the two differences panel - best.
    estimate: Estimate | None
    best: dict[str, str]  # figure -> best member

    def value(self, figure: str, rater: int) -> float:
        """Figure of rater (0: the panel, k: member k - 1), point estimate."""
        assert self.estimate is not None
        return float(self.estimate.value[FIGURES.index(figure) * (len(self.members) + 1) + rater])


def panel_vs_members(verdicts: pd.DataFrame, gold: pd.DataFrame, panel: str, members: list[str],
                     boot: Resampler) -> PanelVsMembers:  # fmt: skip
    """verdicts: combined verdicts (rater, pair, verdict); gold: pair, item, gold."""
    g = gold[gold["gold"] >= 0][["pair", "item", "gold"]]
    raters = [panel, *members]
    per_rater = {r: verdicts.loc[verdicts["rater"] == r, ["pair", "verdict"]].merge(g, on="pair") for r in raters}
    present = [m for m in members if len(per_rater[m])]
    absent = [m for m in members if not len(per_rater[m])]
    raters = [panel, *present]
    common = set(per_rater[panel]["pair"])
    for m in present:
        common &= set(per_rater[m]["pair"])
    if not present or not common:
        return PanelVsMembers(panel, present, absent, 0, None, {})
    units, cols = [], []
    for k, r in enumerate(raters):
        rows = per_rater[r][per_rater[r]["pair"].isin(common)]
        units.append(rows["item"].to_numpy(dtype=np.int64))
        cols.append(k * 9 + rows["gold"].to_numpy(dtype=np.int64) * 3 + rows["verdict"].to_numpy(dtype=np.int64))
    unit, col = np.concatenate(units), np.concatenate(cols)
    totals = np.bincount(col, minlength=len(raters) * 9).astype(np.float64)
    point = _figures(totals)  # (2, R): choose the best member on the point estimates
    best = {f: 1 + _best(point[i, 1:]) for i, f in enumerate(FIGURES)}

    def statistic(sums: np.ndarray) -> np.ndarray:
        figs = _figures(sums)  # (..., 2, R)
        diffs = np.stack([figs[..., i, 0] - figs[..., i, best[f]] for i, f in enumerate(FIGURES)], axis=-1)
        return np.concatenate([figs.reshape(*figs.shape[:-2], -1), diffs], axis=-1)

    per_unit = per_unit_sums(unit, col, 1.0, n_units=boot.n_units, width=len(raters) * 9)
    est = boot.estimate(per_unit, statistic, n=len(common))
    return PanelVsMembers(panel, present, absent, len(common), est, {f: raters[b] for f, b in best.items()})
