"""Every request body refuses unknown fields at every level, and names a wrong type at every
level, through the real read_body and problem middleware: for each body type of the OpenAPI
document, a complete sample (every optional nested object filled in) is accepted; an unknown key
added to any object in it, or any value swapped for one of the wrong type, is a 422
problem+json whose `errors` name the path. The event contracts stay tolerant."""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator, Iterator
from typing import Any

import msgspec
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from producers.api.bodies import unknown_fields
from producers.api.openapi import ROUTES
from producers.api.problems import problem_middleware
from producers.api.writes import read_body
from schemas.listings import OfferPosted

Client = TestClient[Any, Any]

MATERIAL = {
    "code": "150102",
    "description": "PET bottles",
    "form": "bales",
    "quality_notes": "clean",
    "density_t_per_m3": 0.3,
    "mass_per_piece_t": 0.4,
    "recycled_content_pct": 80,
    "contamination_pct": 2,
}
LOCATION = {"lat": 59.86, "lon": 17.64, "region": "SE121"}
QUANTITY = {"amount": 12.5, "unit": "t"}
MONEY = {"amount": -15.0, "currency": "EUR"}
WINDOW = {"start": "2026-12-01T00:00:00Z", "end": "2027-01-31T00:00:00Z"}
RECURRENCE = {"period": "month", "starts": "2026-12-01", "ends": "2027-12-01"}
OFFER_TERMS = {
    "quantity": QUANTITY,
    "price": MONEY,
    "available": WINDOW,
    "min_lot": {"amount": 2, "unit": "t"},
    "recurrence": RECURRENCE,
}
REQUEST_TERMS = {
    "quantity": QUANTITY,
    "max_price": MONEY,
    "wanted": WINDOW,
    "max_distance_km": 150,
    "recurrence": RECURRENCE,
    "specification": {
        "min_recycled_content_pct": 50,
        "max_contamination_pct": 5,
        "certifications": ["EN 15343"],
        "weight_price": 0.3,
        "weight_co2e": 0.7,
    },
}

# A complete body of every type a route takes (each optional nested object filled in).
SAMPLES: dict[str, dict[str, Any]] = {
    "OfferIn": {
        "material": MATERIAL,
        "location": LOCATION,
        "terms": OFFER_TERMS,
        "on_behalf_of": "sme-1",
        "certifications": ["EN 15343"],
    },
    "RequestIn": {
        "material": MATERIAL,
        "location": LOCATION,
        "terms": REQUEST_TERMS,
        "accepts_codes": ["150102"],
        "hazardous_permit": True,
        "on_behalf_of": "sme-1",
    },
    "OfferTermsIn": {"terms": OFFER_TERMS},
    "RequestTermsIn": {"terms": REQUEST_TERMS},
    "WithdrawIn": {"reason": "sold elsewhere"},
    "AnswerIn": {"reason": "fits"},
    "CapabilitiesIn": {
        "depots": [{"location": LOCATION, "radius_km": 200}],
        "regions": ["SE312"],
        "capacity_t": 24,
        "hazardous_permit": True,
        "vehicle_types": ["rigid_truck", "tipper"],
    },
    "QuoteIn": {
        "quote_id": "q-1",
        "price": MONEY,
        "vehicle": "tipper",
        "co2e_kg": 40,
        "pickup_at": "2026-12-02T08:00:00Z",
    },
    "ReserveIn": {"price": MONEY},
    "ConsentIn": {"note": "paper form"},
    "RevokeIn": {"reason": "done"},
    "NudgeIn": {"message": "still there?"},
    "DeliveredIn": {"delivery_id": "d-1", "note": "all there"},
    "FeedbackIn": {"rating": 4, "reason": "timeliness", "comment": "ok", "delivery_id": "d-1"},
    "EndpointIn": {
        "url": "https://example.org/hook",
        "kinds": ["match.proposed"],
        "description": "ours",
    },
    "RotateIn": {"overlap_s": 60},
    "MessageIn": {"text": "The bales are ready on Thursday."},
    "LegalIn": {
        "legal_name": "Uppsala Plaståtervinning AB",
        "street": "Kungsgatan 12",
        "postcode": "753 21",
        "city": "Uppsala",
        "country": "SE",
        "vat_number": "SE556677889901",
        "peppol_id": "0007:5566778899",
    },
    "MailPreferencesIn": {
        "kinds": [{"kind": "match.proposed", "choice": "digest"}],
        "digest_hour": 7,
        "time_zone": "Europe/Sofia",
        "language": "bg",
    },
    "TransportIn": {"weight_t": 3.95, "at": "2026-12-02T09:30:00Z", "note": "weighed at the gate"},
}
BODIES = {r.body.__name__: r.body for r in ROUTES if r.body is not None}


def objects(value: Any, path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """Every JSON object in `value` with its path (`` for the body itself)."""
    if isinstance(value, dict):
        yield path, value
        for key, item in value.items():
            yield from objects(item, f"{path}.{key}" if path else key)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from objects(item, f"{path}[{i}]")


def leaves_and_nodes(value: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    """Every value below the body, with its path."""
    if isinstance(value, dict):
        for key, item in value.items():
            where = f"{path}.{key}" if path else key
            yield where, item
            yield from leaves_and_nodes(item, where)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield f"{path}[{i}]", item
            yield from leaves_and_nodes(item, f"{path}[{i}]")


def at(body: Any, path: str) -> tuple[Any, str | int]:
    """The container of `path` in `body`, and the key or index there."""
    parts: list[str | int] = [
        int(piece[1:-1]) if piece.startswith("[") else piece
        for piece in path.replace("[", ".[").split(".")
    ]
    node = body
    for part in parts[:-1]:
        node = node[part]
    return node, parts[-1]


def wrong(value: Any) -> Any:
    """A value of another JSON type."""
    return "not this" if isinstance(value, bool | int | float | dict | list) else 12345


def cases(kind: str, mutate: str) -> list[tuple[str, str]]:
    paths = (
        [p for p, _ in objects(SAMPLES[kind])]
        if mutate == "unknown"
        else [p for p, _ in leaves_and_nodes(SAMPLES[kind])]
    )
    return [(kind, p) for p in paths]


@pytest.fixture
async def client() -> AsyncIterator[Client]:
    async def decode(request: web.Request) -> web.StreamResponse:
        body: Any = await read_body(request, BODIES[request.match_info["kind"]])
        return web.json_response(msgspec.to_builtins(body))

    app = web.Application(middlewares=[problem_middleware])
    app.router.add_post("/{kind}", decode)
    async with TestClient(TestServer(app)) as c:
        yield c


async def refused(client: Client, kind: str, body: Any) -> dict[str, Any]:
    r = await client.post(f"/{kind}", json=body)
    assert r.status == 422, await r.text()
    assert r.content_type == "application/problem+json"
    problem: dict[str, Any] = await r.json()
    assert problem["status"] == 422
    assert problem["type"].endswith("/validation")
    return problem


def test_every_body_type_has_a_sample() -> None:
    assert set(BODIES) == set(SAMPLES)


@pytest.mark.parametrize("kind", sorted(SAMPLES))
async def test_the_complete_sample_is_accepted(client: Client, kind: str) -> None:
    r = await client.post(f"/{kind}", json=SAMPLES[kind])
    assert r.status == 200, await r.text()


UNKNOWN = [c for kind in sorted(SAMPLES) for c in cases(kind, "unknown")]


@pytest.mark.parametrize(("kind", "path"), UNKNOWN, ids=[f"{k}:{p or '$'}" for k, p in UNKNOWN])
async def test_an_unknown_field_at_any_level_is_named(client: Client, kind: str, path: str) -> None:
    body = copy.deepcopy(SAMPLES[kind])
    node = body
    if path:
        container, key = at(body, path)
        node = container[key]
    node["colour"] = "blue"
    problem = await refused(client, kind, body)
    named = f"{path}.colour" if path else "colour"
    assert [e["field"] for e in problem["errors"]] == [named]
    assert named in problem["detail"]
    assert problem["errors"][0]["reason"].startswith("unknown field")


WRONG = [c for kind in sorted(SAMPLES) for c in cases(kind, "wrong")]


@pytest.mark.parametrize(("kind", "path"), WRONG, ids=[f"{k}:{p}" for k, p in WRONG])
async def test_a_wrong_type_at_any_level_is_named(client: Client, kind: str, path: str) -> None:
    body = copy.deepcopy(SAMPLES[kind])
    container, key = at(body, path)
    container[key] = wrong(container[key])
    problem = await refused(client, kind, body)
    assert [e["field"] for e in problem["errors"]] == [path]


async def test_all_unknown_fields_are_named_at_once_with_a_wrong_type(client: Client) -> None:
    body = copy.deepcopy(SAMPLES["RequestIn"])
    terms = body["terms"]
    terms["specifcation"] = terms.pop("specification")
    body["material"]["colour"] = "blue"
    body["extra"] = 1
    terms["max_distance_km"] = "far"
    problem = await refused(client, "RequestIn", body)
    assert [e["field"] for e in problem["errors"]] == [
        "material.colour",
        "terms.specifcation",
        "extra",
        "terms.max_distance_km",
    ]
    reasons = {e["field"]: e["reason"] for e in problem["errors"]}
    assert "specification" in reasons["terms.specifcation"]  # the known fields are listed
    assert "terms.specifcation" in problem["detail"]


async def test_optional_bodies_and_malformed_json(client: Client) -> None:
    r = await client.post("/RequestIn", data=b"{nope", headers={"Content-Type": "application/json"})
    assert r.status == 400
    problem = await refused(client, "RequestIn", [SAMPLES["RequestIn"]])
    assert problem["errors"][0]["field"] == "body"


def test_the_event_contracts_stay_tolerant_of_unknown_fields() -> None:
    """schemas/README.md rule 1: an old consumer reads an event with fields it does not know, at
    any level; the strictness is the API's alone."""
    newer = {
        "type": "market.offer.posted.v1",
        "offer_id": "o-1",
        "owner_id": "s-1",
        "actor_id": "s-1",
        "material": MATERIAL | {"colour": "blue"},
        "location": LOCATION | {"altitude_m": 12},
        "terms": OFFER_TERMS | {"incoterm": "EXW", "quantity": QUANTITY | {"tolerance": 0.1}},
        "provenance": {"site": "A"},
    }
    event = msgspec.json.decode(msgspec.json.encode(newer), type=OfferPosted)
    assert event.material.code == "150102"
    assert event.terms.quantity.amount == 12.5
    # The same walk would name them all (the tag field `type` is known).
    assert [f for f, _ in unknown_fields(newer, OfferPosted)] == [
        "material.colour",
        "location.altitude_m",
        "terms.quantity.tolerance",
        "terms.incoterm",
        "provenance",
    ]


async def test_a_whole_number_written_with_a_fraction_is_an_integer(client: Client) -> None:
    # JSON (and the document's `integer`) does not tell 4 from 4.0: both are a rating of 4.
    body = SAMPLES["FeedbackIn"] | {"rating": 4.0}
    r = await client.post("/FeedbackIn", json=body)  # the standard library writes 4.0
    assert r.status == 200, await r.text()
    assert (await r.json())["rating"] == 4
    # A float field keeps taking either, and a real fraction is still no integer.
    quote = SAMPLES["QuoteIn"] | {"co2e_kg": 40.0}
    assert (await client.post("/QuoteIn", json=quote)).status == 200
    problem = await refused(client, "FeedbackIn", SAMPLES["FeedbackIn"] | {"rating": 4.5})
    assert [e["field"] for e in problem["errors"]] == ["rating"]
