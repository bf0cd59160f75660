"""SMEs' offers and requests: post, update, withdraw, list and read their own."""

from __future__ import annotations

from typing import Any, Literal

import msgspec
import orjson
from aiohttp import web

from marketplace.core.book import Listing
from marketplace.core.eligibility import matchable
from marketplace.core.families import family_of, foreign_codes
from marketplace.core.taxonomy import UnknownCode
from marketplace.reference import list_of_waste
from marketplace.translate.matching import findings_of, listing_of, market_config
from producers.api.auth import require_role
from producers.api.bodies import (
    OfferIn,
    OfferTermsIn,
    RequestIn,
    RequestTermsIn,
    WithdrawIn,
)
from producers.api.context import POOL, SETTINGS, principal
from producers.api.facilitators import has_consent, no_consent, owner_for
from producers.api.problems import Problem
from producers.api.writes import Ids, Write, idempotent, publish, read_body
from schemas.base import Event
from schemas.common import Location, Material
from schemas.listings import (
    OfferPosted,
    OfferTerms,
    OfferUpdated,
    OfferWithdrawn,
    RequestPosted,
    RequestTerms,
    RequestUpdated,
    RequestWithdrawn,
)

Kind = Literal["offer", "request"]
# The furthest a listing page may start (PostgreSQL's OFFSET is a bigint; no partner has more).
MAX_OFFSET = 1_000_000
# A facilitator writes for an SME that consented (#11): owner = the SME, actor = the facilitator.
WRITERS = ("sme", "facilitator")


def check_code(code: str, field: str) -> None:
    try:
        list_of_waste().entry(code)
    except UnknownCode as exc:
        raise Problem(422, str(exc), field=field, kind="unknown-waste-code") from None


def check_accepts(code: str, accepts: tuple[str, ...]) -> None:
    """A request may accept codes of its own code's material family only: listings of another
    family are keyed to other partitions, where no matcher could pair them with it."""
    foreign = set(foreign_codes(code, accepts))
    if not foreign:
        return
    own = family_of(code)
    errors = [
        (
            f"accepts_codes[{i}]",
            f"{c} is in the material family {family_of(c)}, {code} in {own}",
        )
        for i, c in enumerate(accepts)
        if c in foreign
    ]
    families = sorted({family_of(c) for c in foreign})
    raise Problem(
        422,
        f"a request for {code} (material family {own}) can accept only codes of that family;"
        f" accepts_codes holds codes of {', '.join(families)}: post a request of its own for"
        " those",
        errors=errors,
        kind="accepts-other-family",
    )


# Bulgaria has used the euro since 1 January 2026: lev amounts stay readable in the history
# (events posted before), and a new offer, request or change of terms is priced in euro.
RETIRED_CURRENCIES = {"BGN": "Bulgaria has used the euro since 1 January 2026: price it in EUR"}


def check_currency(currency: str, field: str) -> None:
    if currency in RETIRED_CURRENCIES:
        raise Problem(422, RETIRED_CURRENCIES[currency], field=field, kind="retired-currency")


def eligibility(request: web.Request, listing: Listing) -> dict[str, Any]:
    """Whether the listing can be matched now and, if not, why (marketplace/core/eligibility.py,
    the rules the matcher applies): codes a page can translate, with a sentence each."""
    found = findings_of(listing, market_config(request.app[SETTINGS]))
    return {
        "matchable": matchable(found),
        "findings": [{"code": f.code, "blocking": f.blocking, "detail": f.detail} for f in found],
    }


def accepted(
    event_id: str, kind: Kind, listing_id: str, extra: dict[str, Any] | None = None
) -> tuple[int, dict[str, Any], dict[str, str]]:
    return (
        202,
        {"status": "accepted", "event_id": event_id, f"{kind}_id": listing_id, **(extra or {})},
        {"Location": f"/v1/{kind}s/{listing_id}"},
    )


async def own_listing(request: web.Request, kind: Kind) -> dict[str, Any]:
    """The caller's listing, or 404: another partner's listing does not exist for the caller.
    A facilitator reaches the listings of the SMEs that consented to it; any other listing is
    the same 404 an outsider gets (it tells neither that the listing exists nor whose it is)."""
    listing_id = request.match_info["id"]
    row = await request.app[POOL].fetchrow(
        "SELECT listing_id, owner_id, material_code, body, status, posted_at, updated_at"
        " FROM listings WHERE listing_id = $1 AND kind = $2",
        listing_id,
        kind,
    )
    who = principal(request)
    if row is None or (
        row["owner_id"] != who.partner_id
        and not (
            who.role == "facilitator"
            and await has_consent(request, row["owner_id"], who.partner_id)
        )
    ):
        raise Problem(404, f"no {kind} {listing_id} of yours")
    return as_json(row, request)


def as_json(row: Any, request: web.Request | None = None) -> dict[str, Any]:
    """A listing as its owner reads it; an open one with whether it can be matched now (the
    read model keeps what was posted, the answer applies today's rules and settings)."""
    body = orjson.loads(row["body"])
    out = {
        "id": row["listing_id"],
        "owner_id": row["owner_id"],
        "status": row["status"],
        "posted_at": row["posted_at"].isoformat(),
        "updated_at": row["updated_at"].isoformat(),
        **body,
    }
    if request is not None and row["status"] == "open":
        listing = _listing_from(row["listing_id"], row["owner_id"], body)
        if listing is not None:
            out |= eligibility(request, listing)
    return out


def _listing_from(listing_id: str, owner_id: str, body: dict[str, Any]) -> Listing | None:
    try:
        material = msgspec.convert(body["material"], Material)
        location = msgspec.convert(body["location"], Location)
        if "max_price" in body["terms"]:
            return listing_of(
                listing_id,
                owner_id,
                material,
                location,
                msgspec.convert(body["terms"], RequestTerms),
                accepts=tuple(body.get("accepts_codes", ())),
                hazardous_permit=bool(body.get("hazardous_permit", False)),
            )
        return listing_of(
            listing_id,
            owner_id,
            material,
            location,
            msgspec.convert(body["terms"], OfferTerms),
            certifications=tuple(body.get("certifications", ())),
        )
    except (KeyError, msgspec.ValidationError):
        return None  # a body from an older contract: shown as posted


async def post_offer(request: web.Request) -> web.StreamResponse:
    require_role(request, *WRITERS)
    body = await read_body(request, OfferIn)
    return await idempotent(request, await offer_command(request, body))


async def offer_command(request: web.Request, body: OfferIn) -> Write:
    """The checks and the write of posting an offer, for the API and the pages alike (the same
    command and the same authorization: decision 10). Raises Problem naming the field."""
    require_role(request, *WRITERS)
    check_code(body.material.code, "material.code")
    check_currency(body.terms.price.currency, "terms.price.currency")
    who = principal(request)
    owner = await owner_for(request, body.on_behalf_of)

    async def write(ids: Ids) -> tuple[int, dict[str, Any], dict[str, str]]:
        offer_id, event_id = ids.make("offer"), ids.make("event")
        event = OfferPosted(
            offer_id=offer_id,
            owner_id=owner,
            actor_id=who.partner_id,
            person_id=who.person_id,
            material=body.material,
            location=body.location,
            terms=body.terms,
            certifications=body.certifications,
        )
        await publish(request, event, event_id=event_id, subject=offer_id)
        listing = listing_of(
            offer_id,
            owner,
            body.material,
            body.location,
            body.terms,
            certifications=body.certifications,
        )
        return accepted(event_id, "offer", offer_id, eligibility(request, listing))

    return write


async def post_request(request: web.Request) -> web.StreamResponse:
    require_role(request, *WRITERS)
    body = await read_body(request, RequestIn)
    return await idempotent(request, await request_command(request, body))


async def request_command(request: web.Request, body: RequestIn) -> Write:
    """The checks and the write of posting a request (see offer_command)."""
    require_role(request, *WRITERS)
    check_code(body.material.code, "material.code")
    for i, code in enumerate(body.accepts_codes):
        check_code(code, f"accepts_codes[{i}]")
    check_accepts(body.material.code, body.accepts_codes)
    check_currency(body.terms.max_price.currency, "terms.max_price.currency")
    who = principal(request)
    owner = await owner_for(request, body.on_behalf_of)

    async def write(ids: Ids) -> tuple[int, dict[str, Any], dict[str, str]]:
        request_id, event_id = ids.make("request"), ids.make("event")
        event = RequestPosted(
            request_id=request_id,
            owner_id=owner,
            actor_id=who.partner_id,
            person_id=who.person_id,
            material=body.material,
            accepts_codes=body.accepts_codes,
            location=body.location,
            hazardous_permit=body.hazardous_permit,
            terms=body.terms,
        )
        await publish(request, event, event_id=event_id, subject=request_id)
        listing = listing_of(
            request_id,
            owner,
            body.material,
            body.location,
            body.terms,
            accepts=body.accepts_codes,
            hazardous_permit=body.hazardous_permit,
        )
        return accepted(event_id, "request", request_id, eligibility(request, listing))

    return write


async def _change(request: web.Request, kind: Kind, withdraw: bool) -> web.StreamResponse:
    require_role(request, *WRITERS)
    current = await own_listing(request, kind)
    if withdraw:
        reason = (await read_body(request, WithdrawIn, optional=True)).reason
        return await idempotent(request, withdraw_command(request, kind, current, reason))
    if current["status"] != "open":
        raise Problem(409, f"{kind} {current['id']} is {current['status']}", kind="not-open")
    terms: OfferTerms | RequestTerms
    if kind == "offer":
        terms = (await read_body(request, OfferTermsIn)).terms
    else:
        terms = (await read_body(request, RequestTermsIn)).terms
    return await idempotent(request, update_command(request, kind, current, terms))


def update_command(
    request: web.Request, kind: Kind, current: dict[str, Any], terms: OfferTerms | RequestTerms
) -> Write:
    """Changing the terms of the caller's open listing `current` (as `own_listing` read it),
    for the API and the pages alike."""
    require_role(request, *WRITERS)
    if current["status"] != "open":
        raise Problem(409, f"{kind} {current['id']} is {current['status']}", kind="not-open")
    who = principal(request)
    owner = current["owner_id"]
    code = current["material"]["code"]
    event: Event
    if isinstance(terms, OfferTerms):
        check_currency(terms.price.currency, "terms.price.currency")
        event = OfferUpdated(
            offer_id=current["id"],
            owner_id=owner,
            actor_id=who.partner_id,
            person_id=who.person_id,
            material_code=code,
            terms=terms,
        )
    else:
        check_currency(terms.max_price.currency, "terms.max_price.currency")
        event = RequestUpdated(
            request_id=current["id"],
            owner_id=owner,
            actor_id=who.partner_id,
            person_id=who.person_id,
            material_code=code,
            terms=terms,
        )
    return _publishing(request, kind, current["id"], event)


def _publishing(request: web.Request, kind: Kind, listing_id: str, event: Event) -> Write:
    async def write(ids: Ids) -> tuple[int, dict[str, Any], dict[str, str]]:
        event_id = ids.make("event")
        await publish(request, event, event_id=event_id, subject=listing_id)
        return accepted(event_id, kind, listing_id)

    return write


def withdraw_command(
    request: web.Request, kind: Kind, current: dict[str, Any], reason: str
) -> Write:
    """Withdrawing the caller's open listing `current` (as `own_listing` read it), for the API
    and the pages alike."""
    require_role(request, *WRITERS)
    if current["status"] != "open":
        raise Problem(409, f"{kind} {current['id']} is {current['status']}", kind="not-open")
    who = principal(request)
    event: Event
    if kind == "offer":
        event = OfferWithdrawn(
            offer_id=current["id"],
            owner_id=current["owner_id"],
            actor_id=who.partner_id,
            person_id=who.person_id,
            material_code=current["material"]["code"],
            reason=reason,
        )
    else:
        event = RequestWithdrawn(
            request_id=current["id"],
            owner_id=current["owner_id"],
            actor_id=who.partner_id,
            person_id=who.person_id,
            material_code=current["material"]["code"],
            reason=reason,
        )
    return _publishing(request, kind, current["id"], event)


async def list_own(request: web.Request, kind: Kind) -> web.StreamResponse:
    try:
        limit = int(request.query.get("limit", "50"))
        offset = int(request.query.get("offset", "0"))
    except ValueError:
        raise Problem(
            400, "limit and offset must be integers", field="limit", kind="validation"
        ) from None
    if not 1 <= limit <= 200 or not 0 <= offset <= MAX_OFFSET:
        raise Problem(
            400, "limit is 1 to 200 and offset 0 to 1000000", field="limit", kind="validation"
        )
    status = request.query.get("status")
    if status not in (None, "open", "withdrawn"):
        raise Problem(400, "status is open or withdrawn", field="status", kind="validation")
    who = principal(request)
    owner = who.partner_id
    if who.role == "facilitator":
        sme = request.query.get("on_behalf_of")
        if not sme:
            raise Problem(
                400,
                "a facilitator names the SME in ?on_behalf_of=",
                field="on_behalf_of",
                kind="on-behalf-of-required",
            )
        if not await has_consent(request, sme, who.partner_id):
            raise no_consent(sme, who.partner_id, "on_behalf_of")
        owner = sme
    rows = await request.app[POOL].fetch(
        "SELECT listing_id, owner_id, material_code, body, status, posted_at, updated_at"
        " FROM listings WHERE owner_id = $1 AND kind = $2 AND ($3::text IS NULL OR status = $3)"
        " ORDER BY posted_at DESC, listing_id LIMIT $4 OFFSET $5",
        owner,
        kind,
        status,
        limit,
        offset,
    )
    return web.json_response(
        {"items": [as_json(r, request) for r in rows], "limit": limit, "offset": offset},
        dumps=lambda o: orjson.dumps(o).decode(),
    )


async def get_offer(request: web.Request) -> web.StreamResponse:
    return web.json_response(await own_listing(request, "offer"))


async def get_request(request: web.Request) -> web.StreamResponse:
    return web.json_response(await own_listing(request, "request"))


async def list_offers(request: web.Request) -> web.StreamResponse:
    return await list_own(request, "offer")


async def list_requests(request: web.Request) -> web.StreamResponse:
    return await list_own(request, "request")


async def update_offer(request: web.Request) -> web.StreamResponse:
    return await _change(request, "offer", withdraw=False)


async def update_request(request: web.Request) -> web.StreamResponse:
    return await _change(request, "request", withdraw=False)


async def withdraw_offer(request: web.Request) -> web.StreamResponse:
    return await _change(request, "offer", withdraw=True)


async def withdraw_request(request: web.Request) -> web.StreamResponse:
    return await _change(request, "request", withdraw=True)


def add_routes(app: web.Application) -> None:
    app.router.add_post("/v1/offers", post_offer)
    app.router.add_get("/v1/offers", list_offers)
    app.router.add_get("/v1/offers/{id}", get_offer)
    app.router.add_put("/v1/offers/{id}", update_offer)
    app.router.add_delete("/v1/offers/{id}", withdraw_offer)
    app.router.add_post("/v1/requests", post_request)
    app.router.add_get("/v1/requests", list_requests)
    # `preview` is no request's id: that path answers POST only (405 with `Allow: POST`).
    one = "/v1/requests/{id:(?!preview$)[^{}/]+}"
    app.router.add_get(one, get_request)
    app.router.add_put(one, update_request)
    app.router.add_delete(one, withdraw_request)
