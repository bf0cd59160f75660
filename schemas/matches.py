"""Events on `market.matches` (key: material family), emitted by the matcher."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import msgspec

from schemas.base import Event
from schemas.common import (
    Agreement,
    CriterionCheck,
    Id,
    Location,
    Money,
    Quantity,
    Reason,
    WasteCode,
    Window,
)


class MatchProposed(Event, frozen=True, kw_only=True, tag="market.match.proposed.v1"):
    match_id: Id
    offer_id: Id
    request_id: Id
    seller_id: Id
    buyer_id: Id
    material_code: WasteCode
    quantity: Quantity
    # Per unit delivered: the offer price plus estimated transport.
    delivered_price: Money
    distance_km: Annotated[float, msgspec.Meta(ge=0)]
    transport_co2e_kg: Annotated[float, msgspec.Meta(ge=0)]
    co2e_saved_kg: float
    score: float
    reasons: tuple[Reason, ...]
    expires_at: datetime
    # A standing agreement between recurring listings; `quantity` is then per period.
    agreement: Agreement | None = None
    # The buyer's specification, criterion by criterion (all met, or it would not be proposed).
    criteria: tuple[CriterionCheck, ...] = ()
    # False when the offered material has no sourced carbon factor: the CO2e saved is unknown
    # (co2e_saved_kg is then 0 and counts for nothing) and the reasons say so.
    co2e_known: bool = True


class MatchConfirmed(Event, frozen=True, kw_only=True, tag="market.match.confirmed.v1"):
    match_id: Id
    offer_id: Id
    request_id: Id
    seller_id: Id
    buyer_id: Id
    material_code: WasteCode
    hazardous: bool
    quantity: Quantity
    weight_t: Annotated[float, msgspec.Meta(gt=0)]
    pickup: Location
    delivery: Location
    pickup_window: Window
    delivery_window: Window
    delivered_price: Money
    # Set for a standing agreement: `quantity` is per period, and each period's delivery comes
    # as its own DeliveryScheduled (the transport job follows that, not this event).
    agreement: Agreement | None = None


class MatchExpired(Event, frozen=True, kw_only=True, tag="market.match.expired.v1"):
    match_id: Id
    material_code: WasteCode


class MatchCancelled(Event, frozen=True, kw_only=True, tag="market.match.cancelled.v1"):
    match_id: Id
    material_code: WasteCode
    reason: Literal[
        "declined", "offer_withdrawn", "request_withdrawn", "offer_updated", "request_updated"
    ]
    by_partner_id: Id | None = None


class DeliveryScheduled(Event, frozen=True, kw_only=True, tag="market.delivery.scheduled.v1"):
    """One period's delivery under a confirmed standing agreement; it becomes a transport job."""

    delivery_id: Id
    match_id: Id
    offer_id: Id
    request_id: Id
    seller_id: Id
    buyer_id: Id
    material_code: WasteCode
    hazardous: bool
    period_key: Annotated[str, msgspec.Meta(min_length=4, max_length=8)]
    quantity: Quantity
    weight_t: Annotated[float, msgspec.Meta(gt=0)]
    pickup: Location
    delivery: Location
    pickup_window: Window
    delivery_window: Window
    delivered_price: Money


class AgreementEnded(Event, frozen=True, kw_only=True, tag="market.agreement.ended.v1"):
    """A standing agreement stops: its term is over, or a side withdrew its listing."""

    match_id: Id
    material_code: WasteCode
    reason: Literal["term_over", "offer_withdrawn", "request_withdrawn"]
    last_period_key: Annotated[str, msgspec.Meta(max_length=8)] | None = None


MatchEvent = (
    MatchProposed
    | MatchConfirmed
    | MatchExpired
    | MatchCancelled
    | DeliveryScheduled
    | AgreementEnded
)
