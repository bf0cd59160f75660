"""Events on `logistics.jobs` and `logistics.awards` (key: transport job id)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import msgspec

from schemas.base import Event
from schemas.common import (
    Currency,
    Depot,
    Id,
    Location,
    LongText,
    Money,
    Quantity,
    Region,
    VehicleType,
    WasteCode,
    Window,
)

# A refusal's kind, e.g. "late", "duplicate", "unfit" (marketplace/core/auction.py lists them).
ReasonCode = Annotated[str, msgspec.Meta(pattern=r"^[a-z][a-z_]{0,39}$")]


class CarrierCoverage(msgspec.Struct, frozen=True, kw_only=True):
    """A logistics firm's coverage and fleet as declared when it quoted (the API copies it from
    the carriers read model), so the auction decides from the log alone and replays alike."""

    depots: tuple[Depot, ...] = ()
    regions: tuple[Region, ...] = ()
    capacity_t: Annotated[float, msgspec.Meta(gt=0, le=10000)]
    hazardous_permit: bool = False
    vehicle_types: tuple[VehicleType, ...] = ()


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
    # Added for the auctioneer (rule 1): the currency quotes must be in (the match's), the
    # parties who may set a reserve, and the operator's transport estimate the award replaces.
    currency: Currency | None = None
    seller_id: Id | None = None
    buyer_id: Id | None = None
    estimated_price: Money | None = None
    estimated_co2e_kg: Annotated[float, msgspec.Meta(ge=0)] | None = None
    # Under a standing agreement: the period's delivery this job carries.
    delivery_id: Id | None = None


class QuoteSubmitted(Event, frozen=True, kw_only=True, tag="logistics.quote.submitted.v1"):
    """A new quote, or a revision when `quote_id` was already used by the same carrier."""

    quote_id: Id
    job_id: Id
    carrier_id: Id
    actor_id: Id
    # The person who acted, by pseudonymous id, when a person did (the pages; #19).
    person_id: Id | None = None
    price: Money
    vehicle: VehicleType
    co2e_kg: Annotated[float, msgspec.Meta(ge=0)]
    pickup_at: datetime
    # The firm's coverage when it quoted; a quote without one is refused ("no_capabilities").
    coverage: CarrierCoverage | None = None


class QuoteWithdrawn(Event, frozen=True, kw_only=True, tag="logistics.quote.withdrawn.v1"):
    quote_id: Id
    job_id: Id
    carrier_id: Id
    actor_id: Id
    # The person who acted, by pseudonymous id, when a person did (the pages; #19).
    person_id: Id | None = None


class ReservePriceSet(Event, frozen=True, kw_only=True, tag="logistics.job.reserve-set.v1"):
    """The seller or the buyer caps the transport price (for the whole job); `None` lifts its
    cap. The lower of the two parties' caps and the job's own reserve applies."""

    job_id: Id
    match_id: Id
    partner_id: Id
    actor_id: Id
    # The person who acted, by pseudonymous id, when a person did (the pages; #19).
    person_id: Id | None = None
    price: Money | None = None


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
    # Added for the match's real figures (rule 1): the winning quote's vehicle and pickup, and
    # the job's weight and estimate that the price and co2e_kg replace.
    vehicle: VehicleType | None = None
    pickup_at: datetime | None = None
    weight_t: Annotated[float, msgspec.Meta(gt=0)] | None = None
    estimated_price: Money | None = None
    estimated_co2e_kg: Annotated[float, msgspec.Meta(ge=0)] | None = None


class AuctionFailed(Event, frozen=True, kw_only=True, tag="logistics.auction.failed.v1"):
    job_id: Id
    match_id: Id
    reason: LongText
    reopened_until: datetime | None = None
    bidders: tuple[Id, ...] = ()


class QuoteRejected(Event, frozen=True, kw_only=True, tag="logistics.quote.rejected.v1"):
    """The auctioneer refused a submission or a withdrawal of a quote, and says why.

    `previous_stands`: the quote's earlier version (for a refused revision) or the quote itself
    (for a refused withdrawal) still counts in the auction."""

    quote_id: Id
    job_id: Id
    carrier_id: Id
    action: Literal["submission", "withdrawal"]
    # The id of the refused QuoteSubmitted or QuoteWithdrawn event.
    submission_id: Id
    reason_code: ReasonCode
    reason: LongText
    previous_stands: bool = False


JobEvent = (
    TransportJobRequested | QuoteSubmitted | QuoteWithdrawn | ReservePriceSet | AuctionDeadlineDue
)
AwardEvent = TransportAwarded | AuctionFailed | QuoteRejected
