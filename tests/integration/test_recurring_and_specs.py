"""Recurring flows and buyer specifications end to end (#11): listings through the API, the
matcher proposing a standing agreement, both sides accepting, the scheduler firing the period's
timer, the delivery scheduled and its transport job created; a withdrawal ending the agreement;
a buyer's hard criteria keeping an offer out and every proposal listing its criteria."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest

from consumers.auctioneer import CREATOR_SOURCE, CREATOR_TOPIC, JobCreator
from marketplace.cloudevents import Envelope
from marketplace.core import periods
from marketplace.settings import Settings
from tests.integration.api_helpers import (
    Partner,
    consumer_running,
    eventually,
    register,
    running_api,
)
from tests.integration.kafka_helpers import end_offsets, read_since
from tests.integration.test_matcher import matcher_running, matches_about, near, place, post

pytestmark = pytest.mark.integration

TODAY = datetime.now(UTC).date()
CONFIRMED = "market.match.confirmed.v1"
DUE = "market.delivery.scheduled.v1"


def _window(days: int) -> dict[str, str]:
    start = datetime.now(UTC) - timedelta(hours=1)
    return {"start": start.isoformat(), "end": (start + timedelta(days=days)).isoformat()}


def recurring_offer(p: dict[str, float], qty: float, period: str, **material: Any) -> Any:
    return {
        "material": {"code": "150102", "description": "PE film, baled", **material},
        "location": p,
        "terms": {
            "quantity": {"amount": qty, "unit": "t"},
            "price": {"amount": 10, "currency": "EUR"},
            "available": _window(120),
            "recurrence": {"period": period, "starts": TODAY.isoformat()},
        },
    }


def recurring_request(
    p: dict[str, float], qty: float, period: str | None, spec: dict[str, Any] | None = None
) -> Any:
    terms: dict[str, Any] = {
        "quantity": {"amount": qty, "unit": "t"},
        "max_price": {"amount": 90, "currency": "EUR"},
        "wanted": _window(120),
        "max_distance_km": 100,
    }
    if period:
        terms["recurrence"] = {"period": period, "starts": TODAY.isoformat()}
    if spec:
        terms["specification"] = spec
    return {
        "material": {"code": "150102", "description": "PE film for regranulation"},
        "location": p,
        "terms": terms,
    }


async def one(
    settings: Settings, since: dict[int, int], group: str, ids: set[str], kind: str
) -> Any:
    """The one event of `kind` about `ids` from this test's matcher group."""
    found = await matches_about(settings, since, ids, {kind}, 1, group)
    assert len(found) == 1, found
    return found[0][1]


async def jobs_for(
    settings: Settings, since: dict[int, int], creator: str, match_id: str
) -> list[Any]:
    found: list[Any] = []

    async def some() -> bool:
        nonlocal found
        found = [
            orjson.loads(r.value)
            for r in await read_since(settings, "logistics.jobs", since)
            if Envelope.from_headers(r.headers).type == "logistics.job.requested.v1"
            and Envelope.from_headers(r.headers).source == f"{CREATOR_SOURCE}/{creator}"
            and orjson.loads(r.value)["match_id"] == match_id
        ]
        return bool(found)

    await eventually(some, 60)
    return list({job["job_id"]: job for job in found}.values())


async def test_recurring_listings_make_a_standing_agreement_with_a_job_per_period(
    settings: Settings,
) -> None:
    quick = dataclasses.replace(settings, scheduler_interval_s=0.2)
    seller = await register(settings, "sme", "Bryggeri Falun AB")
    buyer = await register(settings, "sme", "Foder Borlänge AB")
    spot = place()
    since = await end_offsets(settings, "market.matches")
    jobs_since = await end_offsets(settings, "logistics.jobs")
    async with (
        running_api(quick) as client,
        matcher_running(quick) as group,
        consumer_running(
            quick, "job-creator", [CREATOR_TOPIC], lambda g: JobCreator(quick, g)
        ) as creator,
    ):
        o = await post(client, seller, "/v1/offers", recurring_offer(spot, 2, "week"))
        r = await post(
            client, buyer, "/v1/requests", recurring_request(near(spot, 0.2), 10, "month")
        )
        proposed = await one(quick, since, group, {o, r}, "market.match.proposed.v1")
        # Weekly 2 t against monthly 10 t: a month holds at least 4 weeks, so 8 t a month.
        assert proposed["agreement"] == {
            "period": "month",
            "quantity": {"amount": 8.0, "unit": "t"},
            "starts": TODAY.isoformat(),
            "ends": None,
        }
        assert [c["criterion"] for c in proposed["criteria"]] == ["max_distance_km"]
        match_id = proposed["match_id"]

        for who in (seller, buyer):

            async def visible(w: Partner = who) -> bool:
                return (await client.get(f"/v1/matches/{match_id}", headers=w.auth)).status == 200

            await eventually(visible)
            shown = await (await client.get(f"/v1/matches/{match_id}", headers=who.auth)).json()
            assert shown["agreement"]["period"] == "month"
            answer = await client.post(f"/v1/matches/{match_id}/accept", headers=who.auth)
            assert answer.status == 202, await answer.text()

        confirmed = await one(quick, since, group, {match_id}, CONFIRMED)
        assert confirmed["agreement"]["quantity"]["amount"] == 8.0
        delivery = await one(quick, since, group, {match_id}, DUE)
        this_month = periods.key_of("month", TODAY)
        assert delivery["period_key"] == this_month
        assert delivery["weight_t"] == 8.0
        window_end = periods.next_start("month", TODAY)
        assert delivery["pickup_window"]["end"].startswith(window_end.isoformat())

        (job,) = await jobs_for(quick, jobs_since, creator, match_id)
        assert job["delivery_id"] == delivery["delivery_id"]
        assert job["weight_t"] == 8.0
        # The confirmation itself made no job: only the period's delivery did.
        assert len(await jobs_for(quick, jobs_since, creator, match_id)) == 1

        gone = await client.delete(f"/v1/offers/{o}", headers=seller.auth)
        assert gone.status == 202, await gone.text()
        ended = await one(quick, since, group, {match_id}, "market.agreement.ended.v1")
        assert ended["reason"] == "offer_withdrawn"
        assert ended["last_period_key"] == this_month

        async def shown_ended() -> bool:
            r = await client.get(f"/v1/matches/{match_id}", headers=buyer.auth)
            return bool((await r.json())["status"] == "ended")

        await eventually(shown_ended)


async def test_a_buyers_specification_keeps_out_offers_that_miss_it(settings: Settings) -> None:
    certified = await register(settings, "sme", "Regranulat Gävle AB")
    vague = await register(settings, "sme", "Plast & Co Sandviken AB")
    procurer = await register(settings, "sme", "Region Gävleborg")
    spot = place()
    since = await end_offsets(settings, "market.matches")
    spec = {
        "min_recycled_content_pct": 70,
        "max_contamination_pct": 2,
        "certifications": ["EN 15343"],
        "weight_price": 0.3,
        "weight_co2e": 0.7,
    }
    async with running_api(settings) as client, matcher_running(settings) as group:
        good = await post(
            client,
            certified,
            "/v1/offers",
            dict(
                recurring_offer(spot, 5, "month", recycled_content_pct=85, contamination_pct=1),
                certifications=["EN 15343"],
            ),
        )
        # Nearer, cheaper and bigger, but states no recycled content and holds no certificate.
        other = await post(
            client, vague, "/v1/offers", recurring_offer(near(spot, 0.1), 9, "month")
        )
        r = await post(
            client, procurer, "/v1/requests", recurring_request(near(spot, 0.15), 5, None, spec)
        )
        proposed = await one(settings, since, group, {good, other, r}, "market.match.proposed.v1")
        assert proposed["offer_id"] == good
        checks = {
            (c["criterion"], c["required"], c["offered"], c["met"]) for c in proposed["criteria"]
        }
        assert ("min_recycled_content_pct", "at least 70 %", "85 %", True) in checks
        assert ("max_contamination_pct", "at most 2 %", "1 %", True) in checks
        assert ("certification", "EN 15343", "held", True) in checks
        # A one-off request against a monthly flow: one delivery, from this month.
        assert proposed["agreement"] is None
        assert {x["factor"] for x in proposed["reasons"]} >= {"from_period"}


async def test_a_procurer_previews_a_specification_and_nothing_is_published(
    settings: Settings,
) -> None:
    certified = await register(settings, "sme", "Regranulat Falun AB")
    vague = await register(settings, "sme", "Plast Ludvika AB")
    procurer = await register(settings, "sme", "Falu kommun")
    carrier = await register(settings, "logistics", "Frakt Dalarna AB")
    spot = place()
    spec = {"min_recycled_content_pct": 70, "certifications": ["EN 15343"]}
    async with running_api(settings) as client:
        good_body = recurring_offer(spot, 5, "month", recycled_content_pct=85)
        good = await post(
            client, certified, "/v1/offers", {**good_body, "certifications": ["EN 15343"]}
        )
        other = await post(
            client,
            vague,
            "/v1/offers",
            recurring_offer(near(spot, 0.1), 9, "month", recycled_content_pct=40),
        )
        far = await post(client, vague, "/v1/offers", recurring_offer(near(spot, 3.0), 9, "month"))

        async def listed() -> bool:
            for who, oid in ((certified, good), (vague, other), (vague, far)):
                if (await client.get(f"/v1/offers/{oid}", headers=who.auth)).status != 200:
                    return False
            # The sellers' names come from partners.registry, another topic than the offers'.
            me = await (await client.get("/v1/me", headers=certified.auth)).json()
            return bool(me.get("name"))

        await eventually(listed)
        since = await end_offsets(settings, "market.listings")
        draft = recurring_request(near(spot, 0.15), 5, "month", spec)
        r = await client.post("/v1/requests/preview", json=draft, headers=procurer.auth)
        assert r.status == 200, await r.text()
        got = await r.json()
        assert got["published"] is False
        mine = {i["offer_id"]: i for i in got["items"] if i["offer_id"] in {good, other, far}}
        assert set(mine) == {good, other}  # the third lies 330 km away, beyond the 100 km
        assert got["beyond_distance"] >= 1
        assert mine[good]["eligible"] is True
        assert mine[good]["seller_name"] == "Regranulat Falun AB"
        assert mine[good]["agreement"]["period"] == "month"
        assert all(c["met"] for c in mine[good]["criteria"])
        # The distance is said roughly, as a proposal's is until confirmed (0.15 degrees away).
        assert mine[good]["distance_exact"] is False
        assert mine[good]["distance_km"] % 5 == 0
        distance = [
            c["offered"] for c in mine[good]["criteria"] if c["criterion"] == "max_distance_km"
        ]
        assert distance == [f"about {mine[good]['distance_km']:.0f} km"]
        assert mine[other]["eligible"] is False
        assert mine[other]["refused_because"] == ["does not meet the buyer's specification"]
        unmet = {(c["criterion"], c["offered"]) for c in mine[other]["criteria"] if not c["met"]}
        assert unmet == {("min_recycled_content_pct", "40 %"), ("certification", "not held")}
        # Eligible offers come first.
        flags = [i["eligible"] for i in got["items"]]
        assert flags == sorted(flags, reverse=True)
        # Nothing was published: no listing event by the procurer since the preview.
        mine_since = [
            x
            for x in await read_since(settings, "market.listings", since)
            if orjson.loads(x.value).get("owner_id") == procurer.partner_id
        ]
        assert mine_since == []

        bad = dict(draft, material={"code": "999999", "description": "x"})
        refused = await client.post("/v1/requests/preview", json=bad, headers=procurer.auth)
        assert refused.status == 422
        assert (await refused.json())["errors"][0]["field"] == "material.code"
        wrong_role = await client.post("/v1/requests/preview", json=draft, headers=carrier.auth)
        assert wrong_role.status == 403
        # Drafting for another SME is for a facilitator with that SME's consent only.
        posing = dict(draft, on_behalf_of=certified.partner_id)
        posed = await client.post("/v1/requests/preview", json=posing, headers=procurer.auth)
        assert posed.status == 403
