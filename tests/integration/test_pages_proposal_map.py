"""A proposal's map on the pages (#19), against the real stack (API with the pages, projector,
matcher): until the match is confirmed the page holds only the other side's rounded place and
its circle, never its coordinates nor anything drawn from them; once both sides accepted, the
exact place."""

from __future__ import annotations

import re
from typing import Any

from aiohttp.test_utils import TestClient

from marketplace.core.sketch_map import approximate, sketch
from marketplace.settings import Settings
from producers.web.app import create_service
from tests.integration.api_helpers import eventually, register, running_api
from tests.integration.test_matcher import matcher_running, offer, place, post, request
from tests.integration.test_pages_accounts import plain
from tests.integration.test_pages_proposals import next_event, signed_in


def _figure(html: str, match_id: str) -> str:
    found = re.search(rf'<figure class="sketch-map" id="map-{match_id}".*?</figure>', html, re.S)
    assert found is not None, "no map on the proposal"
    return found.group(0)


async def _page(client: TestClient[Any, Any]) -> str:
    page = await client.get("/app/proposals")
    assert page.status == 200
    return await page.text()


async def test_the_map_is_approximate_until_confirmed_then_exact(settings: Settings) -> None:
    settings = plain(settings)
    seller = await register(settings, "sme", "Textil Söderhamn AB")
    buyer = await register(settings, "sme", "Fiber Gävle AB")
    spot = place()
    # The seller's exact place, with digits of its own to look for in the buyer's page.
    there = {"lat": round(spot["lat"] + 0.00037, 5), "lon": round(spot["lon"] + 0.00041, 5)}
    here = {"lat": round(spot["lat"] + 0.1, 5), "lon": spot["lon"]}
    exact_texts = [
        str(there["lat"]),
        str(there["lon"]),
        f"{there['lat']:.4f}",
        f"{there['lon']:.4f}",
    ]
    area = approximate(there["lat"], there["lon"])
    rough = sketch(here["lat"], here["lon"], area.lat, area.lon, area.radius_km)
    exact = sketch(here["lat"], here["lon"], there["lat"], there["lon"])
    async with running_api(settings, create_service) as client, matcher_running(settings):
        await signed_in(settings, client, buyer)
        await post(client, buyer, "/v1/requests", request(here, 4, 80))
        located: dict[str, Any] = {**there, "region": "SE313"}
        await post(client, seller, "/v1/offers", offer(located, 6, 20))

        html = ""

        async def proposed() -> bool:
            nonlocal html
            html = await _page(client)
            return "proposal-" in html

        await eventually(proposed, 60)
        found = re.search(r'id="proposal-([^"]+)"', html)
        assert found is not None
        match_id = found.group(1)
        figure = _figure(html, match_id)
        assert 'data-exact="no"' in figure
        assert "<svg" in figure
        assert "<title" in figure
        assert "SE313" in figure  # the region, in words
        assert f'cx="{rough.other.x}" cy="{rough.other.y}" r="{rough.other_radius}"' in figure
        assert f'cx="{rough.own.x}" cy="{rough.own.y}"' in figure  # the buyer's own place
        # Nowhere on the page: the seller's coordinates, or the exact point as it would be drawn.
        for text in exact_texts:
            assert text not in html
        assert f'cx="{exact.other.x}" cy="{exact.other.y}"' not in html
        # The live fragment (the same list, sent over SSE) holds the circle, no coordinates.
        stream = await client.get("/app/live")
        name, fragment = await next_event(stream)
        stream.close()
        assert name == "proposals"
        assert f'r="{rough.other_radius}"' in _figure(fragment, match_id)
        for text in exact_texts:
            assert text not in fragment

        for side in (seller, buyer):
            accepted = await client.post(f"/v1/matches/{match_id}/accept", headers=side.auth)
            assert accepted.status == 202, await accepted.text()

        async def confirmed() -> bool:
            nonlocal html
            html = await _page(client)
            return 'data-exact="yes"' in html

        await eventually(confirmed, 60)
        figure = _figure(html, match_id)
        assert f'cx="{exact.other.x}" cy="{exact.other.y}" r="6"' in figure
        assert f"{there['lat']:.4f}" in figure
        assert f"{there['lon']:.4f}" in figure
        assert f'r="{rough.other_radius}"' not in figure  # no circle any more
