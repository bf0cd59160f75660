"""`marketplace audit history ID`: the ordered story of one listing, match, job or partner."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from marketplace.db import Conn


@dataclass(frozen=True, slots=True)
class Step:
    recorded_at: datetime
    topic: str
    partition: int
    offset: int
    type: str | None
    source: str | None
    subject: str | None
    data: Any


async def history(conn: Conn, item_id: str, limit: int = 10000) -> list[Step]:
    """Every audited event that mentions `item_id`, in the order the log recorded them."""
    rows = await conn.fetch(
        "SELECT recorded_at, topic, partition, kafka_offset, ce_type, ce_source, ce_subject, data"
        " FROM audit_log WHERE refs @> ARRAY[$1::text]"
        " ORDER BY recorded_at, topic, partition, kafka_offset LIMIT $2",
        item_id,
        limit,
    )
    return [
        Step(
            r["recorded_at"],
            r["topic"],
            r["partition"],
            r["kafka_offset"],
            r["ce_type"],
            r["ce_source"],
            r["ce_subject"],
            r["data"],
        )
        for r in rows
    ]
