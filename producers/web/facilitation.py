"""A facilitator's pages (#19): the SMEs that consented to the facilitator's organisation, with
their open listings and how stale they are; posting an offer on an SME's behalf; nudging an SME
about a listing, and the nudges sent. Each calls the API's own read or command
(producers/api/facilitators.py, producers/api/listings.py offer_command with `on_behalf_of`), so
the consent check is the API's: an SME that has not consented is not found."""

from __future__ import annotations

import re
from typing import Literal

import orjson
from aiohttp import web

from producers.api.bodies import OfferIn
from producers.api.context import POOL
from producers.api.facilitators import has_consent, nudge_command, nudge_target, supported
from producers.api.listings import offer_command
from producers.api.problems import Problem
from producers.api.writes import idempotent_answer
from producers.web.common import (
    ACTING,
    acting_principal,
    form_of,
    gettext_of,
    new_key,
    person_of,
    render,
    see_other,
)
from producers.web.forms import decode, document, field_errors
from producers.web.session import PREFIX
from producers.web.staff import of_organisation

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
    sme_id = request.match_info["sme"]
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
        name = await request.app[POOL].fetchval(
            "SELECT name FROM partners WHERE partner_id = $1", sme_id
        )
        return render(
            request,
            "facilitation_offer.html",
            status=422,
            sme_id=sme_id,
            sme_name=name or sme_id,
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


def add_routes(app: web.Application) -> None:
    r = app.router
    r.add_get(PREFIX + "/facilitation", smes)
    r.add_get(PREFIX + "/facilitation/{sme}/offers/new", new_offer)
    r.add_post(PREFIX + "/facilitation/{sme}/offers", post_offer)
    r.add_post(PREFIX + "/facilitation/{kind:offers|requests}/{id}/nudge", nudge)
