"""A standing agreement's document set per delivery period (#22 item 3).

Each period's delivery of a confirmed standing agreement (market.delivery.scheduled.v1, kept by
the deals consumer) is a deal of its own for its documents: its order (the period's quantity,
price and windows), the transport document of its transport job once awarded, with the
carrier's pickup and delivery confirmations of that job, the delivery report once the carrier
confirmed the delivery, and its invoices (the material's and the transport's), numbered in the
issuers' one sequence. They are built, versioned, approved, stored and served by the same code as
a one-off match's (producers/api/documents.py, producers/api/invoices.py), under the period's
delivery id instead of the match id.

    GET  /v1/matches/{id}/deliveries                               the periods and their links
    GET  /v1/matches/{id}/deliveries/{delivery_id}/documents       a period's documents, invoices
    GET  /v1/matches/{id}/deliveries/{delivery_id}/documents/{kind}/{version}.pdf|.json
    POST /v1/matches/{id}/deliveries/{delivery_id}/documents/{kind}/{version}/approve
    POST /v1/matches/{id}/deliveries/{delivery_id}/transport/{stage}     the period's carrier
    GET  /v1/matches/{id}/deliveries/{delivery_id}/invoices/{kind}.xml|.pdf

Who reaches them: the agreement's deal room (producers/api/deals.py `room_of`): the seller, the
buyer, a facilitator of a consenting SME; of the carriers, only the one the period's transport
is awarded to. Anyone else, and a delivery id that is not one of the agreement's periods: 404."""

from __future__ import annotations

import dataclasses
from typing import Any

import orjson
from aiohttp import web

from marketplace.translate.auction import job_id_for
from producers.api import documents, invoices
from producers.api.auth import require_role
from producers.api.context import POOL
from producers.api.deals import ROLES, Room, room_of
from producers.api.problems import Problem
from producers.api.writes import idempotent, read_body

SCHEDULED = "market.delivery.scheduled.v1"
AWARDED = "logistics.transport.awarded.v1"


async def period_room(request: web.Request, match_id: str, delivery_id: str) -> Room:
    """The caller's place in the documents of one delivery period of the agreement `match_id`,
    or 404 (as for an outsider): the agreement's room, with the period's carrier."""
    room = await room_of(request, match_id)
    pool = request.app[POOL]
    known = await pool.fetchval(
        "SELECT 1 FROM deal_events WHERE match_id = $1 AND type = $2 AND body->>'delivery_id' = $3",
        match_id,
        SCHEDULED,
        delivery_id,
    )
    missing = Problem(
        404, f"no delivery period {delivery_id} of match {match_id} of yours", kind="not-found"
    )
    if known is None:
        raise missing
    # The carrier the period's transport job is awarded to (a job awarded again names the one
    # that carries it).
    carrier: str | None = await pool.fetchval(
        "SELECT body->>'carrier_id' FROM deal_events WHERE match_id = $1 AND type = $2"
        " AND body->>'job_id' = $3 ORDER BY seq DESC LIMIT 1",
        match_id,
        AWARDED,
        job_id_for(delivery_id),
    )
    if room.side == "carrier" and room.carrier_id != carrier:
        # A carrier of another period of the agreement has no place in this one.
        raise missing
    return dataclasses.replace(room, carrier_id=carrier, delivery_id=delivery_id)


async def periods_json(request: web.Request, room: Room) -> list[dict[str, Any]]:
    """The agreement's delivery periods as the deals consumer has them, oldest first: each
    with its key, windows, quantity, carrier and the path of its documents."""
    rows = await request.app[POOL].fetch(
        "SELECT body FROM deal_events WHERE match_id = $1 AND type = $2"
        " ORDER BY body->'pickup_window'->>'start', seq",
        room.match_id,
        SCHEDULED,
    )
    out: list[dict[str, Any]] = []
    seen: set[str] = set()
    for row in rows:
        body = orjson.loads(row["body"])
        delivery_id = body["delivery_id"]
        if delivery_id in seen:
            continue
        seen.add(delivery_id)
        period = dataclasses.replace(room, delivery_id=delivery_id)
        out.append(
            {
                "delivery_id": delivery_id,
                "period_key": body["period_key"],
                "quantity": body["quantity"],
                "pickup_window": body["pickup_window"],
                "delivery_window": body["delivery_window"],
                "job_id": job_id_for(delivery_id),
                "documents": f"{documents.base_of(period)}/documents",
            }
        )
    return out


async def _room(request: web.Request) -> Room:
    require_role(request, *ROLES)
    info = request.match_info
    return await period_room(request, info["id"], info["delivery_id"])


async def list_periods(request: web.Request) -> web.StreamResponse:
    require_role(request, *ROLES)
    room = await room_of(request, request.match_info["id"])
    if room.side == "carrier":
        # A carrier sees the periods it carries only.
        listed = []
        for entry in await periods_json(request, room):
            try:
                await period_room(request, room.match_id, entry["delivery_id"])
            except Problem:
                continue
            listed.append(entry)
    else:
        listed = await periods_json(request, room)
    return web.json_response({"match_id": room.match_id, "periods": listed})


async def list_documents(request: web.Request) -> web.StreamResponse:
    room = await _room(request)
    listed = await invoices.room_documents(request, room)
    base = f"{documents.base_of(room)}/invoices"
    for entry in listed["invoices"]:
        issued = entry["state"] == "issued"
        entry["xml"] = f"{base}/{entry['kind']}.xml" if issued else None
        entry["pdf"] = f"{base}/{entry['kind']}.pdf" if issued else None
    return web.json_response(listed)


async def download(request: web.Request) -> web.StreamResponse:
    room = await _room(request)
    info = request.match_info
    data, media_type, name = await documents.document_file(
        request, room, info["kind"], int(info["version"]), info["fmt"]
    )
    return documents.file_response(data, media_type, name)


async def approve(request: web.Request) -> web.StreamResponse:
    room = await _room(request)
    key = request.headers.get("Idempotency-Key")
    if key is not None and not 1 <= len(key) <= 200:
        raise Problem(400, "Idempotency-Key must be 1 to 200 characters", field="Idempotency-Key")
    info = request.match_info
    answer = await documents.approve_command(request, room, info["kind"], int(info["version"]))
    return web.json_response(answer, status=202 if answer["status"] == "accepted" else 200)


async def confirm_transport(request: web.Request) -> web.StreamResponse:
    room = await _room(request)
    body = await read_body(request, documents.TransportIn)
    write = await documents.transport_command(request, room, request.match_info["stage"], body)
    return await idempotent(request, write)


async def download_invoice(request: web.Request) -> web.StreamResponse:
    room = await _room(request)
    info = request.match_info
    data, media_type, name = await invoices.invoice_file(request, room, info["kind"], info["fmt"])
    return documents.file_response(data, media_type, name)


def add_routes(app: web.Application) -> None:
    r = app.router
    base = "/v1/matches/{id}/deliveries"
    one = base + "/{delivery_id}"
    r.add_get(base, list_periods)
    r.add_get(one + "/documents", list_documents)
    r.add_get(one + "/documents/{kind}/{version:\\d{1,6}}.{fmt:pdf|json}", download)
    r.add_post(one + "/documents/{kind}/{version:\\d{1,6}}/approve", approve)
    r.add_post(one + "/transport/{stage}", confirm_transport)
    r.add_get(one + "/invoices/{kind}.{fmt:xml|pdf}", download_invoice)
