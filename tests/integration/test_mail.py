"""E-mail (#20) against a real SMTP server on loopback (aiosmtpd), Kafka and PostgreSQL: the
notifier's notifications mailed to the right people in their language as valid MIME with a DKIM
signature that verifies; a person without a verified address skipped and counted; a working
one-click unsubscribe; a day's notifications in one digest at the person's hour; the relay away
and back, dead letters after the limit; a mailer killed mid-batch and restarted sending
everything, no notification under two Message-IDs; the preferences page, address verification
and a password reset asked for by e-mail."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import dkim  # type: ignore[import-untyped]
import pytest
from aiohttp.test_utils import TestClient, TestServer

from consumers.mailer import SKIPPED, TOPIC
from marketplace import accounts
from marketplace.db import connect
from marketplace.mail import outbox as mail_outbox
from marketplace.mail import prefs
from marketplace.mail.outbox import GROUP as PAGES_GROUP
from marketplace.mail.outbox import queue_account_mail
from marketplace.settings import ROOT, Settings
from producers.web.app import create_service
from schemas.partners import NotificationIssued
from tests.integration.api_helpers import Partner, eventually, register
from tests.integration.mail_helpers import (
    DOMAIN,
    SELECTOR,
    Arrived,
    Sink,
    dkim_key,
    env_of,
    free_port,
    mail_settings,
    mailer_running,
    person,
)
from tests.integration.notify_helpers import notifier_running, publish, start_at_end
from tests.integration.test_notifications import proposal
from tests.integration.test_pages_accounts import PASSWORD, accept, csrf_of

pytestmark = pytest.mark.integration
Client = TestClient[Any, Any]


def notes(partner: Partner, n: int, kind: str = "match.proposed") -> list[NotificationIssued]:
    return [
        NotificationIssued(
            notification_id=str(uuid.uuid4()),
            partner_id=partner.partner_id,
            kind=kind,
            subject_id=str(uuid.uuid4()),
            cause_event_id=str(uuid.uuid4()),
            summary=f"test notification {i}",
            data={"material_code": "150102", "quantity": {"amount": i + 1, "unit": "t"}},
        )
        for i in range(n)
    ]


def verifies(arrived: Arrived, record: bytes) -> bool:
    def dns(name: bytes, timeout: int = 5) -> bytes:
        assert name == f"{SELECTOR}._domainkey.{DOMAIN}.".encode()
        return record

    return bool(dkim.verify(arrived.raw, dnsfunc=dns))


def text_of(arrived: Arrived) -> str:
    body = arrived.msg.get_body(("plain",))
    assert body is not None
    return str(body.get_content())


async def test_notifications_reach_the_right_people_in_their_language_signed_and_unsubscribable(
    settings: Settings, tmp_path: Path
) -> None:
    _, record = dkim_key(tmp_path)
    with Sink() as sink:
        s = mail_settings(settings, tmp_path, sink.port)
        seller = await register(s, "sme")
        buyer = await register(s, "sme")
        ana = await person(s, seller.partner_id, locale="bg", role="admin", name="Ана")
        sven = await person(s, buyer.partner_id, locale="sv", name="Sven")
        rita = await person(s, buyer.partner_id, role="read-only", name="Rita")
        ulf = await person(s, buyer.partner_id, verified=False, name="Ulf")
        quiet = await person(s, seller.partner_id, name="Quiet")
        conn = await connect(s)
        try:
            await prefs.save_preferences(
                conn, quiet.person_id, prefs.Preferences(kinds={"match.proposed": "none"})
            )
        finally:
            await conn.close()
        skipped = SKIPPED.labels(reason="unverified")._value.get()
        async with notifier_running(s), mailer_running(s):
            await publish(s, proposal(seller, buyer))

            async def arrived() -> bool:
                return all(len(sink.to(p.email)) == 1 for p in (ana, sven, rita))

            await eventually(arrived, 60)
            await asyncio.sleep(1.0)  # nothing more comes
            assert sink.to(ulf.email) == []
            assert sink.to(quiet.email) == []
            # At least once: a notification published twice (another notifier group read the
            # same proposal) is counted twice, though mailed once (same Message-ID).
            assert SKIPPED.labels(reason="unverified")._value.get() >= skipped + 1
            [a], [v], [r] = sink.to(ana.email), sink.to(sven.email), sink.to(rita.email)
            assert a.msg["Subject"] == "Ново предложение за вашата организация: 150102"
            assert v.msg["Subject"] == "Ett nytt förslag till din organisation: 150102"
            assert r.msg["Subject"] == "A new proposal for your organisation: 150102"
            assert "Здравейте, Ана," in text_of(a)
            assert "Mängd: 4 t" in text_of(v)
            # Not confirmed yet: the distance (42 km exactly) is told only roughly (#19).
            assert "Avstånd: ≈ 40 km" in text_of(v)
            assert "Distance: ≈ 40 km" in text_of(r)
            assert all("42 km" not in text_of(m) for m in (a, v, r))
            assert len({a.message_id, v.message_id, r.message_id}) == 3
            for m in (a, v, r):
                assert m.msg.get_content_type() == "multipart/alternative"
                assert [p.get_content_type() for p in m.msg.iter_parts()] == [
                    "text/plain",
                    "text/html",
                ]
                assert m.message_id.endswith(f"@{DOMAIN}>")
                assert verifies(m, record), "the DKIM signature verifies"
            # Sven unsubscribes from proposals with one POST and no sign-in (RFC 8058).
            link = v.msg["List-Unsubscribe"].strip("<>")
            path = link[link.index("/app/") :]
            async with TestClient(TestServer(create_service(s))) as client:
                page = await client.get(path)
                assert page.status == 200
                assert "Avregistrera" in await page.text()
                conn = await connect(s)
                before = await prefs.preferences_of(conn, sven.person_id)
                await conn.close()
                assert before.choice("match.proposed") == "immediate", "a GET changes nothing"
                done = await client.post(path, data={"List-Unsubscribe": "One-Click"})
                assert done.status == 200
                forged = await client.post(path.replace("match.proposed", "match.expired"))
                assert forged.status == 404
            conn = await connect(s)
            try:
                chosen = await prefs.preferences_of(conn, sven.person_id)
            finally:
                await conn.close()
            assert chosen.choice("match.proposed") == "none"
            await publish(s, proposal(seller, buyer))

            async def second() -> bool:
                return len(sink.to(ana.email)) == 2 and len(sink.to(rita.email)) == 2

            await eventually(second, 60)
            await asyncio.sleep(1.0)
            assert len(sink.to(sven.email)) == 1


async def test_a_days_notifications_come_in_one_digest_at_the_persons_hour(
    settings: Settings, tmp_path: Path
) -> None:
    with Sink() as sink:
        s = mail_settings(settings, tmp_path, sink.port)
        partner = await register(s, "sme")
        eva = await person(s, partner.partner_id, locale="sv", name="Eva")
        conn = await connect(s)
        try:
            await prefs.save_preferences(
                conn,
                eva.person_id,
                prefs.Preferences(digest_hour=8, time_zone="Europe/Stockholm"),
            )
        finally:
            await conn.close()
        zone = ZoneInfo("Europe/Stockholm")
        clock = [datetime.now(UTC)]
        async with mailer_running(s, now=lambda: clock[0], digest_every_s=0.2) as group:
            sent = [*notes(partner, 3, "match.expired"), *notes(partner, 1, "feedback.requested")]
            await publish(s, *sent)
            conn = await connect(s)
            try:

                async def queued() -> bool:
                    n = await conn.fetchval(
                        "SELECT count(*) FROM mail_digest_items WHERE group_id = $1", group
                    )
                    return bool(n == 4)

                await eventually(queued, 60)
            finally:
                await conn.close()
            await asyncio.sleep(1.0)
            assert sink.to(eva.email) == [], "nothing before the hour"
            # The next morning at 08:30 in Stockholm.
            tomorrow = datetime.now(zone).date() + timedelta(days=1)
            clock[0] = datetime.combine(tomorrow, datetime.min.time(), zone) + timedelta(
                hours=8, minutes=30
            )

            async def digested() -> bool:
                return len(sink.to(eva.email)) == 1

            await eventually(digested, 30)
            await asyncio.sleep(1.0)
            [digest] = sink.to(eva.email)
        assert digest.msg["Subject"] == (
            f"Din dagliga sammanfattning för {tomorrow.isoformat()}: 4 aviseringar"
        )
        text = text_of(digest)
        assert "== Ett förslag gick ut obesvarat (3)" in text
        assert "== Hur gick leveransen? (1)" in text
        assert "~digest~" in digest.msg["List-Unsubscribe"]


async def test_the_relay_away_then_back_and_dead_letters_after_the_limit(
    settings: Settings, tmp_path: Path
) -> None:
    port = free_port()
    s = mail_settings(settings, tmp_path, port, mail_retry_base_s=0.5, mail_retry_cap_s=0.5)
    partner = await register(s, "sme")
    pia = await person(s, partner.partner_id, name="Pia")
    conn = await connect(s)
    try:
        async with mailer_running(s) as group:
            await publish(s, *notes(partner, 1))

            async def failed_twice() -> bool:
                n = await conn.fetchval(
                    "SELECT attempts FROM mail_deliveries WHERE group_id = $1", group
                )
                return bool(n is not None and n >= 2)

            await eventually(failed_twice, 30)
            with Sink(port) as sink:

                async def arrived() -> bool:
                    return len(sink.to(pia.email)) == 1

                await eventually(arrived, 30)
        row = await conn.fetchrow(
            "SELECT status, attempts FROM mail_deliveries WHERE group_id = $1", group
        )
        assert row is not None
        assert row["status"] == "sent"
        assert row["attempts"] >= 3
        # Nobody listening at all: dead after mail_max_attempts.
        dead = mail_settings(settings, tmp_path, free_port(), mail_max_attempts=2)
        async with mailer_running(dead) as group:
            await publish(dead, *notes(partner, 1))

            async def is_dead() -> bool:
                status = await conn.fetchval(
                    "SELECT status FROM mail_deliveries WHERE group_id = $1", group
                )
                return bool(status == "dead")

            await eventually(is_dead, 30)
        # The operator sends it again once the relay is back (`marketplace mail resend`): the
        # same stored message, under the same Message-ID.
        [letter] = await mail_outbox.dead_mail(conn, group_id=group)
        assert letter["kind"] == "match.proposed"
        assert letter["person_id"] == pia.person_id
        assert letter["attempts"] == 2
        with Sink() as sink:
            back = mail_settings(settings, tmp_path, sink.port)
            async with mailer_running(back, group=group):
                await mail_outbox.resend(conn, letter["message_id"], group_id=group)

                async def resent() -> bool:
                    return len(sink.to(pia.email)) == 1

                await eventually(resent, 30)
            [again] = sink.to(pia.email)
        assert again.msg["Message-ID"] == f"<{letter['message_id']}>"
        row = await conn.fetchrow(
            "SELECT status, attempts, dead_at FROM mail_deliveries WHERE group_id = $1", group
        )
        assert row is not None
        assert (row["status"], row["attempts"], row["dead_at"]) == ("sent", 1, None)
        with pytest.raises(mail_outbox.ResendRefused, match="is sent, not dead"):
            await mail_outbox.resend(conn, letter["message_id"], group_id=group)
        assert await mail_outbox.dead_mail(conn, group_id=group) == []
    finally:
        await conn.close()


async def test_account_e_mails_are_not_resent_and_unknown_ids_are_refused(
    settings: Settings, tmp_path: Path
) -> None:
    s = mail_settings(settings, tmp_path, free_port())
    partner = await register(s, "sme")
    ola = await person(s, partner.partner_id, name="Ola")
    group = f"test.mailer.{uuid.uuid4().hex[:8]}"  # no mailer sends under it
    conn = await connect(s)
    try:
        token = await accounts.issue_link(conn, ola.person_id, "reset")
        mid = await queue_account_mail(
            conn, s, person_id=ola.person_id, purpose="account.reset", token=token, group_id=group
        )
        # As the mailer leaves a message that failed every attempt.
        await conn.execute(
            "UPDATE mail_deliveries SET status = 'dead', attempts = 3, dead_at = now()"
            " WHERE group_id = $1 AND message_id = $2",
            group,
            mid,
        )
        with pytest.raises(mail_outbox.ResendRefused, match=r"account e-mail \(account.reset\)"):
            await mail_outbox.resend(conn, mid, group_id=group)
        assert await mail_outbox.resend_all(conn, group_id=group) == 0
        status = await conn.fetchval(
            "SELECT status FROM mail_deliveries WHERE group_id = $1 AND message_id = $2",
            group,
            mid,
        )
        assert status == "dead"
        with pytest.raises(mail_outbox.ResendRefused, match="no message nobody@x"):
            await mail_outbox.resend(conn, "<nobody@x>", group_id=group)
    finally:
        await conn.close()


async def test_a_mailer_killed_mid_batch_sends_everything_under_one_message_id_each(
    settings: Settings, tmp_path: Path
) -> None:
    with Sink(delay_s=0.2) as sink:
        s = mail_settings(settings, tmp_path, sink.port, mail_max_in_flight=4)
        partner = await register(s, "sme")
        people = [await person(s, partner.partner_id, name=f"P{i}") for i in range(2)]
        group = f"test.mailer.{uuid.uuid4().hex[:8]}"
        await start_at_end(s, group, [TOPIC])
        env = os.environ | env_of(s) | {"MARKETPLACE_LOG_FORMAT": "json"}

        def start() -> subprocess.Popen[bytes]:
            return subprocess.Popen(
                [sys.executable, "-m", "tests.integration.mail_worker", group], cwd=ROOT, env=env
            )

        sent = notes(partner, 40)
        await publish(s, *sent)  # before the worker: it then has them all at once
        worker = start()
        try:

            async def some() -> bool:
                return len(sink.arrived) >= 10

            await eventually(some, 60)
        finally:
            worker.send_signal(signal.SIGKILL)
            await asyncio.to_thread(worker.wait, 10)
        before = len(sink.arrived)
        assert before < 80, "killed mid-batch"
        worker = start()
        try:
            conn = await connect(s)
            try:

                async def everything() -> bool:
                    ids = {a.message_id for a in sink.arrived}
                    return len(ids) == 80

                await eventually(everything, 90)
                rows = await conn.fetch(
                    "SELECT message_id, notification_id, person_id, status FROM mail_deliveries"
                    " WHERE group_id = $1",
                    group,
                )
            finally:
                await conn.close()
        finally:
            worker.send_signal(signal.SIGTERM)
            await asyncio.to_thread(worker.wait, 30)
        # One row, so one Message-ID, per notification and person; everything that arrived
        # is one of them (a repeat after the kill carries the same one).
        assert len(rows) == 80
        assert len({(r["notification_id"], r["person_id"]) for r in rows}) == 80
        assert {r["notification_id"] for r in rows} == {n.notification_id for n in sent}
        assert {f"<{r['message_id']}>" for r in rows} == {a.message_id for a in sink.arrived}
        for p in people:
            assert len({a.message_id for a in sink.to(p.email)}) == 40


def link_in(message: bytes) -> str:
    found = re.search(rb"http://[^\s<>\"]+/app/[a-z/]+/[A-Za-z0-9_\-]+", message)
    assert found, message
    return found.group(0).decode()


async def queued_for(conn: Any, person_id: str, kind: str) -> bytes:
    row = await conn.fetchrow(
        "SELECT message FROM mail_deliveries WHERE group_id = $1 AND person_id = $2"
        " AND kind = $3 ORDER BY created_at DESC LIMIT 1",
        PAGES_GROUP,
        uuid.UUID(person_id),
        kind,
    )
    assert row is not None
    return bytes(row["message"])


async def test_preferences_verification_and_a_reset_by_e_mail_on_the_pages(
    settings: Settings, tmp_path: Path
) -> None:
    s = mail_settings(settings, tmp_path, free_port())
    partner = await register(s, "sme")
    conn = await connect(s)
    try:
        # Invited through the CLI's printed link: the address is not proven.
        ina = await person(s, partner.partner_id, verified=False, name="Ina")
        token = await accounts.issue_link(conn, ina.person_id, "invite")
        async with TestClient(TestServer(create_service(s))) as client:
            await accept(client, f"http://x/app/invite/{token}")
            assert not await prefs.is_verified(conn, ina.person_id)
            page = await client.get("/app/preferences")
            html = await page.text()
            assert "is not confirmed yet" in html
            form = {
                "csrf": csrf_of(html),
                "digest_hour": "7",
                "time_zone": "Europe/Sofia",
                "locale": "bg",
                "kind.match.proposed": "digest",
                "kind.match.expired": "none",
            }
            saved = await client.post("/app/preferences", data=form, allow_redirects=False)
            assert saved.status == 303
            chosen = await prefs.preferences_of(conn, ina.person_id)
            assert chosen.choice("match.proposed") == "digest"
            assert chosen.choice("match.expired") == "none"
            assert chosen.choice("award.won") == "immediate"
            assert (chosen.digest_hour, chosen.time_zone) == (7, "Europe/Sofia")
            page = await client.get("/app/preferences")
            html = await page.text()
            assert "Настройки за имейл" in html
            bad = await client.post(
                "/app/preferences", data={**form, "csrf": csrf_of(html), "digest_hour": "25"}
            )
            assert bad.status == 422
            sent = await client.post("/app/preferences/verify", data={"csrf": csrf_of(html)})
            assert sent.status == 200
            link = link_in(await queued_for(conn, ina.person_id, "account.verify"))
            done = await client.get(link[link.index("/app/") :])
            assert done.status == 200
            assert await prefs.is_verified(conn, ina.person_id)
            again = await client.get(link[link.index("/app/") :])
            assert again.status == 404
        # Invited by e-mail: accepting the link proves the address.
        ole = await person(s, partner.partner_id, verified=False, name="Ole")
        token = await accounts.issue_link(conn, ole.person_id, "invite")
        await queue_account_mail(
            conn, s, person_id=ole.person_id, purpose="account.invite", token=token
        )
        link = link_in(await queued_for(conn, ole.person_id, "account.invite"))
        assert link.endswith(f"/app/invite/{token}")
        async with TestClient(TestServer(create_service(s))) as client:
            await accept(client, link)
        assert await prefs.is_verified(conn, ole.person_id)
        # A reset asked for on the page: the same answer for an unknown address.
        async with TestClient(TestServer(create_service(s))) as client:
            answers = []
            for address in (ole.email, "nobody-" + ole.email):
                page = await client.get("/app/reset/")
                html = await page.text()
                asked = await client.post(
                    "/app/reset/", data={"csrf": csrf_of(html), "email": address}
                )
                assert asked.status == 200
                answers.append(await asked.text())
            assert answers[0] == answers[1]
            link = link_in(await queued_for(conn, ole.person_id, "account.reset"))
            await accept(client, link, PASSWORD + " again")
        assert await accounts.sign_in(conn, ole.email, PASSWORD + " again", "127.0.0.9")
    finally:
        await conn.execute(
            "DELETE FROM mail_deliveries WHERE group_id = $1 AND person_id IN"
            " (SELECT person_id FROM people WHERE partner_id = $2)",
            PAGES_GROUP,
            partner.partner_id,
        )
        await conn.close()
