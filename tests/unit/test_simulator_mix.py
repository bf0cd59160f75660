"""The simulator's mix includes recurring flows, stated qualities and buyer specifications, and
every body it sends is one the API accepts."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from itertools import islice
from typing import Any

import msgspec

from producers.api.bodies import OfferIn, RequestIn
from producers.simulator.market import Market

START = datetime(2026, 12, 1, tzinfo=UTC)


def _bodies(seed: int, n: int) -> list[tuple[str, dict[str, Any]]]:
    market = Market(seed, smes=80)
    return [(a.kind, a.body) for a in islice(market.actions(5.0, START), n) if a.body is not None]


def test_every_listing_body_decodes_as_the_api_would() -> None:
    offers = requests = 0
    for kind, body in _bodies(7, 3000):
        raw = msgspec.json.encode(body)
        if kind == "offer":
            msgspec.json.decode(raw, type=OfferIn)
            offers += 1
        elif kind == "request":
            msgspec.json.decode(raw, type=RequestIn)
            requests += 1
    assert offers > 1000
    assert requests > 1000


def test_the_mix_has_recurring_flows_qualities_and_specifications() -> None:
    bodies = _bodies(11, 4000)
    offers = [b for k, b in bodies if k == "offer"]
    requests = [b for k, b in bodies if k == "request"]

    def share(items: list[dict[str, Any]], test: Callable[[dict[str, Any]], bool]) -> float:
        return sum(1 for b in items if test(b)) / len(items)

    recurring_offers = share(offers, lambda b: "recurrence" in b["terms"])
    certified = share(offers, lambda b: "certifications" in b)
    recurring_requests = share(requests, lambda b: "recurrence" in b["terms"])
    specified = share(requests, lambda b: "specification" in b["terms"])
    assert 0.15 < recurring_offers < 0.25
    assert 0.2 < certified < 0.3
    assert 0.1 < recurring_requests < 0.2
    assert 0.1 < specified < 0.2


def test_the_same_seed_gives_the_same_market() -> None:
    assert _bodies(3, 500) == _bodies(3, 500)
