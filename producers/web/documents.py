"""The documents of a deal on the pages (#22 item 2): listed in the deal room (the room's page
renders producers/api/documents.py `documents_json`), downloaded as PDF or JSON, approved by
their issuer, and the carrier's pickup and delivery confirmations. The checks and the events are
the API's; outsiders get 404 as for the room itself."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from typing import Any

import aiohttp_jinja2
import orjson
from aiohttp import web

from producers.api import documents as api
from producers.api import invoices
from producers.api.context import POOL, PRINCIPAL
from producers.api.problems import Problem
from producers.api.writes import idempotent_answer
from producers.web import deals
from producers.web.common import ACTING, form_of, gettext_of, live_fragment, person_of, see_other
from producers.web.invoice_labels import field_label
from producers.web.session import PREFIX, base_context


async def download(request: web.Request) -> web.StreamResponse:
    room = await deals._room(request)
    try:
        data, media_type, name = await api.document_file(
            request,
            room,
            request.match_info["kind"],
            int(request.match_info["version"]),
            request.match_info["fmt"],
        )
    except Problem as problem:
        if problem.status == 409:
            raise web.HTTPConflict(text=problem.detail) from None
        raise web.HTTPNotFound(text=problem.detail) from None
    return api.file_response(data, media_type, name)


# After an approval or a transport confirmation a page waits this long at most for the deals
# consumer to store the event, so that the page the person is sent to shows it (and, for a
# carrier, offers the next stage); past it the page says the change is on its way.
CATCH_UP_S = 5.0


async def caught_up(request: web.Request, answer: Any) -> bool:
    """Read-your-writes for a page: waits until the deals consumer has stored the event the
    command's `answer` (its dict, or the JSON body of an idempotent answer) names, which it does
    in one transaction with the notices of the parties; True once it has, False after
    CATCH_UP_S, and at once when the answer names no event (approved already)."""
    if isinstance(answer, tuple):
        answer = orjson.loads(answer[1])
    event_id = answer.get("event_id") if isinstance(answer, dict) else None
    if not event_id:
        return True
    pool = request.app[POOL]
    loop = asyncio.get_running_loop()
    deadline = loop.time() + CATCH_UP_S
    pause = 0.02
    while True:
        if await pool.fetchval(
            "SELECT EXISTS (SELECT 1 FROM deal_notices WHERE event_id = $1)", str(event_id)
        ):
            return True
        if loop.time() >= deadline:
            return False
        await asyncio.sleep(pause)
        pause = min(pause * 2, 0.2)


async def approve(request: web.Request) -> web.StreamResponse:
    room = await deals._room(request, acting=True)
    await form_of(request)
    _ = gettext_of(request)
    try:
        answer = await api.approve_command(
            request, room, request.match_info["kind"], int(request.match_info["version"])
        )
    except Problem as problem:
        if problem.status == 404:
            raise web.HTTPNotFound(text=problem.detail) from None
        reasons = {
            "not-issuer": _("Only the party that issues this document approves it."),
            "superseded": _("A newer version exists: approve that one."),
            "legal-data-missing": _(
                "A party has not declared its legal data yet (legal name, address, VAT"
                " number): %(what)s"
            )
            % {"what": problem.detail.split(": ", 1)[-1].split(" (", 1)[0]},
            "not-yet": _("This document does not exist yet."),
        }
        message = reasons.get(problem.kind, problem.detail)
        if problem.status >= 500:
            message = _("The exchange cannot store this right now. Try again shortly.")
        return await deals.room_page(
            request, errors={"documents": message}, status=min(problem.status, 503)
        )
    await caught_up(request, answer)
    return see_other(f"{PREFIX}/deals/{room.match_id}?notice=approved#documents")


def weight_of(form: Mapping[str, str]) -> float | None:
    """The weight in tonnes a carrier's confirmation form gives, or None when it is not one."""
    try:
        weight = float(form.get("weight_t", "").strip().replace(",", "."))
    except ValueError:
        return None
    return weight if 0 < weight <= 100_000 else None


def transport_refusal(_: Callable[[str], str], problem: Problem) -> str:
    """What the page says when the API refuses a carrier's confirmation."""
    if problem.status >= 500:
        return _("The exchange cannot store this right now. Try again shortly.")
    return {
        "not-picked-up": _("Confirm the pickup before the delivery."),
        "not-carrier": _("Only the carrier that won the transport confirms it."),
    }.get(problem.kind or "", problem.detail)


async def confirm(request: web.Request) -> web.StreamResponse:
    room = await deals._room(request, acting=True)
    form = await form_of(request)
    _ = gettext_of(request)
    weight = weight_of(form)
    if weight is None:
        return await deals.room_page(
            request,
            form=form,
            errors={"weight_t": _("Enter the weight in tonnes, e.g. 4.02.")},
            status=422,
        )
    body = api.TransportIn(weight_t=weight, note=form.get("note", "")[:2000])
    try:
        write = await api.transport_command(request, room, request.match_info["stage"], body)
        answer = await idempotent_answer(request, write, form.get("key") or None)
    except Problem as problem:
        if problem.status == 404:
            raise web.HTTPNotFound(text=problem.detail) from None
        message = transport_refusal(_, problem)
        return await deals.room_page(
            request, form=form, errors={"weight_t": message}, status=min(problem.status, 503)
        )
    await caught_up(request, answer)
    return see_other(f"{PREFIX}/deals/{room.match_id}?notice=confirmed#documents")


async def live(request: web.Request) -> web.StreamResponse:
    """The room's documents as they change (a version approved, a new version, a transport
    confirmed), for htmx's SSE extension, woken by the deal notices of the organisation."""
    room = await deals._room(request)
    partner_id = request[PRINCIPAL].partner_id
    can_act = person_of(request).role in ACTING

    async def fragment() -> str:
        view = await invoices.room_documents(request, room)
        return documents_fragment(request, view, room, can_act)

    return await live_fragment(request, partner_id, "documents", fragment)


def documents_fragment(
    request: web.Request, view: Any, room: Any, can_act: bool, **where: str
) -> str:
    """A room's (or, with `docs_base` and `id_prefix` in `where`, an agreement period's) list of
    documents and invoices, as the live streams send it again (templates/
    deal_documents_list.html)."""
    return aiohttp_jinja2.render_string(
        "deal_documents_list.html",
        request,
        base_context(
            request,
            documents=view,
            room=room,
            can_act=can_act,
            invoice_field=lambda field: field_label(request, field),
            **where,
        ),
    )


def add_routes(app: web.Application) -> None:
    """The pages' and the API's routes of a deal's documents (one line in producers/web/app.py,
    beside the deal room's)."""
    api.add_routes(app)
    invoices.add_routes(app)
    r = app.router
    r.add_get(
        PREFIX + "/deals/{match_id}/documents/{kind}/{version:\\d{1,6}}.{fmt:pdf|json}", download
    )
    r.add_post(PREFIX + "/deals/{match_id}/documents/{kind}/{version:\\d{1,6}}/approve", approve)
    r.add_post(PREFIX + "/deals/{match_id}/transport/{stage:pickup|delivery}", confirm)
    r.add_get(PREFIX + "/deals/{match_id}/documents/live", live)
