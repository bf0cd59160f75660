"""The notifier: decides who must be told what, and publishes one NotificationIssued per
recipient on partners.notifications (key: the partner), for webhooks and the live push.

From market.matches: both sides of a proposal, a confirmation, an expiry or a cancellation. From
logistics.jobs: a new transport job to every logistics firm whose declared coverage and fleet fit
it (the pure rule of marketplace/core/carriers.py, over the projector's carriers read model).
From logistics.awards: the winner, every other bidder and both SMEs of an award; the bidders and
the SMEs of a failed auction, and the fitting firms again when it reopens; a refused quote's firm.
From partners.registry (#11): an SME nudged by a facilitator about a listing, and a facilitator
told that an SME granted or revoked its consent. From market.matches, a delivery confirmed: every
party it names (seller, buyer, carrier) is asked for feedback.

A notification's id derives from its cause's event id, its kind and its recipient, so a replay or
a republished event gives the very same notification and never a second one with another id."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec
import orjson

from marketplace.core.carriers import JobNeeds, Place, unfit_reasons
from marketplace.core.ids import derived_id
from marketplace.db import Conn
from marketplace.events import Decoded, to_message
from marketplace.logs import get_logger
from marketplace.runtime import Transaction
from marketplace.runtime.decoding import decode_or_dead_letter
from marketplace.runtime.outbox import OutboxMessage
from marketplace.translate.auction import coverage_of
from schemas import common, topics
from schemas import logistics as lg
from schemas.facilitators import ConsentGranted, ConsentRevoked, ListingNudged
from schemas.feedback import FEEDBACK_REASONS, MatchDelivered
from schemas.matches import (
    AgreementEnded,
    DeliveryScheduled,
    MatchCancelled,
    MatchConfirmed,
    MatchExpired,
    MatchProposed,
)
from schemas.partners import NotificationIssued

GROUP = "notifier"
TOPICS = (topics.MATCHES, topics.JOBS, topics.AWARDS, topics.REGISTRY)
SOURCE = "/consumers/notifier"
log = get_logger(__name__)
_coverage = msgspec.json.Decoder(lg.CarrierCoverage)


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


def _plain(value: Any) -> Any:
    return msgspec.to_builtins(value)


def _qty(q: common.Quantity) -> str:
    return f"{q.amount:g} {q.unit}"


def _money(m: common.Money) -> str:
    return f"{m.amount:.2f} {m.currency}"


def _every(a: common.Agreement | None) -> str:
    """ " every month from 2026-12-07" for a standing agreement, "" otherwise."""
    return "" if a is None else f" every {a.period} from {a.starts.isoformat()}"


def job_needs(job: lg.TransportJobRequested) -> JobNeeds:
    return JobNeeds(
        pickup=Place(job.pickup.lat, job.pickup.lon, job.pickup.region),
        delivery=Place(job.delivery.lat, job.delivery.lon, job.delivery.region),
        weight_t=job.weight_t,
        hazardous=job.hazardous,
    )


def fitting_carriers(
    job: lg.TransportJobRequested, carriers: Sequence[tuple[str, lg.CarrierCoverage]]
) -> tuple[str, ...]:
    needs = job_needs(job)
    return tuple(sorted(pid for pid, cov in carriers if not unfit_reasons(needs, coverage_of(cov))))


def _both(parties: tuple[str, str] | None) -> list[tuple[str, str]]:
    """(partner, side) for each SME of the match."""
    if parties is None:
        return []
    seller, buyer = parties
    return [(seller, "seller"), (buyer, "buyer")]


def plan(event: Any, known: Known) -> list[Note]:
    """Who must be told what about one event. Pure."""
    match event:
        case MatchProposed():
            parties = (event.seller_id, event.buyer_id)
            summary = (
                f"New proposal: {_qty(event.quantity)}{_every(event.agreement)} of "
                f"{event.material_code} at {_money(event.delivered_price)} delivered, "
                f"{event.distance_km:.0f} km"
            )
            base = {
                "match_id": event.match_id,
                "offer_id": event.offer_id,
                "request_id": event.request_id,
                "material_code": event.material_code,
                "quantity": _plain(event.quantity),
                "delivered_price": _plain(event.delivered_price),
                "distance_km": event.distance_km,
                "co2e_saved_kg": event.co2e_saved_kg,
                "score": event.score,
                "expires_at": event.expires_at.isoformat(),
                "agreement": _plain(event.agreement),
                "criteria": _plain(event.criteria),
            }
            return [
                Note(p, "match.proposed", event.match_id, summary, base | {"your_side": side})
                for p, side in _both(parties)
            ]
        case MatchConfirmed():
            summary = (
                f"Confirmed: {_qty(event.quantity)}{_every(event.agreement)} of "
                f"{event.material_code}"
            )
            base = {
                "match_id": event.match_id,
                "material_code": event.material_code,
                "quantity": _plain(event.quantity),
                "delivered_price": _plain(event.delivered_price),
                "agreement": _plain(event.agreement),
            }
            return [
                Note(p, "match.confirmed", event.match_id, summary, base | {"your_side": side})
                for p, side in _both((event.seller_id, event.buyer_id))
            ]
        case DeliveryScheduled():
            summary = (
                f"Delivery for {event.period_key}: {_qty(event.quantity)} of "
                f"{event.material_code}, pickup from {event.pickup_window.start.date()}"
            )
            data = {
                "match_id": event.match_id,
                "delivery_id": event.delivery_id,
                "period_key": event.period_key,
                "material_code": event.material_code,
                "quantity": _plain(event.quantity),
                "pickup_window": _plain(event.pickup_window),
            }
            return [
                Note(
                    p, "delivery.scheduled", event.delivery_id, summary, data | {"your_side": side}
                )
                for p, side in _both((event.seller_id, event.buyer_id))
            ]
        case AgreementEnded():
            text = f"A standing agreement ended ({event.reason.replace('_', ' ')})"
            return [
                Note(
                    p,
                    "agreement.ended",
                    event.match_id,
                    text,
                    {
                        "match_id": event.match_id,
                        "reason": event.reason,
                        "last_period_key": event.last_period_key,
                        "your_side": side,
                    },
                )
                for p, side in _both(known.parties)
            ]
        case MatchExpired():
            return [
                Note(
                    p,
                    "match.expired",
                    event.match_id,
                    "A proposal expired unanswered",
                    {
                        "match_id": event.match_id,
                        "your_side": side,
                    },
                )
                for p, side in _both(known.parties)
            ]
        case MatchCancelled():
            text = f"A proposal was cancelled ({event.reason.replace('_', ' ')})"
            return [
                Note(
                    p,
                    "match.cancelled",
                    event.match_id,
                    text,
                    {
                        "match_id": event.match_id,
                        "reason": event.reason,
                        "by_partner_id": event.by_partner_id,
                        "your_side": side,
                    },
                )
                for p, side in _both(known.parties)
            ]
        case lg.TransportJobRequested():
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
                "pickup": _plain(event.pickup),
                "delivery": _plain(event.delivery),
                "pickup_window": _plain(event.pickup_window),
                "delivery_window": _plain(event.delivery_window),
                "bidding_deadline": event.bidding_deadline.isoformat(),
            }
            return [Note(p, "job.requested", event.job_id, summary, data) for p in known.fitting]
        case lg.QuoteRejected():
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
        case lg.TransportAwarded():
            return _awarded(event, known)
        case lg.AuctionFailed():
            return _failed(event, known)
        case ListingNudged() | ConsentGranted() | ConsentRevoked():
            return _facilitation(event)
        case MatchDelivered():
            return _feedback_requested(event)
    return []


def _feedback_requested(event: MatchDelivered) -> list[Note]:
    """#11: after a delivery, each party named in it is asked for its feedback, once."""
    parties = [(event.seller_id, "seller"), (event.buyer_id, "buyer")]
    if event.carrier_id is not None:
        parties.append((event.carrier_id, "carrier"))
    data = {
        "match_id": event.match_id,
        "delivery_id": event.delivery_id,
        "material_code": event.material_code,
        "confirmed_as": event.confirmed_as,
        "reasons": list(FEEDBACK_REASONS),
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


def _facilitation(event: ListingNudged | ConsentGranted | ConsentRevoked) -> list[Note]:
    """#11: the SME hears of a nudge; the facilitator hears of a consent given or taken back."""
    match event:
        case ListingNudged():
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


def _awarded(event: lg.TransportAwarded, known: Known) -> list[Note]:
    data = {
        "job_id": event.job_id,
        "match_id": event.match_id,
        "quote_id": event.quote_id,
        "carrier_id": event.carrier_id,
        "price": _plain(event.price),
        "co2e_kg": event.co2e_kg,
    }
    notes = [
        Note(
            event.carrier_id,
            "award.won",
            event.job_id,
            f"You won the job at {_money(event.price)}",
            data,
        )
    ]
    notes += [
        Note(
            b,
            "award.lost",
            event.job_id,
            "Another firm won the job",
            {
                "job_id": event.job_id,
                "match_id": event.match_id,
                "winning_price": _plain(event.price),
            },
        )
        for b in sorted(set(event.bidders) - {event.carrier_id})
    ]
    notes += [
        Note(
            p,
            "transport.awarded",
            event.match_id,
            f"Transport booked at {_money(event.price)}",
            data | {"your_side": side},
        )
        for p, side in _both(known.parties)
    ]
    return notes


def _failed(event: lg.AuctionFailed, known: Known) -> list[Note]:
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


def notification_id(cause_event_id: str, note: Note) -> str:
    return derived_id(f"{cause_event_id}/notify/{note.kind}/{note.partner_id}")


def messages(decoded: Decoded, notes: Sequence[Note], source: str) -> list[OutboxMessage]:
    cause = decoded.envelope.id
    out = []
    for note in notes:
        nid = notification_id(cause, note)
        event = NotificationIssued(
            notification_id=nid,
            partner_id=note.partner_id,
            kind=note.kind,
            subject_id=note.subject_id,
            cause_event_id=cause,
            summary=note.summary[:200],
            data=note.data,
        )
        out.append(
            to_message(
                event,
                event_id=nid,
                source=source,
                time=decoded.envelope.time,
                subject=note.partner_id,
            )
        )
    return out


class Notifier:
    """Stateless between batches: what it needs beyond an event (a match's parties, the
    carriers' coverage) it reads in the batch's transaction."""

    def __init__(self, group_id: str = GROUP) -> None:
        self.group_id = group_id
        self.source = f"{SOURCE}/{group_id}"

    async def load(self, conn: Conn, topic: str, partition: int) -> None:  # noqa: ARG002
        return None

    async def process(self, tx: Transaction, state: None, records: Sequence[Any]) -> None:
        carriers: list[tuple[str, lg.CarrierCoverage]] | None = None
        for record in records:
            decoded = decode_or_dead_letter(tx, self.group_id, record)
            if decoded is None:
                continue
            event = decoded.event
            known = Known()
            match event:
                case MatchProposed() | MatchConfirmed():
                    await self._remember(tx.conn, event.match_id, event.seller_id, event.buyer_id)
                case lg.TransportJobRequested():
                    if event.seller_id and event.buyer_id:
                        await self._remember(
                            tx.conn, event.match_id, event.seller_id, event.buyer_id
                        )
                    carriers = carriers if carriers is not None else await _carriers(tx.conn)
                    known = Known(fitting=fitting_carriers(event, carriers))
                case MatchExpired() | MatchCancelled() | AgreementEnded() | lg.TransportAwarded():
                    known = Known(parties=await self._parties(tx.conn, event.match_id))
                case lg.AuctionFailed():
                    fitting: tuple[str, ...] = ()
                    if event.reopened_until is not None:
                        job = await _job(tx.conn, event.job_id)
                        if job is not None:
                            carriers = (
                                carriers if carriers is not None else await _carriers(tx.conn)
                            )
                            fitting = fitting_carriers(job, carriers)
                    known = Known(await self._parties(tx.conn, event.match_id), fitting)
                case _:
                    pass
            for message in messages(decoded, plan(event, known), self.source):
                tx.emit(message)
        return state

    async def _remember(self, conn: Conn, match_id: str, seller: str, buyer: str) -> None:
        await conn.execute(
            "INSERT INTO notifier_parties (group_id, match_id, seller_id, buyer_id)"
            " VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
            self.group_id,
            match_id,
            seller,
            buyer,
        )

    async def _parties(self, conn: Conn, match_id: str) -> tuple[str, str] | None:
        row = await conn.fetchrow(
            "SELECT seller_id, buyer_id FROM notifier_parties WHERE group_id = $1"
            " AND match_id = $2",
            self.group_id,
            match_id,
        )
        if row is None:
            # Proposed before this group started: the projector's matches read model knows.
            row = await conn.fetchrow(
                "SELECT seller_id, buyer_id FROM matches WHERE match_id = $1", match_id
            )
        return (row["seller_id"], row["buyer_id"]) if row is not None else None


async def _carriers(conn: Conn) -> list[tuple[str, lg.CarrierCoverage]]:
    rows = await conn.fetch(
        "SELECT c.partner_id, c.capabilities FROM carriers c"
        " LEFT JOIN partners p ON p.partner_id = c.partner_id"
        " WHERE COALESCE(p.active, true) ORDER BY c.partner_id"
    )
    out = []
    for r in rows:
        try:
            out.append((r["partner_id"], _coverage.decode(r["capabilities"])))
        except msgspec.ValidationError as exc:
            log.warning(
                "carrier_capabilities_unreadable", partner_id=r["partner_id"], error=str(exc)
            )
    return out


async def _job(conn: Conn, job_id: str) -> lg.TransportJobRequested | None:
    body = await conn.fetchval("SELECT body FROM jobs WHERE job_id = $1", job_id)
    if body is None:
        return None
    fields = orjson.loads(body) | {"type": "logistics.job.requested.v1"}
    try:
        return msgspec.convert(fields, lg.TransportJobRequested, strict=False)
    except msgspec.ValidationError:
        return None
