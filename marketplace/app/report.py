"""`marketplace report`: the period report an association hands to its funding authority, rebuilt
from the audit log alone (so anyone holding the log gets the same figures), as CSV, HTML or PDF.

The analytics facts are recomputed into temporary tables named like the live ones (PostgreSQL
reads a session's temporary tables first), by the same `record_facts` the analytics consumer uses
(a thousand events at a time, in the log's order), from every audited event up to the end of the
period; then the same KPI queries run on them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson

from consumers.analytics import TOPICS, record_facts
from marketplace.audit.chain import unb64
from marketplace.audit.progress import Progress
from marketplace.audit.verify import verify_database
from marketplace.db import Conn
from marketplace.events import Decoded, EventDecodeError, decode
from marketplace.kpis import (
    FEEDBACK_COLUMNS,
    FEEDBACK_SLICES,
    FORMATS,
    LABELS,
    REPORT_SLICES,
    PeriodReport,
    fill_report,
    fmt,
    to_csv,
    to_html,
    to_pdf,
)

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
    "analytics_delivered",
)
# Events of the audit log applied to the facts at a time (one statement per kind of fact).
REBUILD_BATCH = 1000
# The report's parts live with the KPI queries (marketplace/kpis.py), so that the pages can
# render the same report from the live figures; named here for this module's callers.
__all__ = [
    "FACTS",
    "FEEDBACK_COLUMNS",
    "FEEDBACK_SLICES",
    "FORMATS",
    "LABELS",
    "REPORT_SLICES",
    "PeriodReport",
    "build",
    "fmt",
    "to_csv",
    "to_html",
    "to_pdf",
]


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
        await fill_report(conn, report, partner_id)
    return report


def _json(value: Any) -> Any:
    return orjson.loads(value) if isinstance(value, str) else value


def _unb64(text: str | None) -> bytes:
    return unb64(text) or b""
