"""The pages' shared parts: rendering a template in the person's language, the signed-in
person, a posted form once its CSRF token matched, and the person's organisation as the API's
principal (the same commands and authorization as the API: decision 10)."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp_jinja2
from aiohttp import web

from marketplace.accounts import Person
from marketplace.partners import Principal
from producers.api.context import POOL, PRINCIPAL
from producers.api.live import HUB, IDLE_S
from producers.web import i18n
from producers.web.session import LOCALE, PREFIX, SESSION, base_context, csrf_ok

HERE = Path(__file__).resolve().parent
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


async def organisation_role(request: web.Request) -> str | None:
    """The partner role of the person's organisation (from the partner registry)."""
    person = person_of(request)
    if person.partner_id is None:
        return None
    role: str | None = await request.app[POOL].fetchval(
        "SELECT role FROM partners WHERE partner_id = $1 AND active", person.partner_id
    )
    return role


async def of_organisation(request: web.Request, role: str) -> Person:
    """The person, when their organisation has the partner role `role` (403 otherwise): the
    auditors' pages, the facilitators'."""
    if await organisation_role(request) != role:
        raise web.HTTPForbidden(text=f"only people of a {role} organisation see this page")
    return person_of(request)


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


def sse_event(name: str, html: str) -> bytes:
    """One Server-Sent Event whose data is an HTML fragment (each line its own data: line)."""
    lines = "".join(f"data: {line}\n" for line in html.splitlines() or [""])
    return f"event: {name}\n{lines}\n".encode()


def gettext_of(request: web.Request) -> Any:
    """The person's gettext, for sentences a handler composes."""
    return i18n.translations(request[LOCALE]).gettext


def new_key() -> str:
    """An idempotency key for a form: sending the same form twice posts once."""
    return str(uuid.uuid4())


async def live_fragment(
    request: web.Request, partner_id: str, event: str, fragment: Callable[[], Awaitable[str]]
) -> web.StreamResponse:
    """Server-Sent Events for htmx's SSE extension: the HTML `fragment()` renders, sent as
    `event` (`live_fragments` with one fragment)."""

    async def one() -> dict[str, str]:
        return {event: await fragment()}

    return await live_fragments(request, partner_id, one)


async def live_fragments(
    request: web.Request, partner_id: str, fragments: Callable[[], Awaitable[dict[str, str]]]
) -> web.StreamResponse:
    """Server-Sent Events for htmx's SSE extension, several fragments on one connection (a
    browser keeps six per site): each HTML fragment `fragments()` renders is sent as the event
    its key names on connecting and again whenever it changed, looked at when a notification
    for the organisation is stored (the API's live hub, woken by PostgreSQL NOTIFY) and every
    IDLE_S besides (a notification may be stored before a read model shows its news). Only a
    change is sent: a swap would take the focus from a person on a link of the fragment."""
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
    sent: dict[str, str] = {}
    try:
        while True:
            news.clear()
            changed = [
                (event, html)
                for event, html in (await fragments()).items()
                if sent.get(event) != html
            ]
            for event, html in changed:
                await response.write(sse_event(event, html))
                sent[event] = html
            if not changed:
                await response.write(b": keep-alive\n\n")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(news.wait(), IDLE_S)
    except ConnectionResetError:
        pass
    finally:
        hub.unsubscribe(partner_id, news)
    return response
