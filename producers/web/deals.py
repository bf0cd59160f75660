"""The deal rooms on the pages (#22): the rooms of the person's organisation, and one room with its
messages arriving live (SSE, woken by the API's live hub when the deals consumer stores a notice
for the organisation), a form to write with photos and PDFs, and read receipts. Every check and
every event is the API's (producers/api/deals.py): the same room, the same 404 for outsiders."""

from __future__ import annotations

from typing import Any

import aiohttp_jinja2
from aiohttp import web

from marketplace.partners import Principal
from producers.api import deals as api
from producers.api import invoices, periods
from producers.api.context import POOL, PRINCIPAL
from producers.api.problems import Problem
from producers.web.common import ACTING, live_fragment, new_key, person_of, render, see_other
from producers.web.invoice_labels import field_label
from producers.web.session import PREFIX, base_context, csrf_ok


async def _principal(request: web.Request, *, acting: bool) -> Principal:
    """The person's organisation as the API's principal; `acting`: only a member who may change
    things (403 for a read-only one)."""
    person = person_of(request)
    if person.partner_id is None:
        raise web.HTTPNotFound(text="the association's staff have no deal rooms")
    if acting and person.role not in ACTING:
        raise web.HTTPForbidden(text="your role in the organisation lets you read, not change")
    role = await request.app[POOL].fetchval(
        "SELECT role FROM partners WHERE partner_id = $1 AND active", person.partner_id
    )
    if role is None:
        raise web.HTTPNotFound(text="your organisation is not registered on the exchange yet")
    found = Principal(
        partner_id=person.partner_id,
        role=role,
        key_id=f"person:{person.person_id}",
        person_id=person.person_id,
    )
    request[PRINCIPAL] = found
    return found


async def _room(request: web.Request, *, acting: bool = False) -> api.Room:
    await _principal(request, acting=acting)
    try:
        return await api.room_of(request, request.match_info["match_id"])
    except Problem as problem:
        raise web.HTTPNotFound(text=problem.detail) from None


async def _names(request: web.Request, room: api.Room) -> dict[str, str]:
    ids = [p for p in (room.seller_id, room.buyer_id, room.carrier_id) if p]
    rows = await request.app[POOL].fetch(
        "SELECT partner_id, name FROM partners WHERE partner_id = ANY($1::text[])", ids
    )
    return {r["partner_id"]: r["name"] for r in rows}


async def messages_view(request: web.Request, room: api.Room) -> dict[str, Any]:
    me = request[PRINCIPAL].partner_id
    data = await api.room_json(request, room)
    names = await _names(request, room)
    parties = {room.seller_id: "seller", room.buyer_id: "buyer"}
    if room.carrier_id:
        parties[room.carrier_id] = "carrier"
    messages = [
        {
            **m,
            "mine": m["author_id"] == me,
            "author": names.get(m["author_id"], ""),
            "posted": m["posted_at"][:16].replace("T", " "),
            "read_by": [
                {"side": parties.get(p, "facilitator"), "name": names.get(p, "")}
                for p in m["read_by"]
            ],
            "files": [
                {
                    **f,
                    "href": f"{PREFIX}/deals/{room.match_id}/files/{m['message_id']}"
                    f"/{f['attachment_id']}",
                    "image": f["media_type"].startswith("image/"),
                    "kb": max(1, round(f["size"] / 1024)),
                }
                for f in m["attachments"]
            ],
        }
        for m in data["messages"]
    ]
    # The newest message of the others that the organisation has not read yet.
    unread = next(
        (
            m["message_id"]
            for m in reversed(data["messages"])
            if m["author_id"] != me and me not in m["read_by"]
        ),
        None,
    )
    return {"room": room, "names": names, "messages": messages, "last_unread": unread}


async def periods_view(request: web.Request, room: api.Room) -> list[dict[str, Any]]:
    """A standing agreement's delivery periods with their document sets (#22 item 3), those the
    caller has a place in (a carrier, the periods it carries); none for a one-off match."""
    out: list[dict[str, Any]] = []
    for entry in await periods.periods_json(request, room):
        try:
            period = await periods.period_room(request, room.match_id, entry["delivery_id"])
        except Problem:
            continue
        out.append(
            {
                "key": entry["period_key"],
                "delivery_id": entry["delivery_id"],
                "room": period,
                "documents": await invoices.room_documents(request, period),
            }
        )
    return out


async def room_page(
    request: web.Request,
    *,
    form: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    status: int = 200,
) -> web.Response:
    room = await _room(request)
    view = await messages_view(request, room)
    person = person_of(request)
    return render(
        request,
        "deal.html",
        status=status,
        **view,
        documents=await invoices.room_documents(request, room),
        periods=await periods_view(request, room),
        invoice_field=lambda field: field_label(request, field),
        can_act=person.role in ACTING,
        form=form or {},
        errors=errors or {},
        key=new_key(),
        max_text=api.MAX_TEXT,
        max_files=api.MAX_FILES,
        max_mb=api.MAX_FILE_BYTES // (1024 * 1024),
        notice=request.query.get("notice", ""),
    )


async def deal(request: web.Request) -> web.Response:
    return await room_page(request)


def _errors_of(problem: Problem) -> dict[str, str]:
    """The API's refusals by form field (`attachments[1]` -> `attachments`), in its words."""
    out: dict[str, str] = {}
    for field, reason in problem.errors or [(problem.field or "body", problem.detail)]:
        name = (field or "body").split("[", 1)[0]
        if name not in ("text", "attachments"):
            name = "body"
        out[name] = f"{out[name]} {reason}" if name in out else reason
    return out


async def post(request: web.Request) -> web.StreamResponse:
    room = await _room(request, acting=True)
    try:
        text, uploads, fields = await api.uploads(request)
    except Problem as problem:
        return await room_page(request, errors=_errors_of(problem), status=problem.status)
    if not csrf_ok(request, fields.get("csrf")):
        raise web.HTTPForbidden(text="the form expired; reload the page and send it again")
    try:
        await api.post_command(request, room, text, uploads, fields.get("key") or None)
    except Problem as problem:
        return await room_page(
            request, form={"text": text}, errors=_errors_of(problem), status=problem.status
        )
    return see_other(f"{PREFIX}/deals/{room.match_id}?notice=sent")


async def mark_read(request: web.Request) -> web.StreamResponse:
    room = await _room(request, acting=True)
    posted = await request.post()
    csrf = posted.get("csrf")
    if not csrf_ok(request, csrf if isinstance(csrf, str) else None):
        raise web.HTTPForbidden(text="the form expired; reload the page and send it again")
    message_id = posted.get("message_id")
    if isinstance(message_id, str) and message_id:
        try:
            await api.read_command(request, room, message_id)
        except Problem as problem:
            raise web.HTTPNotFound(text=problem.detail) from None
    return see_other(f"{PREFIX}/deals/{room.match_id}")


async def file(request: web.Request) -> web.StreamResponse:
    room = await _room(request)
    try:
        meta, data = await api.attachment_of(
            request, room, request.match_info["message_id"], request.match_info["attachment_id"]
        )
    except Problem as problem:
        if problem.status == 409:
            raise web.HTTPConflict(text=problem.detail) from None
        raise web.HTTPNotFound(text=problem.detail) from None
    return api.attachment_response(meta, data)


async def live(request: web.Request) -> web.StreamResponse:
    """The room's messages as they change, for htmx's SSE extension: sent on connecting and
    whenever a notice for the organisation is stored (the live hub), and looked at every IDLE_S
    besides (a facilitator's notices, a lost NOTIFY)."""
    room = await _room(request)
    partner_id = request[PRINCIPAL].partner_id
    can_act = person_of(request).role in ACTING

    async def fragment() -> str:
        view = await messages_view(request, room)
        return aiohttp_jinja2.render_string(
            "deal_messages.html", request, base_context(request, **view, can_act=can_act)
        )

    return await live_fragment(request, partner_id, "messages", fragment)


async def rooms(request: web.Request) -> web.Response:
    """The deal rooms of the organisation: its matches (as seller or buyer), the jobs it won
    (as carrier), with how many messages each holds and how many it has not read."""
    who = await _principal(request, acting=False)
    rows = await request.app[POOL].fetch(
        "SELECT m.match_id, m.material_code, m.status, m.proposed_at,"
        " (SELECT count(*) FROM deal_messages d WHERE d.match_id = m.match_id) AS messages,"
        " (SELECT count(*) FROM deal_messages d WHERE d.match_id = m.match_id"
        "  AND d.author_id <> $1 AND NOT EXISTS (SELECT 1 FROM deal_receipts r"
        "  WHERE r.message_id = d.message_id AND r.partner_id = $1)) AS unread"
        " FROM matches m WHERE ($2 = 'sme' AND $1 IN (m.seller_id, m.buyer_id))"
        " OR ($2 = 'logistics' AND EXISTS (SELECT 1 FROM jobs j WHERE j.match_id = m.match_id"
        "  AND j.status = 'awarded' AND j.winner_id = $1))"
        " OR ($2 = 'facilitator' AND EXISTS (SELECT 1 FROM consents c WHERE c.facilitator_id = $1"
        "  AND c.status = 'granted' AND c.partner_id IN (m.seller_id, m.buyer_id)))"
        " ORDER BY m.proposed_at DESC, m.match_id LIMIT 200",
        who.partner_id,
        who.role,
    )
    return render(request, "deals.html", rooms=[dict(r) for r in rows])


def add_routes(app: web.Application) -> None:
    """The pages and the API's routes of the deal rooms (one line in producers/web/app.py)."""
    api.add_routes(app)
    r = app.router
    r.add_get(PREFIX + "/deals", rooms)
    r.add_get(PREFIX + "/deals/{match_id}", deal)
    r.add_post(PREFIX + "/deals/{match_id}/messages", post)
    r.add_post(PREFIX + "/deals/{match_id}/read", mark_read)
    r.add_get(PREFIX + "/deals/{match_id}/live", live)
    r.add_get(PREFIX + "/deals/{match_id}/files/{message_id}/{attachment_id}", file)
