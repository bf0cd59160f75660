"""`marketplace dlq`: the operator's view of `ops.deadletters`. Each dead letter holds the
original record's bytes and headers, the reason, the consumer group that refused it, and where it
came from (`dl_topic`, `dl_partition`, `dl_offset`, `dl_key`)."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

from aiokafka import TopicPartition

from marketplace.kafka import make_consumer, make_producer, partition_counts, publish
from marketplace.runtime.deadletter import TOPIC
from marketplace.settings import Settings


@dataclass(frozen=True, slots=True)
class DeadLetter:
    partition: int
    offset: int
    timestamp_ms: int
    group: str
    reason: str
    source_topic: str
    source_partition: int
    source_offset: int
    key: bytes | None
    headers: tuple[tuple[str, bytes], ...]  # the original record's
    value: bytes

    @property
    def id(self) -> str:
        return f"{self.partition}:{self.offset}"


def _parse(record: Any) -> DeadLetter:
    meta: dict[str, bytes] = {}
    original: list[tuple[str, bytes]] = []
    for name, value in record.headers or ():
        if name.startswith("dl_"):
            meta[name] = value
        else:
            original.append((name, value))

    def text(name: str, default: str = "") -> str:
        return meta[name].decode("utf-8", errors="replace") if name in meta else default

    key = base64.b64decode(meta["dl_key"]) if "dl_key" in meta else None
    return DeadLetter(
        partition=record.partition,
        offset=record.offset,
        timestamp_ms=record.timestamp,
        group=text("dl_group"),
        reason=text("dl_reason"),
        source_topic=text("dl_topic"),
        source_partition=int(text("dl_partition", "-1")),
        source_offset=int(text("dl_offset", "-1")),
        key=key,
        headers=tuple(original),
        value=record.value or b"",
    )


async def read(settings: Settings, group: str | None = None, limit: int = 1000) -> list[DeadLetter]:
    """The dead letters now on the topic (oldest first), optionally of one consumer group."""
    counts = await partition_counts(settings, [TOPIC])
    parts = [TopicPartition(TOPIC, p) for p in range(counts.get(TOPIC, 0))]
    if not parts:
        return []
    consumer = make_consumer(settings, None, client_id="marketplace-dlq")
    await consumer.start()
    try:
        ends = await consumer.end_offsets(parts)
        consumer.assign(parts)
        await consumer.seek_to_beginning(*parts)
        found: list[DeadLetter] = []
        while await _behind(consumer, parts, ends):
            batches = await consumer.getmany(timeout_ms=1000)
            for records in batches.values():
                for r in records:
                    if r.offset < ends[TopicPartition(r.topic, r.partition)]:
                        letter = _parse(r)
                        if group is None or letter.group == group:
                            found.append(letter)
    finally:
        await consumer.stop()
    found.sort(key=lambda d: (d.timestamp_ms, d.partition, d.offset))
    return found[-limit:]


async def _behind(consumer: Any, parts: list[TopicPartition], ends: dict[Any, int]) -> bool:
    for tp in parts:
        if await consumer.position(tp) < ends[tp]:
            return True
    return False


async def find(settings: Settings, letter_id: str) -> DeadLetter | None:
    try:
        partition, offset = (int(x) for x in letter_id.split(":"))
    except ValueError:
        raise ValueError(
            f"{letter_id!r}: a dead letter id is PARTITION:OFFSET, e.g. 3:17"
        ) from None
    consumer = make_consumer(settings, None, client_id="marketplace-dlq")
    await consumer.start()
    try:
        tp = TopicPartition(TOPIC, partition)
        consumer.assign([tp])
        consumer.seek(tp, offset)
        batch = await consumer.getmany(tp, timeout_ms=5000, max_records=1)
        records = batch.get(tp, [])
        return _parse(records[0]) if records and records[0].offset == offset else None
    finally:
        await consumer.stop()


async def replay(settings: Settings, letter: DeadLetter) -> tuple[str, int, int]:
    """Publishes the original record again to its topic (same key, value and headers); every
    consumer group of that topic will see it. Returns (topic, partition, offset)."""
    if not letter.source_topic:
        raise ValueError(f"dead letter {letter.id} does not say where it came from")
    producer = make_producer(settings, client_id="marketplace-dlq")
    await producer.start()
    try:
        sent = await publish(
            producer, letter.source_topic, letter.value, key=letter.key, headers=letter.headers
        )
    finally:
        await producer.stop()
    return sent.topic, sent.partition, sent.offset
