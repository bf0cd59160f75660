"""The projector: keeps the API's read models (partners, carriers, listings) from the events.

Stateless between batches, so its state is None; each event's effect is an idempotent upsert,
and the runtime applies every record exactly once anyway. A batch is applied with one statement
per kind of effect (marketplace/runtime/batching.py), not one per record."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import msgspec
import orjson

from marketplace.core.feedback import delivery_key
from marketplace.db import NOTIFY_CHANNEL, Conn
from marketplace.events import Decoded
from marketplace.logs import get_logger
from marketplace.runtime import Transaction
from marketplace.runtime.batching import Step, columns, waves
from marketplace.runtime.decoding import decode_or_dead_letter, decode_records
from marketplace.translate import shredding
from schemas import topics
from schemas.facilitators import ConsentGranted, ConsentRevoked, ListingNudged
from schemas.feedback import FeedbackGiven, MatchDelivered
from schemas.listings import (
    MatchAccepted,
    MatchDeclined,
    OfferPosted,
    OfferUpdated,
    OfferWithdrawn,
    RequestPosted,
    RequestUpdated,
    RequestWithdrawn,
)
from schemas.logistics import (
    AuctionFailed,
    QuoteRejected,
    QuoteSubmitted,
    QuoteWithdrawn,
    ReservePriceSet,
    TransportAwarded,
    TransportJobRequested,
)
from schemas.matches import (
    AgreementEnded,
    MatchCancelled,
    MatchConfirmed,
    MatchExpired,
    MatchProposed,
)
from schemas.partners import (
    CarrierCapabilitiesDeclared,
    LegalDataDeclared,
    NotificationIssued,
    PartnerRegistered,
    PartnerUpdated,
)

GROUP = "projector"
TOPICS = (
    topics.LISTINGS,
    topics.MATCHES,
    topics.JOBS,
    topics.AWARDS,
    topics.REGISTRY,
    topics.NOTIFICATIONS,
)
log = get_logger(__name__)
_json = msgspec.json.Encoder()


class Projector:
    # The records are decoded as the runtime fetches them, while the batch before them waits
    # for PostgreSQL (marketplace/runtime/consumer.py, `Processor`).
    prepare = staticmethod(decode_records)

    def __init__(self, group_id: str = GROUP) -> None:
        self.group_id = group_id

    async def load(self, conn: Conn, topic: str, partition: int) -> None:  # noqa: ARG002
        return None

    async def process(self, tx: Transaction, state: None, records: Sequence[Any]) -> None:
        decoded = [decode_or_dead_letter(tx, self.group_id, record) for record in records]
        await project(tx.conn, [d for d in decoded if d is not None])
        return state


async def project(conn: Conn, batch: Sequence[Decoded]) -> None:
    """Applies the events in order, with one statement per kind of effect and wave (see
    marketplace/runtime/batching.py): the read models come out as if each were applied alone.
    Sealed personal fields are opened first (#21 item 8): in clear with their organisation's
    data key, "[erased]" where it was destroyed."""
    if shredding.sealed_subjects(d.event for d in batch):
        batch = await shredding.open_batch(conn, shredding.operator_ring(), batch)
    for wave in waves(s for d in batch if (s := step(d)) is not None):
        for kind, rows in wave.items():
            await _APPLY[kind](conn, rows)


def step(decoded: Decoded) -> Step | None:
    """What one event does to the read models: its kind of statement, its arguments and the rows
    it touches. The event's class picks the group of cases that handles it with one dict look-up
    (a `match` over every projected class costs a type check per case before it)."""
    cls = type(decoded.event)
    group = _STEP_OF.get(cls)
    if group is None:
        group = _STEP_OF[cls] = _group_of(cls)
    return group(decoded)


def _partners(decoded: Decoded) -> Step | None:
    """Partners, carriers, legal data and notifications."""
    event, at, event_id = decoded.event, decoded.envelope.time, decoded.envelope.id
    match event:
        case PartnerRegistered():
            row: tuple[Any, ...] = (
                event.partner_id,
                event.name,
                event.role,
                event.country,
                event.region,
                event.sector,
                at,
            )
            return Step("partner", row, (("partner", event.partner_id),), first_wins=True)
        case PartnerUpdated():
            row = (event.partner_id, event.name, event.region, event.sector, event.active, at)
            return Step("partner_updated", row, (("partner", event.partner_id),))
        case CarrierCapabilitiesDeclared():
            row = (event.partner_id, _json.encode(event).decode(), at)
            return Step("carrier", row, (("carrier", event.partner_id),))
        case LegalDataDeclared():
            row = (
                event.partner_id,
                event.legal_name,
                event.street,
                event.postcode,
                event.city,
                event.country,
                event.vat_number,
                event.peppol_id,
                event_id,
                at,
            )
            return Step("legal", row, (("legal", event.partner_id),))
        case NotificationIssued():
            row = (event.notification_id, event.partner_id, event.kind, event.subject_id, event, at)
            token = ("notification", event.notification_id)
            return Step("notification", row, (token,), first_wins=True)
        case _:
            return None


def _listings(decoded: Decoded) -> Step | None:
    """Offers and requests: posted, updated, withdrawn."""
    event, at, event_id = decoded.event, decoded.envelope.time, decoded.envelope.id
    match event:
        case OfferPosted() | RequestPosted():
            kind = "offer" if isinstance(event, OfferPosted) else "request"
            listing_id = event.offer_id if isinstance(event, OfferPosted) else event.request_id
            # The event itself: `_listing` encodes the batch's rows as one JSON document.
            row: tuple[Any, ...] = (
                listing_id,
                kind,
                event.owner_id,
                event.material.code,
                event,
                at,
                event_id,
            )
            return Step("listing", row, (("listing", listing_id),), first_wins=True)
        case OfferUpdated() | RequestUpdated():
            listing_id = event.offer_id if isinstance(event, OfferUpdated) else event.request_id
            row = (listing_id, event.terms, at, event_id, event.owner_id)
            return Step("listing_updated", row, (("listing", listing_id),))
        case OfferWithdrawn() | RequestWithdrawn():
            listing_id = event.offer_id if isinstance(event, OfferWithdrawn) else event.request_id
            row = (listing_id, at, event_id, event.owner_id)
            return Step("listing_withdrawn", row, (("listing", listing_id),))
        case _:
            return None


def _facilitation(decoded: Decoded) -> Step | None:
    """Consents (one row per SME and facilitator, the latest event wins: they share the SME's
    partition, so they arrive in order) and nudges (#11)."""
    event, at, event_id = decoded.event, decoded.envelope.time, decoded.envelope.id
    match event:
        case ConsentGranted():
            token = ("consent", event.partner_id, event.facilitator_id)
            row: tuple[Any, ...] = (event.partner_id, event.facilitator_id, event.note, at)
            return Step("consent_granted", row, (token,))
        case ConsentRevoked():
            token = ("consent", event.partner_id, event.facilitator_id)
            return Step("consent_revoked", (event.partner_id, event.facilitator_id, at), (token,))
        case ListingNudged():
            row = (
                event_id,
                event.listing_id,
                event.partner_id,
                event.facilitator_id,
                event.message,
                at,
            )
            return Step("nudge", row, (("nudge", event_id),), first_wins=True)
        case _:
            return None


def _feedback(decoded: Decoded) -> Step | None:
    """Deliveries and feedback (#11): the first of each in the log counts, a later one for the
    same delivery (or the same party and delivery) changes nothing."""
    event, at = decoded.event, decoded.envelope.time
    match event:
        case MatchDelivered():
            key = delivery_key(event.match_id, event.delivery_id)
            row: tuple[Any, ...] = (
                key,
                event.match_id,
                event.delivery_id,
                event.material_code,
                event.seller_id,
                event.buyer_id,
                event.carrier_id,
                event.partner_id,
                event.confirmed_as,
                event.note,
                at,
            )
            return Step("delivery", row, (("delivery", key),), first_wins=True)
        case FeedbackGiven():
            key = delivery_key(event.match_id, event.delivery_id)
            row = (
                event.feedback_id,
                key,
                event.match_id,
                event.partner_id,
                event.side,
                event.rating,
                event.reason,
                event.comment,
                at,
            )
            tokens = (("feedback", event.feedback_id), ("feedback_by", key, event.partner_id))
            return Step("feedback", row, tokens, first_wins=True)
        case _:
            return None


# Which group of cases handles an event of each class (`step`). A class none of these groups
# names (a subclass of one of them excepted) goes to `_trade`, which ignores what it does not
# project (the timers).
_GROUPS: tuple[tuple[Callable[[Decoded], Step | None], tuple[type, ...]], ...] = (
    (
        _listings,
        (
            OfferPosted,
            RequestPosted,
            OfferUpdated,
            RequestUpdated,
            OfferWithdrawn,
            RequestWithdrawn,
        ),
    ),
    (
        _partners,
        (
            PartnerRegistered,
            PartnerUpdated,
            CarrierCapabilitiesDeclared,
            LegalDataDeclared,
            NotificationIssued,
        ),
    ),
    (_facilitation, (ConsentGranted, ConsentRevoked, ListingNudged)),
    (_feedback, (MatchDelivered, FeedbackGiven)),
)


def _group_of(cls: type) -> Callable[[Decoded], Step | None]:
    """The group for events of `cls`: the first group naming `cls` or a class it derives from
    (as the class patterns of a `match` would pick it), else `_trade`."""
    for group, classes in _GROUPS:
        if issubclass(cls, classes):
            return group
    return _trade


_STEP_OF: dict[type, Callable[[Decoded], Step | None]] = {
    cls: group for group, classes in _GROUPS for cls in classes
}

# Quotes: a transport award changes every quote of its job, so it writes this token and each
# step on a single quote reads it (a quote's job is the one it was first stored with).
_QUOTES = ("quotes",)


def _trade(decoded: Decoded) -> Step | None:
    """Matches, answers, transport jobs, quotes and awards."""
    event, at, event_id = decoded.event, decoded.envelope.time, decoded.envelope.id
    match event:
        case MatchProposed():
            row: tuple[Any, ...] = (
                event.match_id,
                event.material_code,
                event.seller_id,
                event.buyer_id,
                event,
                at,
            )
            return Step("match", row, (("match", event.match_id),), first_wins=True)
        case MatchAccepted() | MatchDeclined():
            answer = "accepted" if isinstance(event, MatchAccepted) else "declined"
            row = (event.match_id, event.partner_id, answer, at)
            return Step("match_answer", row, (("match", event.match_id),))
        case AgreementEnded() | MatchConfirmed() | MatchExpired() | MatchCancelled():
            status = {
                AgreementEnded: "ended",
                MatchConfirmed: "confirmed",
                MatchExpired: "expired",
                MatchCancelled: "cancelled",
            }[type(event)]
            row = (event.match_id, status, at)
            return Step("match_status", row, (("match", event.match_id),))
        case TransportJobRequested():
            row = (
                event.job_id,
                event.match_id,
                _json.encode(event).decode(),
                event.bidding_deadline,
                at,
                _json.encode(_job_opened(event)).decode(),
            )
            tokens = (("job", event.job_id), ("match", event.match_id))
            return Step("job", row, tokens)
        case QuoteSubmitted():
            row = (
                event.quote_id,
                event.job_id,
                event.carrier_id,
                _json.encode(event).decode(),
                at,
                event_id,
            )
            return Step("quote", row, (("quote", event.quote_id),), (_QUOTES,))
        case QuoteWithdrawn():
            row = (event.quote_id, event.carrier_id, at, event_id)
            return Step("quote_withdrawn", row, (("quote", event.quote_id),), (_QUOTES,))
        case QuoteRejected():
            return Step(
                "quote_rejected",
                _quote_rejected(event, at),
                (("quote", event.quote_id),),
                (_QUOTES,),
            )
        case ReservePriceSet():
            row = (event.match_id, event.partner_id, _json.encode(event.price).decode(), at)
            return Step("reserve", row, (("match", event.match_id),))
        case TransportAwarded():
            return Step(
                "award", (event, at), (("job", event.job_id), ("match", event.match_id), _QUOTES)
            )
        case AuctionFailed():
            status = "open" if event.reopened_until is not None else "failed"
            deadline = event.reopened_until.isoformat() if event.reopened_until else None
            fields = {"status": status, "reason": event.reason} | (
                {"bidding_deadline": deadline} if deadline else {}
            )
            row = (
                event.job_id,
                event.match_id,
                event.reason,
                status,
                event.reopened_until,
                at,
                _json.encode(fields).decode(),
            )
            tokens = (("job", event.job_id), ("match", event.match_id))
            return Step("auction_failed", row, tokens)
        case _:
            return None  # timers are the matcher's and the auctioneer's business


def _job_opened(event: TransportJobRequested) -> dict[str, Any]:
    return {
        "job_id": event.job_id,
        "status": "open",
        "bidding_deadline": event.bidding_deadline.isoformat(),
        "estimated_price": msgspec.to_builtins(event.estimated_price),
        "estimated_co2e_kg": event.estimated_co2e_kg,
    }


def _quote_rejected(event: QuoteRejected, at: Any) -> tuple[Any, ...]:
    refusal = {
        "action": event.action,
        "submission_id": event.submission_id,
        "reason_code": event.reason_code,
        "reason": event.reason,
        "previous_stands": event.previous_stands,
    }
    # A refused new quote is 'rejected'; after a refused revision or withdrawal the quote that
    # was there still counts, so it is (again) 'active'.
    status = "active" if event.previous_stands else "rejected"
    return (
        event.quote_id,
        event.job_id,
        event.carrier_id,
        status,
        _json.encode(refusal).decode(),
        at,
    )


# The statements, one per kind: rows in the order of the log; inserts keep that order
# (WITH ORDINALITY ... ORDER BY) so that the first of repeated keys wins, as one by one.
Rows = list[tuple[Any, ...]]


async def _partner(conn: Conn, rows: Rows) -> None:
    await conn.execute(
        "INSERT INTO partners (partner_id, name, role, country, region, sector,"
        " registered_at, updated_at)"
        " SELECT id, name, role, country, region, sector, at, at FROM unnest($1::text[],"
        " $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::timestamptz[])"
        " WITH ORDINALITY AS u(id, name, role, country, region, sector, at, n) ORDER BY n"
        " ON CONFLICT (partner_id) DO NOTHING",
        *columns(rows),
    )


async def _partner_updated(conn: Conn, rows: Rows) -> None:
    await conn.execute(
        "UPDATE partners p SET name = u.name, region = u.region, sector = u.sector,"
        " active = u.active, updated_at = u.at FROM unnest($1::text[], $2::text[], $3::text[],"
        " $4::text[], $5::boolean[], $6::timestamptz[]) AS u(id, name, region, sector, active, at)"
        " WHERE p.partner_id = u.id",
        *columns(rows),
    )


async def _carrier(conn: Conn, rows: Rows) -> None:
    await conn.execute(
        "INSERT INTO carriers (partner_id, capabilities, updated_at)"
        " SELECT id, body::jsonb - 'type' - 'actor_id' - 'partner_id', at"
        " FROM unnest($1::text[], $2::text[], $3::timestamptz[]) WITH ORDINALITY"
        " AS u(id, body, at, n) ORDER BY n"
        " ON CONFLICT (partner_id) DO UPDATE"
        " SET capabilities = EXCLUDED.capabilities, updated_at = EXCLUDED.updated_at",
        *columns(rows),
    )


async def _legal(conn: Conn, rows: Rows) -> None:
    """The latest legal data of each organisation (#22): a declaration replaces the one before."""
    await conn.execute(
        "INSERT INTO partner_legal (partner_id, legal_name, street, postcode, city, country,"
        " vat_number, peppol_id, event_id, updated_at)"
        " SELECT id, name, street, postcode, city, country, vat, peppol, event, at"
        " FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],"
        " $7::text[], $8::text[], $9::text[], $10::timestamptz[])"
        " AS u(id, name, street, postcode, city, country, vat, peppol, event, at)"
        " ON CONFLICT (partner_id) DO UPDATE SET legal_name = EXCLUDED.legal_name,"
        " street = EXCLUDED.street, postcode = EXCLUDED.postcode, city = EXCLUDED.city,"
        " country = EXCLUDED.country, vat_number = EXCLUDED.vat_number,"
        " peppol_id = EXCLUDED.peppol_id, event_id = EXCLUDED.event_id,"
        " updated_at = EXCLUDED.updated_at",
        *columns(rows),
    )


def _as_json(rows: Rows) -> str:
    """A batch's rows as one JSON array of arrays, for `jsonb_array_elements($1::jsonb)`: one
    parameter instead of an array per column (asyncpg encodes those element by element, with
    type checks on each), and the events in them encoded straight into it rather than each to a
    string of its own first. Times become RFC 3339 text, read back as timestamptz exactly."""
    return _json.encode(rows).decode()


async def _listing(conn: Conn, rows: Rows) -> None:
    """New listings (id, kind, owner, material code, event, time, event id); the first of
    repeated ids wins. The body is the event without its ids and type."""
    await conn.execute(
        "INSERT INTO listings (listing_id, kind, owner_id, material_code, body, status,"
        " posted_at, updated_at, last_event_id)"
        " SELECT r->>0, r->>1, r->>2, r->>3,"
        " (r->4) - '{type,offer_id,request_id,owner_id,actor_id}'::text[],"
        " 'open', (r->>5)::timestamptz, (r->>5)::timestamptz, r->>6"
        " FROM jsonb_array_elements($1::jsonb) WITH ORDINALITY AS u(r, n) ORDER BY n"
        " ON CONFLICT (listing_id) DO NOTHING",
        _as_json(rows),
    )


async def _listing_updated(conn: Conn, rows: Rows) -> None:
    """(id, new terms, time, event id, owner): the owner's open listing takes the new terms."""
    await conn.execute(
        "UPDATE listings l SET body = jsonb_set(l.body, '{terms}', u.r->1),"
        " updated_at = (u.r->>2)::timestamptz, last_event_id = u.r->>3"
        " FROM jsonb_array_elements($1::jsonb) AS u(r)"
        " WHERE l.listing_id = u.r->>0 AND l.owner_id = u.r->>4 AND l.status = 'open'",
        _as_json(rows),
    )


async def _listing_withdrawn(conn: Conn, rows: Rows) -> None:
    """(id, time, event id, owner): the owner's listing is withdrawn."""
    await conn.execute(
        "UPDATE listings l SET status = 'withdrawn', updated_at = (u.r->>1)::timestamptz,"
        " last_event_id = u.r->>2 FROM jsonb_array_elements($1::jsonb) AS u(r)"
        " WHERE l.listing_id = u.r->>0 AND l.owner_id = u.r->>3",
        _as_json(rows),
    )


async def _notification(conn: Conn, rows: Rows) -> None:
    """Kept for the live push to resume from; a repeat (same id) changes nothing. The API's
    live push LISTENs for the partner ids of the stored ones (sent at commit)."""
    await conn.execute(
        "WITH stored AS (INSERT INTO notifications (notification_id, partner_id, kind,"
        " subject_id, body, issued_at)"
        " SELECT r->>0, r->>1, r->>2, r->>3, (r->4) - 'type', (r->>5)::timestamptz"
        " FROM jsonb_array_elements($1::jsonb) WITH ORDINALITY AS u(r, n) ORDER BY n"
        " ON CONFLICT (notification_id) DO NOTHING RETURNING seq, partner_id)"
        " SELECT pg_notify($2, partner_id) FROM stored ORDER BY seq",
        _as_json(rows),
        NOTIFY_CHANNEL,
    )


async def _consent_granted(conn: Conn, rows: Rows) -> None:
    await conn.execute(
        "INSERT INTO consents (partner_id, facilitator_id, status, note, granted_at, updated_at)"
        " SELECT id, facilitator, 'granted', note, at, at FROM unnest($1::text[], $2::text[],"
        " $3::text[], $4::timestamptz[]) WITH ORDINALITY AS u(id, facilitator, note, at, n)"
        " ORDER BY n"
        " ON CONFLICT (partner_id, facilitator_id) DO UPDATE SET status = 'granted',"
        " note = EXCLUDED.note, granted_at = EXCLUDED.granted_at, revoked_at = NULL,"
        " updated_at = EXCLUDED.updated_at",
        *columns(rows),
    )


async def _consent_revoked(conn: Conn, rows: Rows) -> None:
    await conn.execute(
        "UPDATE consents c SET status = 'revoked', revoked_at = u.at, updated_at = u.at"
        " FROM unnest($1::text[], $2::text[], $3::timestamptz[]) AS u(id, facilitator, at)"
        " WHERE c.partner_id = u.id AND c.facilitator_id = u.facilitator"
        " AND c.status = 'granted'",
        *columns(rows),
    )


async def _nudge(conn: Conn, rows: Rows) -> None:
    await conn.execute(
        "INSERT INTO nudges (event_id, listing_id, partner_id, facilitator_id, message,"
        " nudged_at) SELECT id, listing, partner, facilitator, message, at FROM unnest("
        "$1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::timestamptz[])"
        " WITH ORDINALITY AS u(id, listing, partner, facilitator, message, at, n) ORDER BY n"
        " ON CONFLICT DO NOTHING",
        *columns(rows),
    )


async def _delivery(conn: Conn, rows: Rows) -> None:
    await conn.execute(
        "INSERT INTO deliveries (delivery_key, match_id, delivery_id, material_code,"
        " seller_id, buyer_id, carrier_id, confirmed_by, confirmed_as, note, delivered_at)"
        " SELECT key, match, delivery, code, seller, buyer, carrier, confirmed_by, confirmed_as,"
        " note, at"
        " FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],"
        " $7::text[], $8::text[], $9::text[], $10::text[], $11::timestamptz[]) WITH ORDINALITY"
        " AS u(key, match, delivery, code, seller, buyer, carrier, confirmed_by, confirmed_as,"
        " note, at, n)"
        " ORDER BY n ON CONFLICT (delivery_key) DO NOTHING",
        *columns(rows),
    )


async def _feedback_given(conn: Conn, rows: Rows) -> None:
    await conn.execute(
        "INSERT INTO feedback (feedback_id, delivery_key, match_id, partner_id, side,"
        " rating, reason, comment, given_at)"
        " SELECT id, key, match, partner, side, rating, reason, comment, at FROM unnest("
        "$1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::smallint[], $7::text[],"
        " $8::text[], $9::timestamptz[]) WITH ORDINALITY"
        " AS u(id, key, match, partner, side, rating, reason, comment, at, n) ORDER BY n"
        " ON CONFLICT DO NOTHING",
        *columns(rows),
    )


async def _match(conn: Conn, rows: Rows) -> None:
    """(id, material code, seller, buyer, event, time): new proposals, the first of repeated
    ids wins."""
    await conn.execute(
        "INSERT INTO matches (match_id, material_code, seller_id, buyer_id, body, status,"
        " proposed_at, updated_at)"
        " SELECT r->>0, r->>1, r->>2, r->>3, (r->4) - 'type', 'proposed',"
        " (r->>5)::timestamptz, (r->>5)::timestamptz"
        " FROM jsonb_array_elements($1::jsonb) WITH ORDINALITY AS u(r, n)"
        " ORDER BY n ON CONFLICT (match_id) DO NOTHING",
        _as_json(rows),
    )


async def _match_answer(conn: Conn, rows: Rows) -> None:
    await conn.execute(
        "UPDATE matches m SET answers = m.answers || jsonb_build_object(u.partner, u.answer),"
        " updated_at = u.at FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[])"
        " AS u(id, partner, answer, at)"
        " WHERE m.match_id = u.id AND u.partner IN (m.seller_id, m.buyer_id)",
        *columns(rows),
    )


async def _match_status(conn: Conn, rows: Rows) -> None:
    await conn.execute(
        "UPDATE matches m SET status = u.status, updated_at = u.at"
        " FROM unnest($1::text[], $2::text[], $3::timestamptz[]) AS u(id, status, at)"
        " WHERE m.match_id = u.id",
        *columns(rows),
    )


async def _match_transport(conn: Conn, rows: Rows) -> None:
    """Merges each row's fields (match id, fields, time) into the match's transport view,
    unless the job is already awarded."""
    await conn.execute(
        "UPDATE matches m SET transport = COALESCE(m.transport, '{}'::jsonb) || u.fields::jsonb,"
        " updated_at = u.at"
        " FROM unnest($1::text[], $2::text[], $3::timestamptz[]) AS u(id, fields, at)"
        " WHERE m.match_id = u.id AND (m.transport->>'status') IS DISTINCT FROM 'awarded'",
        *columns(rows),
    )


async def _job(conn: Conn, rows: Rows) -> None:
    """The jobs' rows, with any outcome of their auctions that came first (`_outcome_waits`)
    applied as it would have been after the job."""
    await conn.execute(
        "INSERT INTO jobs (job_id, match_id, body, status, bidding_deadline, created_at,"
        " updated_at) SELECT id, match, body::jsonb - 'type', 'open', deadline, at, at"
        " FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[], $5::timestamptz[])"
        " WITH ORDINALITY AS u(id, match, body, deadline, at, n) ORDER BY n"
        " ON CONFLICT (job_id) DO NOTHING",
        *columns([r[:5] for r in rows]),
    )
    waited = await conn.fetch(
        "WITH w AS (DELETE FROM job_outcomes_waiting WHERE job_id = ANY($1::text[])"
        " RETURNING *) UPDATE jobs j SET status = w.status, winner_id = w.winner_id,"
        " outcome_reason = w.outcome_reason,"
        " bidding_deadline = COALESCE(w.bidding_deadline, j.bidding_deadline), updated_at = w.at"
        " FROM w WHERE j.job_id = w.job_id RETURNING w.job_id, w.fields",
        [r[0] for r in rows],
    )
    # A failure that came first is merged into the match's transport view after the job's own
    # fields, as it would have been after the job (an award set that view itself).
    later = {r["job_id"]: r["fields"] for r in waited}
    await _match_transport(
        conn,
        [(match, _merged(opened, later.get(job)), at) for job, match, _, _, at, opened in rows],
    )


def _merged(fields: str, later: str | None) -> str:
    if later is None:
        return fields
    return orjson.dumps(orjson.loads(fields) | orjson.loads(later)).decode()


async def _outcome_waits(conn: Conn, rows: Rows) -> None:
    """Outcomes (job id, status, winner, reason, new deadline, transport fields, time) of jobs
    that have no row yet: the job travels on logistics.jobs and its outcome on logistics.awards,
    with no order between the two topics. Each waits, as the columns it sets on the job's row,
    until `_job` applies it; a later outcome of the same job replaces what an earlier one set,
    as the updates of the job's row would (a failure keeps the winner, an award clears the
    reason)."""
    await conn.execute(
        "INSERT INTO job_outcomes_waiting AS w (job_id, status, winner_id, outcome_reason,"
        " bidding_deadline, fields, at)"
        " SELECT id, status, winner, reason, deadline, fields::jsonb, at FROM unnest($1::text[],"
        " $2::text[], $3::text[], $4::text[], $5::timestamptz[], $6::text[], $7::timestamptz[])"
        " AS u(id, status, winner, reason, deadline, fields, at)"
        " WHERE NOT EXISTS (SELECT 1 FROM jobs j WHERE j.job_id = u.id)"
        " ON CONFLICT (job_id) DO UPDATE SET status = EXCLUDED.status,"
        " winner_id = CASE WHEN EXCLUDED.status = 'awarded' THEN EXCLUDED.winner_id"
        " ELSE w.winner_id END, outcome_reason = EXCLUDED.outcome_reason,"
        " bidding_deadline = COALESCE(EXCLUDED.bidding_deadline, w.bidding_deadline),"
        " fields = CASE WHEN EXCLUDED.fields IS NULL THEN NULL"
        " ELSE COALESCE(w.fields, '{}'::jsonb) || EXCLUDED.fields END, at = EXCLUDED.at",
        *columns(rows),
    )


async def _quote(conn: Conn, rows: Rows) -> None:
    # The auctioneer's refusal of this very submission may have been projected first (it
    # travels on logistics.awards); then the refusal stands. Insert-then-update is the upsert
    # of one quote: the update leaves a row it just inserted as it is.
    args = columns(rows)
    await conn.execute(
        "INSERT INTO quotes (quote_id, job_id, carrier_id, body, status, updated_at)"
        " SELECT id, job, carrier, body::jsonb - 'type' - 'coverage', 'active', at"
        " FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::timestamptz[],"
        " $6::text[]) WITH ORDINALITY AS u(id, job, carrier, body, at, event_id, n)"
        " ORDER BY n ON CONFLICT (quote_id) DO NOTHING",
        *args,
    )
    await conn.execute(
        "UPDATE quotes q SET body = u.body::jsonb - 'type' - 'coverage',"
        " status = CASE WHEN q.refusal->>'submission_id' = u.event_id THEN q.status"
        " ELSE 'active' END,"
        " refusal = CASE WHEN q.refusal->>'submission_id' = u.event_id THEN q.refusal END,"
        " updated_at = u.at"
        " FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::timestamptz[],"
        " $6::text[]) AS u(id, job, carrier, body, at, event_id)"
        " WHERE q.quote_id = u.id AND q.carrier_id = u.carrier",
        *args,
    )


async def _quote_withdrawn(conn: Conn, rows: Rows) -> None:
    await conn.execute(
        "UPDATE quotes q SET status = 'withdrawn', updated_at = u.at"
        " FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::text[])"
        " AS u(id, carrier, at, event_id)"
        " WHERE q.quote_id = u.id AND q.carrier_id = u.carrier"
        " AND (q.refusal->>'submission_id') IS DISTINCT FROM u.event_id",
        *columns(rows),
    )


async def _quote_refused(conn: Conn, rows: Rows) -> None:
    await conn.execute(
        "INSERT INTO quotes (quote_id, job_id, carrier_id, body, status, refusal, updated_at)"
        " SELECT id, job, carrier, '{}'::jsonb, status, refusal::jsonb, at FROM unnest("
        "$1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::timestamptz[])"
        " WITH ORDINALITY AS u(id, job, carrier, status, refusal, at, n) ORDER BY n"
        " ON CONFLICT (quote_id) DO UPDATE SET status = EXCLUDED.status,"
        " refusal = EXCLUDED.refusal, updated_at = EXCLUDED.updated_at"
        " WHERE quotes.carrier_id = EXCLUDED.carrier_id",
        *columns(rows),
    )


async def _reserve(conn: Conn, rows: Rows) -> None:
    await conn.execute(
        "UPDATE matches m SET transport = jsonb_set(COALESCE(m.transport, '{}'::jsonb),"
        " '{reserves}', COALESCE(m.transport->'reserves', '{}'::jsonb)"
        " || jsonb_build_object(u.partner, u.price::jsonb)), updated_at = u.at"
        " FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[])"
        " AS u(id, partner, price, at) WHERE m.match_id = u.id",
        *columns(rows),
    )


async def _award(conn: Conn, rows: Rows) -> None:
    awards: list[tuple[TransportAwarded, Any]] = [(e, at) for e, at in rows]
    await conn.execute(
        "UPDATE jobs j SET status = 'awarded', winner_id = u.winner, outcome_reason = NULL,"
        " updated_at = u.at FROM unnest($1::text[], $2::text[], $3::timestamptz[])"
        " AS u(id, winner, at) WHERE j.job_id = u.id",
        *columns([(e.job_id, e.carrier_id, at) for e, at in awards]),
    )
    await _outcome_waits(
        conn, [(e.job_id, "awarded", e.carrier_id, None, None, None, at) for e, at in awards]
    )
    await conn.execute(
        "UPDATE quotes q SET outcome = CASE WHEN q.quote_id = u.quote THEN 'won' ELSE 'lost' END"
        " FROM unnest($1::text[], $2::text[]) AS u(job, quote)"
        " WHERE q.job_id = u.job AND q.status <> 'rejected'",
        *columns([(e.job_id, e.quote_id) for e, _ in awards]),
    )
    await _match_awarded(conn, awards)


async def _auction_failed(conn: Conn, rows: Rows) -> None:
    # The failure's reason, then the job open again until the new deadline or failed: one
    # update of the job's row, as the two in a row would leave it.
    await conn.execute(
        "UPDATE jobs j SET outcome_reason = u.reason, status = u.status,"
        " bidding_deadline = CASE WHEN u.reopened IS NULL THEN j.bidding_deadline"
        " ELSE u.reopened END, updated_at = u.at"
        " FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[], $5::timestamptz[])"
        " AS u(id, reason, status, reopened, at) WHERE j.job_id = u.id",
        *columns(
            [
                (job, reason, status, reopened, at)
                for job, _, reason, status, reopened, at, _ in rows
            ]
        ),
    )
    await _outcome_waits(
        conn,
        [
            (job, status, None, reason, reopened, fields, at)
            for job, _, reason, status, reopened, at, fields in rows
        ],
    )
    await _match_transport(conn, [(match, fields, at) for _, match, _, _, _, at, fields in rows])


async def _match_awarded(conn: Conn, awards: list[tuple[TransportAwarded, Any]]) -> None:
    """The match's delivered price (per tonne) and transport CO2e switch from the operator's
    estimate to the winning quote: delivered = estimate - estimated transport per t + quoted
    transport per t."""
    rows = await conn.fetch(
        "SELECT match_id, body, transport FROM matches WHERE match_id = ANY($1::text[]) FOR UPDATE",
        [e.match_id for e, _ in awards],
    )
    found = {r["match_id"]: r for r in rows}
    changes: list[tuple[str, str, str, Any]] = []
    for event, at in awards:
        row = found.get(event.match_id)
        if row is None:
            continue
        transport = orjson.loads(row["transport"]) if row["transport"] else {}
        if transport.get("status") == "awarded":
            continue
        body = orjson.loads(row["body"])
        estimate, weight = event.estimated_price, event.weight_t
        delivered = body.get("delivered_price")
        if (
            delivered is not None
            and estimate is not None
            and weight
            and delivered.get("currency") == event.price.currency == estimate.currency
        ):
            per_t = delivered["amount"] + (event.price.amount - estimate.amount) / weight
            body["delivered_price"] = {"amount": round(per_t, 2), "currency": event.price.currency}
            body["delivered_price_source"] = "winning quote"
        body["transport_co2e_kg"] = event.co2e_kg
        transport |= {
            "job_id": event.job_id,
            "status": "awarded",
            "carrier_id": event.carrier_id,
            "quote_id": event.quote_id,
            "price": msgspec.to_builtins(event.price),
            "co2e_kg": event.co2e_kg,
            "vehicle": event.vehicle,
            "pickup_at": event.pickup_at.isoformat() if event.pickup_at else None,
            "estimated_price": msgspec.to_builtins(estimate),
            "estimated_co2e_kg": event.estimated_co2e_kg,
        }
        changes.append(
            (event.match_id, orjson.dumps(body).decode(), orjson.dumps(transport).decode(), at)
        )
    if changes:
        await conn.execute(
            "UPDATE matches m SET body = u.body::jsonb, transport = u.transport::jsonb,"
            " updated_at = u.at FROM unnest($1::text[], $2::text[], $3::text[],"
            " $4::timestamptz[]) AS u(id, body, transport, at) WHERE m.match_id = u.id",
            *columns(changes),
        )


_APPLY: dict[str, Callable[[Conn, Rows], Awaitable[None]]] = {
    "partner": _partner,
    "partner_updated": _partner_updated,
    "carrier": _carrier,
    "legal": _legal,
    "listing": _listing,
    "listing_updated": _listing_updated,
    "listing_withdrawn": _listing_withdrawn,
    "notification": _notification,
    "consent_granted": _consent_granted,
    "consent_revoked": _consent_revoked,
    "nudge": _nudge,
    "delivery": _delivery,
    "feedback": _feedback_given,
    "match": _match,
    "match_answer": _match_answer,
    "match_status": _match_status,
    "job": _job,
    "quote": _quote,
    "quote_withdrawn": _quote_withdrawn,
    "quote_rejected": _quote_refused,
    "reserve": _reserve,
    "award": _award,
    "auction_failed": _auction_failed,
}
