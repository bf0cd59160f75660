"""A standing agreement's document set per delivery period on the pages (#22 item 3): listed on
the agreement's page under each period (producers/web/agreements.py), downloaded as PDF or JSON,
approved by their issuer, the period's invoices issued by the party that is paid and
downloaded as UBL XML or PDF, and the period's carrier's pickup and delivery confirmations. The
seller and the buyer find them on the agreement's page; a carrier (of its own periods) and a
facilitator in the deal room of the agreement (producers/web/deals.py `periods_view`). The
checks and the events are the API's (producers/api/periods.py with producers/api/documents.py
and invoices.py); an outsider, or a delivery id that is not one of the agreement's periods, gets
404."""

from __future__ import annotations

from aiohttp import web

from marketplace.core.feedback import delivery_key
from producers.api import documents, invoices
from producers.api import periods as api
from producers.api.deals import Room
from producers.api.problems import Problem
from producers.api.writes import idempotent_answer
from producers.web import agreements, deals
from producers.web import documents as web_documents
from producers.web.common import form_of, gettext_of, person_of, see_other
from producers.web.invoice_labels import field_label
from producers.web.session import PREFIX

# The pages' path of a period's documents and invoices (templates/agreement.html builds it too).
BASE = PREFIX + "/agreements/{match_id}/periods/{delivery_id}"


async def room_of(request: web.Request, *, acting: bool = False) -> Room:
    await deals._principal(request, acting=acting)
    info = request.match_info
    try:
        return await api.period_room(request, info["match_id"], info["delivery_id"])
    except Problem as problem:
        raise web.HTTPNotFound(text=problem.detail) from None


def _file_refused(problem: Problem) -> web.HTTPException:
    if problem.status == 409:
        return web.HTTPConflict(text=problem.detail)
    return web.HTTPNotFound(text=problem.detail)


async def download(request: web.Request) -> web.StreamResponse:
    room = await room_of(request)
    info = request.match_info
    try:
        data, media_type, name = await documents.document_file(
            request, room, info["kind"], int(info["version"]), info["fmt"]
        )
    except Problem as problem:
        raise _file_refused(problem) from None
    return documents.file_response(data, media_type, name)


async def download_invoice(request: web.Request) -> web.StreamResponse:
    room = await room_of(request)
    info = request.match_info
    try:
        data, media_type, name = await invoices.invoice_file(
            request, room, info["kind"], info["fmt"]
        )
    except Problem as problem:
        raise _file_refused(problem) from None
    return documents.file_response(data, media_type, name)


async def _refused(
    request: web.Request, room: Room, problem: Problem, *, invoice: bool = False
) -> web.Response:
    """The agreement's page again, with the refusal in the person's words under the period."""
    _ = gettext_of(request)
    if problem.status == 404:
        raise web.HTTPNotFound(text=problem.detail)
    if problem.kind == "invoice-data-missing" and problem.field:
        reason = problem.errors[0][1] if problem.errors else problem.detail
        message = _(
            "The invoice cannot be issued until this is entered on the Legal data page of"
            " the organisation concerned: %(what)s (%(reason)s)."
        ) % {"what": field_label(request, problem.field), "reason": reason}
    else:
        not_issuer = (
            _("Only the party that is paid issues this invoice.")
            if invoice
            else _("Only the party that issues this document approves it.")
        )
        not_yet = (
            _("This invoice cannot be issued yet.")
            if invoice
            else _("This document does not exist yet.")
        )
        message = {
            "not-issuer": not_issuer,
            "superseded": _("A newer version exists: approve that one."),
            "legal-data-missing": _(
                "A party has not declared its legal data yet (legal name, address, VAT"
                " number): %(what)s"
            )
            % {"what": problem.detail.split(": ", 1)[-1].split(" (", 1)[0]},
            "not-yet": not_yet,
            "nothing-to-invoice": _("A price of zero has nothing to invoice."),
        }.get(problem.kind or "", problem.detail)
    if problem.status >= 500:
        message = _("The exchange cannot store this right now. Try again shortly.")
    status = min(problem.status, 503)
    if room.side not in ("seller", "buyer"):
        # A carrier or a facilitator: the deal room lists the periods it has a place in.
        return await deals.room_page(request, errors={"periods": message}, status=status)
    match = await agreements._own_match(request, person_of(request).partner_id, room.match_id)
    errors = {delivery_key(room.match_id, room.delivery_id): {"body": message}}
    return await agreements._page(request, match, status=status, errors=errors)


def _back(room: Room, notice: str) -> web.Response:
    """After a change: the agreement's page for its seller and buyer, the deal room (which
    lists the periods) for a carrier or a facilitator."""
    if room.side in ("seller", "buyer"):
        return see_other(f"{PREFIX}/agreements/{room.match_id}?{notice}={room.delivery_id}")
    return see_other(f"{PREFIX}/deals/{room.match_id}?notice={notice}#periods")


async def approve(request: web.Request) -> web.StreamResponse:
    room = await room_of(request, acting=True)
    await form_of(request)
    info = request.match_info
    try:
        answer = await documents.approve_command(request, room, info["kind"], int(info["version"]))
    except Problem as problem:
        return await _refused(request, room, problem)
    await web_documents.caught_up(request, answer)
    return _back(room, "approved")


async def issue(request: web.Request) -> web.StreamResponse:
    room = await room_of(request, acting=True)
    await form_of(request)
    try:
        await invoices.issue_command(request, room, request.match_info["kind"])
    except Problem as problem:
        return await _refused(request, room, problem, invoice=True)
    return _back(room, "invoiced")


async def confirm(request: web.Request) -> web.StreamResponse:
    """The period's carrier confirms its pickup or delivery with the weight it measured."""
    room = await room_of(request, acting=True)
    form = await form_of(request)
    _ = gettext_of(request)
    weight = web_documents.weight_of(form)
    if weight is None:
        message = _("Enter the weight in tonnes, e.g. 4.02.")
        return await deals.room_page(request, errors={"periods": message}, status=422)
    body = documents.TransportIn(weight_t=weight, note=form.get("note", "")[:2000])
    try:
        write = await documents.transport_command(request, room, request.match_info["stage"], body)
        answer = await idempotent_answer(request, write, form.get("key") or None)
    except Problem as problem:
        if problem.status == 404:
            raise web.HTTPNotFound(text=problem.detail) from None
        message = web_documents.transport_refusal(_, problem)
        return await deals.room_page(
            request, errors={"periods": message}, status=min(problem.status, 503)
        )
    await web_documents.caught_up(request, answer)
    return see_other(f"{PREFIX}/deals/{room.match_id}?notice=confirmed#periods")


def add_routes(app: web.Application) -> None:
    """The pages' and the API's routes of the periods' documents (one line in
    producers/web/app.py)."""
    api.add_routes(app)
    r = app.router
    r.add_get(BASE + "/documents/{kind}/{version:\\d{1,6}}.{fmt:pdf|json}", download)
    r.add_post(BASE + "/documents/{kind}/{version:\\d{1,6}}/approve", approve)
    r.add_post(BASE + "/invoices/{kind:material|transport}", issue)
    r.add_get(BASE + "/invoices/{kind:material|transport}.{fmt:xml|pdf}", download_invoice)
    r.add_post(BASE + "/transport/{stage:pickup|delivery}", confirm)
