"""The outbox publisher swaps an idempotent producer that can no longer write for a new one.
aiokafka's idempotent producer stays out of step with the brokers once a send expired while they
were away (every later send fails with OutOfOrderSequenceNumber); the fault suite saw the API's
producer do exactly that after all brokers were killed. A consumer's outbox rows would then
never be published again, so the publisher renews its producer and the next sweep succeeds."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiokafka.errors import KafkaTimeoutError, OutOfOrderSequenceNumber

from marketplace.runtime.outbox import OutboxMessage, OutboxPublisher


class FakeBatch:
    def __init__(self) -> None:
        self.values: list[bytes] = []

    def append(self, *, value: bytes, **_: Any) -> bool:
        self.values.append(value)
        return True

    def close(self) -> None:
        pass


class FakeProducer:
    def __init__(self, fail_with: Exception | None) -> None:
        self.fail_with = fail_with
        self.sent: list[bytes] = []
        self.started = False
        self.stopped = False

    async def start(self) -> None:
        self.started = True

    async def stop(self) -> None:
        self.stopped = True

    async def send(self, topic: str, value: bytes, **_: Any) -> asyncio.Future[None]:
        return self._sent([value])

    async def partitions_for(self, topic: str) -> set[int]:
        return {0, 1, 2}

    def create_batch(self) -> FakeBatch:
        return FakeBatch()

    async def send_batch(self, batch: FakeBatch, topic: str, **_: Any) -> asyncio.Future[None]:
        return self._sent(batch.values)

    def _sent(self, values: list[bytes]) -> asyncio.Future[None]:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self.fail_with is not None:
            future.set_exception(self.fail_with)
        else:
            self.sent.extend(values)
            future.set_result(None)
        return future


MESSAGES = [OutboxMessage("t", b"k", b"v1", ()), OutboxMessage("t", b"k", b"v2", ())]


def publisher(first_error: Exception) -> tuple[OutboxPublisher, list[FakeProducer]]:
    first = FakeProducer(first_error)
    made = [first]

    def renew() -> Any:
        made.append(FakeProducer(None))
        return made[-1]

    return OutboxPublisher(None, first, "g", renew=renew), made  # type: ignore[arg-type]


async def test_a_producer_out_of_step_with_the_brokers_is_renewed() -> None:
    outbox, made = publisher(OutOfOrderSequenceNumber())
    with pytest.raises(OutOfOrderSequenceNumber):
        await outbox._send_all(MESSAGES)  # this attempt fails; the rows stay in the outbox
    assert len(made) == 2
    assert made[0].stopped
    assert made[1].started
    await outbox._send_all(MESSAGES)  # the sweeper's next try
    assert made[1].sent == [b"v1", b"v2"]
    assert outbox.renewed == 1


async def test_a_send_that_merely_timed_out_keeps_the_producer() -> None:
    outbox, made = publisher(KafkaTimeoutError())
    with pytest.raises(KafkaTimeoutError):
        await outbox._send_all(MESSAGES)
    assert len(made) == 1
    assert outbox.renewed == 0
