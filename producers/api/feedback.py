"""The voice of the user (#11): deliveries and the parties' feedback on them.

The buyer of a confirmed match, or the logistics firm that won its transport job, confirms that
the material arrived (`POST /v1/matches/{id}/delivered`, one period's `delivery_id` for a
standing agreement); the notifier then asks the seller, the buyer and the carrier for feedback.
Each party answers once per delivery (`POST /v1/matches/{id}/feedback`): a second answer is
refused with 409, so that a report for a closed period never changes after the fact; a
facilitator answers for an SME that consented to it (`on_behalf_of`). The
association (operators, auditors, facilitators) reads every answer and the summaries by region,
sector and reason."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import msgspec
import orjson
from aiohttp import web

from marketplace.core.feedback import (
    MatchState,
    RefusalCode,
    Refused,
    delivery_key,
    feedback_id,
    may_confirm_delivery,
    may_give_feedback,
)
from marketplace.kpis import SLICES, Slice, feedback_kpis, feedback_reasons, headline
from producers.api.auth import require_role
from producers.api.context import POOL, principal
from producers.api.facilitators import owner_for
from producers.api.impact import ASSOCIATION, _time
from producers.api.matches import acting_for
from producers.api.problems import Problem
from producers.api.writes import Ids, Write, idempotent, publish, read_body
from schemas.common import Id, LongText
from schemas.feedback import (
    FEEDBACK_REASONS,
    FeedbackGiven,
    FeedbackReason,
    MatchDelivered,
)

FEEDBACK_HEADLINES = (
    "deliveries",
    "response_rate",
    "feedback_answers",
    "mean_rating",
    "low_ratings",
)


class DeliveredIn(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    # The period's delivery under a standing agreement (from its transport job); absent for a
    # one-off match.
    delivery_id: Id | None = None
    note: LongText = ""


class FeedbackIn(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    rating: Annotated[int, msgspec.Meta(ge=1, le=5)]
    # What mattered most for the rating: material_quality, quantity, timeliness, communication,
    # price, transport, paperwork or other.
    reason: FeedbackReason
    comment: LongText = ""
    delivery_id: Id | None = None
    # A facilitator gives the feedback of the SME with this partner id (which must have
    # consented).
    on_behalf_of: Id | None = None


# How each refusal of the rules (marketplace/core/feedback.py) is answered: status, problem kind.
REFUSALS: dict[RefusalCode, tuple[int, str | None]] = {
    "not-yours": (404, None),
    "seller-cannot-confirm": (403, None),
    "not-confirmed": (409, "not-confirmed"),
    "delivery-id-needed": (422, None),
    "delivery-id-unexpected": (422, None),
    "unknown-delivery": (404, None),
    "already-delivered": (409, "already-delivered"),
    "not-delivered": (409, "not-delivered"),
    "already-given": (409, "already-given"),
}


def _problem(refused: Refused) -> Problem:
    status, kind = REFUSALS[refused.code]
    return Problem(status, refused.detail, field=refused.field, kind=kind)


def _state(match: Any) -> MatchState:
    return MatchState(
        match_id=match["match_id"],
        seller_id=match["seller_id"],
        buyer_id=match["buyer_id"],
        status=match["status"],
        standing=orjson.loads(match["body"]).get("agreement") is not None,
    )


async def _match(request: web.Request, sme_id: str | None = None) -> Any:
    """The match of the path: any (the rules then say whether the caller is a party: a carrier
    is not its seller or buyer), or, with `sme_id` (a facilitator's SME), only one of which that
    SME is the seller or the buyer."""
    row = await request.app[POOL].fetchrow(
        "SELECT match_id, material_code, seller_id, buyer_id, status, body FROM matches"
        " WHERE match_id = $1 AND ($2::text IS NULL OR $2 IN (seller_id, buyer_id))",
        request.match_info["id"],
        sme_id,
    )
    if row is None:
        whose = "yours" if sme_id is None else f"the SME {sme_id}"
        raise Problem(404, f"no match {request.match_info['id']} of {whose}")
    return row


async def _carrier(request: web.Request, match_id: str, delivery_id: str | None) -> str | None:
    """The firm that won the transport job of this match (or of this period's delivery)."""
    winner: str | None = await request.app[POOL].fetchval(
        "SELECT winner_id FROM jobs WHERE match_id = $1 AND status = 'awarded'"
        " AND (body->>'delivery_id') IS NOT DISTINCT FROM $2 ORDER BY created_at LIMIT 1",
        match_id,
        delivery_id,
    )
    return winner


async def confirm_delivery(request: web.Request) -> web.StreamResponse:
    require_role(request, "sme", "logistics")
    match = await _match(request)
    body = await read_body(request, DeliveredIn, optional=True)
    return await idempotent(request, await delivered_command(request, match, body))


async def delivered_command(request: web.Request, match: Any, body: DeliveredIn) -> Write:
    """The checks and the write of confirming the delivery of `match` (a matches row with
    match_id, material_code, seller_id, buyer_id, status and body), for the API and the pages
    alike (decision 10). Raises Problem naming the field."""
    require_role(request, "sme", "logistics")
    who = principal(request)
    match_id = match["match_id"]
    carrier = await _carrier(request, match_id, body.delivery_id)
    pool = request.app[POOL]
    delivery_known = body.delivery_id is not None and bool(
        await pool.fetchval(
            "SELECT EXISTS (SELECT 1 FROM jobs WHERE match_id = $1 AND body->>'delivery_id' = $2)",
            match_id,
            body.delivery_id,
        )
    )
    delivered_at = await pool.fetchval(
        "SELECT delivered_at FROM deliveries WHERE delivery_key = $1",
        delivery_key(match_id, body.delivery_id),
    )
    confirmed_as = may_confirm_delivery(
        _state(match),
        who.partner_id,
        is_logistics=who.role == "logistics",
        carrier_id=carrier,
        delivery_id=body.delivery_id,
        delivery_known=delivery_known,
        delivered_at=delivered_at,
    )
    if isinstance(confirmed_as, Refused):
        raise _problem(confirmed_as)

    async def write(ids: Ids) -> tuple[int, dict[str, Any], dict[str, str]]:
        event_id = ids.make("event")
        event = MatchDelivered(
            match_id=match_id,
            material_code=match["material_code"],
            delivery_id=body.delivery_id,
            partner_id=who.partner_id,
            actor_id=who.partner_id,
            person_id=who.person_id,
            confirmed_as=confirmed_as,
            seller_id=match["seller_id"],
            buyer_id=match["buyer_id"],
            carrier_id=carrier,
            note=body.note,
        )
        await publish(request, event, event_id=event_id, subject=match_id)
        return 202, {"status": "accepted", "event_id": event_id, "match_id": match_id}, {}

    return write


async def give_feedback(request: web.Request) -> web.StreamResponse:
    """The caller's feedback, or a facilitator's for an SME that consented (`on_behalf_of`)."""
    require_role(request, "sme", "logistics", "facilitator")
    body = await read_body(request, FeedbackIn)
    party = await owner_for(request, body.on_behalf_of)
    sme_id = acting_for(request, party)
    match = await _match(request, sme_id)
    return await idempotent(request, await feedback_command(request, match, body, party=sme_id))


async def feedback_command(
    request: web.Request, match: Any, body: FeedbackIn, party: str | None = None
) -> Write:
    """The checks and the write of the caller's feedback on a delivery of `match` (a matches
    row, as for delivered_command), for the API and the pages alike. `party`: the SME a
    facilitator gives it for (its consent checked by the caller, the facilitator's page): the
    feedback is the SME's, the facilitator the actor."""
    who = principal(request)
    if party is None:
        require_role(request, "sme", "logistics")
        party = who.partner_id
    else:
        require_role(request, "facilitator")
    match_id = match["match_id"]
    key = delivery_key(match_id, body.delivery_id)
    delivery = await request.app[POOL].fetchrow(
        "SELECT seller_id, buyer_id, carrier_id FROM deliveries"
        " WHERE delivery_key = $1 AND match_id = $2",
        key,
        match_id,
    )
    given = await request.app[POOL].fetchval(
        "SELECT given_at FROM feedback WHERE delivery_key = $1 AND partner_id = $2",
        key,
        party,
    )
    side = may_give_feedback(
        _state(match),
        party,
        delivery_parties=(
            (delivery["seller_id"], delivery["buyer_id"], delivery["carrier_id"])
            if delivery is not None
            else None
        ),
        given_at=given,
    )
    if isinstance(side, Refused):
        raise _problem(side)

    async def write(ids: Ids) -> tuple[int, dict[str, Any], dict[str, str]]:
        event_id = ids.make("event")
        fid = feedback_id(key, party)
        event = FeedbackGiven(
            feedback_id=fid,
            match_id=match_id,
            material_code=match["material_code"],
            delivery_id=body.delivery_id,
            partner_id=party,
            actor_id=who.partner_id,
            person_id=who.person_id,
            side=side,
            rating=body.rating,
            reason=body.reason,
            comment=body.comment,
        )
        await publish(request, event, event_id=event_id, subject=match_id)
        return 202, {"status": "accepted", "event_id": event_id, "feedback_id": fid}, {}

    return write


def _answer(r: Any, *, who: bool) -> dict[str, Any]:
    out = {
        "feedback_id": r["feedback_id"],
        "match_id": r["match_id"],
        "delivery_key": r["delivery_key"],
        "side": r["side"],
        "rating": r["rating"],
        "reason": r["reason"],
        "comment": r["comment"],
        "given_at": r["given_at"].isoformat(),
    }
    if who:
        out |= {
            "partner_id": r["partner_id"],
            "name": r["name"],
            "role": r["role"],
            "region": r["region"],
            "sector": r["sector"],
            "material_code": r["material_code"],
        }
    return out


_ANSWERS = (
    "SELECT f.feedback_id, f.match_id, f.delivery_key, f.partner_id, f.side, f.rating, f.reason,"
    " f.comment, f.given_at, p.name, p.role, p.region, p.sector, d.material_code"
    " FROM feedback f LEFT JOIN partners p ON p.partner_id = f.partner_id"
    " LEFT JOIN deliveries d ON d.delivery_key = f.delivery_key"
)


async def match_feedback(request: web.Request) -> web.StreamResponse:
    """A match's deliveries and feedback: a party sees the deliveries and its own answers; the
    association sees every answer."""
    require_role(request, "sme", "logistics", *ASSOCIATION)
    who = principal(request)
    match_id = request.match_info["id"]
    pool = request.app[POOL]
    deliveries = await pool.fetch(
        "SELECT delivery_key, delivery_id, seller_id, buyer_id, carrier_id, confirmed_by,"
        " confirmed_as, note, delivered_at FROM deliveries WHERE match_id = $1"
        " ORDER BY delivered_at, delivery_key",
        match_id,
    )
    association = who.role in ASSOCIATION
    if not association:
        row = await pool.fetchrow(
            "SELECT seller_id, buyer_id FROM matches WHERE match_id = $1", match_id
        )
        parties = {p for d in deliveries for p in (d["seller_id"], d["buyer_id"], d["carrier_id"])}
        if row is not None:
            parties |= {row["seller_id"], row["buyer_id"]}
        if who.partner_id not in parties:
            raise Problem(404, f"no match {match_id} of yours")
    answers = await pool.fetch(
        _ANSWERS + " WHERE f.match_id = $1 AND ($2::text IS NULL OR f.partner_id = $2)"
        " ORDER BY f.given_at, f.feedback_id",
        match_id,
        None if association else who.partner_id,
    )
    return web.json_response(
        {
            "match_id": match_id,
            "reasons": list(FEEDBACK_REASONS),
            "deliveries": [
                {
                    "delivery_key": d["delivery_key"],
                    "delivery_id": d["delivery_id"],
                    "confirmed_by": d["confirmed_by"],
                    "confirmed_as": d["confirmed_as"],
                    "note": d["note"],
                    "delivered_at": d["delivered_at"].isoformat(),
                    "asked": sorted(
                        p for p in (d["seller_id"], d["buyer_id"], d["carrier_id"]) if p
                    ),
                }
                for d in deliveries
            ],
            ("feedback" if association else "your_feedback"): [
                _answer(a, who=association) for a in answers
            ],
        }
    )


def _period(request: web.Request) -> tuple[datetime, datetime]:
    require_role(request, *ASSOCIATION)
    until = _time(request, "to", datetime.now(UTC))
    since = _time(request, "from", until - timedelta(days=30))
    if since >= until:
        raise Problem(422, "must come before `to`", field="from")
    return since, until


async def list_feedback(request: web.Request) -> web.StreamResponse:
    """Every answer given in the period (default: the last 30 days), newest first, with who
    gave it, for the association."""
    since, until = _period(request)
    try:
        limit = int(request.query.get("limit", "200"))
    except ValueError:
        raise Problem(
            422, "limit must be a whole number", field="limit", kind="validation"
        ) from None
    if not 1 <= limit <= 1000:
        raise Problem(422, "limit is 1 to 1000", field="limit", kind="validation")
    rows = await request.app[POOL].fetch(
        _ANSWERS + " WHERE f.given_at >= $1 AND f.given_at < $2"
        " ORDER BY f.given_at DESC, f.feedback_id LIMIT $3",
        since,
        until,
        limit,
    )
    return web.json_response(
        {
            "from": since.isoformat(),
            "to": until.isoformat(),
            "items": [_answer(r, who=True) for r in rows],
        },
        dumps=lambda o: orjson.dumps(o).decode(),
    )


async def feedback_summary(request: web.Request) -> web.StreamResponse:
    """The feedback KPIs for the period, by slice (?slice=total|region|sector|...) and by reason."""
    since, until = _period(request)
    raw = request.query.get("slice", "total")
    kind: Slice = next((k for k in SLICES if k == raw), "total")
    if kind != raw:
        raise Problem(422, f"one of {', '.join(SLICES)}", field="slice", kind="validation")
    async with request.app[POOL].acquire() as conn:
        tables = await feedback_kpis(conn, since, until, kind)
        totals = headline(await feedback_kpis(conn, since, until, "total"))
        reasons = await feedback_reasons(conn, since, until)
    return web.json_response(
        {
            "from": since.isoformat(),
            "to": until.isoformat(),
            "slice": kind,
            "headline": {k: totals[k] for k in FEEDBACK_HEADLINES},
            "tables": tables,
            "reasons": reasons,
        }
    )


def add_routes(app: web.Application) -> None:
    app.router.add_post("/v1/matches/{id}/delivered", confirm_delivery)
    app.router.add_post("/v1/matches/{id}/feedback", give_feedback)
    app.router.add_get("/v1/matches/{id}/feedback", match_feedback)
    app.router.add_get("/v1/feedback", list_feedback)
    app.router.add_get("/v1/feedback/summary", feedback_summary)
