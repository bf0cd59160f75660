"""Value types shared by the event contracts."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Literal

import msgspec

# Identifiers: UUID strings made by the API or derived from their causes.
Id = Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._:-]+$")]
# A six-digit List of Waste entry, e.g. "150102" (plastic packaging).
WasteCode = Annotated[str, msgspec.Meta(pattern=r"^[0-9]{6}$")]
# ISO 4217, e.g. "EUR", "SEK", "BGN".
Currency = Annotated[str, msgspec.Meta(pattern=r"^[A-Z]{3}$")]
# NUTS region code (e.g. "BG411", "SE312"), for reporting by region.
Region = Annotated[str, msgspec.Meta(pattern=r"^[A-Z]{2}[A-Z0-9]{0,3}$")]
ShortText = Annotated[str, msgspec.Meta(max_length=200)]
LongText = Annotated[str, msgspec.Meta(max_length=2000)]
# Whose data key seals an event's personal fields (#21 item 8): "partner:<partner id>".
SealedSubject = Annotated[
    str, msgspec.Meta(pattern=r"^(partner|person):[A-Za-z0-9._:-]{1,64}$", max_length=72)
]
Latitude = Annotated[float, msgspec.Meta(ge=-90, le=90)]
Longitude = Annotated[float, msgspec.Meta(ge=-180, le=180)]
Unit = Literal["t", "kg", "m3", "pieces"]
Form = Literal[
    "bales", "flakes", "granules", "loose", "liquid", "sludge", "pallets", "rolls", "other"
]
Role = Literal["sme", "logistics", "auditor", "facilitator", "operator"]
VehicleType = Literal[
    "van", "rigid_truck", "articulated_truck", "tanker", "tipper", "rail", "barge"
]


def _check_window(start: datetime, end: datetime, what: str) -> None:
    if start.tzinfo is None or end.tzinfo is None:
        raise ValueError(f"{what}: times must carry a time zone")
    if end <= start:
        raise ValueError(f"{what}: ends before it starts")


class Quantity(msgspec.Struct, frozen=True, forbid_unknown_fields=False):
    amount: Annotated[float, msgspec.Meta(gt=0, le=1e9)]
    unit: Unit


class Money(msgspec.Struct, frozen=True):
    """A price in major units (may be negative: the holder pays a gate fee)."""

    amount: Annotated[float, msgspec.Meta(ge=-1e9, le=1e9)]
    currency: Currency


class Location(msgspec.Struct, frozen=True):
    lat: Latitude
    lon: Longitude
    region: Region | None = None


class Window(msgspec.Struct, frozen=True):
    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        _check_window(self.start, self.end, "window")


class Recurrence(msgspec.Struct, frozen=True):
    """A steady flow: the listing's quantity is per period, from `starts` until `ends`."""

    period: Literal["week", "month", "quarter", "year"]
    starts: date
    ends: date | None = None

    def __post_init__(self) -> None:
        if self.ends is not None and self.ends <= self.starts:
            raise ValueError("recurrence: ends before it starts")


class Material(msgspec.Struct, frozen=True):
    code: WasteCode
    description: ShortText
    form: Form = "other"
    quality_notes: LongText = ""
    # tonnes per cubic metre, when known, so that m3 and t convert.
    density_t_per_m3: Annotated[float, msgspec.Meta(gt=0, le=25)] | None = None
    # tonnes per piece (a pallet, a crate), when known, so that pieces and t convert.
    mass_per_piece_t: Annotated[float, msgspec.Meta(gt=0, le=100)] | None = None
    # Stated by the seller, checked against a buyer's specification (unknown never meets one).
    recycled_content_pct: Annotated[float, msgspec.Meta(ge=0, le=100)] | None = None
    contamination_pct: Annotated[float, msgspec.Meta(ge=0, le=100)] | None = None


class BuyerSpecification(msgspec.Struct, frozen=True):
    """Criteria beyond the code: hard limits and how to weigh price against CO2e. The maximum
    transport distance is the request's `max_distance_km`. A criterion the offer says nothing
    about is not met."""

    min_recycled_content_pct: Annotated[float, msgspec.Meta(ge=0, le=100)] | None = None
    max_contamination_pct: Annotated[float, msgspec.Meta(ge=0, le=100)] | None = None
    certifications: tuple[ShortText, ...] = ()
    weight_price: Annotated[float, msgspec.Meta(ge=0, le=1)] = 0.5
    weight_co2e: Annotated[float, msgspec.Meta(ge=0, le=1)] = 0.5


Period = Literal["week", "month", "quarter", "year"]


class Agreement(msgspec.Struct, frozen=True):
    """A standing agreement: `quantity` every `period` (calendar weeks, months, quarters or
    years) from `starts` until `ends` (open when None). Each period's delivery is scheduled
    on its own."""

    period: Period
    quantity: Quantity
    starts: date
    ends: date | None = None


class CriterionCheck(msgspec.Struct, frozen=True):
    """One criterion of the buyer's specification against what the offer states."""

    criterion: Literal[
        "min_recycled_content_pct", "max_contamination_pct", "certification", "max_distance_km"
    ]
    required: ShortText
    offered: ShortText
    met: bool


class Reason(msgspec.Struct, frozen=True):
    """One line of a proposal's explanation, e.g. ("distance_km", 42.0, "within 100 km")."""

    factor: ShortText
    value: float
    note: ShortText = ""


class Depot(msgspec.Struct, frozen=True):
    location: Location
    radius_km: Annotated[float, msgspec.Meta(gt=0, le=5000)]


class Sealed(msgspec.Struct, frozen=True, kw_only=True):
    """An event's personal fields (a sole trader's name, free texts), encrypted with the data
    key of the organisation they belong to (crypto-shredding, #21 item 8): `token` is a Fernet
    token of the JSON object {field path: value}. The event carries "" in those fields instead.
    Erasing the organisation destroys its key, and the token can no longer be read by anyone,
    while the record itself (and the audit chain over it) stays as it was.
    marketplace/translate/shredding.py seals and opens it."""

    subject: SealedSubject
    # The longest texts sealed whole, JSON-escaped (a control character takes 6 bytes) and in
    # base64, stay well below this.
    token: Annotated[str, msgspec.Meta(min_length=1, max_length=65536)]
