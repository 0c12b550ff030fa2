"""The figures of a judge's report card that the bias audit (judges.py) does not already have.

Agreement with gold: accuracy and macro F1 as classification.py defines them (PandaLM's
definitions) and Cohen's kappa (agreement.py) of the rater against gold, from one 3x3
confusion (gold in rows), so the three share one bootstrap.

Preference fairness (Shi, Ma, Liang, Diao, Ma, Vosoughi, 2024/2025, "Judging the Judges: A
Systematic Study of Position Bias in LLM-as-a-Judge", arXiv:2406.07791, section 3, "Preference
Fairness"). Over the n pairs a judge saw in both orders, a pair is *primacy-preferred* when the
judge picks whatever is shown first in both orders and *recency-preferred* when it picks
whatever is shown second in both; pc and rc count them. With ipr = pc / n and irr = rc / n (the
inconsistent primacy and recency rates), the paper's raw score is

    PF_raw = rc * irr - pc * ipr

and the score is PF_raw min-max scaled to [-1, 1] between the extremes the judge's own counts
allow (every one of its pc + rc position-preferred pairs primacy-preferred: S_min =
-(pc + rc)^2 / n; every one recency-preferred: S_max = (pc + rc)^2 / n):

    PF = (PF_raw - S_min) / (S_max - S_min) * 2 - 1  =  (rc - pc) / (rc + pc)

0 is fair, -1 always the first shown, +1 always the second. A judge with no position-preferred
pair (every pair consistent, or inconsistent only through a tie) is fair: PF = 0.

Repetition stability (Shi et al., same paper, section 3, "Repetition Stability"): over the
units judged more than once in the same shown order, the mean share of the most frequent
verdict among the unit's trials,

    RS = (1 / |Q|) * sum_q max_c (count of verdict c on q / trials of q),

1 = the same verdict every time, 1/3 = as random as three options allow. Greedy decoding
(temperature 0) is deterministic, so a greedy judge that was never run twice has RS = 1 by
construction: the card says so rather than measuring it.

Valid-answer mass: the mean, over a judge's judgments, of the probability its next-token
distribution put on the valid labels (A/B/C or the scale's digits) (Judgment.valid_mass; the
mass the verdict was read from, not a renormalised one). Low mass says the prompt or the model
does not fit the answer format.

Human reference row (AlpacaEval's leaderboard of evaluators compares judges to the agreement of
one human with the others): each human scored against the gold of the *other* humans
(annotate.verdicts.gold_verdicts over their verdicts), which is what a judge must beat.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from annotate.verdicts import leave_one_out_gold

from .agreement import cohen_kappa_from_confusion
from .bootstrap import Estimate, Resampler, per_unit_sums, ratio
from .classification import SCORES, scores_from_confusion
from .memo import by_rater, memoised
from .verdicts import A, B, both_orders, gold_at

CARD_SCORES = ("accuracy", "kappa", "macro_f1")
_F1 = SCORES.index("macro_f1")


def _card_scores(flat: np.ndarray) -> np.ndarray:
    """(..., 9) gold x rater confusion -> (..., 3): accuracy, Cohen's kappa, macro F1."""
    scores = scores_from_confusion(flat)
    kappa = cohen_kappa_from_confusion(flat.reshape(*flat.shape[:-1], 3, 3))
    return np.stack([scores[..., 0], kappa, scores[..., _F1]], axis=-1)


@dataclass
class GoldCard:
    n: int
    estimate: Estimate | None  # accuracy, kappa, macro_f1
    confusion: np.ndarray


def against_gold(verdicts: pd.DataFrame, gold: pd.DataFrame, boot: Resampler, key: Any = None) -> GoldCard:
    """verdicts: one rater's combined verdicts (pair, verdict); gold: pair, item, gold."""
    at, g = gold_at(verdicts["pair"], gold)
    keep = (at >= 0) & (g >= 0)  # the pairs with a gold verdict (an inner join on pair)
    return gold_card(gold["item"].to_numpy(dtype=np.int64)[at[keep]], g[keep],
                     verdicts["verdict"].to_numpy(dtype=np.int64)[keep], boot, key)  # fmt: skip


def gold_card(item: np.ndarray, gold: np.ndarray, verdict: np.ndarray, boot: Resampler, key: Any = None) -> GoldCard:
    """The card's gold scores from matched rows: one per verdict that has a gold (A/tie/B).
    `key`: what the card is of (Estimate.key)."""
    cells = gold * 3 + verdict
    conf = np.bincount(cells, minlength=9).reshape(3, 3)
    if not len(cells):
        return GoldCard(n=0, estimate=None, confusion=conf)
    per_unit = per_unit_sums(item, cells, 1.0, n_units=boot.n_units, width=9)
    return GoldCard(n=len(cells), estimate=boot.estimate(per_unit, _card_scores, n=len(cells), key=key), confusion=conf)


POOLED_HUMANS = "humans (each vs the others)"


@memoised
def human_reference(verdicts: pd.DataFrame, boot: Resampler) -> dict[str, GoldCard]:
    """Each human's combined verdicts against the gold of the other humans (leave-one-out), and,
    with two or more such humans, all of them pooled under POOLED_HUMANS: one confusion of every
    human's verdicts against their own leave-one-out gold."""
    humans = verdicts[verdicts["kind"] == "human"]
    out: dict[str, GoldCard] = {}
    matched = []
    pair_codes, pairs = pd.factorize(humans["pair"])
    # Each vote's gold from the other humans' votes on its pair (what gold_verdicts gives on
    # the others' rows), all raters at once.
    others_gold = leave_one_out_gold(pair_codes, humans["verdict"].to_numpy(), humans["order"].to_numpy(), len(pairs))
    with_gold = humans[["rater", "pair", "item", "verdict"]].assign(gold=others_gold)
    with_gold = with_gold[others_gold >= 0]
    # In name order, not the rows' (which new rows move), each card keyed by its rater: a human's
    # first verdict adds a card among the others, and the rest keep their pairing with the
    # previous build's (reports.incremental).
    raters = sorted({str(r) for r in humans["rater"].unique()})
    for rater, mine in by_rater(with_gold, raters, ["pair", "verdict", "item", "gold"]).items():
        # One row per pair of this rater with the others' gold of it: against_gold's matched rows.
        card = gold_card(mine["item"].to_numpy(), mine["gold"].to_numpy(dtype=np.int64),
                         mine["verdict"].to_numpy(dtype=np.int64), boot, ("human_reference", rater))  # fmt: skip
        if card.n:
            out[rater] = card
            matched.append(mine)
    if len(matched) >= 2:
        m = pd.concat(matched, ignore_index=True)
        # One row per (human, pair): a key of its own so the join inside against_gold is 1:1.
        m = m.assign(pair=np.arange(len(m)))
        out[POOLED_HUMANS] = against_gold(m[["pair", "verdict"]], m[["pair", "item", "gold"]], boot,
                                          ("human_reference", POOLED_HUMANS))  # fmt: skip
    return out


def _fairness(s: np.ndarray) -> np.ndarray:
    rc, pc = s[..., 0], s[..., 1]
    with np.errstate(all="ignore"):
        return np.where(rc + pc > 0, (rc - pc) / np.where(rc + pc > 0, rc + pc, 1.0), 0.0)


def preference_fairness_score(rc: float, pc: float, n: float) -> float:
    """Shi et al.'s PF written as the paper does (PF_raw, min-max scaled); equals (rc - pc) / (rc + pc)."""
    if rc + pc == 0:
        return 0.0
    raw = rc * (rc / n) - pc * (pc / n)
    s_min, s_max = -((rc + pc) ** 2) / n, (rc + pc) ** 2 / n
    return (raw - s_min) / (s_max - s_min) * 2 - 1


@dataclass
class Fairness:
    n: int  # pairs seen in both orders
    primacy: int
    recency: int
    estimate: Estimate | None


def preference_fairness(prefs: pd.DataFrame, boot: Resampler) -> Fairness:
    """prefs: one rater's per-order rows (pair, item, strength, shown_order), stored order."""
    wide = both_orders(prefs)
    if wide.empty:
        return Fairness(n=0, primacy=0, recency=0, estimate=None)
    ab, ba = wide["ab"].to_numpy(), wide["ba"].to_numpy()
    # In stored order: shown first is A in the ab order and B in the ba order.
    primacy = (ab == A) & (ba == B)
    recency = (ab == B) & (ba == A)
    item = wide["item"].to_numpy()
    units = np.concatenate([item, item])
    cols = np.concatenate([np.zeros(len(item), np.int64), np.ones(len(item), np.int64)])
    per_unit = per_unit_sums(units, cols, np.concatenate([recency, primacy]).astype(float),
                             n_units=boot.n_units, width=2)  # fmt: skip
    est = boot.estimate(per_unit, _fairness, n=len(wide))
    return Fairness(n=len(wide), primacy=int(primacy.sum()), recency=int(recency.sum()), estimate=est)


@dataclass
class Repetition:
    n: int  # units judged at least twice
    estimate: Estimate | None
    greedy: bool  # temperature 0: deterministic, RS = 1 by construction when not measured
    value: float | None  # the figure shown: measured, or 1.0 for a greedy judge never repeated


def repetition_stability(trials: pd.DataFrame, boot: Resampler, *, temperature: float) -> Repetition:
    """trials: one judge's answered judgments (unit, item, verdict), one row per trial; unit names
    what was judged (a pair in one shown order, or a response on one attribute)."""
    greedy = temperature == 0
    counts = trials.groupby(["unit", "item", "verdict"], observed=True).size().rename("k").reset_index()
    per_unit = counts.groupby(["unit", "item"], observed=True)["k"].agg(["max", "sum"]).reset_index()
    per_unit = per_unit[per_unit["sum"] >= 2]
    if per_unit.empty:
        return Repetition(n=0, estimate=None, greedy=greedy, value=1.0 if greedy else None)
    share = per_unit["max"].to_numpy(dtype=float) / per_unit["sum"].to_numpy(dtype=float)
    item = per_unit["item"].to_numpy()
    units = np.concatenate([item, item])
    cols = np.concatenate([np.zeros(len(item), np.int64), np.ones(len(item), np.int64)])
    sums = per_unit_sums(units, cols, np.concatenate([share, np.ones(len(item))]), n_units=boot.n_units, width=2)
    est = boot.estimate(sums, ratio, n=len(per_unit))
    return Repetition(n=len(per_unit), estimate=est, greedy=greedy, value=float(share.mean()))


def mean_valid_mass(judgments: pd.DataFrame, boot: Resampler) -> Estimate | None:
    """judgments: item, valid_mass (NaN where the backend gave none: text-only answers)."""
    j = judgments.dropna(subset=["valid_mass"])
    if j.empty:
        return None
    item = j["item"].to_numpy()
    units = np.concatenate([item, item])
    cols = np.concatenate([np.zeros(len(item), np.int64), np.ones(len(item), np.int64)])
    vals = np.concatenate([j["valid_mass"].to_numpy(dtype=float), np.ones(len(item))])
    return boot.estimate(per_unit_sums(units, cols, vals, n_units=boot.n_units, width=2), ratio, n=len(j))


@dataclass
class Throughput:
    judgments: int
    seconds: float | None
    per_second: float | None
    latency_ms: float | None  # mean per judgment (its batch's time, as the worker records it)
    prompt_chars: float | None  # mean prompt size in characters
    # Tokens per judgment: means over the judgments whose worker recorded both counts (n of them).
    tokens_n: int = 0
    prompt_tokens: float | None = None
    generated_tokens: float | None = None
    tokens: float | None = None  # mean of prompt + generated


def throughput(judgments: pd.DataFrame, runs: pd.DataFrame) -> Throughput:
    """Judgments per second over the judge's runs: finished judgments over the runs' working
    time (first claim to last completion, per run, summed). judgments: latency_ms, size;
    runs: done, begin, end (timestamps).

    Tokens per judgment = mean over judgments j with both counts of (prompt_tokens_j +
    generated_tokens_j), where the counts are the backend's (input ids of the rendered prompt,
    or the server's `usage.prompt_tokens` and `usage.completion_tokens`): the cost measure of
    AlpacaEval's evaluator leaderboard (Dubois et al., 2023), per judgment instead of per 1000.
    Judgments without counts (older ones, servers without usage) are left out, and n says so."""
    done = int(runs["done"].sum()) if len(runs) else 0
    seconds = None
    if len(runs):
        spans = (pd.to_datetime(runs["end"]) - pd.to_datetime(runs["begin"])).dt.total_seconds()
        seconds = float(spans.dropna().clip(lower=0).sum()) or None
    latency = judgments["latency_ms"].dropna()
    size = judgments["size"].dropna()
    counted = (judgments[["prompt_tokens", "generated_tokens"]].dropna()
               if {"prompt_tokens", "generated_tokens"} <= set(judgments.columns) else pd.DataFrame())  # fmt: skip
    return Throughput(
        judgments=done, seconds=seconds, per_second=done / seconds if seconds else None,
        latency_ms=float(latency.mean()) if len(latency) else None,
        prompt_chars=float(size.mean()) if len(size) else None,
        tokens_n=len(counted),
        prompt_tokens=float(counted["prompt_tokens"].mean()) if len(counted) else None,
        generated_tokens=float(counted["generated_tokens"].mean()) if len(counted) else None,
        tokens=float((counted["prompt_tokens"] + counted["generated_tokens"]).mean()) if len(counted) else None,
    )
