"""Markdown for model responses and guidelines, rendered inert.

Responses are written by models and imported from files: treat them as hostile. Two layers:
raw HTML in the source is not passed through at all (Python-Markdown's HTML block and inline
HTML handlers are removed, so `<script>` shows as text), and the rendered HTML then goes
through nh3 (ammonia) with an allow-list, which drops event handlers and `javascript:` URLs
that markdown link syntax could still produce.
"""

from __future__ import annotations

import markdown as md
import nh3
from django.utils.safestring import SafeString, mark_safe

from .markdown_cache import cached_render

ALLOWED_TAGS: set[str] = {
    "p", "br", "hr", "pre", "code", "blockquote", "em", "strong", "del", "s", "sub", "sup",
    "ul", "ol", "li", "dl", "dt", "dd", "h1", "h2", "h3", "h4", "h5", "h6",
    "table", "thead", "tbody", "tr", "th", "td", "a", "span", "div",
}
ALLOWED_ATTRIBUTES: dict[str, set[str]] = {
    "a": {"href", "title"},
    "code": {"class"},  # fenced code's language-xyz class
    "th": {"align"},
    "td": {"align"},
    "ol": {"start"},
}
# No images: an <img> would fetch from wherever a response points, and nothing loads from outside.
URL_SCHEMES: set[str] = {"http", "https", "mailto"}


def _renderer() -> md.Markdown:
    renderer = md.Markdown(extensions=["fenced_code", "tables", "sane_lists"], output_format="html")
    # Raw HTML in a response is content to show, not markup to run.
    renderer.preprocessors.deregister("html_block")
    renderer.inlinePatterns.deregister("html")
    return renderer


# Part of the render cache's key (annotate/markdown_cache.py): change it whenever what
# render_markdown produces for a given text changes (extensions, highlighting, allow-list).
RENDERER_VERSION = "1"


@cached_render(RENDERER_VERSION)
def render_markdown(text: str) -> SafeString:
    """Markdown to sanitised HTML, safe to put in a template unescaped."""
    html = _renderer().convert(text or "")
    clean = nh3.clean(
        html,
        tags=ALLOWED_TAGS,
        attributes=ALLOWED_ATTRIBUTES,
        url_schemes=URL_SCHEMES,
        link_rel="noopener noreferrer nofollow",
    )
    return mark_safe(clean)  # noqa: S308 -- sanitised by nh3 just above
