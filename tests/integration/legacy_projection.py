"""The projector's and the analytics consumer's per-record paths as they were before batches
were applied with set-based statements (issue #18), kept only for the equivalence test
(test_batched_projection.py) and copied unchanged: one statement (or a few) per event."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec
import orjson

from marketplace.core.feedback import delivery_key
from marketplace.core.units import IncompatibleUnits, to_tonnes
from marketplace.db import NOTIFY_CHANNEL, Conn
from marketplace.events import Decoded
from marketplace.translate.auction import job_id_for
from schemas import common
from schemas import feedback as fb
from schemas import listings as ls
from schemas import logistics as lg
from schemas import matches as ms
from schemas import partners as ps
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
    NotificationIssued,
    PartnerRegistered,
    PartnerUpdated,
)

_json = msgspec.json.Encoder()


# --- consumers/projector.py before #18 ---


async def project(conn: Conn, decoded: Decoded) -> None:
    event, at, event_id = decoded.event, decoded.envelope.time, decoded.envelope.id
    match event:
        case PartnerRegistered():
            await conn.execute(
                "INSERT INTO partners (partner_id, name, role, country, region, sector,"
                " registered_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $7)"
                " ON CONFLICT (partner_id) DO NOTHING",
                event.partner_id,
                event.name,
                event.role,
                event.country,
                event.region,
                event.sector,
                at,
            )
        case PartnerUpdated():
            await conn.execute(
                "UPDATE partners SET name = $2, region = $3, sector = $4, active = $5,"
                " updated_at = $6 WHERE partner_id = $1",
                event.partner_id,
                event.name,
                event.region,
                event.sector,
                event.active,
                at,
            )
        case CarrierCapabilitiesDeclared():
            body = _json.encode(event).decode()
            await conn.execute(
                "INSERT INTO carriers (partner_id, capabilities, updated_at)"
                " VALUES ($1, $2::jsonb - 'type' - 'actor_id' - 'partner_id', $3)"
                " ON CONFLICT (partner_id) DO UPDATE"
                " SET capabilities = EXCLUDED.capabilities, updated_at = EXCLUDED.updated_at",
                event.partner_id,
                body,
                at,
            )
        case OfferPosted() | RequestPosted():
            kind = "offer" if isinstance(event, OfferPosted) else "request"
            listing_id = event.offer_id if isinstance(event, OfferPosted) else event.request_id
            body = _json.encode(event).decode()
            await conn.execute(
                "INSERT INTO listings (listing_id, kind, owner_id, material_code, body, status,"
                " posted_at, updated_at, last_event_id)"
                " VALUES ($1, $2, $3, $4,"
                " $5::jsonb - 'type' - 'offer_id' - 'request_id' - 'owner_id' - 'actor_id',"
                " 'open', $6, $6, $7) ON CONFLICT (listing_id) DO NOTHING",
                listing_id,
                kind,
                event.owner_id,
                event.material.code,
                body,
                at,
                event_id,
            )
        case OfferUpdated() | RequestUpdated():
            listing_id = event.offer_id if isinstance(event, OfferUpdated) else event.request_id
            terms = _json.encode(event.terms).decode()
            await conn.execute(
                "UPDATE listings SET body = jsonb_set(body, '{terms}', $2::jsonb),"
                " updated_at = $3, last_event_id = $4"
                " WHERE listing_id = $1 AND owner_id = $5 AND status = 'open'",
                listing_id,
                terms,
                at,
                event_id,
                event.owner_id,
            )
        case OfferWithdrawn() | RequestWithdrawn():
            listing_id = event.offer_id if isinstance(event, OfferWithdrawn) else event.request_id
            await conn.execute(
                "UPDATE listings SET status = 'withdrawn', updated_at = $2, last_event_id = $3"
                " WHERE listing_id = $1 AND owner_id = $4",
                listing_id,
                at,
                event_id,
                event.owner_id,
            )
        case NotificationIssued():
            await _notification(conn, event, at)
        case ConsentGranted() | ConsentRevoked() | ListingNudged():
            await project_facilitation(conn, decoded)
        case MatchDelivered() | FeedbackGiven():
            await project_feedback(conn, decoded)
        case _:
            await project_trade(conn, decoded)


async def project_facilitation(conn: Conn, decoded: Decoded) -> None:
    """Consents (one row per SME and facilitator, the latest event wins: they share the SME's
    partition, so they arrive in order) and nudges (#11)."""
    event, at, event_id = decoded.event, decoded.envelope.time, decoded.envelope.id
    match event:
        case ConsentGranted():
            await conn.execute(
                "INSERT INTO consents (partner_id, facilitator_id, status, note, granted_at,"
                " updated_at) VALUES ($1, $2, 'granted', $3, $4, $4)"
                " ON CONFLICT (partner_id, facilitator_id) DO UPDATE SET status = 'granted',"
                " note = EXCLUDED.note, granted_at = EXCLUDED.granted_at, revoked_at = NULL,"
                " updated_at = EXCLUDED.updated_at",
                event.partner_id,
                event.facilitator_id,
                event.note,
                at,
            )
        case ConsentRevoked():
            await conn.execute(
                "UPDATE consents SET status = 'revoked', revoked_at = $3, updated_at = $3"
                " WHERE partner_id = $1 AND facilitator_id = $2 AND status = 'granted'",
                event.partner_id,
                event.facilitator_id,
                at,
            )
        case ListingNudged():
            await conn.execute(
                "INSERT INTO nudges (event_id, listing_id, partner_id, facilitator_id, message,"
                " nudged_at) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
                event_id,
                event.listing_id,
                event.partner_id,
                event.facilitator_id,
                event.message,
                at,
            )
        case _:
            pass


async def project_feedback(conn: Conn, decoded: Decoded) -> None:
    """Deliveries and feedback (#11): the first of each in the log counts, a later one for the
    same delivery (or the same party and delivery) changes nothing."""
    event, at = decoded.event, decoded.envelope.time
    match event:
        case MatchDelivered():
            await conn.execute(
                "INSERT INTO deliveries (delivery_key, match_id, delivery_id, material_code,"
                " seller_id, buyer_id, carrier_id, confirmed_by, confirmed_as, note,"
                " delivered_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
                " ON CONFLICT (delivery_key) DO NOTHING",
                delivery_key(event.match_id, event.delivery_id),
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
        case FeedbackGiven():
            await conn.execute(
                "INSERT INTO feedback (feedback_id, delivery_key, match_id, partner_id, side,"
                " rating, reason, comment, given_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
                " ON CONFLICT DO NOTHING",
                event.feedback_id,
                delivery_key(event.match_id, event.delivery_id),
                event.match_id,
                event.partner_id,
                event.side,
                event.rating,
                event.reason,
                event.comment,
                at,
            )
        case _:
            pass


async def _notification(conn: Conn, event: NotificationIssued, at: Any) -> None:
    """Kept for the live push to resume from; a repeat (same id) changes nothing."""
    stored = await conn.fetchval(
        "INSERT INTO notifications (notification_id, partner_id, kind, subject_id, body,"
        " issued_at) VALUES ($1, $2, $3, $4, $5::jsonb - 'type', $6)"
        " ON CONFLICT (notification_id) DO NOTHING RETURNING seq",
        event.notification_id,
        event.partner_id,
        event.kind,
        event.subject_id,
        _json.encode(event).decode(),
        at,
    )
    if stored is not None:
        await conn.execute("SELECT pg_notify($1, $2)", NOTIFY_CHANNEL, event.partner_id)


async def project_trade(conn: Conn, decoded: Decoded) -> None:
    """Matches, answers, transport jobs, quotes and awards."""
    event, at, event_id = decoded.event, decoded.envelope.time, decoded.envelope.id
    match event:
        case MatchProposed():
            await conn.execute(
                "INSERT INTO matches (match_id, material_code, seller_id, buyer_id, body, status,"
                " proposed_at, updated_at) VALUES ($1, $2, $3, $4, $5::jsonb - 'type',"
                " 'proposed', $6, $6) ON CONFLICT (match_id) DO NOTHING",
                event.match_id,
                event.material_code,
                event.seller_id,
                event.buyer_id,
                _json.encode(event).decode(),
                at,
            )
        case MatchAccepted() | MatchDeclined():
            answer = "accepted" if isinstance(event, MatchAccepted) else "declined"
            await conn.execute(
                "UPDATE matches SET answers = answers || jsonb_build_object($2::text, $3::text),"
                " updated_at = $4 WHERE match_id = $1 AND $2 IN (seller_id, buyer_id)",
                event.match_id,
                event.partner_id,
                answer,
                at,
            )
        case AgreementEnded():
            await conn.execute(
                "UPDATE matches SET status = 'ended', updated_at = $2 WHERE match_id = $1",
                event.match_id,
                at,
            )
        case MatchConfirmed() | MatchExpired() | MatchCancelled():
            status = {
                MatchConfirmed: "confirmed",
                MatchExpired: "expired",
                MatchCancelled: "cancelled",
            }[type(event)]
            await conn.execute(
                "UPDATE matches SET status = $2, updated_at = $3 WHERE match_id = $1",
                event.match_id,
                status,
                at,
            )
        case TransportJobRequested():
            await conn.execute(
                "INSERT INTO jobs (job_id, match_id, body, status, bidding_deadline, created_at,"
                " updated_at) VALUES ($1, $2, $3::jsonb - 'type', 'open', $4, $5, $5)"
                " ON CONFLICT (job_id) DO NOTHING",
                event.job_id,
                event.match_id,
                _json.encode(event).decode(),
                event.bidding_deadline,
                at,
            )
            # (Since stop 27 as the projector: an outcome of the auction that came first waits
            # in job_outcomes_waiting and is applied now.)
            waiting = await conn.fetchrow(
                "DELETE FROM job_outcomes_waiting WHERE job_id = $1 RETURNING *", event.job_id
            )
            opened = _job_opened(event)
            if waiting is not None:
                await conn.execute(
                    "UPDATE jobs SET status = $2, winner_id = $3, outcome_reason = $4,"
                    " bidding_deadline = COALESCE($5, bidding_deadline), updated_at = $6"
                    " WHERE job_id = $1",
                    event.job_id,
                    waiting["status"],
                    waiting["winner_id"],
                    waiting["outcome_reason"],
                    waiting["bidding_deadline"],
                    waiting["at"],
                )
                if waiting["fields"] is not None:
                    opened |= orjson.loads(waiting["fields"])
            await _match_transport(conn, event.match_id, opened, at)
        case QuoteSubmitted():
            # The auctioneer's refusal of this very submission may have been projected first
            # (it travels on logistics.awards); then the refusal stands.
            await conn.execute(
                "INSERT INTO quotes (quote_id, job_id, carrier_id, body, status, updated_at)"
                " VALUES ($1, $2, $3, $4::jsonb - 'type' - 'coverage', 'active', $5)"
                " ON CONFLICT (quote_id) DO UPDATE SET body = EXCLUDED.body,"
                " status = CASE WHEN quotes.refusal->>'submission_id' = $6 THEN quotes.status"
                " ELSE 'active' END,"
                " refusal = CASE WHEN quotes.refusal->>'submission_id' = $6 THEN quotes.refusal"
                " END, updated_at = EXCLUDED.updated_at"
                " WHERE quotes.carrier_id = EXCLUDED.carrier_id",
                event.quote_id,
                event.job_id,
                event.carrier_id,
                _json.encode(event).decode(),
                at,
                event_id,
            )
        case QuoteWithdrawn():
            await conn.execute(
                "UPDATE quotes SET status = 'withdrawn', updated_at = $3"
                " WHERE quote_id = $1 AND carrier_id = $2"
                " AND (refusal->>'submission_id') IS DISTINCT FROM $4",
                event.quote_id,
                event.carrier_id,
                at,
                event_id,
            )
        case QuoteRejected():
            await _quote_rejected(conn, event, at)
        case ReservePriceSet():
            price = _json.encode(event.price).decode()
            await conn.execute(
                "UPDATE matches SET transport = jsonb_set(COALESCE(transport, '{}'::jsonb),"
                " '{reserves}', COALESCE(transport->'reserves', '{}'::jsonb)"
                " || jsonb_build_object($2::text, $3::jsonb)), updated_at = $4"
                " WHERE match_id = $1",
                event.match_id,
                event.partner_id,
                price,
                at,
            )
        case TransportAwarded():
            if not await _job_known(conn, event.job_id):
                await conn.execute(
                    "INSERT INTO job_outcomes_waiting (job_id, status, winner_id, at)"
                    " VALUES ($1, 'awarded', $2, $3) ON CONFLICT (job_id) DO UPDATE"
                    " SET status = 'awarded', winner_id = $2, outcome_reason = NULL,"
                    " fields = NULL, at = $3",
                    event.job_id,
                    event.carrier_id,
                    at,
                )
            await conn.execute(
                "UPDATE jobs SET status = 'awarded', winner_id = $2, outcome_reason = NULL,"
                " updated_at = $3 WHERE job_id = $1",
                event.job_id,
                event.carrier_id,
                at,
            )
            await conn.execute(
                "UPDATE quotes SET outcome = CASE WHEN quote_id = $2 THEN 'won' ELSE 'lost' END"
                " WHERE job_id = $1 AND status <> 'rejected'",
                event.job_id,
                event.quote_id,
            )
            await _match_awarded(conn, event, at)
        case AuctionFailed():
            status = "open" if event.reopened_until is not None else "failed"
            deadline = event.reopened_until.isoformat() if event.reopened_until else None
            fields = {"status": status, "reason": event.reason} | (
                {"bidding_deadline": deadline} if deadline else {}
            )
            if not await _job_known(conn, event.job_id):
                await conn.execute(
                    "INSERT INTO job_outcomes_waiting (job_id, status, outcome_reason,"
                    " bidding_deadline, fields, at) VALUES ($1, $2, $3, $4, $5::jsonb, $6)"
                    " ON CONFLICT (job_id) DO UPDATE SET status = $2, outcome_reason = $3,"
                    " bidding_deadline = COALESCE($4, job_outcomes_waiting.bidding_deadline),"
                    " fields = COALESCE(job_outcomes_waiting.fields, '{}'::jsonb) || $5::jsonb,"
                    " at = $6",
                    event.job_id,
                    status,
                    event.reason,
                    event.reopened_until,
                    _json.encode(fields).decode(),
                    at,
                )
            await conn.execute(
                "UPDATE jobs SET outcome_reason = $2 WHERE job_id = $1", event.job_id, event.reason
            )
            await _match_transport(conn, event.match_id, fields, at)
            if event.reopened_until is not None:
                await conn.execute(
                    "UPDATE jobs SET status = 'open', bidding_deadline = $2, updated_at = $3"
                    " WHERE job_id = $1",
                    event.job_id,
                    event.reopened_until,
                    at,
                )
            else:
                await conn.execute(
                    "UPDATE jobs SET status = 'failed', updated_at = $2 WHERE job_id = $1",
                    event.job_id,
                    at,
                )
        case _:
            pass  # timers are the matcher's and the auctioneer's business


async def _job_known(conn: Conn, job_id: str) -> bool:
    return bool(await conn.fetchval("SELECT EXISTS (SELECT 1 FROM jobs WHERE job_id = $1)", job_id))


def _job_opened(event: TransportJobRequested) -> dict[str, Any]:
    return {
        "job_id": event.job_id,
        "status": "open",
        "bidding_deadline": event.bidding_deadline.isoformat(),
        "estimated_price": msgspec.to_builtins(event.estimated_price),
        "estimated_co2e_kg": event.estimated_co2e_kg,
    }


async def _match_transport(conn: Conn, match_id: str, fields: dict[str, Any], at: Any) -> None:
    """Merges `fields` into the match's transport view, unless the job is already awarded."""
    await conn.execute(
        "UPDATE matches SET transport = COALESCE(transport, '{}'::jsonb) || $2::jsonb,"
        " updated_at = $3 WHERE match_id = $1"
        " AND (transport->>'status') IS DISTINCT FROM 'awarded'",
        match_id,
        _json.encode(fields).decode(),
        at,
    )


async def _quote_rejected(conn: Conn, event: QuoteRejected, at: Any) -> None:
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
    await conn.execute(
        "INSERT INTO quotes (quote_id, job_id, carrier_id, body, status, refusal, updated_at)"
        " VALUES ($1, $2, $3, '{}'::jsonb, $4, $5::jsonb, $6)"
        " ON CONFLICT (quote_id) DO UPDATE SET status = EXCLUDED.status,"
        " refusal = EXCLUDED.refusal, updated_at = EXCLUDED.updated_at"
        " WHERE quotes.carrier_id = EXCLUDED.carrier_id",
        event.quote_id,
        event.job_id,
        event.carrier_id,
        status,
        _json.encode(refusal).decode(),
        at,
    )


async def _match_awarded(conn: Conn, event: TransportAwarded, at: Any) -> None:
    """The match's delivered price (per tonne) and transport CO2e switch from the operator's
    estimate to the winning quote: delivered = estimate - estimated transport per t + quoted
    transport per t."""
    row = await conn.fetchrow(
        "SELECT body, transport FROM matches WHERE match_id = $1 FOR UPDATE", event.match_id
    )
    if row is None:
        return
    transport = orjson.loads(row["transport"]) if row["transport"] else {}
    if transport.get("status") == "awarded":
        return
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
    await conn.execute(
        "UPDATE matches SET body = $2::jsonb, transport = $3::jsonb, updated_at = $4"
        " WHERE match_id = $1",
        event.match_id,
        orjson.dumps(body).decode(),
        orjson.dumps(transport).decode(),
        at,
    )


# --- consumers/analytics.py before #18 ---


def tonnes(
    q: common.Quantity, density: float | None, mass_per_piece: float | None = None
) -> float | None:
    try:
        return to_tonnes(q.amount, q.unit, density, mass_per_piece)
    except IncompatibleUnits:
        return None


async def _listing(
    conn: Conn,
    kind: str,
    listing_id: str,
    owner: str,
    material: common.Material,
    location: common.Location,
    quantity: common.Quantity,
    at: datetime,
) -> None:
    await conn.execute(
        "INSERT INTO analytics_listings"
        " (listing_id, kind, owner_id, code, region, lat, lon, tonnes, posted_at)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (listing_id) DO NOTHING",
        listing_id,
        kind,
        owner,
        material.code,
        location.region,
        location.lat,
        location.lon,
        tonnes(quantity, material.density_t_per_m3, material.mass_per_piece_t),
        at,
    )


async def record_fact(conn: Conn, decoded: Decoded) -> None:
    """Applies one event to the fact tables; idempotent (a replayed event changes nothing)."""
    e, at = decoded.event, decoded.envelope.time
    match e:
        case ps.PartnerRegistered():
            await conn.execute(
                "INSERT INTO analytics_partners (partner_id, role, country, region, sector)"
                " VALUES ($1, $2, $3, $4, $5) ON CONFLICT (partner_id) DO NOTHING",
                e.partner_id,
                e.role,
                e.country,
                e.region,
                e.sector,
            )
        case ps.PartnerUpdated():
            await conn.execute(
                "UPDATE analytics_partners SET region = $2, sector = $3 WHERE partner_id = $1",
                e.partner_id,
                e.region,
                e.sector,
            )
        case ls.OfferPosted():
            await _listing(
                conn, "offer", e.offer_id, e.owner_id, e.material, e.location, e.terms.quantity, at
            )
        case ls.RequestPosted():
            await _listing(
                conn,
                "request",
                e.request_id,
                e.owner_id,
                e.material,
                e.location,
                e.terms.quantity,
                at,
            )
        case ls.OfferWithdrawn() | ls.RequestWithdrawn():
            listing_id = e.offer_id if isinstance(e, ls.OfferWithdrawn) else e.request_id
            await conn.execute(
                "UPDATE analytics_listings SET withdrawn_at = $2"
                " WHERE listing_id = $1 AND withdrawn_at IS NULL",
                listing_id,
                at,
            )
        case ms.MatchProposed():
            await conn.execute(
                "INSERT INTO analytics_matches (match_id, offer_id, request_id, seller_id,"
                " buyer_id, code, tonnes, price, currency, est_transport_kg, saved_kg,"
                " proposed_at, standing)"
                " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)"
                " ON CONFLICT (match_id) DO NOTHING",
                e.match_id,
                e.offer_id,
                e.request_id,
                e.seller_id,
                e.buyer_id,
                e.material_code,
                tonnes(e.quantity, None) or 0.0,
                e.delivered_price.amount,
                e.delivered_price.currency,
                e.transport_co2e_kg,
                e.co2e_saved_kg if e.co2e_known else None,  # unknown: left out of CO2e figures
                at,
                e.agreement is not None,
            )
        case ms.DeliveryScheduled():
            await conn.execute(
                "INSERT INTO analytics_scheduled (delivery_id, match_id, job_id, tonnes,"
                " scheduled_at) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (delivery_id) DO NOTHING",
                e.delivery_id,
                e.match_id,
                job_id_for(e.delivery_id),
                e.weight_t,
                at,
            )
        case ms.MatchConfirmed():
            await _resolve(conn, e.match_id, "confirmed", at)
        case ms.MatchExpired():
            await _resolve(conn, e.match_id, "expired", at)
        case ms.MatchCancelled():
            await _resolve(conn, e.match_id, "cancelled", at)
        case lg.TransportJobRequested():
            await conn.execute(
                "INSERT INTO analytics_jobs (job_id, match_id, posted_at) VALUES ($1, $2, $3)"
                " ON CONFLICT (job_id) DO NOTHING",
                e.job_id,
                e.match_id,
                at,
            )
        case lg.QuoteSubmitted():
            await conn.execute(
                "INSERT INTO analytics_quotes (quote_id, job_id, carrier_id, submitted_at)"
                " VALUES ($1, $2, $3, $4) ON CONFLICT (quote_id) DO NOTHING",
                e.quote_id,
                e.job_id,
                e.carrier_id,
                at,
            )
        case lg.QuoteWithdrawn():
            await conn.execute(
                "UPDATE analytics_quotes SET withdrawn_at = $2"
                " WHERE quote_id = $1 AND withdrawn_at IS NULL",
                e.quote_id,
                at,
            )
        case lg.TransportAwarded():
            await conn.execute(
                "INSERT INTO analytics_awards"
                " (job_id, match_id, carrier_id, price, co2e_kg, failed, decided_at)"
                " VALUES ($1, $2, $3, $4, $5, false, $6) ON CONFLICT (job_id) DO NOTHING",
                e.job_id,
                e.match_id,
                e.carrier_id,
                e.price.amount,
                e.co2e_kg,
                at,
            )
        case fb.MatchDelivered():
            # #11: the parties asked for feedback (seller and buyer, and the carrier if any).
            await conn.execute(
                "INSERT INTO analytics_deliveries (delivery_key, match_id, parties, delivered_at)"
                " VALUES ($1, $2, $3, $4) ON CONFLICT (delivery_key) DO NOTHING",
                delivery_key(e.match_id, e.delivery_id),
                e.match_id,
                len({e.seller_id, e.buyer_id} | ({e.carrier_id} if e.carrier_id else set())),
                at,
            )
        case fb.FeedbackGiven():
            await conn.execute(
                "INSERT INTO analytics_feedback (feedback_id, delivery_key, match_id,"
                " partner_id, side, rating, reason, given_at)"
                " VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING",
                e.feedback_id,
                delivery_key(e.match_id, e.delivery_id),
                e.match_id,
                e.partner_id,
                e.side,
                e.rating,
                e.reason,
                at,
            )
        case lg.AuctionFailed() if e.reopened_until is None:
            # A failure that reopens the auction is not an outcome yet.
            await conn.execute(
                "INSERT INTO analytics_awards (job_id, match_id, failed, decided_at)"
                " VALUES ($1, $2, true, $3) ON CONFLICT (job_id) DO NOTHING",
                e.job_id,
                e.match_id,
                at,
            )
        case _:
            pass


async def _resolve(conn: Conn, match_id: str, status: str, at: datetime) -> None:
    await conn.execute(
        "UPDATE analytics_matches SET status = $2, resolved_at = $3"
        " WHERE match_id = $1 AND status = 'proposed'",
        match_id,
        status,
        at,
    )
