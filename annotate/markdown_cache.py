"""A per-process cache of rendered, sanitised markdown, keyed by a hash of the source text.

The task pages render the same response many times (every annotator of a task's overlap, and
each response in every pair it belongs to), and Python-Markdown plus nh3 cost 0.3 ms for a short
response and 6 ms for an 8 KB one, before any highlighting. The render is a pure function of the
text and the renderer, so its output is kept: the key is a hash of `RENDERER_VERSION` and the
text, the value the sanitised HTML. Bump `RENDERER_VERSION` (annotate/markdown.py) when the
renderer, its extensions or the sanitiser's allow-list change; a restart also empties the cache
(it lives in the worker process, nothing is shared or persisted, so no stale HTML outlives a
deploy).

Bounded by the characters it holds (least recently used dropped first), so a worker's memory
stays flat however many responses a project has; a text longer than a tenth of the budget is
rendered every time rather than evicting everything else.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable
from functools import wraps

from django.utils.safestring import SafeString

# About 4 MB of HTML per worker process: tens of thousands of typical responses.
MAX_CHARS = 4_000_000


class RenderCache:
    """Thread-safe LRU of HTML by key, bounded by total characters (gunicorn's gthread workers
    serve several requests in one process at once)."""

    def __init__(self, max_chars: int = MAX_CHARS) -> None:
        self.max_chars = max_chars
        self._entries: OrderedDict[bytes, SafeString] = OrderedDict()
        self._chars = 0
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, key: bytes) -> SafeString | None:
        with self._lock:
            html = self._entries.get(key)
            if html is None:
                self.misses += 1
                return None
            self._entries.move_to_end(key)
            self.hits += 1
            return html

    def put(self, key: bytes, html: SafeString) -> None:
        if len(html) > self.max_chars // 10:
            return
        with self._lock:
            if key in self._entries:
                return
            self._entries[key] = html
            self._chars += len(html)
            while self._chars > self.max_chars:
                _, dropped = self._entries.popitem(last=False)
                self._chars -= len(dropped)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._chars = 0
            self.hits = self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)


def cached_render(version: str) -> Callable[[Callable[[str], SafeString]], Callable[[str], SafeString]]:
    """Wrap a pure `text -> sanitised HTML` function with a RenderCache keyed by
    blake2b(version, text). The wrapped function keeps its name; `.cache` is the cache and
    `.uncached` the function itself (tests and the bench compare the two)."""

    def decorate(render: Callable[[str], SafeString]) -> Callable[[str], SafeString]:
        cache = RenderCache()
        prefix = version.encode() + b"\0"

        @wraps(render)
        def cached(text: str) -> SafeString:
            source = text or ""
            key = hashlib.blake2b(prefix + source.encode("utf-8", "surrogatepass"), digest_size=20).digest()
            html = cache.get(key)
            if html is None:
                html = render(source)
                cache.put(key, html)
            return html

        cached.cache = cache  # type: ignore[attr-defined]
        cached.uncached = render  # type: ignore[attr-defined]
        return cached

    return decorate
