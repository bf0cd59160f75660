"""The documents of a deal (#22 item 2) on the real stack: the order appears once the match is
confirmed, the transport document once it is awarded, the delivery report once the carrier has
confirmed the delivery; each is versioned by its sources (legal data declared, a pickup
confirmed), approved by its issuer only (an event on market.deals), downloadable as PDF (with
the Bulgarian names in it, read back) and JSON by the deal's participants and by no one else
(404); a stored content altered behind the exchange's back is refused; the impact figures
count the weight delivered instead of the planned."""

from __future__ import annotations

import io
from typing import Any

import asyncpg
import orjson
from aiohttp.test_utils import TestClient
from pypdf import PdfReader

from consumers.analytics import TOPICS as ANALYTICS_TOPICS
from consumers.analytics import Analytics
from consumers.deals import TOPICS, DealRooms
from marketplace.core.documents import digest
from marketplace.settings import Settings
from producers.web.app import create_service
from schemas.topics import DEALS
from tests.integration.api_helpers import (
    Partner,
    consumer_running,
    eventually,
    register,
    running_api,
)
from tests.integration.kafka_helpers import end_offsets, read_since
from tests.integration.test_deal_room import award, confirmed_match, problem
from tests.integration.test_pages_accounts import csrf_of, plain
from tests.integration.test_pages_matrix import person

Client = TestClient[Any, Any]
SELLER_LEGAL = {
    "legal_name": "Пласт Плевен ООД",
    "street": "ул. Васил Левски 12",
    "postcode": "5800",
    "city": "Плевен",
    "country": "BG",
    "vat_number": "BG123456789",
}
BUYER_LEGAL = {
    "legal_name": "Återvinning Uppsala AB",
    "street": "Kungsgatan 1",
    "postcode": "753 21",
    "city": "Uppsala",
    "country": "SE",
    "vat_number": "SE556732170701",
    "peppol_id": "0007:5567321707",
}
CARRIER_LEGAL = {
    "legal_name": "Frakt AB",
    "street": "Hamngatan 3",
    "postcode": "111 47",
    "city": "Stockholm",
    "country": "SE",
    "vat_number": "SE556000000001",
}


async def declare(client: Client, who: Partner, legal: dict[str, str]) -> None:
    r = await client.put(f"/v1/partners/{who.partner_id}/legal", json=legal, headers=who.auth)
    assert r.status == 202, await r.text()

    async def stored() -> bool:
        r = await client.get(f"/v1/partners/{who.partner_id}/legal", headers=who.auth)
        return r.status == 200 and (await r.json())["legal_name"] == legal["legal_name"]

    await eventually(stored, 30)


async def documents(client: Client, match_id: str, who: Partner) -> dict[str, Any]:
    r = await client.get(f"/v1/matches/{match_id}/documents", headers=who.auth)
    assert r.status == 200, await r.text()
    body: dict[str, Any] = await r.json()
    return body


async def document(client: Client, match_id: str, who: Partner, kind: str) -> dict[str, Any]:
    found = (await documents(client, match_id, who))["documents"]
    return next(d for d in found if d["kind"] == kind)


def pdf_text(data: bytes) -> str:
    return "".join(page.extract_text() for page in PdfReader(io.BytesIO(data)).pages)


async def test_the_documents_of_a_deal(settings: Settings) -> None:
    seller = await register(settings, "sme", "Plast Pleven")
    buyer = await register(settings, "sme", "Atervinning Uppsala")
    carrier = await register(settings, "logistics", "Frakt AB")
    outsider = await register(settings, "sme", "Someone Else AB")
    since = await end_offsets(settings, DEALS)
    async with (
        running_api(plain(settings), create_service) as client,
        consumer_running(settings, "deals", TOPICS, DealRooms),
    ):
        await declare(client, seller, SELLER_LEGAL)
        await declare(client, carrier, CARRIER_LEGAL)
        match_id, job_id = await confirmed_match(settings, seller, buyer)
        base = f"/v1/matches/{match_id}/documents"

        async def order_listed() -> bool:
            r = await client.get(base, headers=seller.auth)
            if r.status != 200:
                return False
            found = (await r.json())["documents"]
            return any(d["kind"] == "order" and d["available"] for d in found)

        await eventually(order_listed, 30)
        listed = await documents(client, match_id, seller)
        kinds = {d["kind"]: d for d in listed["documents"]}
        assert kinds["transport"]["available"] is False
        assert kinds["transport"]["reason"] == "the transport is not awarded yet"
        order = kinds["order"]
        assert (order["version"], order["approved"], order["issuer"]) == (1, False, "buyer")
        assert order["missing"] == ["buyer: legal data"]

        # Only the buyer issues the order, and not while a party's legal data is missing.
        body = await problem(await client.post(order["approve"], headers=seller.auth), 403)
        assert body["type"].endswith("/not-issuer")
        body = await problem(await client.post(order["approve"], headers=buyer.auth), 409)
        assert body["type"].endswith("/legal-data-missing")
        assert "buyer: legal data" in body["detail"]

        # The buyer declares its legal data: a new version of the order.
        await declare(client, buyer, BUYER_LEGAL)
        order = await document(client, match_id, buyer, "order")
        assert (order["version"], order["missing"]) == (2, [])
        body = await problem(await client.post(f"{base}/order/1/approve", headers=buyer.auth), 409)
        assert body["type"].endswith("/superseded")
        r = await client.post(order["approve"], headers=buyer.auth)
        assert r.status == 202, await r.text()

        async def approved() -> bool:
            return bool((await document(client, match_id, seller, "order"))["approved"])

        await eventually(approved, 30)
        r = await client.post(order["approve"], headers=buyer.auth)
        assert r.status == 200  # approved already: nothing more is published

        # Both parties download it: a PDF with the Bulgarian name, a JSON file with its hash.
        r = await client.get(f"{base}/order/2.pdf", headers=seller.auth)
        assert r.status == 200
        assert r.content_type == "application/pdf"
        text = pdf_text(await r.read())
        assert "Пласт Плевен ООД" in text
        assert "ул. Васил Левски 12" in text
        assert "Återvinning Uppsala AB" in text
        assert "approved by the buyer" in text
        assert "15 01 02" in text
        r = await client.get(f"{base}/order/2.json", headers=buyer.auth)
        assert r.status == 200
        file = orjson.loads(await r.read())
        assert file["sha256"] == digest(file["content"]) == order["sha256"]
        assert file["approval"]["issuer_id"] == buyer.partner_id
        assert file["content"]["seller"]["vat_number"] == "BG123456789"
        assert file["content"]["buyer"]["peppol_id"] == "iso6523-actorid-upis::0007:5567321707"
        assert file["content"]["material"]["list_of_waste_code"] == "150102"
        assert file["content"]["price"]["total"] == 140.0

        # Anyone else: 404 for the list, the files and the approval, as for no match at all.
        for path in (base, f"{base}/order/2.pdf", f"{base}/order/2.json"):
            await problem(await client.get(path, headers=outsider.auth), 404)
            await problem(await client.get(path, headers=carrier.auth), 404)  # not yet awarded
        await problem(await client.post(order["approve"], headers=outsider.auth), 404)
        await problem(await client.get(f"{base}/order/9.pdf", headers=seller.auth), 404)
        await problem(await client.get(f"{base}/invoice/1.pdf", headers=seller.auth), 404)

        # The award: the transport document, issued by the carrier.
        await award(settings, match_id, job_id, carrier)

        async def transport_listed() -> bool:
            r = await client.get(base, headers=carrier.auth)
            if r.status != 200:
                return False
            found = {d["kind"]: d for d in (await r.json())["documents"]}
            return bool(found["transport"]["available"])

        await eventually(transport_listed, 30)
        transport = await document(client, match_id, carrier, "transport")
        assert (transport["version"], transport["issuer"]) == (1, "carrier")
        await problem(await client.post(transport["approve"], headers=buyer.auth), 403)
        r = await client.post(transport["approve"], headers=carrier.auth)
        assert r.status == 202, await r.text()

        # The carrier confirms: not the delivery before the pickup; the pickup, then the
        # delivery, each a new version of the transport document; then the delivery report.
        stage = f"/v1/matches/{match_id}/transport"
        body = await problem(
            await client.post(f"{stage}/delivery", json={"weight_t": 3.95}, headers=carrier.auth),
            409,
        )
        assert body["type"].endswith("/not-picked-up")
        await problem(
            await client.post(f"{stage}/pickup", json={"weight_t": 4.02}, headers=buyer.auth), 403
        )
        body = await problem(
            await client.post(f"{stage}/pickup", json={"weight_t": -1}, headers=carrier.auth), 422
        )
        assert body["errors"][0]["field"] == "weight_t"
        r = await client.post(f"{stage}/pickup", json={"weight_t": 4.02}, headers=carrier.auth)
        assert r.status == 202, await r.text()

        async def picked_up() -> bool:
            listed = await documents(client, match_id, seller)
            return listed["transport"]["pickup"] is not None

        await eventually(picked_up, 30)
        transport = await document(client, match_id, carrier, "transport")
        assert transport["version"] == 2
        assert transport["approved"] is False
        assert [v["approved"] for v in transport["versions"]] == [False, True]
        r = await client.post(
            f"{stage}/delivery", json={"weight_t": 3.95, "note": "wet bales"}, headers=carrier.auth
        )
        assert r.status == 202, await r.text()

        async def report_listed() -> bool:
            return bool((await document(client, match_id, buyer, "delivery"))["available"])

        await eventually(report_listed, 30)
        report = await document(client, match_id, buyer, "delivery")
        assert report["issuer"] == "buyer"
        r = await client.get(report["json"], headers=seller.auth)
        content = orjson.loads(await r.read())["content"]
        assert content["planned"]["weight_t"] == 4.0
        assert content["delivered_weight_t"] == 3.95
        assert content["difference_t"] == -0.05
        assert content["loss_in_transit_t"] == 0.07
        # The carrier's note travels sealed with its data key (#21 item 8) and reads in clear.
        assert content["delivered"]["note"] == "wet bales"
        assert content["received"] is None
        # The buyer confirms the arrival with a note: the event carries it sealed with the
        # buyer's data key (#21 item 8), and the report shows it in clear.
        r = await client.post(
            f"/v1/matches/{match_id}/delivered",
            json={"note": "two bales torn"},
            headers=buyer.auth,
        )
        assert r.status == 202, await r.text()

        async def received() -> bool:
            report = await document(client, match_id, buyer, "delivery")
            r = await client.get(report["json"], headers=seller.auth)
            return orjson.loads(await r.read())["content"]["received"] is not None

        await eventually(received, 30)
        report = await document(client, match_id, buyer, "delivery")
        r = await client.get(report["json"], headers=seller.auth)
        content = orjson.loads(await r.read())["content"]
        assert content["received"]["note"] == "two bales torn"
        r = await client.post(report["approve"], headers=buyer.auth)
        assert r.status == 202, await r.text()
        transport = await document(client, match_id, carrier, "transport")
        assert transport["version"] == 3
        r = await client.get(transport["pdf"], headers=buyer.auth)
        text = pdf_text(await r.read())
        assert "Consignment note (CMR)" in text
        assert "Frakt AB" in text
        assert "DRAFT" in text

        # A stored content altered behind the exchange's back is refused, clearly.
        pool = await asyncpg.create_pool(settings.dsn, min_size=1, max_size=1)
        try:
            await pool.execute(
                "UPDATE deal_documents SET content = jsonb_set(content, '{price,total}', '1')"
                " WHERE match_id = $1 AND kind = 'order' AND version = 2",
                match_id,
            )
            body = await problem(await client.get(f"{base}/order/2.pdf", headers=buyer.auth), 409)
            assert body["type"].endswith("/document-altered")
        finally:
            await pool.close()

        # On the pages: the room lists the order, its participants download it, others 404.
        admin = await person(settings, seller.partner_id, "admin")
        stranger = await person(settings, outsider.partner_id, "admin")
        client.session.cookie_jar.update_cookies({"session": admin})
        page = await client.get(f"/app/deals/{match_id}")
        assert page.status == 200
        html = await page.text()
        assert 'id="document-order"' in html
        assert f"/app/deals/{match_id}/documents/delivery/1.pdf" in html
        r = await client.get(f"/app/deals/{match_id}/documents/delivery/1.pdf")
        assert r.status == 200
        assert r.content_type == "application/pdf"
        # A refusal is said in the documents' part of the room: the seller issues no report.
        csrf = csrf_of(html)
        r = await client.post(
            f"/app/deals/{match_id}/documents/transport/3/approve", data={"csrf": csrf}
        )
        assert r.status == 403
        assert "Only the party that issues this document approves it." in await r.text()
        # The carrier's confirmation: a weight that is none is refused next to its field.
        driver = await person(settings, carrier.partner_id, "member")
        client.session.cookie_jar.clear()
        client.session.cookie_jar.update_cookies({"session": driver})
        page = await client.get(f"/app/deals/{match_id}")
        html = await page.text()
        assert 'id="transport-form"' in html
        r = await client.post(
            f"/app/deals/{match_id}/transport/delivery",
            data={"csrf": csrf_of(html), "weight_t": "four", "key": "k1"},
        )
        assert r.status == 422
        html = await r.text()
        assert 'id="weight_t-error"' in html
        assert 'aria-describedby="weight_t-error"' in html
        client.session.cookie_jar.clear()
        client.session.cookie_jar.update_cookies({"session": stranger})
        r = await client.get(f"/app/deals/{match_id}/documents/delivery/1.pdf")
        assert r.status == 404
        assert (await client.get(f"/app/deals/{match_id}")).status == 404

    # The log: each approval names the version's SHA-256 and sources; the confirmations their
    # weights; every event on market.deals, keyed by the match.
    records = [r for r in await read_since(settings, DEALS, since) if r.key == match_id.encode()]
    events = [orjson.loads(r.value) for r in records]
    approvals = [e for e in events if e["type"] == "market.deal.document_approved.v1"]
    assert sorted((e["kind"], e["version"]) for e in approvals) == [
        ("delivery", 2),  # version 1 before the buyer confirmed the arrival
        ("order", 2),
        ("transport", 1),
    ]
    by_kind = {e["kind"]: e for e in approvals}
    assert by_kind["order"]["sha256"] == order["sha256"]
    assert by_kind["order"]["issuer_id"] == buyer.partner_id
    assert by_kind["transport"]["issuer_id"] == carrier.partner_id
    confirmations = [e for e in events if e["type"] == "market.deal.transport_confirmed.v1"]
    assert [(e["stage"], e["weight_t"]) for e in confirmations] == [
        ("pickup", 4.02),
        ("delivery", 3.95),
    ]


async def test_the_weight_delivered_feeds_the_kpis(settings: Settings) -> None:
    """The impact figures count a one-off match's tonnes as the carrier delivered them, once it
    confirmed the delivery (the latest confirmation), with the saving by reuse scaled to them."""
    seller = await register(settings, "sme", "Plast Pleven")
    buyer = await register(settings, "sme", "Atervinning Uppsala")
    carrier = await register(settings, "logistics", "Frakt AB")
    async with (
        running_api(settings, create_service) as client,
        consumer_running(settings, "deals", TOPICS, DealRooms),
        consumer_running(settings, "analytics", ANALYTICS_TOPICS, Analytics),
    ):
        match_id, job_id = await confirmed_match(settings, seller, buyer)

        async def headline() -> dict[str, Any]:
            r = await client.get("/v1/impact", headers=seller.auth)
            assert r.status == 200, await r.text()
            figures: dict[str, Any] = (await r.json())["headline"]
            return figures

        async def planned() -> bool:
            return bool((await headline())["tonnes_exchanged"] == 4.0)

        await eventually(planned, 60)
        assert (await headline())["co2e_saved_kg"] == 5800.0 - 26.0  # the estimate's transport
        await award(settings, match_id, job_id, carrier)

        async def awarded() -> bool:
            r = await client.get(f"/v1/matches/{match_id}/documents", headers=carrier.auth)
            return r.status == 200

        await eventually(awarded, 30)
        stage = f"/v1/matches/{match_id}/transport"
        r = await client.post(f"{stage}/pickup", json={"weight_t": 4.02}, headers=carrier.auth)
        assert r.status == 202, await r.text()

        async def picked_up() -> bool:
            r = await client.get(f"/v1/matches/{match_id}/documents", headers=seller.auth)
            return (await r.json())["transport"]["pickup"] is not None

        await eventually(picked_up, 30)
        # A delivery confirmed, then corrected: the latest counts.
        for weight in (3.9, 3.95):
            r = await client.post(
                f"{stage}/delivery", json={"weight_t": weight}, headers=carrier.auth
            )
            assert r.status == 202, await r.text()

        async def delivered() -> bool:
            return bool((await headline())["tonnes_exchanged"] == 3.95)

        await eventually(delivered, 60)
        # 5,800 kg saved for 4 t planned, scaled to 3.95 t, less the carrier's 21 kg.
        assert (await headline())["co2e_saved_kg"] == 5800.0 * 3.95 / 4.0 - 21.0


async def test_a_facilitator_approves_for_the_buyer_it_acts_for(settings: Settings) -> None:
    seller = await register(settings, "sme", "Plast Pleven")
    buyer = await register(settings, "sme", "Atervinning Uppsala")
    helper = await register(settings, "facilitator", "Cluster Staff")
    since = await end_offsets(settings, DEALS)
    async with (
        running_api(settings, create_service) as client,
        consumer_running(settings, "deals", TOPICS, DealRooms),
    ):
        await declare(client, seller, SELLER_LEGAL)
        await declare(client, buyer, BUYER_LEGAL)
        match_id, _job = await confirmed_match(settings, seller, buyer)
        base = f"/v1/matches/{match_id}/documents"

        async def listed() -> bool:
            r = await client.get(base, headers=buyer.auth)
            return r.status == 200 and (await r.json())["documents"][0]["available"]

        await eventually(listed, 30)
        await problem(await client.get(base, headers=helper.auth), 404)  # no consent yet
        r = await client.post(f"/v1/consents/{helper.partner_id}", headers=buyer.auth)
        assert r.status == 202, await r.text()

        async def consented() -> bool:
            return (await client.get(base, headers=helper.auth)).status == 200

        await eventually(consented, 30)
        order = await document(client, match_id, helper, "order")
        assert order["you_issue"] is True
        r = await client.post(order["approve"], headers=helper.auth)
        assert r.status == 202, await r.text()

        async def approved() -> bool:
            return bool((await document(client, match_id, buyer, "order"))["approved"])

        await eventually(approved, 30)
        assert (await document(client, match_id, seller, "order"))["you_issue"] is False
    records = [r for r in await read_since(settings, DEALS, since) if r.key == match_id.encode()]
    approvals = [
        orjson.loads(r.value)
        for r in records
        if dict(r.headers).get("ce_type") == b"market.deal.document_approved.v1"
    ]
    assert [(a["issuer_id"], a["actor_id"]) for a in approvals] == [
        (buyer.partner_id, helper.partner_id)
    ]
