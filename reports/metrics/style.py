"""Style control: Bradley-Terry with style covariates, and length-controlled win rates.

Style-controlled Bradley-Terry (Chatbot Arena, "Does style matter? Disentangling style and
substance in Chatbot Arena", Li, Chiang et al., LMSYS blog, 2024-08-29). The plain
Bradley-Terry model is a logistic regression of "A beat B" on model indicators
(+1 for A's model, -1 for B's). Style control adds the responses' style differences as
covariates:

    logit P(A beats B) = (beta_{model_a} - beta_{model_b}) + sum_k gamma_k * z_k

where, for each style feature f_k (length in characters; counts of markdown headers, list items
and bold spans), d_k = (f_k(A) - f_k(B)) / (f_k(A) + f_k(B)) (0 when both are 0), and z_k is
d_k standardised over the comparisons (subtract the mean, divide by the standard deviation;
a feature that never varies is dropped). The style-controlled score of a model is its beta:
its strength once style is held equal. Scores are put on the Elo scale as Arena does,
Elo = 1000 + 400 / ln(10) * (beta - mean(beta)). A tie counts half a win each way (two rows of
weight 1/2, Arena's convention). Intervals: Wald intervals from the observed information
(the inverse Hessian of the log-likelihood), for the centred contrast beta_m - mean(beta).

Length-controlled win rate (AlpacaEval 2: Dubois, Galambosi, Liang, Hashimoto, 2024,
"Length-Controlled AlpacaEval: A Simple Way to Debias Automatic Evaluators", eq. 2). Per model m,
over its comparisons with any other model (the pooled opponents play AlpacaEval's baseline):

    logit P(m wins) = theta_m + phi_m * tanh(delta_len / sd(delta_len))

where delta_len = len(m's response) - len(the opponent's), sd over every comparison of the rater
group; the length-controlled win rate is sigmoid(theta_m), the win rate the regression predicts
at equal length. AlpacaEval's instruction-difficulty term is left out: it needs a model fitted
on a fixed baseline over every instruction, and here opponents vary. Ties count half.

Both fits are maximum likelihood by Newton's method with a ridge of RIDGE on the coefficients,
too small to move a well-posed fit (the tests hold it to scikit-learn's unpenalised fit) but
enough to keep the iterate finite where no finite maximum exists: a model that never lost or
never won (the fit is then flagged, as the plain board is), or a covariate that separates the
outcomes. A style covariate that is a linear combination of the model indicators and the
other covariates (e.g. one model always writes lists) carries no information of its own and
is dropped (STYLE_FEATURES that were used are listed with the board).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .leaderboard import ELO_MEAN, ELO_SCALE, mle_exists, models_compared
from .memo import memoised
from .verdicts import TIE, A, B

STYLE_FEATURES = ("length", "headers", "list_items", "bold")
Z95 = 1.959963984540054
RIDGE = 1e-6
ELO_PER_LOGIT = ELO_SCALE / math.log(10.0)

_HEADER = re.compile(r"^\s{0,3}#{1,6}\s+\S", re.MULTILINE)
_LIST_ITEM = re.compile(r"^\s*(?:[-*+]|\d+[.)])\s+\S", re.MULTILINE)
_BOLD = re.compile(r"\*\*[^*\n]+\*\*|__[^_\n]+__")


def markdown_counts(text: str) -> dict[str, int]:
    """Arena's style features of one response: its length (characters here; Arena counts
    tokens) and its markdown headers, list items and bold spans."""
    return {
        "length": len(text),
        "headers": len(_HEADER.findall(text)),
        "list_items": len(_LIST_ITEM.findall(text)),
        "bold": len(_BOLD.findall(text)),
    }


def style_differences(fa: np.ndarray, fb: np.ndarray) -> np.ndarray:
    """(f(A) - f(B)) / (f(A) + f(B)) per comparison and feature, 0 where both are 0."""
    fa, fb = np.asarray(fa, dtype=float), np.asarray(fb, dtype=float)
    total = fa + fb
    with np.errstate(all="ignore"):
        return np.where(total > 0, (fa - fb) / np.where(total > 0, total, 1.0), 0.0)


def standardise(d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Columns standardised to mean 0 and (population) standard deviation 1; columns that do not
    vary are dropped. Returns (z, kept column mask)."""
    d = np.atleast_2d(np.asarray(d, dtype=float))
    sd = d.std(axis=0)
    keep = sd > 1e-12
    return (d[:, keep] - d[:, keep].mean(axis=0)) / sd[keep], keep


def weighted_logistic(
    x: np.ndarray, y: np.ndarray, w: np.ndarray, *, ridge: float = RIDGE, max_iter: int = 100, tol: float = 1e-10
) -> tuple[np.ndarray, np.ndarray]:
    """Maximum-likelihood logistic regression without intercept (add a column of ones for one),
    weights w per row; Newton-Raphson. Returns (coefficients, covariance = inverse Hessian of
    the negative log-likelihood at the optimum)."""
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    w = np.asarray(w, dtype=float)
    p = x.shape[1]
    beta = np.zeros(p)
    hessian = np.eye(p)
    for _ in range(max_iter):
        mu = _mu(x @ beta)
        grad = x.T @ (w * (y - mu)) - ridge * beta
        hessian = (x * (w * mu * (1 - mu))[:, None]).T @ x + ridge * np.eye(p)
        step = np.linalg.lstsq(hessian, grad, rcond=None)[0]
        beta = beta + step
        if np.max(np.abs(step)) < tol:
            break
    mu = _mu(x @ beta)
    hessian = (x * (w * mu * (1 - mu))[:, None]).T @ x + ridge * np.eye(p)
    return beta, np.linalg.pinv(hessian)


def _features_of(styles: pd.DataFrame, responses: np.ndarray) -> np.ndarray:
    """STYLE_FEATURES of each response (rows in `responses`' order), 0 for a response without
    a style row: what a reindex of the styles by response and fillna(0) gives, by one lookup."""
    at = pd.Index(styles["response"].to_numpy()).get_indexer(responses) if len(styles) else np.full(len(responses), -1)
    values = styles[list(STYLE_FEATURES)].to_numpy(dtype=float)
    # Column-major, as a frame's block reads out: the sums over comparisons below then add in
    # the same order as before, to the last bit.
    out = np.zeros((len(responses), len(STYLE_FEATURES)), order="F")
    found = at >= 0
    out[found] = values[at[found]]
    return out


def _mu(eta: np.ndarray) -> np.ndarray:
    # Clipped so exp never overflows while a separated fit walks off towards infinity.
    return 1.0 / (1.0 + np.exp(-np.clip(eta, -35.0, 35.0)))


def independent_columns(x: np.ndarray, fixed: int) -> np.ndarray:
    """Mask of the columns to keep: the first `fixed` always, each later one only if it adds to
    the rank of those kept before it."""
    # rank(X[:, S]) = rank of the Gram matrix's S x S block: p x p work instead of n x p.
    gram = x.T @ x
    keep = np.zeros(x.shape[1], dtype=bool)
    keep[:fixed] = True
    rank = np.linalg.matrix_rank(gram[:fixed, :fixed]) if fixed else 0
    for k in range(fixed, x.shape[1]):
        trial = keep.copy()
        trial[k] = True
        r = np.linalg.matrix_rank(gram[np.ix_(trial, trial)])
        if r > rank:
            keep, rank = trial, r
    return keep


def _outcome_rows(verdict: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows (index into the comparisons, y = 1 if A won, weight): a decided verdict is one row of
    weight 1, a tie two rows (y = 1 and y = 0) of weight 1/2."""
    v = np.asarray(verdict, dtype=np.int64)
    idx = np.arange(len(v))
    tie = v == TIE
    rows = np.concatenate([idx, idx[tie]])
    # First rows: 1 when A won or tied (the tie's winning half), 0 when B won; then the ties'
    # losing halves.
    y = np.concatenate([(v != B).astype(float), np.zeros(int(tie.sum()))])
    w = np.concatenate([np.where(tie, 0.5, 1.0), np.full(int(tie.sum()), 0.5)])
    return rows, y, w


@dataclass
class StyleBoard:
    models: list[str]
    n: int
    elo: np.ndarray  # style-controlled, Elo scale, mean 1000
    ci: np.ndarray | None  # (2, m) Wald 95%
    features: list[str] = field(default_factory=list)  # covariates that varied and were used
    coefficients: dict[str, float] = field(default_factory=dict)  # gamma per feature (logit units)
    identifiable: bool = True


@memoised
def style_controlled_bt(comps: pd.DataFrame, styles: pd.DataFrame, *, control: bool = True) -> StyleBoard:
    """comps: model_a, model_b, verdict, response_a, response_b (one row per comparison);
    styles: response -> the STYLE_FEATURES columns. control=False fits the plain Bradley-Terry
    model the same way (the reference against which style control is read)."""
    models = models_compared(comps)
    m = len(models)
    if m < 2 or comps.empty:
        return StyleBoard(models=models, n=len(comps), elo=np.full(m, ELO_MEAN), ci=None)
    # Position in the sorted model list as categorical codes over those categories (one recode
    # of the categories, not a dict lookup per comparison; .map on the report's categorical
    # label columns would keep a categorical dtype rather than give integers).
    ia = pd.Categorical(comps["model_a"], categories=models).codes.astype(np.int64)
    ib = pd.Categorical(comps["model_b"], categories=models).codes.astype(np.int64)
    design = np.zeros((len(comps), m))
    design[np.arange(len(comps)), ia] += 1.0
    design[np.arange(len(comps)), ib] -= 1.0
    used: list[str] = []
    if control:
        fa, fb = _features_of(styles, comps["response_a"].to_numpy()), _features_of(styles, comps["response_b"].to_numpy())
        z, keep = standardise(style_differences(fa, fb))
        used = [f for f, k in zip(STYLE_FEATURES, keep, strict=True) if k]
        design = np.column_stack([design, z])
    # The model columns sum to zero on every row: fix the first model's beta at 0 (dropping its
    # column) and centre afterwards.
    x = design[:, 1:]
    if used:
        independent = independent_columns(x, m - 1)
        used = [f for f, k in zip(used, independent[m - 1 :], strict=True) if k]
        x = x[:, independent]
    v = comps["verdict"].to_numpy()
    rows, y, w = _outcome_rows(v)
    # Wins of row over column, a tie half each way (halves and ones: their sums are exact).
    half = np.where(v == TIE, 0.5, 0.0)
    won = (np.bincount(ia * m + ib, weights=np.where(v == A, 1.0, half), minlength=m * m)
           + np.bincount(ib * m + ia, weights=np.where(v == B, 1.0, half), minlength=m * m)).reshape(m, m)  # fmt: skip
    identifiable = mle_exists(won)
    if used:
        coef, cov = weighted_logistic(x[rows], y, w)
    else:
        # Model columns only: a row is one of m * (m - 1) * 2 kinds ((a, b), y), so the fit runs on
        # the kinds with their weights summed, the same likelihood (its sums in another order)
        # over a hundred rows instead of every comparison.
        kind = (ia * m + ib)[rows] * 2 + y.astype(np.int64)
        kinds, first, which = np.unique(kind, return_index=True, return_inverse=True)
        coef, cov = weighted_logistic(x[rows][first], (kinds % 2).astype(float), np.bincount(which, weights=w))
    beta = np.concatenate([[0.0], coef[: m - 1]])
    full_cov = np.zeros((m, m))
    full_cov[1:, 1:] = cov[: m - 1, : m - 1]
    centre = np.eye(m) - 1.0 / m
    elo = ELO_MEAN + ELO_PER_LOGIT * (centre @ beta)
    se = ELO_PER_LOGIT * np.sqrt(np.clip(np.diag(centre @ full_cov @ centre.T), 0, None))
    ci = np.vstack([elo - Z95 * se, elo + Z95 * se])
    gammas = {f: float(g) for f, g in zip(used, coef[m - 1 :], strict=True)}
    return StyleBoard(models=models, n=len(comps), elo=elo, ci=ci, features=used, coefficients=gammas,
                      identifiable=identifiable)  # fmt: skip


@dataclass
class LengthControlled:
    model: str
    n: int
    win_rate: float  # raw, ties half
    lc_win_rate: float | None
    ci: tuple[float, float] | None  # Wald on theta, mapped through the sigmoid
    length_coefficient: float | None  # phi


def length_controlled_win_rates(comps: pd.DataFrame) -> list[LengthControlled]:
    """comps: model_a, model_b, verdict, len_a, len_b. One LengthControlled per model."""
    if comps.empty:
        return []
    delta = (comps["len_a"].to_numpy(dtype=float) - comps["len_b"].to_numpy(dtype=float))
    sd = float(delta.std())
    v = comps["verdict"].to_numpy()
    models = models_compared(comps)
    # Each comparison's two models as positions in the sorted list (one recode per side, not a
    # string comparison of every row per model).
    code_a = pd.Categorical(comps["model_a"], categories=models).codes
    code_b = pd.Categorical(comps["model_b"], categories=models).codes
    out = []
    for k, model in enumerate(models):
        as_a = code_a == k
        as_b = code_b == k
        sel = as_a | as_b
        if not sel.any():
            continue
        # From m's side: its length minus the opponent's, and its verdict recoded so "A" = m won.
        d = np.where(as_a, delta, -delta)[sel]
        own = np.where(as_a, v, 2 - v)[sel]
        win_rate = float(np.mean(np.where(own == TIE, 0.5, (own == A).astype(float))))
        lc: float | None = None
        ci: tuple[float, float] | None = None
        phi: float | None = None
        # theta is finite only when m both won and lost something (a tie is half of each).
        if (own != B).any() and (own != A).any():
            x = np.column_stack([np.ones(len(d)), np.tanh(d / sd) if sd > 0 else np.zeros(len(d))])
            if sd == 0 or np.ptp(x[:, 1]) == 0:
                x = x[:, :1]
            rows, y, w = _outcome_rows(own)
            coef, cov = weighted_logistic(x[rows], y, w)
            theta, se = float(coef[0]), float(math.sqrt(max(cov[0, 0], 0.0)))
            lc = _sigmoid(theta)
            ci = (_sigmoid(theta - Z95 * se), _sigmoid(theta + Z95 * se))
            phi = float(coef[1]) if x.shape[1] > 1 else None
        out.append(LengthControlled(model=model, n=int(sel.sum()), win_rate=win_rate, lc_win_rate=lc, ci=ci,
                                    length_coefficient=phi))  # fmt: skip
    return out


def _sigmoid(t: float) -> float:
    return 1.0 / (1.0 + math.exp(-t))
