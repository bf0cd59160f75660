"""Events on `partners.registry` and `partners.notifications` (key: partner id)."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec

from schemas.base import Event
from schemas.common import Depot, Id, Region, Role, Sealed, ShortText, VehicleType

Country = Annotated[str, msgspec.Meta(pattern=r"^[A-Z]{2}$")]
# NACE Rev. 2 division or class, e.g. "13" (textiles) or "13.92".
Sector = Annotated[str, msgspec.Meta(pattern=r"^[0-9]{2}(\.[0-9]{1,2})?$")]


class PartnerRegistered(Event, frozen=True, kw_only=True, tag="partners.partner.registered.v1"):
    partner_id: Id
    name: ShortText
    role: Role
    country: Country
    region: Region | None = None
    sector: Sector | None = None
    registered_by: Id
    # The personal fields, sealed with the organisation's data key (#21 item 8); those fields
    # then hold "". None: an event from before sealing, or one with nothing to seal.
    sealed: Sealed | None = None


class PartnerUpdated(Event, frozen=True, kw_only=True, tag="partners.partner.updated.v1"):
    partner_id: Id
    name: ShortText
    region: Region | None = None
    sector: Sector | None = None
    active: bool = True
    updated_by: Id
    # The personal fields, sealed with the organisation's data key (#21 item 8); those fields
    # then hold "". None: an event from before sealing, or one with nothing to seal.
    sealed: Sealed | None = None


class CarrierCapabilitiesDeclared(
    Event, frozen=True, kw_only=True, tag="partners.carrier.capabilities.v1"
):
    """A logistics firm's coverage and fleet; each declaration replaces the previous one."""

    partner_id: Id
    actor_id: Id
    # The person who acted, by pseudonymous id, when a person did (the pages; #19).
    person_id: Id | None = None
    depots: tuple[Depot, ...] = ()
    regions: tuple[Region, ...] = ()
    capacity_t: Annotated[float, msgspec.Meta(gt=0, le=10000)]
    hazardous_permit: bool = False
    vehicle_types: Annotated[tuple[VehicleType, ...], msgspec.Meta(min_length=1)]


class LegalDataDeclared(Event, frozen=True, kw_only=True, tag="partners.legal.declared.v1"):
    """An organisation's legal data as the documents of its deals name it (#22): the registered
    legal name and address, the VAT number and the Peppol participant id, in the normal form of
    marketplace/core/legal.py. Each declaration replaces the previous one; documents built
    afterwards carry the new data. A firm's trade-register data, not a person's: the person who
    declared it is named by pseudonymous id only."""

    partner_id: Id
    actor_id: Id
    # The person who acted, by pseudonymous id, when a person did (the pages).
    person_id: Id | None = None
    legal_name: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    street: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    postcode: Annotated[str, msgspec.Meta(min_length=2, max_length=10)]
    city: Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
    country: Country
    vat_number: Annotated[str, msgspec.Meta(pattern=r"^[A-Z]{2}[A-Z0-9+*]{2,13}$")] | None = None
    peppol_id: Annotated[str, msgspec.Meta(max_length=100)] | None = None


class LegalDataDeclaredV2(Event, frozen=True, kw_only=True, tag="partners.legal.declared.v2"):
    """`partners.legal.declared.v1` with the legal name, the address, the VAT number and the
    Peppol id sealed with the organisation's data key (#21 item 8): a sole trader's legal name
    and address are a person's. A new type rather than v1 with empty fields, since v1 requires
    them. Read as v1 once opened (marketplace/translate/shredding.py)."""

    partner_id: Id
    actor_id: Id
    person_id: Id | None = None
    country: Country
    # {"legal_name", "street", "postcode", "city", "vat_number", "peppol_id"}, sealed.
    sealed: Sealed


class NotificationIssued(Event, frozen=True, kw_only=True, tag="partners.notification.issued.v1"):
    notification_id: Id
    partner_id: Id
    kind: Annotated[str, msgspec.Meta(pattern=r"^[a-z][a-z0-9_.-]{0,63}$")]
    subject_id: Id
    cause_event_id: Id
    summary: ShortText
    data: dict[str, Any] = msgspec.field(default_factory=dict)
    # The one person of the organisation it is for (pseudonymous id; the alert of a person's
    # saved search, #19); None: for the organisation, every member and consented facilitator.
    person_id: Id | None = None
    # The free texts of `data` (a nudge's message, a consent's note or reason) as the cause event
    # sealed them (#21 item 8), `data` holding "" for each; None: nothing sealed.
    sealed: Sealed | None = None


RegistryEvent = (
    PartnerRegistered
    | PartnerUpdated
    | CarrierCapabilitiesDeclared
    | LegalDataDeclared
    | LegalDataDeclaredV2
)
NotificationEvent = NotificationIssued
