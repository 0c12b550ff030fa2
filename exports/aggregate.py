"""HelpSteer2-style aggregation, as pure functions over plain values (no ORM).

The rules are the ones in shared/specs/METRICS.md, "HelpSteer2-style aggregation": of n >= 3
annotations keep the 3 with the smallest range (ties: the earliest three), export their mean
rounded half up; with n < 3 the mean of those present, with the count beside it.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from itertools import combinations

SIMILAR = 3


def round_half_up(value: Fraction | int | float) -> int:
    """Round to the nearest integer, halves away from zero.

    Python's round() is banker's rounding (2.5 -> 2), which the spec rules out. For negative
    strengths we round halves away from zero (-1.5 -> -2) so that swapping response_1 and
    response_2 exactly negates the exported strength. Fractions keep 2.5 exact: float means of
    three integers (e.g. 7/3) never land on a false half."""
    frac = Fraction(value)
    return round_ratio(frac.numerator, frac.denominator)


def round_ratio(numerator: int, denominator: int) -> int:
    """round_half_up(numerator / denominator) in integers: the exporter calls it per row."""
    magnitude = (2 * abs(numerator) + denominator) // (2 * denominator)
    return -magnitude if (numerator < 0) != (denominator < 0) else magnitude


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


def verdict(strength: int | float | Fraction) -> str:
    if strength < 0:
        return "A"
    if strength > 0:
        return "B"
    return "tie"


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
    stored order): MT-Bench's rule, the verdict both orders agree on, else a tie; the strength
    is then the mean of the two, rounded half up."""
    if len(strengths) == 1:
        return strengths[0]
    verdicts = {verdict(s) for s in strengths}
    if len(verdicts) != 1:
        return 0
    return round_ratio(sum(strengths), len(strengths))


def majority_verdict(votes: Sequence[Vote]) -> str | None:
    """Gold for a pair: the majority verdict; a tie between counts falls to the verdict of the
    earliest vote among the tied ones (METRICS.md, "Gold")."""
    if not votes:
        return None
    counts = Counter(verdict(v.strength) for v in votes)
    top = max(counts.values())
    for v in votes:
        if counts[verdict(v.strength)] == top:
            return verdict(v.strength)
    return None  # unreachable
