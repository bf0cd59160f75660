"""Producing and reading test topics on the real broker."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import orjson
from aiokafka import TopicPartition

from marketplace.cloudevents import Envelope
from marketplace.kafka import ensure_topics, make_admin, make_consumer, make_producer
from marketplace.runtime.consumer import start_group_at
from marketplace.settings import Settings
from schemas.topics import TopicSpec


@dataclass(frozen=True, slots=True)
class Sent:
    id: str
    key: bytes
    n: int
    partition: int


def unique(prefix: str) -> str:
    return f"test.{prefix}.{uuid.uuid4().hex[:12]}"


async def make_topics(settings: Settings, *names: str, partitions: int = 3) -> None:
    specs = [TopicSpec(n, key="test", purpose="test") for n in names]
    states = await ensure_topics(settings, specs, partitions=partitions, replication=1)
    assert all(s.created and s.partitions == partitions for s in states)


async def produce_numbers(settings: Settings, topic: str, count: int, keys: int = 41) -> list[Sent]:
    producer = make_producer(settings)
    await producer.start()
    try:
        futures = []
        meta: list[tuple[str, bytes, int]] = []
        now = datetime.now(UTC)
        for n in range(count):
            event_id = str(uuid.uuid4())
            key = f"key-{n % keys}".encode()
            env = Envelope(id=event_id, type="test.number.v1", source="tests", time=now)
            futures.append(
                await producer.send(
                    topic, orjson.dumps({"n": n}), key=key, headers=list(env.headers())
                )
            )
            meta.append((event_id, key, n))
        results = await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return [Sent(i, k, n, r.partition) for (i, k, n), r in zip(meta, results, strict=True)]


async def partition_count(settings: Settings, topic: str) -> int:
    admin = make_admin(settings)
    await admin.start()
    try:
        (described,) = await admin.describe_topics([topic])
    finally:
        await admin.close()
    return len(described["partitions"])


async def read_all(settings: Settings, topic: str) -> list[Any]:
    """Every record currently in the topic, from the beginning to the end offsets."""
    partitions = await partition_count(settings, topic)
    consumer = make_consumer(settings, group_id=None)
    await consumer.start()
    try:
        parts = [TopicPartition(topic, p) for p in range(partitions)]
        consumer.assign(parts)
        await consumer.seek_to_beginning(*parts)
        end = await consumer.end_offsets(parts)
        records: list[Any] = []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 60
        while True:
            positions = {tp: await consumer.position(tp) for tp in parts}
            if all(positions[tp] >= end[tp] for tp in parts):
                break
            if loop.time() > deadline:
                raise TimeoutError(f"could not read {topic} to its end")
            batch = await consumer.getmany(timeout_ms=500)
            for recs in batch.values():
                records.extend(recs)
        return records
    finally:
        await consumer.stop()


async def end_offsets(settings: Settings, topic: str) -> dict[int, int]:
    partitions = await partition_count(settings, topic)
    consumer = make_consumer(settings, group_id=None)
    await consumer.start()
    try:
        parts = [TopicPartition(topic, p) for p in range(partitions)]
        ends = await consumer.end_offsets(parts)
        return {tp.partition: off for tp, off in ends.items()}
    finally:
        await consumer.stop()


async def read_since(settings: Settings, topic: str, since: dict[int, int]) -> list[Any]:
    """Every record appended to the topic after the offsets `since` (from end_offsets)."""
    consumer = make_consumer(settings, group_id=None)
    await consumer.start()
    try:
        parts = [TopicPartition(topic, p) for p in sorted(since)]
        consumer.assign(parts)
        for tp in parts:
            consumer.seek(tp, since[tp.partition])
        end = await consumer.end_offsets(parts)
        records: list[Any] = []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 30
        while True:
            positions = {tp: await consumer.position(tp) for tp in parts}
            if all(positions[tp] >= end[tp] for tp in parts):
                return records
            if loop.time() > deadline:
                raise TimeoutError(f"could not read {topic} to its end")
            for recs in (await consumer.getmany(timeout_ms=500)).values():
                records.extend(recs)
    finally:
        await consumer.stop()


async def caught_up(
    settings: Settings, group: str, topics: Sequence[str], limit_s: float = 120
) -> None:
    """Waits until the consumer group has applied every record now in these topics (its
    positions in PostgreSQL reach the current end offsets)."""
    from marketplace.db import connect

    conn = await connect(settings)
    try:
        for topic in topics:
            ends = await end_offsets(settings, topic)
            loop = asyncio.get_running_loop()
            deadline = loop.time() + limit_s
            while True:
                rows = await conn.fetch(
                    "SELECT partition, next_offset FROM consumer_offsets"
                    " WHERE group_id = $1 AND topic = $2",
                    group,
                    topic,
                )
                have = {r["partition"]: r["next_offset"] for r in rows}
                if all(have.get(p, 0) >= off for p, off in ends.items()):
                    break
                if loop.time() > deadline:
                    raise TimeoutError(f"{group} did not catch up with {topic}")
                await asyncio.sleep(0.2)
    finally:
        await conn.close()


# Where every topic ended when this test session began (set by the session fixture in
# conftest.py). A test's own consumer group starts there, so it reads this session's records
# only, not everything earlier runs and benchmarks left on the shared broker.
SESSION_START: dict[str, dict[int, int]] = {}


async def mark_session_start(settings: Settings) -> None:
    from schemas.topics import TOPICS

    for spec in TOPICS:
        SESSION_START[spec.name] = await end_offsets(settings, spec.name)


async def start_at_session_start(settings: Settings, group: str, topics: Sequence[str]) -> None:
    """Positions a new consumer group at the session's start on these topics."""
    from marketplace.db import connect

    conn = await connect(settings)
    try:
        await start_group_at(
            conn,
            group,
            {(t, p): o for t in topics for p, o in SESSION_START.get(t, {}).items()},
        )
    finally:
        await conn.close()


async def publish(
    settings: Settings, event: Any, event_id: str | None = None, time: datetime | None = None
) -> None:
    """One contract event onto its topic, as a CloudEvent, the way the services publish."""
    from marketplace.events import to_message

    message = to_message(
        event,
        event_id=event_id or str(uuid.uuid4()),
        source="/tests",
        time=time or datetime.now(UTC),
    )
    producer = make_producer(settings)
    await producer.start()
    try:
        await producer.send_and_wait(
            message.topic, message.value, key=message.key, headers=list(message.headers)
        )
    finally:
        await producer.stop()


async def start_at_end(settings: Settings, group: str, topic: str) -> None:
    """A new consumer group starts at the topic's current end, so other tests' events stay out."""
    from marketplace.db import connect

    conn = await connect(settings)
    try:
        ends = await end_offsets(settings, topic)
        await start_group_at(conn, group, {(topic, p): o for p, o in ends.items()})
    finally:
        await conn.close()


class _Fetches(Protocol):
    async def fetchval(self, query: str, *args: Any) -> Any: ...


async def until(
    reached: Callable[[], Awaitable[bool]],
    service: asyncio.Task[Any],
    what: Callable[[], str],
    timeout_s: float = 60.0,
    every_s: float = 0.2,
) -> None:
    """Waits until `reached()` holds, failing with `what()` past the timeout, or at once with
    the service's error if the service ended first."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not await reached():
        assert loop.time() < deadline, f"not within {timeout_s:.0f} s: {what()}"
        assert not service.done(), service.exception()
        await asyncio.sleep(every_s)


async def until_count(
    db: _Fetches,
    query: str,
    expected: int,
    service: asyncio.Task[Any],
    timeout_s: float = 60.0,
    every_s: float = 0.2,
) -> None:
    """Waits until `query` (one number) reaches `expected` while the service runs."""
    seen = [0]

    async def reached() -> bool:
        seen[0] = await db.fetchval(query)
        return bool(seen[0] >= expected)

    await until(reached, service, lambda: f"{seen[0]} of {expected} applied", timeout_s, every_s)
