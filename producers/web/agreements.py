"""An SME's standing agreements and deliveries on the pages (#19): setting up a steady flow (a
recurring offer or request, the form the API's recurrence takes), the organisation's agreements
and one-off deals with their delivery periods, confirming a period's delivery, and the feedback
after it. Every check and every event is the API's (producers/api/feedback.py
`delivered_command` and `feedback_command`): the same rules, the same refusals, the same 404 for
an agreement of another organisation."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import orjson
from aiohttp import web

from marketplace.core import periods
from marketplace.core.feedback import delivery_key
from marketplace.reference import list_of_waste
from producers.api import invoices
from producers.api.context import POOL, PRINCIPAL
from producers.api.feedback import (
    DeliveredIn,
    FeedbackIn,
    delivered_command,
    feedback_command,
)
from producers.api.periods import period_room
from producers.api.problems import Problem
from producers.api.writes import idempotent_answer
from producers.web.common import (
    ACTING,
    acting_principal,
    form_of,
    gettext_of,
    live_fragments,
    new_key,
    person_of,
    render,
    see_other,
)
from producers.web.deals import _principal
from producers.web.documents import documents_fragment
from producers.web.forms import decode, document, field_errors
from producers.web.invoice_labels import field_label
from producers.web.session import PREFIX
from schemas.feedback import FEEDBACK_REASONS

HOME = PREFIX + "/agreements"
KINDS = {"offer": "offer_form.html", "request": "request_form.html"}
PERIODS = ("week", "month", "quarter", "year")
DELIVERED_FIELDS = ("delivery_id", "note")
FEEDBACK_FIELDS = ("delivery_id", "rating", "reason", "comment")
_COLUMNS = "match_id, material_code, seller_id, buyer_id, body, status, proposed_at, updated_at"


def _today() -> date:
    return datetime.now(UTC).date()


async def new_agreement(request: web.Request) -> web.Response:
    """The offer or request form set for a steady flow: every month from today (the person
    changes the period and the dates). Posting it is posting the listing (sme.post_listing):
    two steady flows that fit become a proposed standing agreement."""
    kind = request.query.get("kind", "offer")
    if kind not in KINDS:
        raise web.HTTPNotFound(text="kind is offer or request")
    person = person_of(request)
    if person.partner_id is None or person.role not in ACTING:
        raise web.HTTPForbidden(text="your role in the organisation lets you read, not change")
    period = request.query.get("period", "month")
    form = {
        "terms.recurrence.period": period if period in PERIODS else "month",
        "terms.recurrence.starts": _today().isoformat(),
    }
    return render(request, KINDS[kind], form=form, errors={}, key=new_key())


def _agreement(body: dict[str, Any]) -> dict[str, Any] | None:
    agreement = body.get("agreement")
    return agreement if isinstance(agreement, dict) else None


def _number(value: Any) -> Any:
    """8.0 reads 8; other numbers as they are."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _summary(row: Any, partner_id: str) -> dict[str, Any]:
    body = orjson.loads(row["body"])
    agreement = _agreement(body)
    entry = list_of_waste().get(row["material_code"])
    quantity = (agreement or body).get("quantity", {})
    return {
        "id": row["match_id"],
        "code": row["material_code"],
        "title": entry.description if entry is not None else "",
        "side": "seller" if row["seller_id"] == partner_id else "buyer",
        "status": row["status"],
        "amount": _number(quantity.get("amount")),
        "unit": quantity.get("unit"),
        "agreement": agreement,
    }


async def agreements(request: web.Request) -> web.Response:
    """The organisation's standing agreements (proposed, confirmed, ended) and its confirmed
    one-off deals, each with how many periods are scheduled and delivered."""
    person = person_of(request)
    rows: list[Any] = []
    if person.partner_id is not None:
        rows = await request.app[POOL].fetch(
            f"SELECT {_COLUMNS},"  # noqa: S608 - constant columns
            " (SELECT count(*) FROM jobs j WHERE j.match_id = m.match_id"
            "   AND j.body->>'delivery_id' IS NOT NULL) AS scheduled,"
            " (SELECT count(*) FROM deliveries d WHERE d.match_id = m.match_id) AS delivered"
            " FROM matches m WHERE $1 IN (seller_id, buyer_id)"
            "   AND (status IN ('confirmed', 'ended')"
            "        OR (status = 'proposed' AND jsonb_typeof(body->'agreement') = 'object'))"
            " ORDER BY updated_at DESC, match_id LIMIT 200",
            person.partner_id,
        )
    standing: list[dict[str, Any]] = []
    one_off: list[dict[str, Any]] = []
    for r in rows:
        item = _summary(r, person.partner_id or "") | {
            "scheduled": r["scheduled"],
            "delivered": r["delivered"],
        }
        (standing if item["agreement"] else one_off).append(item)
    return render(
        request,
        "agreements.html",
        standing=standing,
        one_off=one_off,
        can_act=person.partner_id is not None and person.role in ACTING,
    )


async def _own_match(
    request: web.Request, partner_id: str | None, match_id: str | None = None
) -> Any:
    """The match (`match_id`, else the route's `id`) as the API's commands take it, if the
    organisation is its seller or buyer; 404 otherwise (another organisation's agreement does
    not exist for this person)."""
    row = None
    if partner_id is not None:
        row = await request.app[POOL].fetchrow(
            f"SELECT {_COLUMNS} FROM matches"  # noqa: S608 - constant columns
            " WHERE match_id = $1 AND $2 IN (seller_id, buyer_id)",
            match_id or request.match_info["id"],
            partner_id,
        )
    if row is None:
        raise web.HTTPNotFound(text="no such agreement of your organisation")
    return row


def _day(value: Any) -> str:
    return str(value or "")[:10]


async def _deliveries(
    request: web.Request, match: Any, partner_id: str, agreement: dict[str, Any] | None
) -> list[dict[str, Any]]:
    """The match's deliveries as the page shows them: under a standing agreement one per
    scheduled period (its transport job), oldest first; a one-off match has one."""
    pool = request.app[POOL]
    match_id = match["match_id"]
    jobs = await pool.fetch(
        "SELECT j.body->>'delivery_id' AS delivery_id, j.body->'pickup_window' AS pickup,"
        " j.body->'delivery_window' AS delivery, j.status, c.name AS carrier"
        " FROM jobs j LEFT JOIN partners c ON c.partner_id = j.winner_id"
        " WHERE j.match_id = $1 AND (j.body->>'delivery_id' IS NOT NULL) = $2"
        " ORDER BY j.body->'pickup_window'->>'start', j.job_id",
        match_id,
        agreement is not None,
    )
    done = {
        r["delivery_key"]: r
        for r in await pool.fetch(
            "SELECT delivery_key, confirmed_as, note, delivered_at FROM deliveries"
            " WHERE match_id = $1",
            match_id,
        )
    }
    given = {
        r["delivery_key"]: r
        for r in await pool.fetch(
            "SELECT delivery_key, rating, reason, comment, given_at FROM feedback"
            " WHERE match_id = $1 AND partner_id = $2",
            match_id,
            partner_id,
        )
    }
    entries: list[tuple[str | None, Any]] = [(j["delivery_id"], j) for j in jobs]
    if agreement is None:
        entries = [(None, jobs[0] if jobs else None)]
    out = []
    for delivery_id, job in entries:
        key = delivery_key(match_id, delivery_id)
        pickup = orjson.loads(job["pickup"]) if job is not None and job["pickup"] else {}
        deliver = orjson.loads(job["delivery"]) if job is not None and job["delivery"] else {}
        period = ""
        if agreement is not None and pickup.get("start"):
            day = date.fromisoformat(_day(pickup["start"]))
            period = periods.key_of(agreement["period"], day)
        delivered = done.get(key)
        feedback = given.get(key)
        out.append(
            {
                "key": key,
                "delivery_id": delivery_id or "",
                "period": period,
                "start": _day(pickup.get("start")),
                "end": _day(deliver.get("end") or pickup.get("end")),
                "transport": job["status"] if job is not None else "",
                "carrier": (job["carrier"] or "") if job is not None else "",
                "delivered_at": _day(delivered["delivered_at"]) if delivered else "",
                "confirmed_as": delivered["confirmed_as"] if delivered else "",
                "note": delivered["note"] if delivered else "",
                "feedback": dict(feedback) if feedback else None,
            }
        )
    return out


async def _documents(request: web.Request, match_id: str, deliveries: list[dict[str, Any]]) -> None:
    """Each delivery period's document set (#22 item 3), as the deal room lists a match's: its
    documents with their versions and files, its invoices, and its transport confirmations; a
    period the deals consumer has not met yet has none."""
    if PRINCIPAL not in request:
        await _principal(request, acting=False)
    for d in deliveries:
        d["documents"] = None
        if not d["delivery_id"]:
            continue
        try:
            room = await period_room(request, match_id, d["delivery_id"])
        except Problem:
            continue
        d["room"] = room
        d["documents"] = await invoices.room_documents(request, room)


async def _page(
    request: web.Request,
    match: Any,
    *,
    status: int = 200,
    errors: dict[str, dict[str, str]] | None = None,
    form: dict[str, str] | None = None,
) -> web.Response:
    person = person_of(request)
    partner_id = person.partner_id or ""
    summary = _summary(match, partner_id)
    deliveries = await _deliveries(request, match, partner_id, summary["agreement"])
    if summary["agreement"] is not None:
        await _documents(request, match["match_id"], deliveries)
    next_period = ""
    agreement = summary["agreement"]
    if agreement is not None and match["status"] == "confirmed":
        upcoming = periods.next_start(agreement["period"], _today())
        if agreement.get("ends") is None or upcoming.isoformat() < str(agreement["ends"]):
            next_period = upcoming.isoformat()
    return render(
        request,
        "agreement.html",
        status=status,
        match=summary,
        deliveries=deliveries,
        next_period=next_period,
        can_act=person.role in ACTING,
        delivered_open=match["status"] in ("confirmed", "ended"),
        reasons=FEEDBACK_REASONS,
        errors=errors or {},
        form=form or {},
        key=new_key(),
        notice=next(
            (n for n in ("delivered", "rated", "approved", "invoiced") if n in request.query), ""
        ),
        invoice_field=lambda field: field_label(request, field),
    )


async def agreement(request: web.Request) -> web.Response:
    match = await _own_match(request, person_of(request).partner_id)
    return await _page(request, match)


# Refusals whose words a page says itself, in the person's language (the API's stay English).
def _refusal(problem: Problem, request: web.Request) -> dict[str, str]:
    _ = gettext_of(request)
    said = {
        "already-delivered": _("This delivery was confirmed already."),
        "already-given": _("You gave your feedback on this delivery already; it counts once."),
        "not-delivered": _("Feedback comes after the delivery: it has not been confirmed yet."),
        "not-confirmed": _("Both sides have not accepted this agreement yet."),
    }.get(problem.kind or "")
    if said is not None:
        return {"body": said}
    if problem.status >= 500:
        return {"body": _("The exchange cannot store this right now. Try again shortly.")}
    return field_errors(problem, _)


async def _act(request: web.Request, which: str) -> web.StreamResponse:
    form = await form_of(request)
    who = await acting_principal(request)
    match = await _own_match(request, who.partner_id)
    delivery_id = form.get("delivery_id", "").strip() or None
    try:
        if which == "delivered":
            doc = document(form, DELIVERED_FIELDS)
            write = await delivered_command(request, match, decode(doc, DeliveredIn))
        else:
            doc = document(form, FEEDBACK_FIELDS)
            write = await feedback_command(request, match, decode(doc, FeedbackIn))
        await idempotent_answer(request, write, form.get("key"))
    except Problem as problem:
        if problem.status == 404:
            raise web.HTTPNotFound(text=problem.detail) from None
        if problem.status == 403:
            raise web.HTTPForbidden(text=problem.detail) from None
        status = 409 if problem.status == 409 else 422
        key = delivery_key(match["match_id"], delivery_id)
        errors = {key: _refusal(problem, request)}
        return await _page(request, match, status=status, errors=errors, form=form)
    done = "delivered" if which == "delivered" else "rated"
    return see_other(f"{HOME}/{match['match_id']}?{done}={delivery_id or match['match_id']}")


async def confirm_delivery(request: web.Request) -> web.StreamResponse:
    return await _act(request, "delivered")


async def give_feedback(request: web.Request) -> web.StreamResponse:
    return await _act(request, "feedback")


async def periods_live(request: web.Request) -> web.StreamResponse:
    """The agreement's periods' documents as they change (a version approved, an invoice
    issued, a transport confirmed), for htmx's SSE extension: one connection for every period
    (a page of twelve periods would need twelve otherwise), each period's list its own event,
    named by its delivery id."""
    person = person_of(request)
    partner_id = person.partner_id or ""
    match = await _own_match(request, person.partner_id)
    can_act = person.role in ACTING

    async def fragments() -> dict[str, str]:
        agreement = _summary(match, partner_id)["agreement"]
        if agreement is None:
            return {}
        deliveries = await _deliveries(request, match, partner_id, agreement)
        await _documents(request, match["match_id"], deliveries)
        return {
            f"documents-{d['delivery_id']}": documents_fragment(
                request,
                d["documents"],
                d["room"],
                can_act,
                docs_base=f"{HOME}/{match['match_id']}/periods/{d['delivery_id']}",
                id_prefix=f"period-{n}-",
            )
            for n, d in enumerate(deliveries, 1)
            if d["documents"] is not None
        }

    return await live_fragments(request, partner_id, fragments)


def add_routes(app: web.Application) -> None:
    r = app.router
    r.add_get(HOME, agreements)
    r.add_get(HOME + "/new", new_agreement)
    r.add_get(HOME + "/{id}", agreement)
    r.add_get(HOME + "/{id}/periods/live", periods_live)
    r.add_post(HOME + "/{id}/delivered", confirm_delivery)
    r.add_post(HOME + "/{id}/feedback", give_feedback)
