"""The SME page in headless Chromium against the real stack (API, projector, matcher, notifier):
sign-in, the language chosen by the browser and by the switch, open listings, a proposal made by
the matcher appearing without a reload, and accepting it from the page reaching the matcher."""

from __future__ import annotations

import orjson
import pytest

from marketplace.settings import Settings
from tests.browser import browser
from tests.integration.api_helpers import eventually, register, running_api
from tests.integration.kafka_helpers import end_offsets, read_since
from tests.integration.notify_helpers import notifier_running
from tests.integration.test_matcher import (
    matcher_running,
    matches_about,
    near,
    offer,
    place,
    post,
    request,
)

pytestmark = pytest.mark.integration

SCREENSHOTS = Settings().local_dir / "screenshots"


def js(value: object) -> str:
    return orjson.dumps(value).decode()


async def test_a_proposal_shows_live_and_is_accepted_from_the_page(settings: Settings) -> None:
    seller = await register(settings, "sme", "Folie Norr AB")
    buyer = await register(settings, "sme", "Granulat Luleå AB")
    carrier = await register(settings, "logistics", "Frakt AB")
    spot = place()
    since = await end_offsets(settings, "market.matches")
    async with (
        running_api(settings) as client,
        matcher_running(settings) as group,
        notifier_running(settings),
        browser() as page,
    ):
        # The browser asks for Swedish (headless Chromium ignores --lang; the protocol can).
        agent = await page.eval("navigator.userAgent")
        await page.send(
            "Emulation.setUserAgentOverride", userAgent=agent, acceptLanguage="sv-SE,sv"
        )
        await page.goto(str(client.make_url("/sme")))
        assert await page.eval("document.querySelector('#login h2').textContent") == "Logga in"
        # Another role's key is turned away with the reason, in the page's language.
        await page.eval(
            f"document.getElementById('key').value = {js(carrier.key)};"
            "document.querySelector('#login-form button').click(); true"
        )
        await page.wait_for("document.getElementById('login-error').textContent.length > 0")
        assert "roll" in await page.eval("document.getElementById('login-error').textContent")

        request_id = await post(client, buyer, "/v1/requests", request(near(spot, 0.1), 4, 80))

        async def listed() -> bool:
            answer = await client.get("/v1/requests?status=open", headers=buyer.auth)
            return any(i["id"] == request_id for i in (await answer.json())["items"])

        await eventually(listed)
        await page.eval(
            f"document.getElementById('key').value = {js(buyer.key)};"
            "document.querySelector('#login-form button').click(); window.__stayed = true; true"
        )
        await page.wait_for("document.getElementById('app').hidden === false")
        await page.wait_for(f"document.querySelector('[data-listing={js(request_id)}]') !== null")
        await page.wait_for("document.getElementById('live').classList.contains('on')")
        # The switch: Bulgarian, then English.
        await page.eval("document.querySelector('[data-lang=bg]').click(); true")
        assert await page.eval("document.documentElement.lang") == "bg"
        assert await page.eval("document.querySelector('#proposals-section h2').textContent") == (
            "Предложения за сделки"
        )
        await page.eval("document.querySelector('[data-lang=en]').click(); true")
        assert await page.eval("document.querySelector('#proposals-section h2').textContent") == (
            "Match proposals"
        )

        # The seller posts; the matcher proposes; the page shows it without a reload.
        offer_id = await post(client, seller, "/v1/offers", offer(spot, 5, 10))
        # (Another matcher on the shared broker, e.g. a soak run's, may propose our request with
        # its own offers too: wait for our pair.)
        pair: list[str] = []

        async def proposed() -> bool:
            for r in await read_since(settings, "market.matches", since):
                body = orjson.loads(r.value)
                if (body.get("offer_id"), body.get("request_id")) == (offer_id, request_id):
                    pair.append(body["match_id"])
            return bool(pair)

        await eventually(proposed, 60)
        match_id = pair[0]
        card = f"document.querySelector('[data-match={js(match_id)}]')"
        await page.wait_for(f"{card} !== null", 60)
        assert await page.eval("window.__stayed === true") is True
        assert await page.eval(f"{card}.dataset.state") == "proposed"
        assert "You buy" in await page.eval(f"{card}.textContent")

        # Accept from the page; the seller accepts through the API; the matcher confirms and
        # the page shows it, still without a reload.
        await page.eval(f"{card}.querySelector('[data-action=accept]').click(); true")
        await page.wait_for(f"{card}.dataset.state === 'accepted'", 30)
        answer = await client.post(f"/v1/matches/{match_id}/accept", headers=seller.auth)
        assert answer.status == 202, await answer.text()
        confirmed = await matches_about(
            settings, since, {match_id}, {"market.match.confirmed.v1"}, 1, group
        )
        assert confirmed[0][1]["buyer_id"] == buyer.partner_id
        await page.wait_for(f"{card}.dataset.state === 'confirmed'", 60)
        assert await page.eval("window.__stayed === true") is True
        assert await page.eval("document.getElementById('action-error').textContent") == ""
        await page.screenshot(SCREENSHOTS / "sme.png")
