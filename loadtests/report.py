"""Writing a benchmark's JSON report and its HTML page (a table and an inline SVG figure)."""

from __future__ import annotations

import html
import json
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
) -> tuple[Path, Path]:
    """loadtests/reports/<name>-<timestamp>.json and .html; returns both paths."""
    REPORTS.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    json_path = REPORTS / f"{name}-{stamp}.json"
    html_path = REPORTS / f"{name}-{stamp}.html"
    json_path.write_text(json.dumps({"benchmark": title, "when": stamp, **data}, indent=2))
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows
    )
    html_path.write_text(
        f"<!doctype html><meta charset=utf-8><title>{html.escape(title)}</title>"
        f"<h1>{html.escape(title)}</h1><p>{html.escape(summary)} ({stamp})</p>"
        f"<table border=1 cellpadding=4><tr>{head}</tr>{body}</table>{figure}"
    )
    return json_path, html_path


def bar_chart(bars: list[tuple[str, float]], unit: str) -> str:
    """Horizontal bars, one per (label, value), scaled to the largest."""
    width, left, row_h = 560, 90, 28
    top = max((v for _, v in bars), default=1.0) or 1.0
    parts = []
    for i, (label, value) in enumerate(bars):
        y = 10 + i * row_h
        w = value / top * (width - left - 120)
        parts.append(
            f'<text x="{left - 6}" y="{y + 16}" text-anchor="end">{html.escape(label)}</text>'
            f'<rect x="{left}" y="{y}" width="{w:.1f}" height="20" fill="#2a7"/>'
            f'<text x="{left + w + 6:.1f}" y="{y + 16}">{value:,.0f} {html.escape(unit)}</text>'
        )
    h = 20 + len(bars) * row_h
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{h}" font-size="12">'
        + "".join(parts)
        + "</svg>"
    )
