"""Facilitators (#11) on `partners.registry` (key: the SME's partner id).

An SME consents to a facilitator of the association acting for it; the consent holds until the SME
revokes it. A facilitator's nudge reminds an SME of a listing that has not changed for a while.
Listing events written by a facilitator carry the SME as `owner_id` and the facilitator as
`actor_id` (schemas/listings.py), so the audit log says who acted and on whose behalf."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from schemas.base import Event
from schemas.common import Id, LongText, Sealed, ShortText, WasteCode


class ConsentGranted(Event, frozen=True, kw_only=True, tag="partners.consent.granted.v1"):
    """An SME lets a facilitator post, change and withdraw its listings and nudge it about them."""

    partner_id: Id  # the SME that consents (the key)
    facilitator_id: Id
    actor_id: Id  # who recorded it: the SME itself
    # The person who acted, by pseudonymous id, when a person did (the pages; #19).
    person_id: Id | None = None
    note: ShortText = ""
    # The personal fields, sealed with the organisation's data key (#21 item 8); those fields
    # then hold "". None: an event from before sealing, or one with nothing to seal.
    sealed: Sealed | None = None


class ConsentRevoked(Event, frozen=True, kw_only=True, tag="partners.consent.revoked.v1"):
    """An SME withdraws its consent: from now on the facilitator can do nothing for it."""

    partner_id: Id
    facilitator_id: Id
    actor_id: Id
    # The person who acted, by pseudonymous id, when a person did (the pages; #19).
    person_id: Id | None = None
    reason: ShortText = ""
    # The personal fields, sealed with the organisation's data key (#21 item 8); those fields
    # then hold "". None: an event from before sealing, or one with nothing to seal.
    sealed: Sealed | None = None


class ListingNudged(Event, frozen=True, kw_only=True, tag="partners.listing.nudged.v1"):
    """A facilitator reminds an SME of one of its open listings (the notifier tells the SME)."""

    partner_id: Id  # the SME that owns the listing (the key)
    facilitator_id: Id
    actor_id: Id
    # The person who acted, by pseudonymous id, when a person did (the pages; #19).
    person_id: Id | None = None
    listing_id: Id
    kind: Literal["offer", "request"]
    material_code: WasteCode
    days_unchanged: Annotated[int, msgspec.Meta(ge=0)]
    message: LongText = ""
    # The personal fields, sealed with the organisation's data key (#21 item 8); those fields
    # then hold "". None: an event from before sealing, or one with nothing to seal.
    sealed: Sealed | None = None


FacilitatorEvent = ConsentGranted | ConsentRevoked | ListingNudged
