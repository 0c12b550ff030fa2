"""The render cache in front of render_markdown: same HTML as rendering afresh, keyed by the
text (and the renderer version), bounded, and as inert as the renderer itself."""

from __future__ import annotations

from django.utils.safestring import SafeString

from annotate.markdown import RENDERER_VERSION, render_markdown
from annotate.markdown_cache import RenderCache, cached_render

HOSTILE = "Hi <script>alert(1)</script> [x](javascript:alert(2))\n\n```python\nprint('<b>')\n```\n"


def test_cached_render_is_the_same_html_as_a_fresh_render():
    for text in ("**bold**", HOSTILE, "", "| a |\n|---|\n| 1 |\n"):
        cached = render_markdown(text)
        assert isinstance(cached, SafeString)
        assert str(cached) == str(render_markdown.uncached(text))  # type: ignore[attr-defined]
        assert "<script" not in str(render_markdown(text))


def test_a_repeated_text_is_rendered_once():
    calls: list[str] = []

    @cached_render(RENDERER_VERSION)
    def render(text: str) -> SafeString:
        calls.append(text)
        return SafeString(f"<p>{len(text)}</p>")

    assert render("a response") == render("a response") == "<p>10</p>"
    assert render("another") == "<p>7</p>"
    assert calls == ["a response", "another"]
    assert render.cache.hits == 1 and render.cache.misses == 2  # type: ignore[attr-defined]


def test_the_key_holds_the_renderer_version():
    seen: list[str] = []

    def make(version: str):
        @cached_render(version)
        def render(text: str) -> SafeString:
            seen.append(version)
            return SafeString(version)

        return render

    old, new = make("1"), make("2")
    assert old("same text") == "1" and new("same text") == "2"
    assert seen == ["1", "2"]


def test_the_cache_is_bounded_by_characters_least_recently_used_first():
    cache = RenderCache(max_chars=100)
    for n in range(10):
        cache.put(bytes([n]), SafeString("x" * 9))  # 90 characters in all: everything fits
    assert len(cache) == 10
    assert cache.get(bytes([0])) is not None  # 0 is now the most recently used
    cache.put(b"new", SafeString("y" * 9))  # 99 > ... still fits
    cache.put(b"newer", SafeString("z" * 9))  # 108: the least recently used (1) goes
    assert cache.get(bytes([1])) is None
    assert cache.get(bytes([0])) is not None
    assert cache._chars <= 100
    cache.put(b"huge", SafeString("h" * 11))  # over a tenth of the budget: not kept
    assert cache.get(b"huge") is None
