"""The API swaps an idempotent producer that can no longer write for a new one. Found by the
fault suite: after all brokers were killed and started again, a write that had expired meanwhile
left aiokafka's producer out of step with the brokers, and every later write failed with
OutOfOrderSequenceNumber (503) until the API was restarted."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from aiokafka.errors import KafkaTimeoutError, OutOfOrderSequenceNumber

from marketplace.partners import registration
from producers.api.context import PRODUCER, ProducerHandle
from producers.api.problems import Problem
from producers.api.writes import publish


class FakeProducer:
    def __init__(self, fail_with: Exception | None) -> None:
        self.fail_with = fail_with
        self.sent: list[str] = []
        self.stopped = False

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        self.stopped = True
        if isinstance(self.fail_with, OutOfOrderSequenceNumber):
            await asyncio.sleep(3600)  # a broken producer may never finish flushing

    async def send_and_wait(self, topic: str, value: bytes, **_: Any) -> None:
        if self.fail_with is not None:
            raise self.fail_with
        self.sent.append(topic)


async def write(request: web.Request) -> web.Response:
    event = registration(
        name="Test AB", role="sme", country="SE", region="SE312", sector="13", registered_by="t"
    )
    try:
        await publish(request, event, event_id="e-1", subject=event.partner_id)
    except Problem as problem:
        return web.Response(status=problem.status)
    return web.Response(status=202)


async def run(first_error: Exception) -> tuple[list[int], list[FakeProducer]]:
    made: list[FakeProducer] = []

    def factory() -> Any:
        made.append(FakeProducer(first_error if not made else None))
        return made[-1]

    handle = ProducerHandle(factory)
    await handle.connect()
    app = web.Application()
    app[PRODUCER] = handle
    app.router.add_post("/write", write)
    statuses = []
    async with TestClient(TestServer(app)) as client:
        statuses.append((await client.post("/write")).status)
        for _ in range(100):  # the replacement connects in the background
            if handle.producer is not None:
                break
            await asyncio.sleep(0.01)
        statuses.append((await client.post("/write")).status)
    await handle.stop()
    return statuses, made


async def test_a_producer_out_of_step_with_the_brokers_is_replaced() -> None:
    statuses, made = await run(OutOfOrderSequenceNumber())
    assert statuses == [503, 202]
    assert len(made) == 2
    assert made[1].sent == ["partners.registry"]


async def test_a_write_that_merely_timed_out_keeps_the_producer() -> None:
    statuses, made = await run(KafkaTimeoutError())
    assert statuses == [503, 503]
    assert len(made) == 1


class FailingStart(FakeProducer):
    """A producer whose start fails as it did while brokers came back: not with a KafkaError."""

    async def start(self) -> None:
        raise TimeoutError("metadata not ready")


async def test_a_start_that_fails_with_any_error_is_retried_until_a_producer_connects() -> None:
    made: list[FakeProducer] = []

    def factory() -> Any:
        made.append(FailingStart(None) if len(made) < 2 else FakeProducer(None))
        return made[-1]

    handle = ProducerHandle(factory)
    await asyncio.wait_for(handle.connect(), 10)
    assert handle.producer is made[-1]
    assert len(made) == 3
    assert all(p.stopped for p in made[:2])  # the failed candidates were closed
