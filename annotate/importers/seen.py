"""The item ids an import has seen, with the line each was first seen at, in 25 bytes an id.

A streaming import keeps no rows, but "item id 'q7' appears twice (first at line 3)" needs every
id seen so far. A dict of strings costs about 130 bytes an id (1M ids: 130 MB, growing with the
file); here an id is a 16-byte BLAKE2b digest (and a terminator byte) in a sorted numpy array
beside its line, so 1M ids take 25 MB. New ids collect in a small dict that is merged into the
sorted arrays now and then.
A 128-bit digest makes two different ids colliding in one import practically impossible
(about 1M^2 / 2^129).
"""

from __future__ import annotations

import hashlib

import numpy as np

MERGE_AT = 1 << 16


def _key(external_id: str) -> bytes:
    # numpy's bytes dtype drops trailing NUL bytes, so a digest ending in one would not
    # compare equal to itself: a final non-NUL byte keeps every key whole.
    return hashlib.blake2b(external_id.encode("utf-8"), digest_size=16).digest() + b"\x01"


class SeenIds:
    def __init__(self) -> None:
        self._recent: dict[bytes, int] = {}
        self._keys = np.empty(0, dtype="S17")
        self._lines = np.empty(0, dtype=np.int64)

    def __len__(self) -> int:
        return len(self._recent) + len(self._keys)

    def first_line(self, external_id: str) -> int | None:
        """The line the id was first seen at, or None when it is new."""
        return self._find(_key(external_id))

    def add(self, external_id: str, line: int) -> int | None:
        """Record the id at `line`; an id seen before keeps its first line, which is returned
        (None: it was new)."""
        key = _key(external_id)
        first = self._find(key)
        if first is not None:
            return first
        self._recent[key] = line
        if len(self._recent) >= MERGE_AT:
            self._merge()
        return None

    def _find(self, key: bytes) -> int | None:
        line = self._recent.get(key)
        if line is not None:
            return line
        if len(self._keys):
            at = int(np.searchsorted(self._keys, key))
            if at < len(self._keys) and self._keys[at] == key:
                return int(self._lines[at])
        return None

    def _merge(self) -> None:
        keys = np.concatenate([self._keys, np.array(list(self._recent), dtype="S17")])
        lines = np.concatenate([self._lines, np.fromiter(self._recent.values(), dtype=np.int64, count=len(self._recent))])
        order = np.argsort(keys, kind="stable")
        self._keys, self._lines = keys[order], lines[order]
        self._recent = {}
