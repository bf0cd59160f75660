"""The simulated market: reproducible, in the regions it is for, and speaking the API's language."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime

import msgspec
import pytest

from marketplace.core.families import family_of
from marketplace.core.geo import distance_km
from marketplace.reference import list_of_waste, substitutions, transport_factors
from producers.api.bodies import CapabilitiesIn, OfferIn, QuoteIn, RequestIn
from producers.simulator.driver import NotLoopback, check_loopback
from producers.simulator.market import SECTORS, TOWNS, Market, allot

START = datetime(2026, 12, 1, tzinfo=UTC)


def test_the_same_seed_gives_the_same_market() -> None:
    a, b, c = Market(7), Market(7), Market(8)
    assert [f.name for f in a.firms] == [f.name for f in b.firms]
    first = list(itertools.islice(a.actions(5, START), 200))
    assert first == list(itertools.islice(b.actions(5, START), 200))
    assert first != list(itertools.islice(c.actions(5, START), 200))
    assert a.answers("m1", "p1") == b.answers("m1", "p1")


def test_firms_sit_in_the_associations_regions() -> None:
    market = Market(1, smes=300, carriers=12)
    towns = {f.town.name for f in market.firms}
    for town in (
        "Söderhamn",
        "Bollnäs",
        "Hudiksvall",
        "Rättvik",
        "Leksand",
        "Ludvika",
        "Arvika",
        "Torsby",
    ):
        assert any(t.name == town for t in TOWNS)
    assert {"Sofia", "Söderhamn"} <= towns
    assert {t.region[:2] for t in TOWNS} == {"BG", "SE"}
    assert {t.region[:4] for t in TOWNS if t.country == "SE"} == {"SE31"}  # Norra Mellansverige
    assert sum(f.role == "logistics" for f in market.firms) == 12
    assert {s.key for s in SECTORS} >= {
        "textiles",
        "plastics",
        "agrifood",
        "retail",
        "events",
        "accommodation",
        "construction",
        "food",
        "beverages",
        "farming",
        "biogas",
    }
    assert all(f.name.endswith(("AB", "HB")) == (f.town.country == "SE") for f in market.firms)


def test_every_traded_code_is_a_real_code_and_the_seeds_food_and_farm_flows_are_traded() -> None:
    low = list_of_waste()
    traded: set[str] = set()
    for sector in SECTORS:
        for code in [m.code for m in sector.offers] + [n.code for n in sector.needs]:
            assert not low.is_hazardous(code), code
            low.entry(code)
            traded.add(code)
        for need in sector.needs:
            for code in need.accepts:
                low.entry(code)
    # Chapter 02 (farm and food) is offered and asked for, beside textiles (04), plastics and
    # packaging (15) and construction (17).
    offered = {m.code[:2] for s in SECTORS for m in s.offers}
    wanted = {n.code[:2] for s in SECTORS for n in s.needs}
    assert {"02", "04", "15", "17"} <= offered
    assert {"02", "04", "15", "17"} <= wanted
    assert {"020103", "020106", "020304", "020501", "020601", "020799"} <= traded
    # Every seed chapter is offered and asked for, 19 and 20 included: collected paper,
    # plastics, wood and textiles, sorted grades from sorting plants, sewage sludge.
    seeds = {"02", "04", "15", "17", "19", "20"}
    assert seeds <= offered
    assert seeds <= wanted
    assert {"190805", "191201", "191204", "191207", "200101", "200111", "200138", "200139"} <= (
        traded
    )


def test_every_offered_material_has_a_buyer_in_the_mix() -> None:
    subs = substitutions()
    taken: set[str] = set()
    for sector in SECTORS:
        for need in sector.needs:
            # The API takes accepted codes of the request's own family only.
            assert {family_of(c) for c in need.accepts} <= {family_of(need.code)}, need
            taken |= {need.code, *need.accepts, *subs.get(need.code, ())}
    offered = {m.code for s in SECTORS for m in s.offers}
    assert offered - taken == set()


def test_sectors_get_smes_in_proportion_to_their_weights() -> None:
    total = sum(s.weight for s in SECTORS)
    for smes in (2, 24, 400, 1000):
        counts = allot(smes)
        assert sum(counts) == smes
        for sector, n in zip(SECTORS, counts, strict=True):
            assert abs(n - smes * sector.weight / total) < 1, (smes, sector.key, n)
    market = Market(1, smes=400, carriers=0)
    by_key = {s.key: 0 for s in SECTORS}
    for firm in market.firms:
        assert firm.sector is not None
        by_key[firm.sector.key] += 1
    assert list(by_key.values()) == allot(400)
    # The draw decides where each firm sits: not the same at another seed.
    other = Market(2, smes=400, carriers=0)
    assert [f.sector for f in market.firms] != [f.sector for f in other.firms]


def test_actions_are_valid_api_bodies_at_the_rate_asked() -> None:
    market = Market(3)
    actions = list(itertools.islice(market.actions(4.0, START), 4000))
    assert 900 < actions[-1].at_s < 1100  # about 4000 / 4 s
    kinds = {a.kind for a in actions}
    assert kinds == {"offer", "request", "withdraw"}
    for a in actions:
        if a.kind == "offer":
            offer = msgspec.convert(a.body, OfferIn)
            t = offer.terms
            assert t.available.end > t.available.start >= START
            assert offer.location.region
            assert offer.location.region[:2] in ("BG", "SE")
            expected = "SEK" if offer.location.region.startswith("SE") else "EUR"
            assert t.price.currency == expected
        elif a.kind == "request":
            request = msgspec.convert(a.body, RequestIn)
            assert request.terms.max_distance_km > 0
            assert request.terms.wanted.end > request.terms.wanted.start


def test_carriers_quote_only_jobs_they_can_carry() -> None:
    market = Market(5, carriers=10)
    carriers = [f for f in market.firms if f.role == "logistics"]
    msgspec.convert(market.capabilities(carriers[0]), CapabilitiesIn)
    factors = transport_factors()
    near = carriers[0].town
    job = {
        "job_id": "j1",
        "weight_t": 5.0,
        "pickup": {"lat": near.lat, "lon": near.lon, "region": near.region},
        "delivery": {"lat": near.lat + 0.5, "lon": near.lon, "region": near.region},
        "pickup_window": {"start": "2026-12-05T00:00:00Z", "end": "2026-12-20T00:00:00Z"},
    }
    quote = market.quote(carriers[0], job, factors, 0.12)
    assert quote is not None
    q = msgspec.convert(quote, QuoteIn)
    km = distance_km(near.lat, near.lon, near.lat + 0.5, near.lon)
    assert q.price.amount > km * 5 * 0.12 * (11.5 if near.country == "SE" else 1) * 0.8
    assert market.quote(carriers[0], {**job, "weight_t": 1000.0}, factors, 0.12) is None
    far = {**job, "pickup": {"lat": -40.0, "lon": 170.0, "region": None}}
    assert market.quote(carriers[0], far, factors, 0.12) is None


def test_the_simulator_talks_to_loopback_only() -> None:
    assert check_loopback("http://127.0.0.1:8080/") == "http://127.0.0.1:8080"
    assert check_loopback("http://[::1]:8080") == "http://[::1]:8080"
    for url in ("http://10.0.0.5:8080", "https://example.org", "http://0.0.0.0:80"):
        with pytest.raises(NotLoopback):
            check_loopback(url)
    with pytest.raises(ValueError, match="smes"):
        Market(1, smes=1)
