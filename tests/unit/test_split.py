"""Moving a family that already trades into cells (#17 item 2; marketplace/core/split.py): a
random market of plastics decided by one book, then split, then traded on through the cells
(random commands delivered in random interleavings). Right after the move every listing holds
what it held and a wide request's quantity is all accounted; after the rest of the stream, the
properties of tests/unit/test_shards.py hold: valid proposals, no over-allocation, conservation,
nothing compatible left unproposed."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import timedelta

import pytest

from marketplace.core.book import Book, Flow, Terms
from marketplace.core.families import family_of
from marketplace.core.geo import Place
from marketplace.core.matching import Post, step
from marketplace.core.shards import WIDE, ShardPlan
from marketplace.core.split import SplitError, split_family
from tests.unit.test_shards import (
    CONFIG,
    PLAN,
    T0,
    Market,
    Message,
    _drive,
    check_drained,
)


@dataclass
class OneBook(Market):
    """The same market, every command decided at once by one book (before the split)."""

    book: Book = field(default_factory=Book)

    def send(self, sender: str, receiver: str, message: Message) -> None:
        self.counts[type(message).__name__] += 1
        _, events = step(self.book, message, CONFIG)  # type: ignore[arg-type]
        for event in events:
            self.observe("plastics", event)
        self.check_allocation()

    def broadcast(self, sender: str, message: Message) -> None:
        self.send(sender, "plastics", message)

    def deliver_one(self) -> bool:
        return False


def _split(seed: int, before: int = 90) -> tuple[OneBook, Market]:
    one = OneBook(random.Random(seed))
    _drive(one, range(before))
    reserved = {lid: (x.reserved, x.confirmed) for lid, x in one.book.listings.items()}
    moved = split_family(one.book, "plastics", PLAN, CONFIG, family_of)
    assert one.book.listings == {}
    assert one.book.proposals == {}
    # Offers and local requests hold what they held; a wide request's free quantity at the wide
    # key, what its ghosts hold and what it used make its quantity.
    for name, cell in moved.cells.items():
        for lid, x in cell.book.listings.items():
            if lid in cell.ghosts:
                continue
            assert PLAN.cell(x.place) == name
            assert (x.reserved, x.confirmed) == reserved[lid]
    for rid, w in moved.wide.requests.items():
        ghosts = sum(
            c.book.listings[rid].terms.quantity
            for c in moved.cells.values()
            if rid in c.book.listings
        )
        assert abs(w.free + ghosts + w.used - w.listing.terms.quantity) <= 1e-6 or (
            w.listing.terms.quantity < reserved[rid][1]  # confirmed above a lowered quantity
        )
    # Every open proposal is filed with its offer, where answers and timers find it.
    for match_id, (_, e) in one.open.items():
        offer_cell = PLAN.cell(one.truth[e.proposal.offer_id].post.place)
        assert match_id in moved.cells[offer_cell].book.proposals
    # Trading goes on through the cells: each listing's home is where the split filed it.
    m = Market(one.rng, cells=moved.cells, wide=moved.wide, truth=one.truth, now=one.now)
    m.confirmed.update(one.confirmed)
    for match_id, (_, e) in one.open.items():
        m.open[match_id] = (f"plastics@{PLAN.cell(one.truth[e.proposal.offer_id].post.place)}", e)
    for lid, t in m.truth.items():
        home = WIDE if lid in moved.wide.requests else PLAN.cell(t.post.place)
        t.key = f"plastics@{home}"
    return one, m


@pytest.mark.parametrize("seed", range(25))
def test_a_trading_family_moves_into_cells_and_trades_on(seed: int) -> None:
    one, m = _split(seed)
    assert one.counts["Post"] > 30
    _drive(m, range(90, 180))
    while m.deliver_one():
        pass
    check_drained(m)


def test_the_move_files_wide_requests_with_ghosts_where_they_trade() -> None:
    _, m = _split(3)
    ghosts = sum(len(c.ghosts) for c in m.cells.values())
    assert m.wide.requests, "the stream holds requests reaching across the cells' edges"
    assert ghosts > 0, "some of them have open proposals in a cell"


def test_a_recurring_request_trading_in_two_cells_cannot_be_moved() -> None:
    flow = Flow("month", T0.date(), (T0 + timedelta(days=90)).date())

    def terms(qty: float, price: float, km: float | None = None) -> Terms:
        return Terms(
            qty, "t", price, "EUR", T0, T0 + timedelta(days=90), max_distance_km=km, flow=flow
        )

    book = Book()
    for post in (
        Post("e1", T0, "o-w", "offer", "s1", "150102", Place(42.5, 19.8), terms(4, 10)),
        Post("e2", T0, "o-e", "offer", "s2", "150102", Place(42.5, 20.2), terms(4, 10)),
        Post("e3", T0, "r", "request", "b", "150102", Place(42.5, 20.0), terms(8, 100, 100)),
    ):
        step(book, post, CONFIG)
    assert len(book.proposals) == 2
    with pytest.raises(SplitError, match="request r is recurring and trades in 2 cells"):
        split_family(book, "plastics", PLAN, CONFIG, family_of)
    with pytest.raises(SplitError, match="not among the families"):
        split_family(book, "paper", ShardPlan(frozenset({"plastics"})), CONFIG, family_of)
