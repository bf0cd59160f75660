"""One book over the whole market as the reference (#17 item 3): a seeded random stream of
market.listings events, decided once by the matching core with a single book, and the tools to
decide it again split the way the matcher splits it.

The stream holds offers and requests of several material families, each family with codes of
several sub-chapters (substitutes, and requests that accept other codes of their family), a
third of them steady flows (a quantity per week or month), changes of terms, withdrawals,
answers (accept or decline, by the seller or the buyer), expiry timers (some a second early,
which the core ignores) and the period timers of the standing agreements confirmed pairs of
flows become. Answers and timers name proposals that the
reference has made so far, as partners and the scheduler would.

Every event goes through the same path as on the real topic: `to_message` (so its Kafka key is
`key_of`), `decode`, `to_command` and `decide`. The split runs route each message to a partition
the way Kafka's default partitioner does (murmur2 of the key) and keep one book per partition, as
the matcher does; `tests/unit/test_one_book.py` compares them, and
`tests/integration/test_one_book_matchers.py` feeds the same stream to real matcher instances.

The wide sweep, as a benchmark-style job (many seeds, longer streams, every partition count):

    python -m loadtests.one_book [--seeds 200] [--events 600] [--partitions 1 3 6 12 24]

writes loadtests/reports/one-book-<timestamp>.json and exits 1 on any difference."""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from aiokafka.partitioner import DefaultPartitioner

from marketplace.core.book import EPS, Book
from marketplace.core.matching import Confirmed, DeliveryDue, MarketConfig, _evaluate
from marketplace.events import Decoded, decode, to_message
from marketplace.runtime.outbox import OutboxMessage
from marketplace.settings import Settings
from marketplace.translate.matching import decide, market_config, to_command
from schemas import listings as ls
from schemas.common import Location, Material, Money, Quantity, Recurrence, Window

# Far in the future: timers the matcher schedules for these proposals never come due in a test.
START = datetime(2031, 3, 3, tzinfo=UTC)
SOURCE = "/tests/one-book"
# Per family, codes of several sub-chapters; substitutions.tsv links some of them (150102 and
# 200139, 150101 and 200101, 150104 and 200140, 040221 and 040222).
FAMILY_CODES: dict[str, tuple[str, ...]] = {
    "plastics": ("150102", "200139", "020104", "170203", "191204"),
    "paper": ("150101", "200101", "191201"),
    "metals": ("170405", "150104", "200140", "191202"),
    "textiles": ("040221", "040222", "200111"),
    "organics": ("020304", "020106", "020501", "200108"),
    "1501": ("150106",),
}
# Central Sweden: most pairs are within reach of each other.
PLACES = ((59.86, 17.64), (60.67, 17.14), (59.33, 18.07), (59.61, 16.55), (60.48, 15.43))


def config() -> MarketConfig:
    return market_config(Settings.from_env({}))


@dataclass
class Stream:
    """The stream as Kafka records, and what the single book decided: every emitted event by
    its CloudEvent id, as the bytes the matcher publishes."""

    messages: list[OutboxMessage]
    decided: dict[str, bytes]
    book: Book
    counts: dict[str, int] = field(default_factory=dict)


def _decoded(m: OutboxMessage) -> Decoded:
    return decode(m.topic, m.value, list(m.headers))


def _ce_id(m: OutboxMessage) -> str:
    return dict(m.headers)["ce_id"].decode()


def generate(
    seed: int,
    events: int = 300,
    salt: str = "one-book",
    origin: tuple[float, float] = PLACES[0],
) -> Stream:
    """`events` listing events drawn with `seed`, decided as they are drawn by one book. `salt`
    makes the event ids (and so every derived id) unique to a run, and `origin` moves the
    places (PLACES[0] moves to it), when the stream goes to a shared Kafka beside other
    listings."""
    rng = random.Random(seed)
    cfg = config()
    book = Book()
    namespace = uuid.uuid5(uuid.NAMESPACE_URL, f"{SOURCE}/{salt}/{seed}")
    messages: list[OutboxMessage] = []
    decided: dict[str, bytes] = {}
    counts: dict[str, int] = {}
    owners = [f"firm-{salt}-{n}" for n in range(12)]
    posted: list[tuple[str, str, str, str]] = []  # (kind, id, owner, code), open ones
    # The standing agreements' period timers the matcher asked for and the scheduler has not
    # published yet: (due, match id, code, period key).
    periods: list[tuple[datetime, str, str, str]] = []

    def add(event: Any, at: datetime, subject: str) -> None:
        n = len(messages)
        message = to_message(
            event,
            event_id=str(uuid.uuid5(namespace, str(n))),
            source=SOURCE,
            time=at,
            subject=subject,
        )
        messages.append(message)
        name = type(event).__name__
        counts[name] = counts.get(name, 0) + 1
        nonlocal book
        decoded = _decoded(message)
        command = to_command(decoded, book)
        if command is None:
            return
        book, out = decide(book, command, decoded, cfg, SOURCE)
        for made, emitted in out:
            decided[_ce_id(emitted)] = emitted.value
            # The timers the matcher schedules for standing agreements (consumers/matcher.py).
            if isinstance(made, Confirmed) and made.first_period is not None:
                key, due = made.first_period
                periods.append((due, made.proposal.match_id, made.proposal.code, key))
            elif isinstance(made, DeliveryDue):
                key, due = made.next_period
                p = made.standing.proposal
                periods.append((due, p.match_id, p.code, key))

    def terms(kind: str, at: datetime) -> ls.OfferTerms | ls.RequestTerms:
        window = Window(
            start=at + timedelta(days=rng.randrange(0, 20)),
            end=at + timedelta(days=rng.randrange(30, 90)),
        )
        quantity = Quantity(amount=round(rng.uniform(1, 20), 2), unit="t")
        # Some listings are steady flows: their quantity is per period, and a pair of flows
        # confirmed becomes a standing agreement with period timers.
        flow = None
        if rng.random() < 0.35:
            flow = Recurrence(
                period=rng.choice(("week", "month")),
                starts=window.start.date(),
                ends=window.end.date(),
            )
        if kind == "offer":
            return ls.OfferTerms(
                quantity=quantity,
                price=Money(amount=round(rng.uniform(-20, 60), 2), currency="EUR"),
                available=window,
                min_lot=Quantity(amount=2.0, unit="t")
                if quantity.amount >= 4 and rng.random() < 0.15
                else None,
                recurrence=flow,
            )
        return ls.RequestTerms(
            quantity=quantity,
            max_price=Money(amount=round(rng.uniform(20, 140), 2), currency="EUR"),
            wanted=window,
            max_distance_km=round(rng.uniform(20, 400), 1),
            recurrence=flow,
        )

    shift = (origin[0] - PLACES[0][0], origin[1] - PLACES[0][1])

    def place() -> Location:
        lat, lon = rng.choice(PLACES)
        return Location(
            lat=lat + shift[0] + rng.uniform(-0.3, 0.3),
            lon=lon + shift[1] + rng.uniform(-0.3, 0.3),
        )

    for n in range(events):
        at = START + timedelta(minutes=n)
        roll = rng.random()
        open_proposals = sorted(book.proposals.values(), key=lambda p: p.match_id)
        if roll < 0.22 and open_proposals:
            p = rng.choice(open_proposals)
            # The side that has not answered yet (a proposal with an answer is confirmed or
            # gone once the other side answers).
            partner = rng.choice([x for x in (p.seller, p.buyer) if x not in p.answers])
            answer: ls.MatchAccepted | ls.MatchDeclined
            if rng.random() < 0.8:
                answer = ls.MatchAccepted(
                    match_id=p.match_id, partner_id=partner, actor_id=partner, material_code=p.code
                )
            else:
                answer = ls.MatchDeclined(
                    match_id=p.match_id, partner_id=partner, actor_id=partner, material_code=p.code
                )
            add(answer, at, p.match_id)
        elif roll < 0.3 and open_proposals:
            p = rng.choice(open_proposals)
            due = p.expires_at - timedelta(seconds=1 if rng.random() < 0.2 else 0)
            add(
                ls.MatchDeadlineDue(match_id=p.match_id, material_code=p.code, due=due),
                due,
                p.match_id,
            )
        elif roll < 0.34 and periods:
            # The scheduler publishes the earliest timer that came due.
            periods.sort()
            due, match_id, code, key = periods.pop(0)
            timer = ls.AgreementPeriodDue(
                match_id=match_id, material_code=code, period_key=key, due=due
            )
            add(timer, due, match_id)
        elif roll < 0.38 and posted:
            kind, lid, owner, code = posted[rng.randrange(len(posted))]
            new = terms(kind, START)
            if isinstance(new, ls.OfferTerms):
                change: Any = ls.OfferUpdated(
                    offer_id=lid, owner_id=owner, actor_id=owner, material_code=code, terms=new
                )
            else:
                change = ls.RequestUpdated(
                    request_id=lid, owner_id=owner, actor_id=owner, material_code=code, terms=new
                )
            add(change, at, lid)
        elif roll < 0.45 and posted:
            kind, lid, owner, code = posted.pop(rng.randrange(len(posted)))
            if kind == "offer":
                gone: Any = ls.OfferWithdrawn(
                    offer_id=lid, owner_id=owner, actor_id=owner, material_code=code
                )
            else:
                gone = ls.RequestWithdrawn(
                    request_id=lid, owner_id=owner, actor_id=owner, material_code=code
                )
            add(gone, at, lid)
        else:
            family = rng.choice(sorted(FAMILY_CODES))
            code = rng.choice(FAMILY_CODES[family])
            owner = rng.choice(owners)
            lid = str(uuid.uuid5(namespace, f"listing/{n}"))
            material = Material(code=code, description="one-book stream")
            if rng.random() < 0.5:
                offer_terms = terms("offer", START)
                assert isinstance(offer_terms, ls.OfferTerms)
                event: Any = ls.OfferPosted(
                    offer_id=lid,
                    owner_id=owner,
                    actor_id=owner,
                    material=material,
                    location=place(),
                    terms=offer_terms,
                )
                posted.append(("offer", lid, owner, code))
            else:
                request_terms = terms("request", START)
                assert isinstance(request_terms, ls.RequestTerms)
                others = [c for c in FAMILY_CODES[family] if c != code]
                accepts = tuple(c for c in others if rng.random() < 0.4)
                event = ls.RequestPosted(
                    request_id=lid,
                    owner_id=owner,
                    actor_id=owner,
                    material=material,
                    accepts_codes=accepts,
                    location=place(),
                    terms=request_terms,
                )
                posted.append(("request", lid, owner, code))
            add(event, at, lid)
    return Stream(messages, decided, book, counts)


Keyer = Callable[[OutboxMessage], bytes]


def kafka_key(m: OutboxMessage) -> bytes:
    """The key the message is published with (`key_of`: the material family)."""
    assert m.key is not None
    return m.key


def subchapter_key(m: OutboxMessage) -> bytes:
    """The key before material families: the 4-digit sub-chapter of the event's code."""
    event = _decoded(m).event
    code = getattr(event, "material_code", None) or event.material.code  # type: ignore[attr-defined]
    return str(code)[:4].encode()


_PARTITIONER = DefaultPartitioner()


def partition_of(key: bytes, partitions: int) -> int:
    """Kafka's default partitioner for a keyed record (murmur2 of the key)."""
    every = list(range(partitions))
    return int(_PARTITIONER(key, every, every))


@dataclass
class Split:
    books: dict[int, Book]
    decided: dict[str, bytes]


def run_split(messages: list[OutboxMessage], partitions: int, keyer: Keyer = kafka_key) -> Split:
    """The stream decided the way the matcher decides it: one book per partition, each fed
    its partition's messages in order."""
    cfg = config()
    books: dict[int, Book] = {}
    decided: dict[str, bytes] = {}
    for m in messages:
        p = partition_of(keyer(m), partitions)
        book = books.setdefault(p, Book())
        decoded = _decoded(m)
        command = to_command(decoded, book)
        if command is None:
            continue
        book, out = decide(book, command, decoded, cfg, SOURCE)
        books[p] = book
        for _, emitted in out:
            decided[_ce_id(emitted)] = emitted.value
    return Split(books, decided)


def over_allocated(book: Book) -> list[str]:
    """Listings promised more than they hold: reserved by open proposals plus confirmed, over
    the quantity; or a reservation that is not what the open proposals say."""
    reserved: dict[str, float] = {}
    for p in book.proposals.values():
        for lid in (p.offer_id, p.request_id):
            listing = book.listings[lid]
            if listing.terms.flow is None:
                take, _ = p.take(listing.kind)
                reserved[lid] = reserved.get(lid, 0.0) + take
    bad = []
    for listing in book.listings.values():
        if listing.terms.flow is not None:
            continue
        mismatch = abs(listing.reserved - reserved.get(listing.id, 0.0)) > 1e-6
        over = listing.reserved + listing.confirmed > listing.terms.quantity + 1e-6
        if mismatch or over:
            bad.append(listing.id)
    return bad


def unproposed(book: Book, cfg: MarketConfig) -> list[tuple[str, str]]:
    """Compatible pairs (an offer of a code the request takes) with free quantity on both
    sides that the book neither proposed nor closed: a drained book has none."""
    offers = [x for x in book.listings.values() if x.kind == "offer"]
    out = []
    for request in book.listings.values():
        if request.kind != "request" or request.available <= EPS:
            continue
        codes = set(book.request_codes(request, cfg.substitutions))
        for offer in offers:
            free = offer.code in codes and offer.available > EPS
            if free and _evaluate(book, offer, request, cfg) is not None:
                out.append((offer.id, request.id))
    return out


def cross_partition_pairs(books: dict[int, Book], cfg: MarketConfig) -> list[tuple[str, str]]:
    """Pairs of codes that could trade (an offer of a code a request takes) held by two
    different partitions: with routing by family there are none."""
    out: list[tuple[str, str]] = []
    for pr, rb in books.items():
        for request in rb.listings.values():
            if request.kind != "request":
                continue
            codes = set(rb.request_codes(request, cfg.substitutions))
            for po, ob in books.items():
                if po == pr:
                    continue
                out.extend(
                    (o.id, request.id)
                    for o in ob.listings.values()
                    if o.kind == "offer" and o.code in codes
                )
    return out


REPORTS = Path(__file__).resolve().parent / "reports"


@dataclass
class SeedResult:
    seed: int
    events: int
    decided: int
    proposed: int
    confirmed: int
    period_timers: int  # AgreementPeriodDue events in the stream
    open_listings: int
    differing: dict[int, int]  # partitions -> events not decided alike
    over_allocated: int
    unproposed: int
    cross_partition: int
    old_key_differing: dict[int, int]  # the same, split by sub-chapter


def sweep_one(seed: int, events: int, partitions: list[int]) -> SeedResult:
    stream = generate(seed, events)
    cfg = config()
    reference = set(stream.decided.items())
    differing: dict[int, int] = {}
    old: dict[int, int] = {}
    over = len(over_allocated(stream.book))
    left = len(unproposed(stream.book, cfg))
    cross = 0
    for n in partitions:
        split = run_split(stream.messages, n)
        differing[n] = len(reference ^ set(split.decided.items()))
        for book in split.books.values():
            over += len(over_allocated(book))
            left += len(unproposed(book, cfg))
        cross += len(cross_partition_pairs(split.books, cfg))
        old[n] = len(reference ^ set(run_split(stream.messages, n, subchapter_key).decided.items()))
    values = list(stream.decided.values())
    return SeedResult(
        seed=seed,
        events=len(stream.messages),
        decided=len(values),
        proposed=sum(b'"score"' in v for v in values),
        confirmed=sum(b'"pickup"' in v for v in values),
        period_timers=stream.counts.get("AgreementPeriodDue", 0),
        open_listings=len(stream.book.listings),
        differing=differing,
        over_allocated=over,
        unproposed=left,
        cross_partition=cross,
        old_key_differing=old,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description="one book against the split core, many seeds")
    parser.add_argument("--seeds", type=int, default=200)
    parser.add_argument("--first-seed", type=int, default=1000)
    parser.add_argument("--events", type=int, default=600)
    parser.add_argument("--partitions", type=int, nargs="+", default=[1, 3, 6, 12, 24])
    args = parser.parse_args()
    started = time.perf_counter()
    results = [
        sweep_one(seed, args.events, args.partitions)
        for seed in range(args.first_seed, args.first_seed + args.seeds)
    ]
    failed = [
        r.seed
        for r in results
        if any(r.differing.values()) or r.over_allocated or r.unproposed or r.cross_partition
    ]
    summary = {
        "seeds": args.seeds,
        "first_seed": args.first_seed,
        "events_per_seed": args.events,
        "partitions": args.partitions,
        "decided": sum(r.decided for r in results),
        "proposed": sum(r.proposed for r in results),
        "confirmed": sum(r.confirmed for r in results),
        "period_timers": sum(r.period_timers for r in results),
        "failed_seeds": failed,
        "seeds_where_the_old_key_differs": {
            n: sum(1 for r in results if r.old_key_differing[n]) for n in args.partitions
        },
        "seconds": round(time.perf_counter() - started, 1),
    }
    REPORTS.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = REPORTS / f"one-book-{stamp}.json"
    path.write_text(
        json.dumps({"summary": summary, "seeds": [asdict(r) for r in results]}, indent=1) + "\n"
    )
    print(json.dumps(summary, indent=1))
    print(f"report: loadtests/reports/{path.name}")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
