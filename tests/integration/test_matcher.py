"""The matcher end to end: listings through the API, proposals on market.matches, answers
through the API, confirmations, declines handed to the next candidate, and expiry by timer."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import orjson
import pytest

from consumers.matcher import TOPIC, Matcher
from marketplace.cloudevents import Envelope
from marketplace.runtime.service import run_consumer
from marketplace.settings import Settings
from marketplace.translate.matching import market_config, source_of
from producers.scheduler import run_scheduler
from tests.integration.api_helpers import Partner, eventually, register, running_api
from tests.integration.kafka_helpers import end_offsets, read_since, start_at_end

pytestmark = pytest.mark.integration


@asynccontextmanager
async def matcher_running(settings: Settings) -> AsyncIterator[str]:
    """A matcher with a consumer group of its own that starts at the current end of
    market.listings (as if it had consumed all before), so other tests' listings stay out of its
    book; plus the scheduler."""
    stop = asyncio.Event()
    group = f"test.matcher.{uuid.uuid4().hex[:8]}"
    await start_at_end(settings, group, TOPIC)
    tasks = [
        asyncio.create_task(
            run_consumer(
                settings,
                group_id=group,
                topics=[TOPIC],
                processor=Matcher(market_config(settings), group),
                stop=stop,
            )
        ),
        asyncio.create_task(run_scheduler(settings, stop)),
    ]
    try:
        yield group
    finally:
        stop.set()
        await asyncio.wait_for(asyncio.gather(*tasks), 30)


def place() -> dict[str, float]:
    # A spot of its own for each test, far from other tests' listings (Arctic Sweden, by uuid).
    n = uuid.uuid4().int
    return {"lat": 66.0 + (n % 1000) / 1000 * 2, "lon": 15.0 + (n // 1000 % 1000) / 1000 * 8}


def near(p: dict[str, float], dlat: float) -> dict[str, float]:
    return {"lat": p["lat"] + dlat, "lon": p["lon"]}


def offer(p: dict[str, float], qty: float, price: float, code: str = "150102") -> dict[str, Any]:
    return {
        "material": {"code": code, "description": "PE film, baled", "form": "bales"},
        "location": p,
        "terms": {
            "quantity": {"amount": qty, "unit": "t"},
            "price": {"amount": price, "currency": "EUR"},
            "available": {"start": "2026-12-01T00:00:00Z", "end": "2027-03-01T00:00:00Z"},
        },
    }


def request(
    p: dict[str, float], qty: float, max_price: float, code: str = "150102"
) -> dict[str, Any]:
    return {
        "material": {"code": code, "description": "PE film for regranulation"},
        "location": p,
        "terms": {
            "quantity": {"amount": qty, "unit": "t"},
            "max_price": {"amount": max_price, "currency": "EUR"},
            "wanted": {"start": "2026-12-15T00:00:00Z", "end": "2027-02-01T00:00:00Z"},
            "max_distance_km": 100,
        },
    }


async def matches_about(
    settings: Settings,
    since: dict[int, int],
    ids: set[str],
    kinds: set[str],
    count: int,
    group: str | None = None,
) -> list[tuple[str, dict[str, Any]]]:
    """Waits for `count` events of `kinds` on market.matches that concern the listings `ids`,
    decided by the matcher `group` when given (other groups reading the same listings, a
    benchmark's or a soak's, decide alike with the same ids and would count twice)."""
    found: list[tuple[str, dict[str, Any]]] = []
    source = source_of(group) if group else None

    async def enough() -> bool:
        nonlocal found
        found = []
        for r in await read_since(settings, "market.matches", since):
            envelope = Envelope.from_headers(r.headers)
            kind = envelope.type
            if source is not None and envelope.source != source:
                continue
            body = orjson.loads(r.value)
            if kind in kinds and (
                {body.get("offer_id"), body.get("request_id")} & ids or body.get("match_id") in ids
            ):
                found.append((kind, body))
        return len(found) >= count

    await eventually(enough, 60)
    return found


async def post(client: Any, who: Partner, path: str, body: dict[str, Any]) -> str:
    r = await client.post(path, json=body, headers=who.auth)
    assert r.status == 202, await r.text()
    data = await r.json()
    return str(data.get("offer_id") or data.get("request_id"))


async def test_food_residues_without_a_carbon_factor_are_proposed_with_co2e_unknown(
    settings: Settings,
) -> None:
    """Issue #17: an offer and a request of 020304 (food: materials unsuitable for consumption)
    1 km apart used to be answered 202 and never proposed. Whatever the factor data says of the
    code, the pair is proposed; when the saving is unknown the proposal says so."""
    seller = await register(settings, "sme", "Пловдивска пекарна ООД")
    buyer = await register(settings, "sme", "Biogas Söderhamn AB")
    spot = place()
    since = await end_offsets(settings, "market.matches")
    async with running_api(settings) as client, matcher_running(settings) as group:
        o = await post(client, seller, "/v1/offers", offer(spot, 3, 5, code="020304"))
        r = await post(
            client, buyer, "/v1/requests", request(near(spot, 0.01), 3, 40, code="020304")
        )
        [(_, body)] = await matches_about(
            settings, since, {o, r}, {"market.match.proposed.v1"}, 1, group
        )
    assert (body["offer_id"], body["request_id"]) == (o, r)
    factors = {x["factor"] for x in body["reasons"]}
    known = body.get("co2e_known", True)
    assert ("net_co2e_kg" in factors) == known
    assert ("co2e_unknown" in factors) == (not known)
    if not known:
        assert body["co2e_saved_kg"] == 0


async def test_propose_accept_confirm_and_decline_to_the_next(settings: Settings) -> None:
    seller = await register(settings, "sme", "Folie Norr AB")
    buyer1 = await register(settings, "sme", "Granulat Luleå AB")
    buyer2 = await register(settings, "sme", "Plastretur Kiruna AB")
    buyer3 = await register(settings, "sme", "Återvinning Gällivare AB")
    spot = place()
    since = await end_offsets(settings, "market.matches")
    async with running_api(settings) as client, matcher_running(settings) as group:
        r1 = await post(client, buyer1, "/v1/requests", request(near(spot, 0.1), 4, 80))
        r2 = await post(client, buyer2, "/v1/requests", request(near(spot, 0.5), 4, 80))
        r3 = await post(client, buyer3, "/v1/requests", request(near(spot, 0.8), 4, 80))
        o1 = await post(client, seller, "/v1/offers", offer(spot, 5, 10))
        ids = {r1, r2, r3, o1}
        proposals = await matches_about(
            settings, since, ids, {"market.match.proposed.v1"}, 2, group
        )
        by_request = {b["request_id"]: b for _, b in proposals}
        # The nearer buyer gets all it wants, the other the rest of the offer.
        assert by_request[r1]["quantity"] == {"amount": 4.0, "unit": "t"}
        assert by_request[r2]["quantity"] == {"amount": 1.0, "unit": "t"}
        assert by_request[r1]["delivered_price"]["amount"] <= 80
        factors = {x["factor"] for x in by_request[r1]["reasons"]}
        assert factors == {"distance_km", "delivered_price", "quantity_fit", "net_co2e_kg"}

        first = by_request[r1]["match_id"]
        for who in (seller, buyer1):

            async def visible(w: Partner = who) -> bool:
                return (await client.get(f"/v1/matches/{first}", headers=w.auth)).status == 200

            await eventually(visible)
            r = await client.post(f"/v1/matches/{first}/accept", headers=who.auth)
            assert r.status == 202, await r.text()
        confirmed = await matches_about(
            settings, since, {first}, {"market.match.confirmed.v1"}, 1, group
        )
        assert confirmed[0][1]["weight_t"] == 4.0
        assert confirmed[0][1]["seller_id"] == seller.partner_id

        second = by_request[r2]["match_id"]

        async def second_visible() -> bool:
            return (await client.get(f"/v1/matches/{second}", headers=buyer2.auth)).status == 200

        await eventually(second_visible)
        r = await client.post(
            f"/v1/matches/{second}/decline", json={"reason": "too little"}, headers=buyer2.auth
        )
        assert r.status == 202
        cancelled = await matches_about(
            settings, since, {second}, {"market.match.cancelled.v1"}, 1, group
        )
        assert cancelled[0][1]["reason"] == "declined"
        # The declined tonne goes to the next candidate, the farthest buyer.
        everything = await matches_about(
            settings, since, ids, {"market.match.proposed.v1"}, 3, group
        )
        assert len(everything) == 3
        third = everything[2][1]
        assert (third["request_id"], third["quantity"]["amount"]) == (r3, 1.0)


async def test_unanswered_proposal_expires_by_timer(settings: Settings) -> None:
    quick = dataclasses.replace(settings, match_answer_period_s=2.0, scheduler_interval_s=0.2)
    seller = await register(settings, "sme")
    buyer = await register(settings, "sme")
    spot = place()
    since = await end_offsets(settings, "market.matches")
    async with running_api(quick) as client, matcher_running(quick) as group:
        o = await post(client, seller, "/v1/offers", offer(spot, 3, 5))
        r = await post(client, buyer, "/v1/requests", request(near(spot, 0.2), 3, 90))
        (proposed,) = await matches_about(
            quick, since, {o, r}, {"market.match.proposed.v1"}, 1, group
        )
        expired = await matches_about(
            quick, since, {proposed[1]["match_id"]}, {"market.match.expired.v1"}, 1, group
        )
        assert expired[0][1]["match_id"] == proposed[1]["match_id"]
