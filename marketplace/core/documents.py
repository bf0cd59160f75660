"""The documents of a deal (#22 item 2), built from its events: the order (from the confirmed
match), the transport document (from the award, with the carrier's pickup and delivery
confirmations) and the delivery report (the quantities actually carried). Pure: the shell hands
in the deal's events as the dataclasses below and the parties' legal data, and gets back each
document's content, a JSON-ready dict in which every value is a string, a number, a boolean,
None, a list or a dict, and which names the events it was built from. The same events give the
same content, so its SHA-256 identifies a version: a new version exists exactly when a source
changed (a confirmation, a party's new legal data).

Who issues what: the buyer its order and the delivery report (what it received); the carrier
the transport document (the CMR consignment note is the carrier's paper, and for a shipment of
waste it carries the movement or Annex VII information the carrier hands over on the way).

A standing agreement (#22 item 3) has a document set per delivery period: the deal of one
period is the period's scheduled delivery (its quantity, price and windows, as
market.delivery.scheduled.v1 says) with the award of that delivery's transport job and the
carrier's confirmations of it, and its documents are built by the same functions as a one-off
match's, naming the period. The agreement itself has its order (the quantity per period); its
transport documents and delivery reports are the periods'."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from marketplace.core.legal import LegalData

Kind = Literal["order", "transport", "delivery"]
KINDS: tuple[Kind, ...] = ("order", "transport", "delivery")
ISSUER: dict[Kind, Literal["buyer", "carrier"]] = {
    "order": "buyer",
    "transport": "carrier",
    "delivery": "buyer",
}
TITLES: dict[Kind, str] = {
    "order": "Order",
    "transport": "Transport document",
    "delivery": "Delivery report",
}
Stage = Literal["pickup", "delivery"]


@dataclass(frozen=True, slots=True)
class Party:
    partner_id: str
    name: str  # the name it registered under
    legal: LegalData | None  # None until it declares its legal data


@dataclass(frozen=True, slots=True)
class Place:
    lat: float
    lon: float
    region: str | None = None

    @property
    def country(self) -> str | None:
        """The country of the NUTS region (EL is Greece, whose ISO code is GR)."""
        if not self.region:
            return None
        return {"EL": "GR", "UK": "GB"}.get(self.region[:2], self.region[:2])


@dataclass(frozen=True, slots=True)
class Material:
    code: str  # six digits
    display: str  # "15 01 02" as the List of Waste prints it, "*" when hazardous
    title: str  # the entry's title in the List of Waste
    hazardous: bool


@dataclass(frozen=True, slots=True)
class Confirmed:
    """The confirmed match (market.match.confirmed.v1)."""

    event_id: str
    match_id: str
    seller_id: str
    buyer_id: str
    material: Material
    quantity: float
    unit: str
    weight_t: float
    pickup: Place
    delivery: Place
    pickup_window: tuple[datetime, datetime]
    delivery_window: tuple[datetime, datetime]
    unit_price: float  # per unit delivered, as the match confirmed it (may be negative)
    currency: str
    confirmed_at: datetime
    # A standing agreement's period ("week", "month", ...): the quantity is per period.
    period: str | None = None
    # One period's delivery of a standing agreement (market.delivery.scheduled.v1): then the
    # quantity, price and windows are that period's, and `event_id` is the scheduling event.
    delivery_id: str | None = None
    period_key: str | None = None  # "2026-12", "2026-W49", ...

    @property
    def subject(self) -> str:
        """What the documents belong to: the match, or one period's delivery of it."""
        return self.delivery_id or self.match_id


@dataclass(frozen=True, slots=True)
class Awarded:
    """The transport award (logistics.transport.awarded.v1)."""

    event_id: str
    job_id: str
    carrier_id: str
    price: float
    currency: str
    vehicle: str | None
    pickup_at: datetime | None
    awarded_at: datetime


@dataclass(frozen=True, slots=True)
class Confirmation:
    """The carrier's confirmation of a pickup or a delivery (market.deal.transport_confirmed.v1),
    with the weight it measured."""

    event_id: str
    stage: Stage
    weight_t: float
    at: datetime
    note: str = ""


@dataclass(frozen=True, slots=True)
class Received:
    """The buyer's (or the carrier's) confirmation that the material arrived
    (market.match.delivered.v1)."""

    event_id: str
    confirmed_as: str
    at: datetime
    note: str = ""


@dataclass(frozen=True, slots=True)
class Deal:
    """What a deal's events say, as far as they go."""

    confirmed: Confirmed | None
    awarded: Awarded | None = None
    pickup: Confirmation | None = None  # the latest of its stage
    delivery: Confirmation | None = None
    received: Received | None = None


@dataclass(frozen=True, slots=True)
class Built:
    kind: Kind
    issuer_id: str
    content: dict[str, Any]
    sources: tuple[str, ...]
    # Legal data the document needs and a party has not declared ("seller: vat_number", ...).
    missing: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class NotYet:
    """A document the deal's events do not support yet, and why."""

    kind: Kind
    reason: str


def latest(confirmations: list[Confirmation], stage: Stage) -> Confirmation | None:
    """The newest confirmation of `stage` (a correction replaces the one before)."""
    found = [c for c in confirmations if c.stage == stage]
    return max(found, key=lambda c: (c.at, c.event_id)) if found else None


def _time(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _window(window: tuple[datetime, datetime]) -> dict[str, str | None]:
    return {"start": _time(window[0]), "end": _time(window[1])}


def _money(amount: float) -> float:
    return round(amount, 2)


def _party(role: str, party: Party, missing: list[str], *, vat: bool = True) -> dict[str, Any]:
    legal = party.legal
    if legal is None:
        missing.append(f"{role}: legal data")
        return {
            "partner_id": party.partner_id,
            "name": party.name,
            "legal_name": None,
            "address": None,
            "vat_number": None,
            "peppol_id": None,
        }
    if vat and legal.vat_number is None:
        missing.append(f"{role}: vat_number")
    return {
        "partner_id": party.partner_id,
        "name": party.name,
        "legal_name": legal.legal_name,
        "address": {
            "street": legal.street,
            "postcode": legal.postcode,
            "city": legal.city,
            "country": legal.country,
        },
        "vat_number": legal.vat_number,
        "peppol_id": legal.peppol_id,
    }


def _place(place: Place) -> dict[str, Any]:
    return {"lat": place.lat, "lon": place.lon, "region": place.region, "country": place.country}


def _material(material: Material) -> dict[str, Any]:
    return {
        "list_of_waste_code": material.code,
        "display": material.display,
        "title": material.title,
        "hazardous": material.hazardous,
    }


def _confirmation(c: Confirmation | None) -> dict[str, Any] | None:
    if c is None:
        return None
    return {"at": _time(c.at), "weight_t": c.weight_t, "note": c.note, "event_id": c.event_id}


def _period(c: Confirmed) -> dict[str, Any]:
    """The delivery period a document of a standing agreement belongs to ({} for a one-off
    match or the agreement's own order)."""
    if c.delivery_id is None:
        return {}
    return {
        "agreement_period": {"delivery_id": c.delivery_id, "period": c.period, "key": c.period_key}
    }


def _built(
    kind: Kind, issuer_id: str, content: dict[str, Any], sources: list[str], missing: list[str]
) -> Built:
    """The document, its content naming its sources and what legal data it lacks."""
    content = content | {"sources": sources, "missing": missing}
    return Built(kind, issuer_id, content, tuple(sources), tuple(missing))


def order(deal: Deal, seller: Party, buyer: Party) -> Built | NotYet:
    """The buyer's order of the confirmed match: the parties, the material with its List of
    Waste code, the quantity, the price and the windows. A negative price is a gate fee: the
    seller pays the buyer for taking the material."""
    c = deal.confirmed
    if c is None:
        return NotYet("order", "the match is not confirmed")
    missing: list[str] = []
    total = _money(c.unit_price * c.quantity)
    content = {
        "document": "order",
        "format": "marketplace.order.v1",
        "match_id": c.match_id,
        "issued_by": "buyer",
        "buyer": _party("buyer", buyer, missing),
        "seller": _party("seller", seller, missing),
        "material": _material(c.material),
        "quantity": {"amount": c.quantity, "unit": c.unit, "weight_t": c.weight_t}
        | ({"per": c.period} if c.period and c.delivery_id is None else {}),
        "price": {
            "unit_price": _money(c.unit_price),
            "currency": c.currency,
            "per": c.unit,
            "total": total,
            "basis": "delivered price per unit as the match was confirmed (material and"
            " estimated transport)",
            "payer": "buyer" if total >= 0 else "seller",
        },
        "pickup": _place(c.pickup) | {"window": _window(c.pickup_window)},
        "delivery": _place(c.delivery) | {"window": _window(c.delivery_window)},
        "confirmed_at": _time(c.confirmed_at),
    } | _period(c)
    return _built("order", c.buyer_id, content, [c.event_id], missing)


def cross_border(c: Confirmed, seller: Party, buyer: Party) -> tuple[bool, str | None, str | None]:
    """Whether the material leaves its country: the pickup's and the delivery's countries (by
    their regions, else by the parties' registered addresses)."""
    dispatch = c.pickup.country or (seller.legal.country if seller.legal else None)
    destination = c.delivery.country or (buyer.legal.country if buyer.legal else None)
    crosses = dispatch is not None and destination is not None and dispatch != destination
    return crosses, dispatch, destination


def transport(deal: Deal, seller: Party, buyer: Party, carrier: Party) -> Built | NotYet:
    """The carrier's transport document: the CMR consignment note's fields (numbered as on the
    CMR form), for hazardous waste the movement document's, for a cross-border shipment of
    non-hazardous waste the information of Annex VII of the Waste Shipment Regulation, and the
    carrier's pickup and delivery confirmations. Fields the exchange cannot know (the recovery
    operation, packages) are None: to be completed on the paper."""
    c, a = deal.confirmed, deal.awarded
    if c is None:
        return NotYet("transport", "the match is not confirmed")
    if a is None:
        return NotYet("transport", "the transport is not awarded yet")
    missing: list[str] = []
    sender = _party("seller", seller, missing)
    consignee = _party("buyer", buyer, missing)
    haulier = _party("carrier", carrier, missing)
    crosses, dispatch, destination = cross_border(c, seller, buyer)
    taking_over = deal.pickup.at if deal.pickup else a.pickup_at or c.pickup_window[0]
    nature = f"Waste, List of Waste {c.material.display}: {c.material.title}"
    volume = c.quantity if c.unit == "m3" else None
    content: dict[str, Any] = {
        "document": "transport",
        "format": "marketplace.transport.v1",
        "match_id": c.match_id,
        "job_id": a.job_id,
        "issued_by": "carrier",
        "cross_border": crosses,
        "countries": {"dispatch": dispatch, "destination": destination},
        "hazardous": c.material.hazardous,
        "regimes": ["cmr"]
        + (["movement_document"] if c.material.hazardous else [])
        + (["annex_vii"] if crosses and not c.material.hazardous else []),
        "cmr": {
            "1_sender": sender,
            "2_consignee": consignee,
            "3_place_of_delivery": _place(c.delivery) | {"window": _window(c.delivery_window)},
            "4_taking_over": _place(c.pickup) | {"date": _time(taking_over)},
            "5_documents_attached": [
                f"order of match {c.match_id}"
                + (f", delivery period {c.period_key}" if c.period_key else "")
            ],
            "6_marks_and_numbers": c.match_id,
            "7_number_of_packages": None,
            "8_method_of_packing": None,
            "9_nature_of_goods": nature,
            "10_statistical_number": None,
            "11_gross_weight_kg": round(c.weight_t * 1000, 1),
            "12_volume_m3": volume,
            "16_carrier": haulier,
            "vehicle": a.vehicle,
            "charges": {"carriage": _money(a.price), "currency": a.currency},
            "21_established": {
                "place": (seller.legal.city if seller.legal else None),
                "date": _time(a.awarded_at),
            },
        },
        "confirmations": {
            "pickup": _confirmation(deal.pickup),
            "delivery": _confirmation(deal.delivery),
        },
    } | _period(c)
    if c.material.hazardous:
        content["movement_document"] = {
            "consignment": c.match_id,
            "waste_code": c.material.display,
            "waste_description": c.material.title,
            "holder": sender,
            "consignee_and_facility": consignee | {"site": _place(c.delivery)},
            "carrier": haulier,
            "means_of_transport": "road",
            "planned_quantity_t": c.weight_t,
            "actual_quantity_t": deal.pickup.weight_t if deal.pickup else None,
            "planned_shipment": _window(c.pickup_window),
            "actual_date_of_shipment": _time(deal.pickup.at) if deal.pickup else None,
            "received_at_facility": _time(deal.delivery.at) if deal.delivery else None,
            "recovery_operation": None,
            "un_number_and_packing_group": None,
        }
    if crosses and not c.material.hazardous:
        content["annex_vii"] = {
            "1_person_arranging_the_shipment": sender,
            "2_importer_consignee": consignee,
            "3_actual_quantity_t": deal.pickup.weight_t if deal.pickup else None,
            "4_actual_date_of_shipment": _time(deal.pickup.at) if deal.pickup else None,
            "5_carriers": [haulier | {"means_of_transport": "road", "date": _time(taking_over)}],
            "6_waste_generator": sender,
            "7_recovery_facility": consignee | {"site": _place(c.delivery)},
            "8_recovery_operation": None,
            "9_usual_description_of_the_waste": c.material.title,
            "10_waste_identification": {
                "ec_list_of_wastes": c.material.display,
                "basel_annex_ix": None,
                "oecd": None,
            },
            "11_countries_concerned": [dispatch, destination],
        }
    sources = [c.event_id, a.event_id] + [
        x.event_id for x in (deal.pickup, deal.delivery) if x is not None
    ]
    return _built("transport", a.carrier_id, content, sources, missing)


def delivery_report(deal: Deal, seller: Party, buyer: Party, carrier: Party) -> Built | NotYet:
    """The buyer's report of what arrived: the planned quantity, the weights the carrier
    measured at pickup and at delivery, and the differences."""
    c, a = deal.confirmed, deal.awarded
    if c is None:
        return NotYet("delivery", "the match is not confirmed")
    if a is None:
        return NotYet("delivery", "the transport is not awarded yet")
    if deal.delivery is None:
        return NotYet("delivery", "the carrier has not confirmed the delivery yet")
    missing: list[str] = []
    delivered = deal.delivery.weight_t
    difference = round(delivered - c.weight_t, 3)
    content = {
        "document": "delivery",
        "format": "marketplace.delivery.v1",
        "match_id": c.match_id,
        "issued_by": "buyer",
        "buyer": _party("buyer", buyer, missing),
        "seller": _party("seller", seller, missing),
        "carrier": _party("carrier", carrier, missing, vat=False),
        "material": _material(c.material),
        "planned": {"quantity": c.quantity, "unit": c.unit, "weight_t": c.weight_t},
        "picked_up": _confirmation(deal.pickup),
        "delivered": _confirmation(deal.delivery),
        "delivered_weight_t": delivered,
        "difference_t": difference,
        "difference_pct": round(100 * difference / c.weight_t, 2),
        "loss_in_transit_t": (
            round(deal.pickup.weight_t - delivered, 3) if deal.pickup is not None else None
        ),
        "received": (
            {
                "confirmed_as": deal.received.confirmed_as,
                "at": _time(deal.received.at),
                "note": deal.received.note,
            }
            if deal.received is not None
            else None
        ),
    } | _period(c)
    sources = [c.event_id, a.event_id] + [
        x.event_id for x in (deal.pickup, deal.delivery, deal.received) if x is not None
    ]
    return _built("delivery", c.buyer_id, content, sources, missing)


def build_all(deal: Deal, parties: dict[str, Party]) -> list[Built | NotYet]:
    """Every document of the deal, built or not yet. `parties` holds the seller, the buyer and
    the awarded carrier by partner id (a party absent from it is named by its id alone)."""
    c = deal.confirmed
    if c is None:
        return [NotYet(kind, "the match is not confirmed") for kind in KINDS]

    def party(partner_id: str) -> Party:
        return parties.get(partner_id) or Party(partner_id, partner_id, None)

    seller, buyer = party(c.seller_id), party(c.buyer_id)
    if c.period is not None and c.delivery_id is None:
        # Each period's delivery of a standing agreement is its own transport (#22 item 3).
        why = "a standing agreement's transport documents and delivery reports are its periods'"
        return [order(deal, seller, buyer), NotYet("transport", why), NotYet("delivery", why)]
    if deal.awarded is None:
        return [
            order(deal, seller, buyer),
            NotYet("transport", "the transport is not awarded yet"),
            NotYet("delivery", "the transport is not awarded yet"),
        ]
    carrier = party(deal.awarded.carrier_id)
    return [
        order(deal, seller, buyer),
        transport(deal, seller, buyer, carrier),
        delivery_report(deal, seller, buyer, carrier),
    ]


def canonical(content: dict[str, Any]) -> bytes:
    """The content as the bytes its SHA-256 is taken of: JSON with sorted keys, no spaces."""
    return json.dumps(content, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode()


def digest(content: dict[str, Any]) -> str:
    return hashlib.sha256(canonical(content)).hexdigest()
