"""The invoices of a deal in its room (#22 item 2), through the pages on the real stack (API
with the pages, projector, deals consumer): the material invoice is not issued before the buyer
approves the delivery report (and takes no number), the buyer that is billed is refused (403),
a read-only member too, an outsider gets 404; the seller issues it once, and issuing again takes
no second number; the carrier issues the transport invoice to the seller; the XML and the PDF
agree; a stored XML altered behind the exchange's back is refused (409). In a take-back (a price
below zero) the receiver invoices the holder."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import asyncpg
from aiohttp.test_utils import TestClient

from consumers.deals import TOPICS, DealRooms
from marketplace.settings import Settings
from producers.web.app import create_service
from schemas.common import Money, Quantity, Reason, Window
from schemas.logistics import TransportJobRequested
from schemas.matches import MatchConfirmed, MatchProposed
from tests.integration.api_helpers import (
    Partner,
    consumer_running,
    eventually,
    register,
    running_api,
)
from tests.integration.test_deal_documents import BUYER_LEGAL, declare, document, pdf_text
from tests.integration.test_deal_room import (
    DELIVERY,
    NOW,
    PICKUP,
    award,
    confirmed_match,
    send,
)
from tests.integration.test_pages_accounts import csrf_of, plain
from tests.integration.test_pages_matrix import person

Client = TestClient[Any, Any]
SELLER_LEGAL = {
    "legal_name": "Пекарна Добруджа ЕООД",
    "street": "ул. Шипка 12",
    "postcode": "9300",
    "city": "Добрич",
    "country": "BG",
    "vat_number": "BG175074752",
    "peppol_id": "9926:BG175074752",
}
CARRIER_LEGAL = {
    "legal_name": "Транс Логистик АД",
    "street": "ул. Индустриална 3",
    "postcode": "9000",
    "city": "Варна",
    "country": "BG",
    "vat_number": "BG203456789",
    "peppol_id": "9926:BG203456789",
}


async def as_person(client: Client, session: str) -> None:
    """Signs the client in as the person of `session`."""
    client.session.cookie_jar.clear()
    client.session.cookie_jar.update_cookies({"session": session})


async def room_html(client: Client, match_id: str) -> str:
    page = await client.get(f"/app/deals/{match_id}")
    assert page.status == 200, await page.text()
    return await page.text()


async def issue(client: Client, match_id: str, kind: str, csrf: str) -> Any:
    return await client.post(
        f"/app/deals/{match_id}/invoices/{kind}", data={"csrf": csrf}, allow_redirects=False
    )


async def last_number(settings: Settings, issuer: Partner) -> int | None:
    conn = await asyncpg.connect(settings.dsn)
    try:
        found: int | None = await conn.fetchval(
            "SELECT last_number FROM invoice_numbers WHERE issuer_id = $1", issuer.partner_id
        )
        return found
    finally:
        await conn.close()


async def test_the_invoices_of_a_deal_in_its_room(settings: Settings) -> None:
    seller = await register(settings, "sme", "Pekarna Dobrudzha")
    buyer = await register(settings, "sme", "Biogas Uppsala")
    carrier = await register(settings, "logistics", "Trans Logistik")
    outsider = await register(settings, "sme", "Someone Else AB")
    async with (
        running_api(plain(settings), create_service) as client,
        consumer_running(settings, "deals", TOPICS, DealRooms),
    ):
        for who, legal in ((seller, SELLER_LEGAL), (buyer, BUYER_LEGAL), (carrier, CARRIER_LEGAL)):
            await declare(client, who, legal)
        match_id, job_id = await confirmed_match(settings, seller, buyer)
        await award(settings, match_id, job_id, carrier)
        stage = f"/v1/matches/{match_id}/transport"

        async def awarded() -> bool:
            r = await client.post(f"{stage}/pickup", json={"weight_t": 4.02}, headers=carrier.auth)
            return r.status == 202

        await eventually(awarded, 30)

        async def picked_up() -> bool:
            r = await client.get(f"/v1/matches/{match_id}/documents", headers=seller.auth)
            return (await r.json())["transport"]["pickup"] is not None

        await eventually(picked_up, 30)
        r = await client.post(f"{stage}/delivery", json={"weight_t": 3.95}, headers=carrier.auth)
        assert r.status == 202, await r.text()

        async def report_listed() -> bool:
            return bool((await document(client, match_id, buyer, "delivery"))["available"])

        await eventually(report_listed, 30)

        # Before the buyer approves the delivery report: not yet, and no number is taken.
        admin = await person(settings, seller.partner_id, "admin")
        await as_person(client, admin)
        html = await room_html(client, match_id)
        assert "Not yet: the delivery report is not approved." in html
        r = await issue(client, match_id, "material", csrf_of(html))
        assert r.status == 409
        assert "This invoice cannot be issued yet." in await r.text()
        assert await last_number(settings, seller) is None

        report = await document(client, match_id, buyer, "delivery")
        r = await client.post(report["approve"], headers=buyer.auth)
        assert r.status == 202, await r.text()

        async def approved() -> bool:
            return bool((await document(client, match_id, seller, "delivery"))["approved"])

        await eventually(approved, 30)

        # The buyer is billed: it has no button and is refused; a read-only member of the
        # seller too; an outsider finds nothing.
        await as_person(client, await person(settings, buyer.partner_id, "admin"))
        html = await room_html(client, match_id)
        assert "ready to be issued" in html
        assert "Issue the invoice for the material" not in html
        r = await issue(client, match_id, "material", csrf_of(html))
        assert r.status == 403
        assert "Only the party that is paid issues this invoice." in await r.text()
        await as_person(client, await person(settings, seller.partner_id, "read-only"))
        html = await room_html(client, match_id)
        assert "Issue the invoice for the material" not in html
        assert (await issue(client, match_id, "material", csrf_of(html))).status == 403
        await as_person(client, await person(settings, outsider.partner_id, "admin"))
        html = await (await client.get("/app/deals")).text()
        assert (await issue(client, match_id, "material", csrf_of(html))).status == 404
        assert (await client.get(f"/app/deals/{match_id}/invoices/material.xml")).status == 404

        # The seller issues it; again, and it stays one invoice under one number.
        await as_person(client, admin)
        html = await room_html(client, match_id)
        assert "Issue the invoice for the material" in html
        for _ in range(2):
            r = await issue(client, match_id, "material", csrf_of(html))
            assert r.status == 303, await r.text()
            assert r.headers["Location"].endswith("?notice=invoiced#invoices")
        assert await last_number(settings, seller) == 1
        html = await room_html(client, match_id)
        # 3.95 t at 35 EUR, a Bulgarian seller and a Swedish buyer: intra-community, no VAT.
        assert "issued: no. 0000000001" in html
        assert "138.25 EUR due" in html
        r = await client.get(f"/app/deals/{match_id}/invoices/material.xml")
        assert r.status == 200
        assert r.content_type == "application/xml"
        xml = await r.read()
        assert b'<cbc:PayableAmount currencyID="EUR">138.25</cbc:PayableAmount>' in xml
        assert b"<cbc:BuyerReference>" + match_id.encode() in xml
        r = await client.get(f"/app/deals/{match_id}/invoices/material.pdf")
        assert r.status == 200
        text = pdf_text(await r.read())
        assert "Invoice 0000000001" in text
        assert "Пекарна Добруджа ЕООД" in text
        assert "Återvinning Uppsala AB" in text
        assert "intra-community supply" in text

        # The carrier invoices the seller: a Bulgarian service to a Bulgarian firm, 20 % VAT.
        await as_person(client, await person(settings, carrier.partner_id, "member"))
        html = await room_html(client, match_id)
        assert "Issue the invoice for the material" not in html
        r = await issue(client, match_id, "transport", csrf_of(html))
        assert r.status == 303, await r.text()
        r = await client.get(f"/app/deals/{match_id}/invoices/transport.xml")
        xml = await r.read()
        assert b'<cbc:PayableAmount currencyID="EUR">216.00</cbc:PayableAmount>' in xml
        assert b"<cbc:RegistrationName>\xd0\x9f\xd0\xb5" in xml  # the seller, in Cyrillic
        assert await last_number(settings, carrier) == 1

        # A stored XML altered behind the exchange's back is not handed out.
        owner = await asyncpg.connect(settings.migrate_dsn)
        try:
            await owner.execute(
                "UPDATE invoices SET xml = convert_to(replace(convert_from(xml, 'UTF8'), '216.00',"
                " '21.60'), 'UTF8')"
                " WHERE match_id = $1 AND kind = 'transport'",
                match_id,
            )
        finally:
            await owner.close()
        for fmt in ("pdf", "xml"):
            r = await client.get(f"/app/deals/{match_id}/invoices/transport.{fmt}")
            assert r.status == 409
            assert r.content_type == "text/html"  # the error page, not the altered file
        r = await client.get(f"/app/deals/{match_id}/invoices/material.xml")
        assert r.status == 200


async def take_back_match(
    settings: Settings, holder: Partner, receiver: Partner, price: float
) -> tuple[str, str]:
    """A confirmed match at a price below zero (the holder pays the receiver to take the
    material) and its transport job, as the matcher and the job creator publish them."""
    match_id, job_id = str(uuid.uuid4()), str(uuid.uuid4())
    offer_id, request_id = str(uuid.uuid4()), str(uuid.uuid4())
    pickup_window = Window(start=NOW + timedelta(days=1), end=NOW + timedelta(days=3))
    delivery_window = Window(start=NOW + timedelta(days=1), end=NOW + timedelta(days=5))
    proposed = MatchProposed(
        match_id=match_id,
        offer_id=offer_id,
        request_id=request_id,
        seller_id=holder.partner_id,
        buyer_id=receiver.partner_id,
        material_code="150102",
        quantity=Quantity(amount=4, unit="t"),
        delivered_price=Money(amount=price, currency="EUR"),
        distance_km=42.0,
        transport_co2e_kg=26.0,
        co2e_saved_kg=5800.0,
        score=0.8,
        reasons=(Reason(factor="distance_km", value=42.0),),
        expires_at=NOW + timedelta(days=2),
    )
    confirmed = MatchConfirmed(
        match_id=match_id,
        offer_id=offer_id,
        request_id=request_id,
        seller_id=holder.partner_id,
        buyer_id=receiver.partner_id,
        material_code="150102",
        hazardous=False,
        quantity=Quantity(amount=4, unit="t"),
        weight_t=4.0,
        pickup=PICKUP,
        delivery=DELIVERY,
        delivered_price=Money(amount=price, currency="EUR"),
        pickup_window=pickup_window,
        delivery_window=delivery_window,
    )
    job = TransportJobRequested(
        job_id=job_id,
        match_id=match_id,
        material_code="150102",
        hazardous=False,
        quantity=Quantity(amount=4, unit="t"),
        weight_t=4.0,
        pickup=PICKUP,
        delivery=DELIVERY,
        bidding_deadline=NOW + timedelta(hours=1),
        currency="EUR",
        seller_id=holder.partner_id,
        buyer_id=receiver.partner_id,
        pickup_window=pickup_window,
        delivery_window=delivery_window,
    )
    await send(settings, [proposed, confirmed, job])
    return match_id, job_id


async def test_in_a_take_back_the_receiver_invoices_the_holder(settings: Settings) -> None:
    holder = await register(settings, "sme", "Pekarna Dobrudzha")
    receiver = await register(settings, "sme", "Biogas Uppsala")
    carrier = await register(settings, "logistics", "Trans Logistik")
    async with (
        running_api(plain(settings), create_service) as client,
        consumer_running(settings, "deals", TOPICS, DealRooms),
    ):
        for who, legal in (
            (holder, SELLER_LEGAL),
            (receiver, BUYER_LEGAL),
            (carrier, CARRIER_LEGAL),
        ):
            await declare(client, who, legal)
        match_id, job_id = await take_back_match(settings, holder, receiver, -20.0)
        await award(settings, match_id, job_id, carrier)
        stage = f"/v1/matches/{match_id}/transport"

        async def awarded() -> bool:
            r = await client.post(f"{stage}/pickup", json={"weight_t": 4.0}, headers=carrier.auth)
            return r.status == 202

        await eventually(awarded, 30)

        async def picked_up() -> bool:
            r = await client.get(f"/v1/matches/{match_id}/documents", headers=holder.auth)
            return (await r.json())["transport"]["pickup"] is not None

        await eventually(picked_up, 30)
        r = await client.post(f"{stage}/delivery", json={"weight_t": 3.95}, headers=carrier.auth)
        assert r.status == 202, await r.text()

        async def report_listed() -> bool:
            return bool((await document(client, match_id, receiver, "delivery"))["available"])

        await eventually(report_listed, 30)
        report = await document(client, match_id, receiver, "delivery")
        r = await client.post(report["approve"], headers=receiver.auth)
        assert r.status == 202, await r.text()

        async def approved() -> bool:
            return bool((await document(client, match_id, holder, "delivery"))["approved"])

        await eventually(approved, 30)

        # The holder pays: no button, and refused.
        await as_person(client, await person(settings, holder.partner_id, "admin"))
        html = await room_html(client, match_id)
        assert "Issue the invoice for the material" not in html
        r = await issue(client, match_id, "material", csrf_of(html))
        assert r.status == 403

        # The receiver invoices the holder for taking the material, at the positive amount:
        # a Swedish firm's service to a Bulgarian one, under reverse charge.
        await as_person(client, await person(settings, receiver.partner_id, "member"))
        html = await room_html(client, match_id)
        assert "Issue the invoice for the material" in html
        r = await issue(client, match_id, "material", csrf_of(html))
        assert r.status == 303, await r.text()
        r = await client.get(f"/app/deals/{match_id}/invoices/material.xml")
        assert r.status == 200
        xml = (await r.read()).decode()
        supplier = xml.split("<cac:AccountingSupplierParty>")[1].split("</cac:Accounting")[0]
        customer = xml.split("<cac:AccountingCustomerParty>")[1].split("</cac:Accounting")[0]
        assert "Återvinning Uppsala AB" in supplier
        assert "Пекарна Добруджа ЕООД" in customer
        assert "<cbc:Name>Taking back: " in xml
        assert '<cbc:PriceAmount currencyID="EUR">20</cbc:PriceAmount>' in xml
        assert '<cbc:PayableAmount currencyID="EUR">79.00</cbc:PayableAmount>' in xml
        assert "<cbc:ID>AE</cbc:ID>" in xml
        assert await last_number(settings, receiver) == 1
        assert await last_number(settings, holder) is None
