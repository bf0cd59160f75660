"""The matcher's I/O against its decisions (issue #18, target 2, first half): the real matcher
consumer and the pure core alone on the same event stream, interleaved.

    python -m loadtests.bench_matcher_io [--events 6000] [--book 10000] [--partitions 6]
        [--repeat 5] [--seed 7] [--profile] [--compare COMMIT]

The stream is the market simulator's mix as `loadtests/bench_matching.py --mix simulator` makes
it (`loadtests/simmix.py`: the simulator's offers, requests and withdrawals as the API publishes
them, and the partners' answers to the proposals), written as the `market.listings` records they
are (answers as MatchAccepted / MatchDeclined) and put on a copy of market.listings
(`schemas.topics.copy_name`, which carries its contract) with `--partitions` partitions on the
broker the settings name (give it a private one: loadtests/broker.sh). Each record goes to the
partition Kafka's default partitioner gives its key, and every partition has a book of its own,
as the matcher keeps them. Before the stream, each partition's book holds its share of `--book`
open listings of the simulator's posts, filed without deciding anything (as bench_matching grows
its book); the stream is generated once through the core from those books, so the partners
answer the proposals the core makes on them.

Each round runs, in turn (the order alternates between rounds):
- **core**: the stream through the pure core in this process, no I/O: for every record
  `to_command` and `decide` (`marketplace.translate.matching`: the command, `step`, the
  contracts and messages of the events) on its partition's book, the books filed afresh before
  the round. The records are decoded before the clock starts (decoding is the matcher's side;
  its cost alone is timed apart, once). Rate: records / wall seconds; CPU seconds of this
  process (time.process_time) beside it.
- **matcher**: the real matcher consumer (`loadtests/consumer_worker.py`, its own process) on
  the topic copy, from the same books (written into a scratch database with the matcher's own
  `replace_book`, which its `load` reads back), with PostgreSQL from the settings (give it a
  private one: loadtests/postgres.sh). Rate: records per second from its first commit to its
  last, as `bench_consumers` measures every consumer; CPU seconds of the worker, PostgreSQL and
  the broker.
Both must emit the same number of events (the check that they decided alike). The report gives
the medians, each round's matcher / core ratio and their median, the load average at the start
and the end, and the top statements of `pg_stat_statements`.

`--compare COMMIT`: each round also runs the matcher of an earlier commit (a git worktree under
.local/bench-trees/, as `bench_consumers --compare` makes it) on the same topic: its scratch
database migrated by that commit's migrations and its books written by that commit's own
`filled_books` and `replace_book` (in a process of its own in that tree), so that each version
reads the book in its own format. The order of the three sides rotates round by round; the
report adds each round's now / before ratio and the earlier matcher's rates and CPU; with
`--profile`, the earlier matcher is profiled too.

`--profile`: after the rounds, one more matcher run (not in the medians) under cProfile, with
`pg_stat_statements` reset once its books are written: where a batch's time goes, in the
worker's Python (decoding, the command and the core's step, the events' contracts, the book's
JSON, the timers, the outbox and offset statement, the runtime) and in PostgreSQL (each
statement's execution time per batch).
Writes loadtests/reports/matcher-io-<timestamp>.json and .html."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import gc
import os
import pstats
import statistics
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiokafka import TopicPartition

from loadtests import cpu, pgstats
from loadtests.bench_consumers import checkout, consumer_settings, one_consumer
from loadtests.bench_matching import Core
from loadtests.one_book import partition_of
from loadtests.report import bar_chart, commit, machine, statements_table, write_report
from loadtests.simmix import SimMix
from marketplace.core import book as core_book
from marketplace.core import matching as core_matching
from marketplace.core.book import Book
from marketplace.core.matching import Answer, MarketConfig, Post, Proposed
from marketplace.events import Decoded, decode, to_message
from marketplace.kafka import ensure_topics, make_consumer, make_producer
from marketplace.runtime.outbox import OutboxMessage
from marketplace.settings import Settings
from marketplace.translate.matching import decide, market_config, source_of, to_command
from schemas import listings as ls
from schemas.topics import LISTINGS, TopicSpec, by_name, copy_name

SOURCE = source_of("bench.matcher-io")


class _Recording(SimMix):
    """The simulator's mix, keeping the last contract event it made a command from."""

    last: Decoded | None = None

    def _decoded(self, event: Any, at_s: float, subject: str) -> Decoded:
        self.last = super()._decoded(event, at_s, subject)
        return self.last


def _message(mix: _Recording, command: Any, codes: dict[str, str]) -> OutboxMessage:
    """The market.listings record a command of the mix comes from."""
    if isinstance(command, Answer):
        answer: Any = ls.MatchAccepted if command.accept else ls.MatchDeclined
        event = answer(
            match_id=command.match_id,
            partner_id=command.partner,
            actor_id=command.partner,
            material_code=codes[command.match_id],
        )
        return to_message(
            event,
            event_id=command.event_id,
            source="/api",
            time=command.at,
            subject=command.match_id,
        )
    assert mix.last is not None
    e = mix.last.envelope
    return to_message(
        mix.last.event, event_id=e.id, source=e.source, time=e.time, subject=e.subject
    )


def filled_books(size: int, seed: int, partitions: int, config: MarketConfig) -> dict[int, Book]:
    """Each partition's share of `size` open listings of the simulator's posts, filed without
    deciding anything (the same every call)."""
    cores: dict[int, Core] = {}
    fill = _Recording(seed)
    filed = 0
    while filed < size:
        command = next(fill)
        if not isinstance(command, Post):
            continue
        key = _message(fill, command, {}).key
        assert key is not None
        p = partition_of(key, partitions)
        if p not in cores:
            cores[p] = Core("after", core_matching, core_book)
            cores[p].config = config
        cores[p].file(command)
        filed += 1
    return {p: c.book for p, c in cores.items()}


@dataclass
class Stream:
    messages: list[OutboxMessage]
    partitions: list[int]
    events_decided: int
    kinds: dict[str, int]
    open_at_start: int
    open_at_end: int


def make_stream(events: int, seed: int, book: int, partitions: int, config: MarketConfig) -> Stream:
    """`events` records of the simulator's mix, decided once through the core from the filled
    books so that the partners answer the proposals made."""
    books = filled_books(book, seed, partitions, config)
    at_start = sum(len(b.listings) for b in books.values())
    mix = _Recording(seed + 1)
    codes: dict[str, str] = {}
    messages: list[OutboxMessage] = []
    where: list[int] = []
    decided = 0
    while len(messages) < events:
        mix.last = None
        command = next(mix)
        message = _message(mix, command, codes)
        assert message.key is not None
        p = partition_of(message.key, partitions)
        decoded = decode(LISTINGS, message.value, message.headers)
        held = books.setdefault(p, Book())
        again = to_command(decoded, held)
        if again is None:
            continue
        held, out = decide(held, again, decoded, config, SOURCE)
        held.dirty.clear()
        books[p] = held
        decided += len(out)
        made = [e for e, _ in out]
        for e in made:
            if isinstance(e, Proposed):
                codes[e.proposal.match_id] = e.proposal.code
        mix.observe(made)
        messages.append(message)
        where.append(p)
    return Stream(
        messages,
        where,
        decided,
        dict(mix.counts),
        at_start,
        sum(len(b.listings) for b in books.values()),
    )


def core_round(
    stream: Stream, decoded: list[Decoded], seed: int, book: int, parts: int, config: MarketConfig
) -> dict[str, Any]:
    """The stream through the pure core (translate + step), from freshly filed books."""
    books = filled_books(book, seed, parts, config)
    gc.collect()
    emitted = 0
    wall, spent = time.perf_counter(), time.process_time()
    for p, d in zip(stream.partitions, decoded, strict=True):
        held = books.get(p) or Book()
        command = to_command(d, held)
        if command is None:
            continue
        held, out = decide(held, command, d, config, SOURCE)
        held.dirty.clear()
        books[p] = held
        emitted += len(out)
    wall, spent = time.perf_counter() - wall, time.process_time() - spent
    return {
        "records_per_s": len(decoded) / wall,
        "wall_s": round(wall, 4),
        "cpu_s": round(spent, 4),
        "us_cpu_per_record": spent / len(decoded) * 1e6,
        "emitted": emitted,
    }


def decode_cost(stream: Stream, topic: str) -> dict[str, float]:
    """CPU per record of decoding the stream (what the matcher does before `to_command`)."""
    spent = time.process_time()
    for m in stream.messages:
        decode(topic, m.value, m.headers)
    spent = time.process_time() - spent
    return {"cpu_s": round(spent, 4), "us_per_record": spent / len(stream.messages) * 1e6}


async def publish(settings: Settings, topic: str, stream: Stream) -> None:
    producer = make_producer(settings, linger_ms=20, max_batch_size=256 * 1024)
    await producer.start()
    try:
        sent = [
            await producer.send(topic, m.value, key=m.key, headers=list(m.headers))
            for m in stream.messages
        ]
        placed = await asyncio.gather(*sent)
    finally:
        await producer.stop()
    wrong = sum(r.partition != p for r, p in zip(placed, stream.partitions, strict=True))
    if wrong:
        raise SystemExit(f"{wrong} records fell on another partition than the books assumed")


async def ends(settings: Settings, topic: str, partitions: int) -> dict[int, int]:
    consumer = make_consumer(settings, None)
    await consumer.start()
    try:
        found = await consumer.end_offsets([TopicPartition(topic, p) for p in range(partitions)])
    finally:
        await consumer.stop()
    return {tp.partition: offset for tp, offset in found.items()}


# Run in a worktree of an earlier commit (--compare): writes that version's books, made by its own
# `filled_books`, with its own `replace_book`, into the scratch database at argv[1].
_WRITE_BOOKS = """
import asyncio, sys
import asyncpg
from consumers.matcher import Matcher
from loadtests.bench_matcher_io import filled_books
from marketplace.settings import Settings
from marketplace.translate.matching import market_config

async def main(dsn, group, topic, size, seed, parts):
    config = market_config(Settings.from_env())
    conn = await asyncpg.connect(dsn)
    try:
        matcher = Matcher(config, group)
        async with conn.transaction():
            for p, held in filled_books(size, seed, parts, config).items():
                await matcher.replace_book(conn, topic, p, held)
    finally:
        await conn.close()

dsn, group, topic, size, seed, parts = sys.argv[1:7]
asyncio.run(main(dsn, group, topic, int(size), int(seed), int(parts)))
"""


async def write_books_from(
    tree: Path, settings: Settings, conn: Any, group: str, topic: str, args: argparse.Namespace
) -> None:
    """The earlier commit's books in the scratch database `conn` is connected to."""
    name = await conn.fetchval("SELECT current_database()")
    dsn = (
        f"postgresql://{settings.db_app_user}:{settings.db_app_password}"
        f"@127.0.0.1:{settings.pg_port}/{name}"
    )
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        _WRITE_BOOKS,
        dsn,
        group,
        topic,
        str(args.book),
        str(args.seed),
        str(args.partitions),
        env={**os.environ, "PYTHONPATH": str(tree)},
        cwd=tree,
    )
    if await proc.wait() != 0:
        raise RuntimeError(f"writing the books of {tree.name} failed")


# Where a matcher batch's Python time goes (cProfile of the worker): a label, the file (its
# ending) and the function. The coroutines' figures leave out the time they spend suspended
# (waiting for PostgreSQL or Kafka), which the statements' times show instead.
PHASES = (
    ("decoding the records", "marketplace/runtime/decoding.py", "decode_or_dead_letter"),
    ("the command (to_command)", "marketplace/translate/matching.py", "to_command"),
    ("decide: step, contracts, messages", "marketplace/translate/matching.py", "decide"),
    ("  of which the core's step", "marketplace/core/matching.py", "step"),
    ("  of which the contracts (to_contract)", "marketplace/translate/matching.py", "to_contract"),
    ("  of which the messages (to_message)", "marketplace/events.py", "to_message"),
    (
        "the timers' rows (deadline/period_timer)",
        "marketplace/translate/matching.py",
        "deadline_timer",
    ),
    ("the timers' statement (schedule_many)", "marketplace/timers.py", "schedule_many"),
    ("the book saved (_save: JSON, statements)", "consumers/matcher.py", "_save"),
    ("  of which encoding the items (encode_item)", "consumers/matcher.py", "encode_item"),
    (
        "outbox and offset (insert_and_advance)",
        "marketplace/runtime/outbox.py",
        "insert_and_advance",
    ),
    ("the matcher's process, all of it", "consumers/matcher.py", "process"),
    ("the runtime's batch (_apply)", "marketplace/runtime/consumer.py", "_apply"),
    ("publishing and committing (_handle)", "marketplace/runtime/consumer.py", "_handle"),
    ("loading the book (load)", "consumers/matcher.py", "load"),
)


def phases(path: Path, batches: int, records: int) -> dict[str, Any]:
    """Seconds of the worker's profile per phase (cumulative, summed over the calls), and per
    batch and per record; plus the JSON encoding of the book's items inside `_save`."""
    found = pstats.Stats(str(path)).stats  # type: ignore[attr-defined]
    out: dict[str, Any] = {}
    for label, ending, name in PHASES:
        out[label] = sum(
            v[3]
            for (file, _line, func), v in found.items()
            if func == name and file.endswith(ending)
        )
        if name == "_save":
            out["  of which the book's JSON (encode in _save)"] = sum(
                called
                for (_file, _line, func), v in found.items()
                if func == "<method 'encode' of 'msgspec.json.Encoder' objects>"
                for (cfile, _cline, cfunc), (_cc, _nc, _tt, called) in v[4].items()
                if cfunc == "_save" and cfile.endswith("consumers/matcher.py")
            )
    total = sum(v[2] for v in found.values())
    return {
        "profile_total_s": total,
        "batches": batches,
        "records": records,
        "phases": {
            label: {
                "s": round(sec, 4),
                "ms_per_batch": round(sec / max(batches, 1) * 1e3, 3),
                "us_per_record": round(sec / max(records, 1) * 1e6, 1),
            }
            for label, sec in out.items()
        },
    }


async def profiled(
    settings: Settings,
    start: dict[int, int],
    end: dict[int, int],
    topic: str,
    prepare: Any,
    tree: Path | None,
    records: int,
    label: str,
) -> dict[str, Any]:
    """One more matcher run (of `tree`, or this code) under cProfile, with PostgreSQL's
    statements of that run alone (reset once its books are written): phases and statements per
    batch."""

    async def prepare_and_reset(conn: Any, group: str) -> None:
        await prepare(conn, group)
        pgstats.reset()  # the profiled run's statements only (not the books' writing)

    where = Path(tempfile.mkdtemp(prefix="matcher-io-")) / "matcher.prof"
    run = await one_consumer(
        settings,
        "matcher",
        1,
        start,
        end,
        topic,
        tree,
        topics=[topic],
        prepare=prepare_and_reset,
        profile_to=where,
    )
    profile = phases(Path(f"{where}.0"), run["batches"] or 0, records)
    statements = pgstats.top(25)
    profile["run"] = run
    profile["pg_stat_statements"] = statements
    batches = max(run["batches"] or 0, 1)
    profile["statements_ms_per_batch"] = [
        {"ms_per_batch": round(st["total_ms"] / batches, 3), **st}
        for st in statements.get("statements", [])
    ]
    print(
        f"profile of the {label} ({batches} batches, under cProfile:"
        f" {run['records_per_s']:,.0f} records/s):",
        flush=True,
    )
    for name, v in profile["phases"].items():
        print(
            f"  {name:<46} {v['ms_per_batch']:>9.2f} ms/batch {v['us_per_record']:>8.1f} us/record",
            flush=True,
        )
    for st in profile["statements_ms_per_batch"][:8]:
        print(f"  PostgreSQL {st['ms_per_batch']:>8.2f} ms/batch  {st['query'][:90]}", flush=True)
    return profile


async def measure(args: argparse.Namespace) -> dict[str, Any]:
    settings = Settings.from_env()
    config = market_config(settings)
    at_start = machine()
    statements = pgstats.reset()
    print(f"pg_stat_statements: {statements['note']}", flush=True)
    built = time.perf_counter()
    stream = make_stream(args.events, args.seed, args.book, args.partitions, config)
    print(
        f"stream: {len(stream.messages):,} records ({stream.kinds}), {stream.events_decided:,}"
        f" events decided, open listings {stream.open_at_start:,} -> {stream.open_at_end:,}"
        f" (made in {time.perf_counter() - built:.0f} s)",
        flush=True,
    )
    topic = copy_name(LISTINGS, f"matcher-io-{uuid.uuid4().hex[:8]}")
    spec = by_name(LISTINGS)
    await ensure_topics(
        settings,
        [TopicSpec(topic, key=spec.key, purpose="benchmark", config=spec.config)],
        partitions=args.partitions,
        replication=1,
    )
    await publish(settings, topic, stream)
    end = await ends(settings, topic, args.partitions)
    start = dict.fromkeys(end, 0)
    decoded = [decode(topic, m.value, m.headers) for m in stream.messages]
    decoding = decode_cost(stream, topic)

    async def prepare(conn: Any, group: str) -> None:
        from consumers.matcher import Matcher

        matcher = Matcher(config, group)
        books = filled_books(args.book, args.seed, args.partitions, config)
        async with conn.transaction():
            for p, held in books.items():
                await matcher.replace_book(conn, topic, p, held)

    tree = checkout(args.compare) if args.compare else None
    before_settings = (
        dataclasses.replace(settings, migrations_dir=tree / "infra" / "migrations")
        if tree is not None
        else settings
    )

    async def prepare_before(conn: Any, group: str) -> None:
        assert tree is not None
        await write_books_from(tree, settings, conn, group, topic, args)

    cores: list[dict[str, Any]] = []
    matchers: list[dict[str, Any]] = []
    befores: list[dict[str, Any]] = []
    sides = ["core", "matcher", *(["before"] if tree is not None else [])]
    for r in range(args.repeat):
        order = sides[r % len(sides) :] + sides[: r % len(sides)]
        if tree is None and r % 2 == 1:
            order = ["matcher", "core"]
        for which in order:
            if which == "core":
                run = core_round(stream, decoded, args.seed, args.book, args.partitions, config)
                cores.append(run)
            else:
                run = await one_consumer(
                    settings if which == "matcher" else before_settings,
                    "matcher",
                    1,
                    start,
                    end,
                    topic,
                    None if which == "matcher" else tree,
                    topics=[topic],
                    prepare=prepare if which == "matcher" else prepare_before,
                )
                run["load_1m_after"] = machine()["load_1m"]
                run["us_worker_cpu_per_record"] = (
                    run["worker_cpu_measured_s"][0] / max(run["records_measured"], 1) * 1e6
                )
                (matchers if which == "matcher" else befores).append(run)
            print(
                f"round {r + 1} {which:<8} {run['records_per_s']:>9,.0f} records/s"
                f"  emitted {run['emitted']}"
                + (
                    f"  cpu {run['cpu_s']} s ({run['us_cpu_per_record']:.0f} us/record)"
                    if which == "core"
                    else f"  worker cpu {run['worker_cpu_s']} s"
                    f" ({run['us_worker_cpu_per_record']:.0f} us/record measured), postgres"
                    f" {run['postgres_cpu_s']} s, broker {run['broker_cpu_s']} s"
                ),
                flush=True,
            )
    ratios = [m["records_per_s"] / c["records_per_s"] for m, c in zip(matchers, cores, strict=True)]
    compared: dict[str, Any] | None = None
    if befores:
        now_over_before = [
            m["records_per_s"] / b["records_per_s"] for m, b in zip(matchers, befores, strict=True)
        ]
        before_over_core = [
            b["records_per_s"] / c["records_per_s"] for b, c in zip(befores, cores, strict=True)
        ]
        compared = {
            "commit": args.compare,
            "records_per_s": statistics.median(b["records_per_s"] for b in befores),
            "runs": befores,
            "now_over_before_per_round": now_over_before,
            "now_over_before_median_of_rounds": statistics.median(now_over_before),
            "before_over_core_per_round": before_over_core,
            "before_over_core_median_of_rounds": statistics.median(before_over_core),
            "us_worker_cpu_per_record": statistics.median(
                b["us_worker_cpu_per_record"] for b in befores
            ),
        }
        print(
            f"now / before ({args.compare}): median of the rounds"
            f" {compared['now_over_before_median_of_rounds']:.3f}"
            f" ({', '.join(f'{x:.3f}' for x in now_over_before)}); before / core"
            f" {compared['before_over_core_median_of_rounds']:.3f}",
            flush=True,
        )
    core_rate = statistics.median(c["records_per_s"] for c in cores)
    matcher_rate = statistics.median(m["records_per_s"] for m in matchers)
    same = all(run["emitted"] == stream.events_decided for run in (*cores, *matchers, *befores))
    print(
        f"matcher / core: {matcher_rate / core_rate:.3f} (medians {matcher_rate:,.0f} /"
        f" {core_rate:,.0f} records/s; per round {', '.join(f'{x:.3f}' for x in ratios)});"
        f" same number of events in every run: {same}",
        flush=True,
    )
    top = pgstats.top()
    profile: dict[str, Any] | None = None
    profile_before: dict[str, Any] | None = None
    if args.profile:
        profile = await profiled(
            settings, start, end, topic, prepare, None, len(stream.messages), "matcher"
        )
        if tree is not None:
            profile_before = await profiled(
                before_settings,
                start,
                end,
                topic,
                prepare_before,
                tree,
                len(stream.messages),
                f"matcher at {args.compare}",
            )
    core_us = statistics.median(c["us_cpu_per_record"] for c in cores)
    worker_us = statistics.median(m["us_worker_cpu_per_record"] for m in matchers)
    print(
        f"CPU per record: core {core_us:.0f} us, matcher worker {worker_us:.0f} us"
        f" (core / worker {core_us / worker_us:.3f})",
        flush=True,
    )
    return {
        "records": len(stream.messages),
        "mix": stream.kinds,
        "events_decided": stream.events_decided,
        "open_listings_at_start": stream.open_at_start,
        "open_listings_at_end": stream.open_at_end,
        "book": args.book,
        "partitions": args.partitions,
        "topic": topic,
        "seed": args.seed,
        "repeat": args.repeat,
        "commit": commit(),
        "machine_at_start": at_start,
        "machine_at_end": machine(),
        "settings": consumer_settings(settings),
        "decoding_in_this_process": decoding,
        "core": {"records_per_s": core_rate, "runs": cores},
        "matcher": {"records_per_s": matcher_rate, "runs": matchers},
        "matcher_over_core": matcher_rate / core_rate,
        "matcher_over_core_per_round": ratios,
        "matcher_over_core_median_of_rounds": statistics.median(ratios),
        "same_events_emitted": same,
        "compared": compared,
        # CPU per record, each process's own: the core's in this process, the matcher worker's
        # over the records its rate counts (without its start and first batch; PostgreSQL's and
        # the broker's CPU are in each run).
        "us_cpu_per_record_core": core_us,
        "us_cpu_per_record_matcher_worker": worker_us,
        "pg_stat_statements": top,
        "profile": profile,
        "profile_before": profile_before,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--events", type=int, default=6000)
    parser.add_argument("--book", type=int, default=10000, help="open listings before the stream")
    parser.add_argument("--partitions", type=int, default=6)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--profile", action="store_true", help="one more matcher run under cProfile, per batch"
    )
    parser.add_argument(
        "--compare", metavar="COMMIT", help="also run this commit's matcher in every round"
    )
    args = parser.parse_args()
    if not (
        0 < args.events <= 100_000
        and 0 <= args.book <= 200_000
        and 1 <= args.partitions <= 24
        and 1 <= args.repeat <= 7
    ):
        parser.error("keep it bounded: events 1..1e5, book up to 2e5, partitions 1..24")
    result = asyncio.run(measure(args))
    core, matcher = result["core"], result["matcher"]
    rows = [
        [
            "pure core (translate + step, in process)",
            f"{core['records_per_s']:,.0f}",
            ", ".join(f"{r['records_per_s']:,.0f}" for r in core["runs"]),
            ", ".join(f"{r['cpu_s']}" for r in core["runs"]),
        ],
        [
            "matcher consumer (Kafka + PostgreSQL)",
            f"{matcher['records_per_s']:,.0f}",
            ", ".join(f"{r['records_per_s']:,.0f}" for r in matcher["runs"]),
            ", ".join(
                f"worker {r['worker_cpu_s'][0]}, postgres {r['postgres_cpu_s']},"
                f" broker {r['broker_cpu_s']}"
                for r in matcher["runs"]
            ),
        ],
    ]
    if result["compared"] is not None:
        before = result["compared"]
        rows.append(
            [
                f"matcher at {before['commit']} (Kafka + PostgreSQL)",
                f"{before['records_per_s']:,.0f}",
                ", ".join(f"{r['records_per_s']:,.0f}" for r in before["runs"]),
                ", ".join(
                    f"worker {r['worker_cpu_s'][0]}, postgres {r['postgres_cpu_s']},"
                    f" broker {r['broker_cpu_s']}"
                    for r in before["runs"]
                ),
            ]
        )
    paths = write_report(
        "matcher-io",
        title="The matcher consumer against the pure core on the same stream",
        summary=(
            f"{result['records']:,} records of the simulator's mix ({result['mix']}) on a copy"
            f" of market.listings with {result['partitions']} partitions, books of"
            f" {result['open_listings_at_start']:,} open listings at the start; "
            f"{cpu.TICK} ticks/s; machine shared with other sessions (load average"
            f" {result['machine_at_start']['load_1m']:.2f} at the start,"
            f" {result['machine_at_end']['load_1m']:.2f} at the end), commit {result['commit']};"
            f" matcher / core {result['matcher_over_core']:.3f} (median of the rounds' ratios"
            f" {result['matcher_over_core_median_of_rounds']:.3f})"
            + (
                f"; now / before ({result['compared']['commit']}), median of the rounds"
                f" {result['compared']['now_over_before_median_of_rounds']:.3f}, before / core"
                f" {result['compared']['before_over_core_median_of_rounds']:.3f}"
                if result["compared"] is not None
                else ""
            )
            + "; same number of events"
            f" emitted in every run: {result['same_events_emitted']};"
            f" {result['pg_stat_statements']['note']}."
        ),
        data=result,
        headers=["run", "records/s (median)", "rounds, records/s", "CPU s per round"],
        rows=rows,
        figure=bar_chart(
            [("pure core", core["records_per_s"]), ("matcher", matcher["records_per_s"])],
            unit="records/s",
        ),
        extra=statements_table(result["pg_stat_statements"]),
    )
    print(f"report: {paths[0]} and {paths[1].name}")


if __name__ == "__main__":
    main()
