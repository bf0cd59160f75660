"""A partner's own profile, and a logistics firm's coverage and capabilities."""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from producers.api.auth import require_role
from producers.api.bodies import CapabilitiesIn
from producers.api.context import POOL, principal
from producers.api.problems import Problem
from producers.api.writes import Ids, Write, idempotent, publish, read_body
from schemas.partners import CarrierCapabilitiesDeclared


async def me(request: web.Request) -> web.StreamResponse:
    who = principal(request)
    row = await request.app[POOL].fetchrow(
        "SELECT name, role, country, region, sector, active, registered_at FROM partners"
        " WHERE partner_id = $1",
        who.partner_id,
    )
    profile: dict[str, Any] = {"partner_id": who.partner_id, "role": who.role}
    if row is not None:
        profile.update(
            name=row["name"],
            country=row["country"],
            region=row["region"],
            sector=row["sector"],
            active=row["active"],
            registered_at=row["registered_at"].isoformat(),
        )
    return web.json_response(profile)


async def put_capabilities(request: web.Request) -> web.StreamResponse:
    require_role(request, "logistics")
    body = await read_body(request, CapabilitiesIn)
    return await idempotent(request, capabilities_command(request, body))


def capabilities_command(request: web.Request, body: CapabilitiesIn) -> Write:
    """The checks and the write of declaring a logistics firm's coverage and capabilities, for
    the API and the pages alike (the same command and authorization: decision 10)."""
    require_role(request, "logistics")
    if not body.depots and not body.regions:
        raise Problem(422, "declare at least one depot with a radius or one region", field="depots")
    who = principal(request)

    async def write(ids: Ids) -> tuple[int, dict[str, Any], dict[str, str]]:
        event_id = ids.make("event")
        event = CarrierCapabilitiesDeclared(
            partner_id=who.partner_id,
            actor_id=who.partner_id,
            person_id=who.person_id,
            depots=body.depots,
            regions=body.regions,
            capacity_t=body.capacity_t,
            hazardous_permit=body.hazardous_permit,
            vehicle_types=body.vehicle_types,
        )
        await publish(request, event, event_id=event_id, subject=who.partner_id)
        return 202, {"status": "accepted", "event_id": event_id}, {}

    return write


async def get_capabilities(request: web.Request) -> web.StreamResponse:
    require_role(request, "logistics")
    row = await request.app[POOL].fetchrow(
        "SELECT capabilities, updated_at FROM carriers WHERE partner_id = $1",
        principal(request).partner_id,
    )
    if row is None:
        raise Problem(404, "no capabilities declared yet")
    return web.json_response(
        {**orjson.loads(row["capabilities"]), "updated_at": row["updated_at"].isoformat()}
    )


def add_routes(app: web.Application) -> None:
    app.router.add_get("/v1/me", me)
    app.router.add_put("/v1/carrier/capabilities", put_capabilities)
    app.router.add_get("/v1/carrier/capabilities", get_capabilities)
