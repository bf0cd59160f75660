"""Facilitators (#11), the pure parts: who the notifier tells about nudges and consents, and how
the audit history attributes an event to who acted and on whose behalf."""

from __future__ import annotations

import msgspec
import orjson

from marketplace.audit.history import attribution
from marketplace.core.notifications import KINDS, Known
from marketplace.translate.notifications import plan
from schemas.facilitators import ConsentGranted, ConsentRevoked, ListingNudged
from schemas.listings import OfferWithdrawn
from schemas.registry import key_of, topic_of


def test_a_nudge_tells_the_sme_and_a_consent_tells_the_facilitator() -> None:
    nudge = ListingNudged(
        partner_id="sme-1",
        facilitator_id="fac-1",
        actor_id="fac-1",
        listing_id="offer-1",
        kind="offer",
        material_code="030105",
        days_unchanged=41,
        message="still there?",
    )
    [note] = plan(nudge, Known())
    assert (note.partner_id, note.kind, note.subject_id) == ("sme-1", "listing.nudged", "offer-1")
    assert "41 days" in note.summary
    assert note.data["message"] == "still there?"
    granted = ConsentGranted(partner_id="sme-1", facilitator_id="fac-1", actor_id="sme-1")
    revoked = ConsentRevoked(partner_id="sme-1", facilitator_id="fac-1", actor_id="sme-1")
    assert [(n.partner_id, n.kind) for n in plan(granted, Known())] == [
        ("fac-1", "consent.granted")
    ]
    assert [(n.partner_id, n.kind) for n in plan(revoked, Known())] == [
        ("fac-1", "consent.revoked")
    ]
    assert {"listing.nudged", "consent.granted", "consent.revoked"} <= set(KINDS)


def test_facilitator_events_travel_under_the_smes_key() -> None:
    # Consents and nudges of one SME share a partition, so they are applied in order.
    for event in (
        ConsentGranted(partner_id="sme-1", facilitator_id="fac-1", actor_id="sme-1"),
        ConsentRevoked(partner_id="sme-1", facilitator_id="fac-1", actor_id="sme-1"),
    ):
        assert (topic_of(event), key_of(event)) == ("partners.registry", "sme-1")


def test_attribution_names_the_actor_and_the_partner_acted_for() -> None:
    by_facilitator = OfferWithdrawn(
        offer_id="o", owner_id="sme-1", actor_id="fac-1", material_code="030105"
    )
    by_owner = OfferWithdrawn(
        offer_id="o", owner_id="sme-1", actor_id="sme-1", material_code="030105"
    )
    as_json = orjson.dumps({"actor_id": "fac-1", "owner_id": "sme-1"}).decode()
    assert attribution(orjson.loads(_json(by_facilitator))) == ("fac-1", "sme-1")
    assert attribution(_json(by_owner)) == ("sme-1", None)
    assert attribution(as_json) == ("fac-1", "sme-1")
    # A nudge: the facilitator acted towards the SME that owns the listing.
    assert attribution({"actor_id": "fac-1", "partner_id": "sme-1"}) == ("fac-1", "sme-1")
    # The matcher's events and non-JSON records name no actor.
    assert attribution({"match_id": "m", "seller_id": "a"}) == (None, None)
    assert attribution("not json") == (None, None)
    assert attribution(None) == (None, None)


def _json(event: object) -> str:
    return msgspec.json.encode(event).decode()
