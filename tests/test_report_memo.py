"""reports.metrics.memo: what an incremental update reuses, and how.

A memoised computation is reused only for equal inputs (frames by their rows' values, the
Resampler by its rounds and seed; over more items, the new ones after the old, its sums widened), and a reuse registers the very estimates it made
before, in the same order, so the shared bootstrap treats them as the previous build's figures.
memo.by_rater is the split every per-rater figure is keyed on."""

from __future__ import annotations

import contextlib
import time

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from reports.metrics import memo
from reports.metrics.bootstrap import Resampler, ratio

CALLS: list[int] = []


@memo.memoised
def _share(frame: pd.DataFrame, boot: Resampler) -> dict:
    """A figure of one rater's rows: the share of wins, registered per item."""
    CALLS.append(len(frame))
    per_unit = sp.csr_matrix(
        (np.r_[frame["won"].to_numpy(float), np.ones(len(frame))],
         (np.r_[frame["item"], frame["item"]], np.r_[np.zeros(len(frame), int), np.ones(len(frame), int)])),
        shape=(boot.n_units, 2),
    )  # fmt: skip
    return {"estimate": boot.estimate(per_unit, ratio, n=len(frame))}


def _rows(won: list[int]) -> pd.DataFrame:
    return pd.DataFrame({"item": np.arange(len(won)) % 3, "won": won})


def test_a_reuse_registers_the_same_estimates_again():
    CALLS.clear()
    first = memo.Memo()
    boot = Resampler(n_units=3, rounds=20, seed=1)
    with memo.active(first):
        made = _share(_rows([1, 0, 1, 1]), boot)
    assert CALLS == [4] and boot._estimates == [made["estimate"]]

    second = memo.Memo(first.kept)
    again = Resampler(n_units=3, rounds=20, seed=1)
    with memo.active(second):
        reused = _share(_rows([1, 0, 1, 1]), again)  # equal rows, another frame object
    assert CALLS == [4] and second.hits == 1  # not run again
    assert reused is made and again._estimates == [made["estimate"]]
    assert again.kept == [] and again._width == 2  # registered: it has its columns in the product


def test_other_rows_another_seed_or_fewer_items_are_computed_afresh():
    CALLS.clear()
    first = memo.Memo()
    with memo.active(first):
        _share(_rows([1, 0, 1, 1]), Resampler(n_units=3, rounds=20, seed=1))
    for rows, boot in ((_rows([1, 0, 1, 0]), Resampler(n_units=3, rounds=20, seed=1)),
                       (_rows([1, 0, 1, 1]), Resampler(n_units=3, rounds=30, seed=1)),
                       (_rows([1, 0, 1, 1]), Resampler(n_units=3, rounds=20, seed=2)),
                       # Sums over 3 items cannot stand for 2: computed again, not cut.
                       (_rows([1, 0, 1, 1]).assign(item=[0, 1, 0, 1]), Resampler(n_units=2, rounds=20, seed=1))):  # fmt: skip
        with memo.active(memo.Memo(first.kept)) as again:
            _share(rows, boot)
        assert again.hits == 0 and again.misses == 1
    assert CALLS == [4, 4, 4, 4, 4]


def test_items_added_after_the_old_ones_reuse_the_figure_with_its_sums_widened():
    """New rows append items after the old ones (codes in id order), so a computation whose
    rows did not change is the same figure over more items, none of the new ones its."""
    CALLS.clear()
    first = memo.Memo()
    old = Resampler(n_units=3, rounds=20, seed=1)
    with memo.active(first):
        made = _share(_rows([1, 0, 1, 1]), old)
    for kind in (sp.csr_matrix, sp.csc_matrix):
        wider = Resampler(n_units=5, rounds=20, seed=1)
        wider.keep_sums = True
        kept = {key: (result, [(est, kind(s)) for est, s in registered]) for key, (result, registered) in first.kept.items()}
        with memo.active(memo.Memo(kept)) as again:
            reused = _share(_rows([1, 0, 1, 1]), wider)
        assert again.hits == 1 and CALLS == [4] and reused is made
        (sums,) = wider.kept
        assert sums.shape == (5, 2) and isinstance(sums, kind)
        dense = sums.toarray()
        assert dense[3:].sum() == 0 and dense[:3].tolist() == [[2, 2], [0, 1], [1, 1]]
        assert wider._estimates == [made["estimate"]]


def test_nested_computations_record_into_every_open_recording():
    @memo.memoised
    def outer(frame: pd.DataFrame, boot: Resampler) -> list:
        return [_share(frame, boot), _share(frame.iloc[:2], boot)]

    first = memo.Memo()
    boot = Resampler(n_units=3, rounds=20, seed=1)
    with memo.active(first):
        made = outer(_rows([1, 1, 0]), boot)
    again = Resampler(n_units=3, rounds=20, seed=1)
    with memo.active(memo.Memo(first.kept)):
        assert outer(_rows([1, 1, 0]), again) is made
    assert again._estimates == [made[0]["estimate"], made[1]["estimate"]] == boot._estimates


def test_without_an_active_memo_a_memoised_function_is_called_as_it_is():
    CALLS.clear()
    boot = Resampler(n_units=3, rounds=20, seed=1)
    a, b = _share(_rows([1, 0]), boot), _share(_rows([1, 0]), boot)
    assert CALLS == [2, 2] and a["estimate"] is not b["estimate"] and len(boot._estimates) == 2


@pytest.mark.parametrize("active", [False, True])
def test_by_rater_is_each_raters_rows_in_order_with_the_columns_asked_for(active):
    """Split afresh (no memo), or once per frame for every column list asked (a memo active):
    the same frames either way."""
    raters = ["human:b", "judge:x", "human:a", "human:b", "judge:x", "human:b"]
    frame = pd.DataFrame({"rater": pd.Categorical(raters, categories=["human:a", "human:b", "judge:x", "judge:y"]),
                          "pair": [10, 11, 12, 13, 14, 15], "verdict": [0, 1, 2, 0, 1, 2]})  # fmt: skip
    with memo.active(memo.Memo()) if active else contextlib.nullcontext():
        for labels in (frame, frame.assign(rater=frame["rater"].astype(str))):  # categorical or plain labels
            split = memo.by_rater(labels, ["human:b", "judge:y", "judge:x"], ["pair", "verdict"])
            assert list(split) == ["human:b", "judge:y", "judge:x"]
            assert split["human:b"]["pair"].tolist() == [10, 13, 15]
            assert split["judge:x"].to_numpy().tolist() == [[11, 1], [14, 1]]
            assert split["judge:y"].empty and list(split["judge:y"].columns) == ["pair", "verdict"]
            want = labels[labels["rater"] == "human:b"][["pair", "verdict"]]
            pd.testing.assert_frame_equal(split["human:b"], want)
            # Another section's columns of the same frame: the same rows.
            assert memo.by_rater(labels, ["judge:x"], ["verdict"])["judge:x"]["verdict"].tolist() == [1, 1]
            # A rater group's rows: one member's or several, the frame's rows in its order.
            for members in (["judge:x"], ["human:b", "judge:x"], ["judge:y"]):
                want = labels.loc[labels["rater"].isin(members).to_numpy(), ["pair", "verdict"]]
                pd.testing.assert_frame_equal(memo.rows_of(labels, members, ["pair", "verdict"]), want)


def test_a_frames_digest_is_its_columns_values_not_its_index():
    """memo._frame_digest reads each column's storage (categorical labels, numbers, nullable
    values with their mask, strings by their hashes): any changed value, label, mask or row
    order is another digest; another index, or a copy, is the same one, and so is a categorical
    whose vocabulary gained labels (a new rater's name renumbers every label column's codes)."""
    frame = pd.DataFrame({
        "rater": pd.Categorical(["a", "b", "a"]), "strength": [1, -2, 3],
        "value": pd.array([1, None, 3], dtype="Int64"), "p_a": [0.5, np.nan, 1.0],
        "created_at": pd.to_datetime(["2025-01-01"] * 3), "justification": ["x", "y", "z"],
        "flag": pd.array([True, None, False], dtype="boolean"),
    })  # fmt: skip
    digest = memo._frame_digest(memo.Memo(), frame)
    assert memo._frame_digest(memo.Memo(), frame.copy()) == digest
    assert memo._frame_digest(memo.Memo(), frame.set_index(pd.Index([7, 8, 9]))) == digest
    renumbered = frame.assign(rater=pd.Categorical(["a", "b", "a"], categories=["0", "a", "ab", "b"]))
    assert memo._frame_digest(memo.Memo(), renumbered) == digest
    changed = [
        frame.assign(strength=[1, -2, 2]), frame.assign(value=pd.array([1, 0, 3], dtype="Int64")),
        frame.assign(p_a=[0.5, 0.0, 1.0]), frame.assign(justification=["x", "y", "w"]),
        frame.assign(rater=pd.Categorical(["a", "b", "b"])),
        frame.assign(rater=pd.Categorical(["a", "c", "a"])), frame.assign(rater=pd.Categorical(["a", None, "a"])),
        frame.assign(flag=pd.array([True, False, False], dtype="boolean")), frame.iloc[[0, 2, 1]],
        frame.iloc[:2], frame.rename(columns={"p_a": "p_b"}),
    ]  # fmt: skip
    digests = [memo._frame_digest(memo.Memo(), f) for f in changed]
    assert digest not in digests and len(set(digests)) == len(changed)


@memo.memoised
def _inner(x: int) -> int:
    time.sleep(0.05)
    return x + 1


@memo.memoised
def _outer(x: int) -> int:
    return _inner(x) * 2


def test_seconds_by_function_count_each_computations_own_time_and_reuses_none():
    with memo.active(memo.Memo()) as first:
        assert _outer(1) == 4
    # The inner sleep counts to _inner only: _outer's own time leaves its memoised callee out.
    assert first.seconds["_inner"] >= 0.05 > first.seconds["_outer"]
    assert first.computed == {"_outer": 1, "_inner": 1} and "(keys)" in first.seconds
    with memo.active(memo.Memo(first.kept)) as again:
        assert _outer(1) == 4
    assert set(again.seconds) == {"(keys)"} and again.hits == 1  # a reuse runs nothing
