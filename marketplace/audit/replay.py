"""`marketplace audit replay`: feed the recorded inputs of a decision-maker, in recorded order,
through its pure core and compare what the core decides with what was recorded.

A stage names an input topic, the output topic, and how to turn one input into the messages the
consumer would publish (the consumer's own function, so replay tests the real path). The range is
by event time (`ce_time`): outputs carry the time of the input that caused them, so the outputs of
the inputs in range are exactly the recorded outputs in range. State starts empty at `--from`:
use the moment the consumer group started (default: the beginning of the log).

A stage may have a cut-over: the moment its consumer's state was moved to another routing of
its input topic (`marketplace rebuild rekey`, recorded in `matcher_cutovers` with the group's
offsets then). Replay makes the same move at the same point: the inputs below the cut-over
offsets first, then the move (and the decisions it made), then the inputs from those offsets
on."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson

from marketplace.audit.progress import Progress
from marketplace.audit.verify import entry_of
from marketplace.core.book import Book
from marketplace.core.families import family_of
from marketplace.core.rekey import rekey
from marketplace.core.shards import parse_plan
from marketplace.core.taxonomy import UnknownCode
from marketplace.core.units import IncompatibleUnits
from marketplace.db import Conn
from marketplace.events import EventDecodeError, decode
from marketplace.runtime.outbox import OutboxMessage
from marketplace.settings import Settings
from marketplace.translate import auction, matching
from marketplace.translate.cells import Cells, CellsDecider
from marketplace.translate.rekey import CutOver, messages_of, partition_of, read_cut_over
from schemas import topics


@dataclass(frozen=True, slots=True)
class Expected:
    id: str
    type: str
    payload: Any


class Stage:
    """One decision-maker. `feed(partition, record)` returns the messages it decides."""

    name: str
    input_topic: str
    output_topic: str
    source: str
    # Where the consumer's state moved to another routing of its input, if it did.
    cut_over: CutOver | None = None

    async def prepare(self, conn: Conn) -> None:
        """Reads what the stage needs besides its inputs (its cut-over)."""

    def feed(self, partition: int, record: Any) -> list[OutboxMessage]:
        raise NotImplementedError

    def move(self) -> list[OutboxMessage]:
        """Makes the cut-over's move; returns the messages it decides."""
        return []


class MatchingStage(Stage):
    def __init__(self, settings: Settings, group_id: str) -> None:
        self._config = matching.market_config(settings)
        # The families the matcher forwards to the cells (CellsStage replays those).
        self._split = parse_plan(
            settings.split_families, settings.split_lat_cuts, settings.split_lon_cuts
        ).families
        self._books: dict[int, Book] = {}
        self._skip = (EventDecodeError, UnknownCode, IncompatibleUnits, ValueError)
        self.name = "matching"
        self.input_topic = topics.LISTINGS
        self.output_topic = topics.MATCHES
        self.source = matching.source_of(group_id)
        self._group_id = group_id

    async def prepare(self, conn: Conn) -> None:
        self.cut_over = await read_cut_over(conn, self._group_id, self.input_topic)

    def move(self) -> list[OutboxMessage]:
        """The books as `marketplace rebuild rekey` moved them to the family key."""
        cut = self.cut_over
        if cut is None:
            return []
        n = cut.partitions
        moved = rekey(
            self._books,
            family_of=family_of,
            partition_of=lambda key: partition_of(key, n),
            partitions=n,
            config=self._config,
            cause_id=cut.cause_id,
            at=cut.at,
        )
        self._books = moved.books
        return messages_of(moved.events, cut, self.source)

    def feed(self, partition: int, record: Any) -> list[OutboxMessage]:
        if record.key is not None and record.key.decode() in self._split:
            return []  # forwarded to market.cells
        book = self._books.setdefault(partition, Book())
        try:
            decoded = decode(record.topic, record.value, record.headers)
            command = matching.to_command(decoded, book)
        except self._skip:
            return []  # the matcher dead-letters these; they decide nothing
        if command is None:
            return []
        book, out = matching.decide(book, command, decoded, self._config, self.source)
        self._books[partition] = book
        return [message for _, message in out]


class _Collected:
    """What one record's decision emits, as the cells consumer's transaction would hold it."""

    def __init__(self, topic: str) -> None:
        self.topic = topic
        self.emitted: list[OutboxMessage] = []

    def emit(self, message: OutboxMessage) -> None:
        self.emitted.append(message)


class CellsStage(Stage):
    """The families split into geographic cells (MARKETPLACE_SPLIT_FAMILIES): market.cells
    through the cells' decisions, one state per key and partition, as `consumers/cells.py`
    makes them. Replay takes the split as the settings give it now, for the whole range."""

    def __init__(self, settings: Settings, group_id: str) -> None:
        config = matching.market_config(settings)
        plan = parse_plan(settings.split_families, settings.split_lat_cuts, settings.split_lon_cuts)
        self.name = "cells"
        self.input_topic = topics.CELLS
        self.output_topic = topics.MATCHES
        self.source = matching.source_of(group_id)
        self._decider = CellsDecider(config, plan, self.source)
        self._states: dict[int, Cells] = {}
        self._skip = (EventDecodeError, UnknownCode, IncompatibleUnits, ValueError)

    def feed(self, partition: int, record: Any) -> list[OutboxMessage]:
        if record.key is None:
            return []
        state = self._states.setdefault(partition, Cells())
        out = _Collected(record.topic)
        try:
            decoded = decode(record.topic, record.value, record.headers)
            self._decider.decide(out, state, decoded, record, [])
        except self._skip:
            return []  # the consumer dead-letters these; they decide nothing
        return out.emitted


class AuctionStage(Stage):
    """Transport jobs, quotes, reserves and deadlines through the pure auction core; one
    auction per job (the job id is the key, so a job's events are in order)."""

    def __init__(self, settings: Settings, group_id: str) -> None:
        self._config = auction.auction_config(settings)
        self._auctions: dict[str, Any] = {}
        self.name = "auction"
        self.input_topic = topics.JOBS
        self.output_topic = topics.AWARDS
        self.source = auction.source_of(group_id)

    def feed(self, partition: int, record: Any) -> list[OutboxMessage]:  # noqa: ARG002
        try:
            decoded = decode(record.topic, record.value, record.headers)
        except EventDecodeError:
            return []
        command = auction.to_command(decoded)
        if command is None:
            return []
        job_id = auction.job_id_of(command)
        after, messages, _ = auction.decide(
            self._auctions.get(job_id), command, decoded, self._config, self.source
        )
        if after is not None:
            self._auctions[job_id] = after
        return messages


def stages(settings: Settings, group_ids: dict[str, str]) -> list[Stage]:
    """The decision-makers replay knows, each with the consumer group whose outputs it checks."""
    return [
        MatchingStage(settings, group_ids.get("matching", "matcher")),
        CellsStage(settings, group_ids.get("cells", "cells")),
        AuctionStage(settings, group_ids.get("auction", "auctioneer")),
    ]


@dataclass(slots=True)
class ReplayReport:
    inputs: int = 0
    decisions: int = 0
    recorded: int = 0
    differences: list[str] = field(default_factory=list)
    by_stage: dict[str, int] = field(default_factory=dict)  # decisions re-made per stage
    # Per stage, the cut-over whose move replay made: "group at time, offsets".
    moves: dict[str, str] = field(default_factory=dict)

    @property
    def identical(self) -> bool:
        return not self.differences


@dataclass(frozen=True, slots=True)
class _Record:
    """What `decode` needs from a Kafka record, rebuilt from the audit log."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...]


async def _inputs(
    conn: Conn, topic: str, since: datetime | None, until: datetime | None
) -> list[Any]:
    return list(
        await conn.fetch(
            "SELECT topic, partition, kafka_offset, kafka_ts, key, headers, value"
            " FROM audit_log WHERE topic = $1"
            " AND ($2::timestamptz IS NULL OR ce_time >= $2)"
            " AND ($3::timestamptz IS NULL OR ce_time <= $3)"
            " ORDER BY partition, kafka_offset",
            topic,
            since,
            until,
        )
    )


def _records(rows: list[Any]) -> Iterator[_Record]:
    for row in rows:
        e = entry_of(row)
        headers = tuple((n, v or b"") for n, v in e.headers)
        yield _Record(e.topic, e.partition, e.offset, e.key, e.value, headers)


async def replay(
    conn: Conn,
    stage_list: list[Stage],
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    progress: bool = True,
    on_stage: Callable[[str], None] | None = None,
) -> ReplayReport:
    report = ReplayReport()
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        for stage in stage_list:
            if on_stage:
                on_stage(stage.name)
            rows = await _inputs(conn, stage.input_topic, since, until)
            await stage.prepare(conn)
            cut = stage.cut_over
            if cut is not None and not _within(cut.at, since, until):
                cut = None
            bar = Progress(f"replay {stage.name}", len(rows)) if progress else None
            expected: dict[str, Expected] = {}

            records = list(_records(rows))
            if cut is not None:
                # Under the old routing up to the cut-over, then the move, then the rest.
                early = [r for r in records if cut.before(r.partition, r.offset)]
                late = [r for r in records if not cut.before(r.partition, r.offset)]
            else:
                early, late = records, []
            for part in (early, late):
                if part is late and cut is not None:
                    _keep(expected, stage, stage.move())
                    offsets = ", ".join(f"{p}:{n}" for p, n in sorted(cut.offsets.items()))
                    report.moves[stage.name] = (
                        f"{cut.group_id} moved to the family key at {cut.at.isoformat()}"
                        f" (offsets {offsets})"
                    )
                for record in part:
                    report.inputs += 1
                    _keep(expected, stage, stage.feed(record.partition, record))
                    if bar:
                        bar.advance()
            if bar:
                bar.close()
            report.decisions += len(expected)
            report.by_stage[stage.name] = len(expected)
            recorded = await conn.fetch(
                "SELECT ce_id, ce_type, value, partition, kafka_offset FROM audit_log"
                " WHERE topic = $1 AND ce_source = $2 AND (ce_id = ANY($3::text[])"
                " OR (($4::timestamptz IS NULL OR ce_time >= $4)"
                " AND ($5::timestamptz IS NULL OR ce_time <= $5)))"
                " ORDER BY partition, kafka_offset",
                stage.output_topic,
                stage.source,
                list(expected),
                since,
                until,
            )
            report.recorded += len(recorded)
            _compare(report, stage, expected, recorded)
    return report


def _keep(expected: dict[str, Expected], stage: Stage, messages: list[OutboxMessage]) -> None:
    """Notes the decisions among `messages` (those on the stage's output topic) by id."""
    for message in messages:
        if message.topic != stage.output_topic:
            continue
        headers = {k: v.decode() for k, v in message.headers}
        expected[headers["ce_id"]] = Expected(
            headers["ce_id"], headers["ce_type"], orjson.loads(message.value)
        )


def _within(at: datetime, since: datetime | None, until: datetime | None) -> bool:
    return (since is None or since <= at) and (until is None or at <= until)


def _compare(
    report: ReplayReport, stage: Stage, expected: dict[str, Expected], recorded: list[Any]
) -> None:
    seen: set[str] = set()
    recorded_payloads: dict[str, tuple[str, Any]] = {}
    for row in recorded:
        where = f"{stage.output_topic}/{row['partition']}@{row['kafka_offset']}"
        ce_id = row["ce_id"]
        got = orjson.loads(bytes(row["value"])) if row["value"] is not None else None
        if ce_id in seen:
            # Publishing is at-least-once: a republished copy is the same decision.
            first = recorded_payloads[ce_id]
            if first != (row["ce_type"], got):
                report.differences.append(f"{where}: {ce_id} recorded twice, differently")
            continue
        seen.add(ce_id)
        recorded_payloads[ce_id] = (row["ce_type"], got)
        want = expected.get(ce_id)
        if want is None:
            report.differences.append(
                f"{where}: {row['ce_type']} {ce_id} was recorded, the core does not decide it"
            )
            continue
        if want.type != row["ce_type"] or want.payload != got:
            report.differences.append(
                f"{where}: {ce_id} differs: recorded {row['ce_type']} {_short(got)}, "
                f"the core decides {want.type} {_short(want.payload)}"
            )
    for ce_id, want in expected.items():
        if ce_id not in seen:
            report.differences.append(
                f"{stage.output_topic}: the core decides {want.type} {ce_id} "
                f"({_short(want.payload)}), which was never recorded"
            )


def _short(payload: Any) -> str:
    text = orjson.dumps(payload).decode()
    return text if len(text) <= 160 else text[:157] + "..."
