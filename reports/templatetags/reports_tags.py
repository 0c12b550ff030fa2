"""Numbers as the reports print them: rates as percentages, coefficients to three places."""

from __future__ import annotations

from django import template

register = template.Library()


@register.simple_tag
def figure(value: float | None, percent: bool = False) -> str:
    if value is None:
        return "n/a"
    return f"{value * 100:.2f}%" if percent else f"{value:.3f}"


@register.simple_tag
def interval(ci: list | None, percent: bool = False) -> str:
    if not ci or ci[0] is None:
        return "n/a"
    return f"[{figure(ci[0], percent)}, {figure(ci[1], percent)}]"
