"""Numbers as the reports print them: rates as percentages, coefficients to three places, and
"too few to say (n = k)" where a figure rests on too little data (reports.glossary.MIN_N).
Terms carry their glossary definition on hover."""

from __future__ import annotations

from typing import Any

from django import template
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from annotate.verdicts import VERDICT_LABELS
from reports import glossary

register = template.Library()


def _number(value: float, percent: bool) -> str:
    return f"{value * 100:.2f}%" if percent else f"{value:.3f}"


@register.simple_tag
def figure(value: float | None, percent: bool = False, n: int | None = None, minimum: int = glossary.MIN_N) -> str:
    """The figure, or "too few to say (n = k)" when `n` is given and below `minimum`."""
    if n is not None and glossary.too_few(n, minimum=minimum):
        return too_few(n)
    if value is None:
        return "n/a"
    return _number(value, percent)


@register.simple_tag
def interval(ci: list | None, percent: bool = False, n: int | None = None, minimum: int = glossary.MIN_N) -> str:
    if n is not None and glossary.too_few(n, minimum=minimum):
        return "–"
    if not ci or ci[0] is None:
        return "n/a"
    return f"[{_number(ci[0], percent)}, {_number(ci[1], percent)}]"


@register.simple_tag
def too_few(n: int | None) -> SafeString:
    return format_html('<span class="too-few" title="{}">{}</span>', glossary.TERMS["too_few"].definition,
                       glossary.too_few_text(n))  # fmt: skip


@register.filter
def is_too_few(n: int | None, minimum: int = glossary.MIN_N) -> bool:
    return glossary.too_few(n, minimum=minimum)


@register.simple_tag
def term(key: str, label: str = "") -> SafeString:
    """A term with its one-line definition on hover (and focus, for keyboards)."""
    entry = glossary.TERMS[key]
    return format_html('<abbr class="term" title="{}" tabindex="0">{}</abbr>', entry.definition, label or entry.label)


@register.simple_tag
def term_definition(key: str) -> str:
    entry = glossary.TERMS.get(glossary.FIELD_TERMS.get(key, key))
    return entry.definition if entry else ""


@register.simple_tag
def glossary_list(page: str) -> SafeString:
    """The terms of a report page with their definitions, printed in the page (not only on hover)."""
    rows = format_html_join(
        "", '<dt id="term-{}">{}</dt><dd>{}</dd>',
        ((key, glossary.TERMS[key].label, glossary.TERMS[key].definition) for key in glossary.PAGE_TERMS.get(page, ())),
    )  # fmt: skip
    return format_html('<section class="glossary" id="glossary"><h3>Terms on this page</h3><dl>{}</dl></section>', rows)


@register.simple_tag
def preference_answer(preference: Any) -> dict:
    """How the pair view shows one preference (annotate.dashboard.PairAnnotation): a verdict-only
    answer (annotate.verdicts decides which are) as its verdict with the probability the rater
    gave it; a strength on the -3..3 scale otherwise. No "slightly better" for a plain [[A]]."""
    reading = preference.reading
    if reading.strength is not None:
        return {"kind": "strength", "label": reading.text}
    probabilities = preference.probabilities or {}
    shown = ", ".join(f"p({k}) = {float(probabilities[k]):.2f}" for k in VERDICT_LABELS if k in probabilities)
    return {"kind": "verdict", "verdict": reading.verdict, "probability": reading.probability, "all": shown}
