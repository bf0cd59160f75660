"""The transactional outbox: rows written with a consumer's effects, published after commit.

Publishing is at-least-once: rows are deleted only after Kafka acknowledged them (acks=all,
idempotent producer), so a crash between the two republishes them. Consumers downstream
deduplicate by CloudEvent id.

The rows a batch published are not deleted by a statement (and a commit, an fsync) of their own:
their ids wait in `OutboxPublisher.acknowledged` and the next batch's transaction deletes them
with its own writes (`insert_and_advance`); an idle consumer or the sweeper deletes what is left.
A crash before that only means the sweeper publishes those rows once more, under the same ids.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg
import orjson
from aiokafka import AIOKafkaProducer
from aiokafka.errors import (
    KafkaError,
)

from marketplace.db import Conn
from marketplace.kafka import BROKEN_PRODUCER, delivered, partition_for
from marketplace.logs import get_logger

log = get_logger(__name__)


@dataclass(frozen=True, slots=True)
class OutboxMessage:
    topic: str
    key: bytes | None
    value: bytes
    headers: tuple[tuple[str, bytes], ...] = ()

    def headers_json(self) -> str:
        try:
            return orjson.dumps([[k, v.decode()] for k, v in self.headers]).decode()
        except UnicodeDecodeError:
            raise ValueError(f"outbox header values must be UTF-8 text ({self.topic})") from None


_INSERT = """
INSERT INTO outbox (group_id, topic, key, value, headers)
SELECT $1, u.topic, u.key, u.value, u.headers::jsonb
  FROM unnest($2::text[], $3::bytea[], $4::bytea[], $5::text[]) AS u(topic, key, value, headers)
RETURNING id
"""


async def insert(conn: Conn, group_id: str, messages: Sequence[OutboxMessage]) -> list[int]:
    if not messages:
        return []
    rows = await conn.fetch(
        _INSERT,
        group_id,
        [m.topic for m in messages],
        [m.key for m in messages],
        [m.value for m in messages],
        [m.headers_json() for m in messages],
    )
    return [r["id"] for r in rows]


# The end of a batch in one round trip: its outbox rows written, the partition's stored offset
# moved on, and the rows earlier batches published deleted. Data-modifying WITH clauses run
# once each whether or not the outer query reads them.
_FINISH = """
WITH new_rows AS (
    INSERT INTO outbox (group_id, topic, key, value, headers)
    SELECT $1, u.topic, u.key, u.value, u.headers::jsonb
      FROM unnest($2::text[], $3::bytea[], $4::bytea[], $5::text[]) AS u(topic, key, value, headers)
    RETURNING id
), advanced AS (
    UPDATE consumer_offsets SET next_offset = $8, updated_at = now()
     WHERE group_id = $1 AND topic = $6 AND partition = $7
), published AS (
    DELETE FROM outbox WHERE id = ANY($9::bigint[])
)
SELECT coalesce(array_agg(id ORDER BY id), '{}') FROM new_rows
"""


async def insert_and_advance(
    conn: Conn,
    group_id: str,
    messages: Sequence[OutboxMessage],
    *,
    topic: str,
    partition: int,
    next_offset: int,
    published: Sequence[int] = (),
) -> list[int]:
    """Writes a batch's outbox rows, stores the partition's next offset and deletes the rows
    already published (`published`), all in one statement; returns the new rows' ids in order."""
    ids: list[int] = await conn.fetchval(
        _FINISH,
        group_id,
        [m.topic for m in messages],
        [m.key for m in messages],
        [m.value for m in messages],
        [m.headers_json() for m in messages],
        topic,
        partition,
        next_offset,
        list(published),
    )
    return ids


# Messages larger than this go through `send`, which checks them against the producer's limits
# (events are a few kB; this only keeps an oversized one's error the producer's own).
_LARGE = 64 * 1024


async def send_batched(
    producer: AIOKafkaProducer, messages: Sequence[OutboxMessage]
) -> list[asyncio.Future[Any]]:
    """Queues `messages` on `producer` and returns the futures of their acknowledgements. Keyed
    messages go in one record batch per topic and partition (in their order), each partition
    the one `partition_for` gives the key, as `send` would: `send` does per message what a
    batch does once (its metadata wait, partitioning, a future and a queue look-up). Against
    per-message sends the notifier's rate moved less than the rounds' spread
    (consumers-20261201T070138Z). Keyless or oversized messages go through `send`."""
    futures: list[asyncio.Future[Any]] = []
    groups: dict[tuple[str, int], list[OutboxMessage]] = {}
    partitions: dict[str, list[int]] = {}
    for m in messages:
        if m.key is None or len(m.value) + len(m.key) > _LARGE:
            futures.append(
                await producer.send(m.topic, value=m.value, key=m.key, headers=list(m.headers))
            )
            continue
        known = partitions.get(m.topic)
        if known is None:
            known = partitions[m.topic] = list(await producer.partitions_for(m.topic))
        partition = partition_for(m.key, known, known)
        groups.setdefault((m.topic, partition), []).append(m)
    for (topic, partition), group in groups.items():
        batch = producer.create_batch()
        for m in group:
            # A full batch is sent and the message goes into the next (an empty batch takes
            # any message, and messages over _LARGE went through `send`).
            while not batch.append(
                key=m.key, value=m.value, timestamp=None, headers=list(m.headers)
            ):
                futures.append(await producer.send_batch(batch, topic, partition=partition))
                batch = producer.create_batch()
        batch.close()
        futures.append(await producer.send_batch(batch, topic, partition=partition))
    return futures


def _from_row(row: asyncpg.Record) -> OutboxMessage:
    headers = orjson.loads(row["headers"])
    return OutboxMessage(
        topic=row["topic"],
        key=row["key"],
        value=row["value"],
        headers=tuple((k, v.encode()) for k, v in headers),
    )


class OutboxPublisher:
    """Publishes a group's outbox rows, right after commit and, for leftovers, by sweeping."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        producer: AIOKafkaProducer,
        group_id: str,
        renew: Callable[[], AIOKafkaProducer] | None = None,
    ) -> None:
        self._pool = pool
        self._producer = producer
        self._group_id = group_id
        self._renew = renew
        self._renewing = asyncio.Lock()
        self.published = 0
        self.swept = 0
        self.renewed = 0
        # Ids of rows Kafka acknowledged that are still to be deleted (by the next batch's
        # transaction, by `flush`, or by the sweeper).
        self.acknowledged: list[int] = []

    @property
    def producer(self) -> AIOKafkaProducer:
        """The producer in use now (a renewed one after a broken producer was replaced)."""
        return self._producer

    async def publish(self, ids: Sequence[int], messages: Sequence[OutboxMessage]) -> None:
        """Sends messages already committed under `ids` and waits for acks; their rows are then
        due for deletion (`acknowledged`)."""
        if not messages:
            return
        await self._send_all(messages)
        self.acknowledged.extend(ids)
        self.published += len(messages)

    def take_acknowledged(self) -> list[int]:
        """The acknowledged ids, handed to a transaction that deletes them; give them back
        with `restore_acknowledged` when it does not commit."""
        taken, self.acknowledged = self.acknowledged, []
        return taken

    def restore_acknowledged(self, ids: Sequence[int]) -> None:
        self.acknowledged.extend(ids)

    async def flush(self) -> None:
        """Deletes the acknowledged rows now (an idle consumer, the sweeper, a clean stop)."""
        ids = self.take_acknowledged()
        if not ids:
            return
        try:
            async with self._pool.acquire() as conn:
                await conn.execute("DELETE FROM outbox WHERE id = ANY($1::bigint[])", ids)
        except BaseException:
            self.restore_acknowledged(ids)
            raise

    async def sweep(self, min_age_s: float, limit: int = 1000) -> int:
        """Republishes rows older than min_age_s that a crash (or a slow instance) left behind."""
        await self.flush()  # never republish what this instance already had acknowledged
        total = 0
        while True:
            async with self._pool.acquire() as conn, conn.transaction():
                # SKIP LOCKED: instances of one group sweep side by side without waiting.
                rows = await conn.fetch(
                    "SELECT id, topic, key, value, headers FROM outbox"
                    " WHERE group_id = $1 AND created_at <= now() - make_interval(secs => $2)"
                    " ORDER BY id LIMIT $3 FOR UPDATE SKIP LOCKED",
                    self._group_id,
                    min_age_s,
                    limit,
                )
                if not rows:
                    break
                await self._send_all([_from_row(r) for r in rows])
                await conn.execute(
                    "DELETE FROM outbox WHERE id = ANY($1::bigint[])", [r["id"] for r in rows]
                )
            total += len(rows)
            if len(rows) < limit:
                break
        if total:
            self.swept += total
            log.info("outbox_swept", group=self._group_id, rows=total)
        return total

    async def _send_all(self, messages: Sequence[OutboxMessage]) -> None:
        producer = self._producer

        async def send() -> None:
            await asyncio.gather(*await send_batched(producer, messages))

        try:
            await delivered(producer, send())
        except BROKEN_PRODUCER:
            # This attempt fails (the rows stay in the outbox); the next one uses a new producer.
            await self._replace(producer)
            raise

    async def _replace(self, broken: AIOKafkaProducer) -> None:
        async with self._renewing:
            if self._renew is None or self._producer is not broken:
                return  # nothing to renew with, or already renewed by the other path
            fresh = self._renew()
            try:
                await fresh.start()
            except BaseException:
                await fresh.stop()
                raise
            self._producer = fresh
            self.renewed += 1
            log.warning("outbox_producer_renewed", group=self._group_id)
            # The broken one may never finish flushing what it holds: bounded.
            with contextlib.suppress(KafkaError, TimeoutError):
                await asyncio.wait_for(broken.stop(), 10)
