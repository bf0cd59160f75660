"""Running one exactly-once consumer as a service: build its adapters, run, stop cleanly."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Sequence
from typing import TypeVar

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from marketplace.db import create_pool
from marketplace.kafka import make_consumer, make_producer
from marketplace.logs import get_logger
from marketplace.runtime.consumer import (
    STOP_STEP_S,
    ConsumerStats,
    ExactlyOnceConsumer,
    FaultHook,
    Processor,
    bounded,
)
from marketplace.settings import Settings

log = get_logger(__name__)
S = TypeVar("S")


async def run_consumer(
    settings: Settings,
    *,
    group_id: str,
    topics: Sequence[str],
    processor: Processor[S],
    fault: FaultHook | None = None,
    stop: asyncio.Event | None = None,
    synchronous_commit: bool = True,
) -> ConsumerStats:
    """Runs until `stop` is set (by default: until SIGTERM/SIGINT), then leaves the consumer
    group and flushes the producer; returns what it applied and emitted. `synchronous_commit`
    False: the batches' commits do not wait for the disk (`create_pool`), for a consumer whose
    effects a PostgreSQL crash may lose and its records then apply again (the offset is lost
    with them), with nothing outside the database having relied on them but at-least-once
    deliveries."""
    handle_signals = stop is None
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    if handle_signals:
        # First thing: a SIGTERM while the service is still starting stops it cleanly too.
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
    # Consumers keep no session state: no reset query per released connection. Custom plans:
    # the outbox churns too fast for a cached generic plan (`create_pool`).
    pool = await create_pool(
        settings,
        reset_sessions=False,
        synchronous_commit=synchronous_commit,
        custom_plans=settings.consumer_custom_plans,
    )

    def new_producer() -> AIOKafkaProducer:
        return make_producer(settings, client_id=f"marketplace-{group_id}")

    def new_consumer() -> AIOKafkaConsumer:
        return make_consumer(settings, group_id)

    producer = new_producer()
    consumer = new_consumer()
    runner = ExactlyOnceConsumer(
        settings,
        group_id=group_id,
        topics=topics,
        processor=processor,
        pool=pool,
        consumer=consumer,
        producer=producer,
        fault=fault,
        renew_producer=new_producer,
        renew_consumer=new_consumer,
    )

    async def relay() -> None:
        await stop.wait()
        runner.request_stop()

    relay_task = asyncio.create_task(relay())
    try:
        await producer.start()
        await consumer.start()
        log.info("consumer_started", group=group_id, topics=list(topics))
        await runner.run()
    finally:
        relay_task.cancel()
        glog = log.bind(group=group_id)
        if handle_signals:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)
        # The consumer in use (a renewed one, or the first): stop() sends LeaveGroup, so the
        # partitions move to the other instances at once (if it cannot within STOP_STEP_S, they
        # move when the session times out, as after a crash).
        await bounded(runner.consumer.stop(), STOP_STEP_S, glog, "consumer_leave_abandoned")
        # A renewed producer, or the first; what it cannot send in time stays in the outbox.
        await bounded(runner.outbox.producer.stop(), STOP_STEP_S, glog, "producer_flush_abandoned")
        if not await bounded(pool.close(), STOP_STEP_S, glog, "pool_close_abandoned"):
            pool.terminate()
        log.info("consumer_stopped", group=group_id, records=runner.stats.records)
    return runner.stats
