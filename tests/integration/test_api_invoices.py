"""A deal's invoices for machines (#22 item 2), on the real stack: `GET /v1/matches/{id}/documents`
lists them with their state (ready before, issued with number and links after the seller issues
the material invoice on the pages); the deal's participants download the UBL XML (the same bytes
as the pages serve) and its PDF through the API; an outsider gets 404, a role without a place in
deals 403, an invoice not issued 404, an altered stored XML 409."""

from __future__ import annotations

from typing import Any

import asyncpg
from aiohttp.test_utils import TestClient

from consumers.deals import TOPICS, DealRooms
from marketplace.settings import Settings
from producers.web.app import create_service
from tests.integration.api_helpers import consumer_running, eventually, register, running_api
from tests.integration.test_deal_documents import BUYER_LEGAL, declare, document, documents
from tests.integration.test_deal_invoices import (
    CARRIER_LEGAL,
    SELLER_LEGAL,
    as_person,
    issue,
    room_html,
)
from tests.integration.test_deal_room import award, confirmed_match
from tests.integration.test_pages_accounts import csrf_of, plain
from tests.integration.test_pages_matrix import person

Client = TestClient[Any, Any]


def invoice(listed: dict[str, Any], kind: str) -> dict[str, Any]:
    return next(i for i in listed["invoices"] if i["kind"] == kind)


async def test_a_deals_invoices_over_the_api(settings: Settings) -> None:
    seller = await register(settings, "sme", "Pekarna Dobrudzha")
    buyer = await register(settings, "sme", "Biogas Uppsala")
    carrier = await register(settings, "logistics", "Trans Logistik")
    outsider = await register(settings, "sme", "Someone Else AB")
    auditor = await register(settings, "auditor", "Revisor AB")
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
            return (await documents(client, match_id, seller))["transport"]["pickup"] is not None

        await eventually(picked_up, 30)
        r = await client.post(f"{stage}/delivery", json={"weight_t": 3.95}, headers=carrier.auth)
        assert r.status == 202, await r.text()

        async def report_listed() -> bool:
            return bool((await document(client, match_id, buyer, "delivery"))["available"])

        await eventually(report_listed, 30)
        listed = await documents(client, match_id, seller)
        material = invoice(listed, "material")
        assert material["state"] == "not-yet"
        assert material["xml"] is None
        base = f"/v1/matches/{match_id}/invoices"
        r = await client.get(f"{base}/material.xml", headers=seller.auth)
        assert r.status == 404, await r.text()
        assert (await r.json())["type"].endswith("/not-found")

        report = await document(client, match_id, buyer, "delivery")
        r = await client.post(report["approve"], headers=buyer.auth)
        assert r.status == 202, await r.text()

        async def ready() -> bool:
            found = invoice(await documents(client, match_id, seller), "material")
            return bool(found["state"] == "ready")

        await eventually(ready, 30)
        # The seller's admin issues it on the pages (the API does not issue invoices).
        await as_person(client, await person(settings, seller.partner_id, "admin"))
        r = await issue(client, match_id, "material", csrf_of(await room_html(client, match_id)))
        assert r.status == 303, await r.text()
        page_xml = await (await client.get(f"/app/deals/{match_id}/invoices/material.xml")).read()
        client.session.cookie_jar.clear()

        for who in (seller, buyer, carrier):
            material = invoice(await documents(client, match_id, who), "material")
            assert material["state"] == "issued"
            assert material["number"] == "0000000001"
            assert (material["payable"], material["currency"]) == ("138.25", "EUR")
            assert material["xml"] == f"{base}/material.xml"
            r = await client.get(material["xml"], headers=who.auth)
            assert r.status == 200, await r.text()
            assert r.content_type == "application/xml"
            assert await r.read() == page_xml
            r = await client.get(material["pdf"], headers=who.auth)
            assert r.status == 200, await r.text()
            assert r.content_type == "application/pdf"
            assert (await r.read()).startswith(b"%PDF-")
        transport = invoice(await documents(client, match_id, carrier), "transport")
        assert (transport["state"], transport["xml"]) == ("ready", None)
        r = await client.get(f"{base}/transport.xml", headers=carrier.auth)
        assert r.status == 404, await r.text()

        # An outsider finds nothing; a role with no place in deals is refused; no such kind.
        for path in (f"{base}/material.xml", f"/v1/matches/{match_id}/documents"):
            r = await client.get(path, headers=outsider.auth)
            assert r.status == 404, await r.text()
            r = await client.get(path, headers=auditor.auth)
            assert r.status == 403, await r.text()
        r = await client.get(f"{base}/rent.xml", headers=seller.auth)
        assert r.status == 404, await r.text()

        # A stored XML altered behind the exchange's back is not handed out.
        owner = await asyncpg.connect(settings.migrate_dsn)
        try:
            await owner.execute(
                "UPDATE invoices SET xml = convert_to(replace(convert_from(xml, 'UTF8'),"
                " '138.25', '13.82'), 'UTF8') WHERE match_id = $1 AND kind = 'material'",
                match_id,
            )
        finally:
            await owner.close()
        for fmt in ("xml", "pdf"):
            r = await client.get(f"{base}/material.{fmt}", headers=buyer.auth)
            assert r.status == 409, await r.text()
            assert (await r.json())["type"].endswith("/document-altered")
