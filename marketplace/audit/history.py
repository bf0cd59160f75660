"""`marketplace audit history ID`: the ordered story of one listing, match, job or partner, with
who acted and on whose behalf (a facilitator writing an SME's listing, #11)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

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

    @property
    def actor(self) -> str | None:
        return attribution(self.data)[0]

    @property
    def on_behalf_of(self) -> str | None:
        return attribution(self.data)[1]


def attribution(data: Any) -> tuple[str | None, str | None]:
    """(who acted, the partner it acted for when that is someone else) from an event's payload:
    `actor_id` acts; the partner it acts for is the `owner_id` (listings) or else the
    `partner_id` (answers, consents, nudges). Events no partner wrote (the matcher's) give
    (None, None)."""
    if isinstance(data, str | bytes):
        try:
            data = orjson.loads(data)
        except orjson.JSONDecodeError:
            return None, None
    if not isinstance(data, dict):
        return None, None
    actor = data.get("actor_id")
    if not isinstance(actor, str):
        return None, None
    subject = data.get("owner_id") or data.get("partner_id")
    if isinstance(subject, str) and subject != actor:
        return actor, subject
    return actor, None


async def partners_named(conn: Conn, ids: Iterable[str]) -> dict[str, tuple[str, str]]:
    """{partner id: (role, name)} from the registrations in the audit log itself, so that the
    history needs nothing but the log."""
    wanted = sorted({i for i in ids if i})
    if not wanted:
        return {}
    rows = await conn.fetch(
        "SELECT data->>'partner_id' AS id, data->>'role' AS role, data->>'name' AS name"
        " FROM audit_log WHERE refs && $1::text[] AND ce_type = 'partners.partner.registered.v1'",
        wanted,
    )
    return {r["id"]: (r["role"], r["name"]) for r in rows if r["id"] in wanted}


async def history(
    conn: Conn, item_id: str, limit: int = 10000, *, on_behalf_only: bool = False
) -> list[Step]:
    """Every audited event that mentions `item_id`, in the order the log recorded them; with
    `on_behalf_only`, only those where a partner acted for another one."""
    rows = await conn.fetch(
        "SELECT recorded_at, topic, partition, kafka_offset, ce_type, ce_source, ce_subject, data"
        " FROM audit_log WHERE refs @> ARRAY[$1::text]"
        " ORDER BY recorded_at, topic, partition, kafka_offset LIMIT $2",
        item_id,
        limit,
    )
    steps = [
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
    return [s for s in steps if s.on_behalf_of is not None] if on_behalf_only else steps
