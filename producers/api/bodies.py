"""Request bodies, and the rule that a body's unknown fields are refused at every level.

A misspelt field is an error, not ignored: a buyer who types `terms.specifcation` must not lose
every criterion to a 202. The body types are built from the event contracts' value types
(`Material`, `Location`, `OfferTerms`, `BuyerSpecification`, `Depot`, ...), and those stay
tolerant of unknown fields: schemas/README.md's evolution rules need an old consumer to read an
event with a field it does not know, so `forbid_unknown_fields` cannot go on them. Nor do we give
the API a parallel set of strict copies of them, which would drift from the contracts and need
converting field by field into the events.

Instead `unknown_fields` walks the body as plain JSON beside its type's description
(`msgspec.inspect`): every object key the type does not have, at any depth (inside lists and
optional fields too), is named with its path, e.g. `terms.specifcation` or
`depots[0].location.altitude`, and `producers.api.writes.read_body` refuses the body 422 with all
of them in the problem's `errors`, before the typed decode (which names a wrong type's path).
One rule for every body type, whatever it nests, with no second copy of any contract."""

from __future__ import annotations

import functools
from datetime import datetime
from typing import Annotated, Any

import msgspec
import msgspec.inspect as mi

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

# What the decoder takes as a time with its zone (RFC 3339, as `format: date-time` says), as a
# pattern the OpenAPI document carries, so that a generated "valid" time is one the API reads.
# (29 February is left out: the pattern cannot tell leap years.)
_DAY = (
    r"([0-9]{3}[1-9]|[0-9]{2}[1-9]0|[0-9][1-9]00|[1-9]000)-"
    r"((0[13578]|1[02])-(0[1-9]|[12][0-9]|3[01])|(0[469]|11)-(0[1-9]|[12][0-9]|30)"
    r"|02-(0[1-9]|1[0-9]|2[0-8]))"
)
DATE_PATTERN = f"^{_DAY}$"
DATE_TIME_PATTERN = (
    f"^{_DAY}T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\\.[0-9]{{1,6}})?"
    r"(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])$"
)


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
    # A facilitator answers for the SME with this partner id (which must have consented).
    on_behalf_of: Id | None = None


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


# --- unknown fields, at every level ----------------------------------------------------------

_OBJECTS = (mi.StructType, mi.TypedDictType, mi.DataclassType)


@functools.cache
def _described(kind: type) -> mi.Type:
    return mi.type_info(kind)


def unknown_fields(value: Any, kind: type) -> list[tuple[str, str]]:
    """The keys of the decoded JSON `value` that `kind` does not know, at every depth, as
    (path, reason), in the body's order. Parts of `value` of the wrong type are skipped here:
    the typed decode names those."""
    found: list[tuple[str, str]] = []
    _walk(value, _described(kind), "", found)
    return found


def _walk(value: Any, t: mi.Type, path: str, found: list[tuple[str, str]]) -> None:
    while isinstance(t, mi.Metadata):
        t = t.type
    if isinstance(t, mi.UnionType):
        # e.g. `Recurrence | None`: the one member that a JSON object (or array) can be.
        fits = [m for m in t.types if _fits(value, m)]
        if isinstance(value, dict) and len(fits) > 1:
            fits = [m for m in fits if _tagged(value, m)]
        if len(fits) == 1:
            _walk(value, fits[0], path, found)
    elif isinstance(t, _OBJECTS) and isinstance(value, dict):
        fields = {f.encode_name: f.type for f in t.fields}
        tag_field = t.tag_field if isinstance(t, mi.StructType) else None
        for key, item in value.items():
            where = f"{path}.{key}" if path else key
            if key in fields:
                _walk(item, fields[key], where, found)
            elif key != tag_field:
                known = ", ".join(fields)
                found.append((where, f"unknown field; {path or 'the body'} has {known}"))
    elif isinstance(t, mi.CollectionType) and isinstance(value, list):
        for i, item in enumerate(value):
            _walk(item, t.item_type, f"{path}[{i}]", found)
    elif isinstance(t, mi.TupleType) and isinstance(value, list):
        for i, (item, item_type) in enumerate(zip(value, t.item_types, strict=False)):
            _walk(item, item_type, f"{path}[{i}]", found)
    elif isinstance(t, mi.DictType) and isinstance(value, dict):
        for key, item in value.items():
            _walk(item, t.value_type, f"{path}.{key}" if path else str(key), found)


def _fits(value: Any, t: mi.Type) -> bool:
    while isinstance(t, mi.Metadata):
        t = t.type
    if isinstance(value, dict):
        return isinstance(t, (*_OBJECTS, mi.DictType))
    if isinstance(value, list):
        return isinstance(t, (mi.CollectionType, mi.TupleType))
    return False


def _tagged(value: dict[str, Any], t: mi.Type) -> bool:
    while isinstance(t, mi.Metadata):
        t = t.type
    return (
        isinstance(t, mi.StructType) and t.tag_field is not None and value.get(t.tag_field) == t.tag
    )
