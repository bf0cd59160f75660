"""One Idempotency-Key, one record on the topic, under any concurrency: simultaneous requests
with the same key publish once and all get the first answer; with different bodies, one wins
and the others are refused; a reservation whose holder died is taken over, a live one waited
for (then 409). Sequential retries: tests/integration/test_api_listings.py."""

from __future__ import annotations

import asyncio
import hashlib
from typing import Any

import orjson
import pytest

from marketplace.db import connect
from marketplace.settings import Settings
from producers.api import writes
from tests.integration.api_helpers import Partner, offer_body, register, running_api
from tests.integration.kafka_helpers import end_offsets, read_since

pytestmark = pytest.mark.integration
JSON = {"Content-Type": "application/json"}


async def offers_of(settings: Settings, partner: Partner, before: Any) -> list[dict[str, Any]]:
    records = await read_since(settings, "market.listings", before)
    events = [orjson.loads(r.value) for r in records]
    return [e for e in events if e.get("owner_id") == partner.partner_id]


async def test_simultaneous_requests_with_one_key_publish_once(settings: Settings) -> None:
    seller = await register(settings, "sme", "Simultaneous AB")
    before = await end_offsets(settings, "market.listings")
    body = orjson.dumps(offer_body())
    headers = seller.auth | JSON | {"Idempotency-Key": "double-click-1"}
    async with running_api(settings) as client:
        answers = await asyncio.gather(
            *(client.post("/v1/offers", data=body, headers=headers) for _ in range(10))
        )
        assert [r.status for r in answers] == [202] * 10
        bodies = [await r.json() for r in answers]
        assert all(b == bodies[0] for b in bodies)
        replayed = [r.headers.get("Idempotent-Replayed") for r in answers]
        assert replayed.count("true") == 9
        # And once more afterwards: the same answer again.
        again = await client.post("/v1/offers", data=body, headers=headers)
        assert await again.json() == bodies[0]
    mine = await offers_of(settings, seller, before)
    assert [e["offer_id"] for e in mine] == [bodies[0]["offer_id"]]


async def test_simultaneous_different_requests_with_one_key(settings: Settings) -> None:
    seller = await register(settings, "sme", "Reused Key AB")
    before = await end_offsets(settings, "market.listings")
    headers = seller.auth | {"Idempotency-Key": "reused-1"}
    async with running_api(settings) as client:
        answers = await asyncio.gather(
            *(
                client.post(
                    "/v1/offers",
                    json=offer_body(quantity={"amount": 10 + n, "unit": "t"}),
                    headers=headers,
                )
                for n in range(10)
            )
        )
        statuses = sorted(r.status for r in answers)
        assert statuses == [202] + [422] * 9
        for r in answers:
            if r.status == 422:
                assert r.content_type == "application/problem+json"
                assert (await r.json())["type"].endswith("/idempotency-key-reused")
    assert len(await offers_of(settings, seller, before)) == 1


async def test_a_dead_reservation_is_taken_over_and_a_live_one_waited_for(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    seller = await register(settings, "sme", "Reservations AB")
    before = await end_offsets(settings, "market.listings")
    body = orjson.dumps(offer_body())
    fingerprint = hashlib.sha256(b"\n".join([b"POST", b"/v1/offers", body])).digest()
    conn = await connect(settings)

    async def pending(key: str, held_for_s: float) -> None:
        await conn.execute(
            "INSERT INTO idempotency_keys (partner_id, key, request_hash, holder, held_until)"
            " VALUES ($1, $2, $3, gen_random_uuid(), now() + make_interval(secs => $4))",
            seller.partner_id,
            key,
            fingerprint,
            held_for_s,
        )

    try:
        monkeypatch.setattr(writes, "WAIT_S", 1.0)
        async with running_api(settings) as client:
            # Its holder died a while ago: the next request with the same body takes it over.
            await pending("crashed-1", -5)
            headers = seller.auth | JSON | {"Idempotency-Key": "crashed-1"}
            r = await client.post("/v1/offers", data=body, headers=headers)
            assert r.status == 202, await r.text()
            assert "Idempotent-Replayed" not in r.headers
            # Held by a live request: waited for, then 409 with Retry-After ...
            await pending("busy-1", 60)
            headers = seller.auth | JSON | {"Idempotency-Key": "busy-1"}
            r = await client.post("/v1/offers", data=body, headers=headers)
            assert r.status == 409
            assert r.headers["Retry-After"] == "1"
            assert (await r.json())["type"].endswith("/idempotency-key-in-progress")
            # ... or its answer, as soon as it is stored.
            waiting = asyncio.create_task(client.post("/v1/offers", data=body, headers=headers))
            await asyncio.sleep(0.3)
            stored = {"status": "accepted", "event_id": "e-1", "offer_id": "o-1"}
            await conn.execute(
                "UPDATE idempotency_keys SET status = 202, body = $3, holder = NULL,"
                " held_until = NULL WHERE partner_id = $1 AND key = $2",
                seller.partner_id,
                "busy-1",
                orjson.dumps(stored),
            )
            r = await waiting
            assert (r.status, await r.json()) == (202, stored)
            assert r.headers["Idempotent-Replayed"] == "true"
    finally:
        await conn.close()
    assert len(await offers_of(settings, seller, before)) == 1
