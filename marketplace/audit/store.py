"""Writing the audit log: chained rows by COPY, and signed checkpoints of the chain heads."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import orjson
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from marketplace.audit.chain import GENESIS, Entry, entry_from_record, link, refs
from marketplace.audit.signing import Head, checkpoint_body, public_bytes, sign
from marketplace.db import Conn

COLUMNS = (
    "topic",
    "partition",
    "kafka_offset",
    "kafka_ts",
    "recorded_at",
    "ce_id",
    "ce_type",
    "ce_source",
    "ce_subject",
    "ce_time",
    "key",
    "headers",
    "value",
    "data",
    "refs",
    "prev_hash",
    "hash",
)


def _text(value: bytes | None) -> str | None:
    if value is None:
        return None
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _time(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        t = datetime.fromisoformat(text)
    except ValueError:
        return None
    return t if t.tzinfo else None


def _json(value: bytes | None) -> tuple[str | None, Any]:
    """The value as JSON text for the `data` column, when it is JSON PostgreSQL can store."""
    if not value or b"\\u0000" in value:
        return None, None
    try:
        parsed = orjson.loads(value)
    except orjson.JSONDecodeError:
        return None, None
    return value.decode("utf-8"), parsed


def row(
    entry: Entry,
    prev_hash: bytes,
    hash_: bytes,
    headers_json: list[list[str | None]] | None = None,
) -> tuple[Any, ...]:
    """The audit_log row of a chained entry (`headers_json`: the entry's, when computed)."""
    ce = {name: _text(value) for name, value in entry.headers if name.startswith("ce_")}
    text, parsed = _json(entry.value)
    subject = ce.get("ce_subject")
    return (
        entry.topic,
        entry.partition,
        entry.offset,
        entry.timestamp_ms,
        datetime.fromtimestamp(entry.timestamp_ms / 1000, UTC),
        ce.get("ce_id"),
        ce.get("ce_type"),
        ce.get("ce_source"),
        subject,
        _time(ce.get("ce_time")),
        entry.key,
        orjson.dumps(entry.headers_json() if headers_json is None else headers_json).decode(),
        entry.value,
        text,
        refs(parsed, (subject,)),
        prev_hash,
        hash_,
    )


async def chain_head(conn: Conn, topic: str, partition: int) -> tuple[int | None, bytes]:
    """The last offset and hash of a chain, or (None, GENESIS) for a new one."""
    found = await conn.fetchrow(
        "SELECT kafka_offset, hash FROM audit_log WHERE topic = $1 AND partition = $2"
        " ORDER BY kafka_offset DESC LIMIT 1",
        topic,
        partition,
    )
    if found is None:
        return None, GENESIS
    return int(found["kafka_offset"]), bytes(found["hash"])


def chained_rows(prev_hash: bytes, records: Sequence[Any]) -> tuple[list[tuple[Any, ...]], bytes]:
    """One partition's records (in offset order) as chained audit_log rows, and the new head."""
    rows: list[tuple[Any, ...]] = []
    for record in records:
        entry = entry_from_record(record)
        headers = entry.headers_json()  # once, for the hash and for the column
        hash_ = link(prev_hash, entry, headers)
        rows.append(row(entry, prev_hash, hash_, headers))
        prev_hash = hash_
    return rows, prev_hash


async def append(conn: Conn, prev_hash: bytes, records: Sequence[Any]) -> bytes:
    """Chains and writes one partition's records (in offset order); returns the new head hash."""
    rows, head = chained_rows(prev_hash, records)
    if rows:
        await conn.execute(
            "SELECT audit_ensure_partition(m) FROM unnest($1::timestamptz[]) AS m",
            sorted({r[4] for r in rows}),
        )
        await conn.copy_records_to_table("audit_log", records=rows, columns=COLUMNS)
    return head


async def current_heads(conn: Conn, group_id: str) -> list[Head]:
    """The head of every chain the auditor group writes."""
    rows = await conn.fetch(
        "SELECT c.topic, c.partition, a.kafka_offset, a.hash FROM consumer_offsets c"
        " CROSS JOIN LATERAL (SELECT kafka_offset, hash FROM audit_log l"
        "   WHERE l.topic = c.topic AND l.partition = c.partition"
        "   ORDER BY kafka_offset DESC LIMIT 1) a"
        " WHERE c.group_id = $1 ORDER BY c.topic, c.partition",
        group_id,
    )
    return [Head(r["topic"], r["partition"], r["kafka_offset"], bytes(r["hash"])) for r in rows]


async def write_checkpoint(
    conn: Conn, key: Ed25519PrivateKey, group_id: str, now: datetime
) -> tuple[int, list[Head]] | None:
    """Signs and stores the current heads; None when there is no chain yet."""
    async with conn.transaction(isolation="repeatable_read"):
        heads = await current_heads(conn, group_id)
        if not heads:
            return None
        body = checkpoint_body(now, heads)
        checkpoint_id = await conn.fetchval(
            "INSERT INTO audit_checkpoints (created_at, public_key, body, signature)"
            " VALUES ($1, $2, $3, $4) RETURNING checkpoint_id",
            now,
            public_bytes(key),
            body,
            sign(key, body),
        )
    return int(checkpoint_id), heads
