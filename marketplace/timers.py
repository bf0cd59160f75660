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
