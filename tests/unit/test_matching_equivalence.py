"""The faster matching core decides exactly what the core decided before it (issue #18, target
2): the same events (proposals with the same ids, quantities, scores, reasons and criteria;
confirmations, cancellations, expiries, deliveries, agreements ended) for a seeded stream of the
simulator's mix with changes of terms, withdrawals, answers, deadlines and period timers, on a
book dense enough for the grid's quadtrees. The reference is the frozen copy of the core in
loadtests/matching_before, used by nothing else but the benchmark."""

from __future__ import annotations

import random
from dataclasses import replace
from typing import Any

import pytest

from loadtests.bench_matching import AFTER_CLASSES, Core, convert, cores, plain
from loadtests.matching_before.grid import GridIndex as GridBefore
from loadtests.simmix import SimMix, config
from marketplace.core.book import Book
from marketplace.core.geo import distance_km
from marketplace.core.grid import SMALL_CELL, GridIndex
from marketplace.core.matching import MarketConfig, Post, _candidates, _score, assess


def _pair(cfg: MarketConfig) -> list[Core]:
    both = cores(["before", "after"])
    for core in both:
        core.config = core.own(cfg)
    return both


def _run(both: list[Core], mix: SimMix, events: int) -> dict[str, int]:
    seen: dict[str, int] = {}
    for n in range(events):
        command = next(mix)
        outs = []
        for core in both:
            core.book, out = core.step(core.book, core.own(command), core.config)
            outs.append(out)
        before, after = plain(outs[0]), plain(outs[1])
        assert after == before, f"command {n} ({command}) decided otherwise"
        assert sorted(both[0].book.dirty) == sorted(both[1].book.dirty)
        for core in both:
            core.book.dirty.clear()
        for e in outs[1]:
            seen[type(e).__name__] = seen.get(type(e).__name__, 0) + 1
        mix.observe(outs[1])
    return seen


def _same_books(both: list[Core]) -> None:
    old, new = both[0].book, both[1].book
    assert plain(list(old.listings.values())) == plain(list(new.listings.values()))
    assert plain(sorted(old.proposals.items())) == plain(sorted(new.proposals.items()))
    assert plain(sorted(old.agreements.items())) == plain(sorted(new.agreements.items()))
    assert old.closed_pairs == new.closed_pairs
    assert old.reach_km == new.reach_km
    assert old.seq == new.seq


@pytest.mark.parametrize(
    ("seed", "filed", "events", "limit"),
    [(3, 0, 2500, 64), (5, 12_000, 2000, 64), (9, 8000, 1500, 8)],
)
def test_the_new_core_decides_as_the_old_one(
    seed: int, filed: int, events: int, limit: int
) -> None:
    cfg = replace(config(), max_candidates=limit)
    both = _pair(cfg)
    fill = SimMix(seed + 100)
    while len(both[0].book.listings) < filed:
        command = next(fill)
        if isinstance(command, Post):
            for core in both:
                core.file(command)
    seen = _run(both, SimMix(seed, smes=300, extras=True), events)
    _same_books(both)
    # The stream went through every kind of decision.
    for kind in ("Proposed", "Confirmed", "Cancelled", "Expired", "DeliveryDue"):
        assert seen.get(kind, 0) > 0, (kind, seen)
    if filed:
        # ...and through the quadtrees of dense cells.
        book = both[1].book
        trees = [*book.offers._trees.values(), *book.requests._trees.values()]
        assert any(len(t) for t in trees), f"no cell over {SMALL_CELL} ids"


def test_the_quick_score_is_assess_score() -> None:
    cfg = config()
    core = cores(["after"])[0]
    core.config = cfg
    mix = SimMix(21, extras=True)
    book: Book = core.book
    for _ in range(3000):
        command = next(mix)
        core.book, out = core.step(book, command, cfg)
        mix.observe(out)
    rng = random.Random(4)
    offers = [x for x in book.listings.values() if x.kind == "offer"]
    requests = [x for x in book.listings.values() if x.kind == "request"]
    assessed = 0
    for _ in range(20_000):
        o, r = rng.choice(offers), rng.choice(requests)
        d = o.place.km_to(r.place) * rng.choice((1.0, 0.01, 0.3))
        c = assess(o, r, cfg, d)
        quick = _score(o, r, cfg, d)
        assert (quick is None) == (c is None)
        if c is not None:
            assessed += 1
            assert quick == c.score
    assert assessed > 100


def test_the_candidates_are_the_pairs_score_accepts() -> None:
    # _candidates scores one listing against its neighbours in one loop (_requests_for,
    # _offers_for): the same pairs and scores as _score gives them pair by pair.
    cfg = config()
    core = cores(["after"])[0]
    core.config = cfg
    # Proposals, answers, closed pairs and periods in use from the mix, then listings filed
    # without deciding anything, so that they have pairs left to rank.
    mix = SimMix(33, extras=True)
    for _ in range(1500):
        core.book, out = core.step(core.book, next(mix), cfg)
        mix.observe(out)
    fill = SimMix(34)
    while len(core.book.listings) < 3000:
        command = next(fill)
        if isinstance(command, Post):
            core.file(command)
    book: Book = core.book
    assert book.proposals
    assert book.closed_pairs
    kinds: dict[tuple[str, bool], int] = {}
    for listing in sorted(book.listings.values(), key=lambda x: x.seq):
        if listing.terms.unit != "t":
            continue
        p = listing.place
        mine = [book.proposals[m] for m in book.by_listing.get(listing.id, ())]
        if listing.kind == "offer":
            reach = book.reach_km.get(listing.code, 0.0)
            near = {
                i: d
                for d, i in book.requests.nearest_with_distance(
                    listing.code, p.lat, p.lon, reach, cfg.max_candidates
                )
            }
            busy = {q.request_id for q in mine}
        else:
            radius = listing.terms.max_distance_km or 0.0
            near = {
                i: d
                for code in book.request_codes(listing, cfg.substitutions)
                for d, i in book.offers.nearest_with_distance(
                    code, p.lat, p.lon, radius, cfg.max_candidates
                )
            }
            busy = {q.offer_id for q in mine}
        expected = set()
        for i, d in near.items():
            other = book.listings[i]
            offer, request = (listing, other) if listing.kind == "offer" else (other, listing)
            if other.owner == listing.owner or i in busy:
                continue
            if (offer.id, request.id) in book.closed_pairs:
                continue
            score = _score(offer, request, cfg, d)
            if score is not None:
                expected.add((-score, round(d, 6), other.seq, i, offer.id, request.id, d))
        got = {(*rank, o.id, r.id, d) for *rank, o, r, d in _candidates(book, listing, cfg)}
        assert got == expected, listing.id
        recurring = listing.terms.flow is not None
        kinds[listing.kind, recurring] = kinds.get((listing.kind, recurring), 0) + len(got)
    # Offers and requests, one-off and recurring, each had pairs to rank.
    assert len(kinds) == 4, kinds
    assert all(n > 20 for n in kinds.values()), kinds


def test_the_grid_finds_what_it_found_before() -> None:
    rng = random.Random(3)
    towns = [(rng.uniform(41, 62), rng.uniform(12, 28)) for _ in range(6)]
    towns += [(0.0, 179.95), (-0.1, -179.95), (69.9, 0.0), (89.95, 10.0)]
    new, old = GridIndex(), GridBefore()
    placed: dict[str, tuple[str, float, float]] = {}

    def point() -> tuple[float, float]:
        lat, lon = rng.choice(towns)
        if rng.random() < 0.1:
            return min(90.0, lat + rng.uniform(-2, 2)), lon + rng.uniform(-2, 2)
        return min(90.0, lat + rng.uniform(-0.04, 0.04)), lon + rng.uniform(-0.06, 0.06)

    for n in range(12_000):
        key = rng.choice("abc")
        lat, lon = point()
        new.add(key, lat, lon, f"i{n}")
        old.add(key, lat, lon, f"i{n}")
        placed[f"i{n}"] = (key, lat, lon)
        if rng.random() < 0.2:
            gone = rng.choice(sorted(placed)) if n % 50 == 0 else f"i{n}"
            k, a, b = placed.pop(gone)
            new.remove(k, a, b, gone)
            old.remove(k, a, b, gone)
        if n % 40 == 0:
            key = rng.choice("abc")
            lat, lon = point()
            radius = rng.choice((0.3, 2.0, 5.0, 20.0, 40.0, 150.0, 400.0, 3000.0))
            limit = rng.choice((1, 5, 64, 200))
            got = new.nearest_with_distance(key, lat, lon, radius, limit)
            assert got == old.nearest_with_distance(key, lat, lon, radius, limit)
            assert all(d == distance_km(lat, lon, *placed[i][1:]) for d, i in got)
    assert any(len(t) for t in new._trees.values())


def test_events_of_the_old_core_convert_to_the_new_types() -> None:
    # The benchmark tells the mix what a 'before'-only run decided in the new core's types.
    both = _pair(config())
    mix = SimMix(2)
    found: list[Any] = []
    while not found:
        command = next(mix)
        both[0].book, out = both[0].step(both[0].book, both[0].own(command), both[0].config)
        found = [e for e in out if type(e).__name__ == "Proposed"]
    assert type(convert(found[0], AFTER_CLASSES)) is AFTER_CLASSES["Proposed"]


def test_many_ids_at_one_spot() -> None:
    # Listings posted at the very same place (a depot, a test's fixed point) fill one deep leaf.
    new, old = GridIndex(), GridBefore()
    for n in range(500):
        lat, lon = (60.0, 17.0) if n % 5 else (60.0 + n * 1e-4, 17.0 - n * 1e-4)
        new.add("a", lat, lon, f"i{n}")
        old.add("a", lat, lon, f"i{n}")
    for radius, limit in ((0.001, 10), (5.0, 64), (50.0, 1000)):
        got = new.nearest_with_distance("a", 60.0, 17.0, radius, limit)
        assert got == old.nearest_with_distance("a", 60.0, 17.0, radius, limit)
    for n in range(0, 500, 2):
        lat, lon = (60.0, 17.0) if n % 5 else (60.0 + n * 1e-4, 17.0 - n * 1e-4)
        new.remove("a", lat, lon, f"i{n}")
        old.remove("a", lat, lon, f"i{n}")
    assert new.nearest("a", 60.0, 17.0, 5.0, 64) == old.nearest("a", 60.0, 17.0, 5.0, 64)
