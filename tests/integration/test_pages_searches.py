"""Saved searches of the open market on the pages (#19), against the real stack (API with the
pages, projector, PostgreSQL): a person saves the market's filters, finds them in the list, runs
them again (the market shows the listing they find) and deletes them; a refusal stands next to
its field; a saved search is the person's own (a colleague and another organisation get 404),
given in the person's export and gone with the erasure."""

from __future__ import annotations

import re
import uuid
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from marketplace import accounts
from marketplace.db import connect
from marketplace.settings import Settings
from producers.web.app import create_service
from tests.integration.api_helpers import eventually, offer_body, register, running_api
from tests.integration.test_pages_accounts import plain
from tests.integration.test_pages_agreements import as_person

pytestmark = pytest.mark.integration
Client = TestClient[Any, Any]


async def account(settings: Settings, partner_id: str, role: str) -> tuple[str, str]:
    """A new person of the organisation: (e-mail, session token)."""
    email = f"s-{uuid.uuid4().hex[:10]}@example.org"
    conn = await connect(settings)
    try:
        who = await accounts.create_person(
            conn,
            partner_id=partner_id,
            email=email,
            display_name=f"Searcher {role}",
            role=role,  # type: ignore[arg-type]
        )
        return email, await accounts.open_session(conn, who)
    finally:
        await conn.close()


async def test_a_person_saves_runs_and_deletes_a_search_of_the_market(
    settings: Settings,
) -> None:
    settings = plain(settings)
    sme = await register(settings, "sme", "Söker Gävle AB")
    other = await register(settings, "sme", "Grannen AB")
    seller = await register(settings, "sme", "Säljer Umeå AB")
    # A region of this test's own, so the market's answer is this test's offer.
    region = "Z" + "".join(chr(65 + b % 26) for b in uuid.uuid4().bytes[:4])
    email, mine = await account(settings, sme.partner_id, "member")
    _, colleague = await account(settings, sme.partner_id, "read-only")
    _, outsider = await account(settings, other.partner_id, "admin")
    async with running_api(settings, create_service) as client:
        body = offer_body("150102")
        body["location"]["region"] = region

        async def posted() -> bool:
            # The API takes the seller's key once the registry has the seller.
            sent = await client.post("/v1/offers", json=body, headers=seller.auth)
            return sent.status == 202

        await eventually(posted, 30)
        csrf = await as_person(client, mine)
        market = f"/app/market?kind=offer&region={region}"

        async def listed() -> bool:
            return "150102" in await (await client.get(market)).text()

        await eventually(listed, 30)
        page = await (await client.get(market)).text()
        assert 'id="save-this-search"' in page
        assert f'name="region" value="{region}"' in page

        saved = await client.post(
            "/app/market/searches",
            data={"csrf": csrf, "name": "  PE film  up north ", "kind": "offer", "region": region},
            allow_redirects=False,
        )
        assert saved.status == 303, await saved.text()
        assert saved.headers["Location"] == "/app/market/searches?saved=1"
        page = await (await client.get("/app/market/searches?saved=1")).text()
        assert "The search is saved." in page
        found = re.search(r'<tr id="search-([0-9a-f-]{36})">\s*<td>PE film up north</td>', page)
        assert found, page
        search_id = found.group(1)
        run = re.search(r'<a href="(/app/market\?[^"]+)">Run', page)
        assert run is not None
        ran = await (await client.get(run.group(1).replace("&amp;", "&"))).text()
        assert "150102" in ran
        assert f'name="region" value="{region}"' in ran

        # The same name again, no name, filters out of bounds: refused next to the field.
        again = await client.post(
            "/app/market/searches", data={"csrf": csrf, "name": "PE film up north", "q": "film"}
        )
        assert again.status == 422
        text = await again.text()
        assert 'id="name-error">You have a saved search of this name already.<' in text
        assert 'value="film"' in text  # what was typed stays
        empty = await client.post("/app/market/searches", data={"csrf": csrf, "name": " "})
        assert empty.status == 422
        assert 'id="name-error">Fill this in.<' in await empty.text()
        wide = await client.post(
            "/app/market/searches", data={"csrf": csrf, "name": "long", "q": "x" * 101}
        )
        assert wide.status == 422
        assert "These filters cannot be saved" in await wide.text()
        # Without the form's token nothing is saved.
        forged = await client.post("/app/market/searches", data={"name": "forged"})
        assert forged.status == 403

        # The person's export holds the search.
        conn = await connect(settings)
        try:
            exported = await accounts.export(conn, email)
            assert exported is not None
            searches: Any = exported["saved_searches"]
            assert [(s["name"], s["kind"], s["region"]) for s in searches] == [
                ("PE film up north", "offer", region)
            ]
        finally:
            await conn.close()

        # A colleague (read-only: saving a search changes nothing of the organisation's) keeps
        # searches of their own and never sees or deletes this one.
        csrf_colleague = await as_person(client, colleague)
        page = await (await client.get("/app/market/searches")).text()
        assert search_id not in page
        assert "PE film up north" not in page
        gone = await client.post(
            f"/app/market/searches/{search_id}/delete", data={"csrf": csrf_colleague}
        )
        assert gone.status == 404
        own = await client.post(
            "/app/market/searches",
            data={"csrf": csrf_colleague, "name": "PE film up north", "kind": "offer"},
            allow_redirects=False,
        )
        assert own.status == 303
        # Another organisation's person: the same 404.
        csrf_outsider = await as_person(client, outsider)
        gone = await client.post(
            f"/app/market/searches/{search_id}/delete", data={"csrf": csrf_outsider}
        )
        assert gone.status == 404
        assert (
            await client.post(
                "/app/market/searches/not-a-uuid/delete", data={"csrf": csrf_outsider}
            )
        ).status == 404

        # At most 50 a person.
        conn = await connect(settings)
        try:
            person_id = await conn.fetchval(
                "SELECT person_id FROM people WHERE lower(email) = lower($1)", email
            )
            await conn.executemany(
                "INSERT INTO saved_searches (search_id, person_id, name) VALUES ($1, $2, $3)",
                [(uuid.uuid4(), person_id, f"filler {i}") for i in range(49)],
            )
        finally:
            await conn.close()
        csrf = await as_person(client, mine)
        full = await client.post("/app/market/searches", data={"csrf": csrf, "name": "one more"})
        assert full.status == 422
        assert "the most there may be" in await full.text()

        # Deleted by its owner: gone from the list and from the table.
        deleted = await client.post(
            f"/app/market/searches/{search_id}/delete",
            data={"csrf": csrf},
            allow_redirects=False,
        )
        assert deleted.status == 303
        page = await (await client.get("/app/market/searches?deleted=1")).text()
        assert "The search is deleted." in page
        assert search_id not in page

        # The erasure of the person takes the rest of their searches with the account.
        conn = await connect(settings)
        try:
            assert (
                await conn.fetchval(
                    "SELECT count(*) FROM saved_searches WHERE person_id = $1", person_id
                )
                == 49
            )
            assert await accounts.erase(conn, email) is not None
            assert (
                await conn.fetchval(
                    "SELECT count(*) FROM saved_searches WHERE person_id = $1", person_id
                )
                == 0
            )
        finally:
            await conn.close()
