"""Which commits wait for the disk (issue #18, target 3): the runtime's batches do unless a
service asks otherwise, and the webhook worker's do not unless its setting asks; either way every
record takes effect once and in order."""

from __future__ import annotations

import asyncio
import dataclasses
import functools
from collections.abc import Sequence
from typing import Any

import asyncpg
import orjson
import pytest

from marketplace.db import Conn, create_pool
from marketplace.runtime import Transaction
from marketplace.runtime.service import run_consumer
from marketplace.settings import Settings
from tests.integration.kafka_helpers import make_topics, produce_numbers, unique, until_count

pytestmark = pytest.mark.integration


class Noting:
    """Stores each record's number and notes the batch transaction's synchronous_commit."""

    def __init__(self, table: str) -> None:
        self.table = table
        self.modes: set[str] = set()

    async def load(self, conn: Conn, topic: str, partition: int) -> None:
        return None

    async def process(self, tx: Transaction, state: None, records: Sequence[Any]) -> None:
        self.modes.add(await tx.conn.fetchval("SHOW synchronous_commit"))
        await tx.conn.executemany(
            f"INSERT INTO {self.table} (partition, record_offset, n) VALUES ($1, $2, $3)",
            [(tx.partition, r.offset, orjson.loads(r.value)["n"]) for r in records],
        )
        return state


async def consume(settings: Settings, owner: asyncpg.Connection, durable: bool | None) -> set[str]:
    """Runs a consumer over 200 records (with `synchronous_commit=durable`, or the default when
    None) until it has applied them; checks each once; returns the modes its batches saw."""
    source, group = unique("durable-in"), unique("durable-group")
    table = "t_" + group.replace(".", "_").replace("-", "_")
    await owner.execute(
        f"CREATE TABLE {table} (partition integer, record_offset bigint, n integer,"
        " PRIMARY KEY (partition, record_offset))"
    )
    await make_topics(settings, source, partitions=2)
    sent = await produce_numbers(settings, source, 200)
    processor = Noting(table)
    small = dataclasses.replace(settings, consumer_max_batch=20, consumer_session_timeout_ms=6000)
    stop = asyncio.Event()
    run = functools.partial(
        run_consumer, small, group_id=group, topics=[source], processor=processor, stop=stop
    )
    task = asyncio.create_task(run() if durable is None else run(synchronous_commit=durable))
    try:
        counted = f"SELECT count(*) FROM {table}"
        await until_count(owner, counted, len(sent), task, timeout_s=90, every_s=0.1)
    finally:
        stop.set()
        await asyncio.wait_for(task, 60)
    rows = await owner.fetch(f"SELECT partition, record_offset, n FROM {table}")
    assert sorted(r["n"] for r in rows) == sorted(s.n for s in sent)
    for partition in {s.partition for s in sent}:
        offsets = sorted(r["record_offset"] for r in rows if r["partition"] == partition)
        assert offsets == list(range(sum(s.partition == partition for s in sent)))
    await owner.execute(f"DROP TABLE {table}")
    return processor.modes


async def test_the_runtime_flushes_unless_asked_not_to(
    settings: Settings, owner: asyncpg.Connection
) -> None:
    assert await consume(settings, owner, None) == {"on"}
    assert await consume(settings, owner, False) == {"off"}


async def test_a_pool_without_synchronous_commit_still_commits_what_others_read(
    settings: Settings, owner: asyncpg.Connection
) -> None:
    quick = await create_pool(settings, synchronous_commit=False)
    usual = await create_pool(settings)
    table = unique("t_async").replace(".", "_").replace("-", "_")
    await owner.execute(f"CREATE TABLE {table} (n integer PRIMARY KEY)")
    try:
        async with quick.acquire() as conn:
            assert await conn.fetchval("SHOW synchronous_commit") == "off"
            async with conn.transaction():
                await conn.execute(f"INSERT INTO {table} VALUES (1)")
        async with usual.acquire() as conn:
            assert await conn.fetchval("SHOW synchronous_commit") == "on"
        # Committed without waiting for the disk, and visible to every other session at once.
        assert await owner.fetchval(f"SELECT count(*) FROM {table}") == 1
    finally:
        await quick.close()
        await usual.close()
        await owner.execute(f"DROP TABLE {table}")


def test_the_webhook_worker_does_not_wait_for_the_disk_unless_asked() -> None:
    assert Settings.from_env({}).webhook_synchronous_commit is False
    flushed = Settings.from_env({"MARKETPLACE_WEBHOOK_SYNCHRONOUS_COMMIT": "true"})
    assert flushed.webhook_synchronous_commit is True
    # A producer sends a lone record at once (no linger on the way to a webhook).
    assert Settings.from_env({}).producer_linger_ms == 0
