"""`marketplace rebuild rekey [--dry-run]`: move an exchange whose matcher decided under the old
key of `market.listings` (the List of Waste sub-chapter) to the material-family key, with its
open listings, proposals and agreements (#17 item 2; docs/operators/running.md).

With the API, the scheduler and the matcher stopped and the matcher's lag 0, in one transaction:
the matcher's books of every partition are read, re-filed by the pure move
(marketplace/core/rekey.py) and written back; what the move decides (proposals between two
families cancelled, new proposals between listings that now meet) goes to the matcher group's
outbox with the timers of the new proposals; the pending timers of `market.listings` get the
family key; the cut-over (the group's offsets, the time and the move's figures) is recorded
in `matcher_cutovers` for `marketplace audit replay`. Then the outbox is published.
`--dry-run` reads and reports only."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime

import orjson
from aiokafka import TopicPartition
from aiokafka.errors import KafkaError

from consumers.matcher import GROUP, TOPIC, Matcher
from marketplace.core.book import Book
from marketplace.core.families import family_of
from marketplace.core.matching import Proposed
from marketplace.core.rekey import RekeyError, Summary, rekey
from marketplace.db import Conn, create_pool
from marketplace.kafka import make_admin, make_consumer, make_producer, partition_counts
from marketplace.runtime import outbox
from marketplace.runtime.outbox import OutboxPublisher
from marketplace.settings import Settings
from marketplace.translate.matching import market_config, source_of
from marketplace.translate.rekey import CutOver, messages_of, partition_of, read_cut_over
from marketplace.translate.rekey import write_cut_over as record_cut_over
from schemas import topics
from schemas.registry import market_key

# The groups that read the market topics besides the matcher: they must have read everything
# published under the old key before anything is published under the new one, or they could
# see a listing's update (or a match's answer) before the listing (or the proposal).
FOLLOWERS = ("projector", "analytics", "notifier", "auditor", "job-creator")
MARKET_TOPICS = (topics.LISTINGS, topics.MATCHES)


class Refused(RuntimeError):
    """A precondition does not hold; nothing was changed."""


@dataclass(slots=True)
class Outcome:
    cut: CutOver
    summary: Summary
    events: int = 0
    timers_rekeyed: int = 0
    timers_asked: int = 0
    published: int = 0
    dry_run: bool = False
    notes: list[str] = field(default_factory=list)


class _DryRun(Exception):
    """Not an error: the way out of a dry run's transaction, which rolls it back."""

    def __init__(self, outcome: Outcome) -> None:
        super().__init__("dry run")
        self.outcome = outcome


Say = Callable[[str], None]


def _say(text: str) -> None:
    print(text, flush=True)


async def end_offsets(settings: Settings, topic: str) -> dict[int, int]:
    count = (await partition_counts(settings, [topic])).get(topic)
    if not count:
        raise Refused(f"topic {topic} does not exist")
    reader = make_consumer(settings, None, client_id="marketplace-rebuild")
    await reader.start()
    try:
        ends = await reader.end_offsets([TopicPartition(topic, p) for p in range(count)])
    finally:
        await reader.stop()
    return {tp.partition: int(off) for tp, off in ends.items()}


async def live_members(settings: Settings, group_id: str) -> int:
    """How many consumers are in the Kafka group now (0 when it is empty or unknown)."""
    admin = make_admin(settings)
    await admin.start()
    try:
        (response,) = await admin.describe_consumer_groups([group_id])
    finally:
        await admin.close()
    for described in response.groups:
        if described[1] == group_id:
            return len(described[5])
    return 0


async def _positions(
    conn: Conn, group_id: str, topic: str, *, lock: bool = False
) -> dict[int, int]:
    """The group's next offsets; locked (`lock`) until the transaction ends, so that a matcher
    started meanwhile waits and then loads the moved books."""
    sql = (
        "SELECT partition, next_offset FROM consumer_offsets WHERE group_id = $1 AND topic = $2"
        " ORDER BY partition"
    )
    rows = await conn.fetch(sql + (" FOR UPDATE" if lock else ""), group_id, topic)
    return {r["partition"]: r["next_offset"] for r in rows}


async def _check(
    settings: Settings,
    conn: Conn,
    group_id: str,
    followers: Sequence[str],
    ends: dict[int, int],
    say: Say,
    topic: str = TOPIC,
) -> dict[int, int]:
    """The preconditions of a move of the matcher's books (this one and `rebuild split`):
    returns the matcher group's offsets on `topic` (locked until the end)."""
    members = await live_members(settings, group_id)
    if members:
        raise Refused(
            f"{members} matcher(s) of group {group_id} are running: stop them first "
            "(and the API and the scheduler)"
        )
    say(f"matcher group {group_id}: no consumer running")
    stored = await _positions(conn, group_id, topic, lock=True)
    if not stored:
        raise Refused(f"group {group_id} has no position on {topic}: it never ran")
    positions = {p: stored.get(p, 0) for p in ends}
    behind = {p: ends[p] - positions[p] for p in ends if ends[p] > positions[p]}
    if behind:
        where = ", ".join(f"partition {p}: {n:,}" for p, n in sorted(behind.items()))
        raise Refused(
            f"group {group_id} has not read {topic} to its end ({where} records behind): stop "
            "the API and the scheduler, run the matcher until its lag is 0, stop it, try again"
        )
    say(f"matcher group {group_id}: lag 0 on {len(ends)} partitions")
    waiting = await conn.fetchval("SELECT count(*) FROM outbox WHERE group_id = $1", group_id)
    if waiting:
        raise Refused(
            f"group {group_id} has {waiting} event(s) in its outbox not yet published: start "
            "the matcher (it publishes them first), stop it, try again"
        )
    for follower in followers:
        lag = 0
        known = False
        for market in MARKET_TOPICS:
            theirs = await _positions(conn, follower, market)
            if not theirs:
                continue
            known = True
            topic_ends = ends if market == topic else await end_offsets(settings, market)
            lag += sum(max(0, e - theirs.get(p, 0)) for p, e in topic_ends.items())
        if not known:
            say(f"group {follower}: no position on the market topics, not checked")
        elif lag:
            raise Refused(
                f"group {follower} is {lag:,} record(s) behind on the market topics: let it "
                "catch up first (or name the groups to wait for with --follower)"
            )
        else:
            say(f"group {follower}: lag 0 on the market topics")
    return positions


async def _rekey_timers(conn: Conn) -> int:
    """Gives the pending timers of market.listings the family key of their material."""
    rows = await conn.fetch(
        "SELECT timer_id, key, value FROM timers WHERE topic = $1 AND fired_at IS NULL"
        " ORDER BY timer_id FOR UPDATE",
        TOPIC,
    )
    ids: list[str] = []
    keys: list[bytes] = []
    for r in rows:
        code = orjson.loads(r["value"]).get("material_code")
        if not isinstance(code, str):
            continue
        key = market_key(code).encode()
        if r["key"] is None or bytes(r["key"]) != key:
            ids.append(r["timer_id"])
            keys.append(key)
    if ids:
        await conn.execute(
            "UPDATE timers t SET key = u.key FROM unnest($1::text[], $2::bytea[]) AS u(id, key)"
            " WHERE t.timer_id = u.id",
            ids,
            keys,
        )
    return len(ids)


async def run_rekey(
    settings: Settings,
    *,
    group_id: str = GROUP,
    followers: Sequence[str] = FOLLOWERS,
    dry_run: bool = False,
    say: Say = _say,
    at: datetime | None = None,
) -> Outcome:
    """The move; raises Refused (nothing changed) when a precondition does not hold."""
    config = market_config(settings)
    matcher = Matcher(config, group_id)
    ends = await end_offsets(settings, TOPIC)
    partitions = len(ends)
    pool = await create_pool(settings)
    try:
        try:
            async with pool.acquire() as conn, conn.transaction():
                done = await read_cut_over(conn, group_id, TOPIC)
                if done is not None:
                    raise Refused(
                        f"the books of group {group_id} were moved to the family key at "
                        f"{done.at.isoformat()} already"
                    )
                positions = await _check(settings, conn, group_id, followers, ends, say)
                books: dict[int, Book] = {}
                for p in range(partitions):
                    books[p] = await matcher.load(conn, TOPIC, p)
                    say(
                        f"read partition {p + 1}/{partitions}: {len(books[p].listings):,} "
                        f"listings, {len(books[p].proposals):,} proposals"
                    )
                cut = CutOver(group_id, TOPIC, at or datetime.now(UTC), positions)
                try:
                    moved = rekey(
                        books,
                        family_of=family_of,
                        partition_of=lambda key: partition_of(key, partitions),
                        partitions=partitions,
                        config=config,
                        cause_id=cut.cause_id,
                        at=cut.at,
                    )
                except RekeyError as exc:
                    raise Refused(f"the books cannot be moved: {exc}") from exc
                messages = messages_of(moved.events, cut, source_of(group_id))
                result = Outcome(cut, moved.summary, events=len(messages), dry_run=dry_run)
                # A dry run writes it all too, then rolls it back: its figures are the real ones.
                for p in range(partitions):
                    await matcher.replace_book(conn, TOPIC, p, moved.books[p])
                    say(f"{'checked' if dry_run else 'wrote'} partition {p + 1}/{partitions}")
                await outbox.insert(conn, group_id, messages)
                for event in moved.events:
                    if isinstance(event, Proposed):
                        await matcher.ask_deadline(conn, event.proposal)
                        result.timers_asked += 1
                result.timers_rekeyed = await _rekey_timers(conn)
                await record_cut_over(conn, cut, asdict(moved.summary))
                if dry_run:
                    raise _DryRun(result)  # rolls the transaction back: nothing changes
        except _DryRun as dry:
            return dry.outcome
        say(f"committed; publishing {len(messages)} event(s)")
        producer = make_producer(settings, client_id="marketplace-rebuild")
        await producer.start()
        try:
            result.published = await OutboxPublisher(pool, producer, group_id).sweep(0)
        except KafkaError as exc:
            result.notes.append(
                f"publishing failed ({exc}); the matcher publishes its outbox when it starts"
            )
        finally:
            await producer.stop()
        return result
    finally:
        await pool.close()


def command(settings: Settings, args: argparse.Namespace) -> int:
    followers = tuple(args.follower) if args.follower else FOLLOWERS
    try:
        outcome = asyncio.run(
            run_rekey(settings, group_id=args.group, followers=followers, dry_run=args.dry_run)
        )
    except Refused as exc:
        print(f"marketplace rebuild rekey: refused: {exc}", file=sys.stderr)
        return 1
    for line in report_lines(outcome):
        print(line)
    return 0


def report_lines(o: Outcome) -> list[str]:
    s = o.summary
    head = "dry run, nothing changed" if o.dry_run else f"moved at {o.cut.at.isoformat()}"
    lines = [
        f"rekey of group {o.cut.group_id} ({head})",
        "  cut-over offsets: " + ", ".join(f"{p}:{n}" for p, n in sorted(o.cut.offsets.items())),
        f"  open listings: {s.listings:,} ({s.moved:,} to another partition); per partition: "
        + ", ".join(f"{p}:{n}" for p, n in sorted(s.by_partition.items())),
        f"  open proposals kept: {s.proposals:,}; cancelled (two families): {s.cancelled:,}",
        f"  standing agreements: {s.agreements:,} ({s.agreements_across:,} between two families,"
        " kept under the offer's family)",
        f"  closed pairs: {s.closed_pairs:,}; accepted codes of another family dropped: "
        f"{s.accepts_dropped:,}",
        f"  new proposals between listings that now meet: {s.proposed:,}",
        f"  events: {o.events:,}"
        + ("" if o.dry_run else f" ({o.published:,} published)")
        + f"; timers re-keyed: {o.timers_rekeyed:,}, asked: {o.timers_asked:,}",
    ]
    return lines + [f"  note: {n}" for n in o.notes]
