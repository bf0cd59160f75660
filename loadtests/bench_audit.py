"""Benchmark of the audit log's writes: rows per second the auditor's path sustains, against
plain unchained inserts of the same rows, measured in the same run on the same database.

    python -m loadtests.bench_audit [--rows 20000] [--batch 500] [--rounds 3]

Three ways of writing the same realistic records (CloudEvent headers, ~700-byte JSON offers),
in batches of one partition's records per transaction, as the runtime hands them over:
- `plain`: the rows without any hashing, COPY into an ordinary table (the baseline);
- `chained`: the same rows hash-chained (canonical encoding + SHA-256), into the same kind of table;
- `auditor`: the auditor's own path (`marketplace.audit.store.append`) into `audit_log`, with its
  monthly partitions, append-only triggers and indexes;
- `auditor-before`: the same path as it was before it was profiled and trimmed (#9: the ids walk
  of `refs`, base64 through its wrapper, the headers encoded twice), kept here for the A/B: the
  report gives `auditor` as a ratio to it too.
The rounds are interleaved so that the shared machine's noise falls on all three alike; the
report gives each one's median rows/s and its ratio to `plain`. Runs in a scratch database that
is dropped afterwards. Writes loadtests/reports/audit-<timestamp>.json and .html."""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from loadtests.report import bar_chart, write_report
from loadtests.scratch import scratch_database
from marketplace.audit import store
from marketplace.audit.chain import FORMAT, GENESIS, Entry, entry_from_record, link
from marketplace.db import Conn, connect
from marketplace.settings import Settings

PARTITIONS = 6
ZERO = bytes(32)


@dataclass(frozen=True, slots=True)
class Record:
    topic: str
    partition: int
    offset: int
    timestamp: int
    key: bytes
    headers: tuple[tuple[str, bytes], ...]
    value: bytes


def records(topic: str, count: int) -> dict[int, list[Record]]:
    """`count` offers spread over the partitions, shaped like the API's events."""
    out: dict[int, list[Record]] = {p: [] for p in range(PARTITIONS)}
    now = datetime.now(UTC)
    for n in range(count):
        p = n % PARTITIONS
        event_id, offer_id = str(uuid.uuid4()), str(uuid.uuid4())
        body = {
            "type": "market.offer.posted.v1",
            "offer_id": offer_id,
            "owner_id": str(uuid.uuid4()),
            "actor_id": str(uuid.uuid4()),
            "material": {
                "code": "150102",
                "description": f"PE film, baled, lot {n}",
                "form": "bales",
                "density_t_per_m3": 0.35,
            },
            "location": {"lat": 60.7 + n % 100 / 1000, "lon": 17.1, "region": "SE313"},
            "terms": {
                "quantity": {"amount": 12.5, "unit": "t"},
                "price": {"amount": -15.0, "currency": "EUR"},
                "available": {"start": "2026-12-01T00:00:00Z", "end": "2027-01-31T00:00:00Z"},
                "min_lot": {"amount": 2.0, "unit": "t"},
            },
        }
        headers = (
            ("ce_specversion", b"1.0"),
            ("ce_id", event_id.encode()),
            ("ce_type", b"market.offer.posted.v1"),
            ("ce_source", b"/producers/api"),
            ("ce_time", now.isoformat().encode()),
            ("ce_subject", offer_id.encode()),
            ("content-type", b"application/json"),
        )
        offset = len(out[p])
        ts = int(now.timestamp() * 1000)
        out[p].append(Record(topic, p, offset, ts, b"1501", headers, orjson.dumps(body)))
    return out


PLAIN_TABLE = """
CREATE TABLE IF NOT EXISTS bench_plain (
    topic text NOT NULL, partition integer NOT NULL, kafka_offset bigint NOT NULL,
    kafka_ts bigint NOT NULL, recorded_at timestamptz NOT NULL, ce_id text, ce_type text,
    ce_source text, ce_subject text, ce_time timestamptz, key bytea, headers jsonb NOT NULL,
    value bytea, data jsonb, refs text[] NOT NULL DEFAULT '{}', prev_hash bytea NOT NULL,
    hash bytea NOT NULL, PRIMARY KEY (topic, partition, kafka_offset)
)"""


async def write_plain(conn: Conn, batch: list[Record]) -> None:
    rows = [store.row(entry_from_record(r), ZERO, ZERO) for r in batch]
    await conn.copy_records_to_table("bench_plain", records=rows, columns=store.COLUMNS)


def chained_writer() -> Callable[[Conn, list[Record]], Awaitable[None]]:
    heads: dict[int, bytes] = {}

    async def write(conn: Conn, batch: list[Record]) -> None:
        prev = heads.get(batch[0].partition, GENESIS)
        rows = []
        for r in batch:
            entry = entry_from_record(r)
            h = link(prev, entry)
            rows.append(store.row(entry, prev, h))
            prev = h
        heads[batch[0].partition] = prev
        await conn.copy_records_to_table("bench_plain", records=rows, columns=store.COLUMNS)

    return write


def auditor_writer() -> Callable[[Conn, list[Record]], Awaitable[None]]:
    heads: dict[int, bytes] = {}

    async def write(conn: Conn, batch: list[Record]) -> None:
        p = batch[0].partition
        heads[p] = await store.append(conn, heads.get(p, GENESIS), batch)

    return write


def _b64_before(data: bytes | None) -> str | None:
    return None if data is None else base64.b64encode(data).decode("ascii")


def refs_before(data: Any, extra: tuple[str | None, ...] = ()) -> list[str]:
    """The auditor's ids walk before its profiling, and the definition the trimmed one is tested
    against: fields named *_id or id (strings), *_ids or bidders (lists of strings), in objects
    nested at most three deep."""
    found: set[str] = {x for x in extra if x}

    def walk(node: Any, depth: int) -> None:
        if depth > 3 or not isinstance(node, dict):
            return
        for name, value in node.items():
            if isinstance(value, str) and (name.endswith("_id") or name == "id"):
                found.add(value)
            elif isinstance(value, list) and (name.endswith("_ids") or name == "bidders"):
                found.update(v for v in value if isinstance(v, str))
            elif isinstance(value, dict):
                walk(value, depth + 1)

    walk(data, 0)
    return sorted(found)


def _row_before(entry: Entry, prev_hash: bytes) -> tuple[tuple[Any, ...], bytes]:
    """The row and hash as the auditor built them before #9's profiling."""
    canonical = orjson.dumps(
        [
            FORMAT,
            entry.topic,
            entry.partition,
            entry.offset,
            entry.timestamp_ms,
            _b64_before(entry.key),
            [[name, _b64_before(value)] for name, value in entry.headers],
            _b64_before(entry.value),
        ]
    )
    hash_ = hashlib.sha256(prev_hash + canonical).digest()
    ce = {name: store._text(value) for name, value in entry.headers if name.startswith("ce_")}
    text, parsed = store._json(entry.value)
    subject = ce.get("ce_subject")
    row = (
        entry.topic,
        entry.partition,
        entry.offset,
        entry.timestamp_ms,
        datetime.fromtimestamp(entry.timestamp_ms / 1000, UTC),
        ce.get("ce_id"),
        ce.get("ce_type"),
        ce.get("ce_source"),
        subject,
        store._time(ce.get("ce_time")),
        entry.key,
        orjson.dumps([[name, _b64_before(value)] for name, value in entry.headers]).decode(),
        entry.value,
        text,
        refs_before(parsed, (subject,)),
        prev_hash,
        hash_,
    )
    return row, hash_


def auditor_before_writer() -> Callable[[Conn, list[Record]], Awaitable[None]]:
    heads: dict[int, bytes] = {}

    async def write(conn: Conn, batch: list[Record]) -> None:
        p = batch[0].partition
        prev = heads.get(p, GENESIS)
        rows, months = [], set()
        for r in batch:
            row, prev = _row_before(entry_from_record(r), prev)
            rows.append(row)
            months.add(row[4])
        heads[p] = prev
        await conn.execute(
            "SELECT audit_ensure_partition(m) FROM unnest($1::timestamptz[]) AS m", sorted(months)
        )
        await conn.copy_records_to_table("audit_log", records=rows, columns=store.COLUMNS)

    return write


def build_rate(data: dict[int, list[Record]], before: bool) -> float:
    """Rows per second for chaining and building the rows alone (no database): the CPU work
    the auditor does per record, before and after the trim."""
    start = time.perf_counter()
    n = 0
    for batch in data.values():
        prev = GENESIS
        for r in batch:
            entry = entry_from_record(r)
            if before:
                _, prev = _row_before(entry, prev)
            else:
                headers = entry.headers_json()
                h = link(prev, entry, headers)
                store.row(entry, prev, h, headers)
                prev = h
            n += 1
    return n / (time.perf_counter() - start)


async def timed(
    conn: Conn, data: dict[int, list[Record]], batch: int, write: Callable[..., Awaitable[None]]
) -> float:
    """Rows per second for writing all of `data`, one partition's batch per transaction."""
    batches = [rows[i : i + batch] for rows in data.values() for i in range(0, len(rows), batch)]
    total = sum(len(b) for b in batches)
    start = time.perf_counter()
    for b in batches:
        async with conn.transaction():
            await write(conn, b)
    return total / (time.perf_counter() - start)


async def measure(rows: int, batch: int, rounds: int) -> dict[str, Any]:
    settings = Settings.from_env()
    builds: dict[str, list[float]] = {}
    results: dict[str, list[float]] = {
        "plain": [],
        "chained": [],
        "auditor-before": [],
        "auditor": [],
    }
    async with scratch_database(settings, "bench_audit") as scratch:
        # Tables are the owner role's to create; the services' role writes them.
        owner = await connect(scratch, dsn=scratch.migrate_dsn)
        try:
            await owner.execute(PLAIN_TABLE)
        finally:
            await owner.close()
        conn = await connect(scratch)
        try:
            for r in range(rounds):
                for name in results:
                    data = records(f"bench.{name}.{r}", rows)
                    writer: Callable[..., Awaitable[None]] = {
                        "plain": lambda: write_plain,
                        "chained": chained_writer,
                        "auditor-before": auditor_before_writer,
                        "auditor": auditor_writer,
                    }[name]()
                    rate = await timed(conn, data, batch, writer)
                    results[name].append(rate)
                    print(f"round {r + 1}/{rounds} {name:<8} {rate:>10,.0f} rows/s", flush=True)
                data = records(f"bench.build.{r}", rows)
                for name, old in (("build-before", True), ("build", False)):
                    builds.setdefault(name, []).append(build_rate(data, old))
        finally:
            await conn.close()
    base = statistics.median(results["plain"])
    before = statistics.median(results["auditor-before"])
    return {
        "auditor_after_over_before": statistics.median(results["auditor"]) / before,
        "row_building_rows_per_s": {k: statistics.median(v) for k, v in builds.items()},
        "row_building_after_over_before": statistics.median(builds["build"])
        / statistics.median(builds["build-before"]),
        "rows_per_round": rows,
        "batch": batch,
        "rounds": rounds,
        "variants": [
            {
                "name": name,
                "median_rows_per_s": statistics.median(rates),
                "all_rows_per_s": rates,
                "ratio_to_plain": statistics.median(rates) / base,
            }
            for name, rates in results.items()
        ],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--rows", type=int, default=20000, help="records per variant and round")
    parser.add_argument("--batch", type=int, default=500, help="records per transaction")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if not (0 < args.rows <= 1_000_000 and 0 < args.batch <= 10_000 and 0 < args.rounds <= 20):
        parser.error("keep it bounded: rows 1..1e6, batch 1..1e4, rounds 1..20")
    result = asyncio.run(measure(args.rows, args.batch, args.rounds))
    variants = result["variants"]
    table = [
        [v["name"], f"{v['median_rows_per_s']:,.0f}", f"{v['ratio_to_plain']:.2f}"]
        for v in variants
    ]
    for row in table:
        print(f"{row[0]:<8} {row[1]:>10} rows/s  ratio to plain {row[2]}")
    print(
        f"auditor after/before {result['auditor_after_over_before']:.2f}; row building alone "
        f"after/before {result['row_building_after_over_before']:.2f}"
    )
    paths = write_report(
        "audit",
        title="Audit log writes: the chain's cost",
        summary=(
            f"{args.rows:,} records per variant and round, batches of {args.batch}, "
            f"{args.rounds} interleaved rounds; medians. A/B of #9's trim in the same run: the "
            f"auditor's path after/before {result['auditor_after_over_before']:.2f}, row "
            f"building alone (no database) {result['row_building_after_over_before']:.2f}."
        ),
        data=result,
        headers=["variant", "rows/s (median)", "ratio to plain"],
        rows=table,
        figure=bar_chart([(v["name"], v["median_rows_per_s"]) for v in variants], unit="rows/s"),
    )
    print(f"report: {paths[0]} and {paths[1].name}")


if __name__ == "__main__":
    main()
