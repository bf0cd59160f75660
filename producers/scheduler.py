"""The timer scheduler: publishes each due timer's event, at least once and always the same.

A timer's event (and its CloudEvent id) is fixed when the timer is asked for, so if the
scheduler dies between publishing and marking the timer fired, the retry publishes the very
same event and consumers deduplicate it. Instances share the work with SKIP LOCKED."""

from __future__ import annotations

import asyncio
import contextlib

import asyncpg
import orjson
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from marketplace.db import UNREACHABLE, create_pool
from marketplace.kafka import BROKEN_PRODUCER, delivered, make_producer
from marketplace.logs import get_logger
from marketplace.settings import Settings

log = get_logger(__name__)


async def fire_due(pool: asyncpg.Pool, producer: AIOKafkaProducer, limit: int = 500) -> int:
    """Publishes the timers due now; returns how many fired."""
    async with pool.acquire() as conn, conn.transaction():
        rows = await conn.fetch(
            "SELECT timer_id, topic, key, value, headers FROM timers"
            " WHERE fired_at IS NULL AND due_at <= now()"
            " ORDER BY due_at, timer_id LIMIT $1 FOR UPDATE SKIP LOCKED",
            limit,
        )
        if not rows:
            return 0

        async def send() -> None:
            futures = []
            for r in rows:
                headers = [(k, v.encode()) for k, v in orjson.loads(r["headers"])]
                futures.append(
                    await producer.send(r["topic"], r["value"], key=r["key"], headers=headers)
                )
            await asyncio.gather(*futures)

        await delivered(producer, send())
        await conn.execute(
            "UPDATE timers SET fired_at = now() WHERE timer_id = ANY($1::text[])",
            [r["timer_id"] for r in rows],
        )
    return len(rows)


async def _started_producer(settings: Settings, stop: asyncio.Event) -> AIOKafkaProducer:
    """A new producer, started once a broker answers (tried every second until `stop`)."""
    while True:
        producer = make_producer(settings, client_id="marketplace-scheduler")
        try:
            await producer.start()
        except KafkaError as exc:
            await producer.stop()
            if stop.is_set():
                raise
            log.warning("scheduler_producer_start_failed", error=repr(exc))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=1.0)
            continue
        return producer


async def run_scheduler(settings: Settings, stop: asyncio.Event) -> None:
    pool = await create_pool(settings)
    producer = make_producer(settings, client_id="marketplace-scheduler")
    await producer.start()
    log.info("scheduler_started", interval_s=settings.scheduler_interval_s)
    try:
        while not stop.is_set():
            try:
                fired = await fire_due(pool, producer)
            except (KafkaError, asyncpg.PostgresError, *UNREACHABLE) as exc:
                # Also a connection PostgreSQL dropped mid-transaction (InterfaceError, found by
                # the fault suite's restart): the timers stay due and the next round fires them.
                log.exception("timers_failed")
                fired = 0
                if isinstance(exc, BROKEN_PRODUCER):
                    # It will never send again: the next round goes through a new one.
                    with contextlib.suppress(KafkaError, TimeoutError):
                        await asyncio.wait_for(producer.stop(), 10)
                    producer = await _started_producer(settings, stop)
                    log.warning("scheduler_producer_renewed")
            if fired:
                log.info("timers_fired", count=fired)
                continue  # there may be more due
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=settings.scheduler_interval_s)
    finally:
        await producer.stop()
        await pool.close()
        log.info("scheduler_stopped")
