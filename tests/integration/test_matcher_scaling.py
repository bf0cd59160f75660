"""Two matcher instances share market.listings; one is killed mid-stream and replaced. Every
proposal the pure core makes from the log is published, none twice with different content."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import uuid
from collections import defaultdict
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from consumers.matcher import Matcher
from marketplace.core.book import Book
from marketplace.core.matching import Proposed, step
from marketplace.events import EventDecodeError, decode, to_message
from marketplace.kafka import make_producer
from marketplace.settings import ROOT, Settings
from marketplace.translate.matching import market_config, to_command
from schemas.common import Location, Material, Money, Quantity, Window
from schemas.listings import OfferPosted, OfferTerms, RequestPosted, RequestTerms
from tests.integration.api_helpers import eventually
from tests.integration.kafka_helpers import end_offsets, read_all

pytestmark = pytest.mark.integration
CODES = ["150102", "200139", "040222"]


def listings(count: int, seed: int) -> list[OfferPosted | RequestPosted]:
    rng = random.Random(seed)
    start = datetime(2026, 12, 1, tzinfo=UTC)
    out: list[OfferPosted | RequestPosted] = []
    for n in range(count):
        code = rng.choice(CODES)
        place = Location(lat=rng.uniform(69.0, 69.6), lon=rng.uniform(18.0, 20.0))
        material = Material(code=code, description="scaling test")
        window = Window(start=start, end=start + timedelta(days=60))
        owner = f"scale-{rng.randrange(40)}"
        if n % 2:
            out.append(
                OfferPosted(
                    offer_id=str(uuid.uuid4()),
                    owner_id=owner,
                    actor_id=owner,
                    material=material,
                    location=place,
                    terms=OfferTerms(
                        quantity=Quantity(amount=rng.uniform(1, 10), unit="t"),
                        price=Money(amount=rng.uniform(-10, 30), currency="EUR"),
                        available=window,
                    ),
                )
            )
        else:
            out.append(
                RequestPosted(
                    request_id=str(uuid.uuid4()),
                    owner_id=owner,
                    actor_id=owner,
                    material=material,
                    location=place,
                    terms=RequestTerms(
                        quantity=Quantity(amount=rng.uniform(1, 10), unit="t"),
                        max_price=Money(amount=rng.uniform(20, 90), currency="EUR"),
                        wanted=window,
                        max_distance_km=rng.uniform(10, 60),
                    ),
                )
            )
    return out


def start_worker(group: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "MARKETPLACE_LOG_FORMAT": "json", "MARKETPLACE_LOG_LEVEL": "warning"}
    return subprocess.Popen(
        [sys.executable, "-m", "tests.integration.matcher_worker", group], cwd=ROOT, env=env
    )


@pytest.mark.timeout(300)
async def test_two_matchers_one_killed_no_proposal_lost_or_doubled(
    settings: Settings, pool: asyncpg.Pool
) -> None:
    group = f"test.matcher-scale.{uuid.uuid4().hex[:8]}"
    producer = make_producer(settings)
    await producer.start()
    try:
        now = datetime.now(UTC)
        for event in listings(600, seed=uuid.uuid4().int % 1000):
            m = to_message(event, event_id=str(uuid.uuid4()), source="/tests", time=now)
            await producer.send(m.topic, m.value, key=m.key, headers=list(m.headers))
        await producer.flush()
    finally:
        await producer.stop()
    ends = await end_offsets(settings, "market.listings")
    workers = [start_worker(group), start_worker(group)]

    async def applied() -> int:
        value = await pool.fetchval(
            "SELECT coalesce(sum(next_offset), 0) FROM consumer_offsets WHERE group_id = $1", group
        )
        return int(value)

    target = sum(ends.values())
    try:
        await eventually(lambda: _at_least(applied, target // 3), 120)
        workers[0].send_signal(signal.SIGKILL)
        assert workers[0].wait(10) == -signal.SIGKILL
        workers.append(start_worker(group))
        await eventually(lambda: _at_least(applied, target), 180)

        async def outbox_empty() -> bool:
            return bool(
                await pool.fetchval("SELECT count(*) = 0 FROM outbox WHERE group_id = $1", group)
            )

        await eventually(outbox_empty, 30)
    finally:
        for w in workers[1:]:
            w.send_signal(signal.SIGTERM)
        for w in workers[1:]:
            assert await asyncio.to_thread(w.wait, 30) == 0

    # What the pure core decides from the same log, partition by partition.
    config = market_config(settings)
    expected: dict[str, bytes] = {}
    by_partition = defaultdict(list)
    for r in await read_all(settings, "market.listings"):
        if r.offset < ends[r.partition]:
            by_partition[r.partition].append(r)
    for records in by_partition.values():
        book = Book()
        for r in sorted(records, key=lambda x: x.offset):
            try:
                decoded = decode(r.topic, r.value, r.headers)
            except EventDecodeError:
                continue
            command = to_command(decoded, book)
            if command is not None:
                book, out = step(book, command, config)
                expected.update((e.proposal.match_id, b"") for e in out if isinstance(e, Proposed))
    source = Matcher(config, group).source.encode()
    published: dict[str, set[bytes]] = defaultdict(set)
    for r in await read_all(settings, "market.matches"):
        headers = dict(r.headers)
        if headers.get("ce_source") == source and headers["ce_type"] == b"market.match.proposed.v1":
            published[headers["ce_subject"].decode()].add(r.value)
    assert set(published) == set(expected), "proposals lost or invented"
    assert all(len(v) == 1 for v in published.values()), "a proposal published twice, differently"
    assert len(expected) > 20, "the test market should produce proposals"


async def _at_least(read: object, target: int) -> bool:
    return bool(await read() >= target)  # type: ignore[operator]
