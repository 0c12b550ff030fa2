"""The verdict vocabulary: the one place that says what a strength means, how a rater's two shown
orders combine, and what gold is (shared/specs/METRICS.md). Judges, reports, exports and the
dashboard import it; nothing else may restate these rules.

Codes: 0 = A better, 1 = tie, 2 = B better (A and B in the pair's stored order), so that
sign(strength) + 1 is the verdict and 3x3 confusion matrices read A / tie / B.

Each rule has one definition, written over numpy arrays (the reports work on whole tables);
the scalar forms the exports and the dashboard call per vote or per pair, where numpy's per-call
cost would dominate, restate the same rule in plain Python beside it, and tests/test_verdicts.py
proves each scalar form equal to its array form over every case the scales allow (every strength,
every two orders, every sequence of up to five votes).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from .models import GOLD_SOURCE_CHOICES, STRENGTH_LABELS, Project, ShownOrder

A, TIE, B = 0, 1, 2
VERDICT_LABELS: tuple[str, str, str] = ("A", "tie", "B")
VerdictLabel = Literal["A", "tie", "B"]
SHOWN_ORDERS: tuple[str, ...] = tuple(ShownOrder.values)
# The same presentation of a pair's mirror: what was shown first is now the stored B.
SWAPPED_ORDER: Mapping[str, str] = {ShownOrder.AB.value: ShownOrder.BA.value, ShownOrder.BA.value: ShownOrder.AB.value}


# --- the verdict of a strength -----------------------------------------------------------------


def verdict_of(strength: np.ndarray | pd.Series | Sequence[float]) -> np.ndarray:
    """Verdict codes of strengths (or of score differences b - a): A if < 0, B if > 0, else tie."""
    return np.sign(np.asarray(strength, dtype=np.float64)).astype(np.int64) + 1


def verdict_code(strength: float) -> int:
    """verdict_of for one strength (the exports call it per vote)."""
    return int(strength > 0) - int(strength < 0) + 1


def verdict_label(strength: float) -> VerdictLabel:
    """"A", "tie" or "B" for one strength in stored order."""
    return VERDICT_LABELS[verdict_code(strength)]  # type: ignore[return-value]


# --- rounding half away from zero ---------------------------------------------------------------


def round_ratios(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """numerator / denominator rounded to the nearest integer, halves away from zero, in integers.

    Away from zero (not half up, not banker's) so that swapping A and B negates the result
    exactly; integers keep 2.5 exact where a float mean of three values (7/3) would not."""
    num = np.asarray(numerator, dtype=np.int64)
    den = np.asarray(denominator, dtype=np.int64)
    magnitude = (2 * np.abs(num) + np.abs(den)) // (2 * np.abs(den))
    return np.where((num < 0) != (den < 0), -magnitude, magnitude)


def round_ratio(numerator: int, denominator: int) -> int:
    """round_ratios for one ratio (the exports call it per row and attribute)."""
    magnitude = (2 * abs(numerator) + abs(denominator)) // (2 * abs(denominator))
    return -magnitude if (numerator < 0) != (denominator < 0) else magnitude


# --- one rater's shown orders combined ----------------------------------------------------------


def combined_strengths(total: np.ndarray, count: np.ndarray, agreed: np.ndarray) -> np.ndarray:
    """The combined strength of a rater on a pair, from the sum and number of its strengths
    (each already in stored order) and whether their verdicts all agree: 0 when they differ,
    else their mean rounded half away from zero. (-3, -1) -> -2; (-2, -1) -> -2; (1, 2) -> 2."""
    return np.where(np.asarray(agreed, dtype=bool), round_ratios(total, count), 0)


def combined_verdicts(vmin: np.ndarray, vmax: np.ndarray) -> np.ndarray:
    """MT-Bench's rule: the verdict all orders agree on (lowest code == highest code), else tie."""
    vmin, vmax = np.asarray(vmin), np.asarray(vmax)
    return np.where(vmin == vmax, vmin, TIE)


def combine_strengths(strengths: Sequence[int]) -> int:
    """The combined strength of one rater's strengths on one pair (stored order, any count >= 1)."""
    if not strengths:
        raise ValueError("no strengths to combine")
    agreed = len({verdict_code(s) for s in strengths}) == 1
    return round_ratio(sum(strengths), len(strengths)) if agreed else 0


def combine_orders(prefs: pd.DataFrame) -> pd.DataFrame:
    """One verdict and strength per (rater, pair) from preferences in stored order.

    `prefs`: rater, pair, strength, order (rank of the annotation, earliest first) and any
    pair-level columns (kind, item, model_a, model_b, len_a, len_b), which are kept from the
    rater's first row on the pair. Adds verdict and strength (combined) and order (the earliest
    of the rater's annotations). One row per (rater, pair) in the order of their first rows.

    Integer codes and bincounts, not a pandas group-by with five aggregations and a join (a
    fifth of a judge's absorb at 1M annotations went to it)."""
    pair_cols = [c for c in ("kind", "item", "model_a", "model_b", "len_a", "len_b") if c in prefs.columns]
    rater_codes, _ = pd.factorize(prefs["rater"])
    pair_codes, pairs = pd.factorize(prefs["pair"])
    keep = (rater_codes >= 0) & (pair_codes >= 0)  # a missing key has no group (as a group-by drops it)
    rows = np.flatnonzero(keep)
    group, firsts = pd.factorize(rater_codes[rows].astype(np.int64) * max(len(pairs), 1) + pair_codes[rows])
    n_groups = len(firsts)
    first = np.full(n_groups, len(prefs), dtype=np.int64)
    np.minimum.at(first, group, rows)  # each (rater, pair)'s first row: codes come in that order
    strength = prefs["strength"].to_numpy(dtype=np.int64)[rows]
    verdict = verdict_of(strength)
    per_verdict = np.bincount(group * 3 + verdict, minlength=n_groups * 3).reshape(n_groups, 3) > 0
    vmin = per_verdict.argmax(axis=1)
    vmax = 2 - per_verdict[:, ::-1].argmax(axis=1)
    total = np.zeros(n_groups, dtype=np.int64)
    np.add.at(total, group, strength)
    count = np.bincount(group, minlength=n_groups)
    order = np.full(n_groups, np.iinfo(np.int64).max, dtype=np.int64)
    np.minimum.at(order, group, prefs["order"].to_numpy(dtype=np.int64)[rows])
    out = prefs.iloc[first][["rater", "pair", *pair_cols]].reset_index(drop=True)
    out["order"] = order
    out["verdict"] = combined_verdicts(vmin, vmax)
    out["strength"] = combined_strengths(total, count, vmin == vmax)
    return out


# --- gold -----------------------------------------------------------------------------------------


def gold_codes(pair_codes: np.ndarray, verdicts: np.ndarray, order: np.ndarray, n_pairs: int) -> np.ndarray:
    """Gold per pair (METRICS.md): the majority verdict of its raters' (combined) verdicts; a tie
    between verdict counts falls to the earliest annotation among the tied verdicts.

    pair_codes: 0..n_pairs-1 per vote; order: a rank per vote, lower = earlier. Returns one code
    per pair, -1 for a pair without votes."""
    pc = np.asarray(pair_codes, dtype=np.int64)
    v = np.asarray(verdicts, dtype=np.int64)
    o = np.asarray(order)
    gold = np.full(n_pairs, -1, dtype=np.int64)
    if not len(pc):
        return gold
    counts = np.bincount(pc * 3 + v, minlength=n_pairs * 3).reshape(-1, 3)
    candidate = counts[pc, v] == counts.max(axis=1)[pc]
    idx = np.flatnonzero(candidate)
    # Among the candidate votes of each pair, the earliest: sort by (pair, order), keep firsts.
    idx = idx[np.lexsort((o[idx], pc[idx]))]
    firsts = idx[np.r_[True, pc[idx][1:] != pc[idx][:-1]]]
    gold[pc[firsts]] = v[firsts]
    return gold


def leave_one_out_gold(pair_codes: np.ndarray, verdicts: np.ndarray, order: np.ndarray, n_pairs: int) -> np.ndarray:
    """Per vote, gold_codes of its pair over the other votes only (-1 where it is the pair's
    only vote): a rater against the gold of the others (the evaluators' human reference).

    All votes at once, not gold_codes once per left-out rater: the counts less the vote's own
    verdict give the majority; a tie falls to the earliest other vote among the tied verdicts,
    the first of its (pair, verdict) by order, or the second where the first is the vote
    itself. Votes are one per rater and pair, with distinct orders."""
    pc = np.asarray(pair_codes, dtype=np.int64)
    v = np.asarray(verdicts, dtype=np.int64)
    o = np.asarray(order)
    n = len(pc)
    if not n:
        return np.zeros(0, dtype=np.int64)
    cell = pc * 3 + v
    counts = np.bincount(cell, minlength=n_pairs * 3).reshape(-1, 3)
    # The earliest and second earliest vote of every (pair, verdict), by order.
    by_cell = np.lexsort((o, cell))
    starts = np.flatnonzero(np.r_[True, cell[by_cell][1:] != cell[by_cell][:-1]])
    first = np.full(n_pairs * 3, -1, dtype=np.int64)
    second = np.full(n_pairs * 3, -1, dtype=np.int64)
    first[cell[by_cell[starts]]] = by_cell[starts]
    has_second = np.r_[starts[1:], n] - starts >= 2
    second[cell[by_cell[starts[has_second]]]] = by_cell[starts[has_second] + 1]
    others = counts[pc] - (np.arange(3)[None, :] == v[:, None])  # (votes, 3): the other votes' counts
    top = others.max(axis=1)
    earliest = np.empty((n, 3), dtype=np.float64)
    for c in range(3):
        cells = pc * 3 + c
        vote = np.where(first[cells] == np.arange(n), second[cells], first[cells])
        earliest[:, c] = np.where(vote >= 0, o[np.maximum(vote, 0)], np.inf)
    earliest[others != top[:, None]] = np.inf
    return np.where(top > 0, np.argmin(earliest, axis=1), -1)


def gold_verdicts(verdicts: pd.DataFrame) -> pd.DataFrame:
    """Gold of every pair from the gold raters' combined verdicts (columns pair, item, verdict,
    order). Returns pair, item, gold."""
    if verdicts.empty:
        return pd.DataFrame({"pair": [], "item": [], "gold": []}, dtype=np.int64)
    pair_codes, pairs = pd.factorize(verdicts["pair"])
    gold = gold_codes(pair_codes, verdicts["verdict"].to_numpy(), verdicts["order"].to_numpy(), len(pairs))
    items = verdicts.drop_duplicates("pair").set_index("pair")["item"]
    out = pd.DataFrame({"pair": pairs, "item": items.loc[pairs].to_numpy(), "gold": gold})
    return out.sort_values("pair", kind="stable").reset_index(drop=True)


def gold_label(strengths: Sequence[int]) -> VerdictLabel | None:
    """gold_codes for one pair from its gold raters' combined strengths, earliest annotation
    first. Written out in plain Python (the exports call it per pair, where numpy's per-call
    cost was ten times the rule's); tests/test_verdicts.py proves it equal to gold_codes on
    every sequence of up to five votes."""
    if not strengths:
        return None
    codes = [verdict_code(s) for s in strengths]
    counts = [codes.count(c) for c in (A, TIE, B)]
    top = max(counts)
    first = next(c for c in codes if counts[c] == top)  # the earliest among the tied verdicts
    return VERDICT_LABELS[first]  # type: ignore[return-value]


GoldSource = Literal["majority", "adjudicated"]
GOLD_SOURCES: tuple[GoldSource, ...] = ("majority", "adjudicated")
# Their words for forms and serializers: models.GOLD_SOURCE_CHOICES (the Project field needs them
# there, and this module builds on models); the two must name the same sources.
assert tuple(code for code, _ in GOLD_SOURCE_CHOICES) == GOLD_SOURCES


def with_adjudicated(gold: pd.DataFrame, adjudicated: pd.DataFrame | None, source: GoldSource) -> pd.DataFrame:
    """Gold per pair under `source`: "majority" is gold_verdicts' majority as it stands;
    "adjudicated" replaces it, pair by pair, by a reviewer's final verdict where there is one
    (columns pair, item, verdict) and keeps the majority elsewhere. A pair only a reviewer
    decided (no votes among the gold raters) gets the reviewer's verdict too."""
    if source not in GOLD_SOURCES:
        raise ValueError(f"gold must be one of {GOLD_SOURCES}, got {source!r}")
    if source == "majority" or adjudicated is None or adjudicated.empty:
        return gold
    decided = adjudicated[["pair", "item", "verdict"]].rename(columns={"verdict": "gold"}).astype(np.int64)
    kept = gold[~gold["pair"].isin(decided["pair"])]
    out = pd.concat([kept, decided], ignore_index=True)
    return out.sort_values("pair", kind="stable").reset_index(drop=True)


def gold_label_from(strengths: Sequence[int], adjudicated: int | None, source: GoldSource) -> VerdictLabel | None:
    """gold_label under `source` for one pair: a reviewer's final strength (stored order) wins
    when the source is "adjudicated" and there is one (with_adjudicated, per pair)."""
    if source not in GOLD_SOURCES:
        raise ValueError(f"gold must be one of {GOLD_SOURCES}, got {source!r}")
    if source == "adjudicated" and adjudicated is not None:
        return verdict_label(adjudicated)
    return gold_label(strengths)


def gold_strength_from(strengths: Sequence[int]) -> int | None:
    """A gold strength for a pair from several humans' strengths (earliest first), for an import
    that makes gold out of human labels: the majority verdict (gold_label), at the rounded mean
    strength of the votes that gave it, so "much better" survives where the majority said so."""
    label = gold_label(strengths)
    if label is None:
        return None
    code = VERDICT_LABELS.index(label)
    agreeing = [s for s in strengths if verdict_code(s) == code]
    return round_ratio(sum(agreeing), len(agreeing))


# --- does an annotation pass a gold item? -------------------------------------------------------

# A gold rating passes within one scale point: HelpSteer2's own annotators agree to about that.
GOLD_RATING_TOLERANCE = 1


def gold_rating_errors(values: Mapping[str, int], gold: Mapping[str, object] | None) -> list[int]:
    """|value - gold| for each attribute the gold names and the rater rated."""
    if not gold:
        return []
    return [abs(int(values[name]) - int(str(known))) for name, known in gold.items() if name in values]


def gold_rating_passes(values: Mapping[str, int], gold: Mapping[str, object] | None) -> bool | None:
    """Whether ratings of one response pass its gold: every attribute the gold names within
    GOLD_RATING_TOLERANCE. None where the gold names none of the rated attributes (no check)."""
    errors = gold_rating_errors(values, gold)
    return None if not errors else max(errors) <= GOLD_RATING_TOLERANCE


def gold_preference_passes(strength: int, gold_strength: int | None) -> bool | None:
    """Whether a preference (stored order) passes its pair's gold strength: the same verdict
    (A / tie / B); how much better is not held against the rater. None without gold."""
    if gold_strength is None:
        return None
    return verdict_code(strength) == verdict_code(gold_strength)


# --- shown order -> stored order ------------------------------------------------------------------


def stored_strength(strength: int, shown_order: str) -> int:
    """A strength the rater gave about what it was shown (negative = the first shown better)
    in the pair's stored order: the same when A was shown first, negated when B was. The map is
    its own inverse, so it also turns a stored strength back into the one the rater gave."""
    if shown_order not in SHOWN_ORDERS:
        raise ValueError(f"shown_order must be one of {SHOWN_ORDERS}, got {shown_order!r}")
    return strength if shown_order == ShownOrder.AB else -strength


# A judge answers with the label of the first shown, the second shown, or a tie.
JUDGE_LABEL_STRENGTH: Mapping[str, int] = {"A": -1, "B": 1, "C": 0}


def judge_verdict_strength(label: str, shown_order: str) -> int:
    """The stored-order strength of a judge's verdict-only answer ("A" = first shown, "B" = second,
    "C" = tie). A three-way verdict says nothing about "much" better: it is the mildest strength;
    the verdict probabilities carry the judge's confidence."""
    return stored_strength(JUDGE_LABEL_STRENGTH[label], shown_order)


def stored_order_probabilities(shown: Mapping[str, float], order: str) -> dict[str, float]:
    """{"A", "tie", "B"} in the pair's stored order from a judge's (first, second, tie) = ("A",
    "B", "C") probabilities in shown order."""
    first, second, tie = shown.get("A", 0.0), shown.get("B", 0.0), shown.get("C", 0.0)
    if order not in SHOWN_ORDERS:
        raise ValueError(f"shown_order must be one of {SHOWN_ORDERS}, got {order!r}")
    if order == ShownOrder.BA:
        first, second = second, first
    return {"A": first, "tie": tie, "B": second}


def mirrored_probabilities(stored: Mapping[str, float] | None) -> dict[str, float] | None:
    """Stored-order probabilities of a pair seen from its mirror (A and B swapped)."""
    if stored is None:
        return None
    out = dict(stored)
    out["A"], out["B"] = stored.get("B", 0.0), stored.get("A", 0.0)
    return out


# --- a verdict without a strength -------------------------------------------------------------

# What a verdict-only preference says: no "slightly" or "much", only which side (or neither).
VERDICT_TEXT: Mapping[str, str] = {"A": "A is better", "tie": "Tie", "B": "B is better"}


def is_verdict_only(*, ranking_scale: str, verdict_only: bool = False) -> bool:
    """A preference is a verdict, not a strength, when its rater said so (a judge reading
    [[A]] / [[B]] / [[C]]) or its project ranks on A / tie / B. Its strength is then the verdict's
    sign (-1, 0, 1), which every figure reads as a verdict; no figure may read it as "slightly"."""
    return verdict_only or ranking_scale == Project.RankingScale.TERNARY


@dataclass(frozen=True)
class PreferenceReading:
    """How a stored preference is shown: its verdict, and either its strength or, for a
    verdict-only one, the probability the rater gave that verdict (when it gave one)."""

    verdict: VerdictLabel
    text: str
    strength: int | None  # None for a verdict-only preference: it has none
    probability: float | None

    @property
    def summary(self) -> str:
        if self.probability is None:
            return self.text
        return f"{self.text} (p = {self.probability:.2f})"


def preference_reading(*, strength: int, verdict_only: bool, probabilities: Mapping[str, float] | None) -> PreferenceReading:
    label = verdict_label(strength)
    if not verdict_only:
        return PreferenceReading(label, STRENGTH_LABELS.get(strength, str(strength)), strength, None)
    p = probabilities.get(label) if probabilities else None
    return PreferenceReading(label, VERDICT_TEXT[label], None, None if p is None else float(p))
