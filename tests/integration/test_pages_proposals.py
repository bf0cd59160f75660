"""Proposals on the pages (#19), against the real stack (API with the pages, projector, matcher,
notifier): a proposal made by the matcher reaches a signed-in person's live stream without a
reload, and accepting it on the page is the API's accept (the other side sees the answer)."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import orjson
from aiohttp.test_utils import TestClient

from marketplace import accounts
from marketplace.db import connect
from marketplace.settings import Settings
from producers.web.app import create_service
from tests.integration.api_helpers import Partner, eventually, register, running_api
from tests.integration.notify_helpers import notifier_running
from tests.integration.test_matcher import matcher_running, near, offer, place, post, request
from tests.integration.test_pages_accounts import PASSWORD, csrf_of, plain


async def signed_in(settings: Settings, client: TestClient[Any, Any], partner: Partner) -> None:
    conn = await connect(settings)
    try:
        person = await accounts.create_person(
            conn,
            partner_id=partner.partner_id,
            email=f"buyer-{partner.partner_id[:8]}@example.org",
            display_name="Erik Berg",
            role="member",
        )
        token = await accounts.issue_link(conn, person.person_id, "invite")
    finally:
        await conn.close()
    page = await client.get(f"/app/invite/{token}")
    sent = await client.post(
        f"/app/invite/{token}",
        data={"csrf": csrf_of(await page.text()), "password": PASSWORD, "repeat": PASSWORD},
        allow_redirects=False,
    )
    assert sent.status == 303


async def next_event(stream: Any) -> tuple[str, str]:
    """The next Server-Sent Event (name, data joined) of an open response."""
    name, data = "", []
    while True:
        line = (await asyncio.wait_for(stream.content.readline(), 60)).decode().rstrip("\n")
        if line.startswith("event: "):
            name = line[7:]
        elif line.startswith("data: "):
            data.append(line[6:])
        elif line == "" and name:
            return name, "\n".join(data)


async def test_a_proposal_arrives_live_and_is_accepted_on_the_page(settings: Settings) -> None:
    settings = plain(settings)
    seller = await register(settings, "sme", "Folie Norr AB")
    buyer = await register(settings, "sme", "Granulat Luleå AB")
    spot = place()
    async with (
        running_api(settings, create_service) as client,
        matcher_running(settings),
        notifier_running(settings),
    ):
        await signed_in(settings, client, buyer)
        stream = await client.get("/app/live")
        assert stream.status == 200
        assert stream.headers["Content-Type"].startswith("text/event-stream")
        name, first = await next_event(stream)
        assert name == "proposals"
        assert "proposal-" not in first  # nothing yet

        request_id = await post(client, buyer, "/v1/requests", request(near(spot, 0.1), 4, 80))
        await post(client, seller, "/v1/offers", offer(spot, 6, 20))

        # Without asking again: the stream sends the list once the proposal is stored.
        html = ""
        while "proposal-" not in html:
            name, html = await next_event(stream)
            assert name == "proposals"
        stream.close()
        match_id = re.search(r'id="proposal-([^"]+)"', html)
        assert match_id is not None
        assert "150102" in html
        assert 'action="/app/proposals/' in html

        page = await client.get("/app/proposals")
        token = csrf_of(await page.text())
        accepted = await client.post(
            f"/app/proposals/{match_id.group(1)}/accept",
            data={"csrf": token},
            allow_redirects=False,
        )
        assert accepted.status == 303

        async def answered() -> bool:
            seen = await client.get(f"/v1/matches/{match_id.group(1)}", headers=seller.auth)
            body = orjson.loads(await seen.read())
            return bool(body["answers"].get(buyer.partner_id) == "accepted")

        await eventually(answered, 30)
        # A second answer from the page is refused (409), the first stands.
        again = await client.post(
            f"/app/proposals/{match_id.group(1)}/decline", data={"csrf": token}
        )
        assert again.status == 409
        assert request_id
        # A proposal that is not the organisation's is not there for this person.
        missing = await client.post("/app/proposals/no-such-match/accept", data={"csrf": token})
        assert missing.status == 404
