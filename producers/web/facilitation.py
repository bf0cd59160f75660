"""A facilitator's pages (#19): the SMEs that consented to the facilitator's organisation, with
their open listings and how stale they are; posting an offer on an SME's behalf; nudging an SME
about a listing, and the nudges sent; an SME's proposals, answered for it, and its deliveries,
rated for it. Each calls the API's own read or command (producers/api/facilitators.py,
producers/api/listings.py offer_command with `on_behalf_of`, producers/api/matches.py
answer_command and producers/api/feedback.py feedback_command with the SME as `party`), so the
rules are the API's; the consent is checked first, and an SME that has not consented is not
found (404, as for one that does not exist)."""

from __future__ import annotations

import re
from typing import Literal

import orjson
from aiohttp import web

from marketplace.core.feedback import delivery_key
from producers.api.bodies import OfferIn
from producers.api.context import POOL
from producers.api.facilitators import has_consent, nudge_command, nudge_target, supported
from producers.api.feedback import FeedbackIn, feedback_command
from producers.api.listings import offer_command
from producers.api.matches import answer_command
from producers.api.problems import Problem
from producers.api.writes import idempotent_answer
from producers.web.common import (
    ACTING,
    acting_principal,
    form_of,
    gettext_of,
    new_key,
    of_organisation,
    person_of,
    render,
    see_other,
)
from producers.web.forms import decode, document, field_errors
from producers.web.session import PREFIX
from producers.web.sme import proposal_rows
from schemas.feedback import FEEDBACK_REASONS

STALE_DAYS = 30
OFFER_FIELDS = (
    "material.code",
    "material.description",
    "material.form",
    "terms.quantity.amount",
    "terms.quantity.unit",
    "terms.price.amount",
    "terms.price.currency",
    "terms.available.start",
    "terms.available.end",
    "location.lat",
    "location.lon",
    "location.region",
)


async def _facilitator(request: web.Request) -> str:
    person = await of_organisation(request, "facilitator")
    assert person.partner_id is not None  # an organisation's person
    return person.partner_id


async def _page(
    request: web.Request, errors: dict[str, str] | None = None, status: int = 200
) -> web.Response:
    me = await _facilitator(request)
    pool = request.app[POOL]
    smes = await supported(pool, me, STALE_DAYS)
    nudges = await pool.fetch(
        "SELECT n.listing_id, n.message, n.nudged_at, p.name FROM nudges n"
        " LEFT JOIN partners p ON p.partner_id = n.partner_id"
        " WHERE n.facilitator_id = $1 ORDER BY n.nudged_at DESC LIMIT 50",
        me,
    )
    return render(
        request,
        "facilitation_smes.html",
        status=status,
        smes=smes,
        nudges=nudges,
        stale_days=STALE_DAYS,
        can_act=person_of(request).role in ACTING,
        errors=errors or {},
        key=new_key(),
    )


async def smes(request: web.Request) -> web.Response:
    return await _page(request)


async def _consenting(request: web.Request) -> tuple[str, str]:
    """The SME of the path, when it consented to the person's organisation (404 otherwise,
    worded as the API's: an SME that does not exist looks the same)."""
    me = await _facilitator(request)
    sme_id = request.match_info["sme"]
    if not await has_consent(request, sme_id, me):
        raise web.HTTPNotFound(text="no SME of that id has consented to your organisation")
    name = await request.app[POOL].fetchval(
        "SELECT name FROM partners WHERE partner_id = $1", sme_id
    )
    return sme_id, name or sme_id


async def new_offer(request: web.Request) -> web.Response:
    sme_id, name = await _consenting(request)
    return render(
        request,
        "facilitation_offer.html",
        sme_id=sme_id,
        sme_name=name,
        form={},
        errors={},
        key=new_key(),
    )


def _moments(form: dict[str, str]) -> dict[str, str]:
    """A day from <input type=date> as the moment the API wants: the start of the first day,
    the end of the last."""
    out = dict(form)
    for name, suffix in (
        ("terms.available.start", "T00:00:00Z"),
        ("terms.available.end", "T23:59:59Z"),
    ):
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", out.get(name, "").strip()):
            out[name] = out[name].strip() + suffix
    return out


async def post_offer(request: web.Request) -> web.StreamResponse:
    """An offer for the SME, through the API's offer_command with `on_behalf_of`: the event
    names the SME as owner and the facilitator as actor."""
    form = await form_of(request)
    # The consent first: a form refused for its fields would name the SME otherwise.
    sme_id, name = await _consenting(request)
    who = await acting_principal(request)
    if who.role != "facilitator":
        raise web.HTTPForbidden(text="only a facilitator acts for an SME")
    _ = gettext_of(request)
    try:
        doc = document(_moments(form), OFFER_FIELDS)
        doc["on_behalf_of"] = sme_id
        write = await offer_command(request, decode(doc, OfferIn))
        _status, answer, _headers = await idempotent_answer(request, write, form.get("key"))
    except Problem as problem:
        if problem.kind == "no-consent":
            raise web.HTTPNotFound(text="no SME of that id has consented to you") from None
        if problem.status >= 500:
            errors = {"body": _("The exchange cannot store this right now. Try again shortly.")}
        else:
            errors = field_errors(problem, _)
        return render(
            request,
            "facilitation_offer.html",
            status=422,
            sme_id=sme_id,
            sme_name=name,
            form=form,
            errors=errors,
            key=form.get("key"),
        )
    offer_id = orjson.loads(answer)["offer_id"]
    return see_other(f"{PREFIX}/facilitation?posted={offer_id}")


async def nudge(request: web.Request) -> web.StreamResponse:
    form = await form_of(request)
    who = await acting_principal(request)
    if who.role != "facilitator":
        raise web.HTTPForbidden(text="only a facilitator nudges an SME")
    kind: Literal["offer", "request"] = (
        "offer" if request.match_info["kind"] == "offers" else "request"
    )
    listing_id = request.match_info["id"]
    _ = gettext_of(request)
    try:
        row = await nudge_target(request, kind, listing_id)
        write = nudge_command(request, row, kind, form.get("message", "").strip()[:2000])
        await idempotent_answer(request, write, form.get("key"))
    except Problem as problem:
        if problem.status == 404:
            raise web.HTTPNotFound(text=problem.detail) from None
        sentences = {
            "recently-nudged": _("This SME was nudged about it less than a day ago."),
            "not-open": _("This listing is no longer open."),
        }
        message = sentences.get(problem.kind, problem.detail)
        return await _page(request, {listing_id: message}, status=409)
    return see_other(f"{PREFIX}/facilitation?nudged={listing_id}")


# --- an SME's proposals and deliveries, answered and rated for it ------------------------------

FEEDBACK_FIELDS = ("delivery_id", "rating", "reason", "comment")
_MATCH = "match_id, material_code, seller_id, buyer_id, status, answers, body"


async def _deliveries(request: web.Request, sme_id: str) -> list[dict[str, object]]:
    """The SME's confirmed deliveries, newest first, with the feedback the SME gave on each."""
    rows = await request.app[POOL].fetch(
        "SELECT d.delivery_key, d.match_id, d.delivery_id, d.material_code, d.delivered_at,"
        " f.rating, f.given_at FROM deliveries d"
        " LEFT JOIN feedback f ON f.delivery_key = d.delivery_key AND f.partner_id = $1"
        " WHERE $1 IN (d.seller_id, d.buyer_id) ORDER BY d.delivered_at DESC, d.delivery_key"
        " LIMIT 50",
        sme_id,
    )
    return [
        {
            "key": r["delivery_key"],
            "n": i,
            "match_id": r["match_id"],
            "delivery_id": r["delivery_id"] or "",
            "code": r["material_code"],
            "delivered_at": r["delivered_at"].date().isoformat(),
            "rating": r["rating"],
        }
        for i, r in enumerate(rows, start=1)
    ]


async def _deals_page(
    request: web.Request,
    *,
    status: int = 200,
    errors: dict[str, dict[str, str]] | None = None,
    form: dict[str, str] | None = None,
) -> web.Response:
    sme_id, name = await _consenting(request)
    return render(
        request,
        "facilitation_deals.html",
        status=status,
        sme_id=sme_id,
        sme_name=name,
        proposals=await proposal_rows(request, sme_id),
        deliveries=await _deliveries(request, sme_id),
        can_act=person_of(request).role in ACTING,
        answer_base=f"{PREFIX}/facilitation/{sme_id}/proposals",
        reasons=FEEDBACK_REASONS,
        errors=errors or {},
        form=form or {},
        key=new_key(),
        notice=next((n for n in ("answered", "rated") if n in request.query), ""),
    )


async def deals(request: web.Request) -> web.Response:
    """The SME's proposals (to accept or decline for it) and its deliveries (to rate for it)."""
    return await _deals_page(request)


async def _sme_match(request: web.Request) -> tuple[str, object]:
    """The SME of the path (consenting to the person's acting organisation) and its match of
    the path: 404 for either unknown, as the API says it."""
    sme_id, _name = await _consenting(request)
    who = await acting_principal(request)
    if who.role != "facilitator":
        raise web.HTTPForbidden(text="only a facilitator acts for an SME")
    row = await request.app[POOL].fetchrow(
        f"SELECT {_MATCH} FROM matches"  # noqa: S608 - constant columns
        " WHERE match_id = $1 AND $2 IN (seller_id, buyer_id)",
        request.match_info["id"],
        sme_id,
    )
    if row is None:
        raise web.HTTPNotFound(text="no such proposal of this SME")
    return sme_id, row


async def answer(request: web.Request) -> web.StreamResponse:
    """Accepting or declining a proposal for the SME: the event names the SME as the party that
    answers and the facilitator (and the person) as who acted."""
    form = await form_of(request)
    sme_id, row = await _sme_match(request)
    accept = request.match_info["answer"] == "accept"
    try:
        write = answer_command(request, row, accept, form.get("reason", ""), party=sme_id)
        await idempotent_answer(request, write, None)
    except Problem as problem:
        if problem.status == 404:
            raise web.HTTPNotFound(text=problem.detail) from None
        raise web.HTTPConflict(text=problem.detail) from None
    return see_other(f"{PREFIX}/facilitation/{sme_id}/deals?answered={request.match_info['id']}")


def _refusal(problem: Problem, request: web.Request) -> dict[str, str]:
    _ = gettext_of(request)
    said = {
        "already-given": _("You gave your feedback on this delivery already; it counts once."),
        "not-delivered": _("Feedback comes after the delivery: it has not been confirmed yet."),
    }.get(problem.kind or "")
    if said is not None:
        return {"body": said}
    if problem.status >= 500:
        return {"body": _("The exchange cannot store this right now. Try again shortly.")}
    return field_errors(problem, _)


async def give_feedback(request: web.Request) -> web.StreamResponse:
    """The SME's feedback on one of its deliveries, given by the facilitator for it."""
    form = await form_of(request)
    sme_id, match = await _sme_match(request)
    delivery_id = form.get("delivery_id", "").strip() or None
    try:
        doc = document(form, FEEDBACK_FIELDS)
        write = await feedback_command(request, match, decode(doc, FeedbackIn), party=sme_id)
        await idempotent_answer(request, write, form.get("key"))
    except Problem as problem:
        if problem.status == 404:
            raise web.HTTPNotFound(text=problem.detail) from None
        if problem.status == 403:
            raise web.HTTPForbidden(text=problem.detail) from None
        key = delivery_key(request.match_info["id"], delivery_id)
        return await _deals_page(
            request,
            status=409 if problem.status == 409 else 422,
            errors={key: _refusal(problem, request)},
            form=form,
        )
    return see_other(f"{PREFIX}/facilitation/{sme_id}/deals?rated={request.match_info['id']}")


def add_routes(app: web.Application) -> None:
    r = app.router
    r.add_get(PREFIX + "/facilitation", smes)
    r.add_get(PREFIX + "/facilitation/{sme}/offers/new", new_offer)
    r.add_post(PREFIX + "/facilitation/{sme}/offers", post_offer)
    r.add_post(PREFIX + "/facilitation/{kind:offers|requests}/{id}/nudge", nudge)
    r.add_get(PREFIX + "/facilitation/{sme}/deals", deals)
    r.add_post(PREFIX + "/facilitation/{sme}/proposals/{id}/{answer:accept|decline}", answer)
    r.add_post(PREFIX + "/facilitation/{sme}/matches/{id}/feedback", give_feedback)
