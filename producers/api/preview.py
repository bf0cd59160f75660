"""POST /v1/requests/preview: the suppliers a draft request would meet, published nowhere.

A procurer (an SME, or a facilitator drafting for one) sends the body it would post to
/v1/requests; the answer lists the open offers within its distance, the eligible ones first,
each with the criteria it meets and, for the others, the rule that keeps it out. The pure rules
are marketplace/core/preview.py; this module reads the offers and translates."""

from __future__ import annotations

from typing import Any

import msgspec
import orjson
from aiohttp import web

from marketplace.core.book import Listing
from marketplace.core.disclosure import said_proposal
from marketplace.core.preview import Row, preview
from marketplace.core.units import IncompatibleUnits
from marketplace.reference import substitutions
from marketplace.translate.common import place_of
from marketplace.translate.matching import (
    listing_of,
    market_config,
    request_terms,
)
from producers.api.auth import require_role
from producers.api.bodies import RequestIn
from producers.api.context import POOL, SETTINGS, principal
from producers.api.facilitators import owner_for
from producers.api.listings import check_accepts, check_code
from producers.api.problems import Problem
from producers.api.writes import read_body
from schemas.common import Location, Material, ShortText
from schemas.listings import OfferTerms

# Offers read per preview, nearest codes first; a preview is a look, not a full scan.
MAX_OFFERS = 5000


class _Offer(msgspec.Struct, frozen=True):
    material: Material
    location: Location
    terms: OfferTerms
    certifications: tuple[ShortText, ...] = ()


_offer = msgspec.json.Decoder(_Offer)


def _listing(listing_id: str, owner: str, body: _Offer) -> Listing | None:
    try:
        return listing_of(
            listing_id,
            owner,
            body.material,
            body.location,
            body.terms,
            certifications=body.certifications,
        )
    except IncompatibleUnits:
        return None


def _row(row: Row, names: dict[str, str]) -> dict[str, Any]:
    """One offer as the preview tells it: its distance from the draft's place said roughly
    (marketplace/core/disclosure.py), as a proposal's is until it is confirmed; previews from
    made-up places would otherwise locate an offer exactly."""
    o, c = row.offer, row.candidate
    out: dict[str, Any] = {
        "offer_id": o.id,
        "seller_id": o.owner,
        "seller_name": names.get(o.owner),
        "material_code": o.code,
        "region": o.place.region,
        "distance_km": round(row.distance_km, 1),
        "eligible": row.eligible,
        "refused_because": list(row.refused_because),
        "criteria": [
            {"criterion": x.criterion, "required": x.required, "offered": x.offered, "met": x.met}
            for x in row.criteria
        ],
    }
    if c is not None:
        agreement = c.deal.agreement
        net = c.estimate.net_co2e_kg
        out |= {
            "score": c.score,
            "quantity": {"amount": round(c.quantity, 6), "unit": "t"},
            "delivered_price": {
                "amount": round(c.delivered_price, 2),
                "currency": o.terms.currency,
            },
            "net_co2e_kg": None if net is None else round(net, 1),
            "agreement": None
            if agreement is None
            else {
                "period": agreement.period,
                "starts": agreement.starts.isoformat(),
                "ends": agreement.ends.isoformat() if agreement.ends else None,
            },
        }
    return said_proposal(out, exact=False)


async def preview_request(request: web.Request) -> web.StreamResponse:
    require_role(request, "sme", "facilitator", "operator")
    body = await read_body(request, RequestIn)
    check_code(body.material.code, "material.code")
    for i, code in enumerate(body.accepts_codes):
        check_code(code, f"accepts_codes[{i}]")
    check_accepts(body.material.code, body.accepts_codes)
    mass = (body.material.density_t_per_m3, body.material.mass_per_piece_t)
    try:
        terms = request_terms(body.terms, mass)
    except IncompatibleUnits as exc:
        raise Problem(422, str(exc), field="terms.quantity", kind="unit-not-convertible") from None
    if terms.unit != "t":
        raise Problem(
            422,
            "the quantity must convert to tonnes (give material.density_t_per_m3 or"
            " material.mass_per_piece_t) to be matched",
            field="terms.quantity",
            kind="unit-not-convertible",
        )
    # Drafting for an SME is checked like posting for it: a facilitator needs its consent.
    owner = principal(request).partner_id
    if body.on_behalf_of is not None:
        owner = await owner_for(request, body.on_behalf_of)
    draft = Listing(
        id="draft",
        kind="request",
        owner=owner,
        code=body.material.code,
        place=place_of(body.location),
        terms=terms,
        seq=0,
        hazardous_permit=body.hazardous_permit,
        accepts=body.accepts_codes,
    )
    codes = sorted(
        {body.material.code, *body.accepts_codes, *substitutions().get(body.material.code, ())}
    )
    rows = await request.app[POOL].fetch(
        "SELECT l.listing_id, l.owner_id, l.body, p.name FROM listings l"
        " LEFT JOIN partners p ON p.partner_id = l.owner_id"
        " WHERE l.kind = 'offer' AND l.status = 'open' AND l.material_code = ANY($1::text[])"
        " ORDER BY l.posted_at DESC LIMIT $2",
        codes,
        MAX_OFFERS,
    )
    names = {r["owner_id"]: r["name"] for r in rows if r["name"]}
    offers = [
        listing
        for r in rows
        if (listing := _listing(r["listing_id"], r["owner_id"], _offer.decode(r["body"])))
    ]
    result = preview(draft, offers, market_config(request.app[SETTINGS]))
    items = [_row(r, names) for r in result.rows]
    return web.json_response(
        {
            "published": False,
            "specification": msgspec.to_builtins(body.terms.specification),
            "considered": len(offers),
            "within_distance": result.within_distance,
            "beyond_distance": result.beyond_distance,
            "eligible": result.eligible,
            "items": items,
        },
        dumps=lambda o: orjson.dumps(o).decode(),
    )


def add_routes(app: web.Application) -> None:
    app.router.add_post("/v1/requests/preview", preview_request)
