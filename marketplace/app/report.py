"""`marketplace report`: the period report an association hands to its funding authority, rebuilt
from the audit log alone (so anyone holding the log gets the same figures), as CSV, HTML or PDF.

The analytics facts are recomputed into temporary tables named like the live ones (PostgreSQL
reads a session's temporary tables first), by the same `record_facts` the analytics consumer uses
(a thousand events at a time, in the log's order), from every audited event up to the end of the
period; then the same KPI queries run on them."""

from __future__ import annotations

import csv
import html
import io
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

from consumers.analytics import TOPICS, record_facts
from marketplace.audit.chain import unb64
from marketplace.audit.progress import Progress
from marketplace.audit.verify import verify_database
from marketplace.db import Conn
from marketplace.events import Decoded, EventDecodeError, decode
from marketplace.kpis import HEADLINES, Slice, feedback_reasons, headline, kpis
from marketplace.pdf import Document

FACTS = (
    "analytics_partners",
    "analytics_listings",
    "analytics_matches",
    "analytics_jobs",
    "analytics_quotes",
    "analytics_awards",
    "analytics_deliveries",
    "analytics_feedback",
    "analytics_scheduled",
)
# Events of the audit log applied to the facts at a time (one statement per kind of fact).
REBUILD_BATCH = 1000
REPORT_SLICES: tuple[Slice, ...] = ("day", "region", "chapter", "sector")
LABELS = {
    "offers": "Offers posted",
    "requests": "Requests posted",
    "tonnes_offered": "Tonnes offered",
    "proposals": "Match proposals",
    "confirmed": "Matches confirmed",
    "acceptance_rate": "Acceptance rate",
    "tonnes_exchanged": "Tonnes exchanged (diverted from disposal)",
    "co2e_saved_kg": "CO2e saved, net of transport (kg)",
    "co2e_unknown": "Trades whose CO2e is unknown (no sourced factor; not in the CO2e figure)",
    "median_s_to_first_proposal": "Median time to first proposal (s)",
    "median_s_to_confirmation": "Median time to confirmation (s)",
    "jobs": "Transport jobs",
    "bids": "Bids on them",
    "awarded": "Jobs awarded",
    "failed": "Auctions failed",
    "deliveries": "Deliveries confirmed",
    "response_rate": "Feedback response rate",
    "feedback_answers": "Feedback answers",
    "mean_rating": "Mean rating (1-5)",
    "low_ratings": "Low ratings (1 or 2)",
}
# Partner feedback (#11) by region and by sector: of the answering partner, see marketplace/kpis.
FEEDBACK_SLICES: tuple[Slice, ...] = ("region", "sector")
FEEDBACK_COLUMNS = ("deliveries", "feedback_answers", "mean_rating", "low_ratings")


@dataclass
class PeriodReport:
    since: datetime
    until: datetime
    events: int = 0
    audit_intact: bool = True
    audit_findings: int = 0
    headline: dict[str, float | None] = field(default_factory=dict)
    slices: dict[str, dict[str, list[dict[str, Any]]]] = field(default_factory=dict)
    reasons: list[dict[str, Any]] = field(default_factory=list)


async def build(
    conn: Conn,
    since: datetime,
    until: datetime,
    *,
    partner_id: str | None = None,
    progress: bool = True,
) -> PeriodReport:
    report = PeriodReport(since, until)
    check = await verify_database(conn, since=since, until=until, group_id=None, progress=False)
    report.audit_intact, report.audit_findings = check.ok, len(check.findings)
    async with conn.transaction():
        for table in FACTS:
            await conn.execute(
                f"CREATE TEMP TABLE {table} (LIKE public.{table} INCLUDING ALL) ON COMMIT DROP"
            )
        total = await conn.fetchval(
            "SELECT count(*) FROM audit_log WHERE topic = ANY($1::text[]) AND ce_time < $2",
            TOPICS,
            until,
        )
        bar = Progress("report", total) if progress else None
        for topic in TOPICS:  # facts of one topic never wait for another's (see analytics)
            cursor = conn.cursor(
                "SELECT topic, value, headers FROM audit_log WHERE topic = $1 AND ce_time < $2"
                " ORDER BY partition, kafka_offset",
                topic,
                until,
                prefetch=1000,
            )
            batch: list[Decoded] = []
            async for row in cursor:
                report.events += 1
                if bar:
                    bar.advance()
                headers = [(n, _unb64(v)) for n, v in _json(row["headers"])]
                try:
                    batch.append(decode(row["topic"], row["value"], headers))
                except EventDecodeError:
                    continue  # dead-lettered by the consumers; not a fact
                if len(batch) >= REBUILD_BATCH:
                    await record_facts(conn, batch)
                    batch = []
            await record_facts(conn, batch)
        if bar:
            bar.close()
        report.headline = headline(await kpis(conn, since, until, "total", partner_id))
        for kind in REPORT_SLICES:
            report.slices[kind] = await kpis(conn, since, until, kind, partner_id)
        report.reasons = await feedback_reasons(conn, since, until, partner_id)
    return report


def _json(value: Any) -> Any:
    return orjson.loads(value) if isinstance(value, str) else value


def _unb64(text: str | None) -> bytes:
    return unb64(text) or b""


def fmt(key: str, value: float | None) -> str:
    if value is None:
        return "n/a"
    if key in ("acceptance_rate", "response_rate"):
        return f"{value:.0%}"
    if key == "mean_rating":
        return f"{value:.2f}"
    if key.startswith(("tonnes", "co2e")):
        return f"{value:,.1f}"
    if key.startswith("median_s"):
        return f"{value:,.0f}"
    return f"{value:,.0f}"


def _by_slice(report: PeriodReport, kind: str) -> list[dict[str, Any]]:
    """One row per slice value, the four KPI tables merged."""
    merged: dict[str, dict[str, Any]] = {}
    for rows in report.slices[kind].values():
        for row in rows:
            merged.setdefault(str(row["slice"]), {}).update(row)
    return [merged[k] for k in sorted(merged)]


COLUMNS = (
    "offers",
    "requests",
    "proposals",
    "confirmed",
    "tonnes_exchanged",
    "co2e_saved_kg",
    "jobs",
)


def to_csv(report: PeriodReport) -> bytes:
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(["section", "slice", "metric", "value"])
    for key in HEADLINES:
        value = report.headline.get(key)
        w.writerow(["headline", "all", key, "" if value is None else round(float(value), 6)])
    for kind in REPORT_SLICES:
        for row in _by_slice(report, kind):
            for key in COLUMNS + FEEDBACK_COLUMNS:
                if key in row and row[key] is not None:
                    w.writerow([kind, row["slice"], key, round(float(row[key]), 6)])
    for row in report.reasons:
        for key in ("answers", "mean_rating", "low_ratings"):
            w.writerow(["feedback_reason", row["reason"], key, round(float(row[key]), 6)])
    return out.getvalue().encode()


def _feedback_rows(report: PeriodReport, kind: str) -> list[dict[str, Any]]:
    """The slice's rows that have deliveries or feedback."""
    return [
        r
        for r in _by_slice(report, kind)
        if r.get("deliveries") is not None or r.get("feedback_answers") is not None
    ]


def _title(report: PeriodReport) -> str:
    return (
        f"Circular materials exchange: report for {report.since.date().isoformat()}"
        f" to {report.until.date().isoformat()}"
    )


def _provenance(report: PeriodReport) -> str:
    state = (
        "verified intact"
        if report.audit_intact
        else f"NOT intact ({report.audit_findings} problems: run `marketplace audit verify`)"
    )
    return (
        f"Rebuilt from {report.events:,} audited events; the audit log for the period is {state}. "
        f"Generated {datetime.now(UTC).replace(microsecond=0).isoformat()}."
    )


def _svg_bars(rows: list[tuple[str, float]], unit: str) -> str:
    top = max((v for _, v in rows), default=0.0) or 1.0
    parts = []
    for i, (label, value) in enumerate(rows):
        y = 6 + i * 22
        w = max(0.0, value) / top * 320
        parts.append(
            f'<text x="0" y="{y + 13}">{html.escape(label)}</text>'
            f'<rect x="140" y="{y}" width="{w:.1f}" height="16" fill="#2a7"/>'
            f'<text x="{146 + w:.1f}" y="{y + 13}">{value:,.1f} {html.escape(unit)}</text>'
        )
    height = 12 + len(rows) * 22
    return f'<svg width="620" height="{height}" font-size="12">{"".join(parts)}</svg>'


def to_html(report: PeriodReport) -> bytes:
    h = html.escape
    head = "".join(
        f"<tr><th>{h(LABELS[k])}</th><td>{fmt(k, report.headline.get(k))}</td></tr>"
        for k in HEADLINES
    )
    sections = []
    for kind in REPORT_SLICES:
        rows = _by_slice(report, kind)
        body = "".join(
            "<tr><td>"
            + h(str(r["slice"]))
            + "</td>"
            + "".join(f"<td>{fmt(c, r.get(c))}</td>" for c in COLUMNS)
            + "</tr>"
            for r in rows
        )
        chart = _svg_bars(
            [(str(r["slice"]), float(r.get("tonnes_exchanged") or 0)) for r in rows], "t"
        )
        sections.append(
            f"<h2>By {h(kind)}</h2><table><tr><th>{h(kind)}</th>"
            + "".join(f"<th>{h(LABELS[c])}</th>" for c in COLUMNS)
            + f"</tr>{body}</table><p>Tonnes exchanged by {h(kind)}:</p>{chart}"
        )
    feedback = []
    for kind in FEEDBACK_SLICES:
        body = "".join(
            "<tr><td>"
            + h(str(r["slice"]))
            + "</td>"
            + "".join(f"<td>{fmt(c, r.get(c))}</td>" for c in FEEDBACK_COLUMNS)
            + "</tr>"
            for r in _feedback_rows(report, kind)
        )
        feedback.append(
            f"<h3>By {h(kind)}</h3><table><tr><th>{h(kind)}</th>"
            + "".join(f"<th>{h(LABELS[c])}</th>" for c in FEEDBACK_COLUMNS)
            + f"</tr>{body}</table>"
        )
    reasons = "".join(
        f"<tr><td>{h(r['reason'])}</td><td>{fmt('answers', r['answers'])}</td>"
        f"<td>{fmt('mean_rating', r['mean_rating'])}</td>"
        f"<td>{fmt('low_ratings', r['low_ratings'])}</td></tr>"
        for r in report.reasons
    )
    sections.append(
        "<h2>Partner feedback</h2><p>After each delivery the seller, the buyer and the carrier"
        " rate it 1-5 and name the reason that mattered most. By region and sector of the"
        f" partner who answered.</p>{''.join(feedback)}<h3>By reason</h3><table><tr>"
        "<th>reason</th><th>Answers</th><th>Mean rating (1-5)</th><th>Low ratings (1 or 2)</th>"
        f"</tr>{reasons}</table>"
    )
    return (
        "<!doctype html><html lang=en><meta charset=utf-8>"
        f"<title>{h(_title(report))}</title>"
        "<style>body{font-family:sans-serif;max-width:60em;margin:2em auto}"
        "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;"
        "text-align:right}th:first-child,td:first-child{text-align:left}</style>"
        f"<h1>{h(_title(report))}</h1><p>{h(_provenance(report))}</p>"
        f"<h2>Key figures</h2><table>{head}</table>{''.join(sections)}</html>"
    ).encode()


def to_pdf(report: PeriodReport) -> bytes:
    # Dated by the period's end, so the same report gives the same file.
    doc = Document(created=report.until, title=_title(report))
    doc.paragraph(_title(report), 14, bold=True)
    doc.paragraph(_provenance(report), 8, grey=True)
    doc.gap()
    doc.line("Key figures", 12, bold=True)
    for key in HEADLINES:
        doc.row([LABELS[key], fmt(key, report.headline.get(key))], [320, 100])
    widths = [125, 50, 55, 55, 55, 55, 65, 35]
    for kind in REPORT_SLICES:
        rows = _by_slice(report, kind)
        doc.gap()
        doc.line(f"By {kind}", 12, bold=True)
        doc.header(
            [kind, "offers", "requests", "proposals", "confirmed", "tonnes", "CO2e kg", "jobs"],
            widths,
        )
        for r in rows:
            doc.row([str(r["slice"])] + [fmt(c, r.get(c)) for c in COLUMNS], widths, 8)
        doc.gap(4)
        doc.line(f"Tonnes exchanged by {kind}", 9, bold=True)
        doc.bars([(str(r["slice"]), float(r.get("tonnes_exchanged") or 0)) for r in rows], "t")
    doc.gap()
    doc.line("Partner feedback", 12, bold=True)
    doc.paragraph(
        "After each delivery the seller, the buyer and the carrier rate it 1-5 and name the"
        " reason that mattered most. By region and sector of the partner who answered.",
        8,
    )
    widths = [125, 80, 80, 80, 80]
    for kind in FEEDBACK_SLICES:
        doc.gap(4)
        doc.header([kind, "deliveries", "answers", "mean rating", "low ratings"], widths)
        for r in _feedback_rows(report, kind):
            doc.row([str(r["slice"])] + [fmt(c, r.get(c)) for c in FEEDBACK_COLUMNS], widths, 8)
    doc.gap(4)
    doc.header(["reason", "answers", "mean rating", "low ratings"], widths[:4])
    for r in report.reasons:
        doc.row(
            [str(r["reason"])] + [fmt(k, r[k]) for k in ("answers", "mean_rating", "low_ratings")],
            widths[:4],
            8,
        )
    return doc.render()


FORMATS = {"csv": to_csv, "html": to_html, "pdf": to_pdf}
