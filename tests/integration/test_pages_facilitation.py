"""A facilitator acts on the pages for the SMEs that consented to its organisation (#19), against
the real stack (API with the pages, projector): it answers an SME's proposal and rates one of the
SME's deliveries, through the API's own commands, so the events name the SME as the party and
the facilitator (and its person) as who acted; refusals land next to the field. Without the SME's
consent every such page and form is 404, as for an SME that does not exist; a read-only member
reads and cannot act; an SME's person does not reach a facilitator's pages."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestClient

from marketplace.db import connect
from marketplace.settings import Settings
from producers.web.app import create_service
from schemas.common import Money, Quantity, Reason
from schemas.matches import MatchProposed
from tests.integration.api_helpers import Partner, eventually, projected, register, running_api
from tests.integration.kafka_helpers import end_offsets, read_since
from tests.integration.notify_helpers import publish
from tests.integration.test_feedback import confirmed_match_with_carrier
from tests.integration.test_pages_accounts import plain
from tests.integration.test_pages_agreements import as_person
from tests.integration.test_pages_matrix import person

pytestmark = pytest.mark.integration
Client = TestClient[Any, Any]


def proposal(seller: Partner, buyer: Partner) -> MatchProposed:
    return MatchProposed(
        match_id=str(uuid.uuid4()),
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
        expires_at=datetime.now(UTC) + timedelta(days=2),
    )


async def grant(client: Client, sme: Partner, facilitator: Partner) -> None:
    granted = await client.post(
        f"/v1/consents/{facilitator.partner_id}", json={"note": "act for us"}, headers=sme.auth
    )
    assert granted.status == 202, await granted.text()


def event_about(records: list[Any], kind: str, match_id: str) -> dict[str, Any]:
    for r in records:
        if dict(r.headers).get("ce_type") == kind.encode():
            body: dict[str, Any] = orjson.loads(r.value)
            if body.get("match_id") == match_id:
                return body
    raise AssertionError(f"no {kind} of match {match_id}")


async def test_a_facilitator_answers_and_rates_for_a_consenting_sme_only(
    settings: Settings,
) -> None:
    settings = plain(settings)
    facilitator = await register(settings, "facilitator", "Företagsstöd Hälsingland")
    sme = await register(settings, "sme", "Textilverkstad Söderhamn AB")
    buyer = await register(settings, "sme", "Isolering Gävle AB")
    stranger = await register(settings, "sme", "Utan Samtycke AB")
    helper = await person(settings, facilitator.partner_id, "member")
    reader = await person(settings, facilitator.partner_id, "read-only")
    sme_admin = await person(settings, sme.partner_id, "admin")
    ours, theirs = proposal(sme, buyer), proposal(stranger, buyer)
    listings_since = await end_offsets(settings, "market.listings")
    async with running_api(settings, create_service) as client:
        await projected(settings, facilitator, sme, buyer, stranger)
        await grant(client, sme, facilitator)
        await publish(settings, ours, theirs)
        deals = f"/app/facilitation/{sme.partner_id}/deals"
        csrf = await as_person(client, helper)

        async def shown() -> bool:
            page = await client.get(deals)
            return page.status == 200 and f'id="proposal-{ours.match_id}"' in await page.text()

        await eventually(shown, 30)
        html = await (await client.get(deals)).text()
        assert "Textilverkstad Söderhamn AB" in html
        accept = f"/app/facilitation/{sme.partner_id}/proposals/{ours.match_id}/accept"
        assert f'action="{accept}"' in html
        assert theirs.match_id not in html  # the stranger's proposal is not the SME's
        listing = await (await client.get("/app/facilitation")).text()
        assert f'href="{deals}"' in listing

        # Without the SME's consent, or for a proposal not the SME's: 404, as for nothing.
        other = f"/app/facilitation/{stranger.partner_id}"
        assert (await client.get(f"{other}/deals")).status == 404
        refused = await client.post(
            f"{other}/proposals/{theirs.match_id}/accept", data={"csrf": csrf}
        )
        assert refused.status == 404
        not_its = await client.post(
            f"/app/facilitation/{sme.partner_id}/proposals/{theirs.match_id}/accept",
            data={"csrf": csrf},
        )
        assert not_its.status == 404

        # Accepted for the SME: the SME's answer, given by the facilitator's person.
        answered = await client.post(accept, data={"csrf": csrf}, allow_redirects=False)
        assert answered.status == 303, await answered.text()
        assert answered.headers["Location"] == f"{deals}?answered={ours.match_id}"

        async def sme_answered() -> bool:
            got = await client.get(f"/v1/matches/{ours.match_id}", headers=sme.auth)
            return bool((await got.json()).get("your_answer") == "accepted")

        await eventually(sme_answered, 30)
        event = event_about(
            await read_since(settings, "market.listings", listings_since),
            "market.match.accepted.v1",
            ours.match_id,
        )
        assert event["partner_id"] == sme.partner_id
        assert event["actor_id"] == facilitator.partner_id
        assert event["person_id"]  # the facilitator's person, pseudonymous
        again = await client.post(accept, data={"csrf": csrf})
        assert again.status == 409  # answered already (for the SME)

        # A delivery of the SME, confirmed by the buyer: the facilitator rates it for the SME.
        match_id = await confirmed_match_with_carrier(settings, sme, buyer, None)

        async def delivered() -> bool:
            # 409 until the projector has the confirmation; 202 once the buyer confirms.
            sent = await client.post(
                f"/v1/matches/{match_id}/delivered", json={}, headers=buyer.auth
            )
            return sent.status == 202

        await eventually(delivered, 30)

        async def rateable() -> bool:
            return "rate-1" in await (await client.get(deals)).text()

        await eventually(rateable, 30)
        rate = f"/app/facilitation/{sme.partner_id}/matches/{match_id}/feedback"
        html = await (await client.get(deals)).text()
        assert f'action="{rate}"' in html
        missing = await client.post(
            rate, data={"csrf": csrf, "delivery_id": "", "reason": "quantity"}
        )
        assert missing.status == 422
        assert 'id="rating-1-error"' in await missing.text()
        rated = await client.post(
            rate,
            data={"csrf": csrf, "delivery_id": "", "rating": "4", "reason": "quantity"},
            allow_redirects=False,
        )
        assert rated.status == 303, await rated.text()

        async def stored() -> bool:
            conn = await connect(settings)
            try:
                row = await conn.fetchrow(
                    "SELECT side, rating FROM feedback WHERE match_id = $1 AND partner_id = $2",
                    match_id,
                    sme.partner_id,
                )
            finally:
                await conn.close()
            return row is not None and (row["side"], row["rating"]) == ("seller", 4)

        await eventually(stored, 30)
        html = await (await client.get(deals)).text()
        assert "Feedback of Textilverkstad Söderhamn AB: 4 of 5" in html
        twice = await client.post(
            rate, data={"csrf": csrf, "delivery_id": "", "rating": "5", "reason": "price"}
        )
        assert twice.status == 409
        assert "it counts once" in await twice.text()
        # Without consent, feedback is 404 too.
        assert (
            await client.post(
                f"{other}/matches/{match_id}/feedback", data={"csrf": csrf, "rating": "4"}
            )
        ).status == 404

        # A read-only member reads the page and cannot act; an SME's person has no such page.
        csrf = await as_person(client, reader)
        html = await (await client.get(deals)).text()
        assert f'id="proposal-{ours.match_id}"' in html
        assert 'action="/app/facilitation/' not in html
        assert (await client.post(accept, data={"csrf": csrf})).status == 403
        await as_person(client, sme_admin)
        assert (await client.get(deals)).status == 403
