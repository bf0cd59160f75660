"""Logistics firms: the transport jobs that fit their coverage, and their quotes."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import msgspec
import orjson
from aiohttp import web

from marketplace.core.carriers import Coverage, JobNeeds, unfit_reasons
from marketplace.translate.auction import coverage_of
from marketplace.translate.common import place_of
from producers.api.auth import require_role
from producers.api.bodies import QuoteIn
from producers.api.context import POOL, principal
from producers.api.problems import Problem
from producers.api.writes import Ids, Write, idempotent, publish, read_body
from schemas.common import Location
from schemas.logistics import CarrierCoverage, QuoteSubmitted, QuoteWithdrawn


def needs(job: dict[str, Any]) -> JobNeeds:
    """What a job (as the jobs read model holds it) asks of a carrier."""
    return JobNeeds(
        pickup=place_of(msgspec.convert(job["pickup"], Location)),
        delivery=place_of(msgspec.convert(job["delivery"], Location)),
        weight_t=job["weight_t"],
        hazardous=job["hazardous"],
    )


def coverage(caps: dict[str, Any]) -> Coverage:
    """A firm's declared coverage (as the carriers read model holds it), for the core's rules."""
    return coverage_of(msgspec.convert(caps, CarrierCoverage))


async def my_capabilities(request: web.Request) -> dict[str, Any]:
    raw = await request.app[POOL].fetchval(
        "SELECT capabilities FROM carriers WHERE partner_id = $1", principal(request).partner_id
    )
    if raw is None:
        raise Problem(
            409,
            "declare your coverage and capabilities first (PUT /v1/carrier/capabilities)",
            kind="no-capabilities",
        )
    caps: dict[str, Any] = orjson.loads(raw)
    return caps


async def my_coverage(request: web.Request) -> Coverage:
    return coverage(await my_capabilities(request))


def as_json(row: Any) -> dict[str, Any]:
    return {
        **orjson.loads(row["body"]),
        "status": row["status"],
        "bidding_deadline": row["bidding_deadline"].isoformat(),
        "outcome_reason": row["outcome_reason"],
    }


async def list_jobs(request: web.Request) -> web.StreamResponse:
    require_role(request, "logistics")
    cov = await my_coverage(request)
    rows = await request.app[POOL].fetch(
        "SELECT job_id, body, status, bidding_deadline, outcome_reason FROM jobs"
        " WHERE status = 'open' AND bidding_deadline > $1 ORDER BY bidding_deadline, job_id",
        datetime.now(UTC),
    )
    items = [as_json(r) for r in rows if not unfit_reasons(needs(orjson.loads(r["body"])), cov)]
    return web.json_response({"items": items})


async def fitting_job(request: web.Request, job_id: str | None = None) -> tuple[Any, Coverage]:
    """The job (by default the one the path names), if this carrier may see it: jobs outside
    its coverage do not exist for it."""
    require_role(request, "logistics")
    cov = await my_coverage(request)
    job_id = request.match_info["id"] if job_id is None else job_id
    row = await request.app[POOL].fetchrow(
        "SELECT job_id, body, status, bidding_deadline, outcome_reason, winner_id FROM jobs"
        " WHERE job_id = $1",
        job_id,
    )
    if row is None or unfit_reasons(needs(orjson.loads(row["body"])), cov):
        raise Problem(404, f"no transport job {job_id} offered to you")
    return row, cov


async def get_job(request: web.Request) -> web.StreamResponse:
    row, _ = await fitting_job(request)
    me = principal(request).partner_id
    quoted = await request.app[POOL].fetchval(
        "SELECT count(*) FROM quotes"
        " WHERE job_id = $1 AND carrier_id = $2 AND status <> 'rejected'",
        row["job_id"],
        me,
    )
    outcome = outcome_of(row["status"], row["winner_id"], me, bool(quoted))
    return web.json_response(as_json(row) | {"your_outcome": outcome})


def outcome_of(status: str, winner_id: str | None, me: str, quoted: bool) -> str | None:
    """A job's outcome for the carrier `me` ("won", "lost", "failed", or None), given whether it
    has a quote on the job that was not rejected: the API's `your_outcome` and the pages'.
    Every bidder learns the outcome; the winning price stays between the winner and the SMEs."""
    if status == "awarded" and (quoted or winner_id == me):
        return "won" if winner_id == me else "lost"
    if status == "failed" and quoted:
        return "failed"
    return None


def _open_for_bids(row: Any) -> None:
    if row["status"] != "open" or row["bidding_deadline"] <= datetime.now(UTC):
        raise Problem(409, f"bidding on job {row['job_id']} is closed", kind="bidding-closed")


async def own_quote(request: web.Request, job_id: str, quote_id: str) -> Any:
    row = await request.app[POOL].fetchrow(
        "SELECT quote_id, body, status FROM quotes"
        " WHERE quote_id = $1 AND job_id = $2 AND carrier_id = $3",
        quote_id,
        job_id,
        principal(request).partner_id,
    )
    if row is None:
        raise Problem(404, f"no quote {quote_id} of yours on job {job_id}")
    return row


async def submit_quote(request: web.Request) -> web.StreamResponse:
    row, cov = await fitting_job(request)
    _open_for_bids(row)
    body = await read_body(request, QuoteIn)
    return await idempotent(request, await quote_command(request, row, cov, body))


async def quote_command(request: web.Request, row: Any, cov: Coverage, body: QuoteIn) -> Write:
    """The checks and the write of a new quote or a revision (`body.quote_id` given) on the job
    `row` that `fitting_job` found with the carrier's coverage `cov`, for the API and the pages
    alike (the same command and authorization: decision 10). Raises Problem naming the field."""
    require_role(request, "logistics")
    _open_for_bids(row)
    job = orjson.loads(row["body"])
    if body.vehicle not in cov.vehicle_types:
        raise Problem(
            422, f"{body.vehicle} is not among your declared vehicle types", field="vehicle"
        )
    start = datetime.fromisoformat(job["pickup_window"]["start"])
    end = datetime.fromisoformat(job["pickup_window"]["end"])
    if body.pickup_at.tzinfo is None or not start <= body.pickup_at <= end:
        raise Problem(422, "pickup_at must fall within the job's pickup window", field="pickup_at")
    if body.quote_id is not None:
        quote = await own_quote(request, row["job_id"], body.quote_id)
        if quote["status"] != "active":
            raise Problem(409, f"quote {body.quote_id} is {quote['status']}", kind="not-open")
    # The auctioneer decides from the log alone, so the quote carries the coverage it is judged by.
    covered = msgspec.convert(await my_capabilities(request), CarrierCoverage)
    who = principal(request)

    async def write(ids: Ids) -> tuple[int, dict[str, Any], dict[str, str]]:
        quote_id, event_id = body.quote_id or ids.make("quote"), ids.make("event")
        event = QuoteSubmitted(
            quote_id=quote_id,
            job_id=row["job_id"],
            carrier_id=who.partner_id,
            actor_id=who.partner_id,
            person_id=who.person_id,
            price=body.price,
            vehicle=body.vehicle,
            co2e_kg=body.co2e_kg,
            pickup_at=body.pickup_at,
            coverage=covered,
        )
        await publish(request, event, event_id=event_id, subject=row["job_id"])
        return 202, {"status": "accepted", "event_id": event_id, "quote_id": quote_id}, {}

    return write


async def list_quotes(request: web.Request) -> web.StreamResponse:
    row, _ = await fitting_job(request)
    rows = await request.app[POOL].fetch(
        "SELECT quote_id, body, status, refusal, outcome, updated_at FROM quotes"
        " WHERE job_id = $1 AND carrier_id = $2 ORDER BY updated_at",
        row["job_id"],
        principal(request).partner_id,
    )
    items = [
        {
            **orjson.loads(q["body"]),
            "quote_id": q["quote_id"],
            "status": q["status"],
            "refusal": orjson.loads(q["refusal"]) if q["refusal"] else None,
            "outcome": q["outcome"],
        }
        for q in rows
    ]
    return web.json_response({"items": items})


async def withdraw_quote(request: web.Request) -> web.StreamResponse:
    row, _ = await fitting_job(request)
    write = await withdraw_quote_command(request, row, request.match_info["quote_id"])
    return await idempotent(request, write)


async def withdraw_quote_command(request: web.Request, row: Any, quote_id: str) -> Write:
    """The checks and the write of withdrawing the carrier's quote `quote_id` on the job `row`
    (as `fitting_job` found it), for the API and the pages alike."""
    require_role(request, "logistics")
    _open_for_bids(row)
    quote = await own_quote(request, row["job_id"], quote_id)
    if quote["status"] != "active":
        raise Problem(409, f"quote {quote['quote_id']} is already withdrawn", kind="not-open")
    who = principal(request)

    async def write(ids: Ids) -> tuple[int, dict[str, Any], dict[str, str]]:
        event_id = ids.make("event")
        event = QuoteWithdrawn(
            quote_id=quote["quote_id"],
            job_id=row["job_id"],
            carrier_id=who.partner_id,
            actor_id=who.partner_id,
            person_id=who.person_id,
        )
        await publish(request, event, event_id=event_id, subject=row["job_id"])
        return 202, {"status": "accepted", "event_id": event_id, "quote_id": quote["quote_id"]}, {}

    return write


def add_routes(app: web.Application) -> None:
    app.router.add_get("/v1/jobs", list_jobs)
    app.router.add_get("/v1/jobs/{id}", get_job)
    app.router.add_get("/v1/jobs/{id}/quotes", list_quotes)
    app.router.add_post("/v1/jobs/{id}/quotes", submit_quote)
    app.router.add_delete("/v1/jobs/{id}/quotes/{quote_id}", withdraw_quote)
