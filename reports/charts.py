"""Charts as inline SVG, drawn on the server: no JavaScript, no CDN, readable without CSS.

Each function returns an SVG string (marked safe; every label is escaped here).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

from django.utils.safestring import SafeString, mark_safe

from .glossary import too_few, too_few_text

FONT = 'font-family="system-ui, sans-serif" font-size="12"'
ACCENT = "#2457a6"
MUTED = "#60656b"
LINE = "#dcdcd6"


@dataclass
class Bar:
    label: str
    value: float | None
    lo: float | None = None
    hi: float | None = None
    note: str = ""
    # Units the value rests on: below glossary.MIN_N the bar is not drawn ("too few to say").
    n: int | None = None


def _fmt(x: float | None, digits: int = 3) -> str:
    return "n/a" if x is None else f"{x:.{digits}f}"


def bars_with_intervals(
    bars: Sequence[Bar],
    *,
    lo: float = 0.0,
    hi: float = 1.0,
    reference: float | None = None,
    title: str = "",
    digits: int = 3,
    percent: bool = False,
    base: float | None = None,
    base_label: str = "",
) -> SafeString:
    """Horizontal bars with 95% interval whiskers; an optional reference line (e.g. 0.5 = no
    position bias, 0 = no self-preference).

    Bars grow from `base`: the scale's floor (`lo`, the default: 0 for a rate, the rating
    scale's minimum) or a stated reference such as the mean model's 1000 Elo, so a bar's length
    is the figure itself or its difference from that reference, never from an arbitrary cut.
    `base_label` says which, under the title."""
    base_value = lo if base is None else base
    label_w, plot_w, row_h = 190, 380, 26
    top = 44 if base_label else 28
    height = top + row_h * max(len(bars), 1) + 24
    width = label_w + plot_w + 220

    def x(v: float) -> float:
        v = min(max(v, lo), hi)
        return label_w + (v - lo) / (hi - lo) * plot_w

    def show(v: float | None) -> str:
        if v is None:
            return "n/a"
        return f"{v * 100:.{max(digits - 2, 0)}f}%" if percent else _fmt(v, digits)

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 {width} {height}" '
             f'width="{width}" height="{height}" role="img" aria-label="{escape(title)}" {FONT}>']  # fmt: skip
    if title:
        parts.append(f'<text x="0" y="16" font-weight="600">{escape(title)}</text>')
    if base_label:
        parts.append(f'<text x="0" y="32" fill="{MUTED}">{escape(base_label)}</text>')
    for tick in (lo, (lo + hi) / 2, hi):
        tx = x(tick)
        parts.append(f'<line x1="{tx:.1f}" y1="{top - 4}" x2="{tx:.1f}" y2="{height - 20}" stroke="{LINE}"/>')
        parts.append(f'<text x="{tx:.1f}" y="{height - 6}" text-anchor="middle" fill="{MUTED}">{show(tick)}</text>')
    base_x = x(base_value)
    for i, bar in enumerate(bars):
        y = top + i * row_h
        parts.append(f'<text x="{label_w - 8}" y="{y + 16}" text-anchor="end">{escape(bar.label)}</text>')
        if bar.n is not None and too_few(bar.n):
            parts.append(f'<text x="{label_w + 4}" y="{y + 16}" fill="{MUTED}" class="too-few">{escape(too_few_text(bar.n))}</text>')
            continue
        if bar.value is None:
            parts.append(f'<text x="{label_w + 4}" y="{y + 16}" fill="{MUTED}">{escape(bar.note or "n/a")}</text>')
            continue
        vx = x(bar.value)
        parts.append(f'<rect x="{min(base_x, vx):.1f}" y="{y + 5}" width="{abs(vx - base_x):.1f}" height="14" '
                     f'fill="{ACCENT}" fill-opacity="0.75"><title>{escape(bar.label)}: {show(bar.value)}</title></rect>')  # fmt: skip
        if bar.lo is not None and bar.hi is not None:
            x1, x2 = x(bar.lo), x(bar.hi)
            parts.append(f'<line x1="{x1:.1f}" y1="{y + 12}" x2="{x2:.1f}" y2="{y + 12}" stroke="#1d1f21" stroke-width="1.5"/>')
            for xe in (x1, x2):
                parts.append(f'<line x1="{xe:.1f}" y1="{y + 7}" x2="{xe:.1f}" y2="{y + 17}" stroke="#1d1f21" stroke-width="1.5"/>')
        text = show(bar.value) + (f" {bar.note}" if bar.note else "")
        parts.append(f'<text x="{label_w + plot_w + 8}" y="{y + 16}">{escape(text)}</text>')
    if reference is not None and lo <= reference <= hi:
        rx = x(reference)
        parts.append(f'<line x1="{rx:.1f}" y1="{top - 4}" x2="{rx:.1f}" y2="{height - 20}" stroke="#b3261e" stroke-dasharray="4 3"/>')
    parts.append("</svg>")
    return mark_safe("".join(parts))


def heatmap(
    matrix: Sequence[Sequence[float | None]],
    rows: Sequence[str],
    cols: Sequence[str],
    *,
    title: str = "",
    row_title: str = "",
    col_title: str = "",
    vmin: float | None = None,
    vmax: float | None = None,
    digits: int = 0,
    ns: Sequence[Sequence[int | None]] | None = None,
) -> SafeString:
    """A matrix as coloured cells with the number printed in each (confusions, kappa matrices).

    With `ns` (units per cell), a cell resting on too few units is left blank with "too few to
    say (n = k)" on hover, not coloured as if it meant something."""
    values = [v for row in matrix for v in row if v is not None]
    lo = min(values, default=0.0) if vmin is None else vmin
    hi = max(values, default=1.0) if vmax is None else vmax
    cell, label_w, top = 56, 150, 96
    width = label_w + cell * len(cols) + 80
    height = top + cell * len(rows) + 30
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 {width} {height}" '
             f'width="{width}" height="{height}" role="img" aria-label="{escape(title)}" {FONT}>']  # fmt: skip
    if title:
        parts.append(f'<text x="0" y="16" font-weight="600">{escape(title)}</text>')
    if col_title:
        parts.append(f'<text x="{label_w + cell * len(cols) / 2}" y="30" text-anchor="middle" fill="{MUTED}">{escape(col_title)}</text>')
    for j, c in enumerate(cols):
        # Column labels slanted so long rater names do not run into each other.
        cx, cy = label_w + cell * j + cell / 2, top - 6
        parts.append(f'<text x="{cx}" y="{cy}" transform="rotate(-35 {cx} {cy})">{escape(_short(c, 16))}</text>')
    for i, r in enumerate(rows):
        y = top + cell * i
        parts.append(f'<text x="{label_w - 6}" y="{y + cell / 2 + 4}" text-anchor="end">{escape(_short(r, 22))}</text>')
        for j, v in enumerate(matrix[i]):
            x = label_w + cell * j
            n = ns[i][j] if ns is not None else None
            hover = ""
            if ns is not None and i != j and too_few(n):
                fill, txt, ink, hover = "#f0f0ec", "–", MUTED, too_few_text(n)
            elif v is None:
                fill, txt, ink = "#f0f0ec", "", "#1d1f21"
            else:
                t = 0.0 if hi == lo else (v - lo) / (hi - lo)
                t = min(max(t, 0.0), 1.0)
                fill = _blend(t)
                txt = f"{v:.{digits}f}"
                ink = "#fff" if t > 0.55 else "#1d1f21"
            parts.append(f'<rect x="{x}" y="{y}" width="{cell - 2}" height="{cell - 2}" fill="{fill}" rx="3">'
                         f'<title>{escape(r)} / {escape(c)}: {hover or txt or "n/a"}</title></rect>')  # fmt: skip
            parts.append(f'<text x="{x + cell / 2 - 1}" y="{y + cell / 2 + 4}" text-anchor="middle" fill="{ink}">{txt}</text>')
    if row_title:
        parts.append(f'<text x="0" y="{height - 8}" fill="{MUTED}">rows: {escape(row_title)}</text>')
    parts.append("</svg>")
    return mark_safe("".join(parts))


def reliability_description(bins: Sequence[dict]) -> str:
    """The diagram in words (its <desc>): what is drawn, then every non-empty bin's figures."""
    filled = [b for b in bins if b["n"]]
    per_bin = "; ".join(f"confidence {b['lo']:.2f}-{b['hi']:.2f}: n={b['n']}, agreement with gold {b['accuracy']:.3f}"
                        for b in filled)  # fmt: skip
    return ("Bars: the share of pairs whose verdict agrees with gold, per confidence bin; dashed diagonal: "
            "perfect calibration. " + (per_bin + "." if per_bin else "No pairs."))  # fmt: skip


def reliability_diagram(bins: Sequence[dict], *, title: str = "", lo: float = 0.5) -> SafeString:
    """Accuracy per confidence bin against the diagonal (Guo et al., 2017); bar width by bin.
    Confidence runs from `lo` (0.5 for a binary pick's confidence, 0 for P(verdict == gold)).
    Its <title> and <desc> say it in words for a screen reader (the bins' n and agreement)."""
    size, pad = 260, 40
    width, height = size + pad + 20, size + pad + 30

    def px(v: float) -> float:  # confidence lo..1 on x
        return pad + (v - lo) / (1 - lo) * size

    def py(v: float) -> float:  # accuracy 0..1 on y
        return 24 + (1 - v) * size

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 {width} {height}" '
             f'width="{width}" height="{height}" role="img" aria-label="{escape(title)}" {FONT}>']  # fmt: skip
    parts.append(f"<title>{escape(title or 'Reliability diagram')}</title><desc>{escape(reliability_description(bins))}</desc>")
    if title:
        parts.append(f'<text x="0" y="14" font-weight="600">{escape(title)}</text>')
    parts.append(f'<rect x="{pad}" y="24" width="{size}" height="{size}" fill="none" stroke="{LINE}"/>')
    parts.append(f'<line x1="{px(lo)}" y1="{py(lo)}" x2="{px(1)}" y2="{py(1)}" stroke="#b3261e" stroke-dasharray="4 3"/>')
    for b in bins:
        if not b["n"]:
            continue
        x0, x1 = px(b["lo"]), px(b["hi"])
        y = py(b["accuracy"])
        parts.append(f'<rect x="{x0 + 1:.1f}" y="{y:.1f}" width="{x1 - x0 - 2:.1f}" height="{py(0) - y:.1f}" '
                     f'fill="{ACCENT}" fill-opacity="0.7"><title>confidence {b["lo"]:.2f}-{b["hi"]:.2f}: '
                     f'accuracy {b["accuracy"]:.3f}, n={b["n"]}</title></rect>')  # fmt: skip
    for v in (lo, (lo + 1) / 2, 1.0):
        parts.append(f'<text x="{px(v)}" y="{py(0) + 16}" text-anchor="middle" fill="{MUTED}">{v:.2f}</text>')
    for v in (0.0, 0.5, 1.0):
        parts.append(f'<text x="{pad - 6}" y="{py(v) + 4}" text-anchor="end" fill="{MUTED}">{v:.1f}</text>')
    parts.append(f'<text x="{pad + size / 2}" y="{height - 2}" text-anchor="middle" fill="{MUTED}">confidence</text>')
    parts.append("</svg>")
    return mark_safe("".join(parts))


def _short(text: str, limit: int = 12) -> str:
    text = text.split(":", 1)[-1] if ":" in text else text
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _blend(t: float) -> str:
    """White to the accent blue."""
    r0, g0, b0 = 0xF7, 0xF7, 0xF5
    r1, g1, b1 = 0x24, 0x57, 0xA6
    return f"#{int(r0 + (r1 - r0) * t):02x}{int(g0 + (g1 - g0) * t):02x}{int(b0 + (b1 - b0) * t):02x}"
