"""HelpSteer2-style aggregation, as pure functions over plain values (no ORM).

The rules are the ones in shared/specs/METRICS.md, "HelpSteer2-style aggregation": of n >= 3
annotations keep the 3 with the smallest range (ties: the earliest three), export their mean
rounded half up; with n < 3 the mean of those present, with the count beside it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from itertools import combinations

from annotate.verdicts import combine_strengths, gold_label, round_ratio
from annotate.verdicts import verdict_label as verdict

__all__ = [
    "PreferenceAggregate", "ScoreAggregate", "Vote", "aggregate_preferences", "aggregate_scores",
    "combine_orders", "majority_verdict", "mean", "most_similar_indices", "round_half_up",
    "round_ratio", "score_agreement", "split_justification", "verdict",
]

SIMILAR = 3


def round_half_up(value: Fraction | int | float) -> int:
    """Round to the nearest integer, halves away from zero (annotate.verdicts.round_ratio).

    Python's round() is banker's rounding (2.5 -> 2), which the spec rules out. Fractions keep
    2.5 exact: float means of three integers (e.g. 7/3) never land on a false half."""
    frac = Fraction(value)
    return round_ratio(frac.numerator, frac.denominator)


def most_similar_indices(values: Sequence[int], k: int = SIMILAR) -> tuple[int, ...]:
    """Indices of the k values with the smallest range; ties go to the earliest k.

    "Earliest" is lexicographic order of the index tuples, i.e. the tuple whose first index is
    smallest, then the second, ... `values` must be in annotation order (earliest first)."""
    n = len(values)
    if n <= k:
        return tuple(range(n))
    best: tuple[int, ...] = ()
    best_range: int | None = None
    # combinations() yields index tuples in lexicographic order, so the first minimum found is
    # the earliest one; n is the overlap of one item (a handful), so this stays cheap.
    for combo in combinations(range(n), k):
        picked = [values[i] for i in combo]
        spread = max(picked) - min(picked)
        if best_range is None or spread < best_range:
            best, best_range = combo, spread
            if spread == 0:
                break
    return best


def mean(values: Sequence[int]) -> Fraction:
    return Fraction(sum(values), len(values))


@dataclass(frozen=True)
class ScoreAggregate:
    value: int | None  # None when nobody rated
    count: int  # annotations present (n), not only the ones used
    used: tuple[int, ...]  # the values that made the mean


def aggregate_scores(values: Sequence[int]) -> ScoreAggregate:
    """The exported score of one response and attribute from its ratings (earliest first)."""
    if not values:
        return ScoreAggregate(value=None, count=0, used=())
    used = tuple(values[i] for i in most_similar_indices(values))
    return ScoreAggregate(value=round_ratio(sum(used), len(used)), count=len(values), used=used)


def score_agreement(values: Sequence[int], exported: int | None) -> float:
    """Share of ratings within one point of the exported value (1.0 with no ratings)."""
    if not values or exported is None:
        return 1.0
    return sum(1 for v in values if abs(v - exported) <= 1) / len(values)


@dataclass(frozen=True)
class Vote:
    """One rater's preference on a pair, in stored order (negative = response_1 better)."""

    strength: int
    justification: str = ""
    rater: str = ""


_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n+")


def split_justification(text: str) -> tuple[str, str]:
    """(statement, elaboration): HelpSteer2-Preference asked for a one-sentence statement and an
    elaboration; we store one justification, so its first sentence is the statement."""
    text = text.strip()
    if not text:
        return "", ""
    parts = _SENTENCE_END.split(text, maxsplit=1)
    statement = parts[0].strip()
    elaboration = parts[1].strip() if len(parts) > 1 else ""
    return statement, elaboration


@dataclass(frozen=True)
class PreferenceAggregate:
    strength: int | None
    count: int
    statement: str
    elaboration: str
    three_most_similar: list[dict]
    all_unprocessed: list[dict]
    agreement: float  # share of votes whose verdict matches the exported strength's


def aggregate_preferences(votes: Sequence[Vote]) -> PreferenceAggregate:
    """HelpSteer2-Preference's row for one pair from its votes (earliest first)."""
    unprocessed = [{"strength": v.strength, "justification": v.justification} for v in votes]
    if not votes:
        return PreferenceAggregate(None, 0, "", "", [], unprocessed, 1.0)
    picked = [votes[i] for i in most_similar_indices([v.strength for v in votes])]
    total, k = sum(v.strength for v in picked), len(picked)
    strength = round_ratio(total, k)
    # The statement comes from the annotator closest to the (unrounded) mean, total / k;
    # comparing |s*k - total| keeps it in integers, and min() keeps the earliest on ties.
    closest = min(range(k), key=lambda i: abs(picked[i].strength * k - total))
    texts = [split_justification(v.justification) for v in picked]
    statement, elaboration = texts[closest]
    similar = [
        {"statement": s, "elaboration": e, "strength": v.strength} for v, (s, e) in zip(picked, texts, strict=True)
    ]
    target = verdict(strength)
    agreement = sum(1 for v in votes if verdict(v.strength) == target) / len(votes)
    return PreferenceAggregate(
        strength=strength, count=len(votes), statement=statement, elaboration=elaboration,
        three_most_similar=similar, all_unprocessed=unprocessed, agreement=agreement,
    )


def combine_orders(strengths: Sequence[int]) -> int:
    """One strength for a rater that judged a pair in both shown orders (already mapped back to
    stored order): annotate.verdicts' combined strength (METRICS.md)."""
    return combine_strengths(strengths)


def majority_verdict(votes: Sequence[Vote]) -> str | None:
    """Gold for a pair from its votes, earliest first: annotate.verdicts' gold (METRICS.md)."""
    return gold_label([v.strength for v in votes])
