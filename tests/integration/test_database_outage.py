"""A consumer whose PostgreSQL goes away pauses, and resumes where it was when the database is
back: nothing lost, nothing applied twice, and the process never gave up."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid

import asyncpg
import pytest

from consumers.projector import TOPICS, Projector
from marketplace.cloudevents import Envelope
from marketplace.db import connect
from marketplace.metrics import REGISTRY, not_ready
from marketplace.runtime.service import run_consumer
from marketplace.settings import Settings
from tests.faults import proxy
from tests.integration.api_helpers import eventually, register
from tests.integration.eo_worker import SCHEMA, CountingProcessor
from tests.integration.kafka_helpers import (
    make_topics,
    produce_numbers,
    read_all,
    start_at_session_start,
    unique,
)

pytestmark = pytest.mark.integration


async def test_a_consumer_waits_out_a_database_outage(settings: Settings) -> None:
    group = f"test.outage.{uuid.uuid4().hex[:8]}"
    await start_at_session_start(settings, group, TOPICS)
    prefix = f"Outage {uuid.uuid4().hex[:6]}"
    async with proxy("127.0.0.1", settings.pg_port) as pg:
        through = dataclasses.replace(
            settings,
            database_url=(
                f"postgresql://{settings.db_app_user}:{settings.db_app_password}"
                f"@127.0.0.1:{pg.port}/{settings.db_name}"
            ),
            consumer_max_retries=1,  # a real failure would stop it at once
        )
        stop = asyncio.Event()
        consumer = asyncio.create_task(
            run_consumer(
                through, group_id=group, topics=TOPICS, processor=Projector(group), stop=stop
            )
        )
        conn = await connect(settings)  # straight to the database, not through the proxy
        try:

            async def applied() -> int:
                n = await conn.fetchval(
                    "SELECT count(*) FROM partners WHERE name LIKE $1", prefix + "%"
                )
                return int(n)

            for n in range(5):
                await register(settings, "sme", f"{prefix} before {n}")

            async def first_five() -> bool:
                return await applied() == 5

            await eventually(first_five, 60)
            pg.cut()
            for n in range(5):
                await register(settings, "sme", f"{prefix} during {n}")

            async def waiting() -> bool:
                return waiting_for_database(group) == 1

            await eventually(waiting, 30)
            assert f"consumer:{group}" in not_ready()
            # What this consumer has done is its stored offsets: the projected rows are shared
            # with any other projector on the same database, which may apply "during" rows.
            held = await stored(conn, group)
            await asyncio.sleep(3)
            assert not consumer.done(), "the consumer gave up during the outage"
            assert await stored(conn, group) == held, "offsets moved without the database"
            pg.restore()

            async def all_ten() -> bool:
                return await applied() == 10

            await eventually(all_ten, 60)

            async def moved_on() -> bool:
                return await stored(conn, group) > held

            await eventually(moved_on, 60)
            await eventually(lambda: _true(waiting_for_database(group) == 0), 30)
            dupes = await conn.fetchval(
                "SELECT count(*) FROM (SELECT name FROM partners WHERE name LIKE $1"
                " GROUP BY name HAVING count(*) > 1) d",
                prefix + "%",
            )
            assert dupes == 0
        finally:
            await conn.close()
            stop.set()
            await asyncio.wait_for(consumer, 30)


async def stored(conn: asyncpg.Connection, group: str) -> int:
    """The sum of the group's stored offsets: it grows only when a batch commits."""
    n = await conn.fetchval(
        "SELECT coalesce(sum(next_offset), 0) FROM consumer_offsets WHERE group_id = $1", group
    )
    return int(n)


def waiting_for_database(group: str) -> float | None:
    return REGISTRY.get_sample_value("marketplace_consumer_waiting_for_database", {"group": group})


async def _true(value: bool) -> bool:
    return value


async def test_a_database_lost_right_after_a_commit_neither_stops_the_consumer_nor_loses_events(
    settings: Settings,
) -> None:
    """PostgreSQL goes away between a batch's commit and the deletion of its published outbox
    rows (found by the fault suite: the consumer used to stop there with CannotConnectNowError).
    The consumer carries on; the rows stay in the outbox and the sweeper publishes them again,
    so every record is applied once and every output published at least once."""
    group = f"test.outage-commit.{uuid.uuid4().hex[:8]}"
    source, output = unique("outage-in"), unique("outage-out")
    await make_topics(settings, source, output)
    # The test's tables are the owner role's to create; the consumer below is the services' role.
    conn = await connect(settings, dsn=settings.migrate_dsn)
    try:
        await conn.execute("SELECT pg_advisory_lock(42)")
        await conn.execute(SCHEMA)
        await conn.execute("SELECT pg_advisory_unlock(42)")
        async with proxy("127.0.0.1", settings.pg_port) as pg:
            through = dataclasses.replace(
                settings,
                database_url=(
                    f"postgresql://{settings.db_app_user}:{settings.db_app_password}"
                    f"@127.0.0.1:{pg.port}/{settings.db_name}"
                ),
                consumer_max_retries=1,
                outbox_sweep_interval_s=1.0,
                outbox_sweep_min_age_s=1.0,
            )

            def cut_after_first_commit(point: str) -> None:
                if point == "after_db_commit" and pg.cuts == 0:
                    pg.cut()

            sent = await produce_numbers(settings, source, 60)
            stop = asyncio.Event()
            consumer = asyncio.create_task(
                run_consumer(
                    through,
                    group_id=group,
                    topics=[source],
                    processor=CountingProcessor(group, output, None),
                    fault=cut_after_first_commit,
                    stop=stop,
                )
            )
            try:

                async def cut_once() -> bool:
                    return pg.cuts == 1

                await eventually(cut_once, 60)
                await asyncio.sleep(2)  # the outage's length, not a check
                assert not consumer.done(), f"the consumer stopped: {consumer.exception()!r}"
                pg.restore()

                async def all_applied() -> bool:
                    n = await conn.fetchval(
                        "SELECT count(*) FROM eo_test_effects WHERE group_id = $1", group
                    )
                    left = await conn.fetchval(
                        "SELECT count(*) FROM outbox WHERE group_id = $1", group
                    )
                    return int(n) == len(sent) and int(left) == 0

                await eventually(all_applied, 90)
                assert not consumer.done()
            finally:
                stop.set()
                await asyncio.wait_for(consumer, 30)
        applied = await conn.fetch(
            "SELECT event_id, count(*) AS n FROM eo_test_effects WHERE group_id = $1"
            " GROUP BY event_id",
            group,
        )
        assert {r["event_id"] for r in applied} == {s.id for s in sent}
        assert all(r["n"] == 1 for r in applied)
        published = {
            Envelope.from_headers(r.headers).subject for r in await read_all(settings, output)
        }
        assert published == {s.id for s in sent}
    finally:
        await conn.close()
