"""Writing a benchmark's JSON report and its HTML page (a table and an inline SVG figure)."""

from __future__ import annotations

import html
import json
import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPORTS = Path(__file__).resolve().parent / "reports"


def write_report(
    name: str,
    *,
    title: str,
    summary: str,
    data: dict[str, Any],
    headers: list[str],
    rows: list[list[str]],
    figure: str = "",
    extra: str = "",
    figure_first: bool = False,
) -> tuple[Path, Path]:
    """loadtests/reports/<name>-<timestamp>.json and .html; returns both paths."""
    REPORTS.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    json_path = REPORTS / f"{name}-{stamp}.json"
    html_path = REPORTS / f"{name}-{stamp}.html"
    json_path.write_text(
        json.dumps({"benchmark": title, "when": stamp, **data}, indent=2, default=str)
    )
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows
    )
    html_path.write_text(
        f"<!doctype html><meta charset=utf-8><title>{html.escape(title)}</title>"
        f"<h1>{html.escape(title)}</h1><p>{html.escape(summary)} ({stamp})</p>"
        + (figure + extra if figure_first else "")
        + f"<table border=1 cellpadding=4><tr>{head}</tr>{body}</table>"
        + ("" if figure_first else figure + extra)
    )
    return json_path, html_path


def bar_chart(bars: list[tuple[str, float]], unit: str) -> str:
    """Horizontal bars, one per (label, value), scaled to the largest."""
    width, row_h = 640, 28
    left = 12 + 7 * max((len(label) for label, _ in bars), default=10)
    top = max((v for _, v in bars), default=1.0) or 1.0
    parts = []
    for i, (label, value) in enumerate(bars):
        y = 10 + i * row_h
        w = value / top * max(width - left - 120, 100)
        parts.append(
            f'<text x="{left - 6}" y="{y + 16}" text-anchor="end">{html.escape(label)}</text>'
            f'<rect x="{left}" y="{y}" width="{w:.1f}" height="20" fill="#2a7"/>'
            f'<text x="{left + w + 6:.1f}" y="{y + 16}">{value:,.0f} {html.escape(unit)}</text>'
        )
    h = 20 + len(bars) * row_h
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{max(width, left + 220)}" height="{h}" '
        'font-size="12">' + "".join(parts) + "</svg>"
    )


COLOURS = ("#2a7", "#c33", "#36c", "#e90", "#939", "#0aa", "#777", "#a52", "#5a2", "#d6b")


def line_chart(
    series: dict[str, list[tuple[float, float]]],
    *,
    title: str,
    x_label: str,
    y_label: str,
    log_y: bool = False,
) -> str:
    """Lines over a shared x axis, one colour per series, with a legend; inline SVG."""
    w, h, left, right, top, bottom = 640, 260, 64, 170, 24, 36
    pts = [p for s in series.values() for p in s]
    if not pts:
        return ""
    x0, x1 = min(x for x, _ in pts), max(x for x, _ in pts)
    if log_y:
        y_min = min(y for _, y in pts if y > 0) if any(y > 0 for _, y in pts) else 1.0

        def fy(y: float) -> float:
            return math.log10(max(y, y_min))

        y0, y1 = fy(y_min), fy(max(y for _, y in pts))
    else:

        def fy(y: float) -> float:
            return y

        y0, y1 = 0.0, max(y for _, y in pts) * 1.05
    y1 = y1 if y1 > y0 else y0 + 1.0
    x1 = x1 if x1 > x0 else x0 + 1.0

    def sx(x: float) -> float:
        return left + (x - x0) / (x1 - x0) * (w - left - right)

    def sy(y: float) -> float:
        return h - bottom - (fy(y) - y0) / (y1 - y0) * (h - top - bottom)

    parts = [
        f'<text x="{left}" y="14" font-weight="bold">{html.escape(title)}</text>',
        f'<line x1="{left}" y1="{h - bottom}" x2="{w - right}" y2="{h - bottom}" stroke="#000"/>',
        f'<line x1="{left}" y1="{top}" x2="{left}" y2="{h - bottom}" stroke="#000"/>',
        f'<text x="{(left + w - right) / 2}" y="{h - 6}" text-anchor="middle">'
        f"{html.escape(x_label)}</text>",
        f'<text x="12" y="{(top + h - bottom) / 2}" transform="rotate(-90 12 '
        f'{(top + h - bottom) / 2})" text-anchor="middle">{html.escape(y_label)}</text>',
    ]
    for i in range(5):
        fx = x0 + (x1 - x0) * i / 4
        parts.append(
            f'<text x="{sx(fx):.1f}" y="{h - bottom + 14}" text-anchor="middle">{fx:,.3g}</text>'
        )
        v = y0 + (y1 - y0) * i / 4
        label = 10**v if log_y else v
        yy = h - bottom - (v - y0) / (y1 - y0) * (h - top - bottom)
        parts.append(
            f'<text x="{left - 4}" y="{yy + 4:.1f}" text-anchor="end">{label:,.3g}</text>'
            f'<line x1="{left}" y1="{yy:.1f}" x2="{w - right}" y2="{yy:.1f}" stroke="#ddd"/>'
        )
    for k, (name, points) in enumerate(series.items()):
        colour = COLOURS[k % len(COLOURS)]
        line = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in sorted(points))
        parts.append(
            f'<polyline points="{line}" fill="none" stroke="{colour}" stroke-width="1.5"/>'
            f'<rect x="{w - right + 8}" y="{top + k * 16}" width="10" height="10" '
            f'fill="{colour}"/><text x="{w - right + 22}" y="{top + k * 16 + 9}">'
            f"{html.escape(name[:24])}</text>"
        )
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-size="11">'
        + "".join(parts)
        + "</svg>"
    )


def table(headers: list[str], rows: list[list[str]], caption: str = "") -> str:
    """An HTML table (escaped), with an optional caption above it."""
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows
    )
    cap = f"<h2>{html.escape(caption)}</h2>" if caption else ""
    return f"{cap}<table border=1 cellpadding=4><tr>{head}</tr>{body}</table>"


def statements_table(stats: dict[str, Any]) -> str:
    """The top statements of `loadtests.pgstats.top` as an HTML table, or why there are none."""
    if not stats.get("loaded"):
        return f"<h2>Top statements</h2><p>{html.escape(str(stats.get('note', '')))}</p>"
    rows = [
        [
            str(s["databases"]),
            str(s["calls"]),
            f"{s['total_ms']:,}",
            f"{s['mean_ms']:,}",
            str(s["rows"]),
            str(s["query"]),
        ]
        for s in stats.get("statements", [])
    ]
    headers = ["databases", "calls", "total ms", "mean ms", "rows", "statement"]
    return table(headers, rows, "Top statements (pg_stat_statements, by total execution time)")


def commit() -> str:
    """The checked-out commit, for the report (\"unknown\" outside a git work tree)."""
    import subprocess

    done = subprocess.run(
        ["git", "-C", str(REPORTS.parent), "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        check=False,
        timeout=10,
    )
    return done.stdout.strip() or "unknown"


def machine() -> dict[str, float]:
    """Load averages and cores now: the machine is shared, so every report says how busy it was."""
    import os

    one, five, fifteen = os.getloadavg()
    return {
        "cores": float(os.cpu_count() or 0),
        "load_1m": one,
        "load_5m": five,
        "load_15m": fifteen,
    }
