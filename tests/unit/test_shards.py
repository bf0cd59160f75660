"""A hot family split into geographic cells (#17, step 2 of routing; marketplace/core/shards.py).

The routing: offers go to their cell; a request whose circle lies inside its cell stays there,
checked against points sampled on and inside the circle; one that crosses an edge goes to the
family's wide key.

The lending protocol, on random streams of offers, requests, updates, withdrawals, answers and
answer deadlines over four cells, delivered in random interleavings (the simulated market of
loadtests/cells_sim.py, whose sweep runs many more seeds): every proposal is valid for the
listings' terms, no listing is ever over-allocated, a wide request's quantity is conserved (free
at the wide key plus open and confirmed in the cells), and when the traffic is drained no
compatible pair with free quantity on both sides is left unproposed."""

from __future__ import annotations

import random
from collections import defaultdict
from datetime import timedelta
from math import asin, atan2, cos, degrees, radians, sin

import pytest

from loadtests.cells_sim import CONFIG, PLAN, T0, Message, check_drained, run
from marketplace.core.book import Flow, Terms
from marketplace.core.geo import EARTH_RADIUS_KM, Place
from marketplace.core.matching import (
    Answer,
    Post,
    Proposed,
)
from marketplace.core.shards import (
    WIDE,
    CellState,
    Returned,
    ShardPlan,
    ToWide,
    WideState,
    cell_step,
    wide_step,
)

SOFIA = Place(42.70, 23.32)
GAVLE = Place(60.67, 17.14)


# Routing -----------------------------------------------------------------------------------------


def _destination(p: Place, bearing_deg: float, km: float) -> Place:
    """The point `km` from `p` along a great circle at `bearing_deg`."""
    lat1, lon1, b, d = radians(p.lat), radians(p.lon), radians(bearing_deg), km / EARTH_RADIUS_KM
    lat2 = asin(sin(lat1) * cos(d) + cos(lat1) * sin(d) * cos(b))
    lon2 = lon1 + atan2(sin(b) * sin(d) * cos(lat1), cos(d) - sin(lat1) * sin(lat2))
    lon = (degrees(lon2) + 540.0) % 360.0 - 180.0
    return Place(degrees(lat2), lon)


def test_offers_go_to_their_cell_and_requests_inside_one_stay_there() -> None:
    assert PLAN.key("plastics", "offer", SOFIA, None) == "plastics@n0e1"
    assert PLAN.key("plastics", "offer", GAVLE, None) == "plastics@n1e0"
    # Sofia is 270 km from the 20th meridian and 35 km from the 43rd parallel.
    assert PLAN.key("plastics", "request", SOFIA, 30) == "plastics@n0e1"
    assert PLAN.key("plastics", "request", SOFIA, 40) == f"plastics@{WIDE}"
    # Gävle is 155 km from the 20th meridian (at 60.7 degrees north, a degree is 54 km).
    assert PLAN.key("plastics", "request", GAVLE, 150) == "plastics@n1e0"
    assert PLAN.key("plastics", "request", GAVLE, 160) == f"plastics@{WIDE}"
    # Families the plan does not split keep their key.
    assert PLAN.key("paper", "request", SOFIA, 5000) == "paper"
    with pytest.raises(ValueError, match="ascend"):
        ShardPlan(frozenset({"plastics"}), lat_cuts=(50.0, 40.0))


@pytest.mark.parametrize("seed", range(8))
def test_a_request_kept_in_its_cell_reaches_nothing_outside_it(seed: int) -> None:
    rng = random.Random(seed)
    plan = ShardPlan(
        frozenset({"plastics"}),
        lat_cuts=tuple(sorted(rng.sample(range(-60, 70, 5), 3))),
        lon_cuts=tuple(sorted(rng.sample(range(-170, 175, 5), 4))),
    )
    kept = wide = 0
    for _ in range(400):
        centre = Place(rng.uniform(-80, 85), rng.uniform(-180, 180))
        radius = rng.choice((5.0, 50.0, 300.0, 1500.0, 5000.0))
        key = plan.key("plastics", "request", centre, radius)
        if key.endswith(WIDE):
            wide += 1
            continue
        kept += 1
        assert key == f"plastics@{plan.cell(centre)}"
        for _ in range(40):
            point = _destination(
                centre, rng.uniform(0, 360), radius * rng.choice((1.0, rng.random()))
            )
            assert plan.cell(point) == plan.cell(centre), (centre, radius, point)
    assert kept > 50
    assert wide > 50


SEEDS = range(40)


@pytest.mark.parametrize("seed", SEEDS)
def test_lending_keeps_one_owner_and_leaves_no_pair_unproposed(seed: int) -> None:
    check_drained(run(seed))  # every delivery checked valid proposals and no over-allocation


def test_the_streams_exercise_the_protocol() -> None:
    counts: dict[str, int] = defaultdict(int)
    for seed in SEEDS:
        for name, n in run(seed).counts.items():
            counts[name] += n
    for name in ("Lend", "Returned", "Recall", "OfferSeen", "Answer"):
        assert counts[name] > 20, (name, dict(counts))
    for name in ("Moved", "Forwarded"):
        assert counts[name] > 10, (name, dict(counts))
    assert counts["DeadlineDue"] > 20, dict(counts)
    assert counts["proposed to a wide request"] > 50, dict(counts)
    assert counts["confirmed"] > 50, dict(counts)


def test_a_recurring_request_reaching_across_cells_is_lent_whole_to_one_cell_at_a_time() -> None:
    """Its quantity is per period: what it took in a period of one cell must not be lent to
    another, so it is lent whole, and comes back whole once it holds nothing in that cell."""
    flow = Flow("month", T0.date(), (T0 + timedelta(days=120)).date())

    def recurring(kind: str, qty: float, price: float, km: float | None = None) -> Terms:
        return Terms(
            qty, "t", price, "EUR", T0, T0 + timedelta(days=120), max_distance_km=km, flow=flow
        )

    west, east = CellState("n0e0"), CellState("n0e1")
    cells = {"n0e0": west, "n0e1": east}
    wide = WideState()
    to_wide: list[ToWide] = []
    offers = {
        "n0e0": Post(
            "e1",
            T0,
            "o-west",
            "offer",
            "sme-1",
            "150102",
            Place(42.5, 19.8),
            recurring("offer", 4, 10),
        ),
        "n0e1": Post(
            "e2",
            T0,
            "o-east",
            "offer",
            "sme-2",
            "150102",
            Place(42.5, 20.2),
            recurring("offer", 4, 20),
        ),
    }
    for name, post in offers.items():
        _, reports = cell_step(cells[name], post, CONFIG, PLAN)
        to_wide += reports
    request = Post(
        "e3",
        T0,
        "r-wide",
        "request",
        "sme-3",
        "150102",
        Place(42.5, 20.0),
        recurring("request", 6, 100, 100),
    )
    assert PLAN.key("plastics", "request", request.place, 100) == f"plastics@{WIDE}"

    def settle(first: Message | None = None) -> list[Proposed]:
        """Delivers everything until nothing moves; returns the proposals made."""
        made: list[Proposed] = []
        inbox: list[tuple[str, Message]] = [] if first is None else [(WIDE, first)]
        inbox += [(WIDE, r) for r in to_wide]
        to_wide.clear()
        while inbox:
            where, message = inbox.pop(0)
            if where == WIDE:
                for cell, out in wide_step(wide, message, CONFIG, T0):  # type: ignore[arg-type]
                    inbox.append((cell, out))
            else:
                events, reports = cell_step(cells[where], message, CONFIG, PLAN)  # type: ignore[arg-type]
                made += [e for e in events if isinstance(e, Proposed)]
                inbox += [(WIDE, r) for r in reports]
        return made

    made = settle(request)
    # Lent whole to the cell of the cheaper offer: a standing agreement of 4 t a month there,
    # and the other 2 t a month not lent to the east, though its offer would fit.
    assert [(p.proposal.offer_id, p.proposal.quantity) for p in made] == [("o-west", 4.0)]
    assert wide.requests["r-wide"].lent == {"n0e0": 6.0}
    # Declined: the request holds nothing in the west any more, comes back whole, and goes east.
    match_id = made[0].proposal.match_id
    _, reports = cell_step(west, Answer("e4", T0, match_id, "sme-3", False), CONFIG, PLAN)
    to_wide += reports
    assert any(isinstance(r, Returned) and r.quantity == 6.0 for r in reports)
    made = settle()
    assert [(p.proposal.offer_id, p.proposal.quantity) for p in made] == [("o-east", 4.0)]
    assert wide.requests["r-wide"].lent == {"n0e0": 0.0, "n0e1": 6.0}
