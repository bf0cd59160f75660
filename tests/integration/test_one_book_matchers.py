"""Compatible codes meet wherever they are partitioned (#17 items 2 and 3), against the real
matcher on real Kafka and PostgreSQL.

- The issue's examples through the API and a running matcher on `market.listings` (6
  partitions): a request for 20 01 39 that accepts 15 01 02 next to an offer of 15 01 02 gets a
  proposal, and so does a request for 20 01 01 next to an offer of its configured substitute
  15 01 01, though their sub-chapters fall on different partitions; an accepted code of another
  family is refused 422 naming the field and the families.
- One book as the reference: the seeded stream of loadtests/one_book.py on market.listings (6
  partitions) and on copies of it at 1, 12 and 24 partitions, decided by one to three matcher
  instances of one group, gives exactly the events the single book gives (same ids, same
  bytes)."""

from __future__ import annotations

import asyncio
import dataclasses
import random
import uuid
from typing import Any

import pytest

from consumers.matcher import TOPIC, Matcher
from loadtests.one_book import generate, partition_of
from marketplace.cloudevents import Envelope
from marketplace.kafka import make_producer
from marketplace.runtime.service import run_consumer
from marketplace.settings import Settings
from marketplace.translate.matching import market_config, source_of
from schemas.topics import copy_name
from tests.integration.api_helpers import eventually, register, running_api
from tests.integration.kafka_helpers import (
    caught_up,
    end_offsets,
    make_topics,
    partition_count,
    read_since,
    start_at_end,
)
from tests.integration.test_matcher import (
    matcher_running,
    matches_about,
    near,
    offer,
    place,
    post,
    request,
)

pytestmark = pytest.mark.integration


async def test_the_issues_examples_meet_across_subchapters_at_six_partitions(
    settings: Settings,
) -> None:
    assert await partition_count(settings, "market.listings") == 6
    # Under the old key these pairs were on different partitions: the test means something.
    assert partition_of(b"1501", 6) != partition_of(b"2001", 6)
    seller = await register(settings, "sme", "Plastfolie Kiruna AB")
    buyer = await register(settings, "sme", "Regranulat Luleå AB")
    spot, other = place(), place()
    since = await end_offsets(settings, "market.matches")
    async with running_api(settings) as client, matcher_running(settings) as group:
        o1 = await post(client, seller, "/v1/offers", offer(spot, 4, 10, code="150102"))
        wanted = request(near(spot, 0.05), 3, 80, code="200139")
        r1 = await post(client, buyer, "/v1/requests", wanted | {"accepts_codes": ["150102"]})
        # A configured substitute (substitutions.tsv: 15 01 01 and 20 01 01), no accepts.
        o2 = await post(client, seller, "/v1/offers", offer(other, 4, 10, code="150101"))
        r2 = await post(
            client, buyer, "/v1/requests", request(near(other, 0.05), 3, 80, code="200101")
        )
        found = await matches_about(
            settings, since, {o1, r1, o2, r2}, {"market.match.proposed.v1"}, 2, group
        )
        pairs = {(b["offer_id"], b["request_id"]) for _, b in found}
        assert pairs == {(o1, r1), (o2, r2)}

        refused = await client.post(
            "/v1/requests",
            json=wanted | {"accepts_codes": ["150102", "150101"]},
            headers=buyer.auth,
        )
        assert refused.status == 422
        problem = await refused.json()
        assert problem["type"].endswith("/accepts-other-family")
        assert "plastics" in problem["detail"]
        assert "paper" in problem["detail"]
        assert [e["field"] for e in problem["errors"]] == ["accepts_codes[1]"]
        preview = await client.post(
            "/v1/requests/preview",
            json=wanted | {"accepts_codes": ["150101"]},
            headers=buyer.auth,
        )
        assert preview.status == 422
        assert (await preview.json())["type"].endswith("/accepts-other-family")


# (partitions, matcher instances, seed). At 6 partitions the stream goes to market.listings
# itself; at the other counts to a copy of it of its own ("market.listings--p12-<id>", which
# carries market.listings's contract), so real matchers decide it split 1, 12 and 24 ways too.
# The wide sweep over many seeds and counts is loadtests/one_book.py.
CASES = [(6, 1, 11), (6, 2, 12), (6, 3, 13), (1, 1, 14), (12, 3, 15), (24, 2, 16)]


@pytest.mark.timeout(300)
@pytest.mark.parametrize(("partitions", "instances", "seed"), CASES)
async def test_real_matchers_decide_what_one_book_decides(
    settings: Settings, partitions: int, instances: int, seed: int
) -> None:
    if partitions == await partition_count(settings, TOPIC):
        topic = TOPIC
    else:
        topic = copy_name(TOPIC, f"p{partitions}-{uuid.uuid4().hex[:8]}")
        await make_topics(settings, topic, partitions=partitions)
    group = f"test.one-book.{uuid.uuid4().hex[:8]}"
    await start_at_end(settings, group, topic)
    since = await end_offsets(settings, "market.matches")
    # A spot of the North Atlantic of its own, away from every other test's listings.
    rng = random.Random()
    origin = (rng.uniform(35, 55), rng.uniform(-45, -20))
    stream = generate(seed, events=250, salt=uuid.uuid4().hex, origin=origin)
    assert len(stream.decided) > 30
    producer = make_producer(settings)
    await producer.start()
    try:
        sent = [
            await producer.send(topic, m.value, key=m.key, headers=list(m.headers))
            for m in stream.messages
        ]
        placed = await asyncio.gather(*sent)
    finally:
        await producer.stop()
    # Kafka put each record where the reference's split puts it.
    for m, record in zip(stream.messages, placed, strict=True):
        assert m.key is not None
        assert record.partition == partition_of(m.key, partitions)
    if partitions > 1:
        assert len({r.partition for r in placed}) > 1, "the stream should span partitions"

    quick = dataclasses.replace(settings, consumer_max_batch=50)
    stop = asyncio.Event()
    tasks = [
        asyncio.create_task(
            run_consumer(
                quick,
                group_id=group,
                topics=[topic],
                processor=Matcher(market_config(settings), group),
                stop=stop,
            )
        )
        for _ in range(instances)
    ]
    source = source_of(group)
    published: dict[str, set[bytes]] = {}

    async def all_published() -> bool:
        published.clear()
        for r in await read_since(settings, "market.matches", since):
            envelope = Envelope.from_headers(r.headers)
            if envelope.source == source:
                published.setdefault(envelope.id, set()).add(r.value)
        return len(published) >= len(stream.decided)

    try:
        await caught_up(settings, group, [topic], limit_s=180)
        await eventually(all_published, 60)
    finally:
        stop.set()
        await asyncio.wait_for(asyncio.gather(*tasks), 60)
    assert all(len(v) == 1 for v in published.values()), "an event published twice, differently"
    got: dict[str, Any] = {k: next(iter(v)) for k, v in published.items()}
    assert got == stream.decided
