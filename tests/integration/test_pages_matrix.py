"""Every page for every role (#19 item 4): a person of one organisation never sees or changes
another organisation's data through any page. The pages are taken from the service's router, so
a page added later is in the matrix without editing this test: every GET page under /app (those
with a path parameter get another organisation's ids), and every form (POST) with another
organisation's ids."""

from __future__ import annotations

import re
import uuid
from typing import Any

import orjson
from aiohttp import web

from marketplace import accounts
from marketplace.db import connect
from marketplace.settings import Settings
from producers.web.app import create_service
from tests.integration.api_helpers import (
    Partner,
    eventually,
    offer_body,
    projected,
    register,
    running_api,
)
from tests.integration.test_pages_accounts import csrf_of, plain

# Pages anyone may open, and the ones whose answer is a stream or a file.
OPEN = {"/app/login", "/app/static/{name}", "/app/invite/{token}", "/app/reset/{token}"}
STREAMS = {"/app/live", "/app/logistics/live"}
# Forms that end the session the matrix walks with (tested in test_pages_accounts.py).
ENDING = {"/app/logout", "/app/logout-everywhere"}


async def person(settings: Settings, partner_id: str | None, role: str) -> str:
    """A signed-in person: the session token of a new account."""
    conn = await connect(settings)
    try:
        who = await accounts.create_person(
            conn,
            partner_id=partner_id,
            email=f"m-{uuid.uuid4().hex[:10]}@example.org",
            display_name=f"Matrix {role}",
            role=role,  # type: ignore[arg-type]
        )
        return await accounts.open_session(conn, who)
    finally:
        await conn.close()


def pages(app: web.Application) -> list[tuple[str, str]]:
    """(method, path pattern) of every route under /app."""
    found = []
    for route in app.router.routes():
        info = route.resource.canonical if route.resource is not None else ""
        if info.startswith("/app") and route.method in ("GET", "POST"):
            found.append((route.method, info))
    return sorted(set(found))


def filled(pattern: str, theirs: dict[str, str]) -> str:
    """The path with every parameter set to the other organisation's id of that kind."""
    return re.sub(r"\{(\w+)(:[^}]*)?\}", lambda m: theirs.get(m.group(1), "x"), pattern)


async def test_no_page_shows_or_changes_another_organisations_data(settings: Settings) -> None:
    settings = plain(settings)
    victim = await register(settings, "sme", "Victim Textil AB")
    roles: dict[str, Partner] = {
        "sme": await register(settings, "sme"),
        "logistics": await register(settings, "logistics"),
        "auditor": await register(settings, "auditor"),
        "facilitator": await register(settings, "facilitator"),
    }
    marker = f"victim-{uuid.uuid4().hex[:8]}"
    async with running_api(settings, create_service) as client:
        body = offer_body("040222")
        body["material"]["description"] = marker

        async def posted() -> str | None:
            sent = await client.post("/v1/offers", json=body, headers=victim.auth)
            return str((await sent.json())["offer_id"]) if sent.status == 202 else None

        offer_id: str | None = None

        async def got() -> bool:
            nonlocal offer_id
            offer_id = await posted()
            return offer_id is not None

        await eventually(got, 30)
        assert offer_id is not None

        async def listed() -> bool:
            answer = await client.get(f"/v1/offers/{offer_id}", headers=victim.auth)
            return answer.status == 200

        await eventually(listed, 30)
        # {sme}: a facilitator's pages for an SME, here one that never consented (404).
        theirs = {
            "id": offer_id,
            "kind": "offers",
            "partner_id": victim.partner_id,
            "sme": victim.partner_id,
        }
        secrets = (marker, victim.partner_id, offer_id, "Victim Textil AB")

        sessions: dict[str, str] = {
            "operator": await person(settings, None, "operator"),
            "sme read-only": await person(settings, roles["sme"].partner_id, "read-only"),
        }
        for role, partner in roles.items():
            sessions[f"{role} admin"] = await person(settings, partner.partner_id, "admin")
        # Every organisation reached the partner registry the pages read.
        await projected(settings, *roles.values())
        routes = pages(client.app)
        assert len(routes) >= 20, routes
        checked = 0
        for who, token in sessions.items():
            client.session.cookie_jar.clear()
            client.session.cookie_jar.update_cookies({"session": token})
            home = await client.get("/app/account")
            assert home.status == 200, who
            csrf = csrf_of(await home.text())
            for method, pattern in routes:
                if pattern in OPEN or pattern in STREAMS or pattern in ENDING:
                    continue
                path = filled(pattern, theirs)
                if method == "GET":
                    answer = await client.get(path, allow_redirects=False)
                    text = (await answer.read()).decode("utf-8", "replace")
                    assert answer.status in (200, 303, 403, 404, 422), (who, path, answer.status)
                else:
                    answer = await client.post(path, data={"csrf": csrf}, allow_redirects=False)
                    text = (await answer.read()).decode("utf-8", "replace")
                    assert answer.status in (200, 303, 400, 403, 404, 409, 422, 429), (
                        who,
                        path,
                        answer.status,
                    )
                # The page may repeat the address asked for (the language form's return path).
                text = text.replace(path, "")
                # The association's staff see the organisations (they register them), never
                # what an organisation posted.
                hidden = secrets[:1] + secrets[2:3] if who == "operator" else secrets
                for secret in hidden:
                    assert secret not in text, (who, method, path, secret)
                checked += 1
        assert checked >= 20 * len(sessions)

        # The victim's offer is untouched: still open, as posted.
        answer = await client.get(f"/v1/offers/{offer_id}", headers=victim.auth)
        after: dict[str, Any] = orjson.loads(await answer.read())
        assert after["status"] == "open"
        assert after["material"]["description"] == marker
