"""An organisation's data exported and erased, and retention applied (#21 item 8), against the
real services: a member writes in a deal room through the pages with a photo, the organisation
writes with its API key, the mailer holds an invitation to the member; the export holds all of
it; after `marketplace partners erase` none of it can be read in any table of PostgreSQL, in
the audit log or on Kafka (where it never was), the deal room shows the messages as erased, and
`marketplace audit verify` still passes."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import orjson
import pytest

from consumers import deals
from consumers.auditor import GROUP, TOPICS
from marketplace import accounts
from marketplace.app.privacy import apply_retention
from marketplace.db import Conn, connect
from marketplace.settings import Settings
from producers.web.app import create_service
from schemas import topics
from tests.integration.api_helpers import consumer_running, eventually, register, running_api
from tests.integration.kafka_helpers import caught_up, end_offsets, read_since
from tests.integration.test_audit import auditor_running
from tests.integration.test_deal_room import confirmed_match
from tests.integration.test_pages_accounts import accept, csrf_of, plain

pytestmark = pytest.mark.integration
PNG = b"\x89PNG\r\n\x1a\n"


def marketplace_cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = os.environ | {"MARKETPLACE_WEB_BASE_URL": "http://127.0.0.1:1"}
    return subprocess.run(
        [sys.executable, "-m", "marketplace.app.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )


async def tables_holding(conn: Conn, needles: list[str], since: datetime) -> list[str]:
    """Every table (and the audit log's records since `since`) a row of which holds one of the
    needles, as text (bytea shows as hex, so a needle may be hex too)."""
    names = [
        r["table_name"]
        for r in await conn.fetch(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
            " AND table_type = 'BASE TABLE' AND table_name !~ '^audit_log_'"
            " AND table_name <> 'schema_migrations'"
        )
    ]
    patterns = [f"%{n}%" for n in needles]
    found = []
    for name in names:
        recent = " AND recorded_at >= $2" if name == "audit_log" else ""
        args: list[Any] = [patterns, since] if recent else [patterns]
        sql = f'SELECT count(*) FROM "{name}" t WHERE t::text ILIKE ANY($1){recent}'
        if await conn.fetchval(sql, *args):
            found.append(name)
    return found


async def test_an_organisation_is_exported_and_erased_and_the_log_still_verifies(
    settings: Settings,
) -> None:
    settings = plain(settings)
    started = datetime.now(UTC) - timedelta(seconds=5)
    seller = await register(settings, "sme", "Erasable Textiles OOD")
    buyer = await register(settings, "sme", "Keeps Its Records AB")
    mark = uuid.uuid4().hex
    name = f"Mira Stoyanova {mark[:6]}"
    address = f"mira-{mark[:12]}@example.org"
    said = f"Call me on +359 88 {mark[6:12]} about the bales"
    said_by_key = f"Our gate code is {mark[12:20]}"
    photo = PNG + f"photo-{mark}".encode()
    since = {t.name: await end_offsets(settings, t.name) for t in topics.TOPICS}

    invited = marketplace_cli(
        "people", "invite", address, "--name", name, "--partner", seller.partner_id, "--mail"
    )
    assert invited.returncode == 0, invited.stderr
    link = invited.stdout.strip().split(": ", 1)[1]
    async with (
        running_api(settings, create_service) as client,
        consumer_running(settings, "deals", deals.TOPICS, deals.DealRooms),
    ):
        match_id, _job = await confirmed_match(settings, seller, buyer)

        async def room_open() -> bool:
            r = await client.get(f"/v1/matches/{match_id}/messages", headers=buyer.auth)
            return r.status == 200

        await eventually(room_open, 30)
        await accept(client, link)

        async def page_open() -> bool:
            # The page also needs the seller's registration in the read model, which this
            # test's projector replays on another topic than the match (CI once asked first).
            return (await client.get(f"/app/deals/{match_id}")).status == 200

        await eventually(page_open, 30)
        page = await client.get(f"/app/deals/{match_id}")
        assert page.status == 200
        form = aiohttp.FormData()
        form.add_field("csrf", csrf_of(await page.text()))
        form.add_field("text", said)
        form.add_field("attachment", photo, filename="bales.png", content_type="image/png")
        sent = await client.post(
            f"/app/deals/{match_id}/messages", data=form, allow_redirects=False
        )
        assert sent.status == 303, await sent.text()
        by_key = await client.post(
            f"/v1/matches/{match_id}/messages", json={"text": said_by_key}, headers=seller.auth
        )
        assert by_key.status == 202, await by_key.text()

        async def both_shown() -> bool:
            r = await client.get(f"/v1/matches/{match_id}/messages", headers=buyer.auth)
            texts = [m["text"] for m in (await r.json())["messages"]]
            return said in texts and said_by_key in texts

        await eventually(both_shown, 30)
        room = await (
            await client.get(f"/v1/matches/{match_id}/messages", headers=buyer.auth)
        ).json()
        (with_photo,) = [m for m in room["messages"] if m["attachments"]]
        href = with_photo["attachments"][0]["href"]
        assert (await (await client.get(href, headers=buyer.auth)).read()) == photo

        # The audit log has every record so far (the organisation's registration among them).
        async with auditor_running(settings):
            await caught_up(settings, GROUP, TOPICS, limit_s=300)
        # The export: the person with the mail the exchange holds, both texts, the photo.
        exported = marketplace_cli("partners", "export", seller.partner_id)
        assert exported.returncode == 0, exported.stderr
        data = orjson.loads(exported.stdout)
        (person,) = data["people"]
        assert (person["account"]["email"], person["account"]["display_name"]) == (address, name)
        assert [m["kind"] for m in person["mail_messages"]] == ["account.invite"]
        assert person["mail_messages"][0]["recipient"] == address
        assert [m["text"] for m in person["deal_messages"]] == [said]
        assert person["deal_messages"][0]["attachments"][0]["name"] == "bales.png"
        assert said_by_key in {t["body"] for t in data["tables"]["deal_texts"]}
        assert data["tables"]["partners"][0]["name"] == "Erasable Textiles OOD"
        assert all("secret_hash" not in k for k in data["tables"]["api_keys"])
        assert "partners.partner.registered.v1" in {e["ce_type"] for e in data["events"]}

        refused = marketplace_cli("partners", "erase", seller.partner_id)
        assert refused.returncode == 2  # without --yes it only says what it would do
        erased = marketplace_cli("partners", "erase", seller.partner_id, "--yes")
        assert erased.returncode == 0, erased.stderr
        assert "people 1" in erased.stdout

        # The room keeps the messages as the log has them, their content erased.
        room = await (
            await client.get(f"/v1/matches/{match_id}/messages", headers=buyer.auth)
        ).json()
        assert sorted(m["text_status"] for m in room["messages"]) == ["erased", "erased"]
        gone = await client.get(href, headers=buyer.auth)
        assert gone.status == 404
        assert (await gone.json())["type"].endswith("/erased")
        # Its keys no longer open anything.
        assert (await client.get("/v1/me", headers=seller.auth)).status == 401

    # The audit log has every record of the test, holds none of it, and still verifies.
    async with auditor_running(settings):
        await caught_up(settings, GROUP, TOPICS, limit_s=300)
    needles = [address, name, said, said_by_key, photo.hex()[16:], mark[:20]]
    conn = await connect(settings)
    try:
        assert await tables_holding(conn, needles, started) == []
        assert not await conn.fetchval(
            "SELECT count(*) FROM people WHERE partner_id = $1", seller.partner_id
        )
    finally:
        await conn.close()
    for name_of_topic, offsets in since.items():
        for record in await read_since(settings, name_of_topic, offsets):
            value = bytes(record.value or b"")
            assert not any(n.encode() in value for n in needles[:5]), name_of_topic
            assert photo not in value
    # The records of the test's time (the shared database also holds other tests' checkpoints
    # signed by keys of their own): every chain link and checkpoint of it verifies.
    verified = marketplace_cli("audit", "verify", "--from", started.isoformat())
    assert verified.returncode == 0, verified.stdout[-2000:] + verified.stderr[-2000:]
    assert "intact" in verified.stdout
    assert marketplace_cli("partners", "export", "no-such-partner").returncode == 1


async def test_retention_deletes_what_is_older_than_its_period(settings: Settings) -> None:
    sme = await register(settings, "sme", "Retention OOD")
    conn = await connect(settings)
    try:
        kept = await accounts.create_person(
            conn,
            partner_id=sme.partner_id,
            email=f"kept-{uuid.uuid4().hex[:8]}@example.org",
            display_name="Kept Person",
            role="member",
        )
        old = await accounts.create_person(
            conn,
            partner_id=sme.partner_id,
            email=f"old-{uuid.uuid4().hex[:8]}@example.org",
            display_name="Long Gone",
            role="member",
        )
        await conn.execute(
            "UPDATE people SET disabled_at = now() - interval '800 days' WHERE person_id = $1",
            old.person_id,
        )
        for person, age in ((kept, timedelta(days=1)), (old, timedelta(days=400))):
            await conn.execute(
                "INSERT INTO account_events (person_id, at, what) VALUES"
                " ($1, now() - $2::interval, 'signed-in')",
                person.person_id,
                age,
            )
        message = f"retention-{uuid.uuid4()}"
        await conn.execute(
            "INSERT INTO deal_texts (message_id, match_id, author_id, body, sha256, stored_at)"
            " VALUES ($1, 'm', $2, 'old words', 'x', now() - interval '11 years')",
            message,
            sme.partner_id,
        )
        short = dataclasses.replace(settings, retention_deal_room_days=3650)
        now = datetime.now(UTC)
        counted = await apply_retention(conn, short, now, dry_run=True)
        assert counted["people (disabled)"] >= 1
        assert counted["deal_texts"] >= 1
        assert counted["account_events"] >= 1
        # A dry run deletes nothing.
        assert await conn.fetchval("SELECT count(*) FROM deal_texts WHERE message_id = $1", message)
        done = await apply_retention(conn, short, now)
        assert done["people (disabled)"] >= 1
        assert not await conn.fetchval(
            "SELECT count(*) FROM deal_texts WHERE message_id = $1", message
        )
        assert not await conn.fetchval(
            "SELECT count(*) FROM people WHERE person_id = $1", old.person_id
        )
        events = await conn.fetch(
            "SELECT what FROM account_events WHERE person_id = $1", kept.person_id
        )
        assert [e["what"] for e in events] == ["signed-in"]
        assert await conn.fetchval(
            "SELECT count(*) FROM people WHERE person_id = $1", kept.person_id
        )
    finally:
        await conn.execute("DELETE FROM people WHERE partner_id = $1", sme.partner_id)
        await conn.close()
