"""A producer whose background sender has ended is noticed and replaced, and what it held is
sent by the new one.

aiokafka ends a producer's sender task on an error it does not expect, and the sends queued on
it then wait for ever. On uvloop a write to a connection the broker has just closed raises
RuntimeError (aio-libs/aiokafka#1038); the same error ended a consumer's coordination in the
fault suite. Here the real client's `send` raises it for a produce request, on the real broker."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest
from aiokafka.client import AIOKafkaClient

from marketplace import dlq, kafka
from marketplace.cloudevents import Envelope
from marketplace.db import connect
from marketplace.dlq import DeadLetter
from marketplace.events import to_message
from marketplace.kafka import SenderStopped, delivered, make_producer, sender_stopped
from marketplace.partners import register_partner
from marketplace.runtime.outbox import OutboxMessage, OutboxPublisher
from marketplace.settings import Settings
from marketplace.timers import schedule
from producers.scheduler import run_scheduler
from schemas.listings import MatchDeadlineDue
from tests.integration.kafka_helpers import (
    end_offsets,
    make_topics,
    read_all,
    read_since,
    unique,
    until,
)

pytestmark = pytest.mark.integration

CLOSED = "unable to perform operation on <TCPTransport closed=True>; the handler is closed"


@pytest.fixture
def broken_once(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """The next produce request any client sends raises uvloop's RuntimeError; the list holds
    True until it has."""
    real_send = AIOKafkaClient.send
    armed = [True]

    async def send(self: AIOKafkaClient, node_id: int, request: Any, **kwargs: Any) -> Any:
        if armed[0] and type(request).__name__.startswith("ProduceRequest"):
            armed[0] = False
            raise RuntimeError(CLOSED)
        return await real_send(self, node_id, request, **kwargs)

    monkeypatch.setattr(AIOKafkaClient, "send", send)
    return armed


async def test_a_send_on_a_producer_whose_sender_ended_raises_instead_of_waiting(
    settings: Settings, broken_once: list[bool]
) -> None:
    topic = unique("sender")
    await make_topics(settings, topic, partitions=1)
    producer = make_producer(settings)
    await producer.start()
    try:
        assert not sender_stopped(producer)
        with pytest.raises(SenderStopped):
            await delivered(producer, producer.send_and_wait(topic, b"lost", key=b"k"))
        assert broken_once == [False]
        assert sender_stopped(producer)
        # A send made afterwards would wait for ever: it is given up too.
        with pytest.raises(SenderStopped):
            await delivered(producer, producer.send_and_wait(topic, b"later", key=b"k"))
    finally:
        await asyncio.wait_for(producer.stop(), 15)


async def test_a_one_shot_publisher_gives_up_when_its_sender_ends(
    settings: Settings, broken_once: list[bool]
) -> None:
    """The one-shot publishers (partner registration here; also an erasure's withdrawals,
    `marketplace dlq replay` and the API's writes) send through `kafka.publish`: on a producer
    whose sender has ended they raise `SenderStopped`, the error the API and the outbox replace
    a producer on, and a send still waiting is given up within a second (`delivered`). A plain
    `send_and_wait` raised aiokafka's generic "Unexpected error during batch delivery" here."""
    topic = unique("sender-once")
    await make_topics(settings, topic, partitions=1)
    producer = make_producer(settings)
    await producer.start()
    conn = await connect(settings)
    try:
        with pytest.raises(SenderStopped):  # the request that ends the sender
            await kafka.publish(producer, topic, b"lost", key=b"k")
        assert broken_once == [False]
        assert sender_stopped(producer)
        with pytest.raises(SenderStopped):
            await asyncio.wait_for(
                register_partner(
                    conn,
                    producer,
                    name="Never Registered AB",
                    role="sme",
                    country="SE",
                    region=None,
                    sector=None,
                    registered_by="tests",
                    source="/tests",
                    ring=None,
                ),
                30,
            )
    finally:
        await conn.close()
        await asyncio.wait_for(producer.stop(), 15)
    assert await end_offsets(settings, topic) == {0: 0}  # nothing was written
    # A replay, with a producer of its own, sends its record as it was.
    letter = DeadLetter(
        partition=0,
        offset=0,
        timestamp_ms=0,
        group="g",
        reason="test",
        source_topic=topic,
        source_partition=0,
        source_offset=0,
        key=b"k",
        headers=(("ce_id", b"1"),),
        value=b"again",
    )
    assert await asyncio.wait_for(dlq.replay(settings, letter), 60) == (topic, 0, 0)
    (record,) = await read_all(settings, topic)
    assert (record.key, record.value, record.headers) == (b"k", b"again", (("ce_id", b"1"),))


async def test_the_outbox_replaces_the_producer_and_the_next_attempt_sends(
    settings: Settings, pool: asyncpg.Pool, broken_once: list[bool]
) -> None:
    topic = unique("sender-outbox")
    await make_topics(settings, topic, partitions=2)
    first = make_producer(settings)
    await first.start()
    publisher = OutboxPublisher(
        pool, first, unique("sender-group"), renew=lambda: make_producer(settings)
    )
    messages = [
        OutboxMessage(topic=topic, key=f"k{n}".encode(), value=f"v{n}".encode(), headers=())
        for n in range(20)
    ]
    try:
        with pytest.raises(SenderStopped):
            await publisher.publish([1, 2], messages)
        assert broken_once == [False]
        # Not acknowledged: the rows would stay in the outbox for the sweeper.
        assert publisher.acknowledged == []
        assert publisher.renewed == 1
        assert publisher.producer is not first
        await publisher.publish([1, 2], messages)
        assert publisher.acknowledged == [1, 2]
    finally:
        await asyncio.wait_for(publisher.producer.stop(), 15)
    records = await read_all(settings, topic)
    assert sorted(r.value for r in records) == sorted(m.value for m in messages)


async def test_the_scheduler_replaces_its_producer_and_fires_the_timer(
    settings: Settings, pool: asyncpg.Pool, broken_once: list[bool]
) -> None:
    now = datetime.now(UTC)
    match_id = str(uuid.uuid4())
    timer_id = str(uuid.uuid4())
    due = MatchDeadlineDue(match_id=match_id, material_code="150102", due=now)
    message = to_message(due, event_id=timer_id, source="/tests", time=now, subject=match_id)
    since = await end_offsets(settings, "market.listings")
    stop = asyncio.Event()
    task = asyncio.create_task(run_scheduler(settings, stop))
    try:
        async with pool.acquire() as conn:
            await schedule(conn, timer_id, message, now - timedelta(seconds=1))

        async def fired() -> bool:
            query = "SELECT fired_at IS NOT NULL FROM timers WHERE timer_id = $1"
            return bool(await pool.fetchval(query, timer_id))

        await until(fired, task, lambda: "the timer did not fire")
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
    assert broken_once == [False]
    mine = [
        r
        for r in await read_since(settings, "market.listings", since)
        if Envelope.from_headers(r.headers).subject == match_id
    ]
    assert [Envelope.from_headers(r.headers).id for r in mine] == [timer_id]
