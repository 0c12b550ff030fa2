"""Ratings vs rankings: does the preference implied by a rater's scores match its ranking?

"Peering Through Preferences" (Bansal et al., 2023) finds rating- and ranking-derived
preferences disagree on about 60% of pairs; METRICS.md defines consistency as the share of pairs
having both where the implied preference equals the ranking verdict.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from annotate.verdicts import verdict_of

from .bootstrap import Estimate, Resampler, per_unit_sums


def implied_verdicts(pairs: pd.DataFrame, scores: pd.DataFrame) -> pd.DataFrame:
    """pairs: pair, response_a, response_b (+ any columns); scores: response, score (one rater
    or one group's mean). Adds `implied`: A if score_a > score_b, B if lower, tie if equal."""
    s = scores.set_index("response")["score"]
    sa = pairs["response_a"].map(s)
    sb = pairs["response_b"].map(s)
    keep = sa.notna() & sb.notna()
    out = pairs.loc[keep].copy()
    # The implied preference is the verdict of the score difference, as if it were a strength.
    out["implied"] = verdict_of(sb[keep].to_numpy() - sa[keep].to_numpy())
    return out


@dataclass
class Consistency:
    n: int
    estimate: Estimate
    confusion: np.ndarray  # implied (rows) x ranked (columns), A / tie / B
    by_strength: list[dict]  # {"strength": |s|, "n", "consistency"}
    by_strength_estimate: Estimate | None = None  # the rates of by_strength, in its order


def _trace_share(flat: np.ndarray) -> np.ndarray:
    with np.errstate(all="ignore"):
        return flat[..., [0, 4, 8]].sum(axis=-1) / flat.sum(axis=-1)


def consistency(joined: pd.DataFrame, boot: Resampler) -> Consistency:
    """joined: item, implied, verdict, strength (one row per rater and pair having both)."""
    implied = joined["implied"].to_numpy()
    ranked = joined["verdict"].to_numpy()
    cells = implied * 3 + ranked
    per_unit = per_unit_sums(joined["item"].to_numpy(), cells, 1.0, n_units=boot.n_units, width=9)
    est = boot.estimate(per_unit, _trace_share, n=len(joined))
    agree = implied == ranked
    mag = np.abs(joined["strength"].to_numpy())
    strengths, s_codes = np.unique(mag, return_inverse=True)
    by_strength = [
        {"strength": int(s), "n": int((mag == s).sum()), "consistency": float(agree[mag == s].mean())}
        for s in strengths
    ]
    # Per strength: (agreeing, all) pairs, so each row's rate has its own interval.
    k = len(strengths)
    items = joined["item"].to_numpy()
    per_strength = per_unit_sums(
        np.concatenate([items, items]),
        np.concatenate([2 * s_codes, 2 * s_codes + 1]),
        np.concatenate([agree.astype(float), np.ones(len(items))]),
        n_units=boot.n_units,
        width=2 * k,
    )
    by_strength_est = boot.estimate(per_strength, _pairwise_ratios, n=len(joined)) if k else None
    return Consistency(
        n=len(joined),
        estimate=est,
        confusion=np.bincount(cells, minlength=9).reshape(3, 3),
        by_strength=by_strength,
        by_strength_estimate=by_strength_est,
    )


def _pairwise_ratios(sums: np.ndarray) -> np.ndarray:
    with np.errstate(all="ignore"):
        return sums[..., 0::2] / sums[..., 1::2]
