"""Maximum sustained throughput of each consumer, with one and with several instances, against
baselines measured in the same run on the same broker.

    python -m loadtests.bench_consumers [--events 20000] [--instances 1,2] [--repeat 1]
        [--consumers matcher,projector,auditor,analytics,auctioneer,notifier,alerts,reminders,
                     deals,webhooks,mailer]
        [--peer message,batch,default] [--compare COMMIT] [--variant LABEL:MARKETPLACE_X=V]
        [--profile] [--no-floor] [--floor-nosync] [--floor-decode] [--floor-codec]
        [--floor-keep] [--floor-side-by-side N]

The workloads, each put onto its topic directly:
- `market.listings` (matcher, projector, auditor, analytics, alerts, reminders): `--events` offers
  and requests from the market simulator's mix (seeded); alerts' scratch database holds no saved
  search, so it keeps the listings' state and alerts no one (what it does for a listing no
  search wants);
- `logistics.jobs` (auctioneer): `--events / 5` transport jobs between the simulated towns and the
  quotes of the simulated carriers on them (those whose coverage fits, else one that does not and
  is refused), about `--events` records in all;
- `market.matches` (notifier): the proposals the matcher runs of this benchmark emitted (the
  matcher runs once for them when it is not among `--consumers`);
- `partners.notifications` (webhooks, mailer: their inboxes, the part on the exactly-once
  runtime, without the dispatcher's and sender's sending): the notifications one run of the
  notifier issued on those proposals; every simulated firm is registered with one endpoint for
  every kind and one member with a verified address, and every tenth consented to a facilitator
  (`subscribers_of`);
- `market.deals` (deals): `--events` messages and read receipts in the deal rooms of the
  simulated firms (`deal_events`), with the same subscribers.
Each consumer then applies exactly those records, starting from an empty state in a scratch
database of its own (so nothing shared is touched), as separate processes
(`loadtests/consumer_worker.py`); its throughput is the records of its topic applied per second
from its first commit to its last (from the workers' start when one look at the offsets already
finds all of them applied); with `--repeat N` the instance counts are run N times, interleaved
(each round starting with the next version or variant), and the median is reported. The
baselines, on the listings and the same broker:
- `kafka-consumer-perf`: Kafka's own ConsumerPerformance tool (and ProducerPerformance for the
  produce side) on a scratch topic of as many records of the same mean size;
- `aiokafka-consume`: a bare aiokafka loop that reads the records and does nothing;
- `aiokafka-consume-produce`: a bare loop that reads them and produces each to a scratch topic.
The report states each consumer's rate as a ratio to the bare consume loop and to Kafka's tool.
In each round, next to each consumer (issue #18, target 1):
- `same-work`: aiokafka doing the consumer's Kafka work without its logic and database (its batch
  size and settings, what it emitted per record produced with acks=all, offsets committed to Kafka
  batch by batch), `same_work_loop`;
- `same-work+pg-floor`, for the consumers that write to PostgreSQL (the projector, analytics, the
  auditor and alerts, `FLOOR_TABLES`; the notifier, the auctioneer and reminders,
  `FLOOR_STATEMENTS`): that loop plus the least PostgreSQL work their exactly-once contract needs,
  done as cheaply as PostgreSQL allows, `pg_floor_loop`: per partition batch one transaction on a
  connection of the consumers' pool that writes the rows the consumer writes for those records into
  the same tables of a migrated scratch database (same indexes) and moves the offset row on from
  where the batch began (the fence and the advance in one UPDATE), then COMMIT. The first four COPY
  (binary) one row per record into their table (alerts: `search_alert_listings`, without its look
  for saved searches and its read of what it knows); the others run one statement a batch
  (`unnest`ed arrays) that writes their rows and their emitted events' outbox rows and deletes the
  outbox rows Kafka acknowledged since (as the runtime does in the next batch's transaction): the
  notifier's `notifier_parties` (a match's parties, with the first record naming it), the
  auctioneer's deadline `timers` (each the first time asked) and `auctioneer_jobs` (each job's
  auction as the batch leaves it: upserted), reminders' `reminder_facts` (each listing's facts) and
  the `timers` their plans ask for (without the subjects' advisory locks and the facts read back,
  which the consumer needs); after the commit they produce the very events the consumer emitted
  (keys, values, headers) onto the scratch topic. The rows are built before the clock starts by the
  consumer's own code (`floor_row`: the projector's `step`, analytics' `fact`; the auditor's chained
  rows by `marketplace.audit.store.chained_rows`, its months' partitions made once before the clock,
  where the auditor asks per batch; `floor_effects`: the notifier's planner, `plan` and `messages`,
  the auctioneer's `decide` and `deadline_timer`, each partition's records in order from an empty
  state, and the outbox rows' JSON headers), so no decoding, hashing or logic is timed and no
  statement reads (the consumers look up what they remember); after each run the tables' rows are
  compared with the consumer's by digest (`floor_rows_equal`; `DIGEST_LEFT_OUT`: the group's name,
  each run's own, and the outbox's identity and clock, empty after a clean run anyway). It knows the
  benchmark's workloads only: posted offers and requests (one row each), the matcher's proposals and
  the jobs with their quotes. The report gives, per consumer, consumer / same-work, floor /
  same-work and consumer / floor (of the medians and per round), and CPU microseconds per record of
  the worker (or the loop's process), PostgreSQL and the broker. `--floor-nosync` adds a diagnostic,
  not a floor: the same floor committing with `synchronous_commit = off` (what waiting for the WAL's
  fsync costs), `--floor-side-by-side N` another: the floor with up to N partitions' transactions at
  once on connections of their own (the runtime's `consumer_partition_concurrency`),
  `--floor-decode` another: the floor plus what no consumer can leave out, timed (each record
  decoded, and for the table consumers its row built by the consumer's own mapping), `--floor-codec`
  a bound: the floor plus only the coding a consumer of these contracts does (each record decoded,
  each event it emits encoded again from its struct with its CloudEvent headers), timed.
  The consumers that tell people (`FLOOR_COPIED`: deals, webhooks, mailer) have a floor of a
  third sort: the very rows the first run of the consumer wrote, read back from its scratch
  database (`copied_rows`) and dealt evenly over the records (`spread`), COPYed one table after
  the other in each batch's transaction on a database set up alike, with the durability their
  service commits with; it leaves out their reads (the people to tell, the endpoints, the
  messages a receipt covers) and the mailer's rendering. `--no-floor` leaves the floors out.
`--peer`: the projector's job as a plain FastStream subscriber (loadtests/peer_faststream.py),
at-least-once, in the same rounds as the projector on the same records; the report gives
ours / peer and whether every run of either left the same rows in the read model (issue #18,
target 4). `--profile`: one more run of each consumer under cProfile after the measured rounds
(left out of the medians), whose costliest functions, in microseconds per record, go into the
report. Every report also records the load average at the start and the end, the CPU
seconds of each process, the consumers' and the baselines' settings and the top statements of
`pg_stat_statements` (loadtests/pgstats.py; "not loaded" when the server lacks the library: run
on a private one, loadtests/postgres.sh).
Writes loadtests/reports/consumers-<timestamp>.json and .html."""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import pstats
import random
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import msgspec
import orjson
from aiokafka import TopicPartition

from consumers.alerts import KEEP_LISTINGS as ALERTS_KEEP
from consumers.alerts import KEPT_COLUMNS as ALERTS_KEPT
from consumers.analytics import LISTING_INSERT as ANALYTICS_LISTING
from loadtests import cpu, pgstats
from loadtests.consumer_worker import KINDS, durable
from loadtests.report import bar_chart, commit, machine, statements_table, write_report
from loadtests.scratch import scratch_database, superuser_sql
from marketplace.audit import chain as audit_chain
from marketplace.audit import store as audit_store
from marketplace.core import auction as auction_core
from marketplace.core.matching import MarketConfig
from marketplace.db import connect, create_pool
from marketplace.events import Decoded, decode, to_message
from marketplace.kafka import (
    ensure_topics,
    make_admin,
    make_consumer,
    make_producer,
    partition_counts,
)
from marketplace.reference import transport_factors
from marketplace.runtime import loop as event_loop
from marketplace.runtime.consumer import start_group_at
from marketplace.runtime.loop import tune_gc
from marketplace.runtime.outbox import OutboxMessage
from marketplace.settings import ROOT, Settings
from marketplace.translate.auction import auction_config
from marketplace.translate.matching import market_config
from producers.simulator.market import Market
from schemas import common
from schemas import deals as dl
from schemas import listings as ls
from schemas import logistics as lg
from schemas import matches as ms
from schemas.topics import TopicSpec

LISTINGS = "market.listings"
JOBS = "logistics.jobs"
MATCHES = "market.matches"
NOTIFICATIONS = "partners.notifications"
DEALS = "market.deals"
# The consumers whose workload is the notifications one run of the notifier issued.
NOTIFIED = ("webhooks", "mailer")
TOPIC_OF = {  # the others: LISTINGS
    "auctioneer": JOBS,
    "notifier": MATCHES,
    "webhooks": NOTIFICATIONS,
    "mailer": NOTIFICATIONS,
    "deals": DEALS,
}
# The consumers that tell people, whose floor writes the very rows their run wrote (taken from
# its scratch database, `copied_rows`), in their order in each table: the tables.
FLOOR_COPIED = {
    "deals": ("deal_messages", "deal_receipts", "deal_notices"),
    "webhooks": ("webhook_deliveries",),
    "mailer": ("mail_deliveries", "mail_digest_items"),
}
# The simulated firms (`Market(seed, smes=400)`), a facilitator and the carriers in the rooms.
FIRMS = 400
# The projector's read-model tables whose rows the peer's must equal (issue #18, target 4).
PROJECTED_TABLES = ("listings", "partners", "carriers", "matches", "jobs", "quotes")
PEER_MODES = ("message", "batch", "default")


# Columns left out of a table's digest (besides any `seq` identity column), each because the
# floor's rows cannot have the consumer's value there however alike the work.
DIGEST_LEFT_OUT: dict[str, tuple[str, ...]] = {
    # The consumer group's name: every run, the consumer's in each round and the floor's, has a
    # group of its own (so that their Kafka offsets never mix), and these tables key on it.
    "notifier_parties": ("group_id",),
    "notifier_jobs": ("group_id",),
    "notifier_carriers": ("group_id",),
    "auctioneer_jobs": ("group_id",),
    "reminder_facts": ("group_id",),
    "search_alert_listings": ("group_id",),
    "mail_digest_items": ("group_id",),
    # Besides the group, the clock's defaults at insertion (now()), and (`COPIED_AS_IS`) the
    # delivery's id, which is derived from the group's name.
    "webhook_deliveries": ("group_id", "created_at", "next_attempt_at", "delivery_id"),
    "mail_deliveries": ("group_id", "created_at", "next_attempt_at"),
    # The identity the database's sequence gave each notice.
    "deal_notices": ("notice_id",),
    # Rows a run left unpublished (none after a clean one): the group, the identity the
    # database's sequence gave and the clock's `created_at` (now()).
    "outbox": ("id", "group_id", "created_at"),
}

# Columns left out of the digest that a copied floor (`FLOOR_COPIED`) still writes as the
# consumer's run wrote them: derived from the run's group, not filled in by the database.
COPIED_AS_IS: dict[str, tuple[str, ...]] = {"webhook_deliveries": ("delivery_id",)}


async def read_model_digest(
    conn: Any, tables: tuple[str, ...] = PROJECTED_TABLES
) -> dict[str, list[Any]]:
    """Each table's row count and an md5 of its rows (as JSON, sorted; any `seq` identity
    column and the table's `DIGEST_LEFT_OUT` left out): equal digests mean equal rows. By
    default the projector's tables."""
    out: dict[str, list[Any]] = {}
    for table in tables:  # fixed names from this module, not input
        dropped = "".join(f" - '{c}'" for c in ("seq", *DIGEST_LEFT_OUT.get(table, ())))
        rows = f"SELECT (to_jsonb(t){dropped})::text AS r FROM {table} t"  # noqa: S608 - fixed
        query = f"SELECT count(*) AS n, md5(coalesce(string_agg(r, E'\\n' ORDER BY r), '')) AS h FROM ({rows}) s"  # noqa: E501, S608
        row = await conn.fetchrow(query)
        out[table] = [row["n"], row["h"]]
    return out


def partner_id(seed: int, index: int) -> str:
    """The id of the simulated firm `index` (the listings' owners, the jobs' parties)."""
    return str(uuid.UUID(int=seed * 1_000_003 + index))


def events(count: int, seed: int) -> list[Any]:
    """`count` OfferPosted/RequestPosted messages from the simulator's seeded mix."""
    market = Market(seed, smes=FIRMS, carriers=0)
    owners = {f.index: partner_id(seed, f.index) for f in market.firms}
    out: list[Any] = []
    start = datetime.now(UTC)
    for action in market.actions(1000.0, start):
        if len(out) >= count:
            break
        owner = owners[action.firm]
        body = dict(action.body)
        if action.kind == "offer":
            event: Any = ls.OfferPosted(
                offer_id=str(uuid.uuid4()),
                owner_id=owner,
                actor_id=owner,
                material=msgspec.convert(body["material"], common.Material),
                location=msgspec.convert(body["location"], common.Location),
                terms=msgspec.convert(body["terms"], ls.OfferTerms),
            )
        elif action.kind == "request":
            event = ls.RequestPosted(
                request_id=str(uuid.uuid4()),
                owner_id=owner,
                actor_id=owner,
                material=msgspec.convert(body["material"], common.Material),
                location=msgspec.convert(body["location"], common.Location),
                terms=msgspec.convert(body["terms"], ls.RequestTerms),
                accepts_codes=tuple(body.get("accepts_codes", ())),
            )
        else:
            continue
        out.append(
            to_message(
                event, event_id=str(uuid.uuid4()), source="/loadtests", time=start, subject=owner
            )
        )
    return out


def job_events(jobs: int, seed: int) -> list[Any]:
    """`jobs` TransportJobRequested, each followed by the simulated carriers' quotes on it."""
    market = Market(seed, smes=400, carriers=12)
    rng = random.Random(seed)
    carriers = [f for f in market.firms if f.role == "logistics"]
    ids = {f.index: str(uuid.UUID(int=seed * 1_000_003 + f.index)) for f in market.firms}
    factors = transport_factors()
    start = datetime.now(UTC)
    out: list[Any] = []
    offers = (a for a in market.actions(1000.0, start) if a.kind == "offer")
    for n, action in zip(range(jobs), offers, strict=False):
        pickup = action.body["location"]
        delivery = {
            "lat": round(pickup["lat"] + rng.uniform(-0.8, 0.8), 5),
            "lon": round(pickup["lon"] + rng.uniform(-1.0, 1.0), 5),
            "region": pickup["region"],
        }
        window = action.body["terms"]["available"]
        qty = action.body["terms"]["quantity"]["amount"]
        job_id = str(uuid.UUID(int=seed * 7_000_003 + n))
        job = lg.TransportJobRequested(
            job_id=job_id,
            match_id=str(uuid.UUID(int=seed * 9_000_011 + n)),
            material_code=action.body["material"]["code"],
            hazardous=False,
            quantity=common.Quantity(qty, "t"),
            weight_t=qty,
            pickup=msgspec.convert(pickup, common.Location),
            delivery=msgspec.convert(delivery, common.Location),
            pickup_window=msgspec.convert(window, common.Window),
            delivery_window=msgspec.convert(window, common.Window),
            bidding_deadline=start + timedelta(days=1),
            currency=action.body["terms"]["price"]["currency"],
            seller_id=ids[action.firm],
            buyer_id=ids[(action.firm + 1) % 400],
        )
        out.append(to_message(job, event_id=str(uuid.uuid4()), source="/loadtests", time=start))
        as_dict = {
            "job_id": job_id,
            "pickup": pickup,
            "delivery": delivery,
            "weight_t": qty,
            "pickup_window": window,
        }
        quotes = [(c, market.quote(c, as_dict, factors, 0.12)) for c in carriers]
        fitting = [(c, q) for c, q in quotes if q is not None]
        if not fitting:  # one that does not fit, which the auctioneer refuses
            c = rng.choice(carriers)
            fitting = [
                (
                    c,
                    {
                        "price": {"amount": 500.0, "currency": job.currency},
                        "vehicle": c.vehicles[0],
                        "co2e_kg": 10.0,
                        "pickup_at": window["start"],
                    },
                )
            ]
        for c, q in fitting:
            quote = lg.QuoteSubmitted(
                quote_id=str(uuid.uuid4()),
                job_id=job_id,
                carrier_id=ids[c.index],
                actor_id=ids[c.index],
                price=msgspec.convert(q["price"], common.Money),
                vehicle=q["vehicle"],
                co2e_kg=q["co2e_kg"],
                pickup_at=msgspec.convert(q["pickup_at"], datetime),
                coverage=msgspec.convert(market.capabilities(c), lg.CarrierCoverage),
            )
            out.append(
                to_message(quote, event_id=str(uuid.uuid4()), source="/loadtests", time=start)
            )
    return out


def deal_events(count: int, seed: int) -> list[Any]:
    """`count` records of market.deals: messages in the deal rooms of `count / 20` matches
    between the simulated firms (a carrier named in every tenth room, an attachment on one
    message in eight, each written by a person of its side) and read receipts, each by the
    side that did not write the room's latest message (about half the records)."""
    rng = random.Random(seed)
    rooms = []
    for n in range(max(count // 20, 1)):
        seller, buyer = (partner_id(seed, i) for i in rng.sample(range(FIRMS), 2))
        carrier = partner_id(seed, FIRMS + 1 + n % 12) if n % 10 == 0 else None
        rooms.append((str(uuid.UUID(int=seed * 11_000_027 + n)), seller, buyer, carrier))
    start = datetime.now(UTC)
    latest: dict[str, tuple[str, str]] = {}  # room -> its latest message and its author
    out: list[Any] = []
    while len(out) < count:
        match_id, seller, buyer, carrier = rng.choice(rooms)
        last = latest.get(match_id)
        event: Any
        if last is not None and rng.random() < 0.5:
            message_id, author = last
            reader = buyer if author == seller else seller
            event = dl.MessageRead(
                match_id=match_id,
                message_id=message_id,
                partner_id=reader,
                person_id=str(uuid.uuid5(uuid.NAMESPACE_OID, reader)),
                seller_id=seller,
                buyer_id=buyer,
                carrier_id=carrier,
            )
        else:
            side: Literal["seller", "buyer"] = "seller" if rng.random() < 0.5 else "buyer"
            author = seller if side == "seller" else buyer
            text = f"Pickup at the gate, load {len(out)} - can you confirm the time?".encode()
            files = (
                (
                    dl.Attachment(
                        attachment_id=str(uuid.uuid4()),
                        name=f"weighing-slip-{len(out)}.pdf",
                        media_type="application/pdf",
                        size=48_000 + len(out),
                        sha256=hashlib.sha256(b"%d" % len(out)).hexdigest(),
                    ),
                )
                if rng.random() < 0.125
                else ()
            )
            event = dl.MessagePosted(
                message_id=str(uuid.uuid4()),
                match_id=match_id,
                author_id=author,
                side=side,
                person_id=str(uuid.uuid5(uuid.NAMESPACE_OID, author)),
                text_sha256=hashlib.sha256(text).hexdigest(),
                text_length=len(text),
                attachments=files,
                seller_id=seller,
                buyer_id=buyer,
                carrier_id=carrier,
            )
            latest[match_id] = (event.message_id, author)
        out.append(to_message(event, event_id=str(uuid.uuid4()), source="/loadtests", time=start))
    return out


def subscribers_of(seed: int) -> Callable[[Any, str], Awaitable[None]]:
    """A scratch database's `prepare` for the consumers that tell people (the deal rooms, the
    webhook and mail inboxes): each simulated firm (the listings' owners, so the parties of the
    matches, notifications and deal rooms) registered (an SME, in Bulgaria or Sweden), with one
    member whose address is verified (languages in turn: en, bg, sv; the default mail
    preferences: proposals at once, the rest in the digest) and one webhook endpoint for every
    kind; one facilitator with one member, to whom every tenth partner consented (its members
    get that SME's mail and deal-room notices too)."""
    facilitator = partner_id(seed, FIRMS)
    everyone = [partner_id(seed, i) for i in range(FIRMS)] + [facilitator]
    people = [uuid.uuid5(uuid.NAMESPACE_URL, f"bench/{p}") for p in everyone]

    async def prepare(conn: Any, group: str) -> None:  # noqa: ARG001 - the same for any group
        now = datetime.now(UTC)
        n = len(everyone)
        await conn.copy_records_to_table(
            "partners",
            columns=["partner_id", "name", "role", "country", "registered_at", "updated_at"],
            records=[
                (
                    p,
                    f"Firm {i}",
                    "facilitator" if p == facilitator else "sme",
                    ("BG", "SE")[i % 2],
                    now,
                    now,
                )
                for i, p in enumerate(everyone)
            ],
        )
        await conn.copy_records_to_table(
            "people",
            columns=["person_id", "partner_id", "email", "display_name", "role", "locale"],
            records=[
                (
                    who,
                    p,
                    f"person{i}@firm{i}.example",
                    f"Person {i}",
                    "member",
                    ("en", "bg", "sv")[i % 3],
                )
                for i, (who, p) in enumerate(zip(people, everyone, strict=True))
            ],
        )
        await conn.copy_records_to_table(
            "mail_verified",
            columns=["person_id", "email", "how"],
            records=[(who, f"person{i}@firm{i}.example", "verify") for i, who in enumerate(people)],
        )
        await conn.copy_records_to_table(
            "webhook_endpoints",
            columns=["endpoint_id", "partner_id", "url", "secret"],
            records=[
                (f"ep-{i}", p, f"http://127.0.0.1:9/hooks/{i}", f"whsec_bench{i:04d}")
                for i, p in enumerate(everyone[: n - 1])
            ],
        )
        await conn.copy_records_to_table(
            "consents",
            columns=["partner_id", "facilitator_id", "status", "granted_at", "updated_at"],
            records=[(p, facilitator, "granted", now, now) for p in everyone[: n - 1 : 10]],
        )

    return prepare


async def produce(
    settings: Settings, messages: list[Any], topic: str = LISTINGS
) -> tuple[dict[int, int], dict[int, int]]:
    """Puts the messages on their topic; returns its start and end offsets per partition."""
    before = await _ends(settings, topic)
    producer = make_producer(settings, linger_ms=20, max_batch_size=256 * 1024)
    await producer.start()
    try:
        futures = [
            await producer.send(m.topic, m.value, key=m.key, headers=list(m.headers))
            for m in messages
        ]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return before, await _ends(settings, topic)


async def _ends(settings: Settings, topic: str) -> dict[int, int]:
    counts = await partition_counts(settings, [topic])
    consumer = make_consumer(settings, None)
    await consumer.start()
    try:
        parts = [TopicPartition(topic, p) for p in range(counts[topic])]
        ends = await consumer.end_offsets(parts)
    finally:
        await consumer.stop()
    return {tp.partition: off for tp, off in ends.items()}


async def bare_loop(
    settings: Settings, start: dict[int, int], end: dict[int, int], sink: str | None
) -> float:
    """Records per second for reading the range (and producing each record to `sink`)."""
    consumer = make_consumer(settings, None, max_poll_records=2000)
    producer = make_producer(settings, linger_ms=20) if sink else None
    await consumer.start()
    if producer:
        await producer.start()
    try:
        parts = [TopicPartition(LISTINGS, p) for p in start]
        consumer.assign(parts)
        for tp in parts:
            consumer.seek(tp, start[tp.partition])
        total = sum(end[p] - start[p] for p in start)
        seen = 0
        pending = []
        if producer and sink:
            # A new topic's partitions may still be electing leaders: wait for every one.
            for p in range(settings.topic_partitions):
                await producer.send_and_wait(sink, b"warm-up", partition=p)
        tune_gc(settings)  # as the services run (see `same_work_loop`)
        t0 = time.perf_counter()
        while seen < total:
            batches = await consumer.getmany(timeout_ms=1000)
            for tp, records in batches.items():
                for r in records:
                    if r.offset < end[tp.partition]:
                        seen += 1
                        if producer and sink:
                            pending.append(await producer.send(sink, r.value, key=r.key))
        if pending:
            await asyncio.gather(*pending)
        return total / (time.perf_counter() - t0)
    finally:
        await consumer.stop()
        if producer:
            await producer.stop()


async def same_work_loop(
    settings: Settings,
    topic: str,
    start: dict[int, int],
    end: dict[int, int],
    sink: str,
    *,
    per_record: float,
    size: int,
) -> float:
    """The Kafka work a consumer does, without its logic and database: read the range with the
    consumers' batch size (`consumer_max_batch`) and settings, produce `per_record` records of
    `size` bytes for each record read (what the consumer emitted, on average) with acks=all,
    wait for the acknowledgements, and commit the offsets to Kafka, batch by batch."""
    consumer = make_consumer(settings, f"bench.same-work.{uuid.uuid4().hex[:8]}")
    producer = make_producer(settings)
    await consumer.start()
    await producer.start()
    payload = b"x" * max(size, 1)
    try:
        parts = [TopicPartition(topic, p) for p in start]
        consumer.assign(parts)
        for tp in parts:
            consumer.seek(tp, start[tp.partition])
        for p in range(settings.topic_partitions):  # leaders elected before the clock starts
            await producer.send_and_wait(sink, b"warm-up", partition=p)
        total = sum(end[p] - start[p] for p in start)
        seen, owed = 0, 0.0
        # The collector as the services run it (`marketplace.runtime.loop.tune_gc`): this
        # process's workloads and floors' rows frozen out of its collections, as a service's
        # start-up is, and the same young threshold. Before stop 33 the loops ran with CPython's
        # defaults while the consumers did too; the floor with decoding (`--floor-decode`) then
        # ran slower than the consumer itself, its collections scanning the workloads.
        tune_gc(settings)
        t0 = time.perf_counter()
        while seen < total:
            batches = await consumer.getmany(
                timeout_ms=settings.consumer_poll_ms, max_records=settings.consumer_max_batch
            )
            offsets: dict[TopicPartition, int] = {}
            pending = []
            for tp, records in batches.items():
                mine = [r for r in records if r.offset < end[tp.partition]]
                if not mine:
                    continue
                seen += len(mine)
                offsets[tp] = mine[-1].offset + 1
                owed += per_record * len(mine)
                while owed >= 1:
                    owed -= 1
                    pending.append(await producer.send(sink, payload, key=mine[-1].key))
            if pending:
                await asyncio.gather(*pending)
            if offsets:
                await consumer.commit(offsets)
        return total / (time.perf_counter() - t0)
    finally:
        await consumer.stop()
        await producer.stop()


# The floor of the consumers that write to PostgreSQL (issue #18, target 1), of two sorts. These
# COPY one row per record: the table each writes a listing's row to for this workload (offers and
# requests posted), and the row's columns in the order `floor_row` gives them.
FLOOR_TABLES: dict[str, tuple[str, tuple[str, ...]]] = {
    "projector": (
        "listings",
        (
            "listing_id",
            "kind",
            "owner_id",
            "material_code",
            "body",
            "status",
            "posted_at",
            "updated_at",
            "last_event_id",
        ),
    ),
    "analytics": (
        "analytics_listings",
        ("listing_id", "kind", "owner_id", "code", "region", "lat", "lon", "tonnes", "posted_at"),
    ),
    # Every record, hash-chained per partition (`marketplace/audit/store.py`'s own row).
    "auditor": ("audit_log", audit_store.COLUMNS),
    # What alerts keeps of each listing for its changes (its group's name in the row: each
    # floor's rows carry one name of their own, left out of the digest).
    "alerts": ("search_alert_listings", ALERTS_KEPT),
}


def _outbox_tail(first: int) -> str:
    """The end of a floor statement that emits: its batch's events into the outbox (parameters
    `first` to `first + 3`: topics, keys, values, headers as JSON) and the deletion of the rows
    Kafka acknowledged since (`first + 4`); it returns the new rows' ids."""
    topic, key, value, headers, published = range(first, first + 5)
    return f"""published AS (
    DELETE FROM outbox WHERE id = ANY(${published}::bigint[])
), new_rows AS (
    INSERT INTO outbox (group_id, topic, key, value, headers)
    SELECT $1, u.topic, u.key, u.value, u.headers::jsonb
      FROM unnest(${topic}::text[], ${key}::bytea[], ${value}::bytea[], ${headers}::text[])
           AS u(topic, key, value, headers)
    RETURNING id
)
SELECT coalesce(array_agg(id), '{{}}') FROM new_rows
"""  # noqa: S608 - only parameter numbers are formatted in


# The consumers of `FLOOR_TABLES` that write through a statement keeping the first of repeated
# ids (an at-least-once producer's repeats: the outbox publishes again after a crash between
# Kafka's acknowledgement and its delete, and COPY would fail the whole batch on one): the
# statement and how a batch's rows bind to it (`--floor-keep`).
FLOOR_KEPT: dict[str, tuple[str, Callable[[str, Sequence[tuple[Any, ...]]], list[Any]]]] = {
    "analytics": (ANALYTICS_LISTING, lambda _group, rows: _columns(rows, 9)),
    # Its group's name as the first parameter, the rows' own left out.
    "alerts": (ALERTS_KEEP, lambda group, rows: [group, *_columns(rows, 10)[1:]]),
}


# These emit events, so their floor writes the outbox too: per batch one statement (`unnest`ed
# arrays bound from `FloorEffects`, `floor_batch`) that inserts the batch's rows into the
# consumer's tables and its emitted events into the outbox, and deletes the outbox rows of the
# batches Kafka has acknowledged since (the consumer's `insert_and_advance` deletes them too).
# The notifier: the two parties of each match it sees (`notifier_parties`, first writer wins:
# each match's row comes with the first record that names it, so a plain INSERT never
# conflicts). $1 the group, $2-$4 the parties, $5-$8 the outbox rows, $9 the published ids.
_NOTIFIER_FLOOR = f"""
WITH parties AS (
    INSERT INTO notifier_parties (group_id, match_id, seller_id, buyer_id)
    SELECT $1, u.m, u.s, u.b FROM unnest($2::text[], $3::text[], $4::text[]) AS u(m, s, b)
), {_outbox_tail(5)}"""  # noqa: S608 - constant text
# The auctioneer: the deadline timers its decisions ask for (`timers`, each the first time it is
# asked for, as ON CONFLICT DO NOTHING keeps it) and each job's auction as the batch leaves it
# (`auctioneer_jobs`, inserted or updated). $1-$3 the group, topic and partition, $4-$9 the
# timers, $10-$12 the jobs, $13-$16 the outbox rows, $17 the published ids.
_AUCTIONEER_FLOOR = f"""
WITH asked AS (
    INSERT INTO timers (timer_id, topic, key, value, headers, due_at)
    SELECT u.id, u.topic, u.key, u.value, u.headers::jsonb, u.due
      FROM unnest($4::text[], $5::text[], $6::bytea[], $7::bytea[], $8::text[],
                  $9::timestamptz[]) AS u(id, topic, key, value, headers, due)
), jobs AS (
    INSERT INTO auctioneer_jobs (group_id, topic, partition, job_id, status, body)
    SELECT $1, $2, $3, u.id, u.status, u.body::jsonb
      FROM unnest($10::text[], $11::text[], $12::text[]) AS u(id, status, body)
    ON CONFLICT (group_id, topic, partition, job_id)
    DO UPDATE SET status = EXCLUDED.status, body = EXCLUDED.body
), {_outbox_tail(13)}"""  # noqa: S608 - constant text
# Reminders: each listing's facts (`reminder_facts`, as the consumer keeps them: ON CONFLICT DO
# NOTHING) and the timers its plan asks for (each the first time). Without the subjects'
# advisory locks and without reading the facts back, which the consumer does (one subject's
# facts come from several partitions): a floor leaves out what it can. $1 the group, $2-$6 the
# facts, $7-$12 the timers, $13-$16 the outbox rows, $17 the published ids.
_REMINDERS_FLOOR = f"""
WITH facts AS (
    INSERT INTO reminder_facts (group_id, subject_id, fact_id, kind, body, at)
    SELECT $1, u.s, u.f, u.k, u.b::jsonb, u.at
      FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::timestamptz[])
           AS u(s, f, k, b, at)
    ON CONFLICT DO NOTHING
), asked AS (
    INSERT INTO timers (timer_id, topic, key, value, headers, due_at)
    SELECT u.id, u.topic, u.key, u.value, u.headers::jsonb, u.due
      FROM unnest($7::text[], $8::text[], $9::bytea[], $10::bytea[], $11::text[],
                  $12::timestamptz[]) AS u(id, topic, key, value, headers, due)
    ON CONFLICT (timer_id) DO NOTHING
), {_outbox_tail(13)}"""  # noqa: S608 - constant text
FLOOR_STATEMENTS = {
    "notifier": _NOTIFIER_FLOOR,
    "auctioneer": _AUCTIONEER_FLOOR,
    "reminders": _REMINDERS_FLOOR,
}
# The tables whose rows a floor's run must leave equal to the consumer's (digests compared).
# The outbox: both leave it empty once Kafka acknowledged everything they emitted.
FLOOR_DIGESTED = {
    "projector": PROJECTED_TABLES,
    "analytics": ("analytics_listings",),
    "auditor": ("audit_log",),
    "notifier": ("notifier_parties", "notifier_jobs", "notifier_carriers", "outbox"),
    "auctioneer": ("auctioneer_jobs", "timers", "outbox"),
    "reminders": ("reminder_facts", "timers", "outbox"),
    "alerts": ("search_alert_listings",),
    **FLOOR_COPIED,
}
# What the projector drops from a listing's event to make its `body` (consumers/projector.py).
_BODY_DROPPED = frozenset({"type", "offer_id", "request_id", "owner_id", "actor_id"})
# The offset row moved on only from where this batch began: the fence and the advance in one.
_FLOOR_ADVANCE = (
    "UPDATE consumer_offsets SET next_offset = $5, updated_at = now()"
    " WHERE group_id = $1 AND topic = $2 AND partition = $3 AND next_offset = $4"
)


def floor_row(kind: str, decoded: Decoded) -> tuple[Any, ...]:
    """The row `kind` writes for one posted listing, built by the consumer's own code (the
    projector's `step`, analytics' `fact`) and shaped as the statement would store it."""
    if kind == "projector":
        from consumers.projector import step

        found = step(decoded)
        if found is None or found.kind != "listing":
            raise ValueError(f"the floor knows posted listings only, not {found}")
        listing_id, listing_kind, owner, code, event, at, event_id = found.row
        built = msgspec.to_builtins(event)
        body = {k: v for k, v in built.items() if k not in _BODY_DROPPED}
        return (
            listing_id,
            listing_kind,
            owner,
            code,
            orjson.dumps(body).decode(),
            "open",
            at,
            at,
            event_id,
        )
    if kind == "analytics":
        from consumers.analytics import fact

        made = fact(decoded)
        if made is None or made.kind != "listing":
            raise ValueError(f"the floor knows posted listings only, not {made}")
        return made.row
    if kind == "alerts":
        from consumers.alerts import kept_row, posted

        event = decoded.event
        if not isinstance(event, ls.OfferPosted | ls.RequestPosted):
            raise ValueError(f"the floor knows posted listings only, not {event}")
        return kept_row("bench.floor.alerts", *posted(event, ""))  # the title is not kept
    raise ValueError(f"no floor for {kind}")


@dataclass(frozen=True, slots=True)
class FloorEffects:
    """What one record makes a consumer of `FLOOR_STATEMENTS` write and emit, built before the
    clock starts and shaped as the floor's statement binds it: `rows`, the rows it adds (the
    notifier: the match's parties, the first time the group sees the match; the auctioneer: the
    deadline timers it asks for, each the first time), `state`, the auctioneer's row of the job
    it changed (job id, status, body) as the record leaves it, `outbox`, its emitted events as
    outbox rows (topic, key, value, headers as JSON) and `sent`, the same as the producer sends
    them (key, value, headers); `timers`, the timers asked for besides its rows (reminders:
    its rows are the facts)."""

    rows: tuple[tuple[Any, ...], ...] = ()
    state: tuple[str, str, str] | None = None
    outbox: tuple[tuple[str, bytes | None, bytes, str], ...] = ()
    sent: tuple[tuple[bytes | None, bytes, list[tuple[str, bytes]]], ...] = ()
    timers: tuple[tuple[Any, ...], ...] = ()


def _effects(
    emitted: Sequence[OutboxMessage],
    rows: Sequence[tuple[Any, ...]] = (),
    state: tuple[str, str, str] | None = None,
) -> FloorEffects:
    return FloorEffects(
        rows=tuple(rows),
        state=state,
        outbox=tuple((m.topic, m.key, m.value, m.headers_json()) for m in emitted),
        sent=tuple((m.key, m.value, list(m.headers)) for m in emitted),
    )


def notifier_effects(decoded: Decoded, parties: dict[str, tuple[str, str]]) -> FloorEffects:
    """What the notifier writes and emits for one record of `market.matches`, by its own
    planner (`plan`, `messages`) and rule (a match's parties remembered from the first event
    naming them; `parties`: those the group has seen, updated). The notifier's workload here is
    the matcher's proposals: events that need carriers or jobs (kept from other topics) are not
    known to the floor. Its events are signed as the "notifier" group's (a run's own group only
    changes the source's name)."""
    from consumers.notifier import GROUP
    from marketplace.core.notifications import Known
    from marketplace.translate import notifications as notify

    event = decoded.event
    known = Known()
    new: list[tuple[Any, ...]] = []
    match event:
        case ms.MatchProposed() | ms.MatchConfirmed():
            if event.match_id not in parties:
                parties[event.match_id] = (event.seller_id, event.buyer_id)
                new.append((event.match_id, event.seller_id, event.buyer_id))
        case ms.MatchExpired() | ms.MatchCancelled() | ms.AgreementEnded() | lg.TransportAwarded():
            known = Known(parties=parties.get(event.match_id))
        case lg.AuctionFailed() if event.reopened_until is None:
            known = Known(parties=parties.get(event.match_id))
        case _:
            raise ValueError(f"the notifier's floor knows matches, not {type(event).__name__}")
    emitted = notify.messages(decoded, notify.plan(event, known), notify.source_of(GROUP))
    return _effects(emitted, new)


def auctioneer_effects(
    decoded: Decoded,
    auctions: dict[str, auction_core.Auction],
    asked: set[str],
    config: auction_core.AuctionConfig,
) -> FloorEffects:
    """What the auctioneer writes and emits for one record of `logistics.jobs`, by its own step
    (`to_command`, `decide`, `deadline_timer`): `auctions`, the partition's auctions so far
    (open and decided: the consumer reads a decided one back when an event about it comes),
    updated; `asked`, the timer ids asked for so far, updated. Its events are signed as the
    "auctioneer" group's."""
    from consumers.auctioneer import GROUP
    from marketplace.translate import auction as auctions_of

    command = auctions_of.to_command(decoded)
    if command is None:
        return FloorEffects()
    job_id = auctions_of.job_id_of(command)
    before = auctions.get(job_id)
    after, emitted, deadlines = auctions_of.decide(
        before, command, decoded, config, auctions_of.source_of(GROUP)
    )
    timers: list[tuple[Any, ...]] = []
    for due in deadlines:
        timer_id, message = auctions_of.deadline_timer(due.job_id, due.due)
        if timer_id not in asked:
            asked.add(timer_id)
            headers = message.headers_json()
            timers.append((timer_id, message.topic, message.key, message.value, headers, due.due))
    state = None
    if after is not None and after is not before:
        auctions[job_id] = after
        state = (job_id, after.status, msgspec.json.encode(after).decode())
    return _effects(emitted, timers, state)


def reminders_effects(decoded: Decoded, config: MarketConfig, asked: set[str]) -> FloorEffects:
    """What reminders writes for one posted listing, by its own code (`facts_of`, with the
    matcher's eligibility findings, the core's `plan`, `timer`): the listing's facts and the
    timers its plan asks for (`asked`: the timer ids asked for so far, updated). The workload's
    listings are each posted once, so each is a subject of its own with no earlier facts and
    nothing due at once (a reminder due now would be emitted: not known to the floor)."""
    from marketplace.core import reminders as reminders_core
    from marketplace.translate import reminders as reminding
    from marketplace.translate.matching import findings_of

    if not isinstance(decoded.event, ls.OfferPosted | ls.RequestPosted):
        raise ValueError(f"the reminders' floor knows posted listings, not {decoded.event}")
    rows = reminding.facts_of(decoded, lambda listing: findings_of(listing, config), lambda _: None)
    facts = tuple((r.subject_id, r.fact_id, r.kind, r.body(), r.fact.at) for r in rows)
    timers: list[tuple[Any, ...]] = []
    for subject in sorted({r.subject_id for r in rows}):
        mine = [r for r in rows if r.subject_id == subject]
        plan = reminders_core.plan([r.fact for r in mine], decoded.envelope.time)
        if plan.due:
            raise ValueError(f"the reminders' floor emits nothing, and {subject} has reminders due")
        for due in plan.wake:
            timer_id, message = reminding.timer(subject, mine[-1].material_code, due)
            if timer_id not in asked:
                asked.add(timer_id)
                headers = message.headers_json()
                timers.append((timer_id, message.topic, message.key, message.value, headers, due))
    return FloorEffects(rows=facts, timers=tuple(timers))


def _columns(rows: Sequence[tuple[Any, ...]], width: int) -> list[list[Any]]:
    """Rows as `width` columns (the `unnest` statements' arrays)."""
    if not rows:
        return [[] for _ in range(width)]
    return [list(column) for column in zip(*rows, strict=True)]


def floor_batch(
    kind: str,
    group: str,
    topic: str,
    partition: int,
    effects: Sequence[FloorEffects],
    published: list[int],
) -> list[Any]:
    """The arguments of `kind`'s statement (`FLOOR_STATEMENTS`) for one partition batch: its
    records' rows, the auctioneer's jobs as the batch leaves them (the last state of each, as
    the consumer saves them once a batch), its outbox rows and the outbox ids to delete."""
    rows = [row for e in effects for row in e.rows]
    outbox = [row for e in effects for row in e.outbox]
    head: list[Any]
    if kind == "notifier":
        head = [group, *_columns(rows, 3)]
    elif kind == "auctioneer":
        jobs = {e.state[0]: e.state for e in effects if e.state is not None}
        head = [group, topic, partition, *_columns(rows, 6), *_columns(list(jobs.values()), 3)]
    elif kind == "reminders":
        timers = [timer for e in effects for timer in e.timers]
        head = [group, *_columns(rows, 5), *_columns(timers, 6)]
    else:
        raise ValueError(f"no floor statement for {kind}")
    return [*head, *_columns(outbox, 4), published]


async def _range_records(
    settings: Settings, topic: str, start: dict[int, int], end: dict[int, int]
) -> list[Any]:
    """The records of the range, each partition's in offset order."""
    consumer = make_consumer(settings, None, max_poll_records=2000)
    await consumer.start()
    out: list[Any] = []
    try:
        parts = [TopicPartition(topic, p) for p in start]
        consumer.assign(parts)
        for tp in parts:
            consumer.seek(tp, start[tp.partition])
        deadline = time.monotonic() + 300
        while [tp for tp in parts if await consumer.position(tp) < end[tp.partition]]:
            if time.monotonic() > deadline:
                raise RuntimeError(f"floor rows: {topic} not read to its end in time")
            batches = await consumer.getmany(timeout_ms=1000)
            for tp, records in batches.items():
                out.extend(r for r in records if r.offset < end[tp.partition])
    finally:
        await consumer.stop()
    return out


async def workload_types(
    settings: Settings, topic: str, start: dict[int, int], end: dict[int, int]
) -> dict[str, int]:
    """How many records of each event type the range holds."""
    found: dict[str, int] = {}
    for r in await _range_records(settings, topic, start, end):
        kind = decode(topic, r.value, r.headers).envelope.type
        found[kind] = found.get(kind, 0) + 1
    return found


@dataclass(frozen=True, slots=True)
class CopiedTable:
    """The rows a consumer of `FLOOR_COPIED` left in one table, in their order there (a `seq`
    identity's, else by their first column), without the columns the database fills in or the
    group names (`DIGEST_LEFT_OUT`): `grouped`, whether a group column is still to be put first
    (`under`)."""

    table: str
    columns: tuple[str, ...]
    rows: list[tuple[Any, ...]]
    grouped: bool
    types: tuple[str, ...]  # each column's type (`udt_name`), for the keeping statement

    def under(self, group: str) -> CopiedTable:
        """The same rows with `group`'s name first (a floor's own group), where the table has
        one."""
        if not self.grouped:
            return self
        rows = [(group, *row) for row in self.rows]
        columns, types = ("group_id", *self.columns), ("text", *self.types)
        return CopiedTable(self.table, columns, rows, False, types)

    def keeping(self) -> str:
        """The rows' statement that takes ids already there (`--floor-keep`)."""
        arrays = ", ".join(f"${i}::{t}[]" for i, t in enumerate(self.types, 1))
        return (
            f"INSERT INTO {self.table} ({', '.join(self.columns)})"  # noqa: S608 - fixed names
            f" SELECT * FROM unnest({arrays}) ON CONFLICT DO NOTHING"
        )


async def copied_rows(conn: Any, tables: Sequence[str]) -> list[CopiedTable]:
    """What a consumer's run wrote to `tables`, read back from its scratch database."""
    out = []
    for table in tables:  # fixed names from this module, not input
        types = {
            r["column_name"]: r["udt_name"]
            for r in await conn.fetch(
                "SELECT column_name, udt_name FROM information_schema.columns"
                " WHERE table_name = $1 AND table_schema = current_schema()"
                " ORDER BY ordinal_position",
                table,
            )
        }
        names = list(types)
        # The database fills in the rest, and the floor its own group's name.
        left_out = {"seq", *DIGEST_LEFT_OUT.get(table, ())} - set(COPIED_AS_IS.get(table, ()))
        kept = tuple(n for n in names if n not in left_out)
        order = "seq" if "seq" in names else "1"
        listed = ", ".join(kept)
        rows = await conn.fetch(f"SELECT {listed} FROM {table} ORDER BY {order}")  # noqa: S608
        typed = tuple(types[n] for n in kept)
        out.append(CopiedTable(table, kept, [tuple(r) for r in rows], "group_id" in names, typed))
    return out


def spread(
    copied: Sequence[CopiedTable], start: dict[int, int], end: dict[int, int]
) -> dict[tuple[int, int], list[tuple[int, tuple[Any, ...]]]]:
    """The copied rows dealt over the range's records, each table's evenly and in its order
    (row i of n to record i * records / n, the records taken partition by partition): each
    record's (table index, row)s. A batch of the floor then writes as many rows of each table
    as the consumer wrote for as many records, on average."""
    records = [(p, o) for p in sorted(start) for o in range(start[p], end[p])]
    out: dict[tuple[int, int], list[tuple[int, tuple[Any, ...]]]] = {r: [] for r in records}
    for index, found in enumerate(copied):
        for i, row in enumerate(found.rows):
            out[records[i * len(records) // len(found.rows)]].append((index, row))
    return out


async def floor_rows(
    settings: Settings, kind: str, topic: str, start: dict[int, int], end: dict[int, int]
) -> dict[tuple[int, int], tuple[Any, ...]]:
    """The rows `kind` (of `FLOOR_TABLES`) writes, by (partition, offset) of the record they come
    from: read and built once, before any floor's clock starts, so that no decoding or logic is
    timed."""
    out: dict[tuple[int, int], tuple[Any, ...]] = {}
    # The auditor's rows are chained: each partition's from the genesis hash, in offset order
    # (the order a partition's records are fetched in), as the consumer's scratch run made them.
    heads: dict[int, bytes] = {}
    for r in await _range_records(settings, topic, start, end):
        if kind == "auditor":
            prev = heads.get(r.partition, audit_chain.GENESIS)
            (row,), heads[r.partition] = audit_store.chained_rows(prev, [r])
        else:
            row = floor_row(kind, decode(topic, r.value, r.headers))
        out[(r.partition, r.offset)] = row
    return out


def effects_maker(settings: Settings, kind: str) -> Callable[[int, Decoded], FloorEffects]:
    """`kind`'s (of `FLOOR_STATEMENTS`) effects of one decoded record of a partition, by its own
    code, from an empty state kept between calls (each partition's records to be given in
    offset order, as the consumer applies them)."""
    parties: dict[str, tuple[str, str]] = {}  # the notifier's: one set for the group
    auctions: dict[int, dict[str, auction_core.Auction]] = {}  # the auctioneer's: per partition
    asked: set[str] = set()  # timer ids: one table for all
    config = auction_config(settings)
    market = market_config(settings)

    def made(partition: int, decoded: Decoded) -> FloorEffects:
        if kind == "notifier":
            return notifier_effects(decoded, parties)
        if kind == "auctioneer":
            return auctioneer_effects(decoded, auctions.setdefault(partition, {}), asked, config)
        if kind == "reminders":
            return reminders_effects(decoded, market, asked)
        raise ValueError(f"no floor statement for {kind}")

    return made


async def floor_effects(
    settings: Settings, kind: str, topic: str, start: dict[int, int], end: dict[int, int]
) -> dict[tuple[int, int], FloorEffects]:
    """What `kind` (of `FLOOR_STATEMENTS`) writes and emits, by (partition, offset) of the
    record: read, decoded and decided once, before any floor's clock starts, each partition's
    records in offset order (the order the consumer applies them in) from an empty state, as
    the consumer's scratch run starts."""
    made = effects_maker(settings, kind)
    return {
        (r.partition, r.offset): made(r.partition, decode(topic, r.value, r.headers))
        for r in await _range_records(settings, topic, start, end)
    }


_CODEC_ENCODER = msgspec.json.Encoder()
_CODEC_SLICE = 50  # records coded between hand-backs to the loop (the runtime's `prepare` too)


def codec_structs(
    effects_at: dict[tuple[int, int], FloorEffects],
) -> dict[tuple[int, int], tuple[Decoded, ...]]:
    """Each record's emitted events as structs (envelope and event), read back from the bytes
    the consumer's own code made, before the clock (for `pg_floor_loop(codec=True)`); each
    checked to encode again to those very bytes and headers."""
    out: dict[tuple[int, int], tuple[Decoded, ...]] = {}
    for at, made in effects_at.items():
        structs = []
        for (topic, _, value, _), (_, _, headers) in zip(made.outbox, made.sent, strict=True):
            struct = decode(topic, value, headers)
            again = (_CODEC_ENCODER.encode(struct.event), list(struct.envelope.headers()))
            if again != (value, list(headers)):
                raise ValueError(f"an event of {at} does not encode again to the same bytes")
            structs.append(struct)
        out[at] = tuple(structs)
    return out


async def pg_floor_loop(
    settings: Settings,
    kind: str,
    topic: str,
    start: dict[int, int],
    end: dict[int, int],
    sink: str,
    *,
    per_record: float,
    size: int,
    rows_at: dict[tuple[int, int], tuple[Any, ...]] | None = None,
    effects_at: dict[tuple[int, int], FloorEffects] | None = None,
    sync: bool = True,
    side_by_side: int = 1,
    decoding: bool = False,
    codec: bool = False,
    copied: list[CopiedTable] | None = None,
    prepare: Callable[[Any, str], Awaitable[None]] | None = None,
    keep: bool = False,
) -> dict[str, Any]:
    """The "same-work+pg-floor" baseline: the same-work loop plus the least PostgreSQL work
    `kind`'s exactly-once contract needs, as cheaply as PostgreSQL allows. Per partition batch,
    one transaction on a connection of the consumers' pool (`create_pool`, no reset) that writes
    the batch's rows and moves the partition's row of `consumer_offsets` on from where the batch
    began (one UPDATE: the fence and the advance), then COMMIT. The rows, built before the clock
    starts: for `FLOOR_TABLES`, `rows_at`, copied into the consumer's table
    (`copy_records_to_table`: binary COPY); for `FLOOR_STATEMENTS` (consumers that emit),
    `effects_at`, written by the kind's one statement (its tables' rows, the emitted events'
    outbox rows, and the deletion of the outbox rows Kafka acknowledged since the last batch).
    Then the same produce (acks=all) and Kafka offset commit as `same_work_loop`: what
    `effects_at` says the batch emitted (its keys, values and headers, onto the scratch topic),
    else `per_record` records of `size` bytes per record. Like the runtime, the next fetch runs
    while the batch's transaction does. In a scratch database of its own, migrated (same tables
    and indexes); the rows it leaves (once the last batch's outbox rows are deleted, after the
    clock) are compared with the consumer's by digest. Returns records/s, the CPU seconds of
    this process (the loop), PostgreSQL and the broker over the timed part, and the digest.
    `sync=False`: a diagnostic, not a floor (it drops the durability the contract relies on):
    the scratch database commits with `synchronous_commit = off` (no wait for the WAL's fsync),
    which shows what the commits' fsyncs cost. `side_by_side=N`: up to N partitions'
    transactions of a fetch at once, each on a connection of its own (as the runtime's
    `consumer_partition_concurrency`); 1 (the runtime's default): one after another.
    `decoding=True`: a diagnostic, the floor plus what no consumer can leave out, timed: every
    record decoded (`marketplace.events.decode`: the CloudEvent headers and the payload) and its
    rows and events made from that by the consumer's own code (`floor_row` for `FLOOR_TABLES`,
    `effects_maker` for the others), and those are what is written and sent. `codec=True`: a
    bound, the floor plus only the coding any consumer of these contracts does in Python, timed:
    every record decoded (`decode`, as above) and every event it emits encoded again with
    msgspec from its struct, with its CloudEvent headers (what `to_message` does, without the
    key's and topic's look-ups); those bytes are what is written and sent. The coding is done as
    each fetch returns, in slices of 50 records handing the loop back between them, so that it
    overlaps the transactions of the batches in hand (as the runtime's `prepare`). The
    decisions, the rows, the outbox rows' JSON headers and the structs themselves are made
    before the clock (`codec_structs`), so a consumer doing the same work in any other way
    cannot beat it by more than those leave out. For `FLOOR_COPIED` (the consumers that tell
    people), `copied`: the rows a run of the consumer wrote (`copied_rows`), dealt over the
    records (`spread`) and copied into their tables, each table's by one COPY a batch, on a
    scratch database set up by the same `prepare` (the partners, people and endpoints they
    refer to); with the durability the consumer's service commits with (the webhook inbox's
    `webhook_synchronous_commit`). `codec=True` then decodes each record, as above (they emit
    nothing); `decoding` is not offered (their rows are not made by a function of one record).
    `keep=True` (with `codec`, for `FLOOR_KEPT`): a bound, the bound that codes writing its rows
    through the consumer's own statement, which keeps the first of repeated ids, instead of
    COPY, which cannot: what any consumer fed by an at-least-once producer must do. For
    `FLOOR_COPIED`, each table's rows through `INSERT ... SELECT * FROM unnest(...) ON CONFLICT
    DO NOTHING` (`CopiedTable.keeping`)."""
    if (decoding or codec) and kind == "auditor":
        raise ValueError("the auditor stores records as they are: its floor decodes nothing")
    if decoding and codec:
        raise ValueError("one diagnostic at a time: decoding (with logic) or codec")
    statement = FLOOR_STATEMENTS.get(kind)
    given = (rows_at is not None, effects_at is not None, copied is not None)
    if given != (kind in FLOOR_TABLES, statement is not None, kind in FLOOR_COPIED):
        raise ValueError(
            f"{kind}'s floor: rows_at for FLOOR_TABLES, effects_at for FLOOR_STATEMENTS, copied"
            " for FLOOR_COPIED"
        )
    if keep and ((kind not in FLOOR_KEPT and kind not in FLOOR_COPIED) or not codec):
        raise ValueError("keep: with codec, for the kinds of FLOOR_KEPT and FLOOR_COPIED only")
    kept_sql, kept_bind = FLOOR_KEPT[kind] if keep and kind in FLOOR_KEPT else ("", None)
    if decoding and copied is not None:
        raise ValueError(f"{kind}'s rows are not made record by record: no decoding diagnostic")
    table, names = FLOOR_TABLES.get(kind, ("", ()))
    total = sum(end[p] - start[p] for p in start)
    async with scratch_database(settings, "bench_floor") as scratch:
        if not sync:  # the database's default for new sessions: no round trip a transaction
            name = urlsplit(scratch.dsn).path.lstrip("/")
            done = superuser_sql("postgres", f"ALTER DATABASE {name} SET synchronous_commit = off")
            if done.returncode != 0:
                raise RuntimeError(f"cannot set synchronous_commit: {done.stderr.strip()}")
        group = f"bench.floor.{kind}.{uuid.uuid4().hex[:6]}"
        conn = await connect(scratch)
        try:
            if prepare is not None:
                await prepare(conn, group)
            await start_group_at(conn, group, {(topic, p): o for p, o in start.items()})
        finally:
            await conn.close()
        pool = await create_pool(
            scratch, reset_sessions=False, synchronous_commit=durable(kind, settings)
        )
        # FLOOR_COPIED: the consumer's rows under this floor's group, dealt over the records.
        tables = [t.under(group) for t in copied or ()]
        keeping = [t.keeping() for t in tables]
        copied_at = spread(tables, start, end) if copied is not None else None
        consumer = make_consumer(settings, group)
        producer = make_producer(settings)
        await consumer.start()
        await producer.start()
        payload = b"x" * max(size, 1)
        stored = dict(start)
        # Outbox ids Kafka acknowledged, for the next batch's statement to delete.
        acknowledged: list[int] = []
        ahead: asyncio.Task[dict[TopicPartition, list[Any]]] | None = None
        try:
            parts = [TopicPartition(topic, p) for p in start]
            consumer.assign(parts)
            for tp in parts:
                consumer.seek(tp, start[tp.partition])
            for p in range(settings.topic_partitions):  # leaders elected before the clock
                await producer.send_and_wait(sink, b"warm-up", partition=p)
            async with pool.acquire() as warm:  # look-ups and statements cached per connection
                # The auditor's months' partitions once (the auditor asks per batch).
                if kind == "auditor" and rows_at:
                    await warm.execute(
                        "SELECT audit_ensure_partition(m) FROM unnest($1::timestamptz[]) AS m",
                        sorted({row[4] for row in rows_at.values()}),
                    )
                for t, sql in zip(tables, keeping, strict=True):
                    if keep:
                        await warm.execute(sql, *_columns([], len(t.columns)))
                    else:
                        await warm.copy_records_to_table(t.table, records=[], columns=t.columns)
                if kept_bind is not None:
                    await warm.execute(kept_sql, *kept_bind(group, []))
                elif table:
                    await warm.copy_records_to_table(table, records=[], columns=names)
                elif statement is not None:  # prepared (and cached) by a run that writes nothing
                    await warm.fetchval(statement, *floor_batch(kind, group, topic, 0, [], []))

            gate = asyncio.Semaphore(side_by_side)
            decide = effects_maker(settings, kind) if effects_at is not None else None
            structs = codec_structs(effects_at) if codec and effects_at is not None else {}
            encode = _CODEC_ENCODER.encode
            # codec=True: each record's effects as coded ahead, by (partition, offset).
            coded: dict[tuple[int, int], FloorEffects] = {}

            def code(record: Any) -> None:
                """One record decoded, and its events encoded again (codec=True)."""
                decode(topic, record.value, record.headers)
                if effects_at is None:
                    return
                at = (record.partition, record.offset)
                made = effects_at.get(at)
                if made is None:  # past the range's end: not applied
                    return
                values = [(encode(d.event), d.envelope.headers()) for d in structs[at]]
                outbox = tuple(
                    (t, k, v, h) for (t, k, _, h), (v, _) in zip(made.outbox, values, strict=True)
                )
                sends = tuple(
                    (k, v, list(h)) for (k, _, _), (v, h) in zip(made.sent, values, strict=True)
                )
                coded[at] = FloorEffects(made.rows, made.state, outbox, sends, made.timers)

            async def fetched() -> dict[TopicPartition, list[Any]]:
                batches: dict[TopicPartition, list[Any]] = await consumer.getmany(
                    timeout_ms=settings.consumer_poll_ms, max_records=settings.consumer_max_batch
                )
                if codec:  # as the runtime's `prepare`: in slices, while the batches in hand wait
                    for records in batches.values():
                        for start in range(0, len(records), _CODEC_SLICE):
                            await asyncio.sleep(0)
                            for record in records[start : start + _CODEC_SLICE]:
                                code(record)
                return batches

            def fetch() -> asyncio.Task[dict[TopicPartition, list[Any]]]:
                return asyncio.create_task(fetched())

            # What each partition's batch of the fetch in hand emitted, and its outbox ids.
            sent: dict[TopicPartition, list[tuple[bytes | None, bytes, list[Any]]]] = {}
            written: list[int] = []

            async def apply(tp: TopicPartition, mine: list[Any]) -> None:
                next_offset = mine[-1].offset + 1
                rows: list[tuple[Any, ...]] = []
                effects: list[FloorEffects] = []
                published: list[int] = []
                bound: list[Any] = []
                ids: list[int] = []
                decoded = [decode(topic, r.value, r.headers) for r in mine] if decoding else []
                if effects_at is not None:
                    if decide is not None and decoding:
                        effects = [decide(tp.partition, d) for d in decoded]
                    elif codec:  # coded as it was fetched (`fetched`)
                        effects = [coded.pop((tp.partition, r.offset)) for r in mine]
                    else:
                        effects = [effects_at[(tp.partition, r.offset)] for r in mine]
                    published = acknowledged[:]  # deleted by this transaction, if it commits
                    del acknowledged[:]
                    bound = floor_batch(kind, group, topic, tp.partition, effects, published)
                elif rows_at is not None:
                    if decoding:
                        rows = [floor_row(kind, d) for d in decoded]
                    else:
                        rows = [rows_at[(tp.partition, r.offset)] for r in mine]
                dealt: list[list[tuple[Any, ...]]] = [[] for _ in tables]
                if copied_at is not None:
                    for r in mine:
                        for index, row in copied_at[(tp.partition, r.offset)]:
                            dealt[index].append(row)
                try:
                    async with gate, pool.acquire() as c, c.transaction():
                        if statement is not None:
                            ids = await c.fetchval(statement, *bound)
                        elif kept_bind is not None:
                            await c.execute(kept_sql, *kept_bind(group, rows))
                        elif copied_at is not None:
                            for t, sql, these in zip(tables, keeping, dealt, strict=True):
                                if these and keep:
                                    await c.execute(sql, *_columns(these, len(t.columns)))
                                elif these:
                                    await c.copy_records_to_table(
                                        t.table, records=these, columns=t.columns
                                    )
                        else:
                            await c.copy_records_to_table(table, records=rows, columns=names)
                        moved = await c.execute(
                            _FLOOR_ADVANCE,
                            group,
                            topic,
                            tp.partition,
                            stored[tp.partition],
                            next_offset,
                        )
                        if moved != "UPDATE 1":
                            raise RuntimeError(f"floor fenced off at {tp}: {moved}")
                except BaseException:
                    acknowledged.extend(published)
                    raise
                stored[tp.partition] = next_offset
                written.extend(ids)
                if effects_at is not None:
                    sent[tp] = [m for e in effects for m in e.sent]

            seen, owed, batches_done = 0, 0.0, 0
            tune_gc(settings)  # as the services run (see `same_work_loop`)
            before = cpu.snapshot()
            t0 = time.perf_counter()
            ahead = fetch()
            while seen < total:
                batches = await ahead
                ahead = fetch()
                offsets: dict[TopicPartition, int] = {}
                pending = []
                handled = [
                    (tp, mine)
                    for tp, records in batches.items()
                    if (mine := [r for r in records if r.offset < end[tp.partition]])
                ]
                if side_by_side > 1:  # each partition's transaction on a connection of its own
                    await asyncio.gather(*(apply(tp, mine) for tp, mine in handled))
                else:
                    for tp, mine in handled:
                        await apply(tp, mine)
                for tp, mine in handled:
                    batches_done += 1
                    seen += len(mine)
                    offsets[tp] = stored[tp.partition]
                    if effects_at is not None:  # what the batch emitted, as it emitted it
                        for key, value, headers in sent.pop(tp):
                            pending.append(
                                await producer.send(sink, value, key=key, headers=headers)
                            )
                        continue
                    owed += per_record * len(mine)
                    while owed >= 1:
                        owed -= 1
                        pending.append(await producer.send(sink, payload, key=mine[-1].key))
                if pending:
                    await asyncio.gather(*pending)
                acknowledged.extend(written)  # published: the next batches delete their rows
                written.clear()
                if offsets:
                    await consumer.commit(offsets)
            elapsed = time.perf_counter() - t0
            after = cpu.snapshot()
            if acknowledged:  # the last batches' rows, as the consumer deletes them on its stop
                async with pool.acquire() as c:
                    await c.execute("DELETE FROM outbox WHERE id = ANY($1::bigint[])", acknowledged)
        finally:
            if ahead is not None:
                ahead.cancel()
                await asyncio.gather(ahead, return_exceptions=True)
            await consumer.stop()
            await producer.stop()
            await pool.close()
        conn = await connect(scratch)
        try:
            digest = await read_model_digest(conn, FLOOR_DIGESTED[kind])
        finally:
            await conn.close()
    spent = cpu.between(before, after)
    return {
        "records_per_s": total / elapsed,
        "batches": batches_done,
        "floor_process_cpu_s": spent.pop("load_generator_cpu_s"),
        **spent,
        "read_model": digest,
    }


def kafka_tools(settings: Settings, topic: str, count: int, size: int) -> dict[str, float]:
    """Kafka's own performance tools on a scratch topic: records/s produced and consumed."""
    libs = settings.local_dir / "kafka" / "libs"
    java = [
        "java",
        "-cp",
        f"{libs}/*",
        f"-Dlog4j2.configurationFile={ROOT}/infra/kafka/log4j2.properties",
        f"-Dkafka.logs.dir={settings.local_dir / 'kafka' / 'logs'}",
    ]
    produced = subprocess.run(
        [
            *java,
            "org.apache.kafka.tools.ProducerPerformance",
            "--topic",
            topic,
            "--num-records",
            str(count),
            "--record-size",
            str(size),
            "--throughput",
            "-1",
            "--producer-props",
            f"bootstrap.servers={settings.kafka_servers}",
            "acks=all",
            "enable.idempotence=true",
            "linger.ms=5",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
    ).stdout
    m = re.search(r"([\d.]+) records/sec", produced.strip().splitlines()[-1])
    consumed = subprocess.run(
        [
            *java,
            "org.apache.kafka.tools.ConsumerPerformance",
            "--bootstrap-server",
            settings.kafka_servers,
            "--topic",
            topic,
            "--messages",
            str(count),
            "--timeout",
            "60000",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
    ).stdout
    # The CSV line: start, end, MB consumed, MB/s, records consumed, records/s, ...
    row = consumed.strip().splitlines()[-1].split(",")
    return {
        "kafka-producer-perf": float(m.group(1)) if m else 0.0,
        "kafka-consumer-perf": float(row[5]),
    }


async def one_consumer(
    settings: Settings,
    kind: str,
    instances: int,
    start: dict[int, int],
    end: dict[int, int],
    measured: str = LISTINGS,
    tree: Path | None = None,
    env_overrides: dict[str, str] | None = None,
    *,
    digest: bool = False,
    digest_tables: tuple[str, ...] = PROJECTED_TABLES,
    topics: list[str] | None = None,
    prepare: Callable[[Any, str], Awaitable[None]] | None = None,
    profile_to: Path | None = None,
    capture: list[CopiedTable] | None = None,
) -> dict[str, Any]:
    """Records per second `instances` processes of `kind` apply the range of `measured` at
    (its other topics start at their current ends), with the events they emitted and the CPU
    seconds of each process over the run. `tree`: run the workers from another checkout of
    the project (the same benchmark on an earlier version, in the same run). `topics`: the
    topics the workers read instead of the consumer's own (copies of them); `prepare(conn,
    group)`: called on the scratch database before the workers start (a state to start from);
    `profile_to`: the workers run under cProfile, each writing its statistics to this path
    (suffixed with its number) when it stops; `capture`: filled with the rows the run left in
    `kind`'s tables of `FLOOR_COPIED` (for its floor)."""
    total = sum(end[p] - start[p] for p in start)
    async with scratch_database(settings, "bench_consumers") as scratch:
        group = f"bench.{kind}.{uuid.uuid4().hex[:6]}"
        from loadtests.consumer_worker import consumer as build

        own, _ = build(kind, group, scratch)
        topics = topics or own
        conn = await connect(scratch)
        try:
            if prepare is not None:
                await prepare(conn, group)
            for topic in topics:
                ends = start if topic == measured else await _ends(settings, topic)
                await start_group_at(conn, group, {(topic, p): o for p, o in ends.items()})
            env = {
                **os.environ,
                "MARKETPLACE_DATABASE_URL": scratch.dsn,
                "MARKETPLACE_LOG_LEVEL": "warning",
            }
            if tree is not None:
                env["PYTHONPATH"] = str(tree)
            env.update(env_overrides or {})
            workers = [
                await asyncio.create_subprocess_exec(
                    sys.executable,
                    *(["-m", "cProfile", "-o", f"{profile_to}.{n}"] if profile_to else []),
                    "-m",
                    "loadtests.consumer_worker",
                    kind,
                    group,
                    *([",".join(topics)] if topics != own else []),
                    env=env,
                    cwd=tree,
                    stdout=asyncio.subprocess.PIPE,
                )
                for n in range(instances)
            ]
            before = cpu.snapshot()
            started = time.perf_counter()
            worker_cpu: list[float] = []
            at_first: list[float] = []
            measured_records = 0
            try:
                first: tuple[float, int] | None = None
                deadline = time.monotonic() + 600
                while True:
                    rows = await conn.fetch(
                        "SELECT partition, next_offset FROM consumer_offsets"
                        " WHERE group_id = $1 AND topic = $2",
                        group,
                        measured,
                    )
                    done = sum(
                        min(r["next_offset"], end[r["partition"]]) - start[r["partition"]]
                        for r in rows
                    )
                    now = time.perf_counter()
                    if first is None and done > 0:
                        first = (now, done)
                        # The workers' CPU from here on is what the measured records cost
                        # (without their start and their first batch).
                        at_first = [cpu.process_seconds(w.pid) for w in workers]
                    if done >= total and first is not None:
                        rate = (total - first[1]) / max(now - first[0], 1e-6)
                        if first[1] >= total:
                            # All of it applied between two looks (a tiny workload): the rate
                            # from the workers' start instead, their start-up included (a lower
                            # bound), rather than none.
                            rate = total / max(now - started, 1e-6)
                        after = cpu.snapshot()
                        worker_cpu = [cpu.process_seconds(w.pid) for w in workers]
                        measured_records = total - first[1]
                        break
                    if time.monotonic() > deadline or any(
                        w.returncode is not None for w in workers
                    ):
                        raise RuntimeError(f"{kind}: stopped at {done}/{total} records")
                    await asyncio.sleep(0.05)
            finally:
                for w in workers:
                    if w.returncode is None:
                        w.send_signal(signal.SIGTERM)
                said: list[dict[str, Any]] = []
                for w in workers:
                    try:
                        out, _ = await asyncio.wait_for(w.communicate(), 30)
                        lines = out.decode().strip().splitlines()
                        if lines and lines[-1].startswith("{"):
                            said.append(json.loads(lines[-1]))
                    except TimeoutError:
                        w.kill()
                        await w.wait()
            emitted = sum(x["emitted"] for x in said) if len(said) == len(workers) else None
            if capture is not None:
                capture.extend(await copied_rows(conn, FLOOR_COPIED[kind]))
            return {
                "records_per_s": rate,
                "emitted": emitted,
                "worker_cpu_s": [round(c, 3) for c in worker_cpu],
                # CPU seconds of the workers over the records the rate counts, and how many.
                "worker_cpu_measured_s": [
                    round(c - a, 3) for c, a in zip(worker_cpu, at_first, strict=True)
                ],
                "records_measured": measured_records,
                "batches": sum(x["batches"] for x in said) if len(said) == len(workers) else None,
                **cpu.between(before, after),
                **({"read_model": await read_model_digest(conn, digest_tables)} if digest else {}),
            }
        finally:
            await conn.close()


async def commit_group_at(
    settings: Settings, group: str, offsets: dict[str, dict[int, int]]
) -> None:
    """Commits `offsets` (topic -> partition -> offset) to Kafka as `group`'s positions, so a
    consumer that keeps its offsets in Kafka only starts there."""
    consumer = make_consumer(settings, group)
    await consumer.start()
    try:
        parts = {TopicPartition(t, p): o for t, ps in offsets.items() for p, o in ps.items()}
        consumer.assign(list(parts))
        await consumer.commit(parts)
    finally:
        await consumer.stop()


async def one_peer(
    settings: Settings, mode: str, start: dict[int, int], end: dict[int, int]
) -> dict[str, Any]:
    """The FastStream peer of the projector (loadtests/peer_faststream.py in `mode`) applying
    the range of market.listings from an empty read model in a scratch database: records per
    second from its first offset commit to its last (its offsets live in Kafka only; in the
    "default" mode, which commits on a timer, from its first listing row to the last: the
    workload's records each make one), the CPU seconds of each process, its settings and the
    rows it left."""
    from consumers.projector import TOPICS as PROJECTED

    total = sum(end[p] - start[p] for p in start)
    async with scratch_database(settings, "bench_peer") as scratch:
        group = f"bench.peer-{mode}.{uuid.uuid4().hex[:6]}"
        positions = {t: (start if t == LISTINGS else await _ends(settings, t)) for t in PROJECTED}
        await commit_group_at(settings, group, positions)
        env = {
            **os.environ,
            "MARKETPLACE_DATABASE_URL": scratch.dsn,
            "MARKETPLACE_LOG_LEVEL": "warning",
        }
        worker = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "loadtests.peer_faststream",
            group,
            "--mode",
            mode,
            env=env,
            stdout=asyncio.subprocess.PIPE,
        )
        admin = make_admin(settings)
        await admin.start()
        conn = await connect(scratch)
        before = cpu.snapshot()
        started = time.perf_counter()
        said: dict[str, Any] = {}
        try:
            first: tuple[float, int] | None = None
            deadline = time.monotonic() + 600
            parts = [TopicPartition(LISTINGS, p) for p in start]
            while True:
                if mode == "default":
                    done = await conn.fetchval("SELECT count(*) FROM listings")
                else:
                    committed = await admin.list_consumer_group_offsets(group, partitions=parts)
                    done = sum(
                        min(max(committed[tp].offset, start[tp.partition]), end[tp.partition])
                        - start[tp.partition]
                        for tp in parts
                        if tp in committed
                    )
                now = time.perf_counter()
                if first is None and done > 0:
                    first = (now, done)
                if done >= total and first is not None:
                    rate = (total - first[1]) / max(now - first[0], 1e-6)
                    if first[1] >= total:  # as for our consumers: from the start instead
                        rate = total / max(now - started, 1e-6)
                    after = cpu.snapshot()
                    worker_cpu = cpu.process_seconds(worker.pid)
                    break
                if time.monotonic() > deadline or worker.returncode is not None:
                    raise RuntimeError(f"peer {mode}: stopped at {done}/{total} records")
                await asyncio.sleep(0.05)
        finally:
            await admin.close()
            if worker.returncode is None:
                worker.send_signal(signal.SIGTERM)
            try:
                out, _ = await asyncio.wait_for(worker.communicate(), 30)
                lines = out.decode().strip().splitlines()
                if lines and lines[-1].startswith("{"):
                    said = json.loads(lines[-1])
            except TimeoutError:
                worker.kill()
                await worker.wait()
            rows = await read_model_digest(conn)
            await conn.close()
        return {
            "records_per_s": rate,
            "emitted": 0,
            "worker_cpu_s": [round(worker_cpu, 3)],
            **cpu.between(before, after),
            "transactions": said.get("transactions"),
            "settings": said.get("settings"),
            "read_model": rows,
        }


def checkout(commit_ish: str) -> Path:
    """A detached worktree of `commit_ish` under .local/bench-trees/ (git-ignored), reused."""
    root = Path(__file__).resolve().parent.parent
    sha = subprocess.run(
        ["git", "-C", str(root), "rev-parse", "--verify", f"{commit_ish}^{{commit}}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    tree = root / ".local" / "bench-trees" / sha[:12]
    if not tree.exists():
        subprocess.run(
            ["git", "-C", str(root), "worktree", "add", "--detach", str(tree), sha],
            check=True,
            capture_output=True,
        )
    return tree


def consumer_settings(settings: Settings) -> dict[str, Any]:
    """The settings the consumers (and the same-work loop) ran with, for the report."""
    return {
        "consumer_max_batch": settings.consumer_max_batch,
        "consumer_poll_ms": settings.consumer_poll_ms,
        "consumer_fetch_max_wait_ms": settings.consumer_fetch_max_wait_ms,
        "consumer_fetch_min_bytes": settings.consumer_fetch_min_bytes,
        "consumer_partition_concurrency": settings.consumer_partition_concurrency,
        "consumer_session_timeout_ms": settings.consumer_session_timeout_ms,
        "isolation_level": "read_committed",
        "producer": "idempotent, acks=all",
        "event_loop": settings.event_loop,
        "topic_partitions": settings.topic_partitions,
        "kafka": settings.kafka_servers,
        "postgres_port": settings.pg_port,
    }


def baseline_settings(settings: Settings) -> dict[str, dict[str, Any]]:
    """Each baseline's settings, to read next to the consumers' (issue #18, target 5)."""
    return {
        "aiokafka-consume": {"max_poll_records": 2000, "group": None, "commit": "none"},
        "aiokafka-consume-produce": {
            "max_poll_records": 2000,
            "producer": "idempotent, acks=all, linger_ms=20",
            "commit": "none",
        },
        "same-work": {
            "max_poll_records": settings.consumer_max_batch,
            "poll_ms": settings.consumer_poll_ms,
            "fetch_max_wait_ms": settings.consumer_fetch_max_wait_ms,
            "producer": "idempotent, acks=all (the consumers' producer settings)",
            "commit": "Kafka offsets after each batch's acknowledgements",
        },
        "kafka-producer-perf": {"acks": "all", "enable.idempotence": True, "linger.ms": 5},
        "kafka-consumer-perf": {"defaults": "Kafka's ConsumerPerformance defaults"},
    }


async def measure(args: argparse.Namespace) -> dict[str, Any]:
    settings = Settings.from_env()
    at_start = machine()
    statements = pgstats.reset()
    print(f"pg_stat_statements: {statements['note']}", flush=True)
    messages = events(args.events, args.seed)
    size = sum(len(m.value) for m in messages) // max(len(messages), 1)
    start, end = await produce(settings, messages)
    print(f"workload: {len(messages):,} listings, mean {size} bytes, on {LISTINGS}", flush=True)
    # Scratch topics (the broker never creates topics by itself).
    sink, raw = f"bench.sink.{uuid.uuid4().hex[:8]}", f"bench.raw.{uuid.uuid4().hex[:8]}"
    await ensure_topics(
        settings,
        [TopicSpec(t, key="-", purpose="benchmark") for t in (sink, raw)],
        partitions=settings.topic_partitions,
        replication=1,
    )
    baselines = {
        "aiokafka-consume": await bare_loop(settings, start, end, None),
        "aiokafka-consume-produce": await bare_loop(settings, start, end, sink),
        **await asyncio.to_thread(kafka_tools, settings, raw, len(messages), size),
    }
    for name, rate in baselines.items():
        print(f"baseline {name:<26} {rate:>10,.0f} records/s", flush=True)
    rows = []
    trees: list[tuple[str, Path | None, dict[str, str]]] = [("current", None, {})]
    for variant in args.variant:  # LABEL:NAME=VALUE[,NAME=VALUE]: this code, other settings
        label, _, assignments = variant.partition(":")
        trees.append((label, None, dict(a.split("=", 1) for a in assignments.split(","))))
    if args.compare:
        trees.append((args.compare[:12], checkout(args.compare), {}))
    ranges: dict[str, tuple[dict[int, int], dict[int, int]]] = {LISTINGS: (start, end)}
    profiles: dict[str, Any] = {}
    if "auctioneer" in args.consumers:
        jobs = job_events(max(args.events // 5, 1), args.seed)
        ranges[JOBS] = await produce(settings, jobs, JOBS)
        print(f"workload: {len(jobs):,} jobs and quotes on {JOBS}", flush=True)
    prepares: dict[str, Callable[[Any, str], Awaitable[None]]] = {}
    subscribers = subscribers_of(args.seed)  # the deal rooms' and the inboxes' scratch state
    types_of: dict[str, dict[str, int]] = {}
    if "deals" in args.consumers:
        rooms = deal_events(args.events, args.seed)
        ranges[DEALS] = await produce(settings, rooms, DEALS)
        print(f"workload: {len(rooms):,} messages and receipts on {DEALS}", flush=True)
        prepares["deals"] = subscribers
    later = ("notifier", *NOTIFIED)  # on the matcher's proposals, or the notifier's notices
    order = [k for k in args.consumers if k not in later]
    if set(later) & set(args.consumers):
        proposals_from = await _ends(settings, MATCHES)
        if "matcher" not in order:  # the notifier's workload is the matcher's proposals
            await one_consumer(settings, "matcher", 1, start, end)
        order += [name for name in later if name in args.consumers]
    for kind in order:
        topic = TOPIC_OF.get(kind, LISTINGS)
        if kind in later and MATCHES not in ranges:
            await asyncio.sleep(2)  # the last matcher's outbox is published
            ranges[MATCHES] = (proposals_from, await _ends(settings, MATCHES))
            count = sum(ranges[MATCHES][1][p] - proposals_from[p] for p in proposals_from)
            print(f"workload: {count:,} records on {MATCHES} from the matcher runs", flush=True)
        if kind in NOTIFIED and NOTIFICATIONS not in ranges:
            # One run of the notifier on the proposals, apart from any measured one: what it
            # notified is the inboxes' workload; its parties are the subscribers.
            notices_from = await _ends(settings, NOTIFICATIONS)
            await one_consumer(settings, "notifier", 1, *ranges[MATCHES], MATCHES)
            await asyncio.sleep(2)  # its outbox is published
            ranges[NOTIFICATIONS] = (notices_from, await _ends(settings, NOTIFICATIONS))
            count = sum(ranges[NOTIFICATIONS][1][p] - notices_from[p] for p in notices_from)
            print(f"workload: {count:,} notifications on {NOTIFICATIONS}", flush=True)
            prepares.update(dict.fromkeys(NOTIFIED, subscribers))
        first, last = ranges[topic]
        # What the workload holds, by event type, for the consumers reported by their tables
        # (read once per topic: the inboxes share theirs).
        if kind in FLOOR_COPIED and topic not in types_of:
            types_of[topic] = await workload_types(settings, topic, first, last)
        types = types_of.get(topic, {}) if kind in FLOOR_COPIED else {}
        records = sum(last[p] - first[p] for p in first)
        runs: dict[tuple[str, int], list[dict[str, Any]]] = {}
        same_work: list[float] = []
        same_work_cpu: list[dict[str, float]] = []
        floors: list[dict[str, Any]] = []
        nosync: list[dict[str, Any]] = []  # --floor-nosync: the floor without the fsync wait
        decoding: list[dict[str, Any]] = []  # --floor-decode: the floor plus decoding, timed
        coding: list[dict[str, Any]] = []  # --floor-codec: the floor plus decoding and encoding
        keeping: list[dict[str, Any]] = []  # --floor-keep: that through the keeping statement
        wide: list[dict[str, Any]] = []  # --floor-side-by-side N: partitions at once
        peers = args.peer if kind == "projector" else []
        # What the floor writes (and emits), built before any clock starts.
        floor_at: dict[tuple[int, int], tuple[Any, ...]] | None = None
        effects_at: dict[tuple[int, int], FloorEffects] | None = None
        if kind in FLOOR_TABLES and not args.no_floor:
            floor_at = await floor_rows(settings, kind, topic, first, last)
        elif kind in FLOOR_STATEMENTS and not args.no_floor:
            effects_at = await floor_effects(settings, kind, topic, first, last)
        # FLOOR_COPIED: the rows the first run of the current code wrote.
        wants_copy = kind in FLOOR_COPIED and not args.no_floor
        copied: list[CopiedTable] | None = [] if wants_copy else None
        floored = bool(floor_at or effects_at or wants_copy)
        for n in range(args.repeat):  # interleaved, so the machine's swings fall on all alike
            # Each round starts with the next tree, so none always runs first (or right after
            # the same one).
            turn = trees[n % len(trees) :] + trees[: n % len(trees)]
            for k in args.instances:
                for label, tree, overrides in turn:
                    run = await one_consumer(
                        settings,
                        kind,
                        k,
                        first,
                        last,
                        topic,
                        tree,
                        overrides,
                        digest=bool(peers or floored or kind in FLOOR_COPIED)
                        and label == "current",
                        digest_tables=FLOOR_DIGESTED.get(kind, PROJECTED_TABLES),
                        prepare=prepares.get(kind),
                        # The first run of the current code's rows, for the floor.
                        capture=copied if copied == [] and label == "current" else None,
                    )
                    runs.setdefault((label, k), []).append(run)
                    print(
                        f"{kind:<10} x{k} {label:<8} {run['records_per_s']:>10,.0f} records/s"
                        f"  emitted {run['emitted']}  cpu {run['worker_cpu_s']}",
                        flush=True,
                    )
            for mode in peers:  # the FastStream peer, one instance, in the same rounds
                run = await one_peer(settings, mode, first, last)
                runs.setdefault((f"faststream-{mode}", 1), []).append(run)
                print(
                    f"{kind:<10} x1 faststream-{mode} {run['records_per_s']:>10,.0f} records/s"
                    f"  transactions {run['transactions']}  cpu {run['worker_cpu_s']}",
                    flush=True,
                )
            # The same Kafka work as the consumer (its batch size, what it emitted, acks=all,
            # offsets committed), without its logic and its database: the target's baseline.
            emitted = [
                r["emitted"]
                for (label, _k), rs in runs.items()
                for r in rs
                if label == "current" and r["emitted"] is not None
            ]
            per_record = (statistics.median(emitted) / records) if emitted else 0.0
            before = cpu.snapshot()
            rate = await same_work_loop(
                settings, topic, first, last, sink, per_record=per_record, size=size
            )
            spent = cpu.between(before, cpu.snapshot())
            spent["loop_process_cpu_s"] = spent.pop("load_generator_cpu_s")
            same_work.append(rate)
            same_work_cpu.append(spent)
            print(
                f"{kind:<10} same-work baseline {rate:>10,.0f} records/s  cpu {spent}", flush=True
            )
            # The same Kafka work plus the least PostgreSQL work of its exactly-once contract
            # (the rows and the offset row, one transaction a batch), and the diagnostics asked
            # for: partitions' transactions side by side, decoding too, no fsync wait at commit.
            diagnostics: list[tuple[bool, str, list[dict[str, Any]], dict[str, Any]]] = [
                (True, "same-work+pg-floor", floors, {}),
                (
                    args.floor_side_by_side > 1,
                    f"floor x{args.floor_side_by_side} side by side",
                    wide,
                    {"side_by_side": args.floor_side_by_side},
                ),
                (
                    args.floor_decode and kind != "auditor" and kind not in FLOOR_COPIED,
                    "floor with decoding",
                    decoding,
                    {"decoding": True},
                ),
                (
                    args.floor_codec and kind != "auditor",
                    "floor with coding",
                    coding,
                    {"codec": True},
                ),
                (
                    args.floor_keep and (kind in FLOOR_KEPT or kind in FLOOR_COPIED),
                    "floor with coding, keeping",
                    keeping,
                    {"codec": True, "keep": True},
                ),
                (args.floor_nosync, "floor, no fsync wait", nosync, {"sync": False}),
            ]
            for wanted, label, into, options in diagnostics:
                if not (floored and wanted):
                    continue
                floor = await pg_floor_loop(
                    settings,
                    kind,
                    topic,
                    first,
                    last,
                    sink,
                    per_record=per_record,
                    size=size,
                    rows_at=floor_at,
                    effects_at=effects_at,
                    copied=copied,
                    prepare=prepares.get(kind),
                    **options,
                )
                into.append(floor)
                print(
                    f"{kind:<10} {label} {floor['records_per_s']:>10,.0f} records/s"
                    f"  cpu {floor['floor_process_cpu_s']} pg {floor['postgres_cpu_s']}",
                    flush=True,
                )
        if args.profile:
            # One more run of the current code under cProfile, apart from the measured ones
            # (the profiler slows the worker down): where its time goes, per record.
            where = Path(tempfile.mkdtemp(prefix=f"bench-{kind}-")) / f"{kind}.prof"
            run = await one_consumer(
                settings, kind, 1, first, last, topic, prepare=prepares.get(kind), profile_to=where
            )
            profiles[kind] = profile_summary(Path(f"{where}.0"), records, run)
            print(f"{kind:<10} profile {where}.0 ({run['records_per_s']:,.0f} records/s)")
            for line in profiles[kind]["self"][:15]:
                print(
                    f"    {line['self_us_per_record']:>7.2f} us/record self"
                    f" {line['cumulative_us_per_record']:>8.2f} cumulative  {line['function']}",
                    flush=True,
                )
        baseline = statistics.median(same_work)
        for (label, k), samples in runs.items():
            rates = [r["records_per_s"] for r in samples]
            rows.append(
                {
                    "consumer": kind,
                    "code": label,
                    "instances": k,
                    "topic": topic,
                    "records": records,
                    "records_per_s": statistics.median(rates),
                    "samples_per_s": rates,
                    "same_work_baseline_per_s": baseline,
                    "same_work_samples_per_s": same_work,
                    "same_work_cpu": same_work_cpu,
                    "ratio_to_same_work": statistics.median(rates) / baseline,
                    "emitted_per_record": per_record,
                    **({"workload_types": types} if types else {}),
                    **floor_figures(samples, rates, same_work, floors, records),
                    **nosync_figures(nosync, same_work),
                    **nosync_figures(wide, same_work, "floor_side_by_side"),
                    **nosync_figures(decoding, same_work, "floor_decoding", samples),
                    **nosync_figures(coding, same_work, "floor_codec", samples),
                    **nosync_figures(keeping, same_work, "floor_keep", samples),
                    "runs": samples,
                }
            )
    peer_check = peer_comparison(rows)
    for line in peer_check.get("lines", []):
        print(line, flush=True)
    # The machine is shared: the bare loops again at the end, and each baseline is the better
    # of its two measurements (the ratios are then the conservative ones).
    first_pass = dict(baselines)
    again = {
        "aiokafka-consume": await bare_loop(settings, start, end, None),
        "aiokafka-consume-produce": await bare_loop(settings, start, end, sink),
    }
    for name, rate in again.items():
        baselines[name] = max(baselines[name], rate)
        print(f"baseline {name:<26} {rate:>10,.0f} records/s (at the end)", flush=True)
    for r in rows:
        rate = r["records_per_s"]
        r["ratio_to_aiokafka_consume"] = rate / baselines["aiokafka-consume"]
        r["ratio_to_aiokafka_consume_produce"] = rate / baselines["aiokafka-consume-produce"]
        r["ratio_to_kafka_consumer_perf"] = rate / baselines["kafka-consumer-perf"]
        print(
            f"{r['consumer']:<10} x{r['instances']} {r['code']:<8} {rate:>10,.0f} records/s  "
            f"({r['ratio_to_same_work']:.3f} of the same Kafka work, "
            f"{r['ratio_to_aiokafka_consume']:.3f} of the bare loop)",
            flush=True,
        )
        if "floor_per_s" in r:
            print(
                f"{r['consumer']:<10} x{r['instances']} {r['code']:<8} floor"
                f" {r['floor_per_s']:,.0f} records/s = {r['floor_over_same_work']:.3f} of the"
                f" same Kafka work; consumer / floor {r['ratio_to_floor']:.3f}; rows equal:"
                f" {r['floor_rows_equal']}; CPU us/record {r['cpu_us_per_record']}",
                flush=True,
            )
        if "floor_side_by_side_per_s" in r:
            print(
                f"{r['consumer']:<10} floor, partitions side by side"
                f" {r['floor_side_by_side_per_s']:,.0f} records/s; rounds / same-work loop"
                f" {[round(x, 3) for x in r['rounds_floor_side_by_side_over_same_work']]}",
                flush=True,
            )
        if "floor_decoding_per_s" in r:
            print(
                f"{r['consumer']:<10} floor with decoding {r['floor_decoding_per_s']:,.0f}"
                f" records/s; rounds / same-work loop"
                f" {[round(x, 3) for x in r['rounds_floor_decoding_over_same_work']]};"
                f" rows equal: {r['floor_decoding_rows_equal']}",
                flush=True,
            )
        if "floor_codec_per_s" in r:
            print(
                f"{r['consumer']:<10} floor with coding {r['floor_codec_per_s']:,.0f}"
                f" records/s; rounds / same-work loop"
                f" {[round(x, 3) for x in r['rounds_floor_codec_over_same_work']]};"
                f" rows equal: {r['floor_codec_rows_equal']}",
                flush=True,
            )
        if "floor_keep_per_s" in r:
            print(
                f"{r['consumer']:<10} floor with coding, keeping {r['floor_keep_per_s']:,.0f}"
                f" records/s; rounds / same-work loop"
                f" {[round(x, 3) for x in r['rounds_floor_keep_over_same_work']]};"
                f" rows equal: {r['floor_keep_rows_equal']}",
                flush=True,
            )
        if "floor_nosync_per_s" in r:
            print(
                f"{r['consumer']:<10} floor without the fsync wait {r['floor_nosync_per_s']:,.0f}"
                f" records/s; rounds / same-work loop"
                f" {[round(x, 3) for x in r['rounds_floor_nosync_over_same_work']]}",
                flush=True,
            )
    return {
        "events": len(messages),
        "mean_record_bytes": size,
        "seed": args.seed,
        "cores": os.cpu_count(),
        "commit": commit(),
        "machine_at_start": at_start,
        "machine_at_end": machine(),
        "settings": {
            "consumers": consumer_settings(settings),
            "baselines": baseline_settings(settings),
        },
        "pg_stat_statements": pgstats.top(),
        "peer": peer_check,
        "profiles": profiles,
        "baselines": baselines,
        "baselines_at_start": first_pass,
        "baselines_at_end": again,
        "consumers": rows,
        "scaling_over_one_instance": {
            f"{r['consumer']} x{r['instances']}": r["records_per_s"] / one["records_per_s"]
            for r in rows
            for one in rows
            if one["consumer"] == r["consumer"] and one["instances"] == 1 and r["instances"] > 1
        },
    }


def floor_figures(
    runs: list[dict[str, Any]],
    rates: list[float],
    same_work: list[float],
    floors: list[dict[str, Any]],
    records: int,
) -> dict[str, Any]:
    """A consumer's figures against its floor (`pg_floor_loop`), when it has one: the medians'
    ratios (consumer / same-work loop is `ratio_to_same_work`), the medians of each round's
    ratios (the runs of one round were minutes apart at most), CPU microseconds per record of
    each process (medians over the rounds; the consumer's worker over the records its rate
    counts), and whether every floor left the consumer's rows."""
    if not floors:
        return {}
    floor_rates = [f["records_per_s"] for f in floors]
    floor = statistics.median(floor_rates)
    per = 1e6 / max(records, 1)

    def median_us(samples: list[dict[str, Any]], key: str) -> float:
        values: list[float] = [s[key] for s in samples]
        return round(statistics.median(values) * per, 1)

    worker = [  # our consumers' runs (the FastStream peer's keep no measured CPU)
        sum(r["worker_cpu_measured_s"]) * 1e6 / max(r["records_measured"], 1)
        for r in runs
        if "worker_cpu_measured_s" in r
    ]
    digests = [r["read_model"] for r in runs if "read_model" in r]
    return {
        "floor_per_s": floor,
        "floor_samples_per_s": floor_rates,
        "floor_over_same_work": floor / statistics.median(same_work),
        "ratio_to_floor": statistics.median(rates) / floor,
        "rounds_floor_over_same_work": [
            f / w for f, w in zip(floor_rates, same_work, strict=False)
        ],
        "rounds_ratio_to_floor": [r / f for r, f in zip(rates, floor_rates, strict=False)],
        "cpu_us_per_record": {
            "consumer_worker": round(statistics.median(worker), 1) if worker else None,
            "consumer_postgres": median_us(runs, "postgres_cpu_s"),
            "consumer_broker": median_us(runs, "broker_cpu_s"),
            "floor_process": median_us(floors, "floor_process_cpu_s"),
            "floor_postgres": median_us(floors, "postgres_cpu_s"),
            "floor_broker": median_us(floors, "broker_cpu_s"),
        },
        # None: this version's runs kept no digest (only the current code's do).
        "floor_rows_equal": (
            all(f["read_model"] == digests[0] for f in floors)
            and all(d == digests[0] for d in digests)
        )
        if digests
        else None,
        "floor_runs": floors,
    }


def nosync_figures(
    runs: list[dict[str, Any]],
    same_work: list[float],
    name: str = "floor_nosync",
    consumer_runs: Sequence[dict[str, Any]] = (),
) -> dict[str, Any]:
    """A diagnostic floor's figures (`--floor-nosync`: without the fsync wait;
    `--floor-side-by-side`: partitions at once; `--floor-decode`: decoding too), against the
    same-work loop of its round; with `consumer_runs`, whether every run left the consumer's
    rows (by digest; None when those runs kept none)."""
    if not runs:
        return {}
    rates = [f["records_per_s"] for f in runs]
    digests = [r["read_model"] for r in consumer_runs if "read_model" in r]
    return {
        f"{name}_per_s": statistics.median(rates),
        f"rounds_{name}_over_same_work": [r / w for r, w in zip(rates, same_work, strict=False)],
        f"{name}_rows_equal": all(f["read_model"] == digests[0] for f in runs) if digests else None,
        f"{name}_runs": runs,
    }


def profile_summary(path: Path, records: int, run: dict[str, Any], top: int = 30) -> dict[str, Any]:
    """A worker's cProfile statistics per record of the workload: the functions that took the
    most time themselves (self) and with what they called (cumulative), in microseconds per
    record (the worker's start and stop included, so small workloads overstate it)."""
    found = pstats.Stats(str(path)).stats  # type: ignore[attr-defined]
    per = 1e6 / max(records, 1)

    def named(key: tuple[str, int, str]) -> str:
        file, line, func = key
        for marker in ("site-packages/", "/work/main/", str(ROOT) + "/"):
            file = file.split(marker, 1)[-1]
        return f"{file}:{line}({func})"

    def rows(index: int) -> list[dict[str, Any]]:
        ranked = sorted(found.items(), key=lambda kv: kv[1][index], reverse=True)[:top]
        return [
            {
                "function": named(key),
                "calls": value[1],
                "self_us_per_record": round(value[2] * per, 3),
                "cumulative_us_per_record": round(value[3] * per, 3),
            }
            for key, value in ranked
        ]

    total = sum(v[2] for v in found.values())
    return {
        "file": str(path),
        "records": records,
        "records_per_s_profiled": run["records_per_s"],
        "batches": run["batches"],
        "total_s": round(total, 3),
        "total_us_per_record": round(total * per, 2),
        "self": rows(2),
        "cumulative": rows(3),
    }


def peer_comparison(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Ours against the FastStream peer (issue #18, target 4): the ratio of the medians, and
    whether every run of either left the same rows in the read model."""
    ours = [r for r in rows if r["consumer"] == "projector" and r["code"] == "current"]
    ours = [r for r in ours if r["instances"] == 1]
    peers = [r for r in rows if r["code"].startswith("faststream-")]
    if not ours or not peers:
        return {}
    digests = [
        run["read_model"] for r in (*ours, *peers) for run in r["runs"] if "read_model" in run
    ]
    same = bool(digests) and all(d == digests[0] for d in digests)
    out: dict[str, Any] = {
        "ours_per_s": ours[0]["records_per_s"],
        "rows_equal": same,
        "read_model": digests[0] if digests else None,
        "ratios": {},
        "lines": [],
    }
    out["ratios_per_round"] = {}
    for peer in peers:
        if peer["records_per_s"] <= 0:  # a workload too small to see two points of progress
            continue
        ratio = ours[0]["records_per_s"] / peer["records_per_s"]
        out["ratios"][peer["code"]] = ratio
        # Each round's ours / peer: the two ran minutes apart at most, on the machine as it was.
        rounds = [
            a / b for a, b in zip(ours[0]["samples_per_s"], peer["samples_per_s"], strict=False)
        ]
        out["ratios_per_round"][peer["code"]] = {
            "each": rounds,
            "median": statistics.median(rounds) if rounds else None,
        }
        out["lines"].append(
            f"projector (exactly-once) / {peer['code']}: {ratio:.2f}x"
            f" ({ours[0]['records_per_s']:,.0f} / {peer['records_per_s']:,.0f} records/s,"
            f" median of the rounds' ratios {statistics.median(rounds):.2f}x);"
            f" same rows in every run: {same}"
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--events", type=int, default=20000)
    parser.add_argument("--instances", default="1,2")
    parser.add_argument(
        "--consumers", default="matcher,projector,auditor,analytics,auctioneer,notifier"
    )
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--repeat", type=int, default=1, help="runs per count (median)")
    parser.add_argument(
        "--variant",
        action="append",
        default=[],
        help="LABEL:MARKETPLACE_X=V[,...]: the current code under other settings, interleaved",
    )
    parser.add_argument(
        "--compare",
        default="",
        help="a git commit whose consumers run too, interleaved (an A/B in the same run)",
    )
    parser.add_argument(
        "--peer",
        default="",
        help="message,batch,default: also the projector's FastStream peer in these modes"
        " (loadtests/peer_faststream.py), interleaved with the projector's runs",
    )
    parser.add_argument(
        "--no-floor",
        action="store_true",
        help="leave out the same-work+pg-floor baselines (FLOOR_TABLES, FLOOR_STATEMENTS)",
    )
    parser.add_argument(
        "--floor-side-by-side",
        type=int,
        default=1,
        help="N > 1: a diagnostic next to each floor, the same floor with up to N partitions'"
        " transactions at once (as MARKETPLACE_CONSUMER_PARTITION_CONCURRENCY=N)",
    )
    parser.add_argument(
        "--floor-decode",
        action="store_true",
        help="a diagnostic next to each floor: the same floor also decoding every record (and"
        " building its row with the consumer's mapping) in the timed part (not the auditor)",
    )
    parser.add_argument(
        "--floor-codec",
        action="store_true",
        help="a bound next to each floor: the same floor also decoding every record and encoding"
        " every event it emits again (msgspec, CloudEvent headers) in the timed part, the least"
        " coding a consumer of these contracts does (not the auditor)",
    )
    parser.add_argument(
        "--floor-keep",
        action="store_true",
        help="a bound next to the floors of analytics, alerts and FLOOR_COPIED: the bound that"
        " codes, writing through a statement that takes repeated ids (FLOOR_KEPT: the consumer's"
        " own; FLOOR_COPIED: INSERT ... ON CONFLICT DO NOTHING) instead of COPY",
    )
    parser.add_argument(
        "--floor-nosync",
        action="store_true",
        help="a diagnostic next to each floor: the same floor committing with"
        " synchronous_commit = off (what the commits' fsyncs cost; not exactly-once's floor)",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="after the measured rounds, one more run of each consumer under cProfile (not in"
        " the medians): its costliest functions per record go into the report",
    )
    args = parser.parse_args()
    args.peer = [m for m in args.peer.split(",") if m]
    if set(args.peer) - set(PEER_MODES):
        parser.error(f"--peer: {args.peer} is not among {', '.join(PEER_MODES)}")
    args.instances = [int(x) for x in args.instances.split(",")]
    args.consumers = args.consumers.split(",")
    if args.peer and "projector" not in args.consumers:
        parser.error("--peer: the peer is the projector's, add projector to --consumers")
    unknown = set(args.consumers) - set(KINDS)
    if unknown:
        parser.error(f"unknown consumers {sorted(unknown)}: choose from {', '.join(KINDS)}")
    if (
        not 0 < args.events <= 1_000_000
        or not all(0 < k <= 6 for k in args.instances)
        or not 1 <= args.repeat <= 5
    ):
        parser.error("keep it bounded: events 1..1e6, instances 1..6 (6 partitions)")
    # On the services' event loop (uvloop unless MARKETPLACE_EVENT_LOOP says otherwise), so
    # that the baselines and floors run in this process as the consumers run in theirs. Before
    # stop 33 they ran on the standard library's loop, and a floor that decodes every record
    # (`--floor-decode`) ran slower than the consumer it bounds.
    result = event_loop.run(measure(args), Settings.from_env())
    table = [
        [
            name,
            "",
            f"{rate:,.0f}",
            "1.000"
            if name == "aiokafka-consume"
            else f"{rate / result['baselines']['aiokafka-consume']:.3f}",
        ]
        for name, rate in result["baselines"].items()
    ]
    produce_rate = result["baselines"]["aiokafka-consume-produce"]
    for row in table:
        row.append(f"{float(row[2].replace(',', '')) / produce_rate:.3f}")
    for row in table:
        row.append("")
    table += [
        [
            f"{r['consumer']} ({r['topic']}) {r['code']}",
            str(r["instances"]),
            f"{r['records_per_s']:,.0f}",
            f"{r['ratio_to_aiokafka_consume']:.3f}",
            f"{r['ratio_to_aiokafka_consume_produce']:.3f}",
            f"{r['ratio_to_same_work']:.3f} of {r['same_work_baseline_per_s']:,.0f}"
            + (f"; {r['ratio_to_floor']:.3f} of its floor" if "ratio_to_floor" in r else ""),
        ]
        for r in result["consumers"]
    ]
    table += [  # the floors (same-work+pg-floor), once per consumer
        [
            f"{r['consumer']} same-work+pg-floor",
            "",
            f"{r['floor_per_s']:,.0f}",
            f"{r['floor_per_s'] / result['baselines']['aiokafka-consume']:.3f}",
            f"{r['floor_per_s'] / produce_rate:.3f}",
            f"{r['floor_over_same_work']:.3f} of {r['same_work_baseline_per_s']:,.0f}",
        ]
        for r in result["consumers"]
        if "floor_per_s" in r and r["code"] == "current" and r["instances"] == 1
    ]
    paths = write_report(
        "consumers",
        title="Consumer throughput against Kafka's and aiokafka's baselines",
        summary=(
            f"{result['events']:,} listings of {result['mean_record_bytes']} bytes on "
            f"{result['cores']} cores (shared with other agents' test runs; load average "
            f"{result['machine_at_start']['load_1m']:.2f} at the start, "
            f"{result['machine_at_end']['load_1m']:.2f} at the end), commit {result['commit']}; "
            f"{result['pg_stat_statements']['note']}; "
            + " ".join(result["peer"].get("lines", []))
            + " "
            "consumers apply their topic's workload from an empty state (the auctioneer: "
            "jobs and quotes on logistics.jobs; the notifier: the matcher runs' proposals on "
            "market.matches). Ratios are to the baselines measured in the same run."
        ),
        data=result,
        headers=[
            "stage",
            "instances",
            "records/s",
            "ratio to bare aiokafka consume",
            "ratio to aiokafka consume-produce",
            "ratio to the same Kafka work (baseline records/s)",
        ],
        rows=table,
        figure=bar_chart(
            [(f"{r[0]} x{r[1]}" if r[1] else r[0], float(r[2].replace(",", ""))) for r in table],
            unit="records/s",
        ),
        extra=statements_table(result["pg_stat_statements"]),
    )
    print(f"report: {paths[0]} and {paths[1].name}")


if __name__ == "__main__":
    main()
