"""The association's staff invite an admin to an organisation already on the exchange (#19), as
`marketplace people invite --role admin` does: for an organisation whose admin left, or that was
registered with the CLI. The page lists the organisation's people (name and role) and invites a
new admin: an account with the role admin, an invitation e-mail through the mailer, and the
one-time link shown once for staff to hand over where no mail is sent. Staff only (the role
operator); an organisation that does not exist is 404."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from marketplace import accounts
from marketplace.accounts import AccountError
from marketplace.mail.outbox import queue_account_mail
from producers.api.context import POOL, SETTINGS
from producers.web.common import form_of, gettext_of, render
from producers.web.session import PREFIX
from producers.web.staff import staff_only

PAGE = PREFIX + "/staff/organisations/{partner_id}/admins"


async def _organisation(request: web.Request) -> tuple[str, Any]:
    """The organisation of the path (404 when the registry has none of that id)."""
    staff_only(request)
    partner_id = request.match_info["partner_id"]
    row = await request.app[POOL].fetchrow(
        "SELECT partner_id, name, role, active FROM partners WHERE partner_id = $1", partner_id
    )
    if row is None:
        raise web.HTTPNotFound(text="no organisation of that id")
    return partner_id, row


async def _page(
    request: web.Request,
    *,
    form: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    invited: dict[str, str] | None = None,
    status: int = 200,
) -> web.Response:
    partner_id, organisation = await _organisation(request)
    async with request.app[POOL].acquire() as conn:
        people = await accounts.members(conn, partner_id)
    return render(
        request,
        "staff_admins.html",
        status=status,
        organisation=organisation,
        people=sorted(people, key=lambda p: (p.role != "admin", p.display_name.lower())),
        form=form or {},
        errors=errors or {},
        invited=invited,
    )


async def admins(request: web.Request) -> web.Response:
    return await _page(request)


async def invite_admin(request: web.Request) -> web.Response:
    form = await form_of(request)
    staff = staff_only(request)
    partner_id, organisation = await _organisation(request)
    _ = gettext_of(request)
    # Not "locale": the page's own language switch has a field of that id.
    locale = form.get("admin_locale", "en")
    if locale not in accounts.LOCALES:
        return await _page(
            request, form=form, errors={"admin_locale": _("Choose one of the options.")}, status=422
        )
    messages = {
        "email-invalid": ("email", _("This is not an e-mail address.")),
        "email-taken": ("email", _("A person with this e-mail already has an account.")),
        "name-invalid": ("display_name", _("Enter a name of 1 to 200 characters.")),
    }
    async with request.app[POOL].acquire() as conn:
        try:
            admin = await accounts.create_person(
                conn,
                partner_id=partner_id,
                email=form.get("email", ""),
                display_name=form.get("display_name", ""),
                role="admin",
                locale=locale,
            )
        except AccountError as exc:
            field, sentence = messages.get(exc.code, (exc.field or "body", str(exc)))
            return await _page(request, form=form, errors={field: sentence}, status=422)
        token = await accounts.issue_link(conn, admin.person_id, "invite")
        await queue_account_mail(
            conn,
            request.app[SETTINGS],
            person_id=admin.person_id,
            purpose="account.invite",
            token=token,
        )
        await accounts.record(conn, staff.person_id, "invited-an-admin")
    invited = {
        "name": admin.display_name,
        "organisation": organisation["name"],
        "link": f"{request.app[SETTINGS].web_base_url}{PREFIX}/invite/{token}",
    }
    return await _page(request, invited=invited)


def add_routes(app: web.Application) -> None:
    app.router.add_get(PAGE, admins)
    app.router.add_post(PAGE, invite_admin)
