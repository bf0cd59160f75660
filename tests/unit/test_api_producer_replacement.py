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
    # No name: nothing to seal (#21 item 8), so the write needs no database here.
    event = registration(
        name="", role="sme", country="SE", region="SE312", sector="13", registered_by="t"
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


async def connected(handle: ProducerHandle) -> Any:
    for _ in range(200):  # the replacement connects in the background
        if handle.producer is not None:
            break
        await asyncio.sleep(0.01)
    return handle.producer


class LateFailure(FakeProducer):
    """A producer out of step whose writes fail one after another: the first one sent fails
    last, once the test lets it, after the second's failure was replaced."""

    def __init__(self) -> None:
        super().__init__(OutOfOrderSequenceNumber())
        self.release = asyncio.Event()
        self.calls = 0

    async def send_and_wait(self, topic: str, value: bytes, **_: Any) -> None:
        self.calls += 1
        if self.calls == 1:
            await self.release.wait()
        raise OutOfOrderSequenceNumber()


async def test_a_late_failure_of_the_replaced_producer_keeps_its_replacement() -> None:
    """Many writes are in flight when the producer breaks; each fails in turn. The fault suite
    found the API at 503 for good after all brokers restarted: a late failure of the old
    producer dropped the new one while nothing was left connecting."""
    made: list[FakeProducer] = []

    def factory() -> Any:
        made.append(LateFailure() if not made else FakeProducer(None))
        return made[-1]

    handle = ProducerHandle(factory)
    await handle.connect()
    app = web.Application()
    app[PRODUCER] = handle
    app.router.add_post("/write", write)
    broken = made[0]
    assert isinstance(broken, LateFailure)
    async with TestClient(TestServer(app)) as client:
        late = asyncio.create_task(client.post("/write"))  # waits inside the broken producer
        for _ in range(200):
            if broken.calls:
                break
            await asyncio.sleep(0.01)
        assert broken.calls == 1
        assert (await client.post("/write")).status == 503  # fails first: replaced
        assert await connected(handle) is made[1]
        broken.release.set()
        assert (await late).status == 503  # the old producer's late failure
        assert handle.producer is made[1]
        assert (await client.post("/write")).status == 202
    await handle.stop()
    assert len(made) == 2


async def test_a_replacement_that_breaks_too_is_replaced_while_the_first_still_stops() -> None:
    made: list[FakeProducer] = []

    def factory() -> Any:
        made.append(FakeProducer(OutOfOrderSequenceNumber() if len(made) < 2 else None))
        return made[-1]

    handle = ProducerHandle(factory)
    await handle.connect()
    app = web.Application()
    app[PRODUCER] = handle
    app.router.add_post("/write", write)
    async with TestClient(TestServer(app)) as client:
        assert (await client.post("/write")).status == 503
        assert await connected(handle) is made[1]  # the first one is still stopping (hangs)
        assert (await client.post("/write")).status == 503
        assert await connected(handle) is made[2]
        assert (await client.post("/write")).status == 202
    await handle.stop()
    assert [p.stopped for p in made] == [True, True, True]
