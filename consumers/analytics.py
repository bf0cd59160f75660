"""Impact analytics: the facts the association reports on, kept in PostgreSQL from the event
streams (offers and requests posted, proposals and their outcome, jobs, bids and awards, the
partners' regions and sectors). KPIs are read from these facts by marketplace/kpis.py.

`record_fact` is the one mapping from an event to its fact; the consumer applies it to the live
topics and `marketplace report` applies it to the audit log, so both count alike."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from marketplace.core.feedback import delivery_key
from marketplace.core.units import IncompatibleUnits, to_tonnes
from marketplace.db import Conn
from marketplace.events import Decoded
from marketplace.logs import get_logger
from marketplace.runtime import Transaction
from marketplace.runtime.decoding import decode_or_dead_letter
from marketplace.translate.auction import job_id_for
from schemas import common, topics
from schemas import feedback as fb
from schemas import listings as ls
from schemas import logistics as lg
from schemas import matches as ms
from schemas import partners as ps

GROUP = "analytics"
TOPICS = [
    topics.REGISTRY,
    topics.LISTINGS,
    topics.MATCHES,
    topics.JOBS,
    topics.AWARDS,
]
log = get_logger(__name__)


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


class Analytics:
    def __init__(self, group_id: str = GROUP) -> None:
        self.group_id = group_id

    async def load(self, conn: Conn, topic: str, partition: int) -> None:  # noqa: ARG002
        return None  # every fact lives in the database

    async def process(
        self,
        tx: Transaction,
        state: None,  # noqa: ARG002 - stateless: every fact lives in PostgreSQL
        records: Sequence[Any],
    ) -> None:
        for record in records:
            decoded = decode_or_dead_letter(tx, self.group_id, record)
            if decoded is None:
                continue
            await record_fact(tx.conn, decoded)
