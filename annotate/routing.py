"""Routing policies: how many human labels a pair still needs, how urgently, and why.

Pure functions over what is known about one pair (its human verdicts so far, earliest first, and
what a qualified judge or panel said of it): no ORM, no clock, no randomness that is not derived
from the pair's own key. The queue, the preview of a policy's cost and bench/routing.py all call
these same functions, so the bench measures the rule the queue serves by.

Policies (issue 13):
- uniform overlap: every pair gets `overlap` humans (what Concordance did before);
- adaptive overlap: a pair stops when its first k humans agree, and asks more humans, up to the
  cap, when they disagree. With k = 2 and a cap of 3 this never changes a majority-of-three gold:
  two agreeing votes already are its majority;
- judge routing: a qualified judge (or panel) whose calibrated confidence is above a threshold
  stands in for one of the k agreeing humans. Its pair is closed once its first human agrees
  with it (or, with min_humans = 0, on the judge alone); a human who disagrees sends the pair
  back to humans-only adaptive overlap, so a confident but wrong judge costs one label, not the
  gold. A pair whose judge is unsure, or whose two shown orders disagree, is served first and
  gets the full overlap. A spot-check share of confident pairs is routed as if no judge existed,
  to keep measuring the judge on live data;
- active pair selection (leaderboards): `bt_label_values` says how much one more label on a model
  pair would narrow the Bradley-Terry intervals that decide the ranking.

Verdict codes are annotate.verdicts' (0 = A, 1 = tie, 2 = B); gold is its gold_label.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from .verdicts import VERDICT_LABELS, gold_label

PolicyKind = Literal["uniform", "adaptive", "judge"]
POLICY_KINDS: tuple[PolicyKind, ...] = ("uniform", "adaptive", "judge")
UnsureRule = Literal["full", "adaptive"]

# Reason codes, stored with every decision so a report can say how each gold label was reached.
UNIFORM = "uniform"
NEED_K = "need_k"  # fewer than k humans so far
AGREED = "agreed"  # the first k humans agree
DISAGREED = "disagreed"  # humans disagree: one more, up to the cap
CAP = "cap"  # the cap is reached, whatever the votes
NO_JUDGE = "no_judge"  # no qualified judge signal: adaptive overlap
ORDERS_DISAGREE = "orders_disagree"  # the judge's two shown orders disagree
JUDGE_UNSURE = "judge_unsure"  # calibrated confidence below the threshold
SPOT_CHECK = "spot_check"  # a confident pair drawn for a humans-only check
JUDGE_CONFIRMED = "judge_confirmed"  # the first human agrees with a confident judge
JUDGE_CONTRADICTED = "judge_contradicted"  # a human disagrees with a confident judge
JUDGE_ONLY = "judge_only"  # a confident judge and min_humans = 0: no human asked

# Priorities: higher is served first. Unsure and order-inconsistent pairs go first (their humans
# are the ones that matter); confident pairs last.
PRIORITY_ORDERS_DISAGREE = 3.0
PRIORITY_UNSURE = 2.0  # plus (1 - confidence): the least sure first
PRIORITY_NORMAL = 1.0
PRIORITY_CONFIDENT = 0.0


@dataclass(frozen=True)
class Policy:
    kind: PolicyKind = "uniform"
    overlap: int = 3  # uniform overlap, and the cap (full overlap) of the other policies
    k: int = 2
    threshold: float = 0.8  # calibrated confidence a judge needs to stand in for a human
    min_humans: int = 1  # humans a confidently judged pair still gets (0: the judge alone)
    spot_check_rate: float = 0.1
    unsure: UnsureRule = "full"

    def __post_init__(self) -> None:
        if self.kind not in POLICY_KINDS:
            raise ValueError(f"policy must be one of {POLICY_KINDS}, got {self.kind!r}")
        if not 1 <= self.k <= self.overlap:
            raise ValueError("k must be between 1 and the overlap cap")
        if not 0.0 <= self.threshold <= 1.0 or not 0.0 <= self.spot_check_rate <= 1.0:
            raise ValueError("threshold and spot-check rate are probabilities")
        if self.min_humans not in (0, 1):
            raise ValueError("min_humans is 0 (judge alone) or 1 (one confirming human)")


@dataclass(frozen=True)
class JudgeSignal:
    """What a qualified judge or panel said of one pair: its combined verdict (annotate.verdicts
    codes), the calibrated probability that it matches human gold, and whether its two shown
    orders agreed."""

    verdict: int
    confidence: float
    orders_agree: bool = True


@dataclass(frozen=True)
class Decision:
    need_more: bool  # ask another human now
    priority: float
    reason: str
    detail: str


def _counts(verdicts: Sequence[int]) -> list[int]:
    return [sum(1 for v in verdicts if v == code) for code in range(3)]


def uniform_decision(verdicts: Sequence[int], *, overlap: int) -> Decision:
    n = len(verdicts)
    if n >= overlap:
        return Decision(False, PRIORITY_NORMAL, CAP, f"{n} of {overlap} humans")
    return Decision(True, PRIORITY_NORMAL, UNIFORM, f"{n} of {overlap} humans")


def adaptive_decision(verdicts: Sequence[int], *, k: int, cap: int, priority: float = PRIORITY_NORMAL) -> Decision:
    n = len(verdicts)
    top = max(_counts(verdicts)) if n else 0
    if top >= k:
        label = VERDICT_LABELS[_counts(verdicts).index(top)]
        return Decision(False, priority, AGREED, f"{top} humans agree on {label}")
    if n >= cap:
        return Decision(False, priority, CAP, f"no {k} humans agree after the cap of {cap}")
    if n < k:
        return Decision(True, priority, NEED_K, f"{n} of the first {k} humans")
    return Decision(True, priority, DISAGREED, f"{n} humans disagree: one more (cap {cap})")


def is_spot_check(pair_key: int, *, rate: float, seed: int = 0) -> bool:
    """Whether a pair is drawn for a humans-only spot check: a fixed function of its key, so the
    draw never changes between requests (a pair cannot flip in and out of the check)."""
    if rate <= 0.0:
        return False
    h = (int(pair_key) * 2654435761 + int(seed) * 40503 + 12345) % (1 << 32)  # Knuth's multiplicative hash
    return h / float(1 << 32) < rate


def judge_decision(verdicts: Sequence[int], signal: JudgeSignal | None, *, policy: Policy, spot_check: bool) -> Decision:
    cap, k = policy.overlap, policy.k
    n = len(verdicts)
    if signal is None:
        d = adaptive_decision(verdicts, k=k, cap=cap)
        return Decision(d.need_more, d.priority, d.reason if not d.need_more else NO_JUDGE, f"no qualified judge; {d.detail}")
    if not signal.orders_agree or signal.confidence < policy.threshold:
        code = ORDERS_DISAGREE if not signal.orders_agree else JUDGE_UNSURE
        priority = PRIORITY_ORDERS_DISAGREE if not signal.orders_agree else PRIORITY_UNSURE + (1.0 - signal.confidence)
        why = ("the judge's two orders disagree" if not signal.orders_agree
               else f"judge confidence {signal.confidence:.2f} < {policy.threshold:.2f}")
        if policy.unsure == "full":
            return Decision(n < cap, priority, code, f"{why}: full overlap ({n} of {cap})")
        d = adaptive_decision(verdicts, k=k, cap=cap, priority=priority)
        return Decision(d.need_more, priority, code if d.need_more else d.reason, f"{why}; {d.detail}")
    if spot_check:
        d = adaptive_decision(verdicts, k=k, cap=cap)
        return Decision(d.need_more, d.priority, SPOT_CHECK if d.need_more else d.reason, f"spot check; {d.detail}")
    conf = f"judge confident ({signal.confidence:.2f})"
    if n == 0:
        if policy.min_humans == 0:
            return Decision(False, PRIORITY_CONFIDENT, JUDGE_ONLY, f"{conf}: no human needed")
        return Decision(True, PRIORITY_CONFIDENT, NEED_K, f"{conf}: one confirming human")
    if all(v == signal.verdict for v in verdicts):
        return Decision(False, PRIORITY_CONFIDENT, JUDGE_CONFIRMED, f"{conf} and {n} human(s) agree")
    d = adaptive_decision(verdicts, k=k, cap=cap)
    return Decision(d.need_more, d.priority, JUDGE_CONTRADICTED if d.need_more else d.reason,
                    f"a human disagrees with the judge; {d.detail}")


LABELS_ONLY = ("uniform", "adaptive")  # policy kinds whose decision reads the human verdicts alone


def reads_labels_only(policy: Policy) -> bool:
    """Whether decide() under this policy reads only the pair's human verdicts (not its judge
    signal, key or seed): then two pairs with the same verdicts get the same decisions."""
    return policy.kind in LABELS_ONLY


def decide(policy: Policy, verdicts: Sequence[int], signal: JudgeSignal | None = None, *,
           pair_key: int = 0, seed: int = 0) -> Decision:
    """The decision for one pair under a policy, from its human verdicts (earliest first)."""
    if policy.kind == "uniform":
        return uniform_decision(verdicts, overlap=policy.overlap)
    if policy.kind == "adaptive":
        return adaptive_decision(verdicts, k=policy.k, cap=policy.overlap)
    spot = is_spot_check(pair_key, rate=policy.spot_check_rate, seed=seed)
    return judge_decision(verdicts, signal, policy=policy, spot_check=spot)


def routed_gold(verdicts: Sequence[int], signal: JudgeSignal | None, decision: Decision) -> int | None:
    """The gold a routed pair ends with: annotate.verdicts' gold of its human votes; the judge's
    verdict only for a pair closed on the judge alone (reason JUDGE_ONLY), which a report must
    show as judge gold, not human gold."""
    if verdicts:
        label = gold_label([v - 1 for v in verdicts])  # verdict code - 1 is a strength of that sign
        return VERDICT_LABELS.index(label) if label is not None else None
    if decision.reason == JUDGE_ONLY and signal is not None:
        return signal.verdict
    return None


# --- active pair selection for Bradley-Terry leaderboards ------------------------------------------

LN10_OVER_400 = np.log(10.0) / 400.0


def bt_label_values(elo: np.ndarray, games: np.ndarray, *, prior_games: float = 1.0) -> np.ndarray:
    """How much one more comparison of models a and b narrows the Bradley-Terry intervals that
    decide the ranking: value[a, b] = sum over model pairs (i, j) of P(i, j ranked the wrong way)
    times the share of Var(theta_i - theta_j) the label removes.

    elo: (m,) current ratings (reports.metrics.leaderboard.bradley_terry_elo of the labels so
    far); games: (m, m) comparisons so far per model pair (symmetric). The Fisher information of
    the BT log-strengths is sum n_ij p_ij (1 - p_ij) (e_i - e_j)(e_i - e_j)^T plus `prior_games`
    virtual comparisons per pair (so a pair never compared has finite variance); the gauge (mean
    strength) is fixed by adding 11^T / m. One label on (a, b) adds q u u^T with u = e_a - e_b,
    q = p_ab (1 - p_ab); Sherman-Morrison gives each variance's reduction in closed form."""
    theta = np.asarray(elo, dtype=np.float64) * LN10_OVER_400
    m = len(theta)
    g = np.asarray(games, dtype=np.float64)
    g = (g + g.T) / 2 + prior_games * (1 - np.eye(m))
    p = 1.0 / (1.0 + np.exp(-(theta[:, None] - theta[None, :])))
    q = p * (1 - p)
    w = g * q
    info = np.diag(w.sum(axis=1)) - w + np.ones((m, m)) / m
    sigma = np.linalg.inv(info)
    iu, ju = np.triu_indices(m, k=1)
    var = sigma[iu, iu] + sigma[ju, ju] - 2 * sigma[iu, ju]  # Var(theta_i - theta_j)
    sd = np.sqrt(np.maximum(var, 1e-12))
    # P(wrong order) = Phi(-|d| / sd), written with math.erfc: importing scipy.stats here would
    # load it into every web process (the queue imports this module) for a handful of numbers.
    wrong = np.array([0.5 * math.erfc(z / math.sqrt(2.0)) for z in np.abs(theta[iu] - theta[ju]) / sd])
    values = np.zeros((m, m))
    for a, b in zip(iu, ju, strict=True):
        # sigma u for u = e_a - e_b, and v^T sigma u for every target pair v = e_i - e_j.
        su = sigma[:, a] - sigma[:, b]
        usu = su[a] - su[b]
        vsu = su[iu] - su[ju]
        reduction = q[a, b] * vsu**2 / (1.0 + q[a, b] * usu)
        values[a, b] = values[b, a] = float(np.sum(wrong * reduction / var))
    return values
