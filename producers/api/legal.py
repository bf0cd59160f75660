"""An organisation's legal data (#22): the legal name, address, VAT number and Peppol participant
id that the documents of its deals carry.

    GET /v1/partners/{id}/legal     the latest declaration (the projector's read model)
    PUT /v1/partners/{id}/legal     declare it: 202, `partners.legal.declared.v1`

Each organisation declares its own; the operator (the association's staff) may declare any
organisation's. Anyone else gets 404, as for an organisation that does not exist. The checks are
marketplace/core/legal.py's, each refused field named (422)."""

from __future__ import annotations

from typing import Any

import msgspec
from aiohttp import web

from marketplace.core import legal
from producers.api.auth import require_role
from producers.api.context import POOL, principal
from producers.api.problems import Problem
from producers.api.writes import Ids, Write, idempotent, publish, read_body
from schemas.partners import LegalDataDeclared


class LegalIn(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """An organisation's legal data as written by a person or a system (checked and put in normal
    form before it is published: VAT number in capitals without spaces, Peppol id in the long
    form)."""

    legal_name: str
    street: str
    postcode: str
    city: str
    country: str
    vat_number: str = ""
    peppol_id: str = ""


FIELDS = ("legal_name", "street", "postcode", "city", "country", "vat_number", "peppol_id")


async def _organisation(request: web.Request, partner_id: str) -> None:
    """404 unless the caller is that organisation or the operator, and it is registered;
    auditors take no part in deals (403)."""
    require_role(request, "sme", "logistics", "facilitator", "operator")
    who = principal(request)
    if who.partner_id == partner_id:
        return  # its key says who it is, even before the projector shows its registration
    if who.role != "operator":
        raise Problem(404, f"no organisation {partner_id} of yours", kind="not-found")
    known = await request.app[POOL].fetchval(
        "SELECT EXISTS (SELECT 1 FROM partners WHERE partner_id = $1)", partner_id
    )
    if not known:
        raise Problem(404, f"no organisation {partner_id} of yours", kind="not-found")


async def current(request: web.Request, partner_id: str) -> dict[str, Any] | None:
    row = await request.app[POOL].fetchrow(
        "SELECT legal_name, street, postcode, city, country, vat_number, peppol_id, event_id,"
        " updated_at FROM partner_legal WHERE partner_id = $1",
        partner_id,
    )
    if row is None:
        return None
    return {
        "partner_id": partner_id,
        **{name: row[name] for name in FIELDS},
        "event_id": row["event_id"],
        "updated_at": row["updated_at"].isoformat(),
    }


async def legal_command(request: web.Request, partner_id: str, body: LegalIn) -> Write:
    """The checks and the write of declaring `partner_id`'s legal data, for the API and the
    pages alike. Refused fields: 422 naming each."""
    await _organisation(request, partner_id)
    data, errors = legal.checked(**msgspec.structs.asdict(body))
    if data is None:
        raise Problem(422, errors[0][1], errors=errors, kind="validation")
    who = principal(request)

    async def write(ids: Ids) -> tuple[int, dict[str, Any], dict[str, str]]:
        event_id = ids.make("event")
        event = LegalDataDeclared(
            partner_id=partner_id,
            actor_id=who.partner_id,
            person_id=who.person_id,
            legal_name=data.legal_name,
            street=data.street,
            postcode=data.postcode,
            city=data.city,
            country=data.country,
            vat_number=data.vat_number,
            peppol_id=data.peppol_id,
        )
        await publish(request, event, event_id=event_id, subject=partner_id)
        return 202, {"status": "accepted", "event_id": event_id}, {}

    return write


async def put_legal(request: web.Request) -> web.StreamResponse:
    partner_id = request.match_info["id"]
    await _organisation(request, partner_id)
    body = await read_body(request, LegalIn)
    return await idempotent(request, await legal_command(request, partner_id, body))


async def get_legal(request: web.Request) -> web.StreamResponse:
    partner_id = request.match_info["id"]
    await _organisation(request, partner_id)
    found = await current(request, partner_id)
    if found is None:
        raise Problem(404, "no legal data declared yet", kind="not-found")
    return web.json_response(found)


def add_routes(app: web.Application) -> None:
    app.router.add_put("/v1/partners/{id}/legal", put_legal)
    app.router.add_get("/v1/partners/{id}/legal", get_legal)
