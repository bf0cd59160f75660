"""A rebalance while PostgreSQL is away: the runner's assignment reads the group's offsets from
PostgreSQL, and a failure there once left partitions assigned in Kafka but unknown to the
runner (aiokafka logs a listener's error and goes on), so they were never applied. The fault
suite saw a consumer stall so after PostgreSQL's restart. Here the offsets' read fails as a
refused connection would, three times, while the consumer joins the real broker's group."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import asyncpg
import pytest

from marketplace.runtime.consumer import ExactlyOnceConsumer
from marketplace.runtime.service import run_consumer
from marketplace.settings import Settings
from tests.integration.kafka_helpers import make_topics, produce_numbers, unique
from tests.integration.test_runtime_failures import Flaky, counts_table

pytestmark = pytest.mark.integration


async def test_an_assignment_while_postgres_is_away_waits_for_it_and_loses_nothing(
    settings: Settings,
    pool: asyncpg.Pool,
    owner: asyncpg.Connection,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    source, group = unique("assign-away-in"), unique("assign-away-group")
    table = await counts_table(owner, group)
    await make_topics(settings, source, partitions=2)
    sent = await produce_numbers(settings, source, 300)
    real_read = ExactlyOnceConsumer._read_offsets
    refused = [3]

    async def read_offsets(self: ExactlyOnceConsumer[Any]) -> list[asyncpg.Record]:
        if refused[0] > 0:
            refused[0] -= 1
            raise ConnectionRefusedError(111, "Connection refused")
        return await real_read(self)

    monkeypatch.setattr(ExactlyOnceConsumer, "_read_offsets", read_offsets)
    flaky = Flaky(table, fail_on=None)
    fast = dataclasses.replace(settings, consumer_max_batch=50, consumer_session_timeout_ms=10000)
    stop = asyncio.Event()
    task = asyncio.create_task(
        run_consumer(fast, group_id=group, topics=[source], processor=flaky, stop=stop)
    )
    loop = asyncio.get_running_loop()
    try:
        deadline = loop.time() + 60
        while True:
            count = await pool.fetchval(f"SELECT coalesce(sum(count), 0) FROM {table}")
            if count >= len(sent):
                break
            assert loop.time() < deadline, f"{count} of {len(sent)} records applied"
            assert not task.done(), task.exception()
            await asyncio.sleep(0.2)
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
    assert refused == [0]  # the assignment really met the refusals
    rows = await pool.fetch(f"SELECT count, total FROM {table}")
    assert sum(r["count"] for r in rows) == len(sent)
    assert sum(r["total"] for r in rows) == sum(s.n for s in sent)
    assert sorted(flaky.committed) == sorted(s.n for s in sent)
    await owner.execute(f"DROP TABLE {table}")
