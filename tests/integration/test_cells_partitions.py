"""A split family on real Kafka and PostgreSQL at several partition and instance counts (#17
items 2 and 3): a seeded stream of one-off offers and requests of plastics, their updates (terms,
reach) and withdrawals, on copies of market.listings and market.cells with 1, 6 and 12
partitions, decided by one to three matcher instances forwarding the family and as many
instances of the cells consumer. When the traffic is drained: every open proposal is valid for
its listings' terms, no listing is over-allocated, and no compatible pair with free quantity on
both sides is left unproposed (the same properties as tests/unit/test_shards.py, here through
the real consumers, topics and partitions)."""

from __future__ import annotations

import asyncio
import dataclasses
import random
import uuid
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest

from consumers.cells import CellsMatcher
from consumers.matcher import Matcher
from marketplace.cloudevents import Envelope
from marketplace.core.book import EPS, Book, Listing, Terms
from marketplace.core.matching import Post, Update, Withdraw, assess
from marketplace.core.shards import ShardPlan
from marketplace.events import decode, to_message
from marketplace.kafka import make_producer
from marketplace.runtime.service import run_consumer
from marketplace.settings import Settings
from marketplace.translate.matching import market_config, source_of, to_command
from schemas import listings as ls
from schemas import topics
from schemas.common import Location, Material, Money, Quantity, Window
from schemas.topics import copy_name
from tests.integration.kafka_helpers import caught_up, end_offsets, make_topics, read_since

pytestmark = pytest.mark.integration

START = datetime(2031, 5, 5, tzinfo=UTC)  # far ahead: no answer-period timer comes due
SOURCE = "/tests/cells-partitions"


def stream(seed: int, origin: tuple[float, float], events: int = 180) -> list[Any]:
    """The listing events, as market.listings carries them (key: the family)."""
    rng = random.Random(seed)
    salt = uuid.uuid4().hex[:8]
    owners = [f"firm-{salt}-{n}" for n in range(8)]
    open_: list[tuple[str, str, str, str]] = []  # kind, id, owner, code
    out = []

    def window(at: datetime) -> Window:
        start = at + timedelta(days=rng.randint(0, 20))
        return Window(start=start, end=start + timedelta(days=rng.randint(10, 60)))

    def terms(kind: str, at: datetime) -> ls.OfferTerms | ls.RequestTerms:
        quantity = Quantity(amount=float(rng.randint(1, 20)), unit="t")
        if kind == "offer":
            return ls.OfferTerms(
                quantity=quantity,
                price=Money(amount=float(rng.randint(0, 60)), currency="EUR"),
                available=window(at),
            )
        return ls.RequestTerms(
            quantity=quantity,
            max_price=Money(amount=float(rng.randint(50, 160)), currency="EUR"),
            wanted=window(at),
            max_distance_km=float(rng.choice((30, 80, 150, 250))),
        )

    for n in range(events):
        at = START + timedelta(minutes=n)
        roll = rng.random()
        event: Any
        if roll < 0.6 or len(open_) < 4:
            kind, code = rng.choice(("offer", "request")), rng.choice(("150102", "200139"))
            lid, owner = f"{kind[0]}-{salt}-{n}", rng.choice(owners)
            material = Material(code=code, description="PE film")
            where = Location(
                lat=round(origin[0] + rng.uniform(-1.2, 1.2), 4),
                lon=round(origin[1] + rng.uniform(-1.5, 1.5), 4),
            )
            if kind == "offer":
                event = ls.OfferPosted(
                    offer_id=lid,
                    owner_id=owner,
                    actor_id=owner,
                    material=material,
                    location=where,
                    terms=terms(kind, at),  # type: ignore[arg-type]
                )
            else:
                event = ls.RequestPosted(
                    request_id=lid,
                    owner_id=owner,
                    actor_id=owner,
                    material=material,
                    location=where,
                    terms=terms(kind, at),  # type: ignore[arg-type]
                )
            open_.append((kind, lid, owner, code))
        elif roll < 0.85:
            kind, lid, owner, code = rng.choice(open_)
            if kind == "offer":
                event = ls.OfferUpdated(
                    offer_id=lid,
                    owner_id=owner,
                    actor_id=owner,
                    material_code=code,
                    terms=terms(kind, at),  # type: ignore[arg-type]
                )
            else:
                event = ls.RequestUpdated(
                    request_id=lid,
                    owner_id=owner,
                    actor_id=owner,
                    material_code=code,
                    terms=terms(kind, at),  # type: ignore[arg-type]
                )
        else:
            kind, lid, owner, code = open_.pop(rng.randrange(len(open_)))
            if kind == "offer":
                event = ls.OfferWithdrawn(
                    offer_id=lid, owner_id=owner, actor_id=owner, material_code=code
                )
            else:
                event = ls.RequestWithdrawn(
                    request_id=lid, owner_id=owner, actor_id=owner, material_code=code
                )
        out.append(
            to_message(event, event_id=str(uuid.uuid4()), source=SOURCE, time=at, subject=f"{n}")
        )
    return out


def truth(messages: list[Any]) -> dict[str, tuple[Listing, bool]]:
    """Every listing with its latest terms, and whether it is withdrawn."""
    book = Book()
    gone: set[str] = set()
    for m in messages:
        command = to_command(decode(topics.LISTINGS, m.value, list(m.headers)), book)
        match command:
            case Post():
                book.listings[command.id] = Listing(
                    command.id,
                    command.kind,
                    command.owner,
                    command.code,
                    command.place,
                    command.terms,
                    0,
                )
            case Update():
                book.listings[command.id].terms = command.terms
            case Withdraw():
                gone.add(command.id)
    return {lid: (listing, lid in gone) for lid, listing in book.listings.items()}


def with_quantity(listing: Listing, quantity: float) -> Listing:
    terms: Terms = dataclasses.replace(listing.terms, quantity=quantity)
    return dataclasses.replace(listing, terms=terms, confirmed=0.0, reserved=0.0)


@pytest.mark.parametrize(("partitions", "instances", "seed"), [(1, 1, 3), (6, 2, 5), (12, 3, 8)])
async def test_split_matching_keeps_its_properties_at_any_partition_count(
    settings: Settings, partitions: int, instances: int, seed: int
) -> None:
    suffix = uuid.uuid4().hex[:8]
    listings = copy_name(topics.LISTINGS, f"p{partitions}-{suffix}")
    cells = copy_name(topics.CELLS, f"p{partitions}-{suffix}")
    await make_topics(settings, listings, cells, partitions=partitions)
    rng = random.Random()
    origin = (rng.uniform(36, 54), rng.uniform(-40, -22))  # the North Atlantic, a spot of its own
    plan = ShardPlan(frozenset({"plastics"}), (round(origin[0], 2),), (round(origin[1], 2),))
    messages = stream(seed, origin)
    since = await end_offsets(settings, topics.MATCHES)
    producer = make_producer(settings)
    await producer.start()
    try:
        for m in messages:
            await producer.send(listings, m.value, key=m.key, headers=list(m.headers))
        await producer.flush()
    finally:
        await producer.stop()

    quick = dataclasses.replace(settings, consumer_max_batch=40)
    config = market_config(settings)
    matcher_group, cells_group = f"test.matcher.{suffix}", f"test.cells.{suffix}"
    stop = asyncio.Event()
    tasks = [
        asyncio.create_task(
            run_consumer(
                quick,
                group_id=matcher_group,
                topics=[listings],
                processor=Matcher(config, matcher_group, plan, cells_topic=cells),
                stop=stop,
            )
        )
        for _ in range(instances)
    ] + [
        asyncio.create_task(
            run_consumer(
                quick,
                group_id=cells_group,
                topics=[cells],
                processor=CellsMatcher(config, plan, cells_group),
                stop=stop,
            )
        )
        for _ in range(instances)
    ]
    try:
        await caught_up(settings, matcher_group, [listings], limit_s=180)
        # Drained: the cells consumer has read all of market.cells and wrote nothing more.
        while True:
            await caught_up(settings, cells_group, [cells], limit_s=180)
            ends = await end_offsets(settings, cells)
            await asyncio.sleep(1.0)
            await caught_up(settings, cells_group, [cells], limit_s=180)
            if await end_offsets(settings, cells) == ends:
                break
    finally:
        stop.set()
        await asyncio.wait_for(asyncio.gather(*tasks), 60)

    lends = [
        r
        for r in await read_since(settings, cells, dict.fromkeys(range(partitions), 0))
        if Envelope.from_headers(r.headers).type == "market.cell.lend.v1"
    ]
    source = source_of(cells_group)
    proposed: dict[str, dict[str, Any]] = {}
    for r in await read_since(settings, topics.MATCHES, since):
        env = Envelope.from_headers(r.headers)
        if env.source != source:
            continue
        body = orjson.loads(r.value)
        if env.type == "market.match.proposed.v1":
            proposed[body["match_id"]] = body
        elif env.type == "market.match.cancelled.v1":
            proposed.pop(body["match_id"], None)
    listings_now = truth(messages)
    wide = {
        lid
        for lid, (listing, _) in listings_now.items()
        if listing.kind == "request"
        and plan.key("plastics", "request", listing.place, listing.terms.max_distance_km)
        == "plastics@wide"
    }
    assert len(wide) >= 5, "the stream should hold requests reaching across the cells' edges"
    assert lends, "and the wide key should have lent them"
    assert any(p["request_id"] in wide for p in proposed.values())

    held: dict[str, float] = defaultdict(float)
    pairs = set()
    for p in proposed.values():
        offer, offer_gone = listings_now[p["offer_id"]]
        request, request_gone = listings_now[p["request_id"]]
        amount = p["quantity"]["amount"]
        assert not offer_gone, p["match_id"]
        assert not request_gone, p["match_id"]
        valid = assess(with_quantity(offer, amount), with_quantity(request, amount), config)
        assert valid is not None, p
        held[p["offer_id"]] += amount
        held[p["request_id"]] += amount
        pairs.add((p["offer_id"], p["request_id"]))
    for lid, amount in held.items():
        assert amount <= listings_now[lid][0].terms.quantity + 1e-6, (lid, amount)
    # Nothing compatible left unproposed (no answers in the stream: no pair is closed).
    left = []
    live = {lid: listing for lid, (listing, gone) in listings_now.items() if not gone}
    for oid, offer in live.items():
        free_o = offer.terms.quantity - held[oid]
        if offer.kind != "offer" or free_o <= EPS:
            continue
        for rid, request in live.items():
            free_r = request.terms.quantity - held[rid]
            if request.kind != "request" or free_r <= EPS or request.owner == offer.owner:
                continue
            if (oid, rid) in pairs:
                continue
            if assess(with_quantity(offer, free_o), with_quantity(request, free_r), config):
                left.append((oid, rid))
    assert not left, left
