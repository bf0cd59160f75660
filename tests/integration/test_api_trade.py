"""Match answers and transport quotes through the API. The matcher and the job creator are not
built yet, so the tests publish their events (MatchProposed, TransportJobRequested) the way they
will, and check what partners can see and do with them."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import orjson
import pytest
from aiohttp.test_utils import TestClient

from marketplace.cloudevents import Envelope
from marketplace.settings import Settings
from schemas.base import Event
from schemas.common import CriterionCheck, Location, Money, Quantity, Reason, Window
from schemas.logistics import TransportJobRequested
from schemas.matches import AgreementEnded, MatchProposed
from tests.integration.api_helpers import Partner, eventually, register, running_api
from tests.integration.kafka_helpers import end_offsets, read_since
from tests.integration.kafka_helpers import publish as publish_event
from tests.integration.test_deal_room import deal_events

pytestmark = pytest.mark.integration
Client = TestClient[Any, Any]
NOW = datetime.now(UTC)


async def publish(settings: Settings, event: Event) -> None:
    await publish_event(settings, event, time=NOW)


def proposal(seller: Partner, buyer: Partner) -> MatchProposed:
    return MatchProposed(
        match_id=str(uuid.uuid4()),
        offer_id="o-1",
        request_id="r-1",
        seller_id=seller.partner_id,
        buyer_id=buyer.partner_id,
        material_code="150102",
        quantity=Quantity(amount=4, unit="t"),
        delivered_price=Money(amount=35, currency="EUR"),
        distance_km=42.0,
        transport_co2e_kg=26.0,
        co2e_saved_kg=5800.0,
        score=0.82,
        reasons=(Reason(factor="distance_km", value=42.0, note="within 100 km"),),
        expires_at=NOW + timedelta(days=2),
    )


async def until(client: Client, partner: Partner, path: str, status: int = 200) -> Any:
    body: Any = None

    async def check() -> bool:
        nonlocal body
        r = await client.get(path, headers=partner.auth)
        body = await r.json()
        return r.status == status

    await eventually(check)
    return body


async def test_both_sides_answer_a_proposal_and_nobody_else_can(settings: Settings) -> None:
    seller = await register(settings, "sme", "Plast Pleven OOD")
    buyer = await register(settings, "sme", "Recikl Sofia OOD")
    stranger = await register(settings, "sme", "Someone Else")
    match = proposal(seller, buyer)
    await publish(settings, match)
    async with running_api(settings) as client:
        got = await until(client, seller, f"/v1/matches/{match.match_id}")
        assert got["your_side"] == "seller"
        # Not confirmed: the distance only rounded, in the reason that repeats it too (#19).
        assert (got["distance_km"], got["distance_exact"]) == (40.0, False)
        assert got["reasons"] == [{"factor": "distance_km", "value": 40.0, "note": "within 100 km"}]
        assert (
            await client.get(f"/v1/matches/{match.match_id}", headers=stranger.auth)
        ).status == 404
        r = await client.post(f"/v1/matches/{match.match_id}/accept", headers=stranger.auth)
        assert r.status == 404

        before = await end_offsets(settings, "market.listings")
        r = await client.post(f"/v1/matches/{match.match_id}/accept", headers=seller.auth)
        assert r.status == 202, await r.text()
        r = await client.post(
            f"/v1/matches/{match.match_id}/decline",
            json={"reason": "price too high"},
            headers=buyer.auth,
        )
        assert r.status == 202, await r.text()
        records = await read_since(settings, "market.listings", before)
        types = sorted(Envelope.from_headers(x.headers).type for x in records)
        assert types == ["market.match.accepted.v1", "market.match.declined.v1"]
        assert {x.key for x in records} == {b"plastics"}  # 150102: the plastics family

        async def both_answered() -> bool:
            r = await client.get(f"/v1/matches/{match.match_id}", headers=buyer.auth)
            return bool(
                (await r.json())["answers"]
                == {seller.partner_id: "accepted", buyer.partner_id: "declined"}
            )

        await eventually(both_answered)
        again = await client.post(f"/v1/matches/{match.match_id}/accept", headers=seller.auth)
        assert again.status == 409
        listed = await client.get("/v1/matches", headers=buyer.auth)
        assert match.match_id in [m["match_id"] for m in (await listed.json())["items"]]


async def test_a_match_says_its_distance_roughly_until_confirmed_then_exactly(
    settings: Settings,
) -> None:
    seller = await register(settings, "sme", "Hartie Ruse SRL")
    buyer = await register(settings, "sme", "Papper Gävle AB")
    match_id = str(uuid.uuid4())
    proposed, confirmed, _ = deal_events(seller, buyer, match_id, str(uuid.uuid4()))
    proposed = msgspec.structs.replace(
        proposed,
        distance_km=137.9,
        reasons=(Reason(factor="distance_km", value=137.9, note="within the buyer's 200 km"),),
        criteria=(
            CriterionCheck(
                criterion="max_distance_km", required="at most 200 km", offered="137.9 km", met=True
            ),
        ),
    )
    await publish(settings, proposed)
    async with running_api(settings) as client:
        for side in (seller, buyer):
            got = await until(client, side, f"/v1/matches/{match_id}")
            assert got["status"] == "proposed"
            assert (got["distance_km"], got["distance_exact"]) == (140.0, False)
            assert got["reasons"][0]["value"] == 140.0
            assert got["criteria"][0]["offered"] == "about 140 km"
            assert "137.9" not in orjson.dumps(got).decode()
            listed = await until(client, side, "/v1/matches")
            (item,) = [m for m in listed["items"] if m["match_id"] == match_id]
            assert (item["distance_km"], item["distance_exact"]) == (140.0, False)

        await publish(settings, confirmed)

        async def confirmed_read() -> bool:
            r = await client.get(f"/v1/matches/{match_id}", headers=buyer.auth)
            return bool((await r.json())["status"] == "confirmed")

        await eventually(confirmed_read)
        for side in (seller, buyer):
            got = await until(client, side, f"/v1/matches/{match_id}")
            assert (got["distance_km"], got["distance_exact"]) == (137.9, True)
            assert got["reasons"][0]["value"] == 137.9
            assert got["criteria"][0]["offered"] == "137.9 km"
            listed = await until(client, side, "/v1/matches")
            (item,) = [m for m in listed["items"] if m["match_id"] == match_id]
            assert (item["distance_km"], item["distance_exact"]) == (137.9, True)

        # An agreement that ended after its confirmation stays exact (both sides knew it).
        await publish(
            settings,
            AgreementEnded(match_id=match_id, material_code="150102", reason="term_over"),
        )

        async def ended() -> bool:
            r = await client.get(f"/v1/matches/{match_id}", headers=seller.auth)
            return bool((await r.json())["status"] == "ended")

        await eventually(ended)
        got = await until(client, seller, f"/v1/matches/{match_id}")
        assert (got["distance_km"], got["distance_exact"]) == (137.9, True)


def job(hazardous: bool = False) -> TransportJobRequested:
    return TransportJobRequested(
        job_id=str(uuid.uuid4()),
        match_id=str(uuid.uuid4()),
        material_code="150102",
        hazardous=hazardous,
        quantity=Quantity(amount=4, unit="t"),
        weight_t=4.0,
        pickup=Location(lat=60.61, lon=16.54, region="SE312"),  # Sandviken
        delivery=Location(lat=60.67, lon=17.14, region="SE313"),  # Gävle
        pickup_window=Window(start=NOW + timedelta(days=3), end=NOW + timedelta(days=5)),
        delivery_window=Window(start=NOW + timedelta(days=3), end=NOW + timedelta(days=6)),
        bidding_deadline=NOW + timedelta(days=1),
    )


async def declare(client: Client, carrier: Partner, **overrides: Any) -> None:
    body = {
        "depots": [{"location": {"lat": 60.67, "lon": 17.14}, "radius_km": 100}],
        "capacity_t": 12,
        "hazardous_permit": False,
        "vehicle_types": ["rigid_truck"],
    } | overrides
    r = await client.put("/v1/carrier/capabilities", json=body, headers=carrier.auth)
    assert r.status == 202, await r.text()
    await until(client, carrier, "/v1/carrier/capabilities")


async def test_carriers_see_fitting_jobs_quote_revise_and_withdraw(settings: Settings) -> None:
    local = await register(settings, "logistics", "Frakt Gävleborg AB")
    far = await register(settings, "logistics", "Transport Plovdiv EOOD")
    plain, dangerous = job(), job(hazardous=True)
    await publish(settings, plain)
    await publish(settings, dangerous)
    async with running_api(settings) as client:
        r = await client.get("/v1/jobs", headers=local.auth)
        assert r.status == 409  # no capabilities declared yet
        await declare(client, local)
        await declare(
            client, far, depots=[{"location": {"lat": 42.15, "lon": 24.75}, "radius_km": 150}]
        )
        await until(client, local, f"/v1/jobs/{plain.job_id}")
        seen = [
            j["job_id"]
            for j in (await (await client.get("/v1/jobs", headers=local.auth)).json())["items"]
        ]
        assert plain.job_id in seen
        assert dangerous.job_id not in seen  # no permit
        assert (await client.get(f"/v1/jobs/{dangerous.job_id}", headers=local.auth)).status == 404
        assert (await client.get(f"/v1/jobs/{plain.job_id}", headers=far.auth)).status == 404

        pickup_at = (NOW + timedelta(days=4)).isoformat()
        quote = {
            "price": {"amount": 380, "currency": "SEK"},
            "vehicle": "rigid_truck",
            "co2e_kg": 21.5,
            "pickup_at": pickup_at,
        }
        before = await end_offsets(settings, "logistics.jobs")
        r = await client.post(f"/v1/jobs/{plain.job_id}/quotes", json=quote, headers=far.auth)
        assert r.status == 404
        bad = await client.post(
            f"/v1/jobs/{plain.job_id}/quotes",
            json=quote | {"vehicle": "tanker"},
            headers=local.auth,
        )
        assert bad.status == 422
        assert (await bad.json())["errors"][0]["field"] == "vehicle"
        late = await client.post(
            f"/v1/jobs/{plain.job_id}/quotes",
            json=quote | {"pickup_at": (NOW + timedelta(days=9)).isoformat()},
            headers=local.auth,
        )
        assert late.status == 422
        r = await client.post(f"/v1/jobs/{plain.job_id}/quotes", json=quote, headers=local.auth)
        assert r.status == 202, await r.text()
        quote_id = (await r.json())["quote_id"]
        await eventually(lambda: _quote_status(client, local, plain.job_id, quote_id, "active"))
        r = await client.post(
            f"/v1/jobs/{plain.job_id}/quotes",
            json=quote | {"quote_id": quote_id, "price": {"amount": 350, "currency": "SEK"}},
            headers=local.auth,
        )
        assert r.status == 202
        assert (await r.json())["quote_id"] == quote_id
        r = await client.delete(f"/v1/jobs/{plain.job_id}/quotes/{quote_id}", headers=local.auth)
        assert r.status == 202
        await eventually(lambda: _quote_status(client, local, plain.job_id, quote_id, "withdrawn"))

        records = await read_since(settings, "logistics.jobs", before)
        assert {x.key for x in records} == {plain.job_id.encode()}
        kinds = [Envelope.from_headers(x.headers).type for x in records]
        assert kinds == [
            "logistics.quote.submitted.v1",
            "logistics.quote.submitted.v1",
            "logistics.quote.withdrawn.v1",
        ]
        assert orjson.loads(records[1].value)["price"]["amount"] == 350


async def _quote_status(
    client: Client, carrier: Partner, job_id: str, quote_id: str, status: str
) -> bool:
    r = await client.get(f"/v1/jobs/{job_id}/quotes", headers=carrier.auth)
    items = (await r.json())["items"]
    return any(q["quote_id"] == quote_id and q["status"] == status for q in items)
