"""A consumer process for the exactly-once tests: counts records, records effects, emits one
output event per input, and can crash itself (SIGKILL) at a chosen point.

    python -m tests.integration.eo_worker GROUP INPUT OUTPUT [--crash POINT:N] [--batch N]

Crash points: mid_batch (after N records of the current batch took effect inside the
transaction), before_db_commit, after_db_commit, after_publish (at the N-th time reached).
"""

from __future__ import annotations

import signal

_stop_requested = False


def _early_stop(signum: int, frame: object) -> None:
    # A SIGTERM while the process is still starting (the test may stop a late instance before
    # it is up) ends it cleanly, as it would a running one.
    global _stop_requested
    _stop_requested = True


if __name__ == "__main__":  # as a worker process only: the tests import SCHEMA from here
    signal.signal(signal.SIGTERM, _early_stop)

import argparse  # noqa: E402
import asyncio  # noqa: E402
import os  # noqa: E402
from collections.abc import Sequence  # noqa: E402
from dataclasses import dataclass, replace  # noqa: E402
from typing import Any  # noqa: E402

import asyncpg  # noqa: E402
import orjson  # noqa: E402

from marketplace.cloudevents import Envelope  # noqa: E402
from marketplace.core.ids import derived_id  # noqa: E402
from marketplace.db import Conn  # noqa: E402
from marketplace.logs import configure_logging  # noqa: E402
from marketplace.runtime import OutboxMessage, Transaction  # noqa: E402
from marketplace.runtime.service import run_consumer  # noqa: E402
from marketplace.settings import Settings  # noqa: E402

SCHEMA = """
CREATE TABLE IF NOT EXISTS eo_test_effects (
    group_id text NOT NULL, event_id text NOT NULL, topic text NOT NULL,
    partition integer NOT NULL, record_offset bigint NOT NULL, n bigint NOT NULL
);
CREATE TABLE IF NOT EXISTS eo_test_assigned (
    group_id text NOT NULL, pid integer NOT NULL, PRIMARY KEY (group_id, pid)
);
CREATE TABLE IF NOT EXISTS eo_test_state (
    group_id text NOT NULL, topic text NOT NULL, partition integer NOT NULL,
    count bigint NOT NULL, total bigint NOT NULL, PRIMARY KEY (group_id, topic, partition)
);
"""


def die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


@dataclass(frozen=True, slots=True)
class Counts:
    count: int = 0
    total: int = 0


class CountingProcessor:
    def __init__(self, group_id: str, output: str, crash_mid_batch_after: int | None) -> None:
        self.group_id = group_id
        self.output = output
        self.crash_mid_batch_after = crash_mid_batch_after
        self.seen = 0

    async def load(self, conn: Conn, topic: str, partition: int) -> Counts:
        # The test waits for this before it stops an instance that started late.
        await conn.execute(
            "INSERT INTO eo_test_assigned VALUES ($1, $2) ON CONFLICT DO NOTHING",
            self.group_id,
            os.getpid(),
        )
        row = await conn.fetchrow(
            "SELECT count, total FROM eo_test_state"
            " WHERE group_id = $1 AND topic = $2 AND partition = $3",
            self.group_id,
            topic,
            partition,
        )
        return Counts(row["count"], row["total"]) if row else Counts()

    async def process(self, tx: Transaction, state: Counts, records: Sequence[Any]) -> Counts:
        for record in records:
            envelope = Envelope.from_headers(record.headers)
            n = orjson.loads(record.value)["n"]
            await tx.conn.execute(
                "INSERT INTO eo_test_effects VALUES ($1, $2, $3, $4, $5, $6)",
                self.group_id,
                envelope.id,
                record.topic,
                record.partition,
                record.offset,
                n,
            )
            state = replace(state, count=state.count + 1, total=state.total + n)
            out = Envelope(
                id=derived_id(envelope.id),
                type="test.counted.v1",
                source="tests/eo_worker",
                time=envelope.time,
                subject=envelope.id,
            )
            tx.emit(OutboxMessage(self.output, record.key, orjson.dumps({"n": n}), out.headers()))
            self.seen += 1
            if self.crash_mid_batch_after is not None and self.seen >= self.crash_mid_batch_after:
                die()
        await tx.conn.execute(
            "INSERT INTO eo_test_state VALUES ($1, $2, $3, $4, $5)"
            " ON CONFLICT (group_id, topic, partition)"
            " DO UPDATE SET count = EXCLUDED.count, total = EXCLUDED.total",
            self.group_id,
            tx.topic,
            tx.partition,
            state.count,
            state.total,
        )
        return state


class Crasher:
    def __init__(self, point: str | None, after: int) -> None:
        self.point = point
        self.after = after
        self.reached = 0

    def __call__(self, point: str) -> None:
        if point == self.point:
            self.reached += 1
            if self.reached >= self.after:
                die()


async def main(args: argparse.Namespace) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if _stop_requested:
        return
    settings = replace(
        Settings.from_env(),
        consumer_max_batch=args.batch,
        consumer_session_timeout_ms=6000,
        outbox_sweep_interval_s=1.0,
        outbox_sweep_min_age_s=2.0,
    )
    configure_logging(settings)
    # Its tables are the owner role's to create (the services' role cannot).
    conn = await asyncpg.connect(settings.migrate_dsn)
    try:
        await conn.execute("SELECT pg_advisory_lock(42)")
        await conn.execute(SCHEMA)
        await conn.execute("SELECT pg_advisory_unlock(42)")
    finally:
        await conn.close()
    point, _, n = (args.crash or "").partition(":")
    processor = CountingProcessor(args.group, args.output, int(n) if point == "mid_batch" else None)
    crasher = Crasher(point if point != "mid_batch" else None, int(n or 1))
    await run_consumer(
        settings,
        group_id=args.group,
        topics=[args.input],
        processor=processor,
        fault=crasher,
        stop=stop,
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("group")
    parser.add_argument("input")
    parser.add_argument("output")
    parser.add_argument("--crash", help="POINT:N")
    parser.add_argument("--batch", type=int, default=100)
    asyncio.run(main(parser.parse_args()))
