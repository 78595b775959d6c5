"""SVG charts of a perf/compare run, written as text: grouped bars, one panel per group of cells.

STEM-cpu.svg: proxy CPU-µs per request per proxy and worker count, one panel per body size,
bars grouped by connection count, whiskers from the fastest to the slowest repetition.
STEM-latency.svg: ringload's p50, p99 and p99.9 per target at the smallest body size, one panel
per connection count, on a log scale.
"""

import math
import os
from xml.sax.saxutils import escape

from names import body_name, num, target_name

COLORS = {"direct": "#7f7f7f", "ringproxy": "#d95f02", "haproxy": "#1f78b4",
          "haproxy-tcp": "#a6cee3", "ringproxy-epoll": "#fdbf6f",
          "ringproxy-uring": "#e6ab02", "relay-floor": "#fb9a99",
          "nginx": "#33a02c", "apache": "#6a3d9a"}
PERCENTILES = (("p50_us", "p50", "#a6cee3"), ("p99_us", "p99", "#1f78b4"),
               ("p999_us", "p99.9", "#08306b"))
BAR, GAP, GROUP_GAP = 14, 3, 26
PLOT_H, TOP, LEFT, BOTTOM = 220, 56, 58, 46
FONT = 'font-family="sans-serif"'


def write(out_dir, stem, cells):
    """Writes the charts that the cells allow; returns their paths."""
    paths = []
    for name, svg in (("cpu", cpu_chart(cells)), ("latency", latency_chart(cells))):
        if svg:
            path = os.path.join(out_dir, f"{stem}-{name}.svg")
            with open(path, "w") as f:
                f.write(svg)
            paths.append(path)
    return paths


def stat(cell, key):
    figure = cell["summary"].get(key)
    return (figure["median"], figure["min"], figure["max"]) if figure else None


def label(cell):
    return target_name(cell["target"], cell["workers"])


def cpu_chart(cells):
    proxies = [c for c in cells if c["target"] != "direct" and stat(c, "proxy_cpu_us_per_req")]
    if not proxies:
        return None
    panels = []
    for body in sorted({c["body"] for c in proxies}):
        groups = []
        for conns in sorted({c["conns"] for c in proxies if c["body"] == body}):
            bars = [bar(c, "proxy_cpu_us_per_req", COLORS[c["target"]],
                        0.5 if c["workers"] > 1 else 1.0)
                    for c in proxies if c["body"] == body and c["conns"] == conns]
            groups.append((f"c{conns}", bars))
        panels.append((body_name(body), groups))
    legend = []
    for c in proxies:
        entry = (COLORS[c["target"]], 0.5 if c["workers"] > 1 else 1.0, label(c))
        if entry not in legend:
            legend.append(entry)
    title = "Proxy CPU-µs per request (lower is better; whiskers: min–max of the repetitions)"
    return chart(title, panels, legend, log=False, unit="CPU-µs/req")


def bar(cell, key, color, opacity):
    median, lo, hi = stat(cell, key)
    return {"value": median, "lo": lo, "hi": hi, "color": color, "opacity": opacity}


def latency_chart(cells):
    ok = [c for c in cells if stat(c, "p50_us")]
    if not ok:
        return None
    body = min(c["body"] for c in ok)
    panels = []
    for conns in sorted({c["conns"] for c in ok if c["body"] == body}):
        groups = []
        for c in [c for c in ok if c["body"] == body and c["conns"] == conns]:
            bars = [{"value": stat(c, key)[0] / 1000, "color": color, "opacity": 1.0}
                    for key, _, color in PERCENTILES]
            groups.append((label(c), bars))
        panels.append((f"{body_name(body)}, c{conns}", groups))
    legend = [(color, 1.0, name) for _, name, color in PERCENTILES]
    return chart("Latency percentiles from ringload, ms (log scale; medians of the repetitions)",
                 panels, legend, log=True, unit="ms", slanted=True)


# ---- drawing ----

def chart(title, panels, legend, log, unit, slanted=False):
    """An SVG document: a title, a legend, and the panels side by side (a log scale is shared by
    all panels; linear ones are each their own)."""
    bottom = BOTTOM + (70 if slanted else 0)
    widths = [panel_width(groups) for _, groups in panels]
    legend_width = sum(22 + 6.5 * len(name) for _, _, name in legend)
    width = int(max(sum(widths) + 20, 7.6 * len(title) + 20, legend_width + 20))
    height = TOP + PLOT_H + bottom + 24
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}">',
           f'<rect width="{width}" height="{height}" fill="white"/>',
           text(10, 20, title, size=14, weight="bold", anchor="start")]
    out += legend_items(legend, 10, 40)
    shared = log_scale([v for _, groups in panels for v in bar_tops(groups)]) if log else None
    x = 0
    for (name, groups), w in zip(panels, widths):
        scale = shared or linear_scale(bar_tops(groups))
        out += panel(x, TOP + 24, w, name, groups, scale, unit, slanted)
        x += w
    out.append("</svg>")
    return "\n".join(out) + "\n"


def panel_width(groups):
    return LEFT + sum(len(bars) * (BAR + GAP) + GROUP_GAP for _, bars in groups) + 10


def legend_items(legend, x, y):
    out = []
    for color, opacity, name in legend:
        out.append(f'<rect x="{x}" y="{y - 9}" width="10" height="10" fill="{color}" '
                   f'fill-opacity="{opacity}"/>')
        out.append(text(x + 14, y, name, size=11, anchor="start"))
        x += 22 + 6.5 * len(name)  # as in chart()
    return out


def bar_tops(groups):
    return [b.get("hi", b["value"]) for _, bars in groups for b in bars]


def panel(x0, y0, width, title, groups, scale, unit, slanted):
    out = [text(x0 + LEFT + (width - LEFT) / 2, y0 - 6, title, size=12, weight="bold")]
    for tick in scale["ticks"]:
        y = y0 + PLOT_H - scale["pos"](tick) * PLOT_H
        out.append(f'<line x1="{x0 + LEFT}" x2="{x0 + width - 10}" y1="{y:.1f}" y2="{y:.1f}" '
                   f'stroke="#ddd"/>')
        out.append(text(x0 + LEFT - 4, y + 4, tick_label(tick), size=10, anchor="end"))
    out.append(text(x0 + 12, y0 + PLOT_H / 2, unit, size=10,
                    transform=f"rotate(-90 {x0 + 12} {y0 + PLOT_H / 2})"))
    x = x0 + LEFT + GROUP_GAP / 2
    for name, bars in groups:
        start = x
        for b in bars:
            out += draw_bar(x, y0, b, scale)
            x += BAR + GAP
        mid = (start + x - GAP) / 2
        if slanted:
            out.append(text(mid, y0 + PLOT_H + 14, name, size=10, anchor="end",
                            transform=f"rotate(-40 {mid} {y0 + PLOT_H + 14})"))
        else:
            out.append(text(mid, y0 + PLOT_H + 16, name, size=11))
        x += GROUP_GAP
    out.append(f'<line x1="{x0 + LEFT}" x2="{x0 + width - 10}" y1="{y0 + PLOT_H}" '
               f'y2="{y0 + PLOT_H}" stroke="#333"/>')
    return out


def draw_bar(x, y0, b, scale):
    top = y0 + PLOT_H - scale["pos"](b["value"]) * PLOT_H
    out = [f'<rect x="{x:.1f}" y="{top:.1f}" width="{BAR}" height="{y0 + PLOT_H - top:.1f}" '
           f'fill="{b["color"]}" fill-opacity="{b["opacity"]}">'
           f'<title>{num(b["value"])}</title></rect>']
    if "lo" in b:
        lo = y0 + PLOT_H - scale["pos"](b["lo"]) * PLOT_H
        hi = y0 + PLOT_H - scale["pos"](b["hi"]) * PLOT_H
        cx = x + BAR / 2
        out.append(f'<path d="M{cx:.1f} {lo:.1f}V{hi:.1f}M{cx - 3:.1f} {hi:.1f}H{cx + 3:.1f}'
                   f'M{cx - 3:.1f} {lo:.1f}H{cx + 3:.1f}" stroke="#222" fill="none"/>')
        top = min(top, hi)
    cx = x + BAR / 2
    out.append(text(cx + 3, top - 3, num(b["value"]), size=9, anchor="start",
                    transform=f"rotate(-90 {cx + 3:.1f} {top - 3:.1f})"))
    return out


def linear_scale(values):
    top = nice_ceiling(max(values) * 1.15 or 1)
    ticks = [top * i / 5 for i in range(6)]
    return {"ticks": ticks, "pos": lambda v: min(max(v / top, 0), 1)}


def nice_ceiling(x):
    magnitude = 10 ** math.floor(math.log10(x))
    for step in (1, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10):
        if step * magnitude >= x:
            return step * magnitude
    return 10 * magnitude


def log_scale(values):
    positive = [v for v in values if v > 0] or [1]
    lo = math.floor(math.log10(min(positive)))
    hi = math.ceil(math.log10(max(positive) * 1.5))
    hi = max(hi, lo + 1)
    ticks = [10 ** e for e in range(lo, hi + 1)]

    def pos(v):
        return min(max((math.log10(max(v, 10 ** lo)) - lo) / (hi - lo), 0), 1)
    return {"ticks": ticks, "pos": pos}


def tick_label(v):
    return f"{v:g}"


def text(x, y, content, size=11, anchor="middle", weight="normal", transform=None):
    extra = f' transform="{transform}"' if transform else ""
    return (f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" {FONT} text-anchor="{anchor}" '
            f'font-weight="{weight}"{extra}>{escape(str(content))}</text>')
