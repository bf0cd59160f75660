"""`marketplace audit verify`: recompute every chain (or a time range) in the database, check
every checkpoint's signature and that the heads it signed are still there, unchanged."""

from __future__ import annotations

from collections.abc import AsyncIterator, Collection
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson

from marketplace.audit.chain import ChainCheck, Entry, Finding, unb64
from marketplace.audit.progress import Progress
from marketplace.audit.progress import bar_of as _bar
from marketplace.audit.signing import fingerprint, heads_of, signature_valid
from marketplace.db import Conn

ROW_COLUMNS = "topic, partition, kafka_offset, kafka_ts, key, headers, value, prev_hash, hash"


@dataclass(slots=True)
class Report:
    chains: int = 0
    records: int = 0
    checkpoints: int = 0
    findings: list[Finding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.findings


def entry_of(row: Any) -> Entry:
    """A stored row as the chain's Entry (headers are kept as [name, base64] pairs)."""
    headers = row["headers"]
    if isinstance(headers, str):
        headers = orjson.loads(headers)
    key, value = row["key"], row["value"]
    return Entry(
        row["topic"],
        row["partition"],
        row["kafka_offset"],
        row["kafka_ts"],
        None if key is None else bytes(key),
        tuple((name, unb64(v)) for name, v in headers),
        None if value is None else bytes(value),
    )


@dataclass(frozen=True, slots=True)
class Span:
    topic: str
    partition: int
    first: int
    last: int


async def spans(conn: Conn, since: datetime | None, until: datetime | None) -> list[Span]:
    """Per chain, the offsets from the first record at or after `since` to the last at or before
    `until`. Kafka timestamps need not grow with offsets, so a range is a contiguous run of
    offsets between those two records, never a filter that could skip one in the middle."""
    rows = await conn.fetch(
        "SELECT topic, partition, min(kafka_offset) AS first, max(kafka_offset) AS last"
        " FROM audit_log WHERE ($1::timestamptz IS NULL OR recorded_at >= $1)"
        " AND ($2::timestamptz IS NULL OR recorded_at <= $2)"
        " GROUP BY topic, partition ORDER BY topic, partition",
        since,
        until,
    )
    return [Span(r["topic"], r["partition"], r["first"], r["last"]) for r in rows]


async def rows_of(conn: Conn, span: Span) -> AsyncIterator[Any]:
    """The span's rows in offset order, streamed (call inside a transaction)."""
    cursor = conn.cursor(
        f"SELECT {ROW_COLUMNS} FROM audit_log WHERE topic = $1 AND partition = $2"  # noqa: S608
        " AND kafka_offset BETWEEN $3 AND $4 ORDER BY kafka_offset",
        span.topic,
        span.partition,
        span.first,
        span.last,
        prefetch=2000,
    )
    async for row in cursor:
        yield row


async def verify_database(
    conn: Conn,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    trusted_keys: Collection[bytes] = (),
    group_id: str | None = "auditor",
    progress: bool | Progress = True,
) -> Report:
    report = Report()
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        chain_spans = await spans(conn, since, until)
        total = sum(s.last - s.first + 1 for s in chain_spans)
        bar = _bar(progress, "verify", total)
        whole = since is None and until is None
        for span in chain_spans:
            report.chains += 1
            # A chain checked from its very first record starts at the genesis hash; a range
            # that starts mid-chain is anchored on its first record's prev_hash.
            check = ChainCheck(span.topic, span.partition, anchored=not whole)
            async for r in rows_of(conn, span):
                finding = check.feed(entry_of(r), bytes(r["prev_hash"]), bytes(r["hash"]))
                if finding is not None:
                    report.findings.append(finding)
                if bar:
                    bar.advance()
            report.records += check.count
        if bar:
            bar.close()
        await _check_checkpoints(conn, report, since, until, trusted_keys)
        if group_id and whole:
            await _check_positions(conn, report, group_id)
    return report


async def _check_checkpoints(
    conn: Conn,
    report: Report,
    since: datetime | None,
    until: datetime | None,
    trusted_keys: Collection[bytes],
) -> None:
    checkpoints = await conn.fetch(
        "SELECT checkpoint_id, created_at, public_key, body, signature FROM audit_checkpoints"
        " WHERE ($1::timestamptz IS NULL OR created_at >= $1)"
        " AND ($2::timestamptz IS NULL OR created_at <= $2) ORDER BY checkpoint_id",
        since,
        until,
    )
    for cp in checkpoints:
        report.checkpoints += 1
        label = f"checkpoint #{cp['checkpoint_id']} ({cp['created_at'].isoformat()})"
        key, body = bytes(cp["public_key"]), bytes(cp["body"])
        if trusted_keys and key not in trusted_keys:
            report.findings.append(
                Finding(
                    "audit_checkpoints",
                    0,
                    cp["checkpoint_id"],
                    f"{label} is signed by key {fingerprint(key)}, which is not trusted",
                )
            )
            continue
        if not signature_valid(key, body, bytes(cp["signature"])):
            report.findings.append(
                Finding(
                    "audit_checkpoints",
                    0,
                    cp["checkpoint_id"],
                    f"{label}: the signature does not match its contents",
                )
            )
            continue
        for head in heads_of(body):
            stored = await conn.fetchval(
                "SELECT hash FROM audit_log WHERE topic = $1 AND partition = $2"
                " AND kafka_offset = $3",
                head.topic,
                head.partition,
                head.offset,
            )
            if stored is None:
                report.findings.append(
                    Finding(
                        head.topic,
                        head.partition,
                        head.offset,
                        f"missing: {label} signed this record as the chain's head, "
                        "so it and any records after it were removed",
                    )
                )
            elif bytes(stored) != head.hash:
                report.findings.append(
                    Finding(
                        head.topic,
                        head.partition,
                        head.offset,
                        f"altered: the stored hash differs from the one {label} signed",
                    )
                )


async def _check_positions(conn: Conn, report: Report, group_id: str) -> None:
    """The auditor's own position says how far each chain must reach."""
    rows = await conn.fetch(
        "SELECT c.topic, c.partition, c.next_offset,"
        " (SELECT max(kafka_offset) FROM audit_log l"
        "   WHERE l.topic = c.topic AND l.partition = c.partition) AS last"
        " FROM consumer_offsets c WHERE c.group_id = $1",
        group_id,
    )
    for r in rows:
        if r["last"] is not None and r["last"] < r["next_offset"] - 1:
            report.findings.append(
                Finding(
                    r["topic"],
                    r["partition"],
                    r["last"] + 1,
                    f"missing: the auditor applied records up to offset "
                    f"{r['next_offset'] - 1}, the log ends at {r['last']}",
                )
            )
