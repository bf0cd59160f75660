"""The voice of the user (#11) on the real stack: the carrier (or the buyer) confirms a confirmed
match's delivery; the notifier asks seller, buyer and carrier for feedback; only those three may
answer, once each, with a rating and a reason from the fixed list; the answers are events in the
audit log, in the association's API views, in the KPIs by region and sector, and in the period
report rebuilt from the audit log (CSV, HTML, PDF)."""

from __future__ import annotations

import csv
import functools
import io
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestClient
from pypdf import PdfReader

from consumers.analytics import TOPICS as ANALYTICS_TOPICS
from consumers.analytics import Analytics
from consumers.auditor import GROUP as AUDITOR
from consumers.auditor import TOPICS as AUDITED
from marketplace.app.report import build, to_csv, to_html, to_pdf
from marketplace.audit.history import history
from marketplace.db import connect
from marketplace.events import to_message
from marketplace.kafka import make_producer
from marketplace.kpis import feedback_kpis, feedback_reasons, headline, kpis
from marketplace.partners import issue_key, registration
from marketplace.settings import Settings
from producers.api.feedback import FEEDBACK_HEADLINES
from schemas.base import Event
from schemas.common import Agreement, Location, Money, Quantity, Reason, Role, Window
from schemas.logistics import TransportAwarded, TransportJobRequested
from schemas.matches import MatchConfirmed, MatchProposed
from tests.integration.api_helpers import (
    Partner,
    consumer_running,
    eventually,
    register,
    running_api,
)
from tests.integration.kafka_helpers import caught_up, end_offsets, publish, read_since
from tests.integration.notify_helpers import notifier_running
from tests.integration.test_audit import auditor_running

pytestmark = pytest.mark.integration
Client = TestClient[Any, Any]
NOW = datetime.now(UTC)
PICKUP = Location(lat=59.86, lon=17.64, region="SE121")
DELIVERY = Location(lat=60.67, lon=17.14, region="SE313")


async def partner_in(
    settings: Settings, role: Role, name: str, region: str, sector: str
) -> Partner:
    """A partner registered in a region and sector of its own (for the slices)."""
    event = registration(
        name=name, role=role, country="SE", region=region, sector=sector, registered_by="tests"
    )
    await publish(settings, event)
    conn = await connect(settings)
    try:
        return Partner(event.partner_id, await issue_key(conn, event.partner_id, role))
    finally:
        await conn.close()


async def confirmed_match_with_carrier(
    settings: Settings,
    seller: Partner,
    buyer: Partner,
    carrier: Partner | None,
    *,
    agreement: Agreement | None = None,
    delivery_id: str | None = None,
) -> str:
    """A proposal, its confirmation, the transport job (of one period's delivery, for a standing
    agreement) and its award to `carrier` (none without one), published the way the matcher,
    the job creator and the auctioneer publish them."""
    match_id, job_id = str(uuid.uuid4()), str(uuid.uuid4())
    proposed = MatchProposed(
        match_id=match_id,
        offer_id=str(uuid.uuid4()),
        request_id=str(uuid.uuid4()),
        seller_id=seller.partner_id,
        buyer_id=buyer.partner_id,
        material_code="150102",
        quantity=Quantity(amount=4, unit="t"),
        delivered_price=Money(amount=35, currency="EUR"),
        distance_km=42.0,
        transport_co2e_kg=26.0,
        co2e_saved_kg=5800.0,
        score=0.82,
        reasons=(Reason(factor="distance_km", value=42.0),),
        expires_at=NOW + timedelta(days=2),
        agreement=agreement,
    )
    pickup_window = Window(start=NOW + timedelta(days=1), end=NOW + timedelta(days=3))
    delivery_window = Window(start=NOW + timedelta(days=1), end=NOW + timedelta(days=5))
    confirmed = MatchConfirmed(
        match_id=match_id,
        offer_id=proposed.offer_id,
        request_id=proposed.request_id,
        seller_id=seller.partner_id,
        buyer_id=buyer.partner_id,
        material_code="150102",
        hazardous=False,
        quantity=proposed.quantity,
        weight_t=4.0,
        pickup=PICKUP,
        delivery=DELIVERY,
        delivered_price=proposed.delivered_price,
        agreement=agreement,
        pickup_window=pickup_window,
        delivery_window=delivery_window,
    )
    job = TransportJobRequested(
        job_id=job_id,
        match_id=match_id,
        material_code="150102",
        hazardous=False,
        quantity=proposed.quantity,
        weight_t=4.0,
        pickup=PICKUP,
        delivery=DELIVERY,
        bidding_deadline=NOW + timedelta(hours=1),
        currency="EUR",
        seller_id=seller.partner_id,
        buyer_id=buyer.partner_id,
        pickup_window=pickup_window,
        delivery_window=delivery_window,
        delivery_id=delivery_id,
    )
    events: list[Event] = [proposed, confirmed, job]
    if carrier is not None:
        events.append(
            TransportAwarded(
                job_id=job_id,
                match_id=match_id,
                quote_id=str(uuid.uuid4()),
                carrier_id=carrier.partner_id,
                price=Money(amount=180, currency="EUR"),
                co2e_kg=21.0,
                bidders=(carrier.partner_id,),
            )
        )
    producer = make_producer(settings)
    await producer.start()
    try:
        for event in events:
            m = to_message(event, event_id=str(uuid.uuid4()), source="/tests", time=NOW)
            await producer.send_and_wait(m.topic, m.value, key=m.key, headers=list(m.headers))
    finally:
        await producer.stop()
    return match_id


async def problem(response: Any, status: int) -> dict[str, Any]:
    assert response.status == status, await response.text()
    assert response.content_type == "application/problem+json"
    body: dict[str, Any] = await response.json()
    return body


async def test_parties_rate_a_delivery_once_and_the_association_sees_it(
    settings: Settings,
) -> None:
    tag = uuid.uuid4().hex[:3].upper()
    # Regions of this run's own (the KPIs are read over a period other tests share).
    regions = {"seller": f"BG{tag}", "buyer": f"SE{tag}", "carrier": f"FI{tag}"}
    seller = await partner_in(settings, "sme", "Plast Pleven OOD", regions["seller"], "22")
    buyer = await partner_in(settings, "sme", "Recikl Sofia OOD", regions["buyer"], "38")
    carrier = await partner_in(settings, "logistics", "Frakt AB", regions["carrier"], "49")
    stranger = await register(settings, "sme", "Someone Else")
    other_carrier = await register(settings, "logistics", "Lost The Bid AB")
    operator = await register(settings, "operator", "Cluster Council")
    facilitator = await register(settings, "facilitator", "Cluster Staff")
    since = datetime.now(UTC)
    async with (
        consumer_running(settings, "analytics", ANALYTICS_TOPICS, Analytics) as analytics,
        running_api(settings) as client,
        notifier_running(settings),
    ):
        match_id = await confirmed_match_with_carrier(settings, seller, buyer, carrier)

        async def awarded() -> bool:
            r = await client.get(f"/v1/matches/{match_id}", headers=buyer.auth)
            if r.status != 200:
                return False
            body = await r.json()
            return bool(
                body["status"] == "confirmed" and (body["transport"] or {}).get("carrier_id")
            )

        await eventually(awarded, 30)
        good = {"rating": 4, "reason": "material_quality"}
        feedback = f"/v1/matches/{match_id}/feedback"
        delivered = f"/v1/matches/{match_id}/delivered"

        # Nothing to rate before the delivery; only the buyer or the winning carrier confirms it.
        body = await problem(await client.post(feedback, json=good, headers=buyer.auth), 409)
        assert body["type"].endswith("/not-delivered")
        await problem(await client.post(delivered, headers=seller.auth), 403)
        await problem(await client.post(delivered, headers=stranger.auth), 404)
        await problem(await client.post(delivered, headers=other_carrier.auth), 404)
        await problem(await client.post(delivered, headers=operator.auth), 403)
        bad = await client.post(delivered, json={"delivery_id": "d-1"}, headers=buyer.auth)
        assert (await problem(bad, 422))["errors"][0]["field"] == "delivery_id"

        before = await end_offsets(settings, "market.matches")
        r = await client.post(delivered, json={"note": "unloaded at gate 2"}, headers=carrier.auth)
        assert r.status == 202, await r.text()
        [event] = [
            orjson.loads(x.value)
            for x in await read_since(settings, "market.matches", before)
            if orjson.loads(x.value).get("match_id") == match_id
        ]
        assert event["type"] == "market.match.delivered.v1"
        assert (event["confirmed_as"], event["carrier_id"]) == ("carrier", carrier.partner_id)

        # Each party is asked for feedback, once.
        async def asked(partner: Partner) -> bool:
            r = await client.get("/v1/notifications", headers=partner.auth)
            items = [i for i in (await r.json())["items"] if i["kind"] == "feedback.requested"]
            return [(i["subject_id"], i["data"]["answer_at"]) for i in items] == [
                (match_id, feedback)
            ]

        for partner in (seller, buyer, carrier):
            await eventually(functools.partial(asked, partner), 30)
        stranger_notes = await (await client.get("/v1/notifications", headers=stranger.auth)).json()
        assert all(i["kind"] != "feedback.requested" for i in stranger_notes["items"])

        async def delivery_known() -> bool:
            r = await client.get(feedback, headers=seller.auth)
            return r.status == 200 and len((await r.json())["deliveries"]) == 1

        await eventually(delivery_known, 30)
        body = await problem(await client.post(delivered, headers=buyer.auth), 409)
        assert body["type"].endswith("/already-delivered")

        # Bad answers name the field.
        for wrong, field in (
            ({"rating": 6, "reason": "price"}, "rating"),
            ({"rating": 0, "reason": "price"}, "rating"),
            ({"rating": 3, "reason": "great"}, "reason"),
            ({"rating": 3}, "body"),
            ({"rating": 3, "reason": "price", "stars": 5}, "stars"),  # the unknown field, named
        ):
            r = await client.post(feedback, json=wrong, headers=seller.auth)
            assert (await problem(r, 422))["errors"][0]["field"] == field, wrong

        answers = {
            seller: {"rating": 4, "reason": "material_quality"},
            buyer: {"rating": 2, "reason": "timeliness", "comment": "two days late"},
            carrier: {"rating": 5, "reason": "communication"},
        }
        for partner, answer in answers.items():
            r = await client.post(feedback, json=answer, headers=partner.auth)
            assert r.status == 202, await r.text()
        await problem(await client.post(feedback, json=good, headers=stranger.auth), 404)
        await problem(await client.post(feedback, json=good, headers=other_carrier.auth), 404)

        async def all_three() -> bool:
            r = await client.get(feedback, headers=operator.auth)
            return len((await r.json())["feedback"]) == 3

        await eventually(all_three, 30)
        # Once each: a second answer is refused, the first one stands.
        again = await client.post(
            feedback, json={"rating": 1, "reason": "price"}, headers=buyer.auth
        )
        assert (await problem(again, 409))["type"].endswith("/already-given")

        # A party sees its own answer; the association sees all three, with who gave them.
        own = await (await client.get(feedback, headers=buyer.auth)).json()
        assert [(a["side"], a["rating"], a["comment"]) for a in own["your_feedback"]] == [
            ("buyer", 2, "two days late")
        ]
        assert "feedback" not in own
        await problem(await client.get(feedback, headers=stranger.auth), 404)
        every = await (await client.get(feedback, headers=operator.auth)).json()
        assert {(a["side"], a["rating"], a["reason"], a["region"]) for a in every["feedback"]} == {
            ("seller", 4, "material_quality", regions["seller"]),
            ("buyer", 2, "timeliness", regions["buyer"]),
            ("carrier", 5, "communication", regions["carrier"]),
        }
        listed = await client.get(
            f"/v1/feedback?from={since.isoformat().replace('+00:00', 'Z')}",
            headers=facilitator.auth,
        )
        assert listed.status == 200, await listed.text()
        mine = [i for i in (await listed.json())["items"] if i["match_id"] == match_id]
        assert {(i["name"], i["rating"]) for i in mine} == {
            ("Plast Pleven OOD", 4),
            ("Recikl Sofia OOD", 2),
            ("Frakt AB", 5),
        }
        for path, who, status in (
            ("/v1/feedback", seller, 403),
            ("/v1/feedback/summary", carrier, 403),
            ("/v1/feedback/summary?slice=weekly", operator, 422),
            ("/v1/feedback?limit=0", operator, 422),
        ):
            await problem(await client.get(path, headers=who.auth), status)

        # The KPIs, once the analytics consumer has the facts: by the answering partner's region.
        async def counted() -> bool:
            r = await client.get("/v1/feedback/summary?slice=region", headers=operator.auth)
            rows = {x["slice"]: x for x in (await r.json())["tables"]["feedback"]}
            return all(region in rows for region in regions.values())

        await eventually(counted, 60)
        summary = await (
            await client.get("/v1/feedback/summary?slice=region", headers=operator.auth)
        ).json()
        rows = {x["slice"]: x for x in summary["tables"]["feedback"]}
        assert [
            (rows[regions[s]]["feedback_answers"], rows[regions[s]]["mean_rating"])
            for s in ("seller", "buyer", "carrier")
        ] == [(1, 4.0), (1, 2.0), (1, 5.0)]
        assert rows[regions["buyer"]]["low_ratings"] == 1
        assert set(summary["headline"]) == set(FEEDBACK_HEADLINES)
        assert summary["headline"]["deliveries"] >= 1
        until = datetime.now(UTC)
        await caught_up(settings, analytics, ANALYTICS_TOPICS)

    conn = await connect(settings)
    try:
        # One SME's figures: its delivery, everyone asked answered, its own answer only.
        own_kpis = headline(await kpis(conn, since, until, "total", seller.partner_id))
        assert own_kpis["deliveries"] == 1
        assert own_kpis["response_rate"] == 1.0
        assert (own_kpis["feedback_answers"], own_kpis["mean_rating"]) == (1, 4.0)
        by_sector = {
            r["slice"]: r
            for r in (await feedback_kpis(conn, since, until, "sector", buyer.partner_id))[
                "feedback"
            ]
        }
        assert by_sector["38"]["mean_rating"] == 2.0
        reasons = {r["reason"]: r for r in await feedback_reasons(conn, since, until)}
        assert reasons["timeliness"]["answers"] >= 1
        live = headline(await kpis(conn, since, until))
        live_regions = (await kpis(conn, since, until, "region"))["feedback"]

        # The answers are in the audit log, attributed, and the report rebuilt from it agrees.
        async with auditor_running(settings):
            await caught_up(settings, AUDITOR, AUDITED)
        story = [(s.type, s.actor) for s in await history(conn, match_id)]
        assert ("market.match.delivered.v1", carrier.partner_id) in story
        assert {a for t, a in story if t == "market.feedback.given.v1"} == {
            seller.partner_id,
            buyer.partner_id,
            carrier.partner_id,
        }
        report = await build(conn, since, until, progress=False)
    finally:
        await conn.close()
    assert {k: report.headline[k] for k in FEEDBACK_HEADLINES} == {
        k: live[k] for k in FEEDBACK_HEADLINES
    }
    rebuilt = {r["slice"]: r for r in report.slices["region"]["feedback"]}
    for row in live_regions:
        if row["slice"] in regions.values():
            assert rebuilt[row["slice"]] == row
    rows_csv = list(csv.DictReader(io.StringIO(to_csv(report).decode())))
    assert {
        (r["slice"], r["metric"], float(r["value"]))
        for r in rows_csv
        if r["section"] == "region" and r["slice"] == regions["buyer"]
    } >= {(regions["buyer"], "mean_rating", 2.0), (regions["buyer"], "feedback_answers", 1.0)}
    assert any(r["section"] == "feedback_reason" for r in rows_csv)
    page = to_html(report).decode()
    assert "Partner feedback" in page
    assert regions["carrier"] in page
    text = "".join(p.extract_text() for p in PdfReader(io.BytesIO(to_pdf(report))).pages)
    assert "Partner feedback" in text
    assert regions["seller"] in text


async def test_a_standing_agreement_is_rated_per_delivered_period(settings: Settings) -> None:
    """Each period of a standing agreement is delivered and rated on its own, named by the
    delivery id its transport job carries; without an awarded carrier only the SMEs answer."""
    seller = await register(settings, "sme", "Brewery AB")
    buyer = await register(settings, "sme", "Feed Mill AB")
    period = str(uuid.uuid4())
    agreement = Agreement(period="week", quantity=Quantity(amount=2, unit="t"), starts=NOW.date())
    async with running_api(settings) as client:
        match_id = await confirmed_match_with_carrier(
            settings, seller, buyer, None, agreement=agreement, delivery_id=period
        )
        delivered = f"/v1/matches/{match_id}/delivered"
        feedback = f"/v1/matches/{match_id}/feedback"

        async def confirmed() -> bool:
            # Once the match is projected as confirmed, a period must be named.
            r = await client.post(delivered, headers=buyer.auth)
            return r.status == 422

        await eventually(confirmed, 30)
        body = await problem(await client.post(delivered, headers=buyer.auth), 422)
        assert body["errors"][0]["field"] == "delivery_id"
        unknown = await client.post(
            delivered, json={"delivery_id": "no-such-period"}, headers=buyer.auth
        )
        assert (await problem(unknown, 404))["errors"][0]["field"] == "delivery_id"

        async def accepted() -> bool:
            # 404 until the period's job is projected (that is what a delivery id is checked
            # against), then 202.
            r = await client.post(delivered, json={"delivery_id": period}, headers=buyer.auth)
            return r.status == 202

        await eventually(accepted, 30)

        async def recorded() -> bool:
            r = await client.get(feedback, headers=buyer.auth)
            return [d["delivery_id"] for d in (await r.json())["deliveries"]] == [period]

        await eventually(recorded, 30)
        listed = await (await client.get(feedback, headers=seller.auth)).json()
        assert listed["deliveries"][0]["asked"] == sorted([seller.partner_id, buyer.partner_id])
        again = await client.post(delivered, json={"delivery_id": period}, headers=buyer.auth)
        await problem(again, 409)
        # The answer names the period; without it, there is no delivery of the match as a whole.
        answer = {"rating": 5, "reason": "timeliness"}
        await problem(await client.post(feedback, json=answer, headers=seller.auth), 409)
        r = await client.post(feedback, json=answer | {"delivery_id": period}, headers=seller.auth)
        assert r.status == 202, await r.text()

        async def kept() -> bool:
            r = await client.get(feedback, headers=seller.auth)
            return [
                (a["delivery_key"], a["rating"]) for a in (await r.json())["your_feedback"]
            ] == [(period, 5)]

        await eventually(kept, 30)
