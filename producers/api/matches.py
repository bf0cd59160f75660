"""SMEs' match proposals: list and read their own, accept or decline them; a facilitator does
the same for an SME that consented to it, naming the SME in `on_behalf_of` (#11)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
from aiohttp import web

from marketplace.core.disclosure import disclosed, said_proposal
from producers.api.auth import require_role
from producers.api.bodies import AnswerIn, ReserveIn
from producers.api.context import POOL, principal
from producers.api.facilitators import owner_for
from producers.api.problems import Problem
from producers.api.writes import Ids, Write, idempotent, publish, read_body
from schemas.base import Event
from schemas.listings import MatchAccepted, MatchDeclined
from schemas.logistics import ReservePriceSet

_COLUMNS = (
    "match_id, material_code, seller_id, buyer_id, body, status, answers, proposed_at, transport"
)


def as_json(row: Any, partner_id: str) -> dict[str, Any]:
    answers = orjson.loads(row["answers"])
    # The proposal as its firms may know it: until the match is confirmed the distance (and the
    # reason and criterion that repeat it) only rounded, with `distance_exact` false, so that it
    # does not narrow the other firm's rounded place to a ring (marketplace/core/disclosure.py).
    return {
        **said_proposal(orjson.loads(row["body"]), exact=disclosed(row["status"])),
        "status": row["status"],
        "your_side": "seller" if row["seller_id"] == partner_id else "buyer",
        "your_answer": answers.get(partner_id),
        "answers": answers,
        "proposed_at": row["proposed_at"].isoformat(),
        # The transport job once the match is confirmed: its auction's state and, once awarded,
        # the winning quote's price and CO2e (which delivered_price and transport_co2e_kg use).
        "transport": orjson.loads(row["transport"]) if row["transport"] else None,
    }


async def party_for(request: web.Request, on_behalf_of: str | None, missing: int = 422) -> str:
    """Whose matches a request is about: the calling SME's own, or, for a facilitator, those of
    the SME named by `on_behalf_of`, which must have consented (`owner_for`'s refusals; a
    facilitator that leaves it out gets `missing`, 400 in a query and 422 in a body)."""
    require_role(request, "sme", "facilitator")
    return await owner_for(request, on_behalf_of, missing)


def acting_for(request: web.Request, party: str) -> str | None:
    """The `party` argument of the shared commands: the SME a facilitator acts for, None for
    an SME acting for itself."""
    return party if principal(request).role == "facilitator" else None


async def own_match(request: web.Request, party: str | None = None) -> Any:
    """The match of the path, when `party` (default: the caller) is its seller or buyer."""
    who = principal(request)
    party = party or who.partner_id
    match_id = request.match_info["id"]
    row = await request.app[POOL].fetchrow(
        f"SELECT {_COLUMNS} FROM matches WHERE match_id = $1"  # noqa: S608 - constant columns
        " AND $2 IN (seller_id, buyer_id)",
        match_id,
        party,
    )
    if row is None:
        whose = "yours" if party == who.partner_id else f"the SME {party}"
        raise Problem(404, f"no match {match_id} of {whose}")
    return row


def _query_party(request: web.Request) -> str | None:
    return request.query.get("on_behalf_of") or None


async def list_matches(request: web.Request) -> web.StreamResponse:
    party = await party_for(request, _query_party(request), missing=400)
    rows = await request.app[POOL].fetch(
        f"SELECT {_COLUMNS} FROM matches WHERE $1 IN (seller_id, buyer_id)"  # noqa: S608
        " ORDER BY proposed_at DESC, match_id LIMIT 200",
        party,
    )
    return web.json_response({"items": [as_json(r, party) for r in rows]})


async def get_match(request: web.Request) -> web.StreamResponse:
    party = await party_for(request, _query_party(request), missing=400)
    return web.json_response(as_json(await own_match(request, party), party))


async def _answer(request: web.Request, accept: bool) -> web.StreamResponse:
    require_role(request, "sme", "facilitator")
    body = await read_body(request, AnswerIn, optional=True)
    party = await party_for(request, body.on_behalf_of)
    row = await own_match(request, party)
    write = answer_command(request, row, accept, body.reason, party=acting_for(request, party))
    return await idempotent(request, write)


def answer_command(
    request: web.Request, row: Any, accept: bool, reason: str, party: str | None = None
) -> Write:
    """Accepting or declining the caller's proposal `row` (as `own_match` read it), for the API
    and the pages alike: the same checks and the same event. `party`: the SME a facilitator
    answers for (its consent checked by the caller, the facilitator's page); the event names the
    SME as the party that answers and the facilitator as the actor."""
    who = principal(request)
    if party is None:
        require_role(request, "sme")
        party = who.partner_id
    else:
        require_role(request, "facilitator")
        if party not in (row["seller_id"], row["buyer_id"]):
            raise Problem(404, f"no match {row['match_id']} of the SME {party}")
    if row["status"] != "proposed":
        raise Problem(409, f"match {row['match_id']} is {row['status']}", kind="not-open")
    if party in orjson.loads(row["answers"]):
        raise Problem(409, "you have already answered this proposal", kind="already-answered")
    event: Event
    if accept:
        event = MatchAccepted(
            match_id=row["match_id"],
            partner_id=party,
            actor_id=who.partner_id,
            person_id=who.person_id,
            material_code=row["material_code"],
        )
    else:
        event = MatchDeclined(
            match_id=row["match_id"],
            partner_id=party,
            actor_id=who.partner_id,
            person_id=who.person_id,
            material_code=row["material_code"],
            reason=reason,
        )

    async def write(ids: Ids) -> tuple[int, dict[str, Any], dict[str, str]]:
        event_id = ids.make("event")
        await publish(request, event, event_id=event_id, subject=row["match_id"])
        return 202, {"status": "accepted", "event_id": event_id, "match_id": row["match_id"]}, {}

    return write


async def accept_match(request: web.Request) -> web.StreamResponse:
    return await _answer(request, accept=True)


async def decline_match(request: web.Request) -> web.StreamResponse:
    return await _answer(request, accept=False)


async def set_transport_reserve(request: web.Request) -> web.StreamResponse:
    require_role(request, "sme")
    who = principal(request)
    row = await own_match(request)
    body = await read_body(request, ReserveIn)
    job = await request.app[POOL].fetchrow(
        "SELECT job_id, body, status, bidding_deadline FROM jobs WHERE match_id = $1",
        row["match_id"],
    )
    if row["status"] != "confirmed" or job is None:
        raise Problem(
            409, f"match {row['match_id']} has no transport job (yet)", kind="no-transport-job"
        )
    if job["status"] != "open" or job["bidding_deadline"] <= datetime.now(UTC):
        raise Problem(409, f"bidding on job {job['job_id']} is closed", kind="bidding-closed")
    currency = orjson.loads(job["body"]).get("currency")
    if body.price is not None and currency and body.price.currency != currency:
        raise Problem(
            422, f"the job is priced in {currency}", field="price.currency", kind="currency"
        )

    async def write(ids: Ids) -> tuple[int, dict[str, Any], dict[str, str]]:
        event_id = ids.make("event")
        event = ReservePriceSet(
            job_id=job["job_id"],
            match_id=row["match_id"],
            partner_id=who.partner_id,
            actor_id=who.partner_id,
            person_id=who.person_id,
            price=body.price,
        )
        await publish(request, event, event_id=event_id, subject=job["job_id"])
        return 202, {"status": "accepted", "event_id": event_id, "job_id": job["job_id"]}, {}

    return await idempotent(request, write)


def add_routes(app: web.Application) -> None:
    app.router.add_get("/v1/matches", list_matches)
    app.router.add_get("/v1/matches/{id}", get_match)
    app.router.add_post("/v1/matches/{id}/accept", accept_match)
    app.router.add_post("/v1/matches/{id}/decline", decline_match)
    app.router.add_put("/v1/matches/{id}/transport-reserve", set_transport_reserve)
