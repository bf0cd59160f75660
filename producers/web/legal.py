"""An organisation's legal data on the pages (#22): its admins declare the legal name, address,
VAT number and Peppol participant id that the documents of its deals carry; the association's
staff may do so for any organisation. The checks and the event are the API's
(producers/api/legal.py `legal_command`), each refused field named next to it."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from marketplace.partners import Principal
from producers.api import legal as api
from producers.api.context import POOL, PRINCIPAL
from producers.api.problems import Problem
from producers.api.writes import idempotent_answer
from producers.web.common import form_of, gettext_of, new_key, person_of, render
from producers.web.session import PREFIX


async def _own(request: web.Request) -> tuple[str, str]:
    """An admin's organisation: (partner id, where its form posts); 403 for anyone else."""
    person = person_of(request)
    if person.partner_id is None or person.role != "admin":
        raise web.HTTPForbidden(text="only the organisation's admins declare its legal data")
    role = await request.app[POOL].fetchval(
        "SELECT role FROM partners WHERE partner_id = $1", person.partner_id
    )
    if role is None:
        raise web.HTTPForbidden(text="your organisation is not registered on the exchange yet")
    request[PRINCIPAL] = Principal(
        partner_id=person.partner_id,
        role=role,
        key_id=f"person:{person.person_id}",
        person_id=person.person_id,
    )
    return person.partner_id, PREFIX + "/legal"


async def _any(request: web.Request) -> tuple[str, str]:
    """The association's staff, for the organisation in the path (404 if there is none)."""
    person = person_of(request)
    if person.role != "operator":
        raise web.HTTPForbidden(text="only the association's staff see this page")
    partner_id = request.match_info["partner_id"]
    request[PRINCIPAL] = Principal(
        partner_id=f"person:{person.person_id}",
        role="operator",
        key_id=f"person:{person.person_id}",
        person_id=person.person_id,
    )
    return partner_id, f"{PREFIX}/staff/organisations/{partner_id}/legal"


async def _page(
    request: web.Request,
    partner_id: str,
    action: str,
    *,
    form: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    notice: str = "",
    status: int = 200,
) -> web.Response:
    name = await request.app[POOL].fetchval(
        "SELECT name FROM partners WHERE partner_id = $1", partner_id
    )
    if name is None:
        raise web.HTTPNotFound(text="no such organisation")
    found = await api.current(request, partner_id)
    if form is None:
        form = {k: (found or {}).get(k) or "" for k in api.FIELDS}
    return render(
        request,
        "legal.html",
        status=status,
        organisation=name,
        action=action,
        form=form,
        errors=errors or {},
        declared=found,
        notice=notice,
        key=new_key(),
    )


async def _post(request: web.Request, partner_id: str, action: str) -> web.Response:
    form = await form_of(request)
    _ = gettext_of(request)
    body = api.LegalIn(**{k: form.get(k, "") for k in api.FIELDS})
    try:
        write = await api.legal_command(request, partner_id, body)
        await idempotent_answer(request, write, form.get("key") or None)
    except Problem as problem:
        if problem.status == 404:
            raise web.HTTPNotFound(text=problem.detail) from None
        if problem.status >= 500:
            errors = {"body": _("The exchange cannot store this right now. Try again shortly.")}
        else:
            errors = _errors(problem, _)
        return await _page(
            request, partner_id, action, form=form, errors=errors, status=problem.status
        )
    return await _page(
        request,
        partner_id,
        action,
        form=form,
        notice=_("Declared. Documents built from now on carry these data."),
    )


def _errors(problem: Problem, _: Any) -> dict[str, str]:
    """The refusals by field, in the person's language where the field has a sentence of its
    own, else in the API's words (a VAT number's or Peppol id's reason names the form)."""
    sentences = {
        "legal_name": _("Enter the registered legal name (1 to 200 characters)."),
        "street": _("Enter the street and number (1 to 200 characters)."),
        "postcode": _("Enter the postal code (2 to 10 letters, digits or spaces)."),
        "city": _("Enter the city (1 to 100 characters)."),
        "country": _("Enter the country as two capital letters, e.g. BG or SE."),
    }
    out: dict[str, str] = {}
    for field, reason in problem.errors or [("body", problem.detail)]:
        name = field if field in api.FIELDS else "body"
        out.setdefault(name, sentences.get(name, reason))
    return out


async def own_page(request: web.Request) -> web.Response:
    partner_id, action = await _own(request)
    return await _page(request, partner_id, action)


async def own_post(request: web.Request) -> web.Response:
    partner_id, action = await _own(request)
    return await _post(request, partner_id, action)


async def staff_page(request: web.Request) -> web.Response:
    partner_id, action = await _any(request)
    return await _page(request, partner_id, action)


async def staff_post(request: web.Request) -> web.Response:
    partner_id, action = await _any(request)
    return await _post(request, partner_id, action)


def add_routes(app: web.Application) -> None:
    r = app.router
    r.add_get(PREFIX + "/legal", own_page)
    r.add_post(PREFIX + "/legal", own_post)
    r.add_get(PREFIX + "/staff/organisations/{partner_id}/legal", staff_page)
    r.add_post(PREFIX + "/staff/organisations/{partner_id}/legal", staff_post)
