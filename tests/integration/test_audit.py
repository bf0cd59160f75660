"""The audit log on the real broker and database: every record once and chained, the database
refusing changes, tampering found and pinpointed, exports verified offline, replay agreeing."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import pytest

from consumers.auditor import GROUP, TOPICS, Auditor, run_auditor
from loadtests.scratch import scratch_database, superuser_sql
from marketplace.audit.bundle import export_bundle, verify_bundle
from marketplace.audit.replay import replay, stages
from marketplace.audit.signing import create_key, public_bytes
from marketplace.audit.store import write_checkpoint
from marketplace.audit.verify import verify_database
from marketplace.db import connect
from marketplace.kafka import make_producer
from marketplace.runtime.service import run_consumer
from marketplace.settings import Settings
from producers.simulator.driver import simulate
from tests.integration.api_helpers import eventually, register, running_api
from tests.integration.kafka_helpers import caught_up, make_topics, unique
from tests.integration.test_auction import auction_running
from tests.integration.test_matcher import matcher_running

pytestmark = pytest.mark.integration

PARTITIONS = 4
PER_PARTITION = 10


def run_cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "marketplace.app.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=120,
    )


async def audited_topic(settings: Settings, group: str) -> str:
    """A topic of its own with PER_PARTITION records in each partition, audited by `group`."""
    topic = unique("audit")
    await make_topics(settings, topic, partitions=PARTITIONS)
    producer = make_producer(settings)
    await producer.start()
    try:
        for p in range(PARTITIONS):
            for n in range(PER_PARTITION):
                headers = [("ce_id", f"{topic}-{p}-{n}".encode()), ("ce_type", b"test.n.v1")]
                await producer.send_and_wait(
                    topic,
                    f'{{"n": {n}, "p": {p}}}'.encode(),
                    key=b"k",
                    partition=p,
                    headers=headers,
                )
    finally:
        await producer.stop()
    stop = asyncio.Event()
    task = asyncio.create_task(
        run_consumer(settings, group_id=group, topics=[topic], processor=Auditor(), stop=stop)
    )
    conn = await connect(settings)
    try:

        async def done() -> bool:
            n = await conn.fetchval("SELECT count(*) FROM audit_log WHERE topic = $1", topic)
            return bool(n == PARTITIONS * PER_PARTITION)

        await eventually(done, 60)
    finally:
        await conn.close()
        stop.set()
        await asyncio.wait_for(task, 30)
    return topic


async def test_the_application_role_cannot_change_the_log(settings: Settings) -> None:
    async with scratch_database(settings) as scratch:
        group = f"test.auditor.{uuid.uuid4().hex[:8]}"
        topic = await audited_topic(scratch, group)
        conn = await connect(scratch)
        try:
            for sql in (
                "UPDATE audit_log SET value = NULL WHERE topic = $1",
                "DELETE FROM audit_log WHERE topic = $1",
            ):
                with pytest.raises(asyncpg.InsufficientPrivilegeError):
                    await conn.execute(sql, topic)
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await conn.execute("TRUNCATE audit_log")
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await conn.execute("DELETE FROM audit_checkpoints")
            assert await conn.fetchval("SELECT count(*) FROM audit_log") == PARTITIONS * 10
        finally:
            await conn.close()
        # The trigger refuses even the superuser, as long as triggers run.
        name = scratch.dsn.rsplit("/", 1)[1]
        refused = superuser_sql(name, f"DELETE FROM audit_log WHERE topic = '{topic}'")
        assert refused.returncode != 0
        assert "append-only" in refused.stderr


async def test_tampering_is_found_and_pinpointed(settings: Settings, tmp_path: Path) -> None:
    key = create_key(tmp_path / "signing-key.pem")
    async with scratch_database(settings) as scratch:
        group = f"test.auditor.{uuid.uuid4().hex[:8]}"
        topic = await audited_topic(scratch, group)
        conn = await connect(scratch)
        try:
            assert await write_checkpoint(conn, key, group, datetime.now(UTC)) is not None
            clean = await verify_database(
                conn, trusted_keys={public_bytes(key)}, group_id=group, progress=False
            )
            assert clean.ok, clean.findings
            assert (clean.records, clean.chains, clean.checkpoints) == (40, 4, 1)
        finally:
            await conn.close()

        db = scratch.dsn.rsplit("/", 1)[1]
        where = f"topic = '{topic}' AND partition ="
        tampered = superuser_sql(
            db,
            # A superuser can switch triggers off; the chain still tells.
            "SET session_replication_role = replica",
            # 0: one payload byte changed
            f"UPDATE audit_log SET value = overlay(value placing '\\x39'::bytea from 7 for 1)"
            f" WHERE {where} 0 AND kafka_offset = 3",
            # 1: a record deleted
            f"DELETE FROM audit_log WHERE {where} 1 AND kafka_offset = 4",
            # 2: two records reordered
            f"UPDATE audit_log SET kafka_offset = -1 WHERE {where} 2 AND kafka_offset = 5",
            f"UPDATE audit_log SET kafka_offset = 5 WHERE {where} 2 AND kafka_offset = 6",
            f"UPDATE audit_log SET kafka_offset = 6 WHERE {where} 2 AND kafka_offset = -1",
            # 3: the last two records dropped
            f"DELETE FROM audit_log WHERE {where} 3 AND kafka_offset >= 8",
        )
        assert tampered.returncode == 0, tampered.stderr

        conn = await connect(scratch)
        try:
            report = await verify_database(
                conn, trusted_keys={public_bytes(key)}, group_id=group, progress=False
            )
        finally:
            await conn.close()
        first: dict[int, str] = {}
        for f in report.findings:
            assert f.topic == topic
            first.setdefault(f.partition, f"@{f.offset} {f.problem}")
        assert first[0].startswith("@3 altered")
        assert first[1].startswith("@5 broken link")
        assert "offset 3" in first[1]
        assert first[2].startswith("@5 broken link")
        assert first[3].startswith("@8 missing") or first[3].startswith("@9 missing")
        assert {f.offset for f in report.findings if f.partition == 3} == {8, 9}

        # The CLI says the same and exits non-zero.
        env = {
            **os.environ,
            "MARKETPLACE_DATABASE_URL": scratch.dsn,
            "MARKETPLACE_AUDIT_SIGNING_KEY": str(tmp_path / "signing-key.pem"),
        }
        cli = await asyncio.to_thread(
            run_cli,
            ["audit", "verify", "--group", group],
            env,
        )
        assert cli.returncode == 1, cli.stdout + cli.stderr
        assert f"BROKEN {topic}/0@3: altered" in cli.stdout
        assert f"BROKEN {topic}/1@5: broken link" in cli.stdout


async def test_an_export_verifies_offline_and_not_after_one_byte(
    settings: Settings, tmp_path: Path
) -> None:
    key = create_key(tmp_path / "signing-key.pem")
    bundle = tmp_path / "audit.jsonl"
    async with scratch_database(settings) as scratch:
        group = f"test.auditor.{uuid.uuid4().hex[:8]}"
        await audited_topic(scratch, group)
        conn = await connect(scratch)
        try:
            await write_checkpoint(conn, key, group, datetime.now(UTC))
            counts = await export_bundle(
                conn, bundle, since=None, until=None, key=key, progress=False
            )
        finally:
            await conn.close()
    # The database is gone: the bundle stands on its own.
    assert counts == {"events": 40, "checkpoints": 1}
    report = verify_bundle(bundle, trusted_keys={public_bytes(key)}, progress=False)
    assert report.ok, report.findings
    assert (report.events, report.chains, report.checkpoints) == (40, 4, 1)

    data = bundle.read_bytes()
    lines = data.split(b"\n")
    # One byte of one event's value (base64 "eyJu..." is '{"n'): a single character changes.
    target = next(i for i, line in enumerate(lines) if b'"kind":"event"' in line and i > 5)
    at = lines[target].index(b'"value":"') + len(b'"value":"') + 4
    damaged = bytearray(lines[target])
    damaged[at] = ord("A") if damaged[at] != ord("A") else ord("B")
    lines[target] = bytes(damaged)
    bundle.write_bytes(b"\n".join(lines))
    broken = verify_bundle(bundle, trusted_keys={public_bytes(key)}, progress=False)
    assert not broken.ok
    assert any(f.startswith(f"line {target + 1}:") for f in broken.findings), broken.findings
    assert any("digest" in f for f in broken.findings)

    # And through the CLI, with no database at all.
    env = {
        **os.environ,
        "MARKETPLACE_DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none",
        "MARKETPLACE_AUDIT_SIGNING_KEY": str(tmp_path / "signing-key.pem"),
    }
    cli = await asyncio.to_thread(
        run_cli,
        ["audit", "verify-export", str(bundle)],
        env,
    )
    assert cli.returncode == 1
    assert f"BROKEN line {target + 1}:" in cli.stdout


@asynccontextmanager
async def auditor_running(settings: Settings) -> AsyncIterator[None]:
    """The real auditor group on the shared log."""
    stop = asyncio.Event()
    task = asyncio.create_task(run_auditor(settings, stop))
    try:
        yield
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


async def test_replay_reproduces_every_decision_of_a_simulated_market(settings: Settings) -> None:
    # Short answer, bidding and reopening periods, so that in a few seconds proposals are
    # answered or expire by timer, confirmed matches become jobs, carriers bid, and auctions are
    # decided at their deadlines.
    quick = dataclasses.replace(
        settings,
        match_answer_period_s=2.5,
        scheduler_interval_s=0.2,
        auction_bidding_period_s=3.0,
        auction_reopen_period_s=2.0,
    )
    async with (
        running_api(quick) as client,
        matcher_running(quick) as matcher,
        auction_running(quick) as (_, auctioneer),
    ):
        since = datetime.now(UTC)
        stats = await simulate(
            quick,
            api_url=str(client.make_url("/")),
            rate=6.0,
            duration_s=10.0,
            seed=11,
            smes=24,
            carriers=4,
        )
        await asyncio.sleep(6)  # past the last answer periods and auction deadlines
        until = datetime.now(UTC)
        async with auditor_running(quick):
            await caught_up(quick, GROUP, TOPICS)
    assert stats.counts["offer"] + stats.counts["request"] >= 30
    assert stats.counts["proposed"] > 0
    groups = {"matching": matcher, "auction": auctioneer}
    conn = await connect(quick)
    try:
        report = await replay(conn, stages(quick, groups), since=since, until=until, progress=False)
        assert report.identical, report.differences
        assert report.by_stage["matching"] >= stats.counts["proposed"]
        if stats.counts["jobs"]:
            assert report.by_stage["auction"] >= 1  # every job ends in an award or a failure
        assert report.recorded >= report.decisions
        # A core configured differently decides differently, and replay says where.
        other = dataclasses.replace(quick, match_answer_period_s=999.0)
        wrong = await replay(conn, stages(other, groups), since=since, until=until, progress=False)
        assert not wrong.identical
        assert any("differs" in d for d in wrong.differences)
    finally:
        await conn.close()


async def test_the_auditor_writes_every_record_once_and_the_log_verifies(
    settings: Settings,
) -> None:
    partner = await register(settings, "sme", "Audit Trail OOD")
    async with auditor_running(settings):
        await caught_up(settings, GROUP, TOPICS)
    conn = await connect(settings)
    try:
        rows = await conn.fetch(
            "SELECT topic, partition, kafka_offset, count(*) OVER"
            " (PARTITION BY topic, partition, kafka_offset) AS copies"
            " FROM audit_log WHERE refs @> ARRAY[$1::text]",
            partner.partner_id,
        )
        assert [r["topic"] for r in rows] == ["partners.registry"]
        assert rows[0]["copies"] == 1
        duplicates = await conn.fetchval(
            "SELECT count(*) FROM (SELECT 1 FROM audit_log GROUP BY topic, partition,"
            " kafka_offset HAVING count(*) > 1) d"
        )
        assert duplicates == 0
        report = await verify_database(conn, progress=False)
        assert report.ok, report.findings[:5]
        assert report.records > 0
    finally:
        await conn.close()
