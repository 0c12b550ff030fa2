"""Calibrated judge confidence: the one module that turns a judge's raw confidence into the
probability that its combined verdict on a pair matches human gold, and measures how well
that probability is calibrated (reliability diagram, expected calibration error).

The methods are scikit-learn's, not a copy of them: isotonic regression (Zadrozny & Elkan,
2002) and Platt scaling (Platt, 1999; a one-feature logistic regression). Honest use needs
held-out data: `cross_fit` calibrates every row on folds that do not contain it, so a routing
policy or a bench never scores the pairs its calibrator was fitted on.

No ORM here: the selectors load (raw score, correct) rows; the routing policy and the bench read
the probabilities.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np

if TYPE_CHECKING:  # scikit-learn is imported when a calibrator is fitted: the reports import
    # this module for its binning rule only, and should not pay scikit-learn's import time.
    from sklearn.isotonic import IsotonicRegression
    from sklearn.linear_model import LogisticRegression

Method = Literal["isotonic", "platt"]
METHODS: tuple[Method, ...] = ("isotonic", "platt")
# Below this many rows (or with one class only) a fit says nothing: the calibrator returns the
# base rate, which is the honest answer to "how often is this judge right" on that little data.
MIN_FIT_ROWS = 10


@dataclass(frozen=True)
class Calibrator:
    """A fitted map from raw score to P(combined verdict == gold)."""

    method: Method
    n: int
    base_rate: float
    isotonic: IsotonicRegression | None = None
    platt: LogisticRegression | None = None

    def predict(self, scores: Sequence[float] | np.ndarray) -> np.ndarray:
        x = np.asarray(scores, dtype=np.float64).ravel()
        if self.isotonic is not None:
            return np.asarray(self.isotonic.predict(x), dtype=np.float64)
        if self.platt is not None:
            return np.asarray(self.platt.predict_proba(x.reshape(-1, 1))[:, 1], dtype=np.float64)
        return np.full(len(x), self.base_rate)


def calibrator_fit(scores: Sequence[float] | np.ndarray, correct: Sequence[bool] | np.ndarray, *,
                   method: Method = "isotonic") -> Calibrator:
    """Fit P(correct | raw score). Isotonic: monotone, clipped to [0, 1] and to the fitted score
    range (a score beyond what was seen gets the nearest seen value, not an extrapolation).
    Platt: scikit-learn's default L2 penalty (C = 1), as CalibratedClassifierCV uses it."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    x = np.asarray(scores, dtype=np.float64).ravel()
    y = np.asarray(correct, dtype=bool).ravel()
    if len(x) != len(y):
        raise ValueError("scores and correct differ in length")
    base = float(y.mean()) if len(y) else float("nan")
    if len(y) < MIN_FIT_ROWS or y.all() or not y.any():
        return Calibrator(method=method, n=len(y), base_rate=base)
    from sklearn.isotonic import IsotonicRegression
    from sklearn.linear_model import LogisticRegression

    if method == "isotonic":
        iso = IsotonicRegression(y_min=0.0, y_max=1.0, increasing=True, out_of_bounds="clip")
        iso.fit(x, y.astype(np.float64))
        return Calibrator(method=method, n=len(y), base_rate=base, isotonic=iso)
    platt = LogisticRegression()
    platt.fit(x.reshape(-1, 1), y.astype(np.int64))
    return Calibrator(method=method, n=len(y), base_rate=base, platt=platt)


def fold_ids(groups: Sequence[object] | np.ndarray, *, folds: int, seed: int) -> np.ndarray:
    """A fold per row, whole groups at a time (e.g. all pairs of one prompt in one fold), so
    that near-duplicates of a scored pair never sit in its calibration set."""
    keys, codes = np.unique(np.asarray(groups, dtype=object).astype(str), return_inverse=True)
    rng = np.random.default_rng(seed)
    fold_of_group = rng.permutation(len(keys)) % folds
    return np.asarray(fold_of_group[codes], dtype=np.int64)


def cross_fit(scores: Sequence[float] | np.ndarray, correct: Sequence[bool] | np.ndarray,
              folds: np.ndarray, *, method: Method = "isotonic",
              strata: np.ndarray | None = None) -> np.ndarray:
    """Out-of-fold calibrated probabilities: row r is predicted by a calibrator fitted on every
    fold but r's. `strata` (optional, e.g. "the judge said tie" vs not) fits one calibrator per
    stratum, since a judge's ties and its picks are right at different rates at the same score."""
    x = np.asarray(scores, dtype=np.float64).ravel()
    y = np.asarray(correct, dtype=bool).ravel()
    f = np.asarray(folds).ravel()
    s = np.zeros(len(x), dtype=np.int64) if strata is None else np.asarray(strata).ravel()
    out = np.full(len(x), np.nan)
    for fold in np.unique(f):
        held = f == fold
        for stratum in np.unique(s[held]):
            train = ~held & (s == stratum)
            target = held & (s == stratum)
            out[target] = calibrator_fit(x[train], y[train], method=method).predict(x[target])
    return out


def bin_index(confidence: np.ndarray, *, bins: int, lo: float, hi: float) -> np.ndarray:
    """The reliability bin of each confidence: `bins` equal-width bins over [lo, hi], closed on
    the left, the top edge in the last bin. The epsilon keeps an edge such as 0.6 from falling a
    bin short in floating point. reports.metrics.judges bins its calibration figure with this."""
    width = (hi - lo) / bins
    raw = np.floor((np.asarray(confidence, dtype=np.float64) - lo) / width + 1e-9).astype(np.int64)
    return np.clip(raw, 0, bins - 1)


@dataclass(frozen=True)
class Reliability:
    """A reliability diagram: per equal-width confidence bin, its size, mean confidence and the
    share correct (NaN for an empty bin), and the expected calibration error over the bins."""

    edges: np.ndarray
    counts: np.ndarray
    confidence: np.ndarray
    accuracy: np.ndarray
    ece: float
    n: int


def reliability(confidence: Sequence[float] | np.ndarray, correct: Sequence[bool] | np.ndarray, *,
                bins: int = 10, lo: float = 0.0, hi: float = 1.0) -> Reliability:
    """METRICS.md's binning (bin_index), ECE =
    sum over bins of (bin size / n) * |mean confidence - share correct|."""
    c = np.asarray(confidence, dtype=np.float64).ravel()
    y = np.asarray(correct, dtype=np.float64).ravel()
    edges = np.linspace(lo, hi, bins + 1)
    which = bin_index(c, bins=bins, lo=lo, hi=hi)
    counts = np.bincount(which, minlength=bins)
    with np.errstate(all="ignore"):
        conf = np.bincount(which, weights=c, minlength=bins) / counts
        acc = np.bincount(which, weights=y, minlength=bins) / counts
    n = len(c)
    ece = float(np.nansum(counts / n * np.abs(conf - acc))) if n else float("nan")
    return Reliability(edges=edges, counts=counts, confidence=conf, accuracy=acc, ece=ece, n=n)


def ece_interval(confidence: np.ndarray, correct: np.ndarray, *, bins: int = 10, lo: float = 0.0,
                 hi: float = 1.0, rounds: int = 1000, seed: int = 0) -> tuple[float, float]:
    """95% percentile interval of the ECE, resampling rows (pairs) with replacement."""
    c = np.asarray(confidence, dtype=np.float64).ravel()
    y = np.asarray(correct, dtype=np.float64).ravel()
    n = len(c)
    if n == 0 or rounds <= 0:
        return (float("nan"), float("nan"))
    which = bin_index(c, bins=bins, lo=lo, hi=hi)
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, n, size=(rounds, n))
    # Per round: bin sums of counts, confidence and correctness, all as one bincount.
    cells = (np.arange(rounds)[:, None] * bins + which[draws]).ravel()
    csum = np.bincount(cells, weights=c[draws].ravel(), minlength=rounds * bins).reshape(rounds, bins)
    ysum = np.bincount(cells, weights=y[draws].ravel(), minlength=rounds * bins).reshape(rounds, bins)
    eces = np.abs(csum - ysum).sum(axis=1) / n  # (count/n) * |csum/count - ysum/count|
    lo_q, hi_q = np.percentile(eces, [2.5, 97.5])
    return (float(lo_q), float(hi_q))
