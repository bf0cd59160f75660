"""A hot family split into geographic cells (#17, step 2 of routing; marketplace/core/shards.py).

The routing: offers go to their cell; a request whose circle lies inside its cell stays there,
checked against points sampled on and inside the circle; one that crosses an edge goes to the
family's wide key.

The lending protocol, on random streams of offers, requests, updates, withdrawals, answers and
answer deadlines over four cells, delivered in random interleavings (each sender's messages to a
receiver in order, as on one Kafka partition): every proposal is valid for the listings' terms, no
listing is ever over-allocated, a wide request's quantity is conserved (free at the wide key plus
open and confirmed in the cells), and when the traffic is drained no compatible pair with free
quantity on both sides is left unproposed."""

from __future__ import annotations

import random
from collections import defaultdict, deque
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from math import asin, atan2, cos, degrees, radians, sin

import pytest

from marketplace.core.book import EPS, Flow, Listing, Terms
from marketplace.core.economics import MaterialFactor, TransportModel
from marketplace.core.geo import EARTH_RADIUS_KM, Place
from marketplace.core.matching import (
    Answer,
    Cancelled,
    Command,
    Confirmed,
    DeadlineDue,
    Event,
    Expired,
    MarketConfig,
    Post,
    Proposed,
    Update,
    Withdraw,
    assess,
)
from marketplace.core.shards import (
    WIDE,
    CellState,
    Forwarded,
    Lend,
    Moved,
    OfferSeen,
    Recall,
    Returned,
    ShardPlan,
    ToWide,
    WideState,
    cell_step,
    wide_step,
)

T0 = datetime(2026, 12, 1, tzinfo=UTC)
CONFIG = MarketConfig(
    transport=TransportModel(cost_per_tkm={"EUR": 0.1}, kgco2e_per_tkm=0.1),
    factors={
        "150102": MaterialFactor(virgin=2000, reuse=300, disposal=40),
        "200139": MaterialFactor(virgin=2000, reuse=300, disposal=40),
    },
    substitutions={"150102": ("200139",), "200139": ("150102",)},
    answer_period=timedelta(hours=48),
)
PLAN = ShardPlan(frozenset({"plastics"}), lat_cuts=(43.0,), lon_cuts=(20.0,))
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


# The lending protocol ----------------------------------------------------------------------------

Message = Command | Lend | Recall | ToWide


@dataclass
class Truth:
    """What the test knows of every listing, independently of the books."""

    kind: str
    owner: str
    key: str
    post: Post
    terms: list[Terms]  # every version, oldest first
    withdrawn: bool = False


@dataclass
class Market:
    rng: random.Random
    cells: dict[str, CellState] = field(default_factory=dict)
    wide: WideState = field(default_factory=WideState)
    channels: dict[tuple[str, str], deque[Message]] = field(
        default_factory=lambda: defaultdict(deque)
    )
    truth: dict[str, Truth] = field(default_factory=dict)
    open: dict[str, tuple[str, Proposed]] = field(default_factory=dict)  # match -> (cell, event)
    confirmed: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    counts: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    now: datetime = T0

    def cell(self, key: str) -> CellState:
        name = key.split("@")[1]
        return self.cells.setdefault(name, CellState(name))

    def send(self, sender: str, receiver: str, message: Message) -> None:
        self.channels[(sender, receiver)].append(message)
        self.counts[type(message).__name__] += 1

    def broadcast(self, sender: str, message: Message) -> None:
        """As the matcher forwards a command that names no place: to every key of the family
        (answers and timers to the cells only: the wide key holds no proposal)."""
        keys = PLAN.keys("plastics")
        if isinstance(message, Answer | DeadlineDue):
            keys = keys[:-1]
        for key in keys:
            self.send(sender, key, message)

    def deliver_one(self) -> bool:
        busy = [k for k, q in self.channels.items() if q]
        if not busy:
            return False
        sender, receiver = self.rng.choice(busy)
        message = self.channels[(sender, receiver)].popleft()
        if receiver.endswith(WIDE):
            assert not isinstance(message, (Lend, Recall))
            for cell, out in wide_step(self.wide, message, CONFIG, self.now):
                self.send(receiver, f"plastics@{cell}", out)
        else:
            assert not isinstance(message, (Returned, OfferSeen, Moved, Forwarded))
            events, reports = cell_step(self.cell(receiver), message, CONFIG, PLAN)
            for report in reports:
                self.send(receiver, f"plastics@{WIDE}", report)
            for event in events:
                self.observe(receiver, event)
        self.check_allocation()
        return True

    def observe(self, key: str, event: Event) -> None:
        match event:
            case Proposed(proposal=p):
                self.counts["proposed"] += 1
                if self.truth[p.request_id].key.endswith(WIDE):
                    self.counts["proposed to a wide request"] += 1
                self.check_valid(p.offer_id, p.request_id, p.quantity)
                self.open[p.match_id] = (key, event)
            case Confirmed(proposal=p):
                self.counts["confirmed"] += 1
                self.open.pop(p.match_id)
                self.confirmed[p.offer_id] += p.quantity
                self.confirmed[p.request_id] += p.quantity
            case Cancelled(match_id=m) | Expired(match_id=m):
                self.open.pop(m)

    def check_valid(self, offer_id: str, request_id: str, quantity: float) -> None:
        """The pair is valid for some version of each side's terms (an update may be on its way to
        the cell that decided)."""
        o, r = self.truth[offer_id], self.truth[request_id]
        assert any(
            assess(
                _listing(o.post, replace(a, quantity=quantity)),
                _listing(r.post, replace(b, quantity=quantity)),
                CONFIG,
            )
            is not None
            for a in o.terms
            for b in r.terms
        ), (offer_id, request_id)

    def check_allocation(self) -> None:
        used: dict[str, float] = defaultdict(float, self.confirmed)
        for _, e in self.open.values():
            used[e.proposal.offer_id] += e.proposal.quantity
            used[e.proposal.request_id] += e.proposal.quantity
        for lid, total in used.items():
            # While an update is on its way, the key that decides still holds an earlier
            # quantity: never more than the largest the listing had (once drained, its last:
            # `check_drained_allocation`); what was confirmed stays confirmed.
            bound = max(*(t.quantity for t in self.truth[lid].terms), self.confirmed[lid])
            assert total <= bound + 1e-6, (lid, total)

    def check_drained_allocation(self) -> None:
        used: dict[str, float] = defaultdict(float, self.confirmed)
        for _, e in self.open.values():
            used[e.proposal.offer_id] += e.proposal.quantity
            used[e.proposal.request_id] += e.proposal.quantity
        for lid, total in used.items():
            bound = max(self.truth[lid].terms[-1].quantity, self.confirmed[lid])
            assert total <= bound + 1e-6, (lid, total)

    def open_pair(self, offer_id: str, request_id: str) -> bool:
        return any(
            e.proposal.offer_id == offer_id and e.proposal.request_id == request_id
            for _, e in self.open.values()
        )


def _listing(post: Post, terms: Terms) -> Listing:
    return Listing(
        id=post.id,
        kind=post.kind,
        owner=post.owner,
        code=post.code,
        place=post.place,
        terms=terms,
        seq=0,
        accepts=post.accepts,
    )


def _terms(rng: random.Random, kind: str, at: datetime) -> Terms:
    start = at + timedelta(days=rng.randint(0, 10))
    return Terms(
        quantity=float(rng.randint(1, 25)),
        unit="t",
        price=float(rng.randint(0, 60)) if kind == "offer" else float(rng.randint(40, 160)),
        currency="EUR",
        start=start,
        end=start + timedelta(days=rng.randint(5, 40)),
        min_lot=float(rng.randint(1, 4)) if kind == "offer" and rng.random() < 0.3 else None,
        max_distance_km=float(rng.choice((20, 60, 120, 200, 350))) if kind == "request" else None,
    )


def _run(seed: int, ops: int = 160) -> Market:
    m = Market(random.Random(seed))
    _drive(m, range(ops))
    while m.deliver_one():
        pass
    return m


def _drive(m: Market, steps: range) -> None:
    """Random commands at step numbers `steps`, each followed by a few random deliveries."""
    rng = m.rng
    owners = [f"sme-{i}" for i in range(7)]
    for n in steps:
        m.now = T0 + timedelta(minutes=n)
        op = rng.random()
        live = sorted(k for k, t in m.truth.items() if not t.withdrawn)
        if op < 0.45 or len(live) < 4:
            kind = rng.choice(("offer", "request"))
            lid = f"{kind[0]}{n}"
            place = Place(round(rng.uniform(42.0, 44.0), 4), round(rng.uniform(18.6, 21.4), 4))
            terms = _terms(rng, kind, m.now)
            key = PLAN.key("plastics", kind, place, terms.max_distance_km)  # type: ignore[arg-type]
            post = Post(
                event_id=f"e{n}",
                at=m.now,
                id=lid,
                kind=kind,  # type: ignore[arg-type]
                owner=rng.choice(owners),
                code=rng.choice(("150102", "200139")),
                place=place,
                terms=terms,
            )
            m.truth[lid] = Truth(kind, post.owner, key, post, [terms])
            m.send("api", key, post)
        elif op < 0.75 and m.open:
            match_id = rng.choice(sorted(m.open))
            _, e = m.open[match_id]
            partner = rng.choice((e.proposal.seller, e.proposal.buyer))
            m.broadcast("api", Answer(f"e{n}", m.now, match_id, partner, rng.random() < 0.6))
        elif op < 0.82 and m.open:
            match_id = rng.choice(sorted(m.open))
            _, e = m.open[match_id]
            m.broadcast("scheduler", DeadlineDue(f"e{n}", e.proposal.expires_at, match_id))
        elif op < 0.9:
            t = m.truth[rng.choice(live)]
            # Terms change, the reach and the quantity too (a request of a cell whose reach now
            # leaves it moves to the wide key).
            # Commands that name no place go to every key of the family; the home acts.
            new = _terms(rng, t.kind, m.now)
            t.terms.append(new)
            lid = t.post.id
            m.broadcast("api", Update(f"e{n}", m.now, lid, t.post.kind, t.owner, new))
        else:
            t = m.truth[rng.choice(live)]
            t.withdrawn = True
            m.broadcast("api", Withdraw(f"e{n}", m.now, t.post.id, t.post.kind, t.owner))
        for _ in range(rng.randint(0, 6)):
            m.deliver_one()


def _free(m: Market, lid: str) -> float:
    t = m.truth[lid]
    w = m.wide.requests.get(lid)
    if w is not None:
        return w.free
    if t.key.endswith(WIDE):
        return 0.0
    listing = m.cell(t.key).book.listings.get(lid)
    return 0.0 if listing is None or lid in m.cell(t.key).ghosts else listing.available


def _closed(m: Market, offer_id: str, request_id: str) -> bool:
    return (offer_id, request_id) in m.cell(m.truth[offer_id].key).book.closed_pairs


SEEDS = range(40)


@pytest.mark.parametrize("seed", SEEDS)
def test_lending_keeps_one_owner_and_leaves_no_pair_unproposed(seed: int) -> None:
    check_drained(_run(seed))  # every delivery checked valid proposals and no over-allocation


def check_drained(m: Market) -> None:
    """A drained market: no over-allocation, the ghosts hold nothing free, a wide request's
    quantity all accounted, and no compatible pair with free quantity on both sides left."""
    m.check_drained_allocation()
    # Drained: the ghosts hold no free quantity, and a wide request's quantity is all accounted.
    for cell in m.cells.values():
        for rid in cell.ghosts:
            ghost = cell.book.listings.get(rid)
            assert ghost is None or ghost.available <= EPS, (cell.name, rid)
    for rid, w in m.wide.requests.items():
        opened = sum(
            e.proposal.quantity for _, e in m.open.values() if e.proposal.request_id == rid
        )
        total = w.free + m.confirmed[rid] + opened
        assert abs(total - max(m.truth[rid].terms[-1].quantity, m.confirmed[rid])) <= 1e-6, (
            rid,
            total,
        )
    # No compatible pair with free quantity on both sides is left unproposed.
    live = {k: t for k, t in m.truth.items() if not t.withdrawn}
    left = []
    for oid, o in live.items():
        if o.kind != "offer" or _free(m, oid) <= EPS:
            continue
        offer = m.cell(o.key).book.listings[oid]
        for rid, r in live.items():
            if r.kind != "request" or r.owner == o.owner or _closed(m, oid, rid):
                continue
            free = _free(m, rid)
            if free <= EPS or m.open_pair(oid, rid):
                continue
            request = _listing(r.post, replace(r.terms[-1], quantity=free))
            if assess(offer, request, CONFIG) is not None:
                left.append((oid, rid))
    assert not left, left


def test_the_streams_exercise_the_protocol() -> None:
    counts: dict[str, int] = defaultdict(int)
    for seed in SEEDS:
        for name, n in _run(seed).counts.items():
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
