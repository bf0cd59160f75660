"""A person's e-mail preferences (#20) and the pages the e-mails link to: per notification kind
immediate mail, the daily digest or nothing, the digest's hour and time zone, the language;
confirming the address by a link sent to it; the one-click unsubscribe (RFC 8058), which needs no
sign-in but a link signed by the exchange; asking for a password reset by e-mail.

The page's words are in the mail catalogue (marketplace/mail/locale, marked `t(...)`), the frame
around them (base.html) in the pages'."""

from __future__ import annotations

import secrets
from typing import Any

import aiohttp_jinja2
from aiohttp import web

from marketplace import accounts
from marketplace.core.notifications import KINDS
from marketplace.mail import prefs
from marketplace.mail.i18n import M, translator
from marketplace.mail.links import link_key, read_unsubscribe
from marketplace.mail.outbox import queue_account_mail
from marketplace.mail.render import HEADLINES
from producers.api.context import POOL, SETTINGS
from producers.api.problems import Handler
from producers.web import i18n
from producers.web.common import form_of, person_of, render, see_other
from producers.web.session import CSP, LOCALE, PREFIX

PAGE = PREFIX + "/preferences"
UNSUBSCRIBE = PREFIX + "/mail/unsubscribe/"
CHOICE_LABELS = {
    "immediate": M("At once"),
    "digest": M("In the daily summary"),
    "none": M("Never"),
}


def _t(request: web.Request) -> Any:
    return translator(request[LOCALE])


async def _page(
    request: web.Request, errors: dict[str, str] | None = None, notice: str | None = None
) -> web.Response:
    person = person_of(request)
    async with request.app[POOL].acquire() as conn:
        chosen = await prefs.preferences_of(conn, person.person_id)
        zone = await prefs.zone_of(conn, person.person_id, prefs.Preferences())
        verified = await prefs.is_verified(conn, person.person_id)
    return render(
        request,
        "preferences_page.html",
        status=422 if errors else 200,
        t=_t(request),
        kinds=[(k, HEADLINES[k]) for k in KINDS],
        chosen=chosen.every_kind(),
        choices=CHOICE_LABELS,
        digest_hour=chosen.digest_hour,
        time_zone=chosen.time_zone or "",
        country_zone=zone,
        zones=prefs.ZONES,
        languages=i18n.NAMES,
        verified=verified,
        errors=errors or {},
        notice=notice,
    )


async def save(request: web.Request) -> web.StreamResponse:
    form = await form_of(request)
    person = person_of(request)
    t = _t(request)
    errors: dict[str, str] = {}
    kinds: dict[str, prefs.Choice] = {}
    for kind in KINDS:
        value = form.get(f"kind.{kind}", prefs.default_choice(kind))
        if value in prefs.CHOICES:
            kinds[kind] = value
        else:
            errors[f"kind.{kind}"] = t("Choose one of the options.")
    try:
        hour = int(form.get("digest_hour", ""))
        if not 0 <= hour <= 23:
            raise ValueError(hour)
    except ValueError:
        errors["digest_hour"] = t("Choose an hour from 0 to 23.")
        hour = prefs.DEFAULT_HOUR
    zone = form.get("time_zone", "") or None
    if zone is not None and zone not in prefs.ZONES:
        errors["time_zone"] = t("Choose one of the options.")
    locale = form.get("locale", request[LOCALE])
    if locale not in i18n.LOCALES:
        errors["locale"] = t("Choose one of the options.")
    if errors:
        return await _page(request, errors)
    async with request.app[POOL].acquire() as conn:
        await prefs.save_preferences(
            conn, person.person_id, prefs.Preferences(kinds=kinds, digest_hour=hour, time_zone=zone)
        )
        if locale != person.locale:
            await accounts.set_locale(conn, person.person_id, locale)
    response = see_other(PAGE + "?saved=1")
    response.set_cookie("lang", locale, path="/", samesite="Lax", httponly=True)
    return response


async def saved_or_page(request: web.Request) -> web.Response:
    t = _t(request)
    notice = t("Your choices are saved.") if request.query.get("saved") else None
    return await _page(request, notice=notice)


async def send_verification(request: web.Request) -> web.Response:
    await form_of(request)
    person = person_of(request)
    async with request.app[POOL].acquire() as conn:
        token = await prefs.issue_verify_link(conn, person.person_id, person.email)
        await queue_account_mail(
            conn,
            request.app[SETTINGS],
            person_id=person.person_id,
            purpose="account.verify",
            token=token,
        )
    t = _t(request)
    notice = t("We sent a link to %(email)s. Open it to confirm the address.") % {
        "email": person.email
    }
    return await _page(request, notice=notice)


async def verify(request: web.Request) -> web.Response:
    """The link from the verification e-mail (signed in: it must be the person's own)."""
    person = person_of(request)
    async with request.app[POOL].acquire() as conn:
        owner = await conn.fetchval(
            "SELECT person_id::text FROM mail_verify_links WHERE token_hash = $1",
            prefs._digest(request.match_info["token"]),
        )
        done = None
        if owner == person.person_id:
            done = await prefs.use_verify_link(conn, request.match_info["token"])
    t = _t(request)
    if done is None:
        return render(request, "mail_link.html", status=404, t=t, ok=False)
    return render(request, "mail_link.html", t=t, ok=True)


# --- the one-click unsubscribe: no sign-in, the signed link is the credential -------------------


def _standalone(request: web.Request, template: str, status: int, **values: Any) -> web.Response:
    response = aiohttp_jinja2.render_template(template, request, values, status=status)
    response.headers["Content-Security-Policy"] = CSP
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


async def unsubscribe(request: web.Request) -> web.Response:
    token = request.path[len(UNSUBSCRIBE) :]
    found = read_unsubscribe(link_key(request.app[SETTINGS].mail_link_key_path), token)
    locale = i18n.negotiate(request.headers.get("Accept-Language"))
    person = None
    if found is not None:
        async with request.app[POOL].acquire() as conn:
            person = await accounts.person_by_id(conn, found[0])
    if found is None or person is None:
        t = translator(locale)
        return _standalone(request, "mail_unsubscribe.html", 404, t=t, locale=locale, state="bad")
    t = translator(person.locale)
    person_id, kind = found
    what = t(HEADLINES[kind]) if kind in HEADLINES else t("Daily summary")
    if request.method == "POST":
        async with request.app[POOL].acquire() as conn:
            await prefs.stop_kind(conn, person_id, kind)
            await accounts.record(conn, person_id, f"mail-unsubscribed:{kind}")
        state = "done"
    else:
        state = "ask"  # a GET changes nothing (link checkers open links)
    return _standalone(
        request,
        "mail_unsubscribe.html",
        200,
        t=t,
        locale=person.locale,
        state=state,
        what=what,
        action=request.path,
        nonce=secrets.token_hex(4),
    )


@web.middleware
async def unsubscribe_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Answers the unsubscribe links before the API's key check and the pages' session check
    (both would refuse a request without credentials: a mail client sends none)."""
    if request.path.startswith(UNSUBSCRIBE) and request.method in ("GET", "HEAD", "POST"):
        return await unsubscribe(request)
    return await handler(request)


# --- a password reset asked for by e-mail ------------------------------------------------------


async def reset_page(request: web.Request) -> web.Response:
    return render(request, "preferences_reset.html", t=_t(request), sent=False, errors={})


async def reset_request(request: web.Request) -> web.Response:
    """The same answer whether or not an account has this address (nobody learns which do);
    throttled like sign-ins (accounts.count_reset_ask): too many asks wait, with a 429."""
    form = await form_of(request)
    settings = request.app[SETTINGS]
    async with request.app[POOL].acquire() as conn:
        try:
            await accounts.count_reset_ask(conn, form.get("email", ""), request.remote or "")
        except accounts.AccountError:
            t = _t(request)
            errors = {"body": t("Too many requests for a link. Wait 15 minutes and try again.")}
            return render(
                request, "preferences_reset.html", status=429, t=t, sent=False, errors=errors
            )
        found = await accounts.reset_request(conn, form.get("email", ""))
        if found is not None:
            person, token = found
            await queue_account_mail(
                conn, settings, person_id=person.person_id, purpose="account.reset", token=token
            )
    return render(request, "preferences_reset.html", t=_t(request), sent=True, errors={})


def add_routes(app: web.Application) -> None:
    app.middlewares.insert(0, unsubscribe_middleware)
    r = app.router
    r.add_get(PAGE, saved_or_page)
    r.add_post(PAGE, save)
    r.add_post(PAGE + "/verify", send_verification)
    r.add_get(PREFIX + "/mail/verify/{token}", verify)
    r.add_get(PREFIX + "/reset/", reset_page)
    r.add_post(PREFIX + "/reset/", reset_request)
