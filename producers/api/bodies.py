"""Request bodies. Unknown fields are refused, so a misspelt field is an error, not ignored."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import msgspec

from schemas.common import (
    Depot,
    Id,
    Location,
    LongText,
    Material,
    Money,
    Region,
    ShortText,
    VehicleType,
    WasteCode,
)
from schemas.listings import OfferTerms, RequestTerms


class OfferIn(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    material: Material
    location: Location
    terms: OfferTerms
    # A facilitator posts for the SME with this partner id (which must have consented).
    on_behalf_of: Id | None = None
    # Certifications the seller holds for this material, checked against buyers' specifications.
    certifications: tuple[ShortText, ...] = ()


class RequestIn(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    material: Material
    location: Location
    terms: RequestTerms
    accepts_codes: tuple[WasteCode, ...] = ()
    hazardous_permit: bool = False
    # A facilitator posts for the SME with this partner id (which must have consented).
    on_behalf_of: Id | None = None


class OfferTermsIn(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    terms: OfferTerms


class RequestTermsIn(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    terms: RequestTerms


class WithdrawIn(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    reason: LongText = ""


class CapabilitiesIn(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    depots: tuple[Depot, ...] = ()
    regions: tuple[Region, ...] = ()
    capacity_t: Annotated[float, msgspec.Meta(gt=0, le=10000)]
    hazardous_permit: bool = False
    vehicle_types: Annotated[tuple[VehicleType, ...], msgspec.Meta(min_length=1)]


class AnswerIn(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    reason: LongText = ""


class QuoteIn(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    # Given: revises that quote of yours; absent: a new quote.
    quote_id: Id | None = None
    price: Money
    vehicle: VehicleType
    co2e_kg: Annotated[float, msgspec.Meta(ge=0, le=1e7)]
    pickup_at: datetime


class ReserveIn(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    # The most you accept to pay for the whole transport job; null lifts your cap.
    price: Money | None
