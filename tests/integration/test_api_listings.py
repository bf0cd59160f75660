"""The partner API against the real broker and database: writes become events on the right
topic, reads come back from the projector's read models, bad input publishes nothing."""

from __future__ import annotations

import dataclasses
from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestClient

from marketplace.cloudevents import Envelope
from marketplace.db import connect
from marketplace.partners import revoke_keys, rotate_key
from marketplace.settings import Settings
from tests.integration.api_helpers import (
    Partner,
    eventually,
    offer_body,
    register,
    request_body,
    running_api,
)
from tests.integration.kafka_helpers import end_offsets, read_since

pytestmark = pytest.mark.integration
Client = TestClient[Any, Any]


async def visible(client: Client, partner: Partner, path: str, **expect: Any) -> dict[str, Any]:
    found: dict[str, Any] = {}

    async def check() -> bool:
        nonlocal found
        r = await client.get(path, headers=partner.auth)
        if r.status != 200:
            return False
        found = await r.json()
        return all(found.get(k) == v for k, v in expect.items())

    await eventually(check)
    return found


async def test_offer_lifecycle_reaches_kafka_and_the_read_model(settings: Settings) -> None:
    seller = await register(settings, "sme", "Textil Gävle AB")
    before = await end_offsets(settings, "market.listings")
    async with running_api(settings) as client:
        r = await client.post("/v1/offers", json=offer_body(), headers=seller.auth)
        assert r.status == 202, await r.text()
        posted = await r.json()
        offer_id, event_id = posted["offer_id"], posted["event_id"]
        assert r.headers["Location"] == f"/v1/offers/{offer_id}"

        records = await read_since(settings, "market.listings", before)
        mine = [x for x in records if Envelope.from_headers(x.headers).id == event_id]
        assert len(mine) == 1
        envelope = Envelope.from_headers(mine[0].headers)
        assert envelope.type == "market.offer.posted.v1"
        assert envelope.subject == offer_id
        assert mine[0].key == b"textiles"  # 040222: the textiles family
        payload = orjson.loads(mine[0].value)
        assert payload["owner_id"] == seller.partner_id
        assert payload["terms"]["price"] == {"amount": -15.0, "currency": "EUR"}

        got = await visible(client, seller, f"/v1/offers/{offer_id}", status="open")
        assert got["material"]["code"] == "040222"
        assert got["terms"]["quantity"] == {"amount": 12.5, "unit": "t"}

        new_terms = offer_body(quantity={"amount": 8, "unit": "t"})["terms"]
        r = await client.put(
            f"/v1/offers/{offer_id}", json={"terms": new_terms}, headers=seller.auth
        )
        assert r.status == 202, await r.text()
        await eventually(lambda: _quantity_is(client, seller, offer_id, 8))

        listed = await client.get("/v1/offers?status=open", headers=seller.auth)
        assert [o["id"] for o in (await listed.json())["items"]] == [offer_id]

        r = await client.delete(
            f"/v1/offers/{offer_id}", json={"reason": "sold elsewhere"}, headers=seller.auth
        )
        assert r.status == 202
        await visible(client, seller, f"/v1/offers/{offer_id}", status="withdrawn")
        again = await client.delete(f"/v1/offers/{offer_id}", headers=seller.auth)
        assert again.status == 409
        assert again.content_type == "application/problem+json"


async def _quantity_is(client: Client, partner: Partner, offer_id: str, amount: float) -> bool:
    r = await client.get(f"/v1/offers/{offer_id}", headers=partner.auth)
    return r.status == 200 and (await r.json())["terms"]["quantity"]["amount"] == amount


async def test_request_is_posted_and_read_back(settings: Settings) -> None:
    buyer = await register(settings, "sme", "Isolering i Dalarna AB")
    async with running_api(settings) as client:
        body = request_body() | {"accepts_codes": ["040221"]}
        r = await client.post("/v1/requests", json=body, headers=buyer.auth)
        assert r.status == 202, await r.text()
        request_id = (await r.json())["request_id"]
        got = await visible(client, buyer, f"/v1/requests/{request_id}", status="open")
        assert got["terms"]["max_distance_km"] == 150
        assert got["accepts_codes"] == ["040221"]


BAD_OFFERS: list[tuple[str, dict[str, Any], int, str | None]] = [
    ("unknown code", offer_body(code="999999"), 422, "material.code"),
    (
        "negative quantity",
        offer_body(quantity={"amount": -3, "unit": "t"}),
        422,
        "terms.quantity.amount",
    ),
    (
        "window ends first",
        offer_body(available={"start": "2027-02-01T00:00:00Z", "end": "2027-01-01T00:00:00Z"}),
        422,
        "terms.available",
    ),
    (
        "latitude off the globe",
        offer_body() | {"location": {"lat": 123.0, "lon": 17.0}},
        422,
        "location.lat",
    ),
    ("unknown field", offer_body() | {"colour": "blue"}, 422, "colour"),
]


@pytest.mark.parametrize(
    ("case", "body", "status", "field"), BAD_OFFERS, ids=[c[0] for c in BAD_OFFERS]
)
async def test_bad_offers_are_refused_and_nothing_is_published(
    settings: Settings, case: str, body: dict[str, Any], status: int, field: str | None
) -> None:
    seller = await register(settings, "sme")
    before = await end_offsets(settings, "market.listings")
    async with running_api(settings) as client:
        r = await client.post("/v1/offers", json=body, headers=seller.auth)
        assert r.status == status, case
        assert r.content_type == "application/problem+json"
        problem = await r.json()
        assert problem["status"] == status
        if field != "body":
            assert problem["errors"][0]["field"] == field, problem
    assert await read_since(settings, "market.listings", before) == []


async def test_malformed_oversized_and_unauthenticated_requests(settings: Settings) -> None:
    seller = await register(settings, "sme")
    carrier = await register(settings, "logistics")
    before = await end_offsets(settings, "market.listings")
    small = dataclasses.replace(settings, api_max_body_bytes=2048)
    async with running_api(small) as client:
        r = await client.post(
            "/v1/offers",
            data=b"{not json",
            headers=seller.auth | {"Content-Type": "application/json"},
        )
        assert r.status == 400
        assert (await r.json())["type"].endswith("/malformed-json")

        big = offer_body()
        big["material"]["quality_notes"] = "x" * 1900
        big["material"]["description"] = "y" * 190
        big["location"]["region"] = "SE121"
        r = await client.post(
            "/v1/offers",
            data=orjson.dumps(big) + b" " * 2048,
            headers=seller.auth | {"Content-Type": "application/json"},
        )
        assert r.status == 413

        r = await client.post("/v1/offers", json=offer_body())
        assert r.status == 401
        assert r.headers["WWW-Authenticate"].startswith("Bearer")
        r = await client.post(
            "/v1/offers", json=offer_body(), headers={"Authorization": "Bearer mk_nope_nope"}
        )
        assert r.status == 401

        r = await client.post("/v1/offers", json=offer_body(), headers=carrier.auth)
        assert r.status == 403
    assert await read_since(settings, "market.listings", before) == []


async def test_partners_never_see_or_change_each_others_listings(settings: Settings) -> None:
    alice = await register(settings, "sme", "Alice Textiles")
    bob = await register(settings, "sme", "Bob Plastics")
    async with running_api(settings) as client:
        r = await client.post("/v1/offers", json=offer_body(), headers=alice.auth)
        offer_id = (await r.json())["offer_id"]
        r = await client.post("/v1/requests", json=request_body(), headers=alice.auth)
        request_id = (await r.json())["request_id"]
        await visible(client, alice, f"/v1/offers/{offer_id}")
        await visible(client, alice, f"/v1/requests/{request_id}")

        before = await end_offsets(settings, "market.listings")
        terms = {"terms": offer_body()["terms"]}
        rterms = {"terms": request_body()["terms"]}
        attempts = [
            ("GET", f"/v1/offers/{offer_id}", None),
            ("PUT", f"/v1/offers/{offer_id}", terms),
            ("DELETE", f"/v1/offers/{offer_id}", None),
            ("GET", f"/v1/requests/{request_id}", None),
            ("PUT", f"/v1/requests/{request_id}", rterms),
            ("DELETE", f"/v1/requests/{request_id}", None),
        ]
        for method, path, body in attempts:
            r = await client.request(method, path, json=body, headers=bob.auth)
            assert r.status == 404, (method, path, r.status)
        for path in ("/v1/offers", "/v1/requests"):
            r = await client.get(path, headers=bob.auth)
            assert (await r.json())["items"] == []
        assert await read_since(settings, "market.listings", before) == []
        # Alice still sees hers, unchanged.
        await visible(client, alice, f"/v1/offers/{offer_id}", status="open")


async def test_idempotency_key_gives_one_event_and_the_same_answer(settings: Settings) -> None:
    seller = await register(settings, "sme")
    before = await end_offsets(settings, "market.listings")
    async with running_api(settings) as client:
        headers = seller.auth | {"Idempotency-Key": "order-2026-11-23-1"}
        first = await client.post("/v1/offers", json=offer_body(), headers=headers)
        second = await client.post("/v1/offers", json=offer_body(), headers=headers)
        assert first.status == second.status == 202
        assert await first.json() == await second.json()
        assert second.headers["Idempotent-Replayed"] == "true"
        other = await client.post("/v1/offers", json=offer_body(code="150102"), headers=headers)
        assert other.status == 422
        assert (await other.json())["type"].endswith("/idempotency-key-reused")
    records = await read_since(settings, "market.listings", before)
    assert len(records) == 1


async def test_rate_limit_answers_429_with_retry_after(settings: Settings) -> None:
    seller = await register(settings, "sme")
    strict = dataclasses.replace(settings, api_rate_per_s=0.5, api_rate_burst=2)
    async with running_api(strict) as client:
        statuses = [(await client.get("/v1/offers", headers=seller.auth)).status for _ in range(2)]
        limited = await client.get("/v1/offers", headers=seller.auth)
        assert statuses == [200, 200]
        assert limited.status == 429
        assert int(limited.headers["Retry-After"]) >= 1


async def test_revoked_and_rotated_keys(settings: Settings) -> None:
    seller = await register(settings, "sme")
    conn = await connect(settings)
    try:
        new_key = await rotate_key(conn, seller.partner_id)
        async with running_api(settings) as client:
            old = await client.get("/v1/me", headers=seller.auth)
            assert old.status == 401
            fresh = Partner(seller.partner_id, new_key)
            me = await client.get("/v1/me", headers=fresh.auth)
            assert me.status == 200
            assert (await me.json())["partner_id"] == seller.partner_id
            assert await revoke_keys(conn, seller.partner_id) == 1
            assert (await client.get("/v1/me", headers=fresh.auth)).status == 401
    finally:
        await conn.close()


async def test_carrier_declares_capabilities(settings: Settings) -> None:
    carrier = await register(settings, "logistics", "Frakt Mitt AB")
    seller = await register(settings, "sme")
    body = {
        "depots": [{"location": {"lat": 60.6, "lon": 15.6}, "radius_km": 200}],
        "capacity_t": 24,
        "hazardous_permit": True,
        "vehicle_types": ["rigid_truck", "tipper"],
    }
    async with running_api(settings) as client:
        r = await client.put("/v1/carrier/capabilities", json=body, headers=carrier.auth)
        assert r.status == 202, await r.text()
        got = await visible(client, carrier, "/v1/carrier/capabilities", capacity_t=24)
        assert got["hazardous_permit"] is True
        assert got["vehicle_types"] == ["rigid_truck", "tipper"]
        r = await client.put("/v1/carrier/capabilities", json=body, headers=seller.auth)
        assert r.status == 403
        r = await client.put(
            "/v1/carrier/capabilities", json=body | {"depots": []}, headers=carrier.auth
        )
        assert r.status == 422
