"""A standing agreement's document set per delivery period (#22 item 3), on the real stack (API
with the pages, projector, deals consumer, analytics consumer; Kafka and PostgreSQL):

- the agreement's own order states the quantity per period; its transport documents, delivery
  reports and invoices are the periods';
- each period has its order (the period's quantity, price and window), the transport document of
  its job's carrier, and after that carrier's pickup and delivery confirmations its delivery
  report, whose weight feeds the KPIs instead of the scheduled quantity;
- the buyer approves a period's documents (an approval event naming the period), the seller
  issues each period's material invoice and the carrier its transport invoice, numbered per
  issuer without gaps across the periods; the invoices pass the official CEN and Peppol rules
  (infra/einvoice-validator.sh);
- the agreement's page lists each period's documents and invoices with their downloads;
- an outsider gets 404 for all of it, on the API and the pages; so does the carrier of another
  period, and a delivery id that is not one of the agreement's periods."""

from __future__ import annotations

import uuid
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import orjson
from aiohttp.test_utils import TestClient

from consumers.analytics import TOPICS as ANALYTICS_TOPICS
from consumers.analytics import Analytics
from consumers.deals import TOPICS, DealRooms
from marketplace.settings import Settings
from marketplace.translate.auction import job_id_for
from producers.web.app import create_service
from schemas.base import Event
from schemas.common import Agreement, Money, Quantity, Reason, Window
from schemas.logistics import TransportAwarded, TransportJobRequested
from schemas.matches import DeliveryScheduled, MatchConfirmed, MatchProposed
from tests.integration.api_helpers import (
    Partner,
    consumer_running,
    eventually,
    register,
    running_api,
)
from tests.integration.test_deal_documents import BUYER_LEGAL, declare, pdf_text
from tests.integration.test_deal_invoices import CARRIER_LEGAL, SELLER_LEGAL, as_person
from tests.integration.test_deal_room import DELIVERY, NOW, PICKUP, problem, send
from tests.integration.test_invoice_validation import RULE_SETS, validate
from tests.integration.test_pages_accounts import csrf_of, plain
from tests.integration.test_pages_matrix import person

Client = TestClient[Any, Any]
PRICE = Money(amount=35, currency="EUR")
PER_PERIOD = Quantity(amount=4, unit="t")
PERIODS = ("2026-12", "2027-01")


def events(
    seller: Partner, buyer: Partner, carriers: tuple[Partner, Partner]
) -> tuple[str, list[str], list[Event]]:
    """A confirmed monthly agreement, two periods' scheduled deliveries with their jobs, each
    awarded to its own carrier, as the matcher, the job creator and the auctioneer publish
    them: (match id, delivery ids, events)."""
    match_id = str(uuid.uuid4())
    offer_id, request_id = str(uuid.uuid4()), str(uuid.uuid4())
    agreement = Agreement(period="month", quantity=PER_PERIOD, starts=date(2026, 12, 1))
    first = Window(start=NOW + timedelta(days=1), end=NOW + timedelta(days=3))
    out: list[Event] = [
        MatchProposed(
            match_id=match_id,
            offer_id=offer_id,
            request_id=request_id,
            seller_id=seller.partner_id,
            buyer_id=buyer.partner_id,
            material_code="150102",
            quantity=PER_PERIOD,
            delivered_price=PRICE,
            distance_km=42.0,
            transport_co2e_kg=26.0,
            co2e_saved_kg=5800.0,
            score=0.8,
            reasons=(Reason(factor="distance_km", value=42.0),),
            expires_at=NOW + timedelta(days=2),
            agreement=agreement,
        ),
        MatchConfirmed(
            match_id=match_id,
            offer_id=offer_id,
            request_id=request_id,
            seller_id=seller.partner_id,
            buyer_id=buyer.partner_id,
            material_code="150102",
            hazardous=False,
            quantity=PER_PERIOD,
            weight_t=4.0,
            pickup=PICKUP,
            delivery=DELIVERY,
            pickup_window=first,
            delivery_window=first,
            delivered_price=PRICE,
            agreement=agreement,
        ),
    ]
    deliveries = []
    for n, (key, carrier) in enumerate(zip(PERIODS, carriers, strict=True)):
        delivery_id = str(uuid.uuid4())
        deliveries.append(delivery_id)
        window = Window(
            start=NOW + timedelta(days=1 + 31 * n), end=NOW + timedelta(days=3 + 31 * n)
        )
        job_id = job_id_for(delivery_id)
        out += [
            DeliveryScheduled(
                delivery_id=delivery_id,
                match_id=match_id,
                offer_id=offer_id,
                request_id=request_id,
                seller_id=seller.partner_id,
                buyer_id=buyer.partner_id,
                material_code="150102",
                hazardous=False,
                period_key=key,
                quantity=PER_PERIOD,
                weight_t=4.0,
                pickup=PICKUP,
                delivery=DELIVERY,
                pickup_window=window,
                delivery_window=window,
                delivered_price=PRICE,
            ),
            TransportJobRequested(
                job_id=job_id,
                match_id=match_id,
                material_code="150102",
                hazardous=False,
                quantity=PER_PERIOD,
                weight_t=4.0,
                pickup=PICKUP,
                delivery=DELIVERY,
                bidding_deadline=NOW + timedelta(hours=1),
                currency="EUR",
                seller_id=seller.partner_id,
                buyer_id=buyer.partner_id,
                pickup_window=window,
                delivery_window=window,
                delivery_id=delivery_id,
            ),
            TransportAwarded(
                job_id=job_id,
                match_id=match_id,
                quote_id=str(uuid.uuid4()),
                carrier_id=carrier.partner_id,
                price=Money(amount=180, currency="EUR"),
                co2e_kg=21.0,
                bidders=(carrier.partner_id,),
            ),
        ]
    return match_id, deliveries, out


async def listed(client: Client, path: str, who: Partner) -> dict[str, Any]:
    r = await client.get(path, headers=who.auth)
    assert r.status == 200, await r.text()
    body: dict[str, Any] = await r.json()
    return body


def kind_of(body: dict[str, Any], kind: str) -> dict[str, Any]:
    found: dict[str, Any] = next(d for d in body["documents"] if d["kind"] == kind)
    return found


async def test_each_delivery_period_has_its_document_set(
    settings: Settings, tmp_path: Path
) -> None:
    seller = await register(settings, "sme", "Pekarna Periods")
    buyer = await register(settings, "sme", "Biogas Periods")
    carrier = await register(settings, "logistics", "Trans Periods")
    other_carrier = await register(settings, "logistics", "Other Periods")
    outsider = await register(settings, "sme", "Outsider Periods")
    async with (
        running_api(plain(settings), create_service) as client,
        consumer_running(settings, "deals", TOPICS, DealRooms),
        consumer_running(settings, "analytics", ANALYTICS_TOPICS, Analytics),
    ):
        for who, legal in ((seller, SELLER_LEGAL), (buyer, BUYER_LEGAL)):
            await declare(client, who, legal)
        for who in (carrier, other_carrier):
            await declare(client, who, CARRIER_LEGAL | {"legal_name": f"{who.partner_id[:6]} АД"})
        match_id, deliveries, story = events(seller, buyer, (carrier, other_carrier))
        # The awards only once the projector has the jobs: the two topics have no order
        # between them, and an award projected before its job is lost (NOTES.md, auctions).
        awards: list[Event] = [e for e in story if isinstance(e, TransportAwarded)]
        await send(settings, [e for e in story if not isinstance(e, TransportAwarded)])
        jobs = [job_id_for(d) for d in deliveries]

        async def jobs_projected() -> bool:
            conn = await asyncpg.connect(settings.dsn)
            try:
                n = await conn.fetchval(
                    "SELECT count(*) FROM jobs WHERE job_id = ANY($1::text[])", jobs
                )
            finally:
                await conn.close()
            return bool(n == len(jobs))

        await eventually(jobs_projected, 60)
        await send(settings, awards)
        agreement = f"/v1/matches/{match_id}"
        first, second = (f"{agreement}/deliveries/{d}" for d in deliveries)

        async def both_periods() -> bool:
            r = await client.get(f"{agreement}/deliveries", headers=seller.auth)
            return r.status == 200 and len((await r.json())["periods"]) == 2

        await eventually(both_periods, 60)

        async def carriers_in() -> bool:
            # A carrier has a place once the projector has its job awarded (and the deals
            # consumer the award).
            for who in (carrier, other_carrier):
                r = await client.get(f"{agreement}/deliveries", headers=who.auth)
                if r.status != 200 or not (await r.json())["periods"]:
                    return False
            return True

        await eventually(carriers_in, 60)
        periods = (await listed(client, f"{agreement}/deliveries", seller))["periods"]
        assert [p["period_key"] for p in periods] == list(PERIODS)
        assert [p["documents"] for p in periods] == [f"{first}/documents", f"{second}/documents"]
        # A carrier sees the periods it carries only.
        mine = (await listed(client, f"{agreement}/deliveries", carrier))["periods"]
        assert [p["delivery_id"] for p in mine] == deliveries[:1]

        # The agreement itself: its order per month; the rest is the periods'.
        own = await listed(client, f"{agreement}/documents", buyer)
        assert kind_of(own, "order")["available"] is True
        assert kind_of(own, "transport")["available"] is False
        assert "periods" in kind_of(own, "delivery")["reason"]
        assert {i["state"] for i in own["invoices"]} == {"not-yet"}
        r = await client.get(kind_of(own, "order")["json"], headers=buyer.auth)
        assert orjson.loads(await r.read())["content"]["quantity"]["per"] == "month"

        # A period's order: the period's quantity, price and window, naming the period.
        period = await listed(client, f"{first}/documents", buyer)
        assert period["delivery_id"] == deliveries[0]
        order = kind_of(period, "order")
        assert (order["available"], order["version"], order["missing"]) == (True, 1, [])
        r = await client.get(order["json"], headers=seller.auth)
        content = orjson.loads(await r.read())["content"]
        assert content["agreement_period"] == {
            "delivery_id": deliveries[0],
            "period": "month",
            "key": "2026-12",
        }
        assert content["quantity"] == {"amount": 4.0, "unit": "t", "weight_t": 4.0}
        assert content["price"]["total"] == 140.0
        scheduled = next(e for e in story if isinstance(e, DeliveryScheduled))
        assert content["pickup"]["window"]["start"] == scheduled.pickup_window.start.isoformat()
        # Its transport document is its own carrier's; no delivery report before the delivery.
        transport = kind_of(period, "transport")
        assert (transport["available"], transport["issuer_id"]) == (True, carrier.partner_id)
        assert kind_of(period, "delivery")["available"] is False

        # Outsiders: 404 everywhere; the other period's carrier too; an unknown period 404.
        for path in (
            f"{agreement}/deliveries",
            f"{first}/documents",
            order["pdf"],
            order["json"],
            f"{first}/invoices/material.xml",
        ):
            await problem(await client.get(path, headers=outsider.auth), 404)
        for path in (f"{first}/documents", order["pdf"]):
            await problem(await client.get(path, headers=other_carrier.auth), 404)
        await problem(await client.post(order["approve"], headers=outsider.auth), 404)
        r = await client.post(
            f"{first}/transport/pickup", json={"weight_t": 4.0}, headers=other_carrier.auth
        )
        await problem(r, 404)
        unknown = f"{agreement}/deliveries/{uuid.uuid4()}/documents"
        await problem(await client.get(unknown, headers=seller.auth), 404)
        # The agreement's own route does not take a period's transport.
        r = await client.post(
            f"{agreement}/transport/pickup", json={"weight_t": 4.0}, headers=carrier.auth
        )
        assert (await problem(r, 409))["type"].endswith("/per-period")

        # Each period's carrier confirms its pickup and delivery; the delivery report follows.
        weights = {deliveries[0]: 3.95, deliveries[1]: 4.1}
        for delivery_id, who in zip(deliveries, (carrier, other_carrier), strict=True):
            base = f"{agreement}/deliveries/{delivery_id}"
            r = await client.post(
                f"{base}/transport/pickup", json={"weight_t": 4.02}, headers=who.auth
            )
            assert r.status == 202, await r.text()

            async def picked_up(base: str = base) -> bool:
                return (await listed(client, f"{base}/documents", seller))["transport"][
                    "pickup"
                ] is not None

            await eventually(picked_up, 30)
            r = await client.post(
                f"{base}/transport/delivery",
                json={"weight_t": weights[delivery_id]},
                headers=who.auth,
            )
            assert r.status == 202, await r.text()

            async def reported(base: str = base) -> bool:
                body = await listed(client, f"{base}/documents", buyer)
                return bool(kind_of(body, "delivery")["available"])

            await eventually(reported, 30)
            report = kind_of(await listed(client, f"{base}/documents", buyer), "delivery")
            r = await client.get(report["json"], headers=buyer.auth)
            content = orjson.loads(await r.read())["content"]
            assert content["delivered_weight_t"] == weights[delivery_id]
            assert content["agreement_period"]["delivery_id"] == delivery_id
            # The buyer approves the period's delivery report (the order too, once).
            for doc in (report, kind_of(await listed(client, f"{base}/documents", buyer), "order")):
                r = await client.post(doc["approve"], headers=buyer.auth)
                assert r.status == 202, await r.text()

            async def approved(base: str = base) -> bool:
                body = await listed(client, f"{base}/documents", seller)
                return bool(kind_of(body, "delivery")["approved"])

            await eventually(approved, 30)

        # The period's carrier's pickup is not on the other period's documents.
        second_docs = await listed(client, f"{second}/documents", seller)
        assert second_docs["transport"]["delivery"]["weight_t"] == 4.1

        # The approvals name their period: the deals consumer keeps them under it.
        assert await _approvals(settings, match_id) == {
            (d, k) for d in deliveries for k in ("order", "delivery")
        }

        # The pages: the agreement lists each period's documents; the seller issues each
        # period's material invoice, the carriers their transport invoices.
        # The buyer is billed: its page has no button, and it is refused in its words.
        await as_person(client, await person(settings, buyer.partner_id, "admin"))
        buyer_html = await (await client.get(f"/app/agreements/{match_id}")).text()
        assert "Documents of period 2026-12" in buyer_html
        assert "Issue the invoice for the material" not in buyer_html
        first_page = f"/app/agreements/{match_id}/periods/{deliveries[0]}"
        r = await client.post(
            f"{first_page}/invoices/material",
            data={"csrf": csrf_of(buyer_html)},
            allow_redirects=False,
        )
        assert r.status == 403
        assert "Only the party that is paid issues this invoice." in await r.text()
        seller_admin = await person(settings, seller.partner_id, "admin")
        await as_person(client, seller_admin)
        page = await client.get(f"/app/agreements/{match_id}")
        assert page.status == 200
        html = await page.text()
        for key, delivery_id in zip(PERIODS, deliveries, strict=True):
            assert f"Documents of period {key}" in html
            pages_base = f"/app/agreements/{match_id}/periods/{delivery_id}"
            assert f'href="{pages_base}/documents/order/1.pdf"' in html
            assert f'action="{pages_base}/invoices/material"' in html
        numbers = []
        files: dict[str, bytes] = {}
        for delivery_id in deliveries:
            pages_base = f"/app/agreements/{match_id}/periods/{delivery_id}"
            r = await client.post(
                f"{pages_base}/invoices/material",
                data={"csrf": csrf_of(html)},
                allow_redirects=False,
            )
            assert r.status == 303, await r.text()
            r = await client.get(f"{pages_base}/invoices/material.xml")
            assert r.status == 200
            xml = await r.read()
            files[f"material-{delivery_id}.xml"] = xml
            numbers.append(xml.split(b"<cbc:ID>", 1)[1].split(b"</cbc:ID>", 1)[0])
        # One sequence per issuer, without gaps, across the periods.
        first_number = int(numbers[0])
        assert [int(n) for n in numbers] == [first_number, first_number + 1]
        page = await client.get(f"/app/agreements/{match_id}")
        html = await page.text()
        assert "138.25 EUR due" in html  # 3.95 t at 35 EUR, intra-community: no VAT
        assert "143.50 EUR due" in html  # 4.1 t
        r = await client.get(f"{first_page}/invoices/material.pdf")
        assert r.status == 200
        assert "Пекарна Добруджа ЕООД" in pdf_text(await r.read())
        xml = files[f"material-{deliveries[0]}.xml"]
        assert f"<cbc:BuyerReference>{match_id} 2026-12</cbc:BuyerReference>".encode() in xml
        issued = await listed(client, f"{first}/documents", seller)
        material = next(i for i in issued["invoices"] if i["kind"] == "material")
        assert material["state"] == "issued"
        assert material["xml"] == f"{first}/invoices/material.xml"

        # The carrier of the first period invoices the seller for its transport.
        await as_person(client, await person(settings, carrier.partner_id, "admin"))
        pages_base = f"/app/agreements/{match_id}/periods/{deliveries[0]}"
        room_page = await client.get(f"/app/deals/{match_id}")
        assert room_page.status == 200
        room_html = await room_page.text()
        # Its deal room lists the period it carries (with its confirmation form), not the other.
        assert "Period 2026-12" in room_html
        assert "Period 2027-01" not in room_html
        assert f'action="{pages_base}/transport/delivery"' in room_html
        assert f'action="{pages_base}/invoices/transport"' in room_html
        r = await client.post(
            f"{pages_base}/invoices/transport",
            data={"csrf": csrf_of(room_html)},
            allow_redirects=False,
        )
        assert r.status == 303, await r.text()
        assert r.headers["Location"] == f"/app/deals/{match_id}?notice=invoiced#periods"
        # The other period's files are not its to fetch.
        other_base = f"/app/agreements/{match_id}/periods/{deliveries[1]}"
        assert (await client.get(f"{other_base}/invoices/material.xml")).status == 404
        r = await client.get(f"{pages_base}/invoices/transport.xml")
        assert r.status == 200
        files["transport.xml"] = await r.read()

        # An outsider's person: the page and every file 404.
        await as_person(client, await person(settings, outsider.partner_id, "admin"))
        assert (await client.get(f"/app/agreements/{match_id}")).status == 404
        for path in (
            f"{pages_base}/documents/order/1.pdf",
            f"{pages_base}/invoices/material.xml",
            f"{pages_base}/invoices/transport.pdf",
        ):
            assert (await client.get(path)).status == 404, path

        # The KPIs count each period's delivered weight, not the scheduled 4 t.
        async def delivered_weights() -> bool:
            r = await client.get("/v1/impact", headers=seller.auth)
            figures = (await r.json())["headline"]
            return bool(figures["tonnes_exchanged"] == 3.95 + 4.1)

        await eventually(delivered_weights, 60)

    # Every period invoice passes the official CEN and Peppol rules.
    paths = written(tmp_path, files)
    code, checked = validate(paths)
    assert code == 0, checked.errors
    for path in paths:
        assert checked.results[path.name] == dict.fromkeys(RULE_SETS, "valid"), path.name
        assert path.name not in checked.errors


def written(directory: Path, files: dict[str, bytes]) -> list[Path]:
    paths = []
    for name, data in sorted(files.items()):
        path = directory / name
        path.write_bytes(data)
        paths.append(path)
    return paths


async def _approvals(settings: Settings, match_id: str) -> set[tuple[str, str]]:
    """The approvals kept under the agreement's periods: (delivery id, kind)."""
    conn = await asyncpg.connect(settings.dsn)
    try:
        rows = await conn.fetch(
            "SELECT match_id, kind FROM deal_approvals WHERE match_id IN"
            " (SELECT body->>'delivery_id' FROM deal_events WHERE match_id = $1"
            "  AND type = 'market.delivery.scheduled.v1')",
            match_id,
        )
    finally:
        await conn.close()
    return {(r["match_id"], r["kind"]) for r in rows}
