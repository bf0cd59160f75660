"""An SME's pages: its listings, posting and withdrawing an offer, the List of Waste search,
and its proposals, accepted or declined, arriving live."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import aiohttp_jinja2
import orjson
from aiohttp import web

from marketplace.core.disclosure import about_km, disclosed
from marketplace.core.sketch_map import approximate, sketch
from marketplace.reference import list_of_waste
from producers.api.bodies import OfferIn, OfferTermsIn, RequestIn, RequestTermsIn
from producers.api.context import POOL
from producers.api.listings import (
    Kind,
    offer_command,
    request_command,
    update_command,
    withdraw_command,
)
from producers.api.matches import answer_command
from producers.api.problems import Problem
from producers.api.writes import idempotent_answer
from producers.web.common import (
    ACTING,
    acting_principal,
    form_of,
    gettext_of,
    live_fragment,
    new_key,
    person_of,
    render,
    see_other,
)
from producers.web.forms import decode, document, field_errors
from producers.web.session import PREFIX, SESSION, base_context

RECURRENCE = ("terms.recurrence.period", "terms.recurrence.starts", "terms.recurrence.ends")
OFFER_FIELDS = (
    "material.code",
    "material.description",
    "material.form",
    "material.recycled_content_pct",
    "material.contamination_pct",
    "terms.quantity.amount",
    "terms.quantity.unit",
    "terms.price.amount",
    "terms.price.currency",
    "terms.available.start",
    "terms.available.end",
    "terms.min_lot.amount",
    "terms.min_lot.unit",
    *RECURRENCE,
    "location.lat",
    "location.lon",
    "location.region",
    "certifications",
)
REQUEST_FIELDS = (
    "material.code",
    "material.description",
    "accepts_codes",
    "hazardous_permit",
    "terms.quantity.amount",
    "terms.quantity.unit",
    "terms.max_price.amount",
    "terms.max_price.currency",
    "terms.wanted.start",
    "terms.wanted.end",
    "terms.max_distance_km",
    *RECURRENCE,
    "terms.specification.min_recycled_content_pct",
    "terms.specification.max_contamination_pct",
    "terms.specification.certifications",
    "terms.specification.weight_price",
    "location.lat",
    "location.lon",
    "location.region",
)
MOMENTS = ("terms.available.start", "terms.available.end", "terms.wanted.start", "terms.wanted.end")
LISTS = ("accepts_codes", "certifications", "terms.specification.certifications")
FLAGS = ("hazardous_permit",)


# The start page of whoever is not an SME: the pages of their organisation's role.
STARTS = {
    "logistics": PREFIX + "/logistics",
    "auditor": PREFIX + "/audit",
    "facilitator": PREFIX + "/facilitation",
}


async def home(request: web.Request) -> web.StreamResponse:
    person = person_of(request)
    if person.role == "operator":
        return see_other(PREFIX + "/staff/organisations")
    start = STARTS.get(request[SESSION].organisation_role or "")
    if start is not None:
        return see_other(start)
    rows: list[Any] = []
    if person.partner_id is not None:
        rows = await request.app[POOL].fetch(
            "SELECT listing_id, kind, material_code, body, status, posted_at FROM listings"
            " WHERE owner_id = $1 ORDER BY posted_at DESC, listing_id LIMIT 100",
            person.partner_id,
        )
    taxonomy = list_of_waste()
    listings = []
    for r in rows:
        body = orjson.loads(r["body"])
        entry = taxonomy.get(r["material_code"])
        quantity = body.get("terms", {}).get("quantity", {})
        listings.append(
            {
                "id": r["listing_id"],
                "kind": r["kind"],
                "code": r["material_code"],
                "title": entry.description if entry is not None else "",
                "description": body.get("material", {}).get("description", ""),
                "amount": quantity.get("amount"),
                "unit": quantity.get("unit"),
                "status": r["status"],
                "posted_at": r["posted_at"],
            }
        )
    return render(request, "home.html", listings=listings, can_act=person.role in ACTING)


KINDS: dict[str, tuple[str, tuple[str, ...]]] = {
    "offer": ("offer_form.html", OFFER_FIELDS),
    "request": ("request_form.html", REQUEST_FIELDS),
}


def kind_of(request: web.Request) -> Kind:
    kind = request.match_info["kind"].removesuffix("s")
    if kind not in KINDS:
        raise web.HTTPNotFound()
    return kind  # type: ignore[return-value]  # checked just above


async def new_listing(request: web.Request) -> web.Response:
    template, _fields = KINDS[kind_of(request)]
    return render(request, template, form={}, errors={}, key=new_key())


async def post_listing(request: web.Request) -> web.StreamResponse:
    kind = kind_of(request)
    template, fields = KINDS[kind]
    form = await form_of(request)
    await acting_principal(request)
    _ = gettext_of(request)
    try:
        doc = document(form, fields, moments=MOMENTS, lists=LISTS, flags=FLAGS)
        if kind == "offer":
            write = await offer_command(request, decode(doc, OfferIn))
        else:
            write = await request_command(request, decode(doc, RequestIn))
        _status, answer, _headers = await idempotent_answer(request, write, form.get("key"))
    except Problem as problem:
        if problem.status >= 500:
            errors = {"body": _("The exchange cannot store this right now. Try again shortly.")}
        else:
            errors = field_errors(problem, _)
        return render(request, template, status=422, form=form, errors=errors, key=form.get("key"))
    listing_id = orjson.loads(answer)[f"{kind}_id"]
    return see_other(f"{PREFIX}/?posted={listing_id}")


async def withdraw_listing(request: web.Request) -> web.StreamResponse:
    kind = kind_of(request)
    form = await form_of(request)
    who = await acting_principal(request)
    row = await request.app[POOL].fetchrow(
        "SELECT listing_id, owner_id, body, status FROM listings"
        " WHERE listing_id = $1 AND kind = $2 AND owner_id = $3",
        request.match_info["id"],
        kind,
        who.partner_id,
    )
    if row is None:
        raise web.HTTPNotFound(text=f"no such {kind} of your organisation")
    current = {"id": row["listing_id"], "owner_id": row["owner_id"], "status": row["status"]}
    current |= orjson.loads(row["body"])
    try:
        write = withdraw_command(request, kind, current, form.get("reason", ""))
        await idempotent_answer(request, write, form.get("key"))
    except Problem as problem:
        raise web.HTTPConflict(text=problem.detail) from None
    return see_other(f"{PREFIX}/?withdrawn={row['listing_id']}")


def terms_fields(kind: Kind) -> tuple[str, ...]:
    fields = OFFER_FIELDS if kind == "offer" else REQUEST_FIELDS
    return tuple(f for f in fields if f.startswith("terms."))


def flat(value: Any, prefix: str = "") -> dict[str, str]:
    """A document as a form's dotted fields (dates of moments as the day, lists by commas)."""
    if isinstance(value, dict):
        out: dict[str, str] = {}
        for key, inner in value.items():
            out |= flat(inner, f"{prefix}.{key}" if prefix else key)
        return out
    if isinstance(value, list):
        return {prefix: ", ".join(str(v) for v in value)}
    if value is None:
        return {}
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        text = str(int(value))  # 150.0 reads 150; other floats keep every digit
    else:
        text = str(value)
    return {prefix: text[:10] if prefix in MOMENTS else text}


async def own_open_listing(request: web.Request, kind: Kind) -> dict[str, Any]:
    """The organisation's listing as `withdraw_command`/`update_command` take it, or 404."""
    who = await acting_principal(request)
    row = await request.app[POOL].fetchrow(
        "SELECT listing_id, owner_id, body, status FROM listings"
        " WHERE listing_id = $1 AND kind = $2 AND owner_id = $3",
        request.match_info["id"],
        kind,
        who.partner_id,
    )
    if row is None:
        raise web.HTTPNotFound(text=f"no such {kind} of your organisation")
    body: dict[str, Any] = orjson.loads(row["body"])
    return {"id": row["listing_id"], "owner_id": row["owner_id"], "status": row["status"]} | body


async def edit_listing(request: web.Request) -> web.Response:
    kind = kind_of(request)
    current = await own_open_listing(request, kind)
    if current["status"] != "open":
        raise web.HTTPConflict(text=f"this {kind} is {current['status']}")
    form = flat({"terms": current.get("terms", {})})
    return render(
        request,
        "listing_edit.html",
        kind=kind,
        listing=current,
        form=form,
        errors={},
        key=new_key(),
    )


async def update_listing(request: web.Request) -> web.StreamResponse:
    kind = kind_of(request)
    form = await form_of(request)
    current = await own_open_listing(request, kind)
    _ = gettext_of(request)
    try:
        doc = document(form, terms_fields(kind), moments=MOMENTS, lists=LISTS, flags=FLAGS)
        if kind == "offer":
            terms: Any = decode(doc, OfferTermsIn).terms
        else:
            terms = decode(doc, RequestTermsIn).terms
        write = update_command(request, kind, current, terms)
        await idempotent_answer(request, write, form.get("key"))
    except Problem as problem:
        if problem.status == 409:
            raise web.HTTPConflict(text=problem.detail) from None
        if problem.status >= 500:
            errors = {"body": _("The exchange cannot store this right now. Try again shortly.")}
        else:
            errors = field_errors(problem, _)
        return render(
            request,
            "listing_edit.html",
            status=422,
            kind=kind,
            listing=current,
            form=form,
            errors=errors,
            key=form.get("key"),
        )
    return see_other(f"{PREFIX}/?updated={current['id']}")


async def codes(request: web.Request) -> web.Response:
    """The List of Waste entries matching the words or digits typed (htmx active search)."""
    query = request.query.get("q", "").strip().lower().replace(" ", "")
    words = request.query.get("q", "").strip().lower().split()
    found = []
    if query:
        for entry in list_of_waste().entries():
            if entry.code.startswith(query) or (
                words and all(w in entry.description.lower() for w in words)
            ):
                found.append(entry)
            if len(found) == 20:
                break
    return render(request, "codes.html", entries=found)


async def proposal_rows(request: web.Request, partner_id: str) -> list[dict[str, Any]]:
    rows = await request.app[POOL].fetch(
        "SELECT m.match_id, m.material_code, m.seller_id, m.buyer_id, m.body, m.status,"
        " m.answers, m.proposed_at, m.transport, c.name AS carrier_name,"
        " o.body->'location' AS offer_place, q.body->'location' AS request_place"
        " FROM matches m LEFT JOIN partners c ON c.partner_id = m.transport->>'carrier_id'"
        " LEFT JOIN listings o ON o.listing_id = m.body->>'offer_id' AND o.kind = 'offer'"
        " LEFT JOIN listings q ON q.listing_id = m.body->>'request_id' AND q.kind = 'request'"
        " WHERE $1 IN (m.seller_id, m.buyer_id)"
        " ORDER BY proposed_at DESC, match_id LIMIT 100",
        partner_id,
    )
    taxonomy = list_of_waste()
    out = []
    for r in rows:
        body = orjson.loads(r["body"])
        entry = taxonomy.get(r["material_code"])
        answers = orjson.loads(r["answers"])
        price = body.get("delivered_price", {})
        # A standing agreement's quantity is its quantity per period (week, month, ...).
        agreement = body.get("agreement") or {}
        quantity = agreement.get("quantity") or body.get("quantity", {})
        seller = r["seller_id"] == partner_id
        exact = disclosed(r["status"])
        out.append(
            {
                "id": r["match_id"],
                "side": "seller" if seller else "buyer",
                "code": r["material_code"],
                "title": entry.description if entry is not None else "",
                "amount": quantity.get("amount"),
                "unit": quantity.get("unit"),
                "period": agreement.get("period", ""),
                "price": f"{price.get('amount', 0):.2f} {price.get('currency', '')}",
                # Exact once confirmed; before, rounded as the map's words say it, so that the
                # figure does not narrow the map's circle round the other side
                # (marketplace/core/disclosure.py, as the API and the notifications say it).
                "distance_exact": exact,
                "distance_km": (
                    f"{body.get('distance_km', 0):.0f}"
                    if exact
                    else str(about_km(body.get("distance_km", 0)))
                ),
                "co2e_known": body.get("co2e_known", True),
                "co2e_saved_kg": f"{body.get('co2e_saved_kg', 0):.0f}",
                "transport_co2e_kg": f"{body.get('transport_co2e_kg', 0):.0f}",
                "score": f"{body.get('score', 0):.2f}",
                "status": r["status"],
                "answered": partner_id in answers,
                "transport": _transport(r["transport"], r["carrier_name"]),
                "proposed_at": r["proposed_at"],
                "map": proposal_map(
                    r["offer_place"] if seller else r["request_place"],
                    r["request_place"] if seller else r["offer_place"],
                    confirmed=exact,
                    distance_km=body.get("distance_km", 0),
                ),
            }
        )
    return out


def proposal_map(
    own_raw: str | None, other_raw: str | None, *, confirmed: bool, distance_km: float
) -> dict[str, Any] | None:
    """What a proposal's map draws and says (#19): the organisation's own place, and the other
    side's: exact once the match is confirmed; before, only rounded to the grid with the circle
    that holds it (the exact coordinates never leave this function then, and the map's extent
    is computed from the rounded place alone). None when a listing's place is not known."""
    if not own_raw or not other_raw:
        return None
    own, other = orjson.loads(own_raw), orjson.loads(other_raw)
    if confirmed:
        lat, lon, radius_km = other["lat"], other["lon"], 0.0
    else:
        area = approximate(other["lat"], other["lon"])
        lat, lon, radius_km = area.lat, area.lon, area.radius_km
    drawn = sketch(own["lat"], own["lon"], lat, lon, radius_km)
    return {
        "exact": confirmed,
        "sketch": drawn,
        "region": other.get("region") or "",
        "radius_km": f"{radius_km:.0f}",
        "distance_km": f"{distance_km:.0f}" if confirmed else str(about_km(distance_km)),
        # Written out for the text beside the map: the exact place only once confirmed.
        "lat": f"{lat:.4f}" if confirmed else "",
        "lon": f"{lon:.4f}" if confirmed else "",
    }


def market_filters(values: Mapping[str, str]) -> tuple[str, str, str] | None:
    """The open market's filters (kind, words or a code, the start of a region's code) as
    given, or None when one is out of bounds (a saved search keeps the same three)."""
    kind = values.get("kind", "")
    words = values.get("q", "").strip()
    region = values.get("region", "").strip().upper()
    if kind not in ("", "offer", "request") or len(words) > 100 or len(region) > 5:
        return None
    return kind, words, region


async def market(request: web.Request) -> web.Response:
    """The open market: others' open listings, found by kind, code or words, and region, shown
    without their owner (material, quantity, region, window; never the place or the firm)."""
    person = person_of(request)
    found_filters = market_filters(request.query)
    if found_filters is None:
        raise web.HTTPUnprocessableEntity(text="kind is offer or request; q and region are short")
    kind, words, region = found_filters
    taxonomy = list_of_waste()
    codes: list[str] | None = None
    if words:
        digits = words.replace(" ", "")
        lowered = words.lower().split()
        codes = [
            e.code
            for e in taxonomy.entries()
            if (digits.isdigit() and e.code.startswith(digits))
            or all(w in e.description.lower() for w in lowered)
        ]
    rows = await request.app[POOL].fetch(
        "SELECT kind, material_code, body FROM listings"
        " WHERE status = 'open' AND owner_id IS DISTINCT FROM $1"
        "   AND ($2 = '' OR kind = $2)"
        "   AND ($3::text[] IS NULL OR material_code = ANY($3::text[]))"
        "   AND ($4 = '' OR body->'location'->>'region' LIKE $4 || '%')"
        " ORDER BY posted_at DESC, listing_id LIMIT 50",
        person.partner_id,
        kind,
        codes,
        region,
    )
    found = []
    for r in rows:
        body = orjson.loads(r["body"])
        terms = body.get("terms", {})
        window = terms.get("available") or terms.get("wanted") or {}
        entry = taxonomy.get(r["material_code"])
        found.append(
            {
                "kind": r["kind"],
                "code": r["material_code"],
                "title": entry.description if entry is not None else "",
                "amount": terms.get("quantity", {}).get("amount"),
                "unit": terms.get("quantity", {}).get("unit"),
                "region": body.get("location", {}).get("region") or "",
                "start": str(window.get("start", ""))[:10],
                "end": str(window.get("end", ""))[:10],
            }
        )
    return render(request, "market.html", listings=found, kind=kind, q=words, region=region)


def _transport(raw: str | None, carrier: str | None) -> dict[str, Any] | None:
    """The transport of a confirmed match as its SMEs see it: bidding, or the award (the
    carrier's name and price: the winner and the two SMEs may know it)."""
    if not raw:
        return None
    transport = orjson.loads(raw)
    price = transport.get("price") or {}
    return {
        "status": transport.get("status", "open"),
        "carrier": carrier or "",
        "price": f"{price.get('amount', 0):.2f} {price.get('currency', '')}" if price else "",
    }


async def proposals(request: web.Request) -> web.Response:
    person = person_of(request)
    rows = await proposal_rows(request, person.partner_id) if person.partner_id else []
    return render(request, "proposals.html", proposals=rows, can_act=person.role in ACTING)


async def answer(request: web.Request) -> web.StreamResponse:
    form = await form_of(request)
    who = await acting_principal(request)
    row = await request.app[POOL].fetchrow(
        "SELECT match_id, material_code, status, answers FROM matches"
        " WHERE match_id = $1 AND $2 IN (seller_id, buyer_id)",
        request.match_info["id"],
        who.partner_id,
    )
    if row is None:
        raise web.HTTPNotFound(text="no such proposal of your organisation")
    accept = request.match_info["answer"] == "accept"
    try:
        write = answer_command(request, row, accept, form.get("reason", ""))
        await idempotent_answer(request, write, None)
    except Problem as problem:
        raise web.HTTPConflict(text=problem.detail) from None
    return see_other(f"{PREFIX}/proposals?answered={row['match_id']}")


async def live(request: web.Request) -> web.StreamResponse:
    """The organisation's proposals as they change, for htmx's SSE extension to swap in: the
    list is sent on connecting and again whenever it changed, looked at when a notification for
    the organisation is stored (the API's live hub, woken by PostgreSQL NOTIFY) and every
    IDLE_S besides (a notification may be stored before the read model shows its news: the
    notifier and the projector are consumers of their own)."""
    person = person_of(request)
    if person.partner_id is None:
        raise web.HTTPNotFound(text="the association's staff have no proposals")
    partner_id = person.partner_id

    async def fragment() -> str:
        rows = await proposal_rows(request, partner_id)
        return aiohttp_jinja2.render_string(
            "proposals_list.html",
            request,
            base_context(request, proposals=rows, can_act=person.role in ACTING),
        )

    return await live_fragment(request, partner_id, "proposals", fragment)


def add_routes(app: web.Application) -> None:
    r = app.router
    r.add_get(PREFIX + "/", home)
    r.add_get(PREFIX + "/{kind:offers|requests}/new", new_listing)
    r.add_post(PREFIX + "/{kind:offers|requests}", post_listing)
    r.add_post(PREFIX + "/{kind:offers|requests}/{id}/withdraw", withdraw_listing)
    r.add_get(PREFIX + "/{kind:offers|requests}/{id}/edit", edit_listing)
    r.add_post(PREFIX + "/{kind:offers|requests}/{id}", update_listing)
    r.add_get(PREFIX + "/codes", codes)
    r.add_get(PREFIX + "/market", market)
    r.add_get(PREFIX + "/proposals", proposals)
    r.add_post(PREFIX + "/proposals/{id}/{answer:accept|decline}", answer)
    r.add_get(PREFIX + "/live", live)
