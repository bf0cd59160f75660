"""A Kafka consumer whose client fails for good is replaced, and no record is lost or applied
twice.

The failure is aiokafka's own: its group coordination runs in a background task, and an error
that task does not expect ends it; every fetch then raises "Unexpected error during
coordination". On uvloop a write to a connection the broker has just closed raises
RuntimeError (aio-libs/aiokafka#1038), and the fault suite saw a matcher stop this way while its
brokers restarted. Here the same RuntimeError is raised by the client's `send` for the
coordinator look-up that follows a coordinator marked dead, and for a fetch request (which ends
the fetcher task instead, silently), on the real broker."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.client import AIOKafkaClient
from aiokafka.errors import KafkaError

import marketplace.kafka
from marketplace.runtime import service
from marketplace.runtime.consumer import CONSUMERS_RENEWED, MAX_RENEWALS_IN_A_ROW
from marketplace.runtime.service import run_consumer
from marketplace.settings import Settings
from tests.integration.kafka_helpers import make_topics, produce_numbers, unique, until_count
from tests.integration.test_runtime_failures import (
    Flaky,
    assert_applied_once,
    counted,
    counts_table,
    flaky_running,
)

pytestmark = pytest.mark.integration

CLOSED = "unable to perform operation on <TCPTransport closed=True>; the handler is closed"


@pytest.fixture
def made(monkeypatch: pytest.MonkeyPatch) -> list[AIOKafkaConsumer]:
    """Every Kafka consumer the service makes, in order (the first and its replacements)."""
    consumers: list[AIOKafkaConsumer] = []
    real_make = marketplace.kafka.make_consumer

    def recording_make(*args: Any, **kwargs: Any) -> AIOKafkaConsumer:
        consumer = real_make(*args, **kwargs)
        consumers.append(consumer)
        return consumer

    monkeypatch.setattr(service, "make_consumer", recording_make)
    return consumers


# Where the RuntimeError strikes: the request it is raised for, and the aiokafka task it ends.
# A coordinator look-up ends the group coordination, and every later fetch raises its error; a
# fetch request ends the fetcher task, and `getmany` then returns nothing for ever, without an
# error (without the runtime's look at the fetcher, `kafka.fetcher_error`, that case stalls with
# 200 of 400 records applied).
FAILURES = {
    "coordination": ("FindCoordinatorRequest", "Unexpected error during coordination"),
    "fetch": ("FetchRequest", "Unexpected error during data retrieval"),
}


def _ended_task(consumer: AIOKafkaConsumer, where: str) -> Any:
    if where == "coordination":
        return consumer._coordinator._coordination_task
    return consumer._fetcher.error_future


@pytest.mark.parametrize("where", sorted(FAILURES))
async def test_a_consumer_whose_client_task_died_is_replaced_and_loses_nothing(
    where: str,
    settings: Settings,
    pool: asyncpg.Pool,
    owner: asyncpg.Connection,
    monkeypatch: pytest.MonkeyPatch,
    made: list[AIOKafkaConsumer],
) -> None:
    request_name, message = FAILURES[where]
    source, group = unique(f"renew-{where}-in"), unique(f"renew-{where}-group")
    table = await counts_table(owner, group)
    await make_topics(settings, source, partitions=2)
    counter = CONSUMERS_RENEWED.labels(group=group)
    first = await produce_numbers(settings, source, 200)
    flaky = Flaky(table, fail_on=None)
    async with flaky_running(settings, group, source, flaky) as task:
        await until_count(pool, counted(table), len(first), task)
        assert len(made) == 1
        broken = made[0]
        real_send = AIOKafkaClient.send
        armed = [True]

        async def send(self: AIOKafkaClient, node_id: int, request: Any, **kwargs: Any) -> Any:
            if armed[0] and type(request).__name__.startswith(request_name):
                armed[0] = False
                raise RuntimeError(CLOSED)
            return await real_send(self, node_id, request, **kwargs)

        monkeypatch.setattr(AIOKafkaClient, "send", send)
        if where == "coordination":
            # What a heartbeat that finds no coordinator does: the next step looks it up again.
            broken._coordinator.coordinator_dead()
        second = await produce_numbers(settings, source, 200)
        await until_count(pool, counted(table), len(first) + len(second), task)
    # The first client's task really ended in aiokafka, as in the fault suite.
    died = _ended_task(broken, where)
    assert died.done()
    assert isinstance(died.exception(), KafkaError)
    assert message in str(died.exception())
    assert armed == [False]
    # One replacement, counted; the service went on and stopped cleanly.
    assert len(made) == 2
    assert counter._value.get() == 1
    # Every record applied exactly once, each batch reported committed once.
    await assert_applied_once(pool, table, [*first, *second], flaky)
    assert flaky.abandoned == []
    await owner.execute(f"DROP TABLE {table}")


async def test_a_client_that_keeps_failing_stops_the_service_after_the_renewals_allowed(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, made: list[AIOKafkaConsumer]
) -> None:
    source, group = unique("renew-fail-in"), unique("renew-fail-group")
    await make_topics(settings, source, partitions=1)
    real_send = AIOKafkaClient.send

    async def send(self: AIOKafkaClient, node_id: int, request: Any, **kwargs: Any) -> Any:
        if type(request).__name__.startswith("FindCoordinatorRequest"):
            raise RuntimeError(CLOSED)
        return await real_send(self, node_id, request, **kwargs)

    monkeypatch.setattr(AIOKafkaClient, "send", send)
    flaky = Flaky("unused", fail_on=None)
    counter = CONSUMERS_RENEWED.labels(group=group)
    with pytest.raises(KafkaError, match="Unexpected error during coordination"):
        await asyncio.wait_for(
            run_consumer(
                settings, group_id=group, topics=[source], processor=flaky, stop=asyncio.Event()
            ),
            60,
        )
    # The first consumer and MAX_RENEWALS_IN_A_ROW replacements, each of which failed too.
    assert len(made) == 1 + MAX_RENEWALS_IN_A_ROW
    # Each replacement failed in its own start (the coordinator look-up), so none is counted
    # as a consumer renewed.
    assert counter._value.get() == 0
    assert all(c._closed for c in made)
