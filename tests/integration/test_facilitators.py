"""Facilitators (#11) on the real stack: an SME's consent (an event, revocable) is what lets a
facilitator post, change, read and nudge its listings; without it every such call is answered
404, a listing exactly as to an outsider (it does not tell that the listing exists, nor whose it
is), an `on_behalf_of` with a problem naming the missing consent; the listing events carry the
SME as owner and the facilitator as actor; the facilitator sees the SMEs it supports with their
stale listings; a nudge reaches the SME as a notification; the audit history says who acted on
whose behalf."""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestClient

from consumers.auditor import GROUP as AUDITOR
from consumers.auditor import TOPICS as AUDITED
from marketplace.audit.history import history, partners_named
from marketplace.db import connect
from marketplace.settings import Settings
from schemas.common import Location, Material, Money, Quantity, Window
from schemas.listings import OfferPosted, OfferTerms
from tests.integration.api_helpers import (
    Partner,
    eventually,
    offer_body,
    register,
    request_body,
    running_api,
)
from tests.integration.kafka_helpers import caught_up, end_offsets, publish, read_since
from tests.integration.notify_helpers import notifier_running
from tests.integration.test_audit import auditor_running

pytestmark = pytest.mark.integration
Client = TestClient[Any, Any]


async def problem(response: Any, status: int) -> dict[str, Any]:
    assert response.status == status, await response.text()
    assert response.content_type == "application/problem+json"
    body: dict[str, Any] = await response.json()
    return body


async def wait_consent(client: Client, sme: Partner, facilitator: Partner, status: str) -> None:
    async def seen() -> bool:
        items = (await (await client.get("/v1/consents", headers=sme.auth)).json())["items"]
        return any(
            i["facilitator_id"] == facilitator.partner_id and i["status"] == status for i in items
        )

    await eventually(seen, 30)


async def notifications(client: Client, partner: Partner, kind: str) -> list[dict[str, Any]]:
    answer = await client.get("/v1/notifications", headers=partner.auth)
    return [i for i in (await answer.json())["items"] if i["kind"] == kind]


def old_offer(owner: Partner) -> OfferPosted:
    """An offer its SME posted 40 days ago and never touched since."""
    start = datetime.now(UTC) + timedelta(days=5)
    return OfferPosted(
        offer_id=str(uuid.uuid4()),
        owner_id=owner.partner_id,
        actor_id=owner.partner_id,
        material=Material(code="030105", description="sawdust and shavings", form="loose"),
        location=Location(lat=60.67, lon=17.14, region="SE313"),
        terms=OfferTerms(
            quantity=Quantity(amount=8, unit="t"),
            price=Money(amount=5, currency="SEK"),
            available=Window(start=start, end=start + timedelta(days=90)),
        ),
    )


async def test_a_facilitator_acts_only_with_a_current_consent(settings: Settings) -> None:
    sme = await register(settings, "sme", "Textil Gävle AB")
    other = await register(settings, "sme", "Not Supported AB")
    facilitator = await register(settings, "facilitator", "Region Gävleborg Cluster")
    colleague = await register(settings, "facilitator", "Another Facilitator")
    stale = old_offer(sme)
    await publish(settings, stale, time=datetime.now(UTC) - timedelta(days=40))
    async with running_api(settings) as client, notifier_running(settings):
        for_sme = offer_body() | {"on_behalf_of": sme.partner_id}

        # No consent yet: refused, and the problem says what is missing and where.
        body = await problem(
            await client.post("/v1/offers", json=for_sme, headers=facilitator.auth), 404
        )
        assert body["type"].endswith("/no-consent")
        assert body["errors"][0]["field"] == "on_behalf_of"
        assert f"POST /v1/consents/{facilitator.partner_id}" in body["detail"]
        body = await problem(
            await client.post("/v1/offers", json=offer_body(), headers=facilitator.auth), 422
        )
        assert body["errors"][0]["field"] == "on_behalf_of"
        # An SME cannot act for another SME, nor grant consent to someone who is no facilitator.
        body = await problem(
            await client.post(
                "/v1/offers",
                json=offer_body() | {"on_behalf_of": other.partner_id},
                headers=sme.auth,
            ),
            403,
        )
        assert body["errors"][0]["field"] == "on_behalf_of"
        await problem(await client.post(f"/v1/consents/{other.partner_id}", headers=sme.auth), 404)
        await problem(
            await client.post(f"/v1/consents/{sme.partner_id}", headers=facilitator.auth), 403
        )

        # The SME consents: an event on partners.registry under its own key.
        before = await end_offsets(settings, "partners.registry")
        granted = await client.post(
            f"/v1/consents/{facilitator.partner_id}",
            json={"note": "paper form signed 2026-11-20"},
            headers=sme.auth,
        )
        assert granted.status == 202, await granted.text()
        # The answer waits for the consent to be in force (the projector applied it).
        assert (await granted.json())["in_effect"] is True
        records = await read_since(settings, "partners.registry", before)
        [consent] = [orjson.loads(r.value) for r in records if r.key == sme.partner_id.encode()]
        assert consent["type"] == "partners.consent.granted.v1"
        assert consent["facilitator_id"] == facilitator.partner_id
        await wait_consent(client, sme, facilitator, "granted")
        await problem(
            await client.post(f"/v1/consents/{facilitator.partner_id}", headers=sme.auth), 409
        )

        async def told_facilitator() -> bool:
            return bool(await notifications(client, facilitator, "consent.granted"))

        await eventually(told_facilitator, 30)

        # Now the facilitator posts for the SME: owner = the SME, actor = the facilitator.
        before = await end_offsets(settings, "market.listings")
        posted = await client.post("/v1/offers", json=for_sme, headers=facilitator.auth)
        assert posted.status == 202, await posted.text()
        offer_id = (await posted.json())["offer_id"]
        asked = request_body() | {"on_behalf_of": sme.partner_id}
        assert (
            await client.post("/v1/requests", json=asked, headers=facilitator.auth)
        ).status == 202
        events = [
            orjson.loads(r.value) for r in await read_since(settings, "market.listings", before)
        ]
        mine = [e for e in events if e.get("offer_id") == offer_id]
        assert [(e["owner_id"], e["actor_id"]) for e in mine] == [
            (sme.partner_id, facilitator.partner_id)
        ]

        async def sme_sees_it() -> bool:
            r = await client.get(f"/v1/offers/{offer_id}", headers=sme.auth)
            return r.status == 200

        await eventually(sme_sees_it, 30)
        got = await (await client.get(f"/v1/offers/{offer_id}", headers=facilitator.auth)).json()
        assert got["owner_id"] == sme.partner_id
        listed = await client.get(
            f"/v1/offers?on_behalf_of={sme.partner_id}", headers=facilitator.auth
        )
        assert offer_id in {o["id"] for o in (await listed.json())["items"]}
        terms = offer_body()["terms"] | {"quantity": {"amount": 9, "unit": "t"}}
        changed = await client.put(
            f"/v1/offers/{offer_id}", json={"terms": terms}, headers=facilitator.auth
        )
        assert changed.status == 202, await changed.text()
        # Without ?on_behalf_of a facilitator's list names no SME.
        await problem(await client.get("/v1/offers", headers=facilitator.auth), 400)

        # Another SME's listings stay out of reach; so does everything for a colleague.
        theirs = await client.post("/v1/offers", json=offer_body(), headers=other.auth)
        their_id = (await theirs.json())["offer_id"]

        async def projected() -> bool:
            return (await client.get(f"/v1/offers/{their_id}", headers=other.auth)).status == 200

        await eventually(projected, 30)
        # Their listing is the same 404 to the facilitator as to an outsider (an SME that is
        # not its owner), word for word; a nudge the same 404 as for a listing that never was.
        for method, path, payload in (
            ("GET", f"/v1/offers/{their_id}", None),
            ("PUT", f"/v1/offers/{their_id}", {"terms": terms}),
            ("DELETE", f"/v1/offers/{their_id}", None),
        ):
            r = await client.request(method, path, json=payload, headers=facilitator.auth)
            outsider = await client.request(method, path, json=payload, headers=sme.auth)
            assert await problem(r, 404) == await problem(outsider, 404), (method, path)
        missing = str(uuid.uuid4())
        for who, listing in ((facilitator, their_id), (colleague, offer_id)):
            r = await client.post(f"/v1/offers/{listing}/nudge", headers=who.auth)
            never = await client.post(f"/v1/offers/{missing}/nudge", headers=who.auth)
            body, expected = await problem(r, 404), await problem(never, 404)
            assert body["detail"] == expected["detail"].replace(missing, listing)
            assert body["type"] == expected["type"]
        new_terms = {"terms": terms}
        await problem(
            await client.put(f"/v1/offers/{offer_id}", json=new_terms, headers=colleague.auth), 404
        )
        for_whom = "/v1/offers?on_behalf_of="
        r = await client.get(for_whom + other.partner_id, headers=facilitator.auth)
        unknown = await client.get(for_whom + missing, headers=facilitator.auth)
        body, expected = await problem(r, 404), await problem(unknown, 404)
        assert body["type"].endswith("/no-consent")
        assert body["detail"] == expected["detail"].replace(missing, other.partner_id)
        # An SME cannot nudge, and a listing that does not exist is 404.
        await problem(await client.post(f"/v1/offers/{offer_id}/nudge", headers=sme.auth), 403)
        await problem(
            await client.post(f"/v1/offers/{uuid.uuid4()}/nudge", headers=facilitator.auth), 404
        )

        # The SMEs the facilitator supports, with the 40-day-old offer flagged stale.
        async def supported() -> dict[str, Any]:
            r = await client.get("/v1/facilitator/smes", headers=facilitator.auth)
            assert r.status == 200, await r.text()
            items = (await r.json())["items"]
            [entry] = [i for i in items if i["partner_id"] == sme.partner_id]
            return dict(entry)

        async def both_listed() -> bool:
            ids = {x["id"] for x in (await supported())["listings"]}
            return {offer_id, stale.offer_id} <= ids

        await eventually(both_listed, 30)
        entry = await supported()
        assert entry["name"] == "Textil Gävle AB"
        by_id = {x["id"]: x for x in entry["listings"]}
        assert by_id[stale.offer_id]["stale"] is True
        assert by_id[stale.offer_id]["days_unchanged"] >= 40
        assert by_id[offer_id]["stale"] is False
        assert entry["stale_listings"] >= 1
        everyone = await (await client.get("/v1/facilitator/smes", headers=colleague.auth)).json()
        assert everyone["items"] == []
        bad = await client.get("/v1/facilitator/smes?stale_days=0", headers=facilitator.auth)
        assert (await problem(bad, 422))["errors"][0]["field"] == "stale_days"
        await problem(await client.get("/v1/facilitator/smes", headers=sme.auth), 403)

        # A nudge: an event, then a notification to the SME; a second one the same day waits.
        nudged = await client.post(
            f"/v1/offers/{stale.offer_id}/nudge",
            json={"message": "Still have the sawdust?"},
            headers=facilitator.auth,
        )
        assert nudged.status == 202, await nudged.text()

        async def sme_told() -> bool:
            return bool(await notifications(client, sme, "listing.nudged"))

        await eventually(sme_told, 30)
        [note] = await notifications(client, sme, "listing.nudged")
        assert note["subject_id"] == stale.offer_id
        assert note["data"]["message"] == "Still have the sawdust?"
        assert note["data"]["days_unchanged"] >= 40
        assert note["data"]["facilitator_id"] == facilitator.partner_id

        async def nudge_recorded() -> bool:
            listings = {x["id"]: x for x in (await supported())["listings"]}
            return listings[stale.offer_id]["last_nudged_at"] is not None

        await eventually(nudge_recorded, 30)
        again = await client.post(f"/v1/offers/{stale.offer_id}/nudge", headers=facilitator.auth)
        assert (await problem(again, 409))["type"].endswith("/recently-nudged")

        # Revocation takes effect: once the SME has its answer, every write and read for it is
        # refused again, with no waiting.
        revoked = await client.delete(f"/v1/consents/{facilitator.partner_id}", headers=sme.auth)
        assert revoked.status == 202, await revoked.text()
        assert (await revoked.json())["in_effect"] is True
        for method, path, payload in (
            ("POST", "/v1/offers", for_sme),
            ("GET", f"/v1/offers/{offer_id}", None),
            ("PUT", f"/v1/offers/{offer_id}", {"terms": terms}),
            ("DELETE", f"/v1/offers/{offer_id}", None),
            ("POST", f"/v1/offers/{offer_id}/nudge", None),
        ):
            r = await client.request(method, path, json=payload, headers=facilitator.auth)
            await problem(r, 404)
        await wait_consent(client, sme, facilitator, "revoked")
        after = await (await client.get("/v1/facilitator/smes", headers=facilitator.auth)).json()
        assert sme.partner_id not in {i["partner_id"] for i in after["items"]}
        await problem(
            await client.delete(f"/v1/consents/{facilitator.partner_id}", headers=sme.auth), 404
        )

        async def told_revoked() -> bool:
            return bool(await notifications(client, facilitator, "consent.revoked"))

        await eventually(told_revoked, 30)

    # The audit log attributes every facilitator action: who acted, on whose behalf.
    async with auditor_running(settings):
        await caught_up(settings, AUDITOR, AUDITED)
    conn = await connect(settings)
    try:
        # (A matcher of a concurrent test may have proposed the offer: partners' acts only.)
        story = [s for s in await history(conn, offer_id) if s.actor is not None]
        assert [(s.type, s.actor, s.on_behalf_of) for s in story] == [
            ("market.offer.posted.v1", facilitator.partner_id, sme.partner_id),
            ("market.offer.updated.v1", facilitator.partner_id, sme.partner_id),
        ]
        acts = await history(conn, facilitator.partner_id, on_behalf_only=True)
        assert {(s.type, s.on_behalf_of) for s in acts} == {
            ("market.offer.posted.v1", sme.partner_id),
            ("market.request.posted.v1", sme.partner_id),
            ("market.offer.updated.v1", sme.partner_id),
            ("partners.listing.nudged.v1", sme.partner_id),
        }
        # The SME's own consent and revocation are its own acts, not someone's on its behalf.
        own = await history(conn, sme.partner_id)
        consents = [s for s in own if s.type and s.type.startswith("partners.consent.")]
        assert [(s.type, s.actor, s.on_behalf_of) for s in consents] == [
            ("partners.consent.granted.v1", sme.partner_id, None),
            ("partners.consent.revoked.v1", sme.partner_id, None),
        ]
        named = await partners_named(conn, [facilitator.partner_id, sme.partner_id])
        assert named[facilitator.partner_id] == ("facilitator", "Region Gävleborg Cluster")
    finally:
        await conn.close()
    cli = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "marketplace.app.cli",
        "audit",
        "history",
        offer_id,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=os.environ.copy(),
    )
    out, err = await asyncio.wait_for(cli.communicate(), 120)
    assert cli.returncode == 0, err.decode()
    lines = [line for line in out.decode().splitlines() if "market.offer." in line]
    assert len(lines) == 2
    assert all(
        f"by {facilitator.partner_id} (facilitator Region Gävleborg Cluster) on behalf of"
        f" {sme.partner_id} (sme Textil Gävle AB)" in line
        for line in lines
    )
