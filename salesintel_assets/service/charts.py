"""Server-side SVG charts for the dashboard: small, fast, no JavaScript.
Every mark carries a <title> so hovering shows the exact figures."""

from __future__ import annotations

from markupsafe import Markup, escape

INK, MUTED, GRID, ACCENT, BAND = "#1f2937", "#6b7280", "#e5e7eb", "#2563eb", "#bfdbfe"
UP, DOWN = "#059669", "#dc2626"


def money(value) -> str:
    if value is None:
        return "–"
    value = float(value)
    for unit, size in (("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(value) >= size:
            return f"${value / size:,.1f}{unit}"
    return f"${value:,.0f}"


def pct(value, digits: int = 0) -> str:
    return "–" if value is None else f"{float(value) * 100:.{digits}f}%"


def _svg(width: int, height: int, body: list[str], label: str) -> Markup:
    return Markup(f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" aria-label="{escape(label)}" '
                  f'xmlns="http://www.w3.org/2000/svg">{"".join(body)}</svg>')


def _text(x, y, text, anchor="middle", size=11, color=MUTED, weight="normal") -> str:
    return (f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" font-size="{size}" fill="{color}" '
            f'font-weight="{weight}">{escape(text)}</text>')


def _empty(width: int, height: int, message: str) -> Markup:
    return _svg(width, height, [_text(width / 2, height / 2, message, size=13)], message)


def win_rate_chart(points: list[dict], width: int = 680, height: int = 250) -> Markup:
    """Monthly win rate (line) inside its 95 % interval (band)."""
    if not points:
        return _empty(width, height, "No closed deals yet")
    left, right, top, bottom = 44, 12, 14, 30
    top_value = min(1.0, max(p["ci_high"] for p in points) + 0.05)
    step = (width - left - right) / max(1, len(points) - 1)
    x = lambda i: left + i * step  # noqa: E731
    y = lambda v: top + (1 - v / top_value) * (height - top - bottom)  # noqa: E731
    body = []
    for tick in [t / 10 for t in range(0, 11)]:
        if tick <= top_value + 1e-9 and (round(tick * 10) % (2 if top_value > 0.5 else 1) == 0):
            body.append(f'<line x1="{left}" x2="{width - right}" y1="{y(tick):.1f}" y2="{y(tick):.1f}" '
                        f'stroke="{GRID}"/>')
            body.append(_text(left - 6, y(tick) + 4, pct(tick), anchor="end"))
    band = [f"{x(i):.1f},{y(p['ci_high']):.1f}" for i, p in enumerate(points)] + \
           [f"{x(i):.1f},{y(p['ci_low']):.1f}" for i, p in reversed(list(enumerate(points)))]
    body.append(f'<polygon points="{" ".join(band)}" fill="{BAND}" opacity="0.7"/>')
    line = " ".join(f"{x(i):.1f},{y(p['win_rate']):.1f}" for i, p in enumerate(points))
    body.append(f'<polyline points="{line}" fill="none" stroke="{ACCENT}" stroke-width="2.2"/>')
    every = max(1, len(points) // 8)
    for i, p in enumerate(points):
        body.append(f'<circle cx="{x(i):.1f}" cy="{y(p["win_rate"]):.1f}" r="3.2" fill="{ACCENT}">'
                    f'<title>{escape(p["month"])}: {pct(p["win_rate"], 1)} of {p["closed"]} closed '
                    f'(95% {pct(p["ci_low"])}–{pct(p["ci_high"])})</title></circle>')
        last = i == len(points) - 1
        if last or (i % every == 0 and len(points) - 1 - i >= max(2, every // 2)):
            body.append(_text(x(i), height - 10, p["month"]))
    return _svg(width, height, body, "Win rate by month with 95% intervals")


def interval_bars(rows: list[dict], label: str, value: str, low: str, high: str, fmt=money,
                  width: int = 680, height: int = 250) -> Markup:
    """One bar per row with an 80 % interval whisker."""
    if not rows:
        return _empty(width, height, "No open pipeline to forecast")
    left, right, top, bottom = 64, 12, 16, 30
    top_value = max(max(float(r[high] or 0) for r in rows), max(float(r[value] or 0) for r in rows)) * 1.12 or 1
    slot = (width - left - right) / len(rows)
    bar = min(90, slot * 0.5)
    y = lambda v: top + (1 - float(v) / top_value) * (height - top - bottom)  # noqa: E731
    body = []
    for k in range(5):
        tick = top_value * k / 4
        body.append(f'<line x1="{left}" x2="{width - right}" y1="{y(tick):.1f}" y2="{y(tick):.1f}" stroke="{GRID}"/>')
        body.append(_text(left - 6, y(tick) + 4, fmt(tick), anchor="end"))
    for i, r in enumerate(rows):
        cx = left + slot * (i + 0.5)
        v, lo, hi = float(r[value] or 0), float(r[low] or 0), float(r[high] or 0)
        tip = f"{r[label]}: {fmt(v)} expected (80% {fmt(lo)}–{fmt(hi)})"
        body.append(f'<rect x="{cx - bar / 2:.1f}" y="{y(v):.1f}" width="{bar:.1f}" height="{y(0) - y(v):.1f}" '
                    f'rx="4" fill="{ACCENT}" opacity="0.85"><title>{escape(tip)}</title></rect>')
        body.append(f'<line x1="{cx:.1f}" x2="{cx:.1f}" y1="{y(hi):.1f}" y2="{y(lo):.1f}" stroke="{INK}" '
                    f'stroke-width="1.6"/>')
        for end in (lo, hi):
            body.append(f'<line x1="{cx - 9:.1f}" x2="{cx + 9:.1f}" y1="{y(end):.1f}" y2="{y(end):.1f}" '
                        f'stroke="{INK}" stroke-width="1.6"/>')
        body.append(_text(cx, y(hi) - 6, fmt(v), color=INK, weight="600"))
        body.append(_text(cx, height - 10, str(r[label]), color=INK))
    return _svg(width, height, body, "Forecast with 80% intervals")


def waterfall(start: tuple[str, float], steps: list[tuple[str, float]], end: tuple[str, float],
              width: int = 680, height: int = 260) -> Markup:
    """From one period's win rate to the next: each step's contribution in
    percentage points (green up, red down)."""
    left, right, top, bottom = 44, 12, 18, 44
    levels, running = [start[1]], start[1]
    for _, delta in steps:
        running += delta
        levels.append(running)
    levels.append(end[1])
    low_value = max(0.0, min(levels) - 0.03)
    high_value = min(1.0, max(levels) + 0.03)
    span = high_value - low_value or 0.01
    y = lambda v: top + (1 - (v - low_value) / span) * (height - top - bottom)  # noqa: E731
    n = len(steps) + 2
    slot = (width - left - right) / n
    bar = slot * 0.62
    body = []
    for k in range(5):
        tick = low_value + span * k / 4
        body.append(f'<line x1="{left}" x2="{width - right}" y1="{y(tick):.1f}" y2="{y(tick):.1f}" stroke="{GRID}"/>')
        body.append(_text(left - 6, y(tick) + 4, pct(tick, 1 if span < 0.1 else 0), anchor="end"))

    def column(i, lo, hi, color, label, caption, tip):
        cx = left + slot * (i + 0.5)
        top_y, bottom_y = y(max(lo, hi)), y(min(lo, hi))
        body.append(f'<rect x="{cx - bar / 2:.1f}" y="{top_y:.1f}" width="{bar:.1f}" '
                    f'height="{max(1.5, bottom_y - top_y):.1f}" rx="3" fill="{color}"><title>{escape(tip)}</title></rect>')
        body.append(_text(cx, top_y - 5, caption, color=INK, size=10, weight="600"))
        name = label if len(label) <= 14 else label[:13] + "…"
        body.append(_text(cx, height - 26, name, color=INK, size=10))

    column(0, low_value, start[1], "#64748b", start[0], pct(start[1], 1), f"{start[0]}: {pct(start[1], 1)}")
    running = start[1]
    for i, (label, delta) in enumerate(steps, 1):
        color = UP if delta >= 0 else DOWN
        caption = f"{delta * 100:+.1f} pt"
        column(i, running, running + delta, color, label, caption, f"{label}: {caption}")
        running += delta
    column(n - 1, low_value, end[1], "#64748b", end[0], pct(end[1], 1), f"{end[0]}: {pct(end[1], 1)}")
    body.append(_text(width / 2, height - 8, "green raises the win rate, red lowers it (percentage points)", size=10))
    return _svg(width, height, body, "Win-rate change: rate and mix effects")
