"""The deal room of a match (#22) on the real stack: the two SMEs exchange messages and a photo, a
PDF is accepted by its first bytes and a text file named .pdf refused, an outsider gets 404 for
everything, a stored attachment altered behind the exchange's back is refused on download, the
carrier joins once awarded, read receipts reach the writer; the events hold no text; and a deals
consumer killed mid-conversation loses no message and applies none twice."""

from __future__ import annotations

import asyncio
import hashlib
import io
import os
import signal
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import asyncpg
import orjson
import pytest
from aiohttp.test_utils import TestClient

from consumers.deals import TOPICS, DealRooms
from marketplace.events import to_message
from marketplace.kafka import make_producer
from marketplace.settings import ROOT, Settings
from producers.web.app import create_service
from schemas.base import Event
from schemas.common import Location, Money, Quantity, Reason, Window
from schemas.logistics import TransportAwarded, TransportJobRequested
from schemas.matches import MatchConfirmed, MatchProposed
from schemas.topics import DEALS
from tests.integration.api_helpers import (
    Partner,
    consumer_running,
    eventually,
    register,
    running_api,
)
from tests.integration.kafka_helpers import end_offsets, read_since, start_at_session_start

pytestmark = pytest.mark.integration
Client = TestClient[Any, Any]
NOW = datetime.now(UTC)
PICKUP = Location(lat=59.86, lon=17.64, region="SE121")
DELIVERY = Location(lat=60.67, lon=17.14, region="SE313")
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + bytes(range(256)) * 8
PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << >>\n%%EOF\n"


async def send(settings: Settings, events: list[Event]) -> None:
    producer = make_producer(settings)
    await producer.start()
    try:
        for event in events:
            m = to_message(event, event_id=str(uuid.uuid4()), source="/tests", time=NOW)
            await producer.send_and_wait(m.topic, m.value, key=m.key, headers=list(m.headers))
    finally:
        await producer.stop()


async def confirmed_match(settings: Settings, seller: Partner, buyer: Partner) -> tuple[str, str]:
    """A confirmed match and its open transport job, as the matcher and the job creator
    publish them: (match id, job id)."""
    match_id, job_id = str(uuid.uuid4()), str(uuid.uuid4())
    await send(settings, list(deal_events(seller, buyer, match_id, job_id)))
    return match_id, job_id


def deal_events(
    seller: Partner, buyer: Partner, match_id: str, job_id: str
) -> tuple[MatchProposed, MatchConfirmed, TransportJobRequested]:
    """The match's proposal and confirmation and its transport job."""
    proposed = MatchProposed(
        match_id=match_id,
        offer_id=str(uuid.uuid4()),
        request_id=str(uuid.uuid4()),
        seller_id=seller.partner_id,
        buyer_id=buyer.partner_id,
        material_code="150102",
        quantity=Quantity(amount=4, unit="t"),
        delivered_price=Money(amount=35, currency="EUR"),
        distance_km=42.0,
        transport_co2e_kg=26.0,
        co2e_saved_kg=5800.0,
        score=0.82,
        reasons=(Reason(factor="distance_km", value=42.0),),
        expires_at=NOW + timedelta(days=2),
    )
    pickup_window = Window(start=NOW + timedelta(days=1), end=NOW + timedelta(days=3))
    delivery_window = Window(start=NOW + timedelta(days=1), end=NOW + timedelta(days=5))
    confirmed = MatchConfirmed(
        match_id=match_id,
        offer_id=proposed.offer_id,
        request_id=proposed.request_id,
        seller_id=seller.partner_id,
        buyer_id=buyer.partner_id,
        material_code="150102",
        hazardous=False,
        quantity=proposed.quantity,
        weight_t=4.0,
        pickup=PICKUP,
        delivery=DELIVERY,
        delivered_price=proposed.delivered_price,
        pickup_window=pickup_window,
        delivery_window=delivery_window,
    )
    job = TransportJobRequested(
        job_id=job_id,
        match_id=match_id,
        material_code="150102",
        hazardous=False,
        quantity=proposed.quantity,
        weight_t=4.0,
        pickup=PICKUP,
        delivery=DELIVERY,
        bidding_deadline=NOW + timedelta(hours=1),
        currency="EUR",
        seller_id=seller.partner_id,
        buyer_id=buyer.partner_id,
        pickup_window=pickup_window,
        delivery_window=delivery_window,
    )
    return proposed, confirmed, job


async def award(settings: Settings, match_id: str, job_id: str, carrier: Partner) -> None:
    await send(
        settings,
        [
            TransportAwarded(
                job_id=job_id,
                match_id=match_id,
                quote_id=str(uuid.uuid4()),
                carrier_id=carrier.partner_id,
                price=Money(amount=180, currency="EUR"),
                co2e_kg=21.0,
                bidders=(carrier.partner_id,),
            )
        ],
    )


def upload(text: str, *files: tuple[str, bytes, str]) -> aiohttp.FormData:
    form = aiohttp.FormData()
    form.add_field("text", text)
    for name, content, declared in files:
        form.add_field("attachment", io.BytesIO(content), filename=name, content_type=declared)
    return form


async def room(client: Client, match_id: str, who: Partner) -> dict[str, Any]:
    r = await client.get(f"/v1/matches/{match_id}/messages", headers=who.auth)
    assert r.status == 200, await r.text()
    body: dict[str, Any] = await r.json()
    return body


async def problem(response: Any, status: int) -> dict[str, Any]:
    assert response.status == status, await response.text()
    assert response.content_type == "application/problem+json"
    body: dict[str, Any] = await response.json()
    return body


async def test_a_deal_room_between_seller_buyer_and_carrier(settings: Settings) -> None:
    seller = await register(settings, "sme", "Plast Pleven OOD")
    buyer = await register(settings, "sme", "Recikl Sofia OOD")
    carrier = await register(settings, "logistics", "Frakt AB")
    outsider = await register(settings, "sme", "Someone Else AB")
    other_carrier = await register(settings, "logistics", "Lost The Bid AB")
    facilitator = await register(settings, "facilitator", "Cluster Staff")
    since = await end_offsets(settings, DEALS)
    async with (
        running_api(settings, create_service) as client,
        consumer_running(settings, "deals", TOPICS, DealRooms),
    ):
        match_id, job_id = await confirmed_match(settings, seller, buyer)

        async def known() -> bool:
            r = await client.get(f"/v1/matches/{match_id}/messages", headers=seller.auth)
            return r.status == 200

        await eventually(known, 30)
        base = f"/v1/matches/{match_id}/messages"

        # The seller writes (JSON); the buyer answers with a photo (multipart).
        r = await client.post(base, json={"text": "Moisture below 12 %?"}, headers=seller.auth)
        assert r.status == 202, await r.text()
        first = (await r.json())["message_id"]
        r = await client.post(
            base,
            data=upload("Here are the bales.", ("bales.jpg", PNG, "image/jpeg")),
            headers=buyer.auth,
        )
        assert r.status == 202, await r.text()
        photo_message = await r.json()
        # A PDF by its first bytes, whatever its declared type.
        r = await client.post(
            base,
            data=upload("", ("analysis.bin", PDF, "application/octet-stream")),
            headers=buyer.auth,
        )
        assert r.status == 202, await r.text()

        # A text file named .pdf is refused, naming the attachment; so is a long text.
        body = await problem(
            await client.post(
                base,
                data=upload("see file", ("report.pdf", b"just words\n", "application/pdf")),
                headers=buyer.auth,
            ),
            422,
        )
        assert body["errors"][0]["field"] == "attachments[0]"
        assert "not a JPEG, PNG or PDF" in body["errors"][0]["reason"]
        body = await problem(
            await client.post(base, json={"text": "x" * 4001}, headers=buyer.auth), 422
        )
        assert body["errors"][0]["field"] == "text"
        too_big = PDF + b"0" * (5 * 1024 * 1024)
        body = await problem(
            await client.post(
                base, data=upload("", ("big.pdf", too_big, "application/pdf")), headers=buyer.auth
            ),
            422,
        )
        assert body["errors"][0]["field"] == "attachments[0]"
        four_files = [(f"p{i}.pdf", PDF, "application/pdf") for i in range(4)]
        body = await problem(
            await client.post(base, data=upload("", *four_files), headers=buyer.auth), 422
        )
        assert body["errors"][0]["field"] == "attachments"
        heavy = [(f"h{i}.pdf", PDF + b"0" * (4 * 1024 * 1024), "application/pdf") for i in range(4)]
        body = await problem(
            await client.post(base, data=upload("", *heavy), headers=buyer.auth), 413
        )
        assert body["errors"][0]["field"] == "attachments"

        async def three() -> bool:
            return len((await room(client, match_id, seller))["messages"]) == 3

        await eventually(three, 30)
        seen = await room(client, match_id, seller)
        texts = [m["text"] for m in seen["messages"]]
        assert texts == ["Moisture below 12 %?", "Here are the bales.", ""]
        assert all(m["text_status"] == "ok" for m in seen["messages"])
        photo = seen["messages"][1]["attachments"][0]
        assert photo["media_type"] == "image/png"  # by its bytes, not its name
        assert photo["name"] == "bales.jpg"
        assert photo["sha256"] == hashlib.sha256(PNG).hexdigest()
        pdf = seen["messages"][2]["attachments"][0]
        assert pdf["media_type"] == "application/pdf"
        assert (await room(client, match_id, buyer))["messages"] == seen["messages"]

        # The seller downloads the photo, checked against its hash.
        r = await client.get(photo["href"], headers=seller.auth)
        assert r.status == 200
        assert r.content_type == "image/png"
        assert await r.read() == PNG

        # Everyone else: 404 for everything, as for no match at all. The carrier too, before
        # the award.
        read_path = f"{base}/{first}/read"
        for stranger in (outsider, other_carrier, carrier, facilitator):
            await problem(await client.get(base, headers=stranger.auth), 404)
            await problem(await client.post(base, json={"text": "hi"}, headers=stranger.auth), 404)
            await problem(await client.get(photo["href"], headers=stranger.auth), 404)
            await problem(await client.post(read_path, headers=stranger.auth), 404)
        await problem(
            await client.get(f"/v1/matches/{uuid.uuid4()}/messages", headers=seller.auth), 404
        )

        # A stored attachment altered behind the exchange's back is refused, clearly.
        pool = await asyncpg.create_pool(settings.dsn, min_size=1, max_size=1)
        try:
            await pool.execute(
                "UPDATE deal_files SET content = $2 WHERE attachment_id = $1",
                photo["attachment_id"],
                PNG + b"tampered",
            )
            body = await problem(await client.get(photo["href"], headers=buyer.auth), 409)
            assert body["type"].endswith("/attachment-altered")
            # An altered text is shown as altered, never as the message.
            await pool.execute(
                "UPDATE deal_texts SET body = 'Moisture below 30 %?' WHERE message_id = $1", first
            )
            altered = (await room(client, match_id, buyer))["messages"][0]
            assert altered["text"] is None
            assert altered["text_status"] == "altered"
        finally:
            await pool.close()

        # The buyer reads; the seller sees the receipt on its message.
        r = await client.post(read_path, headers=buyer.auth)
        assert r.status == 202, await r.text()

        async def receipt() -> bool:
            first_msg = (await room(client, match_id, seller))["messages"][0]
            return buyer.partner_id in first_msg["read_by"]

        await eventually(receipt, 30)
        r = await client.post(read_path, headers=buyer.auth)
        assert r.status == 200  # already read: nothing more is published

        # A facilitator the seller consented to joins the room.
        r = await client.post(f"/v1/consents/{facilitator.partner_id}", headers=seller.auth)
        assert r.status == 202, await r.text()

        async def consented() -> bool:
            r = await client.get(base, headers=facilitator.auth)
            return r.status == 200

        await eventually(consented, 30)
        assert (await room(client, match_id, facilitator))["your_side"] == "facilitator"

        # The award: the carrier joins, and writes.
        await award(settings, match_id, job_id, carrier)

        async def joined() -> bool:
            r = await client.get(base, headers=carrier.auth)
            return r.status == 200

        await eventually(joined, 30)
        await problem(await client.get(base, headers=other_carrier.auth), 404)
        r = await client.post(base, json={"text": "Pickup Tuesday 8:00"}, headers=carrier.auth)
        assert r.status == 202, await r.text()

        async def four() -> bool:
            return len((await room(client, match_id, seller))["messages"]) == 4

        await eventually(four, 30)
        last = (await room(client, match_id, seller))["messages"][-1]
        assert (last["side"], last["text"]) == ("carrier", "Pickup Tuesday 8:00")

        # Every participant got a notice for the carrier's message, the facilitator too.
        async def noticed() -> bool:
            conn = await asyncpg.connect(settings.dsn)
            try:
                rows = await conn.fetch(
                    "SELECT DISTINCT partner_id FROM deal_notices WHERE match_id = $1"
                    " AND message_id = $2 AND kind = 'message'",
                    match_id,
                    last["message_id"],
                )
            finally:
                await conn.close()
            got = {r["partner_id"] for r in rows}
            want = {seller.partner_id, buyer.partner_id, carrier.partner_id, facilitator.partner_id}
            return got == want

        await eventually(noticed, 30)
        assert photo_message["attachment_ids"] == [photo["attachment_id"]]

    # The log holds hashes and metadata, never a message's text.
    records = [r for r in await read_since(settings, DEALS, since) if r.key == match_id.encode()]
    assert len(records) == 5  # four messages and one receipt
    for record in records:
        assert b"Moisture" not in record.value
        assert b"Pickup Tuesday" not in record.value
        assert b"bales." not in record.value or b"bales.jpg" in record.value
    posted = [orjson.loads(r.value) for r in records]
    assert posted[0]["text_sha256"] == hashlib.sha256(b"Moisture below 12 %?").hexdigest()


class Worker:
    """The deals consumer in a process of its own, so that SIGKILL is real."""

    def __init__(self, group: str) -> None:
        code = (
            "import asyncio, sys\n"
            "from consumers.deals import TOPICS, DealRooms\n"
            "from marketplace.runtime.service import run_consumer\n"
            "from marketplace.settings import Settings\n"
            "group = sys.argv[1]\n"
            "asyncio.run(run_consumer(Settings.from_env(), group_id=group, topics=TOPICS,"
            " processor=DealRooms(group), stop=asyncio.Event()))\n"
        )
        env = {**os.environ, "MARKETPLACE_LOG_LEVEL": "warning", "MARKETPLACE_LOG_FORMAT": "json"}
        self.proc = subprocess.Popen([sys.executable, "-c", code, group], cwd=ROOT, env=env)

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()


async def test_a_killed_deals_consumer_loses_and_repeats_no_message(settings: Settings) -> None:
    seller = await register(settings, "sme", "Tekstil Gabrovo OOD")
    buyer = await register(settings, "sme", "Izolacia Ruse OOD")
    group = f"test.deals.kill.{uuid.uuid4().hex[:8]}"
    await start_at_session_start(settings, group, TOPICS)
    total = 40
    async with running_api(settings, create_service) as client:
        match_id, _job = await confirmed_match(settings, seller, buyer)

        async def known() -> bool:
            r = await client.get(f"/v1/matches/{match_id}/messages", headers=seller.auth)
            return r.status == 200

        await eventually(known, 30)
        conn = await asyncpg.connect(settings.dsn)

        async def applied() -> int:
            return int(
                await conn.fetchval(
                    "SELECT count(*) FROM deal_messages WHERE match_id = $1", match_id
                )
            )

        worker = Worker(group)
        try:
            sent: list[str] = []

            async def post(i: int) -> None:
                who = seller if i % 2 == 0 else buyer
                r = await client.post(
                    f"/v1/matches/{match_id}/messages",
                    json={"text": f"message {i}"},
                    headers={**who.auth, "Idempotency-Key": f"kill-{i}"},
                )
                assert r.status == 202, await r.text()
                sent.append((await r.json())["message_id"])

            for i in range(total // 4):
                await post(i)

            async def started() -> bool:
                return await applied() > 0

            await eventually(started, 60)
            # Killed mid-conversation: while it works through the first messages, and the
            # conversation goes on while it is down and after it is back.
            worker.kill()
            for i in range(total // 4, total // 2):
                await post(i)
            worker = Worker(group)
            for i in range(total // 2, total):
                await post(i)
            # A retry of a message with its key publishes the same event again: still one.
            r = await client.post(
                f"/v1/matches/{match_id}/messages",
                json={"text": "message 0"},
                headers={**seller.auth, "Idempotency-Key": "kill-0"},
            )
            assert (await r.json())["message_id"] == sent[0]

            async def all_in() -> bool:
                return await applied() == total

            await eventually(all_in, 90)
            await asyncio.sleep(2)  # the retry's record, too, is behind us
            rows = await conn.fetch(
                "SELECT message_id FROM deal_messages WHERE match_id = $1 ORDER BY seq", match_id
            )
            assert [r["message_id"] for r in rows] == sent  # in order, none lost, none twice
            notices = await conn.fetch(
                "SELECT partner_id, count(*) AS n FROM deal_notices WHERE match_id = $1"
                " GROUP BY partner_id",
                match_id,
            )
            # One notice per message and party, though the retried message's record came twice
            # (its event id is the same: one notice).
            assert {r["partner_id"]: r["n"] for r in notices} == {
                seller.partner_id: total,
                buyer.partner_id: total,
            }
        finally:
            worker.kill()
            await conn.close()
