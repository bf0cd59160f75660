"""Moving a family that already trades into cells (`marketplace rebuild split`, #17 item 2) on
real Kafka and PostgreSQL: a matcher decides plastics on its family key (a request reaching
across the 19th meridian gets offers of both sides), is stopped, the family is moved, and the
matcher (now forwarding plastics) and the cells consumer carry on: an answer to a proposal made
before the move is decided by the cell that holds it, the tonnes it frees go to a request of
that cell, and the other proposal confirms. A dry run changes nothing; a second move has
nothing to move."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest

from consumers.cells import CellsMatcher
from consumers.matcher import Matcher
from marketplace.app.rekey import Refused
from marketplace.app.services import split_plan
from marketplace.app.split import run_split
from marketplace.cloudevents import Envelope
from marketplace.core.geo import Place
from marketplace.db import connect
from marketplace.events import to_message
from marketplace.kafka import make_producer
from marketplace.runtime.service import run_consumer
from marketplace.settings import Settings
from marketplace.translate.matching import market_config, source_of
from schemas import listings as ls
from schemas import topics
from schemas.common import Location, Material, Money, Quantity, Window
from schemas.topics import copy_name
from tests.integration.kafka_helpers import caught_up, end_offsets, make_topics, read_since

pytestmark = pytest.mark.integration

T0 = datetime(2031, 7, 1, tzinfo=UTC)


def split(settings: Settings) -> Settings:
    return dataclasses.replace(
        settings, split_families="plastics", split_lat_cuts="67", split_lon_cuts="19"
    )


def listing(kind: str, lid: str, owner: str, lat: float, lon: float, qty: float, **kw: Any) -> Any:
    material = Material(code="150102", description="PE film")
    where = Location(lat=lat, lon=lon)
    window = Window(start=T0, end=T0 + timedelta(days=60))
    if kind == "offer":
        terms = ls.OfferTerms(
            quantity=Quantity(amount=qty, unit="t"),
            price=Money(amount=kw["price"], currency="EUR"),
            available=window,
        )
        return ls.OfferPosted(
            offer_id=lid,
            owner_id=owner,
            actor_id=owner,
            material=material,
            location=where,
            terms=terms,
        )
    request_terms = ls.RequestTerms(
        quantity=Quantity(amount=qty, unit="t"),
        max_price=Money(amount=200.0, currency="EUR"),
        wanted=window,
        max_distance_km=kw["km"],
    )
    return ls.RequestPosted(
        request_id=lid,
        owner_id=owner,
        actor_id=owner,
        material=material,
        location=where,
        terms=request_terms,
    )


async def publish(settings: Settings, topic: str, events: list[Any], at: datetime) -> None:
    producer = make_producer(settings)
    await producer.start()
    try:
        for n, event in enumerate(events):
            m = to_message(
                event, event_id=str(uuid.uuid4()), source="/tests/split", time=at, subject=f"{n}"
            )
            await producer.send(topic, m.value, key=m.key, headers=list(m.headers))
        await producer.flush()
    finally:
        await producer.stop()


@asynccontextmanager
async def consuming(*runs: tuple[Settings, str, str, Any]) -> AsyncIterator[None]:
    stop = asyncio.Event()
    tasks = [
        asyncio.create_task(run_consumer(s, group_id=g, topics=[t], processor=p, stop=stop))
        for s, g, t, p in runs
    ]
    try:
        yield
    finally:
        stop.set()
        await asyncio.wait_for(asyncio.gather(*tasks), 60)


async def decided(
    settings: Settings, since: dict[int, int], group: str, kind: str
) -> list[dict[str, Any]]:
    source = source_of(group)
    out = []
    for r in await read_since(settings, topics.MATCHES, since):
        env = Envelope.from_headers(r.headers)
        if env.source == source and env.type == kind:
            out.append(orjson.loads(r.value))
    return out


async def test_a_trading_family_moves_into_cells_and_trades_on(settings: Settings) -> None:
    s = split(settings)
    suffix = uuid.uuid4().hex[:8]
    listings = copy_name(topics.LISTINGS, f"split-{suffix}")
    cells = copy_name(topics.CELLS, f"split-{suffix}")
    await make_topics(s, listings, cells, partitions=3)
    matcher_group, cells_group = f"test.matcher.{suffix}", f"test.cells.{suffix}"
    config = market_config(s)
    since = await end_offsets(s, topics.MATCHES)
    a, b, w, near_a = (f"{x}-{suffix}" for x in ("oa", "ob", "rw", "rl"))
    seller_a, seller_b, wide_buyer, local_buyer = (f"{x}-{suffix}" for x in "ABWL")
    await publish(
        s,
        listings,
        [
            listing("offer", a, seller_a, 66.35, 18.3, 10, price=20.0),
            listing("offer", b, seller_b, 66.5, 19.5, 10, price=25.0),
            listing("request", w, wide_buyer, 66.5, 19.0, 15, km=100.0),
        ],
        T0,
    )
    # Before the move: one matcher on the family key.
    whole = Matcher(config, matcher_group)
    async with consuming((s, matcher_group, listings, whole)):
        await caught_up(s, matcher_group, [listings])

        async def proposed_twice() -> list[dict[str, Any]]:
            return await decided(s, since, matcher_group, "market.match.proposed.v1")

        for _ in range(100):
            before = await proposed_twice()
            if len(before) == 2:
                break
            await asyncio.sleep(0.2)
    assert {(p["offer_id"], p["quantity"]["amount"]) for p in before} == {(a, 10.0), (b, 5.0)}
    plan = split_plan(s)
    assert plan.key("plastics", "request", Place(66.5, 19.0), 100.0) == "plastics@wide"

    conn = await connect(s)
    try:
        items = "SELECT count(*) FROM matcher_items WHERE group_id = $1 AND topic = $2"
        held = await conn.fetchval(items, matcher_group, listings)
        assert held == 5  # three listings, two proposals
        # A dry run moves nothing.
        dry = await run_split(
            s,
            group_id=matcher_group,
            cells_group=cells_group,
            followers=(),
            topic=listings,
            cells_topic=cells,
            dry_run=True,
            say=lambda _: None,
        )
        assert [f.name for f in dry.families] == ["plastics"]
        assert await conn.fetchval(items, matcher_group, listings) == held
        state = "SELECT key FROM cells_state WHERE group_id = $1 ORDER BY key"
        assert await conn.fetch(state, cells_group) == []
        # The move.
        said: list[str] = []
        done = await run_split(
            s,
            group_id=matcher_group,
            cells_group=cells_group,
            followers=(),
            topic=listings,
            cells_topic=cells,
            say=said.append,
        )
        [family] = done.families
        assert (family.offers, family.wide_requests, family.ghosts, family.proposals) == (
            2,
            1,
            2,
            2,
        )
        assert await conn.fetchval(items, matcher_group, listings) == 0
        keys = [r["key"] for r in await conn.fetch(state, cells_group)]
        assert keys == ["plastics@n0e0", "plastics@n0e1", "plastics@wide"]
        assert any("plastics: 2 offers" in line for line in said)
        # A second move finds nothing to move.
        again = await run_split(
            s,
            group_id=matcher_group,
            cells_group=cells_group,
            followers=(),
            topic=listings,
            cells_topic=cells,
            say=lambda _: None,
        )
        assert again.families == []
    finally:
        await conn.close()

    # After the move: the matcher forwards plastics, the cells decide.
    by_offer = {p["offer_id"]: p for p in before}
    forwarding = Matcher(config, matcher_group, plan, cells_topic=cells)
    deciding = CellsMatcher(config, plan, cells_group)
    later = T0 + timedelta(minutes=5)
    async with consuming(
        (s, matcher_group, listings, forwarding), (s, cells_group, cells, deciding)
    ):
        await publish(
            s,
            listings,
            [
                listing("request", near_a, local_buyer, 66.3, 18.2, 5, km=25.0),
                ls.MatchDeclined(
                    match_id=by_offer[a]["match_id"],
                    partner_id=wide_buyer,
                    actor_id=wide_buyer,
                    material_code="150102",
                ),
                *(
                    ls.MatchAccepted(
                        match_id=by_offer[b]["match_id"],
                        partner_id=who,
                        actor_id=who,
                        material_code="150102",
                    )
                    for who in (seller_b, wide_buyer)
                ),
            ],
            later,
        )
        for _ in range(150):
            cancelled = await decided(s, since, cells_group, "market.match.cancelled.v1")
            confirmed = await decided(s, since, cells_group, "market.match.confirmed.v1")
            proposed = await decided(s, since, cells_group, "market.match.proposed.v1")
            if cancelled and confirmed and proposed:
                break
            await asyncio.sleep(0.2)
    # The decline of a proposal made before the move, decided in the cell that holds it.
    assert [c["match_id"] for c in cancelled] == [by_offer[a]["match_id"]]
    assert [c["match_id"] for c in confirmed] == [by_offer[b]["match_id"]]
    assert confirmed[0]["weight_t"] == 5.0
    # The tonnes it freed went to the request of that cell; the wide request's own 10 t came
    # back to the wide key, which may lend them where the confirmed offer has 5 t left.
    made = sorted((p["offer_id"], p["request_id"], p["quantity"]["amount"]) for p in proposed)
    assert (a, near_a, 5.0) in made
    assert [m for m in made if m != (a, near_a, 5.0)] in ([], [(b, w, 5.0)])


async def test_the_move_is_refused_without_a_split_family(settings: Settings) -> None:
    with pytest.raises(Refused, match="names no family"):
        await run_split(settings, followers=(), say=lambda _: None)
