"""The scheduler fires a due timer once; after a crash between publishing and recording it, the
retry publishes the very same event (same CloudEvent id), so consumers see no new effect."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from marketplace.cloudevents import Envelope
from marketplace.events import to_message
from marketplace.kafka import make_producer
from marketplace.settings import Settings
from marketplace.timers import schedule
from producers.scheduler import fire_due
from schemas.listings import MatchDeadlineDue
from tests.integration.kafka_helpers import end_offsets, read_since

pytestmark = pytest.mark.integration


async def test_due_timers_fire_once_and_refire_identically(
    settings: Settings, pool: asyncpg.Pool
) -> None:
    now = datetime.now(UTC)
    match_id = str(uuid.uuid4())
    due = MatchDeadlineDue(match_id=match_id, material_code="150102", due=now)
    timer_id = str(uuid.uuid4())
    message = to_message(due, event_id=timer_id, source="/tests", time=now, subject=match_id)
    later = to_message(due, event_id=str(uuid.uuid4()), source="/tests", time=now)
    async with pool.acquire() as conn:
        await schedule(conn, timer_id, message, now - timedelta(seconds=1))
        await schedule(conn, timer_id, later, now)  # asking again changes nothing
        await schedule(conn, str(uuid.uuid4()), later, now + timedelta(hours=1))  # not due
    since = await end_offsets(settings, "market.listings")
    producer = make_producer(settings)
    await producer.start()
    try:
        assert await fire_due(pool, producer) >= 1
        assert await fire_due(pool, producer) == 0
        # A crash after publishing, before recording: the timer is due again.
        await pool.execute("UPDATE timers SET fired_at = NULL WHERE timer_id = $1", timer_id)
        assert await fire_due(pool, producer) == 1
    finally:
        await producer.stop()
    mine = [
        r
        for r in await read_since(settings, "market.listings", since)
        if Envelope.from_headers(r.headers).subject == match_id
    ]
    assert len(mine) == 2
    assert {Envelope.from_headers(r.headers).id for r in mine} == {timer_id}
    assert mine[0].value == mine[1].value
    assert await pool.fetchval(
        "SELECT fired_at IS NULL FROM timers WHERE due_at > now() ORDER BY due_at DESC LIMIT 1"
    )
