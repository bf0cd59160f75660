"""A batch that fails half-way through is rolled back, its in-memory state thrown away and
reloaded, and retried: every record still takes effect exactly once. A processor's after-commit
hooks hear of each batch once: committed, or not."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator, Sequence
from typing import Any

import asyncpg
import orjson
import pytest

from marketplace.db import Conn
from marketplace.runtime import Transaction
from marketplace.runtime.consumer import ProcessingFailed
from marketplace.runtime.service import run_consumer
from marketplace.settings import Settings
from tests.integration.kafka_helpers import (
    Sent,
    make_topics,
    produce_numbers,
    unique,
    until_count,
)

pytestmark = pytest.mark.integration


class Flaky:
    """Keeps a running total per partition in a mutable dict, changed in place, and fails once
    after changing it when it meets the record numbered `fail_on`."""

    def __init__(self, table: str, fail_on: int | None, fail_times: int = 1) -> None:
        self.table = table
        self.fail_on = fail_on
        self.failures_left = fail_times
        self.loads = 0
        # The numbers of the batches whose after-commit hooks said committed / not committed.
        self.committed: list[int] = []
        self.abandoned: list[list[int]] = []

    async def load(self, conn: Conn, topic: str, partition: int) -> dict[str, int]:
        self.loads += 1
        row = await conn.fetchrow(
            f"SELECT count, total FROM {self.table} WHERE partition = $1", partition
        )
        return {"count": row["count"], "total": row["total"]} if row else {"count": 0, "total": 0}

    async def process(
        self, tx: Transaction, state: dict[str, int], records: Sequence[Any]
    ) -> dict[str, int]:
        numbers = [orjson.loads(r.value)["n"] for r in records]
        tx.after_commit(
            lambda: self.committed.extend(numbers), lambda: self.abandoned.append(numbers)
        )
        for r in records:
            n = orjson.loads(r.value)["n"]
            state["count"] += 1
            state["total"] += n
            if n == self.fail_on and self.failures_left > 0:
                self.failures_left -= 1
                raise RuntimeError(f"poisoned by {n}")
        await tx.conn.execute(
            f"INSERT INTO {self.table} VALUES ($1, $2, $3) ON CONFLICT (partition)"
            " DO UPDATE SET count = EXCLUDED.count, total = EXCLUDED.total",
            tx.partition,
            state["count"],
            state["total"],
        )
        return state


async def counts_table(owner: asyncpg.Connection, group: str) -> str:
    """A new table of per-partition counts and totals for `Flaky`, named after the group."""
    table = "t_" + group.replace(".", "_").replace("-", "_")
    await owner.execute(
        f"CREATE TABLE {table} (partition integer PRIMARY KEY, count bigint, total bigint)"
    )
    return table


def counted(table: str) -> str:
    """The records `Flaky` has applied to `table`, all partitions together (for `until_count`)."""
    return f"SELECT coalesce(sum(count), 0) FROM {table}"


@contextlib.asynccontextmanager
async def flaky_running(
    settings: Settings, group: str, source: str, flaky: Flaky, session_timeout_ms: int = 6000
) -> AsyncIterator[asyncio.Task[Any]]:
    """`flaky` consuming `source` as `group` in batches of at most 50, stopped on the way out."""
    fast = dataclasses.replace(
        settings, consumer_max_batch=50, consumer_session_timeout_ms=session_timeout_ms
    )
    stop = asyncio.Event()
    task = asyncio.create_task(
        run_consumer(fast, group_id=group, topics=[source], processor=flaky, stop=stop)
    )
    try:
        yield task
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


async def assert_applied_once(
    pool: asyncpg.Pool, table: str, sent: Sequence[Sent], flaky: Flaky
) -> None:
    """Every record applied exactly once, and each one's batch reported committed once."""
    rows = await pool.fetch(f"SELECT count, total FROM {table}")
    assert sum(r["count"] for r in rows) == len(sent)
    assert sum(r["total"] for r in rows) == sum(s.n for s in sent)
    assert sorted(flaky.committed) == sorted(s.n for s in sent)


async def test_failed_batch_is_retried_from_reloaded_state(
    settings: Settings, pool: asyncpg.Pool, owner: asyncpg.Connection
) -> None:
    source, sink, group = unique("fail-in"), unique("fail-out"), unique("fail-group")
    table = await counts_table(owner, group)
    await make_topics(settings, source, sink, partitions=2)
    sent = await produce_numbers(settings, source, 400)
    flaky = Flaky(table, fail_on=250, fail_times=2)
    async with flaky_running(settings, group, source, flaky) as task:
        await until_count(pool, counted(table), len(sent), task)
    # Each record's batch was reported committed once; the two failed batches, as not.
    await assert_applied_once(pool, table, sent, flaky)
    assert flaky.failures_left == 0
    # 2 partitions loaded once each at the start, plus one reload per failure.
    assert flaky.loads == 2 + 2
    assert len(flaky.abandoned) == 2
    assert all(250 in numbers for numbers in flaky.abandoned)
    await owner.execute(f"DROP TABLE {table}")


async def test_a_batch_that_always_fails_stops_the_consumer(
    settings: Settings, pool: asyncpg.Pool, owner: asyncpg.Connection
) -> None:
    source, group = unique("poison-in"), unique("poison-group")
    table = await counts_table(owner, group)
    await make_topics(settings, source, partitions=1)
    await produce_numbers(settings, source, 20)
    strict = dataclasses.replace(settings, consumer_max_retries=2, consumer_max_batch=10)
    flaky = Flaky(table, fail_on=5, fail_times=1000)
    with pytest.raises(ProcessingFailed, match="failed 3 times: poisoned by 5"):
        await asyncio.wait_for(
            run_consumer(
                strict, group_id=group, topics=[source], processor=flaky, stop=asyncio.Event()
            ),
            60,
        )
    # Nothing of the poisoned batch took effect, and its hooks heard so, once per attempt.
    assert await pool.fetchval(f"SELECT count(*) FROM {table}") == 0
    assert flaky.committed == []
    assert len(flaky.abandoned) == 3
    assert all(5 in numbers for numbers in flaky.abandoned)
    await owner.execute(f"DROP TABLE {table}")
