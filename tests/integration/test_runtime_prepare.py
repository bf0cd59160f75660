"""A processor's `prepare` runs on each fetch ahead of the batches' transactions, while the
batches before wait for PostgreSQL (the runtime fetches the next records before applying the
ones in hand). With failures and rewinds in between, every record still takes effect exactly
once and in its partition's order, and `process` is handed the prepared items."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Sequence
from typing import Any

import asyncpg
import msgspec
import orjson
import pytest

from marketplace.db import Conn
from marketplace.runtime import Transaction
from marketplace.runtime.service import run_consumer
from marketplace.settings import Settings
from tests.integration.kafka_helpers import make_topics, produce_numbers, unique, until_count

pytestmark = pytest.mark.integration


class Item(msgspec.Struct, frozen=True):
    offset: int
    timestamp: int
    n: int


class Prepping:
    """Inserts one row per record (a second apply of a record breaks the primary key and fails
    its batch for good); fails a batch after its first rows when it meets `fail_on`."""

    def __init__(self, table: str, fail_on: int, fail_times: int) -> None:
        self.table = table
        self.fail_on = fail_on
        self.failures_left = fail_times
        self.prepared = 0
        self.unprepared = 0

    def prepare(self, records: list[Any]) -> list[Item]:
        self.prepared += len(records)
        return [Item(r.offset, r.timestamp, orjson.loads(r.value)["n"]) for r in records]

    async def load(self, conn: Conn, topic: str, partition: int) -> None:
        return None

    async def process(self, tx: Transaction, state: None, records: Sequence[Any]) -> None:
        self.unprepared += sum(not isinstance(r, Item) for r in records)
        rows = [(tx.partition, r.offset, r.n) for r in records]
        await tx.conn.executemany(
            f"INSERT INTO {self.table} (partition, record_offset, n) VALUES ($1, $2, $3)", rows
        )
        if self.failures_left > 0 and any(r.n == self.fail_on for r in records):
            self.failures_left -= 1
            raise RuntimeError(f"poisoned by {self.fail_on}")
        return state


async def test_prepared_records_apply_once_in_order_across_failures(
    settings: Settings, pool: asyncpg.Pool, owner: asyncpg.Connection
) -> None:
    source, group = unique("prep-in"), unique("prep-group")
    table = "t_" + group.replace(".", "_").replace("-", "_")
    await owner.execute(
        f"CREATE TABLE {table} (seq bigserial, partition integer, record_offset bigint,"
        " n integer, PRIMARY KEY (partition, record_offset))"
    )
    await make_topics(settings, source, partitions=2)
    sent = await produce_numbers(settings, source, 600)
    processor = Prepping(table, fail_on=330, fail_times=2)
    small = dataclasses.replace(settings, consumer_max_batch=25, consumer_session_timeout_ms=6000)
    stop = asyncio.Event()
    task = asyncio.create_task(
        run_consumer(small, group_id=group, topics=[source], processor=processor, stop=stop)
    )
    try:
        await until_count(pool, f"SELECT count(*) FROM {table}", len(sent), task, timeout_s=90)
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
    rows = await pool.fetch(f"SELECT partition, record_offset, n FROM {table} ORDER BY seq")
    assert sorted(r["n"] for r in rows) == sorted(s.n for s in sent)
    for partition in {s.partition for s in sent}:
        offsets = [r["record_offset"] for r in rows if r["partition"] == partition]
        # Applied in the partition's order, each offset once, none skipped.
        assert offsets == list(range(len(offsets)))
        assert len(offsets) == sum(s.partition == partition for s in sent)
    assert processor.failures_left == 0
    assert processor.unprepared == 0
    assert processor.prepared >= len(sent)
    await owner.execute(f"DROP TABLE {table}")
