"""The Kafka adapter: clients configured as decision 1 says, and topic creation."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import (
    InvalidProducerEpoch,
    KafkaConnectionError,
    KafkaError,
    OutOfOrderSequenceNumber,
    ProducerFenced,
    UnknownProducerId,
)
from aiokafka.partitioner import DefaultPartitioner, murmur2
from aiokafka.structs import RecordMetadata

from marketplace.logs import get_logger
from marketplace.settings import Settings
from schemas.topics import TOPICS, TopicSpec

log = get_logger(__name__)
T = TypeVar("T")


class SenderStopped(KafkaError):  # type: ignore[misc]
    """The producer's background sender has ended, so it will never send again.

    aiokafka ends that task on an error it does not expect. On uvloop, writing to a connection
    the broker has just closed raises RuntimeError instead of OSError (aio-libs/aiokafka#1038);
    the same error once ended a consumer's coordination in the fault suite. The sends queued
    then fail with "Unexpected error during batch delivery", and later ones wait for ever:
    `delivered` raises this for both, so that the holder replaces the producer."""


# Errors after which an idempotent producer never writes again: its sequence numbers are out of
# step with the brokers (aiokafka does not recover once a send expired while every broker was
# away; the fault suite saw it), or its sender has ended (`SenderStopped`). Whoever holds such a
# producer (the API, an outbox publisher) replaces it with a new one.
BROKEN_PRODUCER = (
    OutOfOrderSequenceNumber,
    UnknownProducerId,
    InvalidProducerEpoch,
    ProducerFenced,
    SenderStopped,
)


def fetcher_error(consumer: AIOKafkaConsumer) -> KafkaError | None:
    """The error that ended a started consumer's background fetcher, or None while it runs.

    aiokafka fetches in a task of its own, and an error it does not expect ends that task (as
    "Unexpected error during data retrieval"): uvloop's RuntimeError on a connection the broker
    has just closed is one (aio-libs/aiokafka#1038). `getmany` does not look at that task, so
    from then on it returns nothing, without an error: the consumer stalls in silence. Its
    holder asks after each fetch and replaces the consumer (test_consumer_renewal raises that
    RuntimeError in a real fetch request). aiokafka keeps the task as the fetcher's
    `error_future`; the lock pins the version."""
    task = getattr(getattr(consumer, "_fetcher", None), "error_future", None)
    if task is None or not task.done() or task.cancelled():
        return None
    error = task.exception()
    if error is None:  # it returns when the consumer is stopped
        return None
    if isinstance(error, KafkaError):
        return error
    return KafkaError(f"the Kafka consumer's fetcher ended: {error!r}")


# How often `delivered` looks whether the producer's sender still runs, while sends wait.
SENDER_CHECK_S = 1.0


def sender_stopped(producer: AIOKafkaProducer) -> bool:
    """Whether a started producer's background sender has ended (aiokafka keeps the task on
    its sender as `sender_task`; the lock pins the version, and test_producer_sender checks it
    against a sender really ended)."""
    task = getattr(getattr(producer, "_sender", None), "sender_task", None)
    return task is not None and bool(task.done())


async def delivered(producer: AIOKafkaProducer, sending: Awaitable[T]) -> T:
    """Awaits `sending` (sends on `producer` and their acknowledgements). Raises `SenderStopped`
    when the producer's sender has ended: at once if `sending` failed because of it, and within
    SENDER_CHECK_S if it waits on a producer whose sender had already ended (it is cancelled)."""
    task = asyncio.ensure_future(sending)
    try:
        while True:
            done, _ = await asyncio.wait({task}, timeout=SENDER_CHECK_S)
            if done or sender_stopped(producer):
                break
    except asyncio.CancelledError:
        task.cancel()
        raise
    if not done:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        raise SenderStopped("the Kafka producer's sender has stopped")
    try:
        return task.result()
    except KafkaError as exc:
        if isinstance(exc, SenderStopped) or not sender_stopped(producer):
            raise
        raise SenderStopped(f"the Kafka producer's sender has stopped: {exc}") from exc


async def publish(
    producer: AIOKafkaProducer,
    topic: str,
    value: bytes,
    *,
    key: bytes | None,
    headers: Sequence[tuple[str, bytes]] = (),
) -> RecordMetadata:
    """One record sent and acknowledged, for the one-shot publishers (the API's writes, the
    CLI's registrations, erasures and dead-letter replays): `send_and_wait` under `delivered`,
    so that a producer whose sender has ended raises `SenderStopped` (a send still waiting is
    given up within SENDER_CHECK_S)."""
    sent: RecordMetadata = await delivered(
        producer, producer.send_and_wait(topic, value, key=key, headers=list(headers))
    )
    return sent


# Kafka error code for "topic already exists", so that concurrent `up`s do not fail each other.
TOPIC_ALREADY_EXISTS = 36
UNKNOWN_TOPIC = 3


class TopicLayoutError(RuntimeError):
    """An existing topic does not have the partitions the project expects."""


@dataclass(frozen=True, slots=True)
class TopicState:
    name: str
    partitions: int
    created: bool


_DEFAULT_PARTITIONER = DefaultPartitioner()


@functools.lru_cache(maxsize=1 << 16)
def _key_hash(key: bytes) -> int:
    return int(murmur2(key)) & 0x7FFFFFFF


def partition_for(
    key: bytes | None, all_partitions: Sequence[int], available: Sequence[int]
) -> int:
    """aiokafka's default partitioner (murmur2 of the key, the Java client's choice, so keys land
    where Kafka's own tools put them), with each key's hash remembered: aiokafka computes
    murmur2 in Python, 5.7 µs for a 36-byte key by timeit (0.2 µs remembered), and the keys
    repeat (material families, partners; issue #18: the notifier's costliest function under
    cProfile). The hash, not the partition, is kept, so a topic with more partitions is still
    hashed right. No key: a random partition, as aiokafka's."""
    if key is None:
        return int(_DEFAULT_PARTITIONER(key, list(all_partitions), list(available)))
    return all_partitions[_key_hash(bytes(key)) % len(all_partitions)]


def make_producer(settings: Settings, **overrides: Any) -> AIOKafkaProducer:
    options: dict[str, Any] = {
        "bootstrap_servers": settings.kafka_servers,
        "enable_idempotence": True,
        "acks": "all",
        "linger_ms": settings.producer_linger_ms,
        "client_id": "marketplace-producer",
        "partitioner": partition_for,
    }
    options.update(overrides)
    return AIOKafkaProducer(**options)


def make_consumer(settings: Settings, group_id: str | None, **overrides: Any) -> AIOKafkaConsumer:
    options: dict[str, Any] = {
        "bootstrap_servers": settings.kafka_servers,
        "group_id": group_id,
        "enable_auto_commit": False,
        "auto_offset_reset": "earliest",
        "session_timeout_ms": settings.consumer_session_timeout_ms,
        "heartbeat_interval_ms": max(1000, settings.consumer_session_timeout_ms // 5),
        "max_poll_records": settings.consumer_max_batch,
        "fetch_max_wait_ms": settings.consumer_fetch_max_wait_ms,
        "fetch_min_bytes": settings.consumer_fetch_min_bytes,
        "isolation_level": "read_committed",
        "client_id": f"marketplace-{group_id or 'reader'}",
    }
    options.update(overrides)
    return AIOKafkaConsumer(**options)


def make_admin(settings: Settings) -> AIOKafkaAdminClient:
    return AIOKafkaAdminClient(
        bootstrap_servers=settings.kafka_servers, client_id="marketplace-admin"
    )


async def wait_for_kafka(settings: Settings, timeout_s: float = 60.0) -> None:
    """Waits until the cluster answers a metadata request, or raises."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    last: Exception | None = None
    while loop.time() < deadline:
        admin = make_admin(settings)
        try:
            await admin.start()
            await admin.describe_cluster()
            return
        except (KafkaConnectionError, KafkaError, OSError) as exc:
            last = exc
        finally:
            await admin.close()
        await asyncio.sleep(0.5)
    raise TimeoutError(
        f"Kafka at {settings.kafka_servers} not ready after {timeout_s:.0f} s: {last}"
    )


async def ensure_topics(
    settings: Settings,
    specs: Iterable[TopicSpec] = TOPICS,
    *,
    partitions: int | None = None,
    replication: int | None = None,
) -> list[TopicState]:
    """Creates missing topics; checks existing ones. Safe to run any number of times."""
    specs = list(specs)
    partitions = partitions or settings.topic_partitions
    replication = replication or settings.topic_replication
    admin = make_admin(settings)
    await admin.start()
    try:
        existing = await _partition_counts(admin, [s.name for s in specs])
        missing = [s for s in specs if s.name not in existing]
        if missing:
            config = {"min.insync.replicas": str(settings.topic_min_insync)}
            response = await admin.create_topics(
                [
                    NewTopic(s.name, partitions, replication, topic_configs={**config, **s.config})
                    for s in missing
                ]
            )
            for topic, code, *rest in response.topic_errors:
                if code not in (0, TOPIC_ALREADY_EXISTS):
                    message = rest[0] if rest else ""
                    raise KafkaError(f"creating topic {topic} failed: error {code} {message}")
            existing.update(
                await _partition_counts(admin, [s.name for s in missing], expect_all=True)
            )
        states = []
        for s in specs:
            count = existing.get(s.name, 0)
            if count < 1:
                raise TopicLayoutError(f"topic {s.name} has no partitions after creation")
            states.append(TopicState(s.name, count, created=s in missing))
        for st in states:
            if not st.created and st.partitions != partitions:
                log.warning(
                    "topic_partitions_differ",
                    topic=st.name,
                    actual=st.partitions,
                    configured=partitions,
                    hint="partition counts of keyed topics are never changed in place",
                )
        return states
    finally:
        await admin.close()


async def _partition_counts(
    admin: AIOKafkaAdminClient, names: Sequence[str], *, expect_all: bool = False
) -> dict[str, int]:
    """Partition counts of the topics that exist. With expect_all (just after creating them),
    waits until every one is visible with its partitions and leaders: a new broker's metadata
    can lag a few seconds behind its controller."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 30
    while True:
        counts: dict[str, int] = {}
        pending = False
        for topic in await admin.describe_topics(list(names)):
            code = topic.get("error_code", 0)
            parts = topic.get("partitions", [])
            if code == 0 and parts and all(p.get("leader", -1) >= 0 for p in parts):
                counts[topic["topic"]] = len(parts)
            elif code != UNKNOWN_TOPIC or expect_all:
                pending = True
        if not pending or loop.time() > deadline:
            return counts
        await asyncio.sleep(0.25)


async def partition_counts(settings: Settings, names: Sequence[str]) -> dict[str, int]:
    """How many partitions each of these topics has (topics that do not exist are left out)."""
    admin = make_admin(settings)
    await admin.start()
    try:
        return await _partition_counts(admin, names)
    finally:
        await admin.close()


async def delete_topics(settings: Settings, names: Sequence[str]) -> None:
    admin = make_admin(settings)
    await admin.start()
    try:
        await admin.delete_topics(list(names))
    finally:
        await admin.close()
