"""Reuse of a global fit whose input did not change, while reports.incremental updates a report.

The Bradley-Terry fits (their bootstrap resamples comparisons, not items) and the
style-controlled fits (logistic regressions over every comparison of a rater group) have no
per-item state to absorb. But a fit is a pure function of its input frame: when new rows leave a
group's comparisons as they were (new ratings only; one judge's run leaves the humans' and the
other judges' boards alone) the previous fit is the fit. Outside an incremental update (no memo
active) a memoised function is called as it always is.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, TypeVar

import pandas as pd

F = TypeVar("F", bound=Callable[..., Any])


class Memo:
    """Results of the previous update (`previous`) and of this one (`kept`, what the next
    update may reuse: only fits asked for again, so the memo does not grow)."""

    def __init__(self, previous: dict[bytes, Any] | None = None) -> None:
        self.previous = previous or {}
        self.kept: dict[bytes, Any] = {}
        self.hits = 0
        self.misses = 0


_active: ContextVar[Memo | None] = ContextVar("reports_memo", default=None)


@contextmanager
def active(memo: Memo) -> Iterator[Memo]:
    token = _active.set(memo)
    try:
        yield memo
    finally:
        _active.reset(token)


def _feed(h: Any, value: Any) -> None:
    if isinstance(value, pd.DataFrame):
        h.update(repr([(str(c), str(t)) for c, t in value.dtypes.items()]).encode())
        # One 64-bit hash per row (of its values, not its index): two frames are taken for one
        # only if they agree on every row's hash.
        h.update(pd.util.hash_pandas_object(value, index=False).to_numpy().tobytes())
    else:
        h.update(repr(value).encode())
    h.update(b"\0")


def memoised(fn: F) -> F:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        memo = _active.get()
        if memo is None:
            return fn(*args, **kwargs)
        h = hashlib.blake2b(fn.__module__.encode() + fn.__qualname__.encode(), digest_size=16)
        for value in args:
            _feed(h, value)
        for name in sorted(kwargs):
            _feed(h, name)
            _feed(h, kwargs[name])
        key = h.digest()
        if key in memo.kept:
            result = memo.kept[key]
        elif key in memo.previous:
            result = memo.previous[key]
            memo.hits += 1
        else:
            result = fn(*args, **kwargs)
            memo.misses += 1
        memo.kept[key] = result
        return result

    return wrapper  # type: ignore[return-value]
