"""Notifications: who must be told what about each event of the market, pure.

`plan(happening, known)` takes one of the happenings below (what a `market.matches`,
`logistics.jobs`, `logistics.awards` or `partners.registry` event says, as
marketplace/translate/notifications.py reads it) and what the notifier knows beyond the event (a
match's two SMEs, the logistics firms whose coverage fits a job), and answers the notes to send:
one per recipient, with its kind, subject, summary and data. Structured parts of an event that a
note carries as they are (a quantity, a price, a window, a place) arrive already in JSON form."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from marketplace.core import reminders, search_alerts
from marketplace.core.disclosure import about_km, said_proposal

# A value already in JSON form: dicts, lists, strings, numbers, booleans, None.
JSON = Any

# Every kind a partner can be told about (webhook endpoints subscribe to some of them).
KINDS = (
    "match.proposed",
    "match.confirmed",
    "match.expired",
    "match.cancelled",
    "job.requested",
    "job.reopened",
    "quote.rejected",
    "award.won",
    "award.lost",
    "auction.failed",
    "transport.awarded",
    "listing.nudged",
    "consent.granted",
    "consent.revoked",
    "feedback.requested",
    "delivery.scheduled",
    "agreement.ended",
    # The exchange's own reminders (marketplace/core/reminders.py), decided by the reminders
    # consumer rather than planned here.
    *reminders.KINDS,
    # A new listing that fits a person's saved search (marketplace/core/search_alerts.py),
    # decided by the alerts consumer.
    *search_alerts.KINDS,
)


@dataclass(frozen=True, slots=True)
class Note:
    partner_id: str
    kind: str
    subject_id: str
    summary: str
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Known:
    """What the notifier knows beyond the event: the match's two SMEs (seller, buyer), and the
    logistics firms whose coverage fits the job (for a new or reopened job)."""

    parties: tuple[str, str] | None = None
    fitting: tuple[str, ...] = ()


# The happenings ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Proposed:
    match_id: str
    offer_id: str
    request_id: str
    seller_id: str
    buyer_id: str
    material_code: str
    quantity: JSON  # {"amount", "unit"}
    delivered_price: JSON  # {"amount", "currency"}
    distance_km: float
    co2e_saved_kg: float | None  # None: unknown (no sourced factor for the material)
    score: float
    expires_at: datetime
    agreement: JSON  # {"period", "quantity", "starts", "ends"} or None
    criteria: JSON


@dataclass(frozen=True, slots=True)
class Confirmed:
    match_id: str
    seller_id: str
    buyer_id: str
    material_code: str
    quantity: JSON
    delivered_price: JSON
    agreement: JSON


@dataclass(frozen=True, slots=True)
class DeliveryScheduled:
    delivery_id: str
    match_id: str
    seller_id: str
    buyer_id: str
    period_key: str
    material_code: str
    quantity: JSON
    pickup_window: JSON  # {"start", "end"}
    pickup_date: str  # the pickup window's first day, ISO


@dataclass(frozen=True, slots=True)
class AgreementEnded:
    match_id: str
    reason: str
    last_period_key: str | None


@dataclass(frozen=True, slots=True)
class Expired:
    match_id: str


@dataclass(frozen=True, slots=True)
class Cancelled:
    match_id: str
    reason: str
    by_partner_id: str | None


@dataclass(frozen=True, slots=True)
class JobRequested:
    job_id: str
    match_id: str
    material_code: str
    hazardous: bool
    weight_t: float
    pickup: JSON
    delivery: JSON
    pickup_window: JSON
    delivery_window: JSON
    bidding_deadline: datetime


@dataclass(frozen=True, slots=True)
class QuoteRejected:
    carrier_id: str
    job_id: str
    quote_id: str
    action: str
    reason_code: str
    reason: str
    previous_stands: bool


@dataclass(frozen=True, slots=True)
class Awarded:
    job_id: str
    match_id: str
    quote_id: str
    carrier_id: str
    price: JSON  # {"amount", "currency"}
    co2e_kg: float
    bidders: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class AuctionFailed:
    job_id: str
    match_id: str
    reason: str
    reopened_until: datetime | None
    bidders: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Nudged:
    partner_id: str
    facilitator_id: str
    listing_id: str
    kind: str
    material_code: str
    days_unchanged: int
    message: str


@dataclass(frozen=True, slots=True)
class ConsentGranted:
    partner_id: str
    facilitator_id: str
    note: str


@dataclass(frozen=True, slots=True)
class ConsentRevoked:
    partner_id: str
    facilitator_id: str
    reason: str


@dataclass(frozen=True, slots=True)
class Delivered:
    match_id: str
    delivery_id: str | None
    material_code: str
    confirmed_as: str
    seller_id: str
    buyer_id: str
    carrier_id: str | None
    feedback_reasons: tuple[str, ...]


Happening = (
    Proposed
    | Confirmed
    | DeliveryScheduled
    | AgreementEnded
    | Expired
    | Cancelled
    | JobRequested
    | QuoteRejected
    | Awarded
    | AuctionFailed
    | Nudged
    | ConsentGranted
    | ConsentRevoked
    | Delivered
)


# The plan -----------------------------------------------------------------------------------------


def _qty(q: Mapping[str, Any]) -> str:
    return f"{q['amount']:g} {q['unit']}"


def _money(m: Mapping[str, Any]) -> str:
    return f"{m['amount']:.2f} {m['currency']}"


def _every(a: Mapping[str, Any] | None) -> str:
    """ " every month from 2026-12-07" for a standing agreement, "" otherwise."""
    return "" if a is None else f" every {a['period']} from {a['starts']}"


def _both(parties: tuple[str, str] | None) -> list[tuple[str, str]]:
    """(partner, side) for each SME of the match."""
    if parties is None:
        return []
    seller, buyer = parties
    return [(seller, "seller"), (buyer, "buyer")]


def plan(event: Happening, known: Known) -> list[Note]:
    """Who must be told what about one happening."""
    match event:
        case Proposed():
            # A proposal is not confirmed yet: its distance is told only roughly, in the summary
            # and in the data alike (marketplace/core/disclosure.py).
            summary = (
                f"New proposal: {_qty(event.quantity)}{_every(event.agreement)} of "
                f"{event.material_code} at {_money(event.delivered_price)} delivered, "
                f"about {about_km(event.distance_km)} km"
            )
            base = {
                "match_id": event.match_id,
                "offer_id": event.offer_id,
                "request_id": event.request_id,
                "material_code": event.material_code,
                "quantity": event.quantity,
                "delivered_price": event.delivered_price,
                "distance_km": event.distance_km,
                "co2e_saved_kg": event.co2e_saved_kg,
                "score": event.score,
                "expires_at": event.expires_at.isoformat(),
                "agreement": event.agreement,
                "criteria": event.criteria,
            }
            base = said_proposal(base, exact=False)
            return [
                Note(p, "match.proposed", event.match_id, summary, base | {"your_side": side})
                for p, side in _both((event.seller_id, event.buyer_id))
            ]
        case Confirmed():
            summary = (
                f"Confirmed: {_qty(event.quantity)}{_every(event.agreement)} of "
                f"{event.material_code}"
            )
            base = {
                "match_id": event.match_id,
                "material_code": event.material_code,
                "quantity": event.quantity,
                "delivered_price": event.delivered_price,
                "agreement": event.agreement,
            }
            return [
                Note(p, "match.confirmed", event.match_id, summary, base | {"your_side": side})
                for p, side in _both((event.seller_id, event.buyer_id))
            ]
        case DeliveryScheduled():
            summary = (
                f"Delivery for {event.period_key}: {_qty(event.quantity)} of "
                f"{event.material_code}, pickup from {event.pickup_date}"
            )
            data = {
                "match_id": event.match_id,
                "delivery_id": event.delivery_id,
                "period_key": event.period_key,
                "material_code": event.material_code,
                "quantity": event.quantity,
                "pickup_window": event.pickup_window,
            }
            return [
                Note(
                    p, "delivery.scheduled", event.delivery_id, summary, data | {"your_side": side}
                )
                for p, side in _both((event.seller_id, event.buyer_id))
            ]
        case AgreementEnded():
            text = f"A standing agreement ended ({event.reason.replace('_', ' ')})"
            data = {
                "match_id": event.match_id,
                "reason": event.reason,
                "last_period_key": event.last_period_key,
            }
            return [
                Note(p, "agreement.ended", event.match_id, text, data | {"your_side": side})
                for p, side in _both(known.parties)
            ]
        case Expired():
            return [
                Note(
                    p,
                    "match.expired",
                    event.match_id,
                    "A proposal expired unanswered",
                    {"match_id": event.match_id, "your_side": side},
                )
                for p, side in _both(known.parties)
            ]
        case Cancelled():
            text = f"A proposal was cancelled ({event.reason.replace('_', ' ')})"
            data = {
                "match_id": event.match_id,
                "reason": event.reason,
                "by_partner_id": event.by_partner_id,
            }
            return [
                Note(p, "match.cancelled", event.match_id, text, data | {"your_side": side})
                for p, side in _both(known.parties)
            ]
        case JobRequested():
            summary = (
                f"Transport job: {event.weight_t:g} t of {event.material_code}, bids until "
                f"{event.bidding_deadline.isoformat()}"
            )
            data = {
                "job_id": event.job_id,
                "match_id": event.match_id,
                "material_code": event.material_code,
                "hazardous": event.hazardous,
                "weight_t": event.weight_t,
                "pickup": event.pickup,
                "delivery": event.delivery,
                "pickup_window": event.pickup_window,
                "delivery_window": event.delivery_window,
                "bidding_deadline": event.bidding_deadline.isoformat(),
            }
            return [Note(p, "job.requested", event.job_id, summary, data) for p in known.fitting]
        case QuoteRejected():
            return [
                Note(
                    event.carrier_id,
                    "quote.rejected",
                    event.job_id,
                    f"Quote refused: {event.reason}"[:200],
                    {
                        "job_id": event.job_id,
                        "quote_id": event.quote_id,
                        "action": event.action,
                        "reason_code": event.reason_code,
                        "reason": event.reason,
                        "previous_stands": event.previous_stands,
                    },
                )
            ]
        case Awarded():
            return _awarded(event, known)
        case AuctionFailed():
            return _failed(event, known)
        case Nudged() | ConsentGranted() | ConsentRevoked():
            return _facilitation(event)
        case Delivered():
            return _feedback_requested(event)


def _feedback_requested(event: Delivered) -> list[Note]:
    """After a delivery, each party named in it is asked for its feedback, once."""
    parties = [(event.seller_id, "seller"), (event.buyer_id, "buyer")]
    if event.carrier_id is not None:
        parties.append((event.carrier_id, "carrier"))
    data = {
        "match_id": event.match_id,
        "delivery_id": event.delivery_id,
        "material_code": event.material_code,
        "confirmed_as": event.confirmed_as,
        "reasons": list(event.feedback_reasons),
        "answer_at": f"/v1/matches/{event.match_id}/feedback",
    }
    summary = f"Delivered: {event.material_code}. How did it go? Rate it 1-5 with the main reason"
    seen: set[str] = set()
    notes = []
    for partner, side in parties:
        if partner not in seen:  # a party on two sides is asked once
            seen.add(partner)
            notes.append(
                Note(
                    partner,
                    "feedback.requested",
                    event.match_id,
                    summary,
                    data | {"your_side": side},
                )
            )
    return notes


def _facilitation(event: Nudged | ConsentGranted | ConsentRevoked) -> list[Note]:
    """The SME hears of a nudge; the facilitator hears of a consent given or taken back."""
    match event:
        case Nudged():
            days = f"{event.days_unchanged} day{'s' if event.days_unchanged != 1 else ''}"
            return [
                Note(
                    event.partner_id,
                    "listing.nudged",
                    event.listing_id,
                    f"Your {event.kind} of {event.material_code} has not changed for {days}:"
                    " is it still current?",
                    {
                        "listing_id": event.listing_id,
                        "kind": event.kind,
                        "material_code": event.material_code,
                        "days_unchanged": event.days_unchanged,
                        "facilitator_id": event.facilitator_id,
                        "message": event.message,
                    },
                )
            ]
        case ConsentGranted():
            return [
                Note(
                    event.facilitator_id,
                    "consent.granted",
                    event.partner_id,
                    "An SME lets you act for it",
                    {"partner_id": event.partner_id, "note": event.note},
                )
            ]
        case ConsentRevoked():
            return [
                Note(
                    event.facilitator_id,
                    "consent.revoked",
                    event.partner_id,
                    "An SME withdrew its consent: you can no longer act for it",
                    {"partner_id": event.partner_id, "reason": event.reason},
                )
            ]


def _awarded(event: Awarded, known: Known) -> list[Note]:
    data = {
        "job_id": event.job_id,
        "match_id": event.match_id,
        "quote_id": event.quote_id,
        "carrier_id": event.carrier_id,
        "price": event.price,
        "co2e_kg": event.co2e_kg,
    }
    price = _money(event.price)
    notes = [Note(event.carrier_id, "award.won", event.job_id, f"You won the job at {price}", data)]
    notes += [
        Note(
            b,
            "award.lost",
            event.job_id,
            "Another firm won the job",
            {"job_id": event.job_id, "match_id": event.match_id, "winning_price": event.price},
        )
        for b in sorted(set(event.bidders) - {event.carrier_id})
    ]
    notes += [
        Note(
            p,
            "transport.awarded",
            event.match_id,
            f"Transport booked at {price}",
            data | {"your_side": side},
        )
        for p, side in _both(known.parties)
    ]
    return notes


def _failed(event: AuctionFailed, known: Known) -> list[Note]:
    reopened = event.reopened_until.isoformat() if event.reopened_until else None
    data = {
        "job_id": event.job_id,
        "match_id": event.match_id,
        "reason": event.reason,
        "reopened_until": reopened,
    }
    text = f"No transport found: {event.reason}"[:200]
    bidders = sorted(set(event.bidders))
    notes = [Note(b, "auction.failed", event.job_id, text, data) for b in bidders]
    notes += [
        Note(p, "auction.failed", event.match_id, text, data | {"your_side": side})
        for p, side in _both(known.parties)
    ]
    if reopened is not None:
        notes += [
            Note(p, "job.reopened", event.job_id, f"Transport job reopened until {reopened}", data)
            for p in known.fitting
            if p not in bidders
        ]
    return notes
