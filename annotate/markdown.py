"""Markdown for model responses and guidelines, rendered inert.

Responses are written by models and imported from files: treat them as hostile. Two layers:
raw HTML in the source is not passed through at all (Python-Markdown's HTML block and inline
HTML handlers are removed, so `<script>` shows as text), and the rendered HTML then goes
through nh3 (ammonia) with an allow-list, which drops event handlers and `javascript:` URLs
that markdown link syntax could still produce.

Fenced and indented code is highlighted here, on the server, by Pygments (through
Python-Markdown's codehilite): the page gets `<span class="k">`-style token classes and the
colours come from static/css/pygments.css, so the Content-Security-Policy's "no inline style"
holds and no script runs in the browser to highlight. The sanitiser keeps a class on a span
only if it is one of Pygments' token classes.

`render_markdown(text)` is a pure function of its text (no request, no settings read per call),
so a cache keyed by the text can wrap it.
"""

from __future__ import annotations

import sys
from xml.etree import ElementTree

import markdown as md
import nh3
from django.utils.safestring import SafeString, mark_safe
from markdown.treeprocessors import Treeprocessor
from markdown.util import STX
from pygments.formatters import HtmlFormatter
from pygments.token import STANDARD_TYPES

from .markdown_cache import cached_render

ALLOWED_TAGS: set[str] = {
    "p", "br", "hr", "pre", "code", "blockquote", "em", "strong", "del", "s", "sub", "sup",
    "ul", "ol", "li", "dl", "dt", "dd", "h1", "h2", "h3", "h4", "h5", "h6",
    "table", "thead", "tbody", "tr", "th", "td", "a", "span", "div",
}
# Blocks of prose that take their own direction (dir="auto", set by _DirectionTreeprocessor): a
# response whose first paragraph is English and whose second is Arabic reads each one its way.
DIRECTED_BLOCKS: tuple[str, ...] = ("p", "li", "blockquote", "h1", "h2", "h3", "h4", "h5", "h6", "th", "td", "dt", "dd")
ALLOWED_ATTRIBUTES: dict[str, set[str]] = {
    "a": {"href", "title"},
    "code": {"class"},  # fenced code's language-xyz class
    "th": {"align", "dir"},
    "td": {"align", "dir"},
    "ol": {"start"},
    **{tag: {"dir"} for tag in DIRECTED_BLOCKS if tag not in ("th", "td")},
}
# No images: an <img> would fetch from wherever a response points, and nothing loads from outside.
URL_SCHEMES: set[str] = {"http", "https", "mailto"}

CODE_CLASS = "codehilite"
# Pygments' light style whose every token colour keeps WCAG AA contrast (4.5:1) on its white
# background (xcode's lowest is 5.07:1; the default style's comments are under 3:1, which axe
# reports as a serious violation). static/css/pygments.css is this style's CSS:
# `python -m annotate.markdown > static/css/pygments.css` writes it (a test checks it is current).
CODE_STYLE = "xcode"
# The class values the sanitiser lets through: a span's class only as a Pygments token class,
# a div's only as the code block's wrapper. A class cannot run anything, but a free one could
# borrow the app's own styles (say, to look like a notice or a button).
ALLOWED_CLASSES: dict[str, set[str]] = {
    "span": {name for name in STANDARD_TYPES.values() if name},
    "div": {CODE_CLASS},
}


def code_css() -> str:
    """The highlighting colours, scoped to code blocks (static/css/pygments.css)."""
    return HtmlFormatter(style=CODE_STYLE).get_style_defs(f".{CODE_CLASS}") + "\n"


class _DirectionTreeprocessor(Treeprocessor):
    """dir="auto" on every block of prose. Only this sets the attribute (raw HTML never reaches
    the tree and no extension parses attributes from the text), and a direction runs nothing."""

    def run(self, root: ElementTree.Element) -> None:
        for element in root.iter():
            # A paragraph holding only a stashed block (a highlighted code block) is replaced by
            # that block later, but only while it is a bare <p>: leave it bare.
            stashed = element.tag == "p" and (element.text or "").startswith(STX) and not len(element)
            if element.tag in DIRECTED_BLOCKS and not stashed:
                element.set("dir", "auto")


def _renderer() -> md.Markdown:
    renderer = md.Markdown(
        extensions=["fenced_code", "codehilite", "tables", "sane_lists"],
        # guess_lang off: a block without a language is shown as text, not mis-guessed as Perl.
        extension_configs={"codehilite": {"guess_lang": False, "css_class": CODE_CLASS}},
        output_format="html",
    )
    # Raw HTML in a response is content to show, not markup to run.
    renderer.preprocessors.deregister("html_block")
    renderer.inlinePatterns.deregister("html")
    renderer.treeprocessors.register(_DirectionTreeprocessor(renderer), "direction", 1)
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
        allowed_classes=ALLOWED_CLASSES,
        url_schemes=URL_SCHEMES,
        link_rel="noopener noreferrer nofollow",
    )
    return mark_safe(clean)  # noqa: S308 -- sanitised by nh3 just above


if __name__ == "__main__":
    sys.stdout.write(code_css())
