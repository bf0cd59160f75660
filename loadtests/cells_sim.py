"""A simulated market of one family split into geographic cells (#17; marketplace/core/shards.py
and split.py), with nothing but the pure core: random offers, requests, updates (terms, reach,
quantity), withdrawals, answers and answer deadlines over four cells, the messages between the
keys delivered in random interleavings (each sender's messages to a receiver in order, as on one
Kafka partition), and the checks every delivery and the drained market must pass: every
proposal valid for its listings' terms, no listing over-allocated, a wide request's quantity
conserved (free at the wide key, held by its ghosts, used), no compatible pair with free
quantity on both sides left unproposed. A market may also start in one book and be moved into
the cells part-way (`split_run`), as `marketplace rebuild split` moves a trading family.

tests/unit/test_shards.py and test_split.py run a few seeds; the sweep runs many:

    python -m loadtests.cells_sim [--seeds 400] [--ops 200] [--json loadtests/reports/...]

It prints, and writes as JSON, how many seeds passed in each mode and what the markets did
(messages by kind, proposals, confirmations), and exits 1 naming the seeds that failed."""

from __future__ import annotations

import argparse
import json
import random
import sys
from collections import Counter, defaultdict, deque
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

from marketplace.core.book import EPS, Book, Listing, Terms
from marketplace.core.economics import MaterialFactor, TransportModel
from marketplace.core.families import family_of
from marketplace.core.geo import Place
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
    step,
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
from marketplace.core.split import split_family

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


def run(seed: int, ops: int = 160) -> Market:
    m = Market(random.Random(seed))
    drive(m, range(ops))
    while m.deliver_one():
        pass
    return m


def drive(m: Market, steps: range) -> None:
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


@dataclass
class OneBook(Market):
    """The same market, every command decided at once by one book (before a split)."""

    book: Book = field(default_factory=Book)

    def send(self, sender: str, receiver: str, message: Message) -> None:  # noqa: ARG002
        self.counts[type(message).__name__] += 1
        _, events = step(self.book, message, CONFIG)  # type: ignore[arg-type]
        for event in events:
            self.observe("plastics", event)
        self.check_allocation()

    def broadcast(self, sender: str, message: Message) -> None:
        self.send(sender, "plastics", message)

    def deliver_one(self) -> bool:
        return False


def split_run(seed: int, before: int = 90) -> tuple[OneBook, Market]:
    """`before` steps decided by one book, then the family moved into the cells (checked: every
    listing holds what it held, a wide request's quantity accounted, every open proposal filed
    with its offer); returns the book's market and the cells' market that carries on."""
    one = OneBook(random.Random(seed))
    drive(one, range(before))
    held = {lid: (x.reserved, x.confirmed) for lid, x in one.book.listings.items()}
    moved = split_family(one.book, "plastics", PLAN, CONFIG, family_of)
    assert one.book.listings == {}
    assert one.book.proposals == {}
    for name, cell in moved.cells.items():
        for lid, x in cell.book.listings.items():
            if lid in cell.ghosts:
                continue
            assert PLAN.cell(x.place) == name
            assert (x.reserved, x.confirmed) == held[lid]
    for rid, w in moved.wide.requests.items():
        ghosts = sum(
            c.book.listings[rid].terms.quantity
            for c in moved.cells.values()
            if rid in c.book.listings
        )
        total = w.free + ghosts + w.used
        lowered = w.listing.terms.quantity < held[rid][1]  # confirmed above a lowered quantity
        assert lowered or abs(total - w.listing.terms.quantity) <= 1e-6, (rid, total)
    for match_id, (_, e) in one.open.items():
        offer_cell = PLAN.cell(one.truth[e.proposal.offer_id].post.place)
        assert match_id in moved.cells[offer_cell].book.proposals
    m = Market(one.rng, cells=moved.cells, wide=moved.wide, truth=one.truth, now=one.now)
    m.confirmed.update(one.confirmed)
    for match_id, (_, e) in one.open.items():
        m.open[match_id] = (f"plastics@{PLAN.cell(one.truth[e.proposal.offer_id].post.place)}", e)
    for lid, t in m.truth.items():
        home = WIDE if lid in moved.wide.requests else PLAN.cell(t.post.place)
        t.key = f"plastics@{home}"
    return one, m


def _one(mode: str, seed: int, ops: int) -> Counter[str]:
    if mode == "stream":
        m = run(seed, ops)
    else:
        _, m = split_run(seed, ops // 2)
        drive(m, range(ops // 2, ops))
        while m.deliver_one():
            pass
    check_drained(m)
    return Counter(m.counts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=400)
    parser.add_argument("--ops", type=int, default=200)
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()
    report: dict[str, object] = {"seeds": args.seeds, "ops": args.ops, "modes": {}}
    failed: list[str] = []
    for mode in ("stream", "split"):
        counts: Counter[str] = Counter()
        passed = 0
        for seed in range(args.seeds):
            try:
                counts += _one(mode, seed, args.ops)
                passed += 1
            except AssertionError as exc:
                failed.append(f"{mode} seed {seed}: {exc!r}"[:300])
        report["modes"][mode] = {"passed": passed, "counts": dict(sorted(counts.items()))}  # type: ignore[index]
        print(f"{mode}: {passed} of {args.seeds} seeds passed; {dict(sorted(counts.items()))}")
    report["failed"] = failed
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(report, f, indent=2)
            f.write("\n")
    for line in failed:
        print(f"FAILED {line}", file=sys.stderr)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
