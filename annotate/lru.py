"""One bounded, thread-safe least-recently-used store, for what a process keeps of its own work:
rendered markdown (annotate.markdown_cache), computed report states (reports.cache) and the
human-effort section's replayed curves (reports.effort). gunicorn's gthread workers serve
several requests in one process at once, hence the lock.

Bounded by the total size of its entries (each entry's size is given when it is put: characters,
bytes, or 1 to count entries), least recently used out first; optionally by age.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class BoundedLRU(Generic[K, V]):
    """`budget`: the most the entries may take in all (a number, or a function read at each put,
    for a limit that lives in settings). `max_age`: seconds after its put that an entry is gone."""

    def __init__(self, budget: int | Callable[[], int], *, max_age: float | None = None) -> None:
        self._budget = budget
        self.max_age = max_age
        self._entries: OrderedDict[K, tuple[float, int, V]] = OrderedDict()  # key -> (put at, size, value)
        self.size = 0  # what the entries take in all
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    @property
    def budget(self) -> int:
        return self._budget() if callable(self._budget) else self._budget

    def get(self, key: K) -> V | None:
        with self._lock:
            found = self._entries.get(key)
            if found is not None and self.max_age is not None and time.time() - found[0] > self.max_age:
                self._drop(key)
                found = None
            if found is None:
                self.misses += 1
                return None
            self._entries.move_to_end(key)
            self.hits += 1
            return found[2]

    def put(self, key: K, value: V, size: int) -> None:
        """Keep value under key (replacing what was there), unless it alone is over the budget:
        then it is not kept, and neither is the entry it replaces."""
        budget = self.budget
        with self._lock:
            self._drop(key)
            if size > budget:
                return
            self._entries[key] = (time.time(), size, value)
            self.size += size
            while self.size > budget:
                _, (_, dropped, _) = self._entries.popitem(last=False)
                self.size -= dropped

    def discard(self, key: K) -> None:
        with self._lock:
            self._drop(key)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self.size = 0
            self.hits = self.misses = 0

    def _drop(self, key: K) -> None:
        found = self._entries.pop(key, None)
        if found is not None:
            self.size -= found[1]

    def __contains__(self, key: K) -> bool:
        with self._lock:
            return key in self._entries

    def __len__(self) -> int:
        return len(self._entries)
