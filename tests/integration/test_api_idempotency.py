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
from producers.api import listings, writes
from tests.integration.api_helpers import (
    Partner,
    eventually,
    offer_body,
    register,
    running_api,
)
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


# What an API process of a version before 0016 runs on every request with a key (its code,
# restated): it replays any row it finds there, so a row without an answer made it answer 500.
OLD_VERSION_READ = (
    "SELECT request_hash, status, body FROM idempotency_keys WHERE partner_id = $1 AND key = $2"
)


async def test_a_request_in_progress_is_invisible_to_an_older_version_and_replays_keep_location(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    seller = await register(settings, "sme", "Rolling Upgrade AB")
    before = await end_offsets(settings, "market.listings")
    body = orjson.dumps(offer_body())
    headers = seller.auth | JSON | {"Idempotency-Key": "rolling-1"}
    # The write is held at the door to Kafka until the test has looked at the tables.
    go = asyncio.Event()
    real_publish = writes.publish

    async def held_publish(*args: Any, **kwargs: Any) -> None:
        await go.wait()
        await real_publish(*args, **kwargs)

    monkeypatch.setattr(listings, "publish", held_publish)
    conn = await connect(settings)
    try:
        async with running_api(settings) as client:
            first = asyncio.create_task(client.post("/v1/offers", data=body, headers=headers))
            waiting = [
                asyncio.create_task(client.post("/v1/offers", data=body, headers=headers))
                for _ in range(3)
            ]

            async def reserved() -> bool:
                return bool(
                    await conn.fetchval(
                        "SELECT count(*) FROM idempotency_reservations"
                        " WHERE partner_id = $1 AND key = 'rolling-1'",
                        seller.partner_id,
                    )
                )

            await eventually(reserved, 10)
            # In progress: the older version finds no row (it would run the write itself,
            # as it always did), not a row without an answer.
            assert await conn.fetchrow(OLD_VERSION_READ, seller.partner_id, "rolling-1") is None
            go.set()
            answers = await asyncio.gather(first, *waiting)
            assert [r.status for r in answers] == [202] * 4
            offer_id = (await answers[0].json())["offer_id"]
            location = f"/v1/offers/{offer_id}"
            # Every answer, the replayed ones too, says where the offer will be readable.
            assert [r.headers.get("Location") for r in answers] == [location] * 4
            # One of the four ran the write (not necessarily the first task: they race for the
            # reservation); the three others were answered with its answer.
            replayed = [r.headers.get("Idempotent-Replayed") for r in answers]
            assert sorted(replayed, key=str) == [None, "true", "true", "true"], replayed
            assert {(await r.json())["offer_id"] for r in answers} == {offer_id}
            again = await client.post("/v1/offers", data=body, headers=headers)
            assert again.headers["Idempotent-Replayed"] == "true"
            assert again.headers["Location"] == location
            # The answer is there for the older version, complete; the reservation is gone.
            old = await conn.fetchrow(OLD_VERSION_READ, seller.partner_id, "rolling-1")
            assert old is not None
            assert (old["status"], orjson.loads(old["body"])["offer_id"]) == (202, offer_id)
            assert not await reserved()
    finally:
        await conn.close()
    mine = await offers_of(settings, seller, before)
    assert [e["offer_id"] for e in mine] == [offer_id]


async def test_answers_of_an_older_version_are_replayed_and_reservations_taken_over(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    seller = await register(settings, "sme", "Mixed Versions AB")
    before = await end_offsets(settings, "market.listings")
    body = orjson.dumps(offer_body())
    fingerprint = hashlib.sha256(b"\n".join([b"POST", b"/v1/offers", body])).digest()
    conn = await connect(settings)
    try:
        # An answer stored by a version before this one: no headers kept.
        stored = {"status": "accepted", "event_id": "e-old", "offer_id": "o-old"}
        await conn.execute(
            "INSERT INTO idempotency_keys (partner_id, key, request_hash, status, body)"
            " VALUES ($1, 'old-answer', $2, 202, $3)",
            seller.partner_id,
            fingerprint,
            orjson.dumps(stored),
        )

        async def reservation(key: str, held_for_s: float) -> None:
            await conn.execute(
                "INSERT INTO idempotency_reservations (partner_id, key, request_hash, holder,"
                " held_until) VALUES ($1, $2, $3, gen_random_uuid(),"
                " now() + make_interval(secs => $4))",
                seller.partner_id,
                key,
                fingerprint,
                held_for_s,
            )

        monkeypatch.setattr(writes, "WAIT_S", 1.0)
        async with running_api(settings) as client:
            r = await client.post(
                "/v1/offers",
                data=body,
                headers=seller.auth | JSON | {"Idempotency-Key": "old-answer"},
            )
            assert (r.status, await r.json()) == (202, stored)
            assert r.headers["Idempotent-Replayed"] == "true"
            assert "Location" not in r.headers
            # A reservation whose holder died is taken over by the same request ...
            await reservation("dead-holder", -5)
            r = await client.post(
                "/v1/offers",
                data=body,
                headers=seller.auth | JSON | {"Idempotency-Key": "dead-holder"},
            )
            assert r.status == 202, await r.text()
            assert "Idempotent-Replayed" not in r.headers
            # ... not by another request, which is refused as a reuse of the key.
            await reservation("other-body", -5)
            r = await client.post(
                "/v1/offers",
                json=offer_body(quantity={"amount": 99, "unit": "t"}),
                headers=seller.auth | {"Idempotency-Key": "other-body"},
            )
            assert r.status == 422
            assert (await r.json())["type"].endswith("/idempotency-key-reused")
            # A live one is waited for, then 409.
            await reservation("live-holder", 60)
            r = await client.post(
                "/v1/offers",
                data=body,
                headers=seller.auth | JSON | {"Idempotency-Key": "live-holder"},
            )
            assert r.status == 409
            assert (await r.json())["type"].endswith("/idempotency-key-in-progress")
    finally:
        await conn.close()
    assert len(await offers_of(settings, seller, before)) == 1
