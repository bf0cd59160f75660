"""The invoices of a deal on the pages (#22 item 2): issued from the deal room by the party that
is paid, listed with the documents, downloaded as the UBL XML or as a PDF. The checks and the
event are producers/api/invoices.py's; outsiders get 404 as for the room itself."""

from __future__ import annotations

from aiohttp import web

from producers.api import invoices as api
from producers.api.documents import file_response
from producers.api.problems import Problem
from producers.web import deals
from producers.web.common import form_of, gettext_of, see_other
from producers.web.invoice_labels import field_label
from producers.web.session import PREFIX


async def issue(request: web.Request) -> web.StreamResponse:
    room = await deals._room(request, acting=True)
    await form_of(request)
    _ = gettext_of(request)
    try:
        await api.issue_command(request, room, request.match_info["kind"])
    except Problem as problem:
        if problem.status == 404:
            raise web.HTTPNotFound(text=problem.detail) from None
        field = problem.field
        if problem.kind == "invoice-data-missing" and field:
            reason = problem.errors[0][1] if problem.errors else problem.detail
            message = _(
                "The invoice cannot be issued until this is entered on the Legal data page of"
                " the organisation concerned: %(what)s (%(reason)s)."
            ) % {"what": field_label(request, field), "reason": reason}
        else:
            message = {
                "not-issuer": _("Only the party that is paid issues this invoice."),
                "not-yet": _("This invoice cannot be issued yet."),
                "nothing-to-invoice": _("A price of zero has nothing to invoice."),
            }.get(problem.kind, problem.detail)
        if problem.status >= 500:
            message = _("The exchange cannot store this right now. Try again shortly.")
        return await deals.room_page(
            request, errors={"invoices": message}, status=min(problem.status, 503)
        )
    return see_other(f"{PREFIX}/deals/{room.match_id}?notice=invoiced#invoices")


async def download(request: web.Request) -> web.StreamResponse:
    room = await deals._room(request)
    try:
        data, media_type, name = await api.invoice_file(
            request, room, request.match_info["kind"], request.match_info["fmt"]
        )
    except Problem as problem:
        if problem.status == 409:
            raise web.HTTPConflict(text=problem.detail) from None
        raise web.HTTPNotFound(text=problem.detail) from None
    return file_response(data, media_type, name)


def add_routes(app: web.Application) -> None:
    r = app.router
    r.add_post(PREFIX + "/deals/{match_id}/invoices/{kind:material|transport}", issue)
    r.add_get(
        PREFIX + "/deals/{match_id}/invoices/{kind:material|transport}.{fmt:xml|pdf}", download
    )
