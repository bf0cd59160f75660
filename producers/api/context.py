"""Typed application state and the per-request principal."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

import asyncpg
from aiohttp import web
from aiokafka import AIOKafkaProducer

from marketplace.logs import get_logger
from marketplace.partners import Principal
from marketplace.settings import Settings
from producers.api.ratelimit import RateLimiter

SETTINGS = web.AppKey("settings", Settings)
POOL = web.AppKey("pool", asyncpg.Pool)

log = get_logger(__name__)


class ProducerHandle:
    """The API's producer, connected in the background so the API starts (and says it is not
    ready) while Kafka is away; writes answer 503 until it is connected."""

    def __init__(self, factory: Callable[[], AIOKafkaProducer]) -> None:
        self._factory = factory
        self.producer: AIOKafkaProducer | None = None
        self._connecting: asyncio.Task[None] | None = None
        self._retiring: set[asyncio.Task[None]] = set()

    async def connect(self) -> None:
        delay = 0.5
        while self.producer is None:
            candidate = self._factory()
            starting = asyncio.ensure_future(candidate.start())
            try:
                # Shielded: cancelling aiokafka mid-bootstrap leaks the connection it is opening.
                # Bounded: after all brokers restarted a start was seen to hang with no error.
                done, _ = await asyncio.wait({starting}, timeout=30)
                if not done:
                    raise TimeoutError("the producer's start did not finish in 30 s")
                starting.result()
            except asyncio.CancelledError:
                # Shut down while connecting: let the attempt end, close it, then go.
                await asyncio.wait({starting}, timeout=15)
                if starting.done() and not starting.cancelled():
                    starting.exception()  # retrieved: a failed attempt needs no report here
                await candidate.stop()
                raise
            # Any failed start is retried: while brokers come back a start can fail with other
            # errors than KafkaError (a timeout, a refused connection), and a connect that gave up
            # left the API answering 503 for good (fault suite, all brokers restarted).
            except Exception as exc:  # noqa: BLE001
                log.warning("kafka_producer_start_failed", error=repr(exc), retry_in_s=delay)
                with contextlib.suppress(Exception):  # a half-started one may never stop
                    await asyncio.wait_for(candidate.stop(), 5)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)
            else:
                self.producer = candidate

    def replace(self, failed: AIOKafkaProducer) -> None:
        """Swaps a producer that cannot write any more for a new one (a new producer id), in
        the background; writes answer 503 until it is connected. aiokafka's idempotent producer
        does not recover once a write expired while the brokers were away: every later write
        fails with OutOfOrderSequenceNumber (found by the fault suite, all brokers killed).

        `failed` is the producer the failing write went through: many writes are in flight at
        once, and a late failure of the old producer must not take down its replacement. (It
        did: the second call dropped the new producer and, seeing the first replacement still
        busy stopping the old one, started no connect, so the API answered 503 for good.)"""
        if failed is not self.producer:
            return  # already replaced; its late failures say nothing about the new one
        self.producer = None
        # The broken one may never finish flushing what it holds: stopped in the background,
        # bounded, apart from the connect so that neither waits for the other.
        retiring = asyncio.create_task(self._retire(failed), name="api-producer-retire")
        self._retiring.add(retiring)
        retiring.add_done_callback(self._retiring.discard)
        if self._connecting is None or self._connecting.done():
            self._connecting = asyncio.create_task(self.connect(), name="api-producer-connect")

    @staticmethod
    async def _retire(old: AIOKafkaProducer) -> None:
        with contextlib.suppress(Exception):  # whatever the broken one does on its way out
            await asyncio.wait_for(old.stop(), 10)

    async def stop(self) -> None:
        tasks = [t for t in (self._connecting, *self._retiring) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self.producer is not None:
            await self.producer.stop()


PRODUCER = web.AppKey("producer", ProducerHandle)
LIMITER = web.AppKey("limiter", RateLimiter)
PRINCIPAL = web.RequestKey("principal", Principal)


def principal(request: web.Request) -> Principal:
    try:
        return request[PRINCIPAL]
    except KeyError:
        raise RuntimeError("route is not behind the auth middleware") from None
