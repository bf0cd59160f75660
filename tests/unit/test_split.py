"""Moving a family that already trades into cells (#17 item 2; marketplace/core/split.py): a
random market of plastics decided by one book, then split, then traded on through the cells
(random commands delivered in random interleavings). Right after the move every listing holds
what it held and a wide request's quantity is all accounted; after the rest of the stream, the
properties of tests/unit/test_shards.py hold: valid proposals, no over-allocation, conservation,
nothing compatible left unproposed."""

from __future__ import annotations

from datetime import timedelta

import pytest

from loadtests.cells_sim import CONFIG, PLAN, T0, check_drained, drive, split_run
from marketplace.core.book import Book, Flow, Terms
from marketplace.core.families import family_of
from marketplace.core.geo import Place
from marketplace.core.matching import Post, step
from marketplace.core.shards import ShardPlan
from marketplace.core.split import SplitError, split_family


@pytest.mark.parametrize("seed", range(25))
def test_a_trading_family_moves_into_cells_and_trades_on(seed: int) -> None:
    one, m = split_run(seed)
    assert one.counts["Post"] > 30
    drive(m, range(90, 180))
    while m.deliver_one():
        pass
    check_drained(m)


def test_the_move_files_wide_requests_with_ghosts_where_they_trade() -> None:
    _, m = split_run(3)
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
