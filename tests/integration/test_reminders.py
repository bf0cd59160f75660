"""Reminders (#20 item 3) against real Kafka, PostgreSQL and an SMTP server on loopback: a
proposal nobody on one side answered brings that side, and only that side, one reminder by
e-mail a day before it expires, through the scheduler's timer, the notifications and the
mailer; the reminders consumer restarted and made to read the whole stretch again sends nothing
more, and a second consumer group deciding the same log gives the same notification, which the
mailer does not send twice."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import msgspec
import pytest

from consumers.reminders import TOPICS, Reminders
from marketplace.cloudevents import Envelope
from marketplace.core.reminders import PROPOSAL, TimerRang
from marketplace.db import connect
from marketplace.runtime.consumer import start_group_at
from marketplace.runtime.service import run_consumer
from marketplace.settings import Settings
from producers.scheduler import run_scheduler
from schemas import topics
from schemas.listings import MatchAccepted
from schemas.partners import NotificationIssued
from tests.integration.api_helpers import eventually, register
from tests.integration.kafka_helpers import caught_up, end_offsets, read_since
from tests.integration.mail_helpers import Sink, mail_settings, mailer_running, person
from tests.integration.notify_helpers import publish
from tests.integration.test_notifications import proposal

pytestmark = pytest.mark.integration


@asynccontextmanager
async def reminders_running(settings: Settings, group: str) -> AsyncIterator[None]:
    stop = asyncio.Event()
    task = asyncio.create_task(
        run_consumer(
            settings,
            group_id=group,
            topics=TOPICS,
            processor=Reminders(settings, group),
            stop=stop,
        )
    )
    try:
        yield
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


@asynccontextmanager
async def scheduler_running(settings: Settings) -> AsyncIterator[None]:
    stop = asyncio.Event()
    task = asyncio.create_task(run_scheduler(settings, stop))
    try:
        yield
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


async def starts(settings: Settings) -> dict[tuple[str, int], int]:
    return {(t, p): o for t in TOPICS for p, o in (await end_offsets(settings, t)).items()}


async def reminders_of(
    settings: Settings, since: dict[int, int], match_id: str
) -> list[tuple[str, NotificationIssued]]:
    """The reminder notifications of the match published since `since`, with their ids."""
    out = []
    for record in await read_since(settings, topics.NOTIFICATIONS, since):
        note = msgspec.json.decode(record.value, type=NotificationIssued)
        if note.kind == PROPOSAL and note.subject_id == match_id:
            out.append((Envelope.from_headers(record.headers).id, note))
    return out


async def test_a_proposal_reminder_reaches_the_silent_side_once(
    settings: Settings, tmp_path: Path
) -> None:
    with Sink() as sink:
        s = dataclasses.replace(
            mail_settings(settings, tmp_path, sink.port), scheduler_interval_s=0.2
        )
        seller = await register(s, "sme")
        buyer = await register(s, "sme")
        sam = await person(s, seller.partner_id, name="Sam")
        bo = await person(s, buyer.partner_id, name="Bo")
        group = f"test.reminders.{uuid.uuid4().hex[:8]}"
        begin = await starts(s)
        conn = await connect(s)
        try:
            await start_group_at(conn, group, begin)
        finally:
            await conn.close()
        notified = await end_offsets(s, topics.NOTIFICATIONS)
        # A proposal that expires in a day and 4 seconds: its reminder is due in 4 seconds.
        offered = msgspec.structs.replace(
            proposal(seller, buyer),
            expires_at=datetime.now(UTC) + timedelta(hours=24, seconds=4),
        )
        answered = MatchAccepted(
            match_id=offered.match_id,
            partner_id=buyer.partner_id,
            actor_id=buyer.partner_id,
            material_code=offered.material_code,
        )
        async with mailer_running(s) as mailer:
            async with reminders_running(s, group), scheduler_running(s):
                await publish(s, offered, answered)

                async def arrived() -> bool:
                    return len(sink.to(sam.email)) == 1

                await eventually(arrived, 60)
                [mail] = sink.to(sam.email)
                assert mail.msg["Subject"] == "Reminder: a proposal expires in 24 hours: 150102"
                body = mail.msg.get_body(("plain",))
                assert body is not None
                text = str(body.get_content())
                assert "Answer by:" in text
                assert "Your organisation has not answered this proposal yet." in text
                await caught_up(s, group, TOPICS)
                assert sink.to(bo.email) == [], "the buyer answered: no reminder"
                # The timer's fact holds when the scheduler published it (the record's
                # timestamp), a moment after it was due.
                conn = await connect(s)
                try:
                    body = await conn.fetchval(
                        "SELECT body::text FROM reminder_facts WHERE group_id = $1"
                        " AND subject_id = $2 AND kind = 'TimerRang'",
                        group,
                        offered.match_id,
                    )
                finally:
                    await conn.close()
                rang = msgspec.json.decode(body, type=TimerRang)
                assert rang.published is not None
                assert timedelta(0) <= rang.published - rang.at < timedelta(seconds=30)

            # Restarted and made to read everything again: nothing more is decided.
            conn = await connect(s)
            try:
                for (topic, partition), offset in begin.items():
                    await conn.execute(
                        "UPDATE consumer_offsets SET next_offset = $4 WHERE group_id = $1"
                        " AND topic = $2 AND partition = $3",
                        group,
                        topic,
                        partition,
                        offset,
                    )
            finally:
                await conn.close()
            async with reminders_running(s, group):
                await caught_up(s, group, TOPICS)
            once = await reminders_of(s, notified, offered.match_id)
            assert [n.partner_id for _, n in once] == [seller.partner_id]

            # Another group deciding the same log gives the seller the same notification (same
            # id and content), which the mailer, meeting it again, does not send twice. (Which
            # of two topics' records a new group reads first is not fixed, so only the seller's
            # is compared: see docs/developers/reminders.md.)
            other = f"test.reminders.{uuid.uuid4().hex[:8]}"
            conn = await connect(s)
            try:
                await start_group_at(conn, other, begin)
            finally:
                await conn.close()
            async with reminders_running(s, other):
                await caught_up(s, other, TOPICS)
            twice = [
                (i, n)
                for i, n in await reminders_of(s, notified, offered.match_id)
                if n.partner_id == seller.partner_id
            ]
            assert len(twice) == 2
            assert twice[0][0] == twice[1][0]
            assert twice[0][1] == twice[1][1]
            await caught_up(s, mailer, [topics.NOTIFICATIONS])
            await asyncio.sleep(1.0)
            assert len(sink.to(sam.email)) == 1
