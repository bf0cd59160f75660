"""Events on `market.listings` (key: the material family of the List of Waste code)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import msgspec

from schemas.base import Event
from schemas.common import (
    BuyerSpecification,
    Id,
    Location,
    LongText,
    Material,
    Money,
    Quantity,
    Recurrence,
    Sealed,
    ShortText,
    WasteCode,
    Window,
)


class OfferTerms(msgspec.Struct, frozen=True, kw_only=True):
    quantity: Quantity
    # Price per unit of `quantity`; negative when the holder pays to have it taken.
    price: Money
    available: Window
    min_lot: Quantity | None = None
    recurrence: Recurrence | None = None

    def __post_init__(self) -> None:
        lot = self.min_lot
        if lot is not None and lot.unit == self.quantity.unit and lot.amount > self.quantity.amount:
            raise ValueError("min_lot: larger than the quantity offered")


class RequestTerms(msgspec.Struct, frozen=True, kw_only=True):
    quantity: Quantity
    # The most the buyer pays per unit delivered (may be negative: it wants to be paid).
    max_price: Money
    wanted: Window
    max_distance_km: Annotated[float, msgspec.Meta(gt=0, le=5000)]
    recurrence: Recurrence | None = None
    specification: BuyerSpecification | None = None


class OfferPosted(Event, frozen=True, kw_only=True, tag="market.offer.posted.v1"):
    offer_id: Id
    owner_id: Id
    actor_id: Id
    # The person who acted, by pseudonymous id, when a person did (the pages; #19).
    person_id: Id | None = None
    material: Material
    location: Location
    terms: OfferTerms
    # Certifications the seller holds for this material (e.g. "EN 15343", "ISCC PLUS").
    certifications: tuple[ShortText, ...] = ()
    # The personal fields, sealed with the organisation's data key (#21 item 8); those fields
    # then hold "". None: an event from before sealing, or one with nothing to seal.
    sealed: Sealed | None = None


class OfferUpdated(Event, frozen=True, kw_only=True, tag="market.offer.updated.v1"):
    offer_id: Id
    owner_id: Id
    actor_id: Id
    # The person who acted, by pseudonymous id, when a person did (the pages; #19).
    person_id: Id | None = None
    material_code: WasteCode
    terms: OfferTerms


class OfferWithdrawn(Event, frozen=True, kw_only=True, tag="market.offer.withdrawn.v1"):
    offer_id: Id
    owner_id: Id
    actor_id: Id
    # The person who acted, by pseudonymous id, when a person did (the pages; #19).
    person_id: Id | None = None
    material_code: WasteCode
    reason: LongText = ""
    # The personal fields, sealed with the organisation's data key (#21 item 8); those fields
    # then hold "". None: an event from before sealing, or one with nothing to seal.
    sealed: Sealed | None = None


class RequestPosted(Event, frozen=True, kw_only=True, tag="market.request.posted.v1"):
    request_id: Id
    owner_id: Id
    actor_id: Id
    # The person who acted, by pseudonymous id, when a person did (the pages; #19).
    person_id: Id | None = None
    material: Material
    # Other codes the buyer also takes (e.g. municipal plastics for plastic packaging).
    accepts_codes: tuple[WasteCode, ...] = ()
    location: Location
    # The receiver holds a permit to take hazardous waste.
    hazardous_permit: bool = False
    terms: RequestTerms
    # The personal fields, sealed with the organisation's data key (#21 item 8); those fields
    # then hold "". None: an event from before sealing, or one with nothing to seal.
    sealed: Sealed | None = None


class RequestUpdated(Event, frozen=True, kw_only=True, tag="market.request.updated.v1"):
    request_id: Id
    owner_id: Id
    actor_id: Id
    # The person who acted, by pseudonymous id, when a person did (the pages; #19).
    person_id: Id | None = None
    material_code: WasteCode
    terms: RequestTerms


class RequestWithdrawn(Event, frozen=True, kw_only=True, tag="market.request.withdrawn.v1"):
    request_id: Id
    owner_id: Id
    actor_id: Id
    # The person who acted, by pseudonymous id, when a person did (the pages; #19).
    person_id: Id | None = None
    material_code: WasteCode
    reason: LongText = ""
    # The personal fields, sealed with the organisation's data key (#21 item 8); those fields
    # then hold "". None: an event from before sealing, or one with nothing to seal.
    sealed: Sealed | None = None


class MatchAccepted(Event, frozen=True, kw_only=True, tag="market.match.accepted.v1"):
    match_id: Id
    partner_id: Id
    actor_id: Id
    # The person who acted, by pseudonymous id, when a person did (the pages; #19).
    person_id: Id | None = None
    material_code: WasteCode


class MatchDeclined(Event, frozen=True, kw_only=True, tag="market.match.declined.v1"):
    match_id: Id
    partner_id: Id
    actor_id: Id
    # The person who acted, by pseudonymous id, when a person did (the pages; #19).
    person_id: Id | None = None
    material_code: WasteCode
    reason: LongText = ""
    # The personal fields, sealed with the organisation's data key (#21 item 8); those fields
    # then hold "". None: an event from before sealing, or one with nothing to seal.
    sealed: Sealed | None = None


class MatchDeadlineDue(Event, frozen=True, kw_only=True, tag="market.match.deadline-due.v1"):
    """Timer: the proposal's answer period is over (published by the scheduler)."""

    match_id: Id
    material_code: WasteCode
    due: datetime


class AgreementPeriodDue(Event, frozen=True, kw_only=True, tag="market.agreement.period-due.v1"):
    """Timer: a standing agreement's period begins (published by the scheduler); the matcher
    schedules that period's delivery if the agreement still runs."""

    match_id: Id
    material_code: WasteCode
    # The period's calendar key, e.g. "2026-W49", "2026-12", "2026-Q4", "2026".
    period_key: Annotated[str, msgspec.Meta(pattern=r"^[0-9]{4}(-W[0-9]{2}|-[0-9]{2}|-Q[1-4])?$")]
    due: datetime


ListingEvent = (
    OfferPosted
    | OfferUpdated
    | OfferWithdrawn
    | RequestPosted
    | RequestUpdated
    | RequestWithdrawn
    | MatchAccepted
    | MatchDeclined
    | MatchDeadlineDue
    | AgreementPeriodDue
)
