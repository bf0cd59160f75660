"""Who is signed in to the pages, in which language, and the checks every page request passes:
a session cookie (Secure, HttpOnly, SameSite=Lax; only the token's SHA-256 is stored), a CSRF
token on every form (per session; before sign-in a double-submit cookie), the same origin on
every POST, and headers that keep the pages out of frames and caches.

CSRF is done here rather than by a library: aiohttp has no maintained CSRF package, and the
synchronizer-token pattern (OWASP's first recommendation) is a comparison of two strings."""

from __future__ import annotations

import hmac
import secrets
from typing import Any
from urllib.parse import quote, urlsplit

import aiohttp_jinja2
from aiohttp import web

from marketplace.accounts import Session, session_of
from producers.api.context import POOL, SETTINGS
from producers.api.problems import Handler
from producers.web import i18n

PREFIX = "/app"
SESSION = web.RequestKey("session", Session)
LOCALE = web.RequestKey("locale", str)
PRE_CSRF = web.RequestKey("pre_csrf", str)

# Pages anyone may open: signing in, and the one-time links (their token is the credential).
OPEN = ("/app/login", "/app/invite/", "/app/reset/", "/app/static/", "/app/language")

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:;"
    " connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
)


def cookie_name(request: web.Request, base: str) -> str:
    # __Host-: the browser sets it only over a secure origin, for this host, for every path.
    return f"__Host-{base}" if request.app[SETTINGS].web_secure_cookies else base


def set_cookie(response: web.StreamResponse, request: web.Request, base: str, value: str) -> None:
    response.set_cookie(
        cookie_name(request, base),
        value,
        path="/",
        secure=request.app[SETTINGS].web_secure_cookies,
        httponly=True,
        samesite="Lax",
    )


def drop_cookie(response: web.StreamResponse, request: web.Request, base: str) -> None:
    response.del_cookie(
        cookie_name(request, base),
        path="/",
        secure=request.app[SETTINGS].web_secure_cookies,
        httponly=True,
        samesite="Lax",
    )


def is_open(path: str) -> bool:
    return any(path == p or (p.endswith("/") and path.startswith(p)) for p in OPEN)


def same_origin(request: web.Request) -> bool:
    """A POST from a page of this site: its Origin (or, without one, its Referer) names this
    host. Browsers send Origin on every cross-site POST."""
    origin = request.headers.get("Origin") or request.headers.get("Referer")
    if origin is None:
        return True  # not a browser; the CSRF token still has to match
    return urlsplit(origin).netloc == request.host


def csrf_ok(request: web.Request, presented: str | None) -> bool:
    session = request.get(SESSION)
    expected = session.csrf_token if session is not None else request.get(PRE_CSRF)
    return bool(presented and expected and hmac.compare_digest(presented, expected))


@web.middleware
async def pages_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.path != PREFIX and not request.path.startswith(PREFIX + "/"):
        return await handler(request)
    token = request.cookies.get(cookie_name(request, "session"))
    session = None
    if token:
        async with request.app[POOL].acquire() as conn:
            session = await session_of(conn, token)
    if session is not None:
        request[SESSION] = session
    chosen = request.cookies.get("lang")
    request[LOCALE] = (
        session.person.locale
        if session is not None
        else chosen
        if chosen in i18n.LOCALES
        else i18n.negotiate(request.headers.get("Accept-Language"))
    )
    pre = request.cookies.get(cookie_name(request, "csrf"))
    fresh_pre = session is None and not pre
    request[PRE_CSRF] = pre or secrets.token_urlsafe(32)
    try:
        if request.path == PREFIX:
            raise web.HTTPPermanentRedirect(PREFIX + "/")
        if request.method not in ("GET", "HEAD") and not same_origin(request):
            raise web.HTTPForbidden(text="this form was sent from another site")
        if session is None and not is_open(request.path):
            if request.method in ("GET", "HEAD"):
                raise web.HTTPSeeOther(f"{PREFIX}/login?next={quote(str(request.rel_url))}")
            raise web.HTTPUnauthorized(text="sign in first")
        response = await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        response = error_page(request, exc.status, exc.text or exc.reason)
    if fresh_pre:
        set_cookie(response, request, "csrf", request[PRE_CSRF])
    if not request.path.startswith(PREFIX + "/static/"):
        response.headers.setdefault("Content-Security-Policy", CSP)
        response.headers.setdefault("Cache-Control", "no-store")
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    # The one-time links carry their token in the path: never in a Referer to another site.
    # (Not no-referrer: browsers then send `Origin: null` with a form, which same_origin refuses.)
    response.headers.setdefault("Referrer-Policy", "same-origin")
    return response


def error_page(request: web.Request, status: int, detail: str) -> web.StreamResponse:
    """A refusal as a page in the person's language (the API's routes answer problem+json)."""
    _ = i18n.translations(request[LOCALE]).gettext
    titles = {
        401: _("Sign in first"),
        403: _("Not allowed"),
        404: _("Not found"),
        409: _("Not possible now"),
        422: _("Cannot be used"),
    }
    messages = {
        401: _("Sign in to see this page."),
        403: _("Your account may not do this."),
        404: _("There is nothing here, or it belongs to another organisation."),
        409: _("This changed in the meantime. Reload the page and try again."),
    }
    values = {
        "title": titles.get(status, _("Something went wrong")),
        "message": messages.get(status, detail if status < 500 else _("Try again shortly.")),
    }
    return aiohttp_jinja2.render_template(
        "error.html", request, base_context(request, **values), status=status
    )


def base_context(request: web.Request, **values: Any) -> dict[str, Any]:
    """What every template gets: the person, the language and its gettext, the CSRF token."""
    translations = i18n.translations(request[LOCALE])
    session = request.get(SESSION)
    return {
        "_": translations.gettext,
        "ngettext": translations.ngettext,
        "locale": request[LOCALE],
        "locales": i18n.NAMES,
        "person": session.person if session is not None else None,
        "organisation_role": session.organisation_role if session is not None else None,
        "csrf": session.csrf_token if session is not None else request[PRE_CSRF],
        "path": request.path,
        **values,
    }
