"""Timers: a decision asks for an event to be published at a time (decision 3: timers arrive as
events). Rows are written in the asking consumer's transaction; producers/scheduler fires them."""

from __future__ import annotations

from datetime import datetime

from marketplace.db import Conn
from marketplace.runtime.outbox import OutboxMessage


async def schedule(conn: Conn, timer_id: str, message: OutboxMessage, due_at: datetime) -> None:
    """Asks for `message` to be published at `due_at`; asking twice for one id changes nothing."""
    await conn.execute(
        "INSERT INTO timers (timer_id, topic, key, value, headers, due_at)"
        " VALUES ($1, $2, $3, $4, $5::jsonb, $6) ON CONFLICT (timer_id) DO NOTHING",
        timer_id,
        message.topic,
        message.key,
        message.value,
        message.headers_json(),
        due_at,
    )


async def schedule_many(conn: Conn, timers: list[tuple[str, OutboxMessage, datetime]]) -> None:
    """`schedule` for several timers in one statement."""
    if not timers:
        return
    await conn.execute(
        "INSERT INTO timers (timer_id, topic, key, value, headers, due_at)"
        " SELECT u.id, u.topic, u.key, u.value, u.headers::jsonb, u.due FROM unnest($1::text[],"
        " $2::text[], $3::bytea[], $4::bytea[], $5::text[], $6::timestamptz[])"
        " AS u(id, topic, key, value, headers, due) ON CONFLICT (timer_id) DO NOTHING",
        [t[0] for t in timers],
        [t[1].topic for t in timers],
        [t[1].key for t in timers],
        [t[1].value for t in timers],
        [t[1].headers_json() for t in timers],
        [t[2] for t in timers],
    )
