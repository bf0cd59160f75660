"""Signing in and out, one-time links (invitation, password reset), the language, the account
and the organisation's members."""

from __future__ import annotations

import time
import uuid
from typing import Any

import segno
from aiohttp import web

from marketplace import accounts
from marketplace.accounts import AccountError
from marketplace.mail.outbox import queue_account_mail
from marketplace.secretbox import KeyRing, key_file
from producers.api.context import POOL, SETTINGS
from producers.web import i18n
from producers.web.common import form_of, person_of, render, safe_next, see_other
from producers.web.session import (
    LOCALE,
    PREFIX,
    SESSION,
    cookie_name,
    drop_cookie,
    set_cookie,
)


async def login_page(request: web.Request) -> web.Response:
    return render(request, "login.html", next=safe_next(request.query.get("next")), errors={})


async def login(request: web.Request) -> web.StreamResponse:
    form = await form_of(request)
    peer = request.remote or "unknown"
    async with request.app[POOL].acquire() as conn:
        try:
            person = await accounts.sign_in(
                conn,
                form.get("email", ""),
                form.get("password", ""),
                peer,
                code=form.get("code", ""),
                ring=lambda: key_ring(request),
                at=time.time(),
            )
        except AccountError as exc:
            _ = i18n.translations(request[LOCALE]).gettext
            errors = {
                "throttled": {
                    "body": _("Too many failed sign-ins. Wait 15 minutes and try again.")
                },
                "code": {
                    "code": _("Enter the current code from your authenticator app."),
                },
            }.get(exc.code, {"body": _("The e-mail or the password is not right.")})
            return render(
                request,
                "login.html",
                status=429 if exc.code == "throttled" else 401,
                next=safe_next(form.get("next")),
                email=form.get("email", ""),
                errors=errors,
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


def key_ring(request: web.Request) -> KeyRing:
    """The operator's key ring that seals secrets at rest (TOTP secrets with webhook secrets)."""
    return key_file(request.app[SETTINGS].webhook_keys_path).ring()


async def account(request: web.Request, errors: dict[str, str] | None = None) -> web.Response:
    person = person_of(request)
    async with request.app[POOL].acquire() as conn:
        rows = await conn.fetch(
            "SELECT at, what FROM account_events WHERE person_id = $1 ORDER BY at DESC LIMIT 20",
            uuid.UUID(person.person_id),
        )
        second = await accounts.has_totp(conn, person.person_id)
    return render(
        request,
        "account.html",
        status=422 if errors else 200,
        events=rows,
        second_factor=second,
        errors=errors or {},
    )


async def second_factor_start(request: web.Request) -> web.Response:
    """A new secret to scan or type into an authenticator app, and the form for its code."""
    await form_of(request)
    secret = accounts.new_totp_secret()
    return _second_factor_page(request, secret, {})


def _second_factor_page(request: web.Request, secret: str, errors: dict[str, str]) -> web.Response:
    uri = accounts.totp_uri(secret, person_of(request).email)
    qr = segno.make(uri, error="m").svg_data_uri(scale=4, border=2)
    return render(
        request,
        "second_factor.html",
        status=422 if errors else 200,
        secret=secret,
        grouped=" ".join(secret[i : i + 4] for i in range(0, len(secret), 4)),
        qr=qr,
        errors=errors,
    )


async def second_factor_on(request: web.Request) -> web.StreamResponse:
    form = await form_of(request)
    person = person_of(request)
    secret = form.get("secret", "")
    _ = i18n.translations(request[LOCALE]).gettext
    async with request.app[POOL].acquire() as conn:
        try:
            await accounts.enable_totp(
                conn,
                key_ring(request),
                person.person_id,
                secret,
                form.get("code", ""),
                time.time(),
            )
        except AccountError as exc:
            if exc.code == "totp-secret":  # not a key this page made: begin again
                return _second_factor_page(request, accounts.new_totp_secret(), {})
            wrong = {"code": _("The code does not match. Enter the one your app shows now.")}
            return _second_factor_page(request, secret, wrong)
    return see_other(PREFIX + "/account")


async def second_factor_off(request: web.Request) -> web.StreamResponse:
    form = await form_of(request)
    person = person_of(request)
    _ = i18n.translations(request[LOCALE]).gettext
    async with request.app[POOL].acquire() as conn:
        try:
            await accounts.disable_totp(
                conn, key_ring(request), person.person_id, form.get("code", ""), time.time()
            )
        except AccountError:
            return await account(
                request, {"code": _("The code does not match. Enter the one your app shows now.")}
            )
    return see_other(PREFIX + "/account")


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
        # By e-mail through the mailer (#20); the link is also shown, for the admin to hand
        # over where the exchange sends no mail.
        await queue_account_mail(
            conn,
            request.app[SETTINGS],
            person_id=invited.person_id,
            purpose="account.invite",
            token=token,
        )
        await accounts.record(conn, person.person_id, "invited-a-member")
        people = await accounts.members(conn, person.partner_id)
    # Until e-mail is sent (#20), the admin hands the one-time link over.
    link = f"{request.app[SETTINGS].web_base_url}{PREFIX}/invite/{token}"
    return render(request, "members.html", members=people, errors={}, link=link)


def add_routes(app: web.Application) -> None:
    r = app.router
    r.add_get(PREFIX + "/login", login_page)
    r.add_post(PREFIX + "/login", login)
    r.add_post(PREFIX + "/logout", logout)
    r.add_post(PREFIX + "/logout-everywhere", logout_everywhere)
    r.add_get(PREFIX + "/{purpose:invite|reset}/{token}", link_page)
    r.add_post(PREFIX + "/{purpose:invite|reset}/{token}", use_link)
    r.add_post(PREFIX + "/language", language)
    r.add_get(PREFIX + "/account", account)
    r.add_post(PREFIX + "/account/second-factor/new", second_factor_start)
    r.add_post(PREFIX + "/account/second-factor", second_factor_on)
    r.add_post(PREFIX + "/account/second-factor/off", second_factor_off)
    r.add_get(PREFIX + "/members", members)
    r.add_post(PREFIX + "/members", invite)
