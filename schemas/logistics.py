"""Events on `logistics.jobs` and `logistics.awards` (key: transport job id)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import msgspec

from schemas.base import Event
from schemas.common import Id, Location, LongText, Money, Quantity, VehicleType, WasteCode, Window


class TransportJobRequested(Event, frozen=True, kw_only=True, tag="logistics.job.requested.v1"):
    job_id: Id
    match_id: Id
    material_code: WasteCode
    hazardous: bool
    quantity: Quantity
    weight_t: Annotated[float, msgspec.Meta(gt=0)]
    pickup: Location
    delivery: Location
    pickup_window: Window
    delivery_window: Window
    bidding_deadline: datetime
    reserve_price: Money | None = None


class QuoteSubmitted(Event, frozen=True, kw_only=True, tag="logistics.quote.submitted.v1"):
    """A new quote, or a revision when `quote_id` was already used by the same carrier."""

    quote_id: Id
    job_id: Id
    carrier_id: Id
    actor_id: Id
    price: Money
    vehicle: VehicleType
    co2e_kg: Annotated[float, msgspec.Meta(ge=0)]
    pickup_at: datetime


class QuoteWithdrawn(Event, frozen=True, kw_only=True, tag="logistics.quote.withdrawn.v1"):
    quote_id: Id
    job_id: Id
    carrier_id: Id
    actor_id: Id


class AuctionDeadlineDue(Event, frozen=True, kw_only=True, tag="logistics.auction.deadline-due.v1"):
    job_id: Id
    due: datetime


class TransportAwarded(Event, frozen=True, kw_only=True, tag="logistics.transport.awarded.v1"):
    job_id: Id
    match_id: Id
    quote_id: Id
    carrier_id: Id
    price: Money
    co2e_kg: Annotated[float, msgspec.Meta(ge=0)]
    bidders: tuple[Id, ...]


class AuctionFailed(Event, frozen=True, kw_only=True, tag="logistics.auction.failed.v1"):
    job_id: Id
    match_id: Id
    reason: LongText
    reopened_until: datetime | None = None
    bidders: tuple[Id, ...] = ()


JobEvent = TransportJobRequested | QuoteSubmitted | QuoteWithdrawn | AuctionDeadlineDue
AwardEvent = TransportAwarded | AuctionFailed
