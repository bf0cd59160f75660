"""The pages for people (#19): signing in, one-time links, the account, the organisation's
members, and an SME's offers (post, list, withdraw). Server-rendered with Jinja2 templates
(aiohttp-jinja2); htmx swaps fragments where it helps (the List of Waste search, a form's
errors) and every page also works without JavaScript.

Writes go through the API's own commands (producers/api/listings.py), with the person's
organisation as the principal: the same checks, the same authorization, the same events."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from pathlib import Path
from typing import Any

import aiohttp_jinja2
import jinja2
import orjson
from aiohttp import web

from marketplace import accounts
from marketplace.accounts import AccountError, Person
from marketplace.partners import Principal
from marketplace.reference import list_of_waste
from producers.api.bodies import OfferIn
from producers.api.context import POOL, PRINCIPAL, SETTINGS
from producers.api.listings import offer_command, withdraw_command
from producers.api.live import HUB, IDLE_S
from producers.api.matches import answer_command
from producers.api.problems import Problem
from producers.api.writes import idempotent_answer
from producers.web import i18n
from producers.web.forms import decode, document, field_errors
from producers.web.session import (
    LOCALE,
    PREFIX,
    SESSION,
    base_context,
    cookie_name,
    csrf_ok,
    drop_cookie,
    set_cookie,
)

HERE = Path(__file__).resolve().parent
OFFER_FIELDS = (
    "material.code",
    "material.description",
    "material.form",
    "terms.quantity.amount",
    "terms.quantity.unit",
    "terms.price.amount",
    "terms.price.currency",
    "terms.available.start",
    "terms.available.end",
    "location.lat",
    "location.lon",
    "location.region",
)
# The organisation roles that may write (read-only members see, and change nothing).
ACTING = ("admin", "member")


def render(request: web.Request, template: str, status: int = 200, **values: Any) -> web.Response:
    response = aiohttp_jinja2.render_template(
        template, request, base_context(request, **values), status=status
    )
    response.headers["Content-Language"] = request[LOCALE]
    return response


def see_other(location: str) -> web.Response:
    """Where a form sends the browser next (303: the next request is a GET)."""
    return web.Response(status=303, headers={"Location": location})


def person_of(request: web.Request) -> Person:
    return request[SESSION].person


async def form_of(request: web.Request) -> dict[str, str]:
    """The posted form, once its CSRF token matched (403 otherwise)."""
    posted = await request.post()
    form = {k: v for k, v in posted.items() if isinstance(v, str)}
    if not csrf_ok(request, form.get("csrf")):
        raise web.HTTPForbidden(text="the form expired; reload the page and send it again")
    return form


def safe_next(target: str | None) -> str:
    # Only a page of this site: never an absolute URL or a scheme-relative //host.
    if target and target.startswith(PREFIX) and not target.startswith("//"):
        return target
    return PREFIX + "/"


# --- signing in and out ----------------------------------------------------------------------


async def login_page(request: web.Request) -> web.Response:
    return render(request, "login.html", next=safe_next(request.query.get("next")), errors={})


async def login(request: web.Request) -> web.StreamResponse:
    form = await form_of(request)
    peer = request.remote or "unknown"
    async with request.app[POOL].acquire() as conn:
        try:
            person = await accounts.sign_in(
                conn, form.get("email", ""), form.get("password", ""), peer
            )
        except AccountError as exc:
            _ = i18n.translations(request[LOCALE]).gettext
            message = (
                _("Too many failed sign-ins. Wait 15 minutes and try again.")
                if exc.code == "throttled"
                else _("The e-mail or the password is not right.")
            )
            return render(
                request,
                "login.html",
                status=429 if exc.code == "throttled" else 401,
                next=safe_next(form.get("next")),
                email=form.get("email", ""),
                errors={"body": message},
            )
        token = await accounts.open_session(conn, person)
    response = see_other(safe_next(form.get("next")))
    set_cookie(response, request, "session", token)
    return response


async def logout(request: web.Request) -> web.StreamResponse:
    await form_of(request)
    token = request.cookies.get(cookie_name(request, "session"))
    if token:
        async with request.app[POOL].acquire() as conn:
            await accounts.end_session(conn, token)
    response = see_other(PREFIX + "/login")
    drop_cookie(response, request, "session")
    return response


async def logout_everywhere(request: web.Request) -> web.StreamResponse:
    await form_of(request)
    person = person_of(request)
    async with request.app[POOL].acquire() as conn:
        await accounts.end_all_sessions(conn, person.person_id)
        await accounts.record(conn, person.person_id, "signed-out-everywhere")
    response = see_other(PREFIX + "/login")
    drop_cookie(response, request, "session")
    return response


# --- one-time links: invitation and password reset -------------------------------------------


async def link_page(request: web.Request) -> web.Response:
    purpose = request.match_info["purpose"]
    async with request.app[POOL].acquire() as conn:
        person = await accounts.link_person(conn, request.match_info["token"], purpose)
    if person is None:
        return render(request, "link_invalid.html", status=404)
    return render(request, "password.html", purpose=purpose, invited=person, errors={})


async def use_link(request: web.Request) -> web.StreamResponse:
    purpose = request.match_info["purpose"]
    token = request.match_info["token"]
    form = await form_of(request)
    _ = i18n.translations(request[LOCALE]).gettext
    if form.get("password", "") != form.get("repeat", ""):
        async with request.app[POOL].acquire() as conn:
            person = await accounts.link_person(conn, token, purpose)
        if person is None:
            return render(request, "link_invalid.html", status=404)
        errors = {"repeat": _("The two passwords differ.")}
        return render(
            request, "password.html", status=422, purpose=purpose, invited=person, errors=errors
        )
    async with request.app[POOL].acquire() as conn:
        try:
            person = await accounts.use_link(conn, token, purpose, form.get("password", ""))
        except AccountError as exc:
            if exc.code == "link-invalid":
                return render(request, "link_invalid.html", status=404)
            invited = await accounts.link_person(conn, token, purpose)
            errors = {exc.field or "body": _password_error(exc, _)}
            return render(
                request,
                "password.html",
                status=422,
                purpose=purpose,
                invited=invited,
                errors=errors,
            )
        session = await accounts.open_session(conn, person)
    response = see_other(PREFIX + "/")
    set_cookie(response, request, "session", session)
    return response


def _password_error(exc: AccountError, _: Any) -> str:
    sentences = {
        "password-short": _("The password needs at least %(n)s characters.")
        % {"n": accounts.MIN_PASSWORD},
        "password-long": _("The password may have at most %(n)s characters.")
        % {"n": accounts.MAX_PASSWORD},
        "password-is-email": _("The password must not be your e-mail address."),
    }
    return str(sentences.get(exc.code, str(exc)))


# --- language ---------------------------------------------------------------------------------


async def language(request: web.Request) -> web.StreamResponse:
    form = await form_of(request)
    chosen = form.get("locale", "")
    if chosen not in i18n.LOCALES:
        raise web.HTTPUnprocessableEntity(text=f"no language {chosen!r}")
    session = request.get(SESSION)
    if session is not None:
        async with request.app[POOL].acquire() as conn:
            await accounts.set_locale(conn, session.person.person_id, chosen)
    response = see_other(safe_next(form.get("next")))
    response.set_cookie("lang", chosen, path="/", samesite="Lax", httponly=True)
    return response


# --- the account and the organisation --------------------------------------------------------


async def account(request: web.Request) -> web.Response:
    person = person_of(request)
    rows = await request.app[POOL].fetch(
        "SELECT at, what FROM account_events WHERE person_id = $1 ORDER BY at DESC LIMIT 20",
        uuid.UUID(person.person_id),
    )
    return render(request, "account.html", events=rows)


async def members(request: web.Request) -> web.Response:
    person = person_of(request)
    if person.role != "admin" or person.partner_id is None:
        raise web.HTTPForbidden(text="only the organisation's admins manage its members")
    async with request.app[POOL].acquire() as conn:
        people = await accounts.members(conn, person.partner_id)
    return render(request, "members.html", members=people, errors={}, link=None)


async def invite(request: web.Request) -> web.Response:
    person = person_of(request)
    if person.role != "admin" or person.partner_id is None:
        raise web.HTTPForbidden(text="only the organisation's admins invite members")
    form = await form_of(request)
    _ = i18n.translations(request[LOCALE]).gettext
    role = form.get("role", "member")
    async with request.app[POOL].acquire() as conn:
        try:
            if role not in accounts.ORG_ROLES:
                raise AccountError("role-invalid", "no such role", "role")
            invited = await accounts.create_person(
                conn,
                partner_id=person.partner_id,
                email=form.get("email", ""),
                display_name=form.get("display_name", ""),
                role=role,  # checked just above
                locale=request[LOCALE],
            )
        except AccountError as exc:
            people = await accounts.members(conn, person.partner_id)
            messages = {
                "email-invalid": _("This is not an e-mail address."),
                "email-taken": _("A person with this e-mail already has an account."),
                "name-invalid": _("Enter a name of 1 to 200 characters."),
                "role-invalid": _("Choose one of the options."),
            }
            errors = {exc.field or "body": messages.get(exc.code, str(exc))}
            return render(
                request,
                "members.html",
                status=422,
                members=people,
                errors=errors,
                link=None,
                form=form,
            )
        token = await accounts.issue_link(conn, invited.person_id, "invite")
        await accounts.record(conn, person.person_id, "invited-a-member")
        people = await accounts.members(conn, person.partner_id)
    # Until e-mail is sent (#20), the admin hands the one-time link over.
    link = f"{request.app[SETTINGS].web_base_url}{PREFIX}/invite/{token}"
    return render(request, "members.html", members=people, errors={}, link=link)


# --- an SME's offers ---------------------------------------------------------------------------


async def acting_principal(request: web.Request) -> Principal:
    """The person's organisation as the API's principal (its role from the partner registry),
    or 403 when the person may only read."""
    person = person_of(request)
    if person.partner_id is None or person.role not in ACTING:
        raise web.HTTPForbidden(text="your role in the organisation lets you read, not change")
    role = await request.app[POOL].fetchval(
        "SELECT role FROM partners WHERE partner_id = $1 AND active", person.partner_id
    )
    if role is None:
        raise web.HTTPForbidden(text="your organisation is not registered on the exchange yet")
    found = Principal(
        partner_id=person.partner_id,
        role=role,
        key_id=f"person:{person.person_id}",
        person_id=person.person_id,
    )
    request[PRINCIPAL] = found
    return found


async def home(request: web.Request) -> web.Response:
    person = person_of(request)
    rows: list[Any] = []
    if person.partner_id is not None:
        rows = await request.app[POOL].fetch(
            "SELECT listing_id, kind, material_code, body, status, posted_at FROM listings"
            " WHERE owner_id = $1 ORDER BY posted_at DESC, listing_id LIMIT 100",
            person.partner_id,
        )
    taxonomy = list_of_waste()
    listings = []
    for r in rows:
        body = orjson.loads(r["body"])
        entry = taxonomy.get(r["material_code"])
        quantity = body.get("terms", {}).get("quantity", {})
        listings.append(
            {
                "id": r["listing_id"],
                "kind": r["kind"],
                "code": r["material_code"],
                "title": entry.description if entry is not None else "",
                "description": body.get("material", {}).get("description", ""),
                "amount": quantity.get("amount"),
                "unit": quantity.get("unit"),
                "status": r["status"],
                "posted_at": r["posted_at"],
            }
        )
    return render(request, "home.html", listings=listings, can_act=person.role in ACTING)


async def new_offer(request: web.Request) -> web.Response:
    return render(request, "offer_form.html", form={}, errors={}, key=str(uuid.uuid4()))


async def post_offer(request: web.Request) -> web.StreamResponse:
    form = await form_of(request)
    await acting_principal(request)
    _ = i18n.translations(request[LOCALE]).gettext
    try:
        body = decode(document(form, OFFER_FIELDS), OfferIn)
        write = await offer_command(request, body)
        _status, answer, _headers = await idempotent_answer(request, write, form.get("key"))
    except Problem as problem:
        if problem.status >= 500:
            errors = {"body": _("The exchange cannot store this right now. Try again shortly.")}
        else:
            errors = field_errors(problem, _)
        return render(
            request, "offer_form.html", status=422, form=form, errors=errors, key=form.get("key")
        )
    offer_id = orjson.loads(answer)["offer_id"]
    return see_other(f"{PREFIX}/?posted={offer_id}")


async def withdraw_offer(request: web.Request) -> web.StreamResponse:
    form = await form_of(request)
    who = await acting_principal(request)
    row = await request.app[POOL].fetchrow(
        "SELECT listing_id, owner_id, body, status FROM listings"
        " WHERE listing_id = $1 AND kind = 'offer' AND owner_id = $2",
        request.match_info["id"],
        who.partner_id,
    )
    if row is None:
        raise web.HTTPNotFound(text="no such offer of your organisation")
    current = {"id": row["listing_id"], "owner_id": row["owner_id"], "status": row["status"]}
    current |= orjson.loads(row["body"])
    try:
        write = withdraw_command(request, "offer", current, form.get("reason", ""))
        await idempotent_answer(request, write, form.get("key"))
    except Problem as problem:
        raise web.HTTPConflict(text=problem.detail) from None
    return see_other(f"{PREFIX}/?withdrawn={row['listing_id']}")


async def codes(request: web.Request) -> web.Response:
    """The List of Waste entries matching the words or digits typed (htmx active search)."""
    query = request.query.get("q", "").strip().lower().replace(" ", "")
    words = request.query.get("q", "").strip().lower().split()
    found = []
    if query:
        for entry in list_of_waste().entries():
            if entry.code.startswith(query) or (
                words and all(w in entry.description.lower() for w in words)
            ):
                found.append(entry)
            if len(found) == 20:
                break
    return render(request, "codes.html", entries=found)


# --- proposals, live ---------------------------------------------------------------------------


async def proposal_rows(request: web.Request, partner_id: str) -> list[dict[str, Any]]:
    rows = await request.app[POOL].fetch(
        "SELECT match_id, material_code, seller_id, buyer_id, body, status, answers, proposed_at"
        " FROM matches WHERE $1 IN (seller_id, buyer_id)"
        " ORDER BY proposed_at DESC, match_id LIMIT 100",
        partner_id,
    )
    taxonomy = list_of_waste()
    out = []
    for r in rows:
        body = orjson.loads(r["body"])
        entry = taxonomy.get(r["material_code"])
        answers = orjson.loads(r["answers"])
        price = body.get("delivered_price", {})
        out.append(
            {
                "id": r["match_id"],
                "side": "seller" if r["seller_id"] == partner_id else "buyer",
                "code": r["material_code"],
                "title": entry.description if entry is not None else "",
                "amount": body.get("quantity", {}).get("amount"),
                "unit": body.get("quantity", {}).get("unit"),
                "price": f"{price.get('amount', 0):.2f} {price.get('currency', '')}",
                "distance_km": f"{body.get('distance_km', 0):.0f}",
                "co2e_known": body.get("co2e_known", True),
                "co2e_saved_kg": f"{body.get('co2e_saved_kg', 0):.0f}",
                "transport_co2e_kg": f"{body.get('transport_co2e_kg', 0):.0f}",
                "score": f"{body.get('score', 0):.2f}",
                "status": r["status"],
                "answered": partner_id in answers,
                "proposed_at": r["proposed_at"],
            }
        )
    return out


async def proposals(request: web.Request) -> web.Response:
    person = person_of(request)
    rows = await proposal_rows(request, person.partner_id) if person.partner_id else []
    return render(request, "proposals.html", proposals=rows, can_act=person.role in ACTING)


async def answer(request: web.Request) -> web.StreamResponse:
    form = await form_of(request)
    who = await acting_principal(request)
    row = await request.app[POOL].fetchrow(
        "SELECT match_id, material_code, status, answers FROM matches"
        " WHERE match_id = $1 AND $2 IN (seller_id, buyer_id)",
        request.match_info["id"],
        who.partner_id,
    )
    if row is None:
        raise web.HTTPNotFound(text="no such proposal of your organisation")
    accept = request.match_info["answer"] == "accept"
    try:
        write = answer_command(request, row, accept, form.get("reason", ""))
        await idempotent_answer(request, write, None)
    except Problem as problem:
        raise web.HTTPConflict(text=problem.detail) from None
    return see_other(f"{PREFIX}/proposals?answered={row['match_id']}")


def sse_event(name: str, html: str) -> bytes:
    """One Server-Sent Event whose data is an HTML fragment (each line its own data: line)."""
    lines = "".join(f"data: {line}\n" for line in html.splitlines() or [""])
    return f"event: {name}\n{lines}\n".encode()


async def live(request: web.Request) -> web.StreamResponse:
    """The organisation's proposals as they change, for htmx's SSE extension to swap in: the
    list is sent on connecting and again whenever a notification for the organisation is
    stored (the API's live hub, woken by PostgreSQL NOTIFY)."""
    person = person_of(request)
    if person.partner_id is None:
        raise web.HTTPNotFound(text="the association's staff have no proposals")
    partner_id = person.partner_id
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-store",
            "X-Accel-Buffering": "no",
        }
    )
    await response.prepare(request)
    hub = request.app[HUB]
    news = hub.subscribe(partner_id)
    try:
        while True:
            news.clear()
            rows = await proposal_rows(request, partner_id)
            html = aiohttp_jinja2.render_string(
                "proposals_list.html",
                request,
                base_context(request, proposals=rows, can_act=person.role in ACTING),
            )
            await response.write(sse_event("proposals", html))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(news.wait(), IDLE_S)
            if not news.is_set():
                await response.write(b": keep-alive\n\n")
    except ConnectionResetError:
        pass
    finally:
        hub.unsubscribe(partner_id, news)
    return response


# --- files -----------------------------------------------------------------------------------

ASSETS = {
    "htmx.min.js": ("htmx.org/dist/htmx.min.js", "text/javascript"),
    "sse.js": ("htmx-ext-sse/sse.js", "text/javascript"),
}


async def asset(request: web.Request) -> web.StreamResponse:
    name = request.match_info["name"]
    if name == "site.css":
        return web.FileResponse(HERE / "static" / "site.css")
    if name not in ASSETS:
        raise web.HTTPNotFound()
    path, _ = ASSETS[name]
    return web.FileResponse(request.app[SETTINGS].web_assets_dir / path)


def setup(app: web.Application) -> None:
    aiohttp_jinja2.setup(
        app,
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=jinja2.select_autoescape(default=True),
        undefined=jinja2.StrictUndefined,
    )
    r = app.router
    r.add_get(PREFIX + "/", home)
    r.add_get(PREFIX + "/login", login_page)
    r.add_post(PREFIX + "/login", login)
    r.add_post(PREFIX + "/logout", logout)
    r.add_post(PREFIX + "/logout-everywhere", logout_everywhere)
    r.add_get(PREFIX + "/{purpose:invite|reset}/{token}", link_page)
    r.add_post(PREFIX + "/{purpose:invite|reset}/{token}", use_link)
    r.add_post(PREFIX + "/language", language)
    r.add_get(PREFIX + "/account", account)
    r.add_get(PREFIX + "/members", members)
    r.add_post(PREFIX + "/members", invite)
    r.add_get(PREFIX + "/offers/new", new_offer)
    r.add_post(PREFIX + "/offers", post_offer)
    r.add_post(PREFIX + "/offers/{id}/withdraw", withdraw_offer)
    r.add_get(PREFIX + "/codes", codes)
    r.add_get(PREFIX + "/proposals", proposals)
    r.add_post(PREFIX + "/proposals/{id}/{answer:accept|decline}", answer)
    r.add_get(PREFIX + "/live", live)
    r.add_get(PREFIX + "/static/{name}", asset)
