"""HelpSteer2-style aggregation rules, against hand-computed cases (no database)."""

from __future__ import annotations

from fractions import Fraction

import pytest

from exports.aggregate import (
    Vote,
    aggregate_preferences,
    aggregate_scores,
    combine_orders,
    majority_verdict,
    most_similar_indices,
    round_half_up,
    split_justification,
)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (Fraction(5, 2), 3),  # banker's round() would give 2
        (Fraction(3, 2), 2),
        (Fraction(1, 2), 1),
        (Fraction(7, 3), 2),
        (Fraction(8, 3), 3),
        (Fraction(-3, 2), -2),  # halves away from zero: swapping responses negates exactly
        (Fraction(-7, 3), -2),
        (0, 0),
        (4, 4),
    ],
)
def test_round_half_up(value, expected):
    assert round_half_up(value) == expected


def test_three_closest_of_five_have_the_smallest_range():
    # (4, 3, 4) at indices 0, 2, 3 has range 1; every other triple spreads wider.
    assert most_similar_indices([4, 0, 3, 4, 2]) == (0, 2, 3)
    assert aggregate_scores([4, 0, 3, 4, 2]).value == 4  # 11/3 -> 4


def test_tied_ranges_fall_to_the_earliest_three():
    # (1,2,3), (2,3,4) and (1,2,0) all have range 2; the earliest triple wins: mean 2, not 3 or 1.
    assert most_similar_indices([1, 2, 3, 4, 0]) == (0, 1, 2)
    assert aggregate_scores([1, 2, 3, 4, 0]).value == 2


def test_fewer_than_three_ratings_use_all_and_keep_the_count():
    agg = aggregate_scores([2, 3])
    assert (agg.value, agg.count, agg.used) == (3, 2, (2, 3))
    assert aggregate_scores([1, 2]).value == 2  # 1.5 -> 2
    assert aggregate_scores([]).value is None


def test_preference_uses_the_three_most_similar_and_the_closest_annotators_text():
    votes = [
        Vote(-3, "A is far better. It answers.", "h1"),
        Vote(1, "B is slightly better.", "h2"),
        Vote(-2, "A is better. More detail.\nAnd correct.", "h3"),
        Vote(-2, "A wins.", "h4"),
        Vote(3, "B!", "h5"),
    ]
    agg = aggregate_preferences(votes)
    assert agg.strength == -2  # mean of (-3, -2, -2) = -7/3
    assert [p["strength"] for p in agg.three_most_similar] == [-3, -2, -2]
    # h3 (-2) is closest to -7/3 and earlier than h4.
    assert (agg.statement, agg.elaboration) == ("A is better.", "More detail.\nAnd correct.")
    assert agg.all_unprocessed[1] == {"strength": 1, "justification": "B is slightly better."}
    assert len(agg.all_unprocessed) == 5
    assert agg.agreement == pytest.approx(3 / 5)


def test_preference_half_rounds_up_and_closest_tie_goes_to_earliest():
    agg = aggregate_preferences([Vote(1, "first"), Vote(2, "second")])
    assert agg.strength == 2
    assert agg.statement == "first"


def test_judge_orders_combine_to_agreed_verdict_or_tie():
    assert combine_orders([2, 1]) == 2
    assert combine_orders([-1, 1]) == 0
    assert combine_orders([-3]) == -3


def test_majority_tie_falls_to_earliest_vote():
    assert majority_verdict([Vote(1), Vote(-2), Vote(0)]) == "B"
    assert majority_verdict([Vote(1), Vote(-2), Vote(-1)]) == "A"


def test_split_justification():
    assert split_justification("") == ("", "")
    assert split_justification("Only one") == ("Only one", "")
