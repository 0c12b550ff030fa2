"""Reuse of a computation whose input did not change, while reports.incremental updates a report.

A memoised function is a pure function of its arguments: when new rows leave its input as it
was, the previous result is the result. The global fits (Bradley-Terry, whose bootstrap
resamples comparisons; the style-controlled logistic regressions over a group's comparisons)
and every per-rater figure are memoised; each per-rater figure is keyed on that rater's own
columns only (by_rater), so one judge's new run leaves the other raters' figures, fits and
boards as they were. A figure registered with the report's Resampler is reused by registering
the same estimate again (Resampler.register): its per-item sums are then the previous build's
object, so reports.incremental keeps its resampled sums, and its samples are not recomputed.
Outside an incremental update (no memo active) a memoised function is called as it always is.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, TypeVar

import numpy as np
import pandas as pd
import scipy.sparse as sp
import xxhash

from .bootstrap import Resampler

F = TypeVar("F", bound=Callable[..., Any])


class Memo:
    """Results of the previous update (`previous`) and of this one (`kept`, what the next
    update may reuse: only fits asked for again, so the memo does not grow)."""

    def __init__(self, previous: dict[bytes, Any] | None = None) -> None:
        self.previous = previous or {}
        self.kept: dict[bytes, Any] = {}
        self.hits = 0
        self.misses = 0
        self.computed: dict[str, int] = {}  # misses by function (qualname): what an update recomputed
        # Seconds by function (qualname) of its misses, its own time only (a memoised call inside
        # another counts to the inner function), and "(keys)" for hashing the inputs: where an
        # update's time goes, which bench/reports.py prints.
        self.seconds: dict[str, float] = {}
        self.inner: list[float] = []  # per memoised call in progress: its memoised callees' seconds
        # Digests of the frames hashed in this update, by object: one gold table is an input of
        # every judge's figures, and is hashed once. The frame is held with its digest, so its
        # id cannot be reused for another frame while the memo is active.
        self.digests: dict[int, tuple[pd.DataFrame, bytes]] = {}
        self.category_digests: dict[int, tuple[pd.Index, np.ndarray]] = {}  # labels' hashes; a split's frames share their categories
        self.splits: dict[int, _Split] = {}  # by_rater's, by frame


_active: ContextVar[Memo | None] = ContextVar("reports_memo", default=None)


@contextmanager
def active(memo: Memo) -> Iterator[Memo]:
    token = _active.set(memo)
    try:
        yield memo
    finally:
        _active.reset(token)


def _hasher(data: bytes = b"") -> Any:
    """XXH3-128: the memo hashes tens of MB per update (every rater's columns), and XXH3 reads
    12.5 GB/s on this machine against SHA-256's 1.35 (its SHA extensions) and BLAKE2b's 1.05.
    Its keys need no resistance to a crafted collision: they tell a report's own inputs apart,
    and a key is taken for another only if all 128 bits agree (p ~ 2**-128 by chance)."""
    return xxhash.xxh3_128(data)


def _frame_digest(memo: Memo, frame: pd.DataFrame) -> bytes:
    known = memo.digests.get(id(frame))
    if known is not None and known[0] is frame:
        return known[1]
    h = _hasher()
    h.update(repr(([(str(c), str(t)) for c, t in frame.dtypes.items()], len(frame))).encode())
    # Each column's values as stored (codes, numbers, masks), not the index: two frames are
    # taken for one only if every column holds the same bytes. hash_pandas_object's row
    # hashes did the same at three times the cost (a third of an absorb's hashing at 1M).
    for _, column in frame.items():
        _feed_column(memo, h, column)
    digest = h.digest()[:16]
    memo.digests[id(frame)] = (frame, digest)
    return digest


def _feed_column(memo: Memo, h: Any, column: pd.Series) -> None:
    values = column.array
    if isinstance(column.dtype, pd.CategoricalDtype):
        # The labels, not their codes: every label column shares one vocabulary (raters, models,
        # kinds: reports.build._labels), so a new rater's name renumbers the codes of every
        # column after it, and each rater's figures would miss. Each code is read as its label's
        # 64-bit hash (missing: a value no label hashes to), so a frame's digest is the same
        # while its values are. (A memoised result reads labels and their sorted order, which a
        # new label does not change; never the codes themselves.)
        categories = column.cat.categories
        known = memo.category_digests.get(id(categories))
        if known is None or known[0] is not categories:
            ids = pd.util.hash_pandas_object(categories, index=False).to_numpy()
            known = memo.category_digests[id(categories)] = (categories, np.append(ids, np.uint64(0x9E3779B97F4A7C15)))
        h.update(known[1][column.cat.codes.to_numpy()])  # code -1 (missing) reads the last entry
    elif isinstance(column.dtype, np.dtype) and column.dtype.kind in "biufmM":  # numpy storage, no copy
        h.update(np.ascontiguousarray(column.to_numpy()))
    elif isinstance(values, pd.arrays.IntegerArray | pd.arrays.FloatingArray):
        # The values with 0 where missing (a missing slot's storage is not data), and the mask.
        wide = np.int64 if isinstance(values, pd.arrays.IntegerArray) else np.float64
        h.update(np.ascontiguousarray(values.to_numpy(dtype=wide, na_value=0)))
        h.update(np.ascontiguousarray(column.isna().to_numpy()))
    else:  # strings, objects: their values' hashes
        h.update(pd.util.hash_pandas_object(column, index=False).to_numpy().tobytes())


def _feed(memo: Memo, h: Any, value: Any) -> None:
    if isinstance(value, pd.DataFrame):
        h.update(_frame_digest(memo, value))
    elif isinstance(value, tuple) and any(isinstance(v, pd.DataFrame) for v in value):
        for v in value:
            _feed(memo, h, v)
    elif isinstance(value, np.ndarray):
        # By content: an array's repr elides the middle of a long one.
        h.update(repr((value.dtype.str, value.shape)).encode())
        h.update(np.ascontiguousarray(value).tobytes())
    elif isinstance(value, Resampler):
        # What the figures are drawn with, not the object. Not the item count: new rows append
        # items after the old ones (their codes do not move), so a computation whose inputs did
        # not change has the same per-item sums, with the new items' rows empty (widened).
        h.update(repr(("resampler", value.rounds, value.seed)).encode())
    else:
        h.update(repr(value).encode())
    h.update(b"\0")


def memoised(fn: F) -> F:
    """A pure function of its arguments, reused across updates while a memo is active.

    Arguments that are the report's Resampler take part by their item set, rounds and seed;
    the figures the function registers with it are recorded, and a reuse registers the same
    estimates (the same per-item sums, so their resample is reused too) in the same order."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        memo = _active.get()
        if memo is None:
            return fn(*args, **kwargs)
        t0 = time.perf_counter()
        h = _hasher(fn.__module__.encode() + fn.__qualname__.encode())
        for value in args:
            _feed(memo, h, value)
        for name in sorted(kwargs):
            _feed(memo, h, name)
            _feed(memo, h, kwargs[name])
        key = h.digest()[:16]
        _add_seconds(memo, "(keys)", time.perf_counter() - t0)
        boots = [v for v in (*args, *kwargs.values()) if isinstance(v, Resampler)]
        known = memo.kept.get(key) or memo.previous.get(key)
        n_units = min((b.n_units for b in boots), default=0)
        if known is not None and all(per_unit.shape[0] <= n_units for _, per_unit in known[1]):
            if key not in memo.kept:
                memo.hits += 1
            result, registered = known
            # Widened to the build's items when new ones came after (the same object otherwise,
            # so reports.incremental sees the previous sums and keeps their resample).
            registered = [(est, widened(per_unit, n_units)) for est, per_unit in registered]
            for boot in boots:
                for est, per_unit in registered:
                    boot.register(est, per_unit)
        else:
            registered = []
            for boot in boots:
                boot.recordings.append(registered)
            memo.inner.append(0.0)
            t1 = time.perf_counter()
            try:
                result = fn(*args, **kwargs)
            finally:
                for boot in boots:
                    assert boot.recordings[-1] is registered  # recordings nest with the calls
                    boot.recordings.pop()
                _add_seconds(memo, fn.__qualname__, time.perf_counter() - t1 - memo.inner.pop())
            memo.misses += 1
            memo.computed[fn.__qualname__] = memo.computed.get(fn.__qualname__, 0) + 1
        memo.kept[key] = (result, registered)
        if memo.inner:  # a memoised caller's own time leaves this call out, keys and reuse included
            memo.inner[-1] += time.perf_counter() - t0
        return result

    return wrapper  # type: ignore[return-value]


def _add_seconds(memo: Memo, name: str, seconds: float) -> None:
    memo.seconds[name] = memo.seconds.get(name, 0.0) + seconds


def widened(per_unit: Any, n_units: int) -> Any:
    """Per-item sums of n_old items as sums of n_units >= n_old items, the new items' rows
    empty: the arrays are shared, not copied (CSR gains empty rows, CSC only a taller shape)."""
    n_old, width = per_unit.shape
    if n_old == n_units:
        return per_unit
    if isinstance(per_unit, sp.csc_matrix):
        return sp.csc_matrix((per_unit.data, per_unit.indices, per_unit.indptr), shape=(n_units, width))
    csr = sp.csr_matrix(per_unit)
    indptr = np.concatenate([csr.indptr, np.full(n_units - n_old, csr.indptr[-1], dtype=csr.indptr.dtype)])
    return sp.csr_matrix((csr.data, csr.indices, indptr), shape=(n_units, width))


def by_rater(frame: pd.DataFrame, raters: list[str], columns: list[str]) -> dict[str, pd.DataFrame]:
    """Each of `raters`' rows of `frame`, in the frame's order, with `columns` only (an empty
    frame for a rater with none): what a per-rater figure reads, and so all a memoised one is
    keyed on, not the rows' global order, which other raters' new rows shift. Only the columns
    asked for are taken."""
    memo = _active.get()
    if memo is None:
        sub, bounds = _by_rater_order(frame, columns, set(raters))
    else:
        # One section's verdicts split again by another (with other columns) is the same sort
        # and the same taken rows: kept by frame while the memo is active (and so hashed once,
        # by object: Memo.digests).
        split = memo.splits.get(id(frame))
        if split is None or split.frame is not frame:
            split = memo.splits[id(frame)] = _Split(frame)
        sub, bounds = split.columns(columns), split.bounds
    # (A rater with no rows gets an empty frame of the columns; built only when one is asked for.)
    empty = frame.iloc[:0][columns] if any(r not in bounds for r in raters) else sub.iloc[:0]
    return {r: sub.iloc[bounds[r][0]:bounds[r][1]] if r in bounds else empty for r in raters}


class _Split:
    """A frame's rows rater by rater (every rater's, each in the frame's order), its columns
    taken as they are first asked for: a frame is split once per update, and the sections ask
    for a few of its columns (the judges' per-order preferences, 18 columns, are read on 6 of
    them; taking every column cost 0.11 s of a judge's 1.2 s absorb at 1M annotations)."""

    def __init__(self, frame: pd.DataFrame) -> None:
        self.frame = frame
        self.picks, self.bounds = _rater_order(frame)
        self.index = frame.index.take(self.picks)
        self.taken: dict[str, Any] = {}

    def columns(self, columns: list[str]) -> pd.DataFrame:
        missing = [c for c in columns if c not in self.taken]
        if missing:
            part = self.frame[missing].take(self.picks)
            self.taken.update((c, part[c].array) for c in missing)
        return pd.DataFrame({c: self.taken[c] for c in columns}, index=self.index, copy=False)


def rows_of(frame: pd.DataFrame, members: list[str], columns: list[str]) -> pd.DataFrame:
    """The rows of a rater group's `members` (their `columns`), in the frame's order. A group of
    one is its rater's by_rater slice while a memo is active (the frame is split once per
    update; a filter of the whole frame per group and section was most of what a judge's
    unchanged boards cost an absorb), else a filter: the same rows in the same order."""
    if len(members) == 1 and _active.get() is not None:
        return by_rater(frame, members, columns)[members[0]]
    return frame.loc[frame["rater"].isin(members).to_numpy(), columns]


def _by_rater_order(
    frame: pd.DataFrame, columns: list[str], only: set[str] | None = None
) -> tuple[pd.DataFrame, dict[str, tuple[int, int]]]:
    """The frame's rows (`columns` of them) rater by rater (of `only`, when given), each rater's
    in the frame's order, and where each rater's rows are in it: one stable sort of the rater
    codes and one take. A rater's rows are then a slice, not a take of their own (a take per
    rater and column cost pandas' overhead 1,255 times in a judge's absorb at 1M annotations)."""
    picks, bounds = _rater_order(frame, only)
    return frame[columns].take(picks), bounds


def _rater_order(frame: pd.DataFrame, only: set[str] | None = None) -> tuple[np.ndarray, dict[str, tuple[int, int]]]:
    """The positions of `frame`'s rows (of `only`'s raters, when given) rater by rater, each
    rater's in the frame's order, and where each rater's are among them."""
    labels = frame["rater"] if isinstance(frame["rater"].dtype, pd.CategoricalDtype) else frame["rater"].astype("category")
    names = [str(r) for r in labels.cat.categories]
    wanted = np.array([only is None or r in only for r in names] + [False])  # code -1 (missing): none
    codes = labels.cat.codes.to_numpy()
    order = np.argsort(codes, kind="stable")
    picks = order[wanted[codes[order]]]
    # Where each rater's rows start: the running count of the wanted raters' rows (code -1,
    # missing, sorts first and is never wanted).
    counts = np.bincount(codes[codes >= 0], minlength=len(names)) * wanted[:-1]
    at = np.concatenate([[0], np.cumsum(counts)])
    bounds = {r: (int(at[k]), int(at[k + 1])) for k, r in enumerate(names) if at[k + 1] > at[k]}
    return picks, bounds


def relative_order(frame: pd.DataFrame) -> pd.DataFrame:
    """`order` as the rank within `frame`: the same tie-breaks (gold reads only which of two
    annotations came first), and the same values, so the same memo key, whatever rows of other
    raters came between."""
    return frame.assign(order=np.argsort(np.argsort(frame["order"].to_numpy(), kind="stable"), kind="stable"))


def on_pairs_of(table: pd.DataFrame, rows: pd.DataFrame) -> pd.DataFrame:
    """The rows of a table by pair (in its order) for the pairs `rows` are on: what a rater's or
    a group's memoised figure reads of it, so pairs only others judged (a new batch) leave its
    key alone."""
    return table[table["pair"].isin(rows["pair"]).to_numpy()]


def pair_rows(prefs: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """`columns` of each pair's first row, one row per pair, sorted by pair: what the raters'
    memoised figures read of the pairs (their items and responses, through on_pairs_of). In
    pair order, not the order the rows came: a rater's rows dated earlier than others' (an
    import of old annotations) would reorder the pairs, and with them every rater's memo key."""
    return prefs.drop_duplicates("pair")[columns].sort_values("pair", kind="stable")
