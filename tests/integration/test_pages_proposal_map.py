"""A proposal's map on the pages (#19), against the real stack (API with the pages, projector,
matcher): until the match is confirmed the page holds only the other side's rounded place and
its circle, never its coordinates nor anything drawn from them, and the distance only rounded
(the exact figure would narrow the circle to a ring); once both sides accepted, the exact place
and distance."""

from __future__ import annotations

import re
from typing import Any

from aiohttp.test_utils import TestClient

from marketplace.core.disclosure import about_km
from marketplace.core.geo import distance_km
from marketplace.core.sketch_map import approximate, sketch
from marketplace.settings import Settings
from producers.web.app import create_service
from tests.integration.api_helpers import eventually, register, running_api
from tests.integration.test_matcher import matcher_running, offer, place, post, request
from tests.integration.test_pages_accounts import plain
from tests.integration.test_pages_proposals import next_event, signed_in


def _distance(html: str, match_id: str) -> str:
    """The proposal's "Distance" line, as the page says it."""
    card = re.search(rf'<li id="proposal-{match_id}".*?</li>', html, re.S)
    assert card is not None, "no card for the proposal"
    found = re.search(r'<dd class="distance" data-exact="(yes|no)">(.*?)</dd>', card.group(0))
    assert found is not None, "no distance on the proposal"
    return f"{found.group(1)}: {found.group(2)}"


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
            # With its map: the map also needs the offer's row, which this test's projector
            # reads from another topic than the proposal (a CI run once saw the card first).
            nonlocal html
            html = await _page(client)
            return "proposal-" in html and 'class="sketch-map"' in html

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
        # The distance is said roughly, as in the map's words, never the matcher's figure (the
        # great circle between the two places); the API's read says it as roughly.
        km = distance_km(here["lat"], here["lon"], there["lat"], there["lon"])
        rough_km, exact_km = about_km(km), f"{km:.0f}"
        assert rough_km != int(exact_km), "the places are chosen so that rounding shows"
        answer = await (await client.get(f"/v1/matches/{match_id}", headers=buyer.auth)).json()
        assert (answer["distance_km"], answer["distance_exact"]) == (rough_km, False)
        assert _distance(html, match_id) == (f"no: about {rough_km} km")
        assert f"about {rough_km} km from you" in figure
        assert f"{exact_km} km" not in _figure(html, match_id)
        # The live fragment (the same list, sent over SSE) holds the circle, no coordinates.
        stream = await client.get("/app/live")
        name, fragment = await next_event(stream)
        stream.close()
        assert name == "proposals"
        assert f'r="{rough.other_radius}"' in _figure(fragment, match_id)
        for text in exact_texts:
            assert text not in fragment
        assert _distance(fragment, match_id).startswith(f"no: about {rough_km} km")

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
        assert _distance(html, match_id) == f"yes: {exact_km} km"
        answer = await (await client.get(f"/v1/matches/{match_id}", headers=buyer.auth)).json()
        assert answer["distance_exact"] is True
        assert f"{answer['distance_km']:.0f}" == exact_km
