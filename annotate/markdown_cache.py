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
from collections.abc import Callable
from functools import wraps

from django.utils.safestring import SafeString

from .lru import BoundedLRU

# About 4 MB of HTML per worker process: tens of thousands of typical responses.
MAX_CHARS = 4_000_000


class RenderCache(BoundedLRU[bytes, SafeString]):
    """LRU of HTML by key, bounded by total characters (annotate.lru); a text longer than a tenth
    of the budget is not kept."""

    def __init__(self, max_chars: int = MAX_CHARS) -> None:
        super().__init__(max_chars)
        self.max_chars = max_chars

    def put(self, key: bytes, html: SafeString, size: int | None = None) -> None:
        if len(html) > self.max_chars // 10 or key in self:
            return
        super().put(key, html, len(html))

    @property
    def _chars(self) -> int:
        return self.size


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
