"""Inter-rater agreement: percent, Cohen's kappa, Fleiss' kappa, Krippendorff's alpha, rank correlations.

Each coefficient is written as a function of summed per-item statistics (a confusion matrix, a
coincidence matrix, category counts), batched over leading axes, so the same code gives the point
value and all bootstrap rounds at once (see bootstrap.py). Convenience wrappers over label arrays
are what the tests compare with scikit-learn and the `krippendorff` package.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
from scipy import stats as sps

KappaWeights = Literal["linear", "quadratic"] | None
Level = Literal["nominal", "ordinal", "interval"]


# --- Cohen's kappa --------------------------------------------------------------------------


def confusion(a: np.ndarray, b: np.ndarray, k: int) -> np.ndarray:
    """k x k counts of (a, b) code pairs; codes are 0..k-1."""
    return np.bincount(np.asarray(a) * k + np.asarray(b), minlength=k * k).reshape(k, k).astype(float)


def kappa_weights(k: int, weights: KappaWeights) -> np.ndarray:
    """Disagreement weights on category indices, as scikit-learn defines them."""
    idx = np.arange(k)
    diff = np.abs(idx[:, None] - idx[None, :]).astype(float)
    if weights is None:
        return (diff > 0).astype(float)
    if weights == "linear":
        return diff
    if weights == "quadratic":
        return diff**2
    raise ValueError(f"unknown weights {weights!r}")


def percent_from_confusion(conf: np.ndarray) -> np.ndarray:
    conf = np.asarray(conf)
    k = conf.shape[-1]
    with np.errstate(all="ignore"):
        return np.trace(conf, axis1=-2, axis2=-1) / conf.reshape(*conf.shape[:-2], k * k).sum(axis=-1)


def cohen_kappa_from_confusion(conf: np.ndarray, weights: KappaWeights = None) -> np.ndarray:
    """Cohen (1960); weighted form of Cohen (1968): 1 - sum(w O) / sum(w E). Batched over (..., k, k)."""
    return cohen_kappas_from_confusion(conf, [weights])[..., 0]


def cohen_kappas_from_confusion(conf: np.ndarray, weights: Sequence[KappaWeights]) -> np.ndarray:
    """cohen_kappa_from_confusion under each of `weights`, (..., len(weights)), the margins summed once.

    sum(w O) is the flattened cells times the flattened weights, and sum(w E), E = row x col / N,
    is (row^T w) . col / N: products over the batch instead of elementwise (..., k, k)
    temporaries summed over two small axes (over 1,000 bootstrap rounds of a block of rater
    pairs, a third of the time)."""
    conf = np.asarray(conf)
    k = conf.shape[-1]
    flat = conf.reshape(*conf.shape[:-2], k * k)
    n = flat.sum(axis=-1)
    rows, cols = conf.sum(axis=-1), conf.sum(axis=-2)
    out = []
    with np.errstate(all="ignore"):
        for weighting in weights:
            w = kappa_weights(k, weighting)
            expected = ((rows @ w) * cols).sum(axis=-1) / n
            out.append(1.0 - (flat @ w.ravel()) / expected)
    return np.stack(out, axis=-1)


def _codes(*arrays: np.ndarray) -> tuple[list[np.ndarray], np.ndarray]:
    """Map values to indices of their sorted union, as scikit-learn's labels do."""
    labels = np.unique(np.concatenate([np.asarray(a) for a in arrays]))
    return [np.searchsorted(labels, np.asarray(a)) for a in arrays], labels


def cohen_kappa(a: np.ndarray, b: np.ndarray, weights: KappaWeights = None) -> float:
    (ca, cb), labels = _codes(a, b)
    return float(cohen_kappa_from_confusion(confusion(ca, cb, len(labels)), weights))


def percent_agreement(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean(np.asarray(a) == np.asarray(b)))


# --- Fleiss' kappa --------------------------------------------------------------------------


def fleiss_unit_stats(counts: np.ndarray) -> np.ndarray:
    """Per unit: category counts n_ij, the unit's agreement P_i, and 1 (the unit count).

    Fleiss (1971) assumes m raters per unit; with varying m_i each unit's P_i uses its own m_i
    (units with fewer than two ratings carry no agreement information and should be dropped).
    """
    counts = np.asarray(counts, dtype=float)
    m = counts.sum(axis=1)
    with np.errstate(all="ignore"):
        p_i = ((counts**2).sum(axis=1) - m) / (m * (m - 1))
    return np.column_stack([counts, p_i, np.ones(len(counts))])


def fleiss_from_sums(sums: np.ndarray) -> np.ndarray:
    k = sums.shape[-1] - 2
    cat = sums[..., :k]
    with np.errstate(all="ignore"):
        p_j = cat / cat.sum(axis=-1, keepdims=True)
        p_bar = sums[..., k] / sums[..., k + 1]
        p_e = (p_j**2).sum(axis=-1)
        return (p_bar - p_e) / (1.0 - p_e)


def fleiss_kappa(counts: np.ndarray) -> float:
    """counts: (units, categories), how many raters put each unit in each category."""
    counts = np.asarray(counts, dtype=float)
    counts = counts[counts.sum(axis=1) >= 2]
    return float(fleiss_from_sums(fleiss_unit_stats(counts).sum(axis=0)))


# --- Krippendorff's alpha ------------------------------------------------------------------


def coincidences_per_unit(value_counts: np.ndarray) -> np.ndarray:
    """Each unit's contribution to the coincidence matrix, flattened to (units, V*V).

    Krippendorff (2011), "Computing Krippendorff's Alpha-Reliability": o_ck sums, over units
    with m_u >= 2 values, the ordered c-k value pairs divided by m_u - 1.
    """
    vc = np.asarray(value_counts, dtype=float)
    m = vc.sum(axis=1)
    outer = vc[:, :, None] * vc[:, None, :]
    idx = np.arange(vc.shape[1])
    outer[:, idx, idx] -= vc
    with np.errstate(all="ignore"):
        scaled = outer / np.maximum(m - 1, 1)[:, None, None]
    scaled[m < 2] = 0.0
    return scaled.reshape(len(vc), -1)


def krippendorff_from_coincidences(o: np.ndarray, domain: np.ndarray, level: Level) -> np.ndarray:
    """alpha = 1 - D_o / D_e from a coincidence matrix (..., V, V), batched."""
    domain = np.asarray(domain, dtype=float)
    n_v = o.sum(axis=-2)
    n = n_v.sum(axis=-1)[..., None, None]
    with np.errstate(all="ignore"):
        e = (n_v[..., :, None] * n_v[..., None, :] - _diag(n_v)) / (n - 1)
    if level == "nominal":
        d = 1.0 - np.eye(len(domain))
    elif level == "interval":
        d = (domain[:, None] - domain[None, :]) ** 2
    elif level == "ordinal":
        # The metric depends on the marginals: (sum of n_g for g from c to k - (n_c + n_k) / 2)^2.
        cum = np.cumsum(n_v, axis=-1)
        lo = np.minimum.outer(np.arange(len(domain)), np.arange(len(domain)))
        hi = np.maximum.outer(np.arange(len(domain)), np.arange(len(domain)))
        between = cum[..., hi] - cum[..., lo] + n_v[..., lo]
        d = (between - (n_v[..., lo] + n_v[..., hi]) / 2.0) ** 2
    else:
        raise ValueError(f"unknown level {level!r}")
    with np.errstate(all="ignore"):
        return 1.0 - (o * d).sum(axis=(-2, -1)) / (e * d).sum(axis=(-2, -1))


def _diag(n_v: np.ndarray) -> np.ndarray:
    return n_v[..., :, None] * np.eye(n_v.shape[-1])


def krippendorff_alpha(
    reliability_data: np.ndarray, level: Level = "nominal", value_domain: np.ndarray | None = None
) -> float:
    """reliability_data: (raters, units), NaN where missing (the `krippendorff` package's layout)."""
    data = np.asarray(reliability_data, dtype=float)
    domain = np.unique(data[~np.isnan(data)]) if value_domain is None else np.asarray(value_domain, float)
    counts = (data.T[..., None] == domain[None, None, :]).sum(axis=1)
    o = coincidences_per_unit(counts).sum(axis=0).reshape(len(domain), len(domain))
    return float(krippendorff_from_coincidences(o, domain, level))


# --- Rank correlations for scores ----------------------------------------------------------


def spearman_rho(a: np.ndarray, b: np.ndarray) -> float:
    return float(sps.spearmanr(a, b).statistic)


def kendall_tau_b(a: np.ndarray, b: np.ndarray) -> float:
    return float(sps.kendalltau(a, b, variant="b").statistic)


def rank_correlations_from_table(table: np.ndarray) -> np.ndarray:
    """Spearman's rho and Kendall's tau-b from a contingency table of two raters' scores.

    table: (..., Va, Vb) counts (or bootstrap multiplicities) of score pairs, rows and columns
    in increasing score order. On discrete scales both coefficients depend on the data only
    through this table: Spearman's rho is Pearson's r on mid-ranks, and a value's mid-rank is the
    count below it plus (its count + 1) / 2; tau-b = (n_c - n_d) / sqrt((n_0 - n_1)(n_0 - n_2))
    counts concordant and discordant pairs of cells. A resample with replacement is the table
    of multiplicity-weighted counts, so the bootstrap needs no re-ranking. Returns (..., 2):
    rho, tau-b (NaN where a rater's scores are constant), equal to scipy's spearmanr and
    kendalltau(variant="b") on the expanded data.
    """
    t = np.asarray(table, dtype=float)
    va, vb = t.shape[-2:]
    n = t.reshape(*t.shape[:-2], va * vb).sum(axis=-1)
    rows, cols = t.sum(axis=-1), t.sum(axis=-2)
    mid = (n + 1.0) / 2.0
    dx = np.cumsum(rows, axis=-1) - rows + (rows + 1.0) / 2.0 - mid[..., None]
    dy = np.cumsum(cols, axis=-1) - cols + (cols + 1.0) / 2.0 - mid[..., None]
    cov = ((t * dy[..., None, :]).sum(axis=-1) * dx).sum(axis=-1)
    vx = (rows * dx**2).sum(axis=-1)
    vy = (cols * dy**2).sum(axis=-1)
    # n_c - n_d = sum over rows i < k of t_i S t_k^T, S_jl = sign(l - j): the rows times S (one
    # product over the batch) against the sum of the rows below each (column totals less the
    # running sum), instead of four flipped running sums of the whole table.
    sign = np.sign(np.arange(vb)[None, :] - np.arange(vb)[:, None]).astype(float)
    below = cols[..., None, :] - np.cumsum(t, axis=-2)
    net = ((t @ sign) * below).reshape(*t.shape[:-2], va * vb).sum(axis=-1)
    n_0 = n * (n - 1.0) / 2.0
    n_1 = (rows * (rows - 1.0) / 2.0).sum(axis=-1)
    n_2 = (cols * (cols - 1.0) / 2.0).sum(axis=-1)
    with np.errstate(all="ignore"):
        rho = cov / np.sqrt(vx * vy)
        tau = net / np.sqrt((n_0 - n_1) * (n_0 - n_2))
    return np.stack([rho, tau], axis=-1)


def rank_correlations(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """(rho, tau-b) of two score arrays through the contingency table (see above)."""
    (ca,), la = _codes(a)
    (cb,), lb = _codes(b)
    t = np.bincount(ca * len(lb) + cb, minlength=len(la) * len(lb)).reshape(len(la), len(lb))
    rho, tau = rank_correlations_from_table(t)
    return float(rho), float(tau)
