"""The consumer runtime under crashes: every input applied exactly once, every output published
at least once, against the real broker and database.

Workers run as separate processes (tests/integration/eo_worker.py) so that SIGKILL is real."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Awaitable, Callable

import asyncpg
import orjson
import pytest

from marketplace.cloudevents import Envelope
from marketplace.core.ids import derived_id
from marketplace.kafka import make_admin
from marketplace.settings import ROOT, Settings
from tests.integration.eo_worker import SCHEMA
from tests.integration.kafka_helpers import Sent, make_topics, produce_numbers, read_all, unique

pytestmark = pytest.mark.integration


class Worker:
    def __init__(self, group: str, source: str, sink: str, crash: str | None, batch: int) -> None:
        cmd: list[str] = [sys.executable, "-m", "tests.integration.eo_worker", group, source, sink]
        cmd += ["--batch", str(batch)]
        if crash:
            cmd += ["--crash", crash]
        env = {**os.environ, "MARKETPLACE_LOG_FORMAT": "json", "MARKETPLACE_LOG_LEVEL": "warning"}
        self.cmd = cmd
        self.proc = subprocess.Popen(cmd, cwd=ROOT, env=env)

    async def wait(self, limit_s: float) -> int:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + limit_s
        while self.proc.poll() is None:
            if loop.time() > deadline:
                self.proc.kill()
                self.proc.wait()
                raise TimeoutError(f"worker still running after {limit_s} s: {self.describe()}")
            await asyncio.sleep(0.1)
        return self.proc.returncode

    def describe(self) -> str:
        return " ".join(self.cmd)

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)

    def terminate(self) -> None:
        self.proc.send_signal(signal.SIGTERM)


async def applied(pool: asyncpg.Pool, group: str) -> int:
    value = await pool.fetchval(
        "SELECT coalesce(sum(count), 0) FROM eo_test_state WHERE group_id = $1", group
    )
    return int(value)


@pytest.fixture(autouse=True)
async def _worker_tables(owner: asyncpg.Connection) -> None:
    # The test's own tables: the owner role's to create (the services' role cannot).
    await owner.execute("SELECT pg_advisory_lock(42)")
    await owner.execute(SCHEMA)
    await owner.execute("SELECT pg_advisory_unlock(42)")


async def eventually(check: Callable[[], Awaitable[bool]], limit_s: float, what: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit_s
    while not await check():
        if loop.time() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        await asyncio.sleep(0.2)


async def assert_exactly_once(
    settings: Settings, pool: asyncpg.Pool, group: str, source: str, sink: str, sent: list[Sent]
) -> None:
    # Effects: each input event exactly once, with its own partition and number.
    effects = await pool.fetch(
        "SELECT event_id, partition, n FROM eo_test_effects WHERE group_id = $1", group
    )
    counts = Counter(r["event_id"] for r in effects)
    duplicates = {k: v for k, v in counts.items() if v > 1}
    assert not duplicates, f"inputs applied more than once: {list(duplicates.items())[:5]}"
    assert set(counts) == {s.id for s in sent}, "some inputs were never applied"
    by_id = {s.id: s for s in sent}
    assert all(by_id[r["event_id"]].partition == r["partition"] for r in effects)

    # State: the per-partition counters agree with what was sent to each partition.
    state = await pool.fetch(
        "SELECT partition, count, total FROM eo_test_state WHERE group_id = $1", group
    )
    expected_count = Counter(s.partition for s in sent)
    expected_total = Counter[int]()
    for s in sent:
        expected_total[s.partition] += s.n
    assert {r["partition"]: r["count"] for r in state} == dict(expected_count)
    assert {r["partition"]: r["total"] for r in state} == dict(expected_total)

    # Outputs: every derived event is in the sink topic (at least once), nothing foreign.
    records = await read_all(settings, sink)
    out_ids = Counter(Envelope.from_headers(r.headers).id for r in records)
    assert set(out_ids) == {derived_id(s.id) for s in sent}
    for r in records:
        cause = by_id[Envelope.from_headers(r.headers).subject or ""]
        assert r.key == cause.key
        assert orjson.loads(r.value) == {"n": cause.n}

    # Nothing left behind in the outbox, and Kafka's own offsets show no lag.
    left = await pool.fetchval("SELECT count(*) FROM outbox WHERE group_id = $1", group)
    assert left == 0
    stored = await pool.fetch(
        "SELECT partition, next_offset FROM consumer_offsets WHERE group_id = $1 AND topic = $2",
        group,
        source,
    )
    admin = make_admin(settings)
    await admin.start()
    try:
        committed = await admin.list_consumer_group_offsets(group)
    finally:
        await admin.close()
    kafka_offsets = {tp.partition: om.offset for tp, om in committed.items() if tp.topic == source}
    assert kafka_offsets == {r["partition"]: r["next_offset"] for r in stored}


@pytest.mark.timeout(300)
async def test_sigkill_at_every_point_leaves_each_input_applied_once(
    settings: Settings, pool: asyncpg.Pool
) -> None:
    source, sink, group = unique("eo-in"), unique("eo-out"), unique("eo-group")
    await make_topics(settings, source, sink)
    sent = await produce_numbers(settings, source, 1200)

    # Each scripted crash must happen after some progress and before the end.
    for crash in (
        "mid_batch:230",  # inside a transaction, part of the batch's effects written
        "before_db_commit:3",  # effects, outbox and offset written, not committed
        "after_db_commit:3",  # committed, outbox not published, Kafka offset not committed
        "after_publish:3",  # published, Kafka offset not committed
    ):
        before = await applied(pool, group)
        worker = Worker(group, source, sink, crash, batch=60)
        assert await worker.wait(limit_s=90) == -signal.SIGKILL, crash
        after = await applied(pool, group)
        assert before < after < len(sent), (crash, before, after)

    # A kill from outside at whatever moment it lands.
    before = await applied(pool, group)
    worker = Worker(group, source, sink, None, batch=60)

    async def progressed() -> bool:
        return await applied(pool, group) >= before + 120

    await eventually(progressed, 60, "progress before the external kill")
    worker.kill()
    assert await worker.wait(limit_s=10) == -signal.SIGKILL

    # The last worker finishes the topic and stops on SIGTERM with exit code 0.
    worker = Worker(group, source, sink, None, batch=60)

    async def done() -> bool:
        return await applied(pool, group) == len(sent)

    await eventually(done, 90, "all inputs applied")

    async def outbox_empty() -> bool:
        left = await pool.fetchval("SELECT count(*) FROM outbox WHERE group_id = $1", group)
        return bool(left == 0)

    await eventually(outbox_empty, 30, "the outbox to drain")
    worker.terminate()
    assert await worker.wait(limit_s=30) == 0
    await assert_exactly_once(settings, pool, group, source, sink, sent)


@pytest.mark.timeout(300)
async def test_two_instances_share_the_work_and_survive_one_being_killed(
    settings: Settings, pool: asyncpg.Pool
) -> None:
    source, sink, group = unique("eo-in"), unique("eo-out"), unique("eo-group")
    await make_topics(settings, source, sink, partitions=4)
    sent = await produce_numbers(settings, source, 2000)

    first = Worker(group, source, sink, None, batch=40)
    second = Worker(group, source, sink, None, batch=40)

    async def halfway() -> bool:
        return await applied(pool, group) >= 400

    await eventually(halfway, 90, "both instances making progress")
    first.kill()
    assert await first.wait(limit_s=10) == -signal.SIGKILL
    third = Worker(group, source, sink, None, batch=40)

    async def done() -> bool:
        return await applied(pool, group) == len(sent)

    await eventually(done, 120, "all inputs applied")

    async def outbox_empty() -> bool:
        return bool(
            await pool.fetchval("SELECT count(*) = 0 FROM outbox WHERE group_id = $1", group)
        )

    await eventually(outbox_empty, 30, "the outbox to drain")

    second.terminate()
    third.terminate()
    assert await second.wait(limit_s=30) == 0
    assert await third.wait(limit_s=30) == 0
    await assert_exactly_once(settings, pool, group, source, sink, sent)
