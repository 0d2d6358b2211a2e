"""Charts as inline SVG, drawn here from numbers: no script and no library is needed to see them,
so they show in a report opened from disk, in a notebook that strips scripts, and on GitHub.
Every mark carries a `<title>`: the browser shows it on hover. Every text is escaped."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from html import escape
from typing import Callable, Sequence

BLUE, ORANGE, GREEN, GREY, RED, PURPLE = "#3b6fb6", "#e0812f", "#3d9a52", "#9a9a9a", "#c8423b", "#7b5ea7"
FONT = 'font-family="system-ui,-apple-system,Segoe UI,sans-serif" font-size="11"'


def num(x: float, digits: int = 4) -> str:
    """A number for a label: 4 significant digits, small ones in scientific notation."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    if x == 0:
        return "0"
    if abs(x) < 1e-4:
        return f"{x:.1e}"
    if abs(x) >= 10**digits:  # a count: 1000, not 1e+03
        return f"{x:.0f}"
    return f"{x:.{digits}g}"


def _svg(width: float, height: float, body: str, label: str) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="{height:.0f}" viewBox="0 0 {width:.0f} {height:.0f}" '
        f'role="img" aria-label="{escape(label)}" {FONT}>{body}</svg>'
    )


def _text(x: float, y: float, text: str, anchor: str = "start", extra: str = "") -> str:
    return f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" {extra}>{escape(text)}</text>'


def _title(text: str) -> str:
    return f"<title>{escape(text)}</title>"


def shorten(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


@dataclass
class Bar:
    """One bar: a label, a value with an optional interval, and an optional marker (e.g. the exact value)."""

    label: str
    value: float
    low: float | None = None
    high: float | None = None
    marker: float | None = None
    tooltip: str = ""
    color: str = BLUE
    marker_high: float | None = None  # the marker's own interval [marker, marker_high], drawn as a line beneath it


def bar_chart(bars: Sequence[Bar], *, title: str, value_label: str, marker_label: str = "", width: int = 720, label_width: int = 260,
              x_max: float | None = None, interval_label: str = "95% interval", ticks: int = 5) -> str:
    """Horizontal bars with their intervals as whiskers (`interval_label` says what they are) and markers as diamonds;
    `ticks` intervals on the axis (e.g. one per count)."""
    row, top, bottom = 20, 34, 30
    height = top + row * max(1, len(bars)) + bottom
    plot = width - label_width - 20
    high = x_max or max([b.high or b.value for b in bars] + [max(b.marker or 0, b.marker_high or 0) for b in bars] + [1e-12])
    scale = plot / high
    x0 = label_width
    parts = [_text(0, 14, title, extra='font-weight="600" font-size="12"')]
    for i, b in enumerate(bars):
        y = top + i * row
        tip = _title(b.tooltip or f"{b.label}: {num(b.value)}")
        parts.append(f"<g>{tip}" + _text(x0 - 6, y + 13, shorten(b.label, 40), "end"))
        parts.append(f'<rect x="{x0}" y="{y + 3}" width="{max(0.5, b.value * scale):.1f}" height="{row - 7}" fill="{b.color}" opacity="0.8"/>')
        if b.low is not None and b.high is not None:
            lo, hi, mid = x0 + b.low * scale, x0 + b.high * scale, y + row / 2
            parts.append(f'<path d="M{lo:.1f},{mid:.1f}H{hi:.1f}M{lo:.1f},{mid - 4:.1f}V{mid + 4:.1f}M{hi:.1f},{mid - 4:.1f}V{mid + 4:.1f}" stroke="#222" fill="none"/>')
        if b.marker is not None and b.marker_high is not None and b.marker_high > b.marker:
            ly = y + row - 3
            parts.append(f'<path d="M{x0 + b.marker * scale:.1f},{ly:.1f}H{x0 + b.marker_high * scale:.1f}" stroke="{ORANGE}" stroke-width="2" stroke-opacity="0.6" fill="none"/>')
        if b.marker is not None:
            mx, my = x0 + b.marker * scale, y + row / 2
            parts.append(f'<path d="M{mx:.1f},{my - 6:.1f}L{mx + 5:.1f},{my:.1f}L{mx:.1f},{my + 6:.1f}L{mx - 5:.1f},{my:.1f}Z" fill="{ORANGE}" stroke="#fff"/>')
        parts.append("</g>")
    axis_y = top + row * max(1, len(bars)) + 4
    parts.append(_axis(x0, axis_y, plot, high, ticks))
    legend = _text(x0, axis_y + 24, f"bars: {value_label}" + (f" · whiskers: {interval_label}" if any(b.low is not None for b in bars) else ""))
    wrap = bool(marker_label) and 6.2 * (len(value_label) + len(interval_label) + len(marker_label) + 24) > plot
    if marker_label:  # on a line of its own when the two would overlap
        legend += _text(x0 + plot, axis_y + (38 if wrap else 24), f"◆ {marker_label}", "end", f'fill="{ORANGE}"')
    parts.append(legend)
    return _svg(width, height + (20 if wrap else 6), "".join(parts), title)


def _axis(x0: float, y: float, length: float, high: float, ticks: int = 5) -> str:
    out = [f'<line x1="{x0}" y1="{y}" x2="{x0 + length:.1f}" y2="{y}" stroke="#888"/>']
    for k in range(ticks + 1):
        v = high * k / ticks
        x = x0 + length * k / ticks
        out.append(f'<line x1="{x:.1f}" y1="{y}" x2="{x:.1f}" y2="{y + 4}" stroke="#888"/>' + _text(x, y + 14, num(v, 3), "middle", 'fill="#555"'))
    return "".join(out)


@dataclass
class Series:
    name: str
    values: Sequence[float | None]
    color: str = BLUE
    dashed: bool = False


@dataclass
class LineChart:
    title: str
    x_label: str
    y_label: str
    series: list[Series] = field(default_factory=list)
    y_max: float | None = None
    x_labels: Sequence[str] = ()  # a label per x (e.g. the token), shown in tooltips
    highlight: int | None = None  # an x to mark (e.g. a divergence step)
    link_prefix: str | None = None  # each x a link to #<prefix><x> (select a step without script)
    max_dots: int | None = None  # past this many points a series gets a dot (and tooltip) every few steps, and at its peak


def line_chart(chart: LineChart, width: int = 720, height: int = 236) -> str:
    """Lines over steps, a dot per point with a tooltip; points link to a step's details."""
    left, right, top, bottom = 60, 16, 44, 44
    n = max((len(s.values) for s in chart.series), default=0)
    values = [v for s in chart.series for v in s.values if v is not None and math.isfinite(v)]
    y_max = chart.y_max or (max(values) if values else 1.0) or 1.0
    plot_w, plot_h = width - left - right, height - top - bottom
    xs = lambda i: left + (plot_w * (i + 0.5) / n if n else 0)  # noqa: E731
    ys = lambda v: top + plot_h * (1 - min(v, y_max) / y_max)  # noqa: E731
    parts = [_text(0, 14, chart.title, extra='font-weight="600" font-size="12"')]
    for k in range(5):
        v = y_max * k / 4
        y = ys(v)
        parts.append(f'<line x1="{left}" y1="{y:.1f}" x2="{width - right}" y2="{y:.1f}" stroke="#eee"/>' + _text(left - 6, y + 4, num(v, 3), "end", 'fill="#555"'))
    parts.append(_text(10, top + plot_h / 2, chart.y_label, "middle", f'transform="rotate(-90 10 {top + plot_h / 2:.0f})" fill="#555"'))
    if chart.highlight is not None and n:
        x = xs(chart.highlight)
        parts.append(f'<line x1="{x:.1f}" y1="{top}" x2="{x:.1f}" y2="{top + plot_h}" stroke="{RED}" stroke-dasharray="4 3"/>')
    step = max(1, n // 20)
    for i in range(0, n, step):
        parts.append(_text(xs(i), height - bottom + 16, str(i), "middle", 'fill="#555"'))
    parts.append(_text(left + plot_w / 2, height - 6, chart.x_label, "middle", 'fill="#555"'))
    for s in chart.series:
        points = [(xs(i), ys(v)) for i, v in enumerate(s.values) if v is not None and math.isfinite(v)]
        if len(points) > 1:
            d = "M" + "L".join(f"{x:.1f},{y:.1f}" for x, y in points)
            dash = ' stroke-dasharray="5 3"' if s.dashed else ""
            parts.append(f'<path d="{d}" fill="none" stroke="{s.color}" stroke-width="1.6"{dash}/>')
        stride = 1 if chart.max_dots is None else max(1, math.ceil(n / chart.max_dots))
        finite = [(v, i) for i, v in enumerate(s.values) if v is not None and math.isfinite(v)]
        peak = max(finite)[1] if finite else None
        for i, v in enumerate(s.values):
            if v is None or not math.isfinite(v) or (i % stride and i != peak and i != chart.highlight):
                continue
            label = chart.x_labels[i] if i < len(chart.x_labels) else str(i)
            dot = f'<circle cx="{xs(i):.1f}" cy="{ys(v):.1f}" r="3" fill="{s.color}">{_title(f"step {i} {label}: {s.name} = {num(v)}")}</circle>'
            parts.append(f'<a href="#{escape(chart.link_prefix)}{i}">{dot}</a>' if chart.link_prefix else dot)
    x = left
    for s in chart.series:
        parts.append(f'<rect x="{x}" y="{top - 19}" width="10" height="3" fill="{s.color}"/>' + _text(x + 14, top - 15, s.name))
        x += 14 + 7 * len(s.name) + 16
    return _svg(width, height, "".join(parts), chart.title)


def heat_color(value: float | None, low: float = 0.0, high: float = 1.0) -> str:
    """White (low) to deep blue (high); grey for no value."""
    if value is None or not math.isfinite(value):
        return "#eeeeee"
    t = 0.0 if high == low else max(0.0, min(1.0, (value - low) / (high - low)))
    r, g, b = (int(255 + (c - 255) * t) for c in (33, 84, 160))
    return f"rgb({r},{g},{b})"


@dataclass
class Cell:
    value: float | None
    text: str = ""
    tooltip: str = ""
    color: str | None = None


def good_bad_color(value: float | None, low: float = 0.0, high: float = 1.0) -> str:
    """Red (low) through yellow to green (high), pale enough for dark text; grey for no value."""
    if value is None or not math.isfinite(value):
        return "#eeeeee"
    t = 0.0 if high == low else max(0.0, min(1.0, (value - low) / (high - low)))
    return f"hsl({int(120 * t)}, 62%, 78%)"


def heatmap(rows: Sequence[str], columns: Sequence[str], cells: Sequence[Sequence[Cell]], *, title: str, scale_label: str,
            low: float = 0.0, high: float = 1.0, cell_w: int = 64, row_label_w: int = 200,
            palette: Callable[[float | None, float, float], str] | None = None) -> str:
    """A matrix of coloured cells, each with its text and a tooltip. `palette(value, low, high)`
    colours cells and legend (default `heat_color`); a palette's colours must be pale: its text stays dark."""
    cell_h = 24
    top = 34 + int(3.5 * min(14, max((len(c) for c in columns), default=0)))  # the slanted column labels clear the title
    # room for the last column's slanted label, the title and the scale's legend
    width = max(row_label_w + cell_w * max(1, len(columns)) + 72, 7 * len(title) + 10, row_label_w + 186 + 6 * len(scale_label))
    height = top + cell_h * len(rows) + 36
    parts = [_text(0, 14, title, extra='font-weight="600" font-size="12"')]
    for j, col in enumerate(columns):
        x = row_label_w + j * cell_w + cell_w / 2
        parts.append(f"<g>{_title(col)}" + _text(x, top - 8, shorten(col, 14), "start", f'transform="rotate(-35 {x:.1f} {top - 8})"') + "</g>")
    for i, row in enumerate(rows):
        y = top + i * cell_h
        parts.append(f"<g>{_title(row)}" + _text(row_label_w - 6, y + 16, shorten(row, 32), "end") + "</g>")
        for j, c in enumerate(cells[i]):
            x = row_label_w + j * cell_w
            fill = c.color or (palette or heat_color)(c.value, low, high)
            dark = (palette is None and c.value is not None and math.isfinite(c.value) and high > low
                    and (c.value - low) / (high - low) > 0.6)
            parts.append(
                f'<g>{_title(c.tooltip or num(c.value or 0))}<rect x="{x}" y="{y}" width="{cell_w - 2}" height="{cell_h - 2}" fill="{fill}"/>'
                + _text(x + cell_w / 2 - 1, y + 15, c.text, "middle", 'fill="#fff"' if dark else "")
                + "</g>"
            )
    y = top + cell_h * len(rows) + 10
    for k in range(6):
        v = low + (high - low) * k / 5
        parts.append(f'<rect x="{row_label_w + k * 28}" y="{y}" width="28" height="10" fill="{(palette or heat_color)(v, low, high)}"/>')
    parts.append(_text(row_label_w, y + 22, num(low, 3)) + _text(row_label_w + 168, y + 22, num(high, 3), "end"))
    parts.append(_text(row_label_w + 176, y + 9, scale_label))
    return _svg(width, height, "".join(parts), title)


@dataclass
class Block:
    """A rectangle of a partition chart: [x0, x1) as shares of the whole, at a depth."""

    x0: float
    x1: float
    depth: int
    label: str
    tooltip: str
    color: str = BLUE


def icicle(blocks: Sequence[Block], *, title: str, depth_label: str, width: int = 720, row: int = 22) -> str:
    """Blocks of a tree laid out by depth (rows) and share (width): an icicle chart."""
    depth = max((b.depth for b in blocks), default=0) + 1
    top, left = 24, 40
    plot = width - left - 4
    parts = [_text(0, 14, title, extra='font-weight="600" font-size="12"')]
    for d in range(depth):
        parts.append(_text(left - 6, top + d * row + 15, str(d), "end", 'fill="#555"'))
    for b in blocks:
        x, w, y = left + b.x0 * plot, max(0.6, (b.x1 - b.x0) * plot), top + b.depth * row
        fits = int((w - 5) / 6.5)  # characters that fit in the block
        label = _text(x + 3, y + 15, shorten(b.label, fits)) if fits >= 2 else ""
        parts.append(f'<g>{_title(b.tooltip)}<rect x="{x:.1f}" y="{y}" width="{w:.1f}" height="{row - 2}" fill="{b.color}" '
                     f'stroke="#fff" stroke-width="0.5"/>{label}</g>')
    parts.append(_text(left, top + depth * row + 14, depth_label, extra='fill="#555"'))
    return _svg(width, top + depth * row + 20, "".join(parts), title)


def step_chart(points: Sequence[tuple[float, float]], *, title: str, x_label: str, y_label: str, y_max: float = 1.0,
               reference: float | None = None, reference_label: str = "", width: int = 720, height: int = 200) -> str:
    """A cumulative curve (x, y) as steps, with an optional horizontal reference line."""
    left, right, top, bottom = 48, 16, 26, 40
    plot_w, plot_h = width - left - right, height - top - bottom
    x_max = max((x for x, _ in points), default=1.0) or 1.0
    xs = lambda x: left + plot_w * x / x_max  # noqa: E731
    ys = lambda y: top + plot_h * (1 - min(y, y_max) / y_max)  # noqa: E731
    parts = [_text(0, 14, title, extra='font-weight="600" font-size="12"')]
    for k in range(5):
        v = y_max * k / 4
        parts.append(f'<line x1="{left}" y1="{ys(v):.1f}" x2="{width - right}" y2="{ys(v):.1f}" stroke="#eee"/>' + _text(left - 6, ys(v) + 4, num(v, 3), "end", 'fill="#555"'))
    if reference is not None:
        parts.append(f'<line x1="{left}" y1="{ys(reference):.1f}" x2="{width - right}" y2="{ys(reference):.1f}" stroke="{RED}" stroke-dasharray="4 3"/>'
                     + _text(width - right, ys(reference) - 4, reference_label, "end", f'fill="{RED}"'))
    d, prev = f"M{xs(0):.1f},{ys(0):.1f}", 0.0
    for x, y in points:
        d += f"V{ys(prev):.1f}H{xs(x):.1f}V{ys(y):.1f}"
        prev = y
    parts.append(f'<path d="{d}" fill="none" stroke="{BLUE}" stroke-width="1.6"/>')
    for x, y in points[:: max(1, len(points) // 200)]:
        parts.append(f'<circle cx="{xs(x):.1f}" cy="{ys(y):.1f}" r="2" fill="{BLUE}">{_title(f"{x_label} {x:g}: {y_label} {num(y)}")}</circle>')
    parts.append(_text(left + plot_w / 2, height - 6, x_label, "middle", 'fill="#555"'))
    for x in range(int(x_max) + 1) if x_max <= 10 else sorted({round(x_max * k / 4) for k in range(5)}):  # whole numbers, each once
        parts.append(_text(xs(x), height - bottom + 16, str(x), "middle", 'fill="#555"'))
    parts.append(_text(12, top + plot_h / 2, y_label, "middle", f'transform="rotate(-90 12 {top + plot_h / 2:.0f})" fill="#555"'))
    return _svg(width, height, "".join(parts), title)


@dataclass
class TreeNode:
    """A node of a tree to draw as an icicle: its `weight` is its share of the whole (0..1); its
    children's weights sum to at most its own (the rest is drawn as a gap: e.g. samples that ended)."""

    weight: float
    label: str
    tooltip: str
    color: str = BLUE
    children: list[TreeNode] = field(default_factory=list)


def tree_blocks(roots: Sequence[TreeNode], *, min_share: float = 0.004, max_blocks: int = 800, x0: float = 0.0,
                other: Callable[[Sequence[TreeNode], float], str] | None = None, other_color: str = "#d4d4d4") -> list[Block]:
    """The blocks of an icicle, children in the order given. Siblings narrower than `min_share`
    are merged into one "other" block (`other(nodes, weight)` is its tooltip) and not descended
    into; past `max_blocks` nodes, the narrowest are merged too (all of one width or none), so a
    tree of thousands of leaves stays a few hundred marks."""
    weights: list[float] = []
    stack = list(roots)
    while stack:
        node = stack.pop()
        if node.weight >= min_share:
            weights.append(node.weight)
            stack.extend(node.children)
    if len(weights) > max_blocks:
        weights.sort(reverse=True)
        min_share = math.nextafter(weights[max_blocks], math.inf)  # keep only the nodes wider than the first left out
    blocks: list[Block] = []

    def place(nodes: Sequence[TreeNode], x: float, depth: int) -> None:
        small = [n for n in nodes if n.weight < min_share]
        for n in nodes:
            if n.weight >= min_share or len(small) == 1:
                blocks.append(Block(x, x + n.weight, depth, n.label, n.tooltip, n.color))
                if n.weight >= min_share:
                    place(n.children, x, depth + 1)
                x += n.weight
        if len(small) > 1:
            weight = math.fsum(n.weight for n in small)
            tip = other(small, weight) if other else f"{len(small)} others, together {num(weight)}"
            blocks.append(Block(x, x + weight, depth, "other", tip, other_color))

    place(roots, x0, 0)
    return blocks


def nice_ceiling(x: float) -> float:
    """The smallest of 1, 2, 2.5, 5 × 10^k at or above x (an axis maximum with round ticks)."""
    if not math.isfinite(x) or x <= 0:
        return 1.0
    scale = 10 ** math.floor(math.log10(x))
    return next((m * scale for m in (1, 2, 2.5, 5, 10) if m * scale >= x * (1 - 1e-9)), 10 * scale)


@dataclass
class IntervalSeries:
    """Estimates against x, each with an optional interval: points (x, value, low, high)."""

    name: str
    points: Sequence[tuple[float, float | None, float | None, float | None]]
    color: str = BLUE
    band: bool = True  # shade the intervals between points (else whiskers only)


def interval_chart(series: Sequence[IntervalSeries], *, title: str, x_label: str, y_label: str,
                   reference: tuple[float, float | None] | None = None, reference_label: str = "", log_x: bool = True,
                   width: int = 720, height: int = 250) -> str:
    """Estimates with their intervals against x (log scale by default, ticks at the x given), with an
    optional reference: a band [low, high], a line when high == low, or a line with an arrow up when
    high is None (only a lower bound is known)."""
    left, right, top, bottom = 56, 16, 44, 40
    plot_w, plot_h = width - left - right, height - top - bottom
    xs_all = sorted({p[0] for s in series for p in s.points})
    ys_all = [v for s in series for p in s.points for v in p[1:] if v is not None and math.isfinite(v)]
    if reference is not None:
        ys_all += [reference[0]]
    top_of_series = max(ys_all, default=1.0)
    if reference is not None and reference[1] is not None and reference[1] <= 2 * top_of_series:
        ys_all.append(reference[1])  # a reference far above the estimates is clipped (and labelled) instead
    step = nice_ceiling(max(ys_all, default=1.0) * 1.05 / 4)  # a round tick step, 4 or 5 of them
    ticks = max(1, math.ceil(max(ys_all, default=1.0) * 1.05 / step - 1e-9))
    y_max = step * ticks
    use_log = log_x and xs_all and xs_all[0] > 0 and len(xs_all) > 1
    lo_x, hi_x = (xs_all[0], xs_all[-1]) if xs_all else (0.0, 1.0)
    f = (lambda v: math.log10(v)) if use_log else (lambda v: v)  # noqa: E731
    span = (f(hi_x) - f(lo_x)) or 1.0
    xs = lambda v: left + plot_w * (0.5 if len(xs_all) < 2 else (f(v) - f(lo_x)) / span)  # noqa: E731
    ys = lambda v: top + plot_h * (1 - min(max(v, 0.0), y_max) / y_max)  # noqa: E731
    parts = [_text(0, 14, title, extra='font-weight="600" font-size="12"')]
    for k in range(ticks + 1):
        v = step * k
        parts.append(f'<line x1="{left}" y1="{ys(v):.1f}" x2="{width - right}" y2="{ys(v):.1f}" stroke="#eee"/>'
                     + _text(left - 6, ys(v) + 4, num(v, 3), "end", 'fill="#555"'))  # fmt: skip
    parts.append(_text(12, top + plot_h / 2, y_label, "middle", f'transform="rotate(-90 12 {top + plot_h / 2:.0f})" fill="#555"'))
    if reference is not None:
        low, high = reference
        if high is not None and high > low:
            y0, y1 = ys(min(high, y_max)), ys(low)
            parts.append(f'<g>{_title(f"{reference_label}: [{num(low)}, {num(high)}]")}<rect x="{left}" y="{y0:.1f}" width="{plot_w}" '
                         f'height="{max(1.0, y1 - y0):.1f}" fill="{RED}" opacity="0.15"/></g>')  # fmt: skip
        line = f"{reference_label}: {num(low)}" + (" (a lower bound; no upper bound known)" if high is None else "")
        parts.append(f'<g>{_title(line)}<line x1="{left}" y1="{ys(low):.1f}" x2="{width - right}" y2="{ys(low):.1f}" stroke="{RED}" '
                     f'stroke-dasharray="5 3"/></g>')  # fmt: skip
        if high is not None and high > y_max:
            parts.append(_text(width - right - 4, top + 12, f"upper end {num(high)}: above the chart", "end", f'fill="{RED}"'))
        elif high is not None and high > low:
            parts.append(f'<line x1="{left}" y1="{ys(high):.1f}" x2="{width - right}" y2="{ys(high):.1f}" '
                         f'stroke="{RED}" stroke-dasharray="5 3"/>')  # fmt: skip
    for s in series:
        pts = [p for p in s.points if p[1] is not None and math.isfinite(p[1])]
        banded = [p for p in pts if p[2] is not None and p[3] is not None]
        if s.band and len(banded) > 1:
            upper = "L".join(f"{xs(p[0]):.1f},{ys(p[3]):.1f}" for p in banded)  # type: ignore[arg-type]
            lower = "L".join(f"{xs(p[0]):.1f},{ys(p[2]):.1f}" for p in reversed(banded))  # type: ignore[arg-type]
            parts.append(f'<path d="M{upper}L{lower}Z" fill="{s.color}" opacity="0.14"/>')
        if len(pts) > 1:
            parts.append('<path d="M' + "L".join(f"{xs(p[0]):.1f},{ys(p[1]):.1f}" for p in pts)  # type: ignore[arg-type]
                         + f'" fill="none" stroke="{s.color}" stroke-width="1.6"/>')  # fmt: skip
        for x, v, low, high in pts:
            interval = f" [{num(low)}, {num(high)}]" if low is not None and high is not None else ""
            whisker = ""
            if low is not None and high is not None:
                whisker = f'<path d="M{xs(x):.1f},{ys(low):.1f}V{ys(high):.1f}" stroke="{s.color}" stroke-width="1"/>'
            parts.append(f"<g>{_title(f'{x_label} {x:g}: {s.name} {num(v)}{interval}')}{whisker}"  # type: ignore[arg-type]
                         f'<circle cx="{xs(x):.1f}" cy="{ys(v):.1f}" r="3" fill="{s.color}"/></g>')  # type: ignore[arg-type]
    last_x = -1e9
    for x in xs_all:  # tick labels at the x given, skipping those that would overlap
        if xs(x) - last_x >= 26:
            parts.append(_text(xs(x), height - bottom + 16, f"{x:g}", "middle", 'fill="#555"'))
            last_x = xs(x)
    parts.append(_text(left + plot_w / 2, height - 6, x_label + (" (log scale)" if use_log else ""), "middle", 'fill="#555"'))
    x = left
    for s in series:
        parts.append(f'<rect x="{x}" y="{top - 19}" width="10" height="3" fill="{s.color}"/>' + _text(x + 14, top - 15, s.name))
        x += 14 + 6.2 * len(s.name) + 16
    if reference is not None:
        parts.append(f'<rect x="{x}" y="{top - 22}" width="10" height="9" fill="{RED}" opacity="0.3"/>' + _text(x + 14, top - 15, reference_label, extra=f'fill="{RED}"'))
    return _svg(width, height, "".join(parts), title)
