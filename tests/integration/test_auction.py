"""Transport auctions end to end on the real Kafka and PostgreSQL: SMEs confirm a match through
the API, the job creator makes the transport job, carriers quote through the API, the scheduler
brings the deadline and the auctioneer awards (or fails and reopens) the job; every bidder and
both SMEs read the outcome through the API."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestClient

from consumers.auctioneer import CREATOR_TOPIC, TOPIC, Auctioneer, JobCreator
from marketplace.cloudevents import Envelope
from marketplace.runtime.service import run_consumer
from marketplace.settings import Settings
from marketplace.translate.auction import auction_config, job_id_for
from producers.scheduler import run_scheduler
from schemas.common import Depot, Location, Money, Quantity, Reason, Window
from schemas.logistics import CarrierCoverage, QuoteSubmitted
from schemas.matches import MatchConfirmed, MatchProposed
from tests.integration.api_helpers import Partner, eventually, register, running_api
from tests.integration.kafka_helpers import end_offsets, publish, read_since, start_at_end
from tests.integration.test_matcher import matcher_running, matches_about, near, offer, request

pytestmark = pytest.mark.integration
Client = TestClient[Any, Any]
AWARDS = "logistics.awards"


@asynccontextmanager
async def auction_running(settings: Settings) -> AsyncIterator[tuple[str, str]]:
    """The job creator and the auctioneer, each with a consumer group of its own, and the
    scheduler that fires the deadlines."""
    stop = asyncio.Event()
    tag = uuid.uuid4().hex[:8]
    creator, auctioneer = f"test.job-creator.{tag}", f"test.auctioneer.{tag}"
    await start_at_end(settings, creator, CREATOR_TOPIC)
    await start_at_end(settings, auctioneer, TOPIC)
    tasks = [
        asyncio.create_task(
            run_consumer(
                settings,
                group_id=creator,
                topics=[CREATOR_TOPIC],
                processor=JobCreator(settings, creator),
                stop=stop,
            )
        ),
        asyncio.create_task(
            run_consumer(
                settings,
                group_id=auctioneer,
                topics=[TOPIC],
                processor=Auctioneer(auction_config(settings), auctioneer),
                stop=stop,
            )
        ),
        asyncio.create_task(run_scheduler(settings, stop)),
    ]
    try:
        yield creator, auctioneer
    finally:
        stop.set()
        await asyncio.wait_for(asyncio.gather(*tasks), 30)


async def outcomes(
    settings: Settings, since: dict[int, int], job_id: str, count: int, limit_s: float = 90
) -> list[tuple[str, dict[str, Any]]]:
    """Waits for `count` distinct events about the job on logistics.awards."""
    found: dict[str, tuple[str, dict[str, Any]]] = {}

    async def enough() -> bool:
        for r in await read_since(settings, AWARDS, since):
            envelope = Envelope.from_headers(r.headers)
            body = orjson.loads(r.value)
            if body.get("job_id") == job_id:
                # By event id: another running auctioneer would repeat the very same events.
                found[envelope.id] = (envelope.type, body)
        return len(found) >= count

    await eventually(enough, limit_s)
    return sorted(found.values(), key=lambda x: x[0])


async def until(
    client: Client, who: Partner, path: str, field: str, value: Any, negate: bool = False
) -> Any:
    """The resource at `path` once its `field` equals `value` (or, negated, differs from it)."""
    body: Any = None

    async def check() -> bool:
        nonlocal body
        r = await client.get(path, headers=who.auth)
        body = await r.json()
        return r.status == 200 and (body.get(field) == value) != negate

    await eventually(check, 30)
    return body


async def get(client: Client, who: Partner, path: str, status: int = 200) -> Any:
    body: Any = None

    async def check() -> bool:
        nonlocal body
        r = await client.get(path, headers=who.auth)
        body = await r.json()
        return r.status == status

    await eventually(check, 30)
    return body


def spot() -> dict[str, float]:
    n = uuid.uuid4().int
    return {"lat": 66.0 + (n % 1000) / 1000 * 2, "lon": 15.0 + (n // 1000 % 1000) / 1000 * 8}


async def declare(client: Client, carrier: Partner, lat: float, lon: float) -> None:
    body = {
        "depots": [{"location": {"lat": lat, "lon": lon}, "radius_km": 200}],
        "capacity_t": 24,
        "vehicle_types": ["rigid_truck", "articulated_truck"],
    }
    r = await client.put("/v1/carrier/capabilities", json=body, headers=carrier.auth)
    assert r.status == 202, await r.text()
    await get(client, carrier, "/v1/carrier/capabilities")


async def quote(
    client: Client, carrier: Partner, job_id: str, price: float, co2e: float, **extra: Any
) -> str:
    body = {
        "price": {"amount": price, "currency": "EUR"},
        "vehicle": "rigid_truck",
        "co2e_kg": co2e,
        "pickup_at": "2027-01-10T08:00:00+00:00",
    } | extra
    r = await client.post(f"/v1/jobs/{job_id}/quotes", json=body, headers=carrier.auth)
    assert r.status == 202, await r.text()
    return str((await r.json())["quote_id"])


async def test_three_firms_bid_one_revises_one_withdraws_and_the_lowest_wins(
    settings: Settings,
) -> None:
    quick = dataclasses.replace(settings, auction_bidding_period_s=25.0, scheduler_interval_s=0.2)
    seller = await register(settings, "sme", "Folie Norr AB")
    buyer = await register(settings, "sme", "Granulat Luleå AB")
    a = await register(settings, "logistics", "Frakt Norrbotten AB")
    b = await register(settings, "logistics", "Åkeri Kiruna AB")
    c = await register(settings, "logistics", "Transport Gällivare AB")
    far = await register(settings, "logistics", "Transport Plovdiv EOOD")
    here = spot()
    since_matches = await end_offsets(settings, "market.matches")
    since_awards = await end_offsets(settings, AWARDS)
    async with (
        running_api(quick) as client,
        matcher_running(quick) as group,
        auction_running(quick),
    ):
        for carrier in (a, b, c):
            await declare(client, carrier, here["lat"], here["lon"])
        await declare(client, far, 42.15, 24.75)
        r = await client.post("/v1/offers", json=offer(here, 5, 10), headers=seller.auth)
        assert r.status == 202, await r.text()
        offer_id = (await r.json())["offer_id"]
        r = await client.post(
            "/v1/requests", json=request(near(here, 0.3), 5, 90), headers=buyer.auth
        )
        assert r.status == 202, await r.text()
        ((_, proposed),) = await matches_about(
            quick, since_matches, {offer_id}, {"market.match.proposed.v1"}, 1, group
        )
        match_id = proposed["match_id"]
        for sme in (seller, buyer):
            await get(client, sme, f"/v1/matches/{match_id}")
            r = await client.post(f"/v1/matches/{match_id}/accept", headers=sme.auth)
            assert r.status == 202, await r.text()

        # The confirmed match becomes a job, offered to the carriers whose coverage fits.
        job_id = job_id_for(match_id)
        job = await get(client, a, f"/v1/jobs/{job_id}")
        assert job["match_id"] == match_id
        assert job["weight_t"] == 5.0
        assert job["currency"] == "EUR"
        assert job["estimated_price"]["amount"] > 0
        assert (await client.get(f"/v1/jobs/{job_id}", headers=far.auth)).status == 404
        listed = await (await client.get("/v1/jobs", headers=far.auth)).json()
        assert job_id not in [j["job_id"] for j in listed["items"]]
        r = await client.post(
            f"/v1/jobs/{job_id}/quotes",
            json={
                "price": {"amount": 1, "currency": "EUR"},
                "vehicle": "rigid_truck",
                "co2e_kg": 1,
                "pickup_at": "2027-01-10T08:00:00+00:00",
            },
            headers=far.auth,
        )
        assert r.status == 404

        qa = await quote(client, a, job_id, 150, 30)
        await quote(client, b, job_id, 120, 25)
        qc = await quote(client, c, job_id, 110, 20)
        # b quotes a second time without naming its quote: a duplicate the auctioneer refuses.
        dup = await quote(client, b, job_id, 90, 25)

        async def seen(who: Partner, quote_id: str) -> bool:
            r = await client.get(f"/v1/jobs/{job_id}/quotes", headers=who.auth)
            return any(q["quote_id"] == quote_id for q in (await r.json())["items"])

        await eventually(lambda: seen(a, qa))
        await eventually(lambda: seen(c, qc))
        assert await quote(client, a, job_id, 100, 30, quote_id=qa) == qa  # a revises
        r = await client.delete(f"/v1/jobs/{job_id}/quotes/{qc}", headers=c.auth)  # c withdraws
        assert r.status == 202, await r.text()

        events = await outcomes(quick, since_awards, job_id, 2)
        kinds = [k for k, _ in events]
        assert kinds == ["logistics.quote.rejected.v1", "logistics.transport.awarded.v1"]
        refusal, award = events[0][1], events[1][1]
        assert (refusal["quote_id"], refusal["reason_code"]) == (dup, "duplicate")
        assert refusal["carrier_id"] == b.partner_id
        assert (award["carrier_id"], award["quote_id"]) == (a.partner_id, qa)
        assert award["price"] == {"amount": 100.0, "currency": "EUR"}
        assert award["co2e_kg"] == 30.0
        assert set(award["bidders"]) == {a.partner_id, b.partner_id, c.partner_id}

        # Every bidder is told, through the API.
        for who, outcome in ((a, "won"), (b, "lost"), (c, "lost")):
            told = await until(client, who, f"/v1/jobs/{job_id}", "your_outcome", outcome)
            assert told["status"] == "awarded"
        mine = await get(client, b, f"/v1/jobs/{job_id}/quotes")
        b_quotes = {q["quote_id"]: q for q in mine["items"]}
        assert b_quotes[dup]["status"] == "rejected"
        assert b_quotes[dup]["refusal"]["reason_code"] == "duplicate"
        assert "revise it" in b_quotes[dup]["refusal"]["reason"]
        assert [q["outcome"] for q in b_quotes.values() if q["status"] == "active"] == ["lost"]

        # The match now carries the winning quote's real figures: the seller's 10 EUR/t plus
        # 100 EUR for 5 t instead of the estimate.
        await until(client, buyer, f"/v1/matches/{match_id}", "transport", None, negate=True)
        m = await until(client, seller, f"/v1/matches/{match_id}", "transport_co2e_kg", 30.0)
        assert proposed["delivered_price"]["amount"] != pytest.approx(30.0, abs=0.011)
        assert m["delivered_price"]["amount"] == pytest.approx(30.0, abs=0.011)
        assert m["transport"]["status"] == "awarded"
        assert m["transport_co2e_kg"] == 30.0
        assert m["transport"]["carrier_id"] == a.partner_id
        assert m["transport"]["price"] == {"amount": 100.0, "currency": "EUR"}


def confirmed(seller: Partner, buyer: Partner) -> MatchConfirmed:
    now = datetime.now(UTC)
    window = Window(start=now + timedelta(days=3), end=now + timedelta(days=6))
    return MatchConfirmed(
        match_id=str(uuid.uuid4()),
        offer_id=str(uuid.uuid4()),
        request_id=str(uuid.uuid4()),
        seller_id=seller.partner_id,
        buyer_id=buyer.partner_id,
        material_code="150102",
        hazardous=False,
        quantity=Quantity(amount=4, unit="t"),
        weight_t=4.0,
        pickup=Location(lat=60.61, lon=16.54, region="SE312"),  # Sandviken
        delivery=Location(lat=60.67, lon=17.14, region="SE313"),  # Gävle
        pickup_window=window,
        delivery_window=window,
        delivered_price=Money(amount=40, currency="EUR"),
    )


async def test_no_bids_fails_reopens_once_and_fails_for_good(settings: Settings) -> None:
    quick = dataclasses.replace(
        settings,
        auction_bidding_period_s=6.0,
        auction_reopen_period_s=3.0,
        scheduler_interval_s=0.2,
    )
    seller = await register(settings, "sme")
    buyer = await register(settings, "sme")
    local = await register(settings, "logistics", "Frakt Gävleborg AB")
    far = await register(settings, "logistics", "Transport Plovdiv EOOD")
    match = confirmed(seller, buyer)
    job_id = job_id_for(match.match_id)
    since = await end_offsets(settings, AWARDS)
    async with running_api(quick) as client, auction_running(quick):
        r = await client.put(
            "/v1/carrier/capabilities",
            json={
                "regions": ["SE3"],
                "capacity_t": 12,
                "vehicle_types": ["rigid_truck"],
            },
            headers=local.auth,
        )
        assert r.status == 202
        await publish(quick, match)
        job = await get(client, local, f"/v1/jobs/{job_id}")
        first_deadline = datetime.fromisoformat(job["bidding_deadline"])
        # A quote from outside the coverage that reaches Kafka anyway (not through the API)
        # does not count: the auctioneer refuses it and the job still has no bid.
        outside = CarrierCoverage(
            depots=(Depot(location=Location(lat=42.15, lon=24.75), radius_km=150),),
            capacity_t=12,
            vehicle_types=("rigid_truck",),
        )
        await publish(
            quick,
            QuoteSubmitted(
                quote_id=str(uuid.uuid4()),
                job_id=job_id,
                carrier_id=far.partner_id,
                actor_id=far.partner_id,
                price=Money(amount=1, currency="EUR"),
                vehicle="rigid_truck",
                co2e_kg=1,
                pickup_at=match.pickup_window.start + timedelta(hours=1),
                coverage=outside,
            ),
        )
        events = await outcomes(quick, since, job_id, 3)
        by_kind: dict[str, list[dict[str, Any]]] = {}
        for kind, body in events:
            by_kind.setdefault(kind, []).append(body)
        (refusal,) = by_kind["logistics.quote.rejected.v1"]
        assert refusal["reason_code"] == "unfit"
        assert "outside your coverage" in refusal["reason"]
        failures = sorted(
            by_kind["logistics.auction.failed.v1"], key=lambda f: f["reopened_until"] is None
        )
        assert [f["bidders"] for f in failures] == [[], []]
        reopened = datetime.fromisoformat(failures[0]["reopened_until"])
        assert reopened == first_deadline + timedelta(seconds=3)
        assert failures[1]["reopened_until"] is None
        assert "after reopening" in failures[1]["reason"]
        assert "logistics.transport.awarded.v1" not in by_kind

        final = await until(client, local, f"/v1/jobs/{job_id}", "status", "failed")
        assert "no quotes" in final["outcome_reason"]
        assert datetime.fromisoformat(final["bidding_deadline"]) == reopened


async def test_an_sme_reserve_fails_the_auction_until_lifted(settings: Settings) -> None:
    quick = dataclasses.replace(
        settings,
        auction_bidding_period_s=12.0,
        auction_reopen_period_s=8.0,
        scheduler_interval_s=0.2,
    )
    seller = await register(settings, "sme")
    buyer = await register(settings, "sme")
    stranger = await register(settings, "sme")
    local = await register(settings, "logistics", "Frakt Gävleborg AB")
    match = confirmed(seller, buyer)
    proposal = MatchProposed(
        match_id=match.match_id,
        offer_id=match.offer_id,
        request_id=match.request_id,
        seller_id=match.seller_id,
        buyer_id=match.buyer_id,
        material_code=match.material_code,
        quantity=match.quantity,
        delivered_price=match.delivered_price,
        distance_km=33.0,
        transport_co2e_kg=12.0,
        co2e_saved_kg=4000.0,
        score=0.8,
        reasons=(Reason(factor="distance_km", value=33.0),),
        expires_at=datetime.now(UTC) + timedelta(days=2),
    )
    job_id = job_id_for(match.match_id)
    path = f"/v1/matches/{match.match_id}/transport-reserve"
    since = await end_offsets(settings, AWARDS)
    async with running_api(quick) as client, auction_running(quick):
        r = await client.put(
            "/v1/carrier/capabilities",
            json={"regions": ["SE3"], "capacity_t": 12, "vehicle_types": ["rigid_truck"]},
            headers=local.auth,
        )
        assert r.status == 202
        await publish(quick, proposal)
        await get(client, seller, f"/v1/matches/{match.match_id}")
        cap = {"price": {"amount": 50, "currency": "EUR"}}
        r = await client.put(path, json=cap, headers=seller.auth)
        assert r.status == 409  # no transport job yet
        await publish(quick, match)
        await get(client, local, f"/v1/jobs/{job_id}")
        await until(client, seller, f"/v1/matches/{match.match_id}", "status", "confirmed")
        assert (await client.put(path, json=cap, headers=stranger.auth)).status == 404
        sek = {"price": {"amount": 50, "currency": "SEK"}}
        wrong = await client.put(path, json=sek, headers=seller.auth)
        assert wrong.status == 422
        assert (await wrong.json())["errors"][0]["field"] == "price.currency"
        r = await client.put(path, json=cap, headers=seller.auth)
        assert r.status == 202, await r.text()
        pickup = (match.pickup_window.start + timedelta(hours=2)).isoformat()
        r = await client.post(
            f"/v1/jobs/{job_id}/quotes",
            json={
                "price": {"amount": 80, "currency": "EUR"},
                "vehicle": "rigid_truck",
                "co2e_kg": 9.5,
                "pickup_at": pickup,
            },
            headers=local.auth,
        )
        assert r.status == 202, await r.text()
        quote_id = (await r.json())["quote_id"]

        ((_, failure),) = await outcomes(quick, since, job_id, 1)
        assert "reserve price of 50 EUR" in failure["reason"]
        assert failure["bidders"] == [local.partner_id]
        assert failure["reopened_until"] is not None
        # Reopened: the seller lifts its cap and the standing quote wins at the new deadline.
        reopened = datetime.fromisoformat(failure["reopened_until"])

        async def reopened_seen() -> bool:
            job = await get(client, local, f"/v1/jobs/{job_id}")
            return datetime.fromisoformat(job["bidding_deadline"]) == reopened

        await eventually(reopened_seen)
        r = await client.put(path, json={"price": None}, headers=seller.auth)
        assert r.status == 202, await r.text()
        events = await outcomes(quick, since, job_id, 2)
        award = next(b for k, b in events if k == "logistics.transport.awarded.v1")
        assert (award["quote_id"], award["price"]["amount"]) == (quote_id, 80.0)
        m = await until(client, buyer, f"/v1/matches/{match.match_id}", "transport_co2e_kg", 9.5)
        assert m["transport"]["reserves"] == {seller.partner_id: None}
        assert m["transport"]["price"] == {"amount": 80.0, "currency": "EUR"}
