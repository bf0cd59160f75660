"""Impact analytics: the facts the association reports on, kept in PostgreSQL from the event
streams (offers and requests posted, proposals and their outcome, jobs, bids and awards, the
partners' regions and sectors). KPIs are read from these facts by marketplace/kpis.py.

`fact` is the one mapping from an event to its fact; the consumer applies it to the live topics
(`record_facts`, a batch at a time, with one statement per kind of fact and wave: see
marketplace/runtime/batching.py) and `marketplace report` to the audit log, so both count
alike."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any

from marketplace.core.feedback import delivery_key
from marketplace.core.units import IncompatibleUnits, to_tonnes
from marketplace.db import Conn
from marketplace.events import Decoded
from marketplace.logs import get_logger
from marketplace.runtime import Transaction
from marketplace.runtime.batching import Step, columns, waves
from marketplace.runtime.decoding import decode_or_dead_letter
from marketplace.translate.auction import job_id_for
from schemas import common, topics
from schemas import deals as dl
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
    # The carriers' delivery confirmations (#22): the weight delivered counts, not the planned.
    topics.DEALS,
]
log = get_logger(__name__)


def tonnes(
    q: common.Quantity, density: float | None, mass_per_piece: float | None = None
) -> float | None:
    try:
        return to_tonnes(q.amount, q.unit, density, mass_per_piece)
    except IncompatibleUnits:
        return None


def fact(decoded: Decoded) -> Step | None:
    """What one event adds to the fact tables (None: nothing). Every fact is idempotent: a
    replayed event changes nothing."""
    e, at = decoded.event, decoded.envelope.time
    match e:
        case ps.PartnerRegistered():
            row: tuple[Any, ...] = (e.partner_id, e.role, e.country, e.region, e.sector)
            return Step("partner", row, (("partner", e.partner_id),), first_wins=True)
        case ps.PartnerUpdated():
            row = (e.partner_id, e.region, e.sector)
            return Step("partner_updated", row, (("partner", e.partner_id),))
        case ls.OfferPosted():
            return _listing("offer", e.offer_id, e.owner_id, e.material, e.location, e.terms, at)
        case ls.RequestPosted():
            return _listing(
                "request", e.request_id, e.owner_id, e.material, e.location, e.terms, at
            )
        case ls.OfferWithdrawn() | ls.RequestWithdrawn():
            listing_id = e.offer_id if isinstance(e, ls.OfferWithdrawn) else e.request_id
            return Step("withdrawn", (listing_id, at), (("listing", listing_id),))
        case ms.MatchProposed():
            row = (
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
            return Step("match", row, (("match", e.match_id),), first_wins=True)
        case ms.DeliveryScheduled():
            row = (e.delivery_id, e.match_id, job_id_for(e.delivery_id), e.weight_t, at)
            return Step("scheduled", row, (("scheduled", e.delivery_id),), first_wins=True)
        case ms.MatchConfirmed() | ms.MatchExpired() | ms.MatchCancelled():
            status = {
                ms.MatchConfirmed: "confirmed",
                ms.MatchExpired: "expired",
                ms.MatchCancelled: "cancelled",
            }[type(e)]
            return Step("resolved", (e.match_id, status, at), (("match", e.match_id),))
        case lg.TransportJobRequested():
            row = (e.job_id, e.match_id, at)
            return Step("job", row, (("job", e.job_id),), first_wins=True)
        case lg.QuoteSubmitted():
            row = (e.quote_id, e.job_id, e.carrier_id, at)
            return Step("quote", row, (("quote", e.quote_id),), first_wins=True)
        case lg.QuoteWithdrawn():
            return Step("quote_withdrawn", (e.quote_id, at), (("quote", e.quote_id),))
        case lg.TransportAwarded():
            row = (e.job_id, e.match_id, e.carrier_id, e.price.amount, e.co2e_kg, False, at)
            return Step("award", row, (("award", e.job_id),), first_wins=True)
        case lg.AuctionFailed() if e.reopened_until is None:
            # A failure that reopens the auction is not an outcome yet.
            row = (e.job_id, e.match_id, None, None, None, True, at)
            return Step("award", row, (("award", e.job_id),), first_wins=True)
        case dl.TransportConfirmed() if e.stage == "delivery":
            # Each confirmation is kept; the KPIs take a match's latest before a period's end.
            # With its job: a standing agreement's period counts its own job's (#22 item 3).
            row = (decoded.envelope.id, e.match_id, e.weight_t, at, e.job_id)
            return Step("delivered", row, (("delivered", decoded.envelope.id),), first_wins=True)
        case fb.MatchDelivered():
            # #11: the parties asked for feedback (seller and buyer, and the carrier if any).
            key = delivery_key(e.match_id, e.delivery_id)
            parties = len({e.seller_id, e.buyer_id} | ({e.carrier_id} if e.carrier_id else set()))
            row = (key, e.match_id, parties, at)
            return Step("delivery", row, (("delivery", key),), first_wins=True)
        case fb.FeedbackGiven():
            key = delivery_key(e.match_id, e.delivery_id)
            row = (e.feedback_id, key, e.match_id, e.partner_id, e.side, e.rating, e.reason, at)
            tokens = (("feedback", e.feedback_id), ("feedback_by", key, e.partner_id))
            return Step("feedback", row, tokens, first_wins=True)
        case _:
            return None


def _listing(
    kind: str,
    listing_id: str,
    owner: str,
    material: common.Material,
    location: common.Location,
    terms: ls.OfferTerms | ls.RequestTerms,
    at: datetime,
) -> Step:
    row = (
        listing_id,
        kind,
        owner,
        material.code,
        location.region,
        location.lat,
        location.lon,
        tonnes(terms.quantity, material.density_t_per_m3, material.mass_per_piece_t),
        at,
    )
    return Step("listing", row, (("listing", listing_id),), first_wins=True)


async def record_facts(conn: Conn, batch: Sequence[Decoded]) -> None:
    """Applies the events to the fact tables in order, a few statements per batch."""
    for wave in waves(s for d in batch if (s := fact(d)) is not None):
        for kind, rows in wave.items():
            await _APPLY[kind](conn, rows)


async def record_fact(conn: Conn, decoded: Decoded) -> None:
    """Applies one event to the fact tables; idempotent (a replayed event changes nothing)."""
    await record_facts(conn, [decoded])


# One statement per kind, its rows in the order of the log; inserts keep that order (WITH
# ORDINALITY ... ORDER BY), so that the first of repeated keys wins, as one by one.
Rows = list[tuple[Any, ...]]


def _insert(table: str, names: str, types: str, conflict: str = "") -> str:
    cols = [c.strip() for c in names.split(",")]
    arrays = ", ".join(f"${i}::{t.strip()}[]" for i, t in enumerate(types.split(","), 1))
    # Table and column names are this module's constants; the values travel as parameters.
    return (
        f"INSERT INTO {table} ({names}) SELECT {', '.join(cols)}"  # noqa: S608
        f" FROM unnest({arrays}) WITH ORDINALITY AS u({', '.join(cols)}, ord_) ORDER BY ord_"
        f" ON CONFLICT {conflict}DO NOTHING"
    )


_PARTNER = _insert(
    "analytics_partners",
    "partner_id, role, country, region, sector",
    "text, text, text, text, text",
    "(partner_id) ",
)
LISTING_INSERT = _insert(
    "analytics_listings",
    "listing_id, kind, owner_id, code, region, lat, lon, tonnes, posted_at",
    "text, text, text, text, text, float8, float8, float8, timestamptz",
    "(listing_id) ",
)
_MATCH = _insert(
    "analytics_matches",
    "match_id, offer_id, request_id, seller_id, buyer_id, code, tonnes, price, currency,"
    " est_transport_kg, saved_kg, proposed_at, standing",
    "text, text, text, text, text, text, float8, float8, text, float8, float8, timestamptz, bool",
    "(match_id) ",
)
_SCHEDULED = _insert(
    "analytics_scheduled",
    "delivery_id, match_id, job_id, tonnes, scheduled_at",
    "text, text, text, float8, timestamptz",
    "(delivery_id) ",
)
_JOB = _insert(
    "analytics_jobs", "job_id, match_id, posted_at", "text, text, timestamptz", "(job_id) "
)
_QUOTE = _insert(
    "analytics_quotes",
    "quote_id, job_id, carrier_id, submitted_at",
    "text, text, text, timestamptz",
    "(quote_id) ",
)
_AWARD = _insert(
    "analytics_awards",
    "job_id, match_id, carrier_id, price, co2e_kg, failed, decided_at",
    "text, text, text, float8, float8, bool, timestamptz",
    "(job_id) ",
)
_DELIVERY = _insert(
    "analytics_deliveries",
    "delivery_key, match_id, parties, delivered_at",
    "text, text, int2, timestamptz",
    "(delivery_key) ",
)
_DELIVERED = _insert(
    "analytics_delivered",
    "event_id, match_id, weight_t, delivered_at, job_id",
    "text, text, float8, timestamptz, text",
    "(event_id) ",
)
_FEEDBACK = _insert(
    "analytics_feedback",
    "feedback_id, delivery_key, match_id, partner_id, side, rating, reason, given_at",
    "text, text, text, text, text, int2, text, timestamptz",
)


def _statement(sql: str) -> Callable[[Conn, Rows], Awaitable[None]]:
    async def apply(conn: Conn, rows: Rows) -> None:
        await conn.execute(sql, *columns(rows))

    return apply


_APPLY: dict[str, Callable[[Conn, Rows], Awaitable[None]]] = {
    "partner": _statement(_PARTNER),
    "partner_updated": _statement(
        "UPDATE analytics_partners p SET region = u.region, sector = u.sector"
        " FROM unnest($1::text[], $2::text[], $3::text[]) AS u(id, region, sector)"
        " WHERE p.partner_id = u.id"
    ),
    "listing": _statement(LISTING_INSERT),
    "withdrawn": _statement(
        "UPDATE analytics_listings l SET withdrawn_at = u.at"
        " FROM unnest($1::text[], $2::timestamptz[]) AS u(id, at)"
        " WHERE l.listing_id = u.id AND l.withdrawn_at IS NULL"
    ),
    "match": _statement(_MATCH),
    "scheduled": _statement(_SCHEDULED),
    "resolved": _statement(
        "UPDATE analytics_matches m SET status = u.status, resolved_at = u.at"
        " FROM unnest($1::text[], $2::text[], $3::timestamptz[]) AS u(id, status, at)"
        " WHERE m.match_id = u.id AND m.status = 'proposed'"
    ),
    "job": _statement(_JOB),
    "quote": _statement(_QUOTE),
    "quote_withdrawn": _statement(
        "UPDATE analytics_quotes q SET withdrawn_at = u.at"
        " FROM unnest($1::text[], $2::timestamptz[]) AS u(id, at)"
        " WHERE q.quote_id = u.id AND q.withdrawn_at IS NULL"
    ),
    "award": _statement(_AWARD),
    "delivery": _statement(_DELIVERY),
    "delivered": _statement(_DELIVERED),
    "feedback": _statement(_FEEDBACK),
}


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
        decoded = [decode_or_dead_letter(tx, self.group_id, record) for record in records]
        await record_facts(tx.conn, [d for d in decoded if d is not None])
