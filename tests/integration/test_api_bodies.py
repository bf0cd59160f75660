"""Unknown fields and wrong types in request bodies, at every level, through the real API: each
is a 422 problem+json naming the path, and nothing reaches the topics. (Every body type, field by
field, is covered in tests/unit/test_api_bodies.py; these are the routes as partners call them.)"""

from __future__ import annotations

import copy
from typing import Any

import orjson
import pytest

from marketplace.settings import Settings
from tests.integration.api_helpers import (
    eventually,
    offer_body,
    register,
    request_body,
    running_api,
)
from tests.integration.kafka_helpers import end_offsets, read_since

pytestmark = pytest.mark.integration

TOPICS = ("market.listings", "partners.registry")


def with_spec() -> dict[str, Any]:
    body = request_body()
    body["terms"]["specification"] = {"min_recycled_content_pct": 60, "certifications": ["EN"]}
    body["terms"]["recurrence"] = {"period": "month", "starts": "2026-12-01"}
    return body


def changed(body: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """`body` with `path` (dots; [i] for a list item) set to `value`."""
    out = copy.deepcopy(body)
    node: Any = out
    parts = path.replace("[", ".[").split(".")
    for part in parts[:-1]:
        node = node[int(part[1:-1])] if part.startswith("[") else node[part]
    last = parts[-1]
    node[int(last[1:-1]) if last.startswith("[") else last] = value
    return out


def renamed(body: dict[str, Any], path: str, new: str) -> dict[str, Any]:
    out = copy.deepcopy(body)
    node: Any = out
    *parents, last = path.split(".")
    for part in parents:
        node = node[part]
    node[new] = node.pop(last)
    return out


CAPABILITIES = {
    "depots": [{"location": {"lat": 60.6, "lon": 15.6}, "radius_km": 200}],
    "capacity_t": 24,
    "vehicle_types": ["rigid_truck"],
}


async def test_misspelt_and_mistyped_fields_are_refused_with_their_path(
    settings: Settings,
) -> None:
    seller = await register(settings, "sme", "Strict Bodies AB")
    carrier = await register(settings, "logistics", "Strict Frakt AB")
    facilitator = await register(settings, "facilitator", "Strict Cluster")
    before = {t: await end_offsets(settings, t) for t in TOPICS}
    spec = with_spec()
    # (who, method, path, body, the fields `errors` names)
    cases: list[tuple[Any, str, str, Any, list[str]]] = [
        # The buyer who types `terms.specifcation` loses nothing: the request is refused.
        (seller, "POST", "/v1/requests", renamed(spec, "terms.specification", "specifcation"),
         ["terms.specifcation"]),
        (seller, "POST", "/v1/requests/preview",
         renamed(spec, "terms.specification", "specifcation"), ["terms.specifcation"]),
        (seller, "POST", "/v1/requests",
         changed(spec, "terms.specification.min_recycled", 50),
         ["terms.specification.min_recycled"]),
        (seller, "POST", "/v1/requests", changed(spec, "terms.recurrence.every", 2),
         ["terms.recurrence.every"]),
        (seller, "POST", "/v1/requests", changed(spec, "terms.max_price.vat", 25),
         ["terms.max_price.vat"]),
        (seller, "POST", "/v1/requests", changed(spec, "terms.wanted.timezone", "CET"),
         ["terms.wanted.timezone"]),
        (seller, "POST", "/v1/offers", changed(offer_body(), "material.colour", "blue"),
         ["material.colour"]),
        (seller, "POST", "/v1/offers", changed(offer_body(), "location.altitude", 3),
         ["location.altitude"]),
        (seller, "POST", "/v1/offers", changed(offer_body(), "terms.quantity.tolerance", 1),
         ["terms.quantity.tolerance"]),
        (seller, "POST", "/v1/offers", changed(offer_body(), "terms.price.vat", 25),
         ["terms.price.vat"]),
        (seller, "POST", "/v1/offers", changed(offer_body(), "colour", "blue"), ["colour"]),
        # U+0000, which PostgreSQL's text and jsonb cannot hold, is refused where it is.
        (seller, "POST", "/v1/offers",
         changed(offer_body(), "material.description", "PE film\x00"), ["material.description"]),
        (carrier, "PUT", "/v1/carrier/capabilities",
         changed(CAPABILITIES, "depots[0].location.altitude", 3),
         ["depots[0].location.altitude"]),
        (carrier, "PUT", "/v1/carrier/capabilities", changed(CAPABILITIES, "depots[0].radius", 3),
         ["depots[0].radius"]),
        (seller, "POST", "/v1/webhooks",
         {"url": "https://example.org/h", "kinds": [], "secret": "mine"}, ["secret"]),
        (seller, "POST", f"/v1/consents/{facilitator.partner_id}",
         {"note": "ok", "expires": "2027-01-01"}, ["expires"]),
        # Wrong types, at every level.
        (seller, "POST", "/v1/requests", changed(spec, "terms", "soon"), ["terms"]),
        (seller, "POST", "/v1/requests", changed(spec, "terms.quantity", 5), ["terms.quantity"]),
        (seller, "POST", "/v1/requests", changed(spec, "terms.quantity.amount", "5"),
         ["terms.quantity.amount"]),
        (seller, "POST", "/v1/requests", changed(spec, "terms.specification.certifications", "EN"),
         ["terms.specification.certifications"]),
        (seller, "POST", "/v1/requests",
         changed(spec, "terms.specification.certifications[0]", 15343),
         ["terms.specification.certifications[0]"]),
        (seller, "POST", "/v1/requests", changed(spec, "terms.recurrence.period", 7),
         ["terms.recurrence.period"]),
        (seller, "POST", "/v1/offers", changed(offer_body(), "material.density_t_per_m3", "x"),
         ["material.density_t_per_m3"]),
        (seller, "POST", "/v1/offers", changed(offer_body(), "location.region", 5),
         ["location.region"]),
        (seller, "POST", "/v1/offers", changed(offer_body(), "terms.available.start", 5),
         ["terms.available.start"]),
        (carrier, "PUT", "/v1/carrier/capabilities",
         changed(CAPABILITIES, "depots[0].location.lat", "north"), ["depots[0].location.lat"]),
        (carrier, "PUT", "/v1/carrier/capabilities", changed(CAPABILITIES, "depots", {}),
         ["depots"]),
        (seller, "POST", "/v1/webhooks", {"url": 5}, ["url"]),
        # Both at once: every unknown field, and the wrong type.
        (seller, "POST", "/v1/requests",
         changed(renamed(spec, "terms.specification", "specifcation"), "terms.max_distance_km",
                 "far"), ["terms.specifcation", "terms.max_distance_km"]),
    ]  # fmt: skip
    async with running_api(settings) as client:
        for who, method, path, body, fields in cases:
            r = await client.request(method, path, json=body, headers=who.auth)
            assert r.status == 422, (path, fields, await r.text())
            assert r.content_type == "application/problem+json"
            problem = await r.json()
            assert [e["field"] for e in problem["errors"]] == fields, (path, problem)

        # PUT of an offer's terms: the existing offer, a misspelt minimum lot.
        posted = await client.post("/v1/offers", json=offer_body(), headers=seller.auth)
        offer_id = (await posted.json())["offer_id"]

        async def projected() -> bool:
            return (await client.get(f"/v1/offers/{offer_id}", headers=seller.auth)).status == 200

        await eventually(projected, 30)
        terms = offer_body()["terms"] | {"minimum_lot": {"amount": 1, "unit": "t"}}
        r = await client.put(f"/v1/offers/{offer_id}", json={"terms": terms}, headers=seller.auth)
        assert r.status == 422
        assert [e["field"] for e in (await r.json())["errors"]] == ["terms.minimum_lot"]
        terms = offer_body()["terms"] | {"min_lot": {"amount": 1, "unit": "t", "each": True}}
        r = await client.put(f"/v1/offers/{offer_id}", json={"terms": terms}, headers=seller.auth)
        assert [e["field"] for e in (await r.json())["errors"]] == ["terms.min_lot.each"]
    # Only the one good offer reached a topic.
    listings = await read_since(settings, "market.listings", before["market.listings"])
    mine = [orjson.loads(r.value) for r in listings]
    assert [e["type"] for e in mine if e["owner_id"] == seller.partner_id] == [
        "market.offer.posted.v1"
    ]
    registry = await read_since(settings, "partners.registry", before["partners.registry"])
    keys = {seller.partner_id.encode(), carrier.partner_id.encode()}
    assert [r for r in registry if r.key in keys] == []
