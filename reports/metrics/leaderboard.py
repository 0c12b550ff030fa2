"""Leaderboards from rankings (Bradley-Terry on the Elo scale) and from ratings (mean score).

Bradley & Terry (1952); fitted by Hunter's (2004) MM algorithm, batched over bootstrap rounds.
Chatbot Arena (Chiang et al., 2024) reports the same model on the Elo scale with a bootstrap
over comparisons; METRICS.md takes the median of the rounds as the point and the 2.5 / 97.5
percentiles as the interval.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats as sps

from .bootstrap import Estimate, Resampler, per_unit_sums, percentile_ci
from .memo import memoised
from .verdicts import TIE, A, B

ELO_SCALE = 400.0
ELO_MEAN = 1000.0


def bradley_terry_elo(wins: np.ndarray, *, max_iter: int = 10_000, tol: float = 1e-10) -> np.ndarray:
    """MLE strengths on the Elo scale, batched: wins (..., m, m), wins[i, j] = wins of i over j
    (a tie counted as half a win each). P(i beats j) = 1 / (1 + 10^((e_j - e_i) / 400)); the mean
    rating is 1000. A model that never wins (or never loses) has no finite MLE; its strength is
    clipped so the result stays finite and ordered."""
    wins = np.asarray(wins, dtype=float)
    games = wins + np.swapaxes(wins, -1, -2)
    total_wins = wins.sum(axis=-1)
    m = wins.shape[-1]
    flat = (wins.reshape(-1, m, m), games.reshape(-1, m, m), total_wins.reshape(-1, m))
    # Newton's method where it converges (a few steps, where Hunter's MM takes about 56 at
    # Chatbot Arena-like strengths: most of a leaderboard's fit); MM for the rest, so a round
    # without a finite MLE gets MM's clipped iterate as before.
    theta, done = _newton_log_strengths(*flat, tol=tol)
    elo = np.empty(flat[2].shape)
    elo[done] = _elo(theta[done] / np.log(10.0))
    if not done.all():
        rest = ~done
        elo[rest] = _elo(np.log10(_mm_strengths(flat[1][rest], flat[2][rest], max_iter=max_iter, tol=tol)))
    return elo.reshape(total_wins.shape)


def _elo(log10_strength: np.ndarray) -> np.ndarray:
    elo = ELO_SCALE * log10_strength
    return elo - elo.mean(axis=-1, keepdims=True) + ELO_MEAN


def _newton_log_strengths(
    wins: np.ndarray, games: np.ndarray, total_wins: np.ndarray, *, tol: float, max_iter: int = 40
) -> tuple[np.ndarray, np.ndarray]:
    """Log strengths (rounds, m), mean 0, by Newton's method on the concave log-likelihood, and
    per round whether it converged (its last step under tol in every strength). Tried only on
    rounds where every model played, won and lost something (else no finite MLE: MM's clipped
    iterate stands); a round whose beats graph is still not strongly connected walks off and is
    reported as not converged. The information matrix's null direction (a common shift) is
    removed by adding 1/m to every entry, which leaves the step's mean 0 (the gradient's is)."""
    rounds, m = wins.shape[0], wins.shape[-1]
    lost = games.sum(axis=-1) - total_wins
    done = np.zeros(rounds, dtype=bool)
    theta = np.zeros((rounds, m))
    tried = np.flatnonzero((total_wins > 0).all(axis=-1) & (lost > 0).all(axis=-1))
    if not len(tried):
        return theta, done
    n, w = games[tried], total_wins[tried]
    t = np.zeros((len(tried), m))
    converged = np.zeros(len(tried), dtype=bool)
    shift = np.full((m, m), 1.0 / m)
    for _ in range(max_iter):
        with np.errstate(over="ignore"):
            s = 1.0 / (1.0 + np.exp(t[:, None, :] - t[:, :, None]))  # s[i, j] = P(i beats j)
        grad = w - (n * s).sum(axis=-1)
        info = -(n * s * np.swapaxes(s, -1, -2))
        info[:, np.arange(m), np.arange(m)] = -info.sum(axis=-1)
        try:
            step = np.linalg.solve(info + shift, grad[..., None])[..., 0]
        except np.linalg.LinAlgError:
            break
        # A concave likelihood, but a full step from far off can overshoot: at most 2 (natural
        # log units, a factor e^2 in strength) at a time.
        step = np.clip(step, -2.0, 2.0)
        t = t + step
        converged = np.isfinite(step).all(axis=-1) & (np.abs(step).max(axis=-1) < tol)
        if converged.all():
            break
    theta[tried] = t - t.mean(axis=-1, keepdims=True)
    done[tried] = converged
    return theta, done


def _mm_strengths(games: np.ndarray, total_wins: np.ndarray, *, max_iter: int, tol: float) -> np.ndarray:
    """Hunter's (2004) MM iterate, batched: strengths p with geometric mean 1, clipped to stay
    finite where no MLE exists."""
    p = np.ones(games.shape[:-1])
    for _ in range(max_iter):
        with np.errstate(all="ignore"):
            denom = (games / (p[..., :, None] + p[..., None, :])).sum(axis=-1)
            new = np.where(denom > 0, total_wins / np.where(denom > 0, denom, 1), p)
        new = np.clip(new, 1e-12, None)
        new /= np.exp(np.log(new).mean(axis=-1, keepdims=True))
        new = np.clip(new, 1e-12, 1e12)
        done = np.max(np.abs(np.log(new) - np.log(p))) < tol
        p = new
        if done:
            break
    return p


@dataclass
class BradleyTerry:
    models: list[str]
    n: int
    elo: np.ndarray
    ci: np.ndarray | None  # (2, m)
    # The MLE exists only when every model beats, and is beaten by, the rest through some chain
    # (the "beats" graph is strongly connected; Zermelo 1929, Ford 1957). Otherwise the figures
    # are the clipped iterate: ordered, but their size means nothing.
    identifiable: bool = True
    never_lost: list[str] | None = None
    never_won: list[str] | None = None
    samples: np.ndarray | None = None  # (rounds, m): the Elo of every bootstrap round


def mle_exists(wins: np.ndarray) -> bool:
    """wins (m, m): the Bradley-Terry MLE is finite iff the directed graph i -> j (i has beaten
    j at least half a time) is strongly connected."""
    from scipy.sparse.csgraph import connected_components

    n_components, _ = connected_components(wins > 0, directed=True, connection="strong")
    return n_components == 1


def labels_in(column: pd.Series) -> set[str]:
    """The labels a column holds. A categorical column's from its codes: a set of every row's
    label turned 100k codes into Python strings (once per board and fit)."""
    if isinstance(column.dtype, pd.CategoricalDtype):
        codes = np.unique(column.cat.codes.to_numpy())
        return {str(c) for c in column.cat.categories[codes[codes >= 0]]}
    return set(column)


def models_compared(comps: pd.DataFrame) -> list[str]:
    """The models of model_a and model_b, sorted."""
    return sorted(labels_in(comps["model_a"]) | labels_in(comps["model_b"]))


def comparisons(verdicts: pd.DataFrame) -> pd.DataFrame:
    """Rows model_a, model_b, verdict of pairs between two different named models."""
    v = verdicts[["model_a", "model_b", "verdict"]]
    keep = (v["model_a"] != v["model_b"]) & (v["model_a"] != "") & (v["model_b"] != "")
    return v[keep.to_numpy()]


@memoised
def bradley_terry(comps: pd.DataFrame, *, rounds: int, seed: int) -> BradleyTerry:
    """comps: model_a, model_b, verdict. Resamples comparisons: drawing n comparisons with
    replacement is a multinomial draw over the distinct (a, b, verdict) cells."""
    models = models_compared(comps)
    m = len(models)
    if m < 2 or comps.empty:
        return BradleyTerry(models=models, n=len(comps), elo=np.full(m, ELO_MEAN), ci=None)
    # Codes into the sorted model list, from plain strings or from categoricals alike.
    ia = pd.Categorical(comps["model_a"], categories=models).codes.astype(np.int64)
    ib = pd.Categorical(comps["model_b"], categories=models).codes.astype(np.int64)
    cells = (ia * m + ib) * 3 + comps["verdict"].to_numpy()
    counts = np.bincount(cells, minlength=m * m * 3).astype(float)
    if rounds > 0:
        rng = np.random.default_rng(seed)
        draws = rng.multinomial(len(comps), counts / counts.sum(), size=rounds).astype(float)
    else:
        draws = counts[None, :]
    c = draws.reshape(-1, m, m, 3)
    wins = c[..., A] + 0.5 * c[..., TIE]
    wins = wins + np.swapaxes(c[..., B] + 0.5 * c[..., TIE], -1, -2)
    elo = bradley_terry_elo(wins)
    point = counts.reshape(m, m, 3)
    observed = point[..., A] + 0.5 * point[..., TIE] + np.swapaxes(point[..., B] + 0.5 * point[..., TIE], -1, -2)
    won, lost = observed.sum(axis=1), observed.sum(axis=0)
    flags: dict[str, Any] = {
        "identifiable": mle_exists(observed),
        "never_lost": [models[i] for i in range(m) if lost[i] == 0],
        "never_won": [models[i] for i in range(m) if won[i] == 0],
    }
    if rounds > 0:
        return BradleyTerry(models=models, n=len(comps), elo=np.median(elo, axis=0), ci=percentile_ci(elo),
                            samples=elo, **flags)  # fmt: skip
    return BradleyTerry(models=models, n=len(comps), elo=elo[0], ci=None, **flags)


@dataclass
class RatingBoard:
    models: list[str]
    n: list[int]  # responses per model
    estimate: Estimate | None


def _means(s: np.ndarray) -> np.ndarray:
    m = s.shape[-1] // 2
    with np.errstate(all="ignore"):
        return s[..., :m] / s[..., m:]


def rating_board(scores: pd.DataFrame, boot: Resampler) -> RatingBoard:
    """scores: item, response, model, score (one score per response, e.g. a group's mean)."""
    s = scores[scores["model"] != ""]
    models = sorted(s["model"].unique())
    if not models:
        return RatingBoard(models=[], n=[], estimate=None)
    codes = pd.Categorical(s["model"], categories=models).codes.astype(np.int64)
    m = len(models)
    item = s["item"].to_numpy()
    units = np.concatenate([item, item])
    cols = np.concatenate([codes, codes + m])
    vals = np.concatenate([s["score"].to_numpy(dtype=float), np.ones(len(s))])
    per_unit = per_unit_sums(units, cols, vals, n_units=boot.n_units, width=2 * m)
    est = boot.estimate(per_unit, _means, n=len(s))
    return RatingBoard(models=models, n=np.bincount(codes, minlength=m).tolist(), estimate=est)


def kendall_tau_between(a: dict[str, float], b: dict[str, float]) -> float | None:
    """Kendall's tau-b between two scorings over the models both have."""
    common = sorted(set(a) & set(b))
    if len(common) < 2:
        return None
    tau = sps.kendalltau([a[k] for k in common], [b[k] for k in common], variant="b").statistic
    return None if np.isnan(tau) else float(tau)


def kendall_tau_b_rounds(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Kendall's tau-b between the rows of x and y, both (rounds, m) over the same m models,
    batched over rounds. A NaN score drops that model from its round (as kendall_tau_between
    drops a model without a score); a round with fewer than two models or a constant ordering
    gives NaN. tau-b = sum s_x s_y / sqrt(sum s_x^2 * sum s_y^2) over model pairs, s = sign of
    the difference, which is (n_c - n_d) / sqrt((n_0 - n_1)(n_0 - n_2))."""
    x = np.atleast_2d(np.asarray(x, dtype=float))
    y = np.atleast_2d(np.asarray(y, dtype=float))
    i, j = np.triu_indices(x.shape[-1], k=1)
    sx, sy = _signs(x, i, j), _signs(y, i, j)
    valid = ~(np.isnan(sx) | np.isnan(sy))
    sx, sy = np.where(valid, sx, 0.0), np.where(valid, sy, 0.0)
    with np.errstate(all="ignore"):
        return (sx * sy).sum(axis=-1) / np.sqrt((sx**2).sum(axis=-1) * (sy**2).sum(axis=-1))


# Two scores this close (relative) are a tie. A resampled mean is a float sum over thousands of
# items whose last bits depend on the order of its additions (a rebuild's product, an absorb's
# B0 + dW @ S0 + W @ dS), so a tie the arithmetic broke would flip a pair of models in one round
# and not in the other. 1e-13 is above that rounding (about sqrt(items) ulps) and far below any
# difference between two models' scores that could mean something.
_TIE_RELATIVE = 1e-13


def _signs(x: np.ndarray, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    """sign(x_i - x_j) per round and model pair, 0 within _TIE_RELATIVE (NaN kept)."""
    with np.errstate(invalid="ignore"):
        d = x[:, i] - x[:, j]
        scale = np.maximum(np.abs(x[:, i]), np.abs(x[:, j]))
        return np.where(np.abs(d) <= _TIE_RELATIVE * scale, 0.0, np.sign(d))


def kendall_tau_ci(
    bt_models: list[str], bt_samples: np.ndarray | None, rating_models: list[str], rating_samples: np.ndarray | None
) -> np.ndarray | None:
    """95% interval of Kendall's tau between the Bradley-Terry and rating orderings over the
    models both boards have: round k of the Bradley-Terry bootstrap is paired with round k of
    the rating board's, and tau-b is taken per round.

    The two bootstraps resample different units: Bradley-Terry resamples comparisons (pairwise
    verdicts, Chatbot Arena's scheme), the rating board resamples items through the report's
    shared Resampler. Pairing rounds by index treats them as independent draws, so the interval
    covers the sampling noise of both orderings; it is not a joint resample of one unit."""
    if bt_samples is None or rating_samples is None:
        return None
    common = sorted(set(bt_models) & set(rating_models))
    if len(common) < 2:
        return None
    rounds = min(len(bt_samples), len(rating_samples))
    bi = [bt_models.index(m) for m in common]
    ri = [rating_models.index(m) for m in common]
    taus = kendall_tau_b_rounds(bt_samples[:rounds, bi], rating_samples[:rounds, ri])
    if np.isnan(taus).all():
        return None
    return percentile_ci(taus)
