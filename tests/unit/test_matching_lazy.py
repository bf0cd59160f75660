"""The core's shortcuts on the simulator's mix (issue #18, target 2) give what the long way gives:
the grid's remembered answers are the answers a fresh search gives after any change, and the
upper bounds `_allocate` ranks the pairs by before scoring them are never below the pairs'
scores (that they leave out no pair the score accepts, the equivalence test holds through
`_candidates`)."""

from __future__ import annotations

import random
from dataclasses import replace

from loadtests.bench_matching import cores, plain
from loadtests.simmix import SimMix, config
from marketplace.core.book import Book
from marketplace.core.grid import SMALL_CELL, GridIndex
from marketplace.core.matching import Post, _bounds, _score


def test_a_remembered_answer_is_never_given_after_a_change_it_depends_on() -> None:
    rng = random.Random(11)
    index = GridIndex()
    placed: dict[str, tuple[str, float, float]] = {}
    # A few fixed questions, asked again and again while ids come and go around them (one town
    # dense enough for a quadtree, one sparse), each answer held to a fresh index's.
    questions = [
        (key, lat, lon, radius, limit)
        for key in "ab"
        for lat, lon in ((60.0, 17.0), (42.7, 23.3))
        for radius, limit in ((5.0, 8), (40.0, 64), (300.0, 64))
    ]
    given_again = 0
    for n in range(6000):
        key = rng.choice("ab")
        lat, lon = rng.choice(((60.0, 17.0), (42.7, 23.3)))
        spread = rng.choice((0.02, 0.3, 2.0))
        item = f"i{n}"
        place = (key, lat + rng.uniform(-spread, spread), lon + rng.uniform(-spread, spread))
        index.add(*place, item)
        placed[item] = place
        if rng.random() < 0.3:
            gone = rng.choice(sorted(placed))
            index.remove(*placed.pop(gone), gone)
        if n % 25 == 0:
            fresh = GridIndex()
            for i, (k, a, b) in placed.items():
                fresh.add(k, a, b, i)
            for q in questions:
                known = q in index._answers
                got = index.nearest_with_distance(*q)
                assert got == fresh.nearest_with_distance(*q), (n, q)
                # A second asking gives the remembered answer, the same again.
                assert index.nearest_with_distance(*q) == got
                given_again += known
    assert any(len(t) > 0 for t in index._trees.values())
    assert any(
        len(bucket) > SMALL_CELL for cells in index._cells.values() for bucket in cells.values()
    )
    assert given_again > 0  # some answers were remembered across changes elsewhere


def test_a_remembered_answer_is_a_fresh_list() -> None:
    index = GridIndex()
    index.add("a", 60.0, 17.0, "x")
    first = index.nearest_with_distance("a", 60.0, 17.0, 10.0, 5)
    first.clear()
    assert [i for _, i in index.nearest_with_distance("a", 60.0, 17.0, 10.0, 5)] == ["x"]


def test_the_bounds_hold_the_scores_and_every_candidate() -> None:
    cfg = config()
    # Listings weighing CO2e against price in every way a buyer may, zero weights included.
    core = cores(["after"])[0]
    core.config = cfg
    mix = SimMix(41, extras=True)
    for _ in range(1500):
        core.book, out = core.step(core.book, next(mix), cfg)
        mix.observe(out)
    fill = SimMix(42)
    rng = random.Random(5)
    while len(core.book.listings) < 3000:
        command = next(fill)
        if isinstance(command, Post):
            if command.kind == "request" and rng.random() < 0.3:
                wp, wc = rng.choice(((1.0, 0.0), (0.0, 1.0), (0.0, 0.0), (0.9, 0.1)))
                command = replace(
                    command, terms=replace(command.terms, weight_price=wp, weight_co2e=wc)
                )
            core.file(command)
    book: Book = core.book
    checked = tight = 0
    for listing in sorted(book.listings.values(), key=lambda x: x.seq):
        for bound in _bounds(book, listing, cfg):
            _, _, offer, request, d = bound
            score = _score(offer, request, cfg, d)
            if score is None or (offer.id, request.id) in book.closed_pairs:
                continue
            # -bound below -score: the pair cannot rank before its bound says.
            assert bound[0] < -score, (offer.id, request.id)
            checked += 1
            tight += -bound[0] - score <= 2e-6
    assert checked > 1000
    assert tight > checked // 2  # the bounds are close enough to spare most of the scoring


def test_buyers_weighing_only_price_or_only_co2e_get_the_same_proposals() -> None:
    # The bounds take price and CO2e by the buyer's weights: the old core and the new one
    # decide alike when buyers weigh one of them alone, or neither.
    cfg = config()
    both = cores(["before", "after"])
    for core in both:
        core.config = core.own(cfg)
    mix = SimMix(61, extras=True)
    rng = random.Random(8)
    proposed = 0
    for n in range(1500):
        command = next(mix)
        if isinstance(command, Post) and command.kind == "request":
            wp, wc = rng.choice(((1.0, 0.0), (0.0, 1.0), (0.0, 0.0), (0.5, 0.5)))
            command = replace(
                command, terms=replace(command.terms, weight_price=wp, weight_co2e=wc)
            )
        outs = []
        for core in both:
            core.book, out = core.step(core.book, core.own(command), core.config)
            core.book.dirty.clear()
            outs.append(out)
        assert plain(outs[1]) == plain(outs[0]), f"command {n} ({command}) decided otherwise"
        proposed += sum(type(e).__name__ == "Proposed" for e in outs[1])
        mix.observe(outs[1])
    assert proposed > 100
