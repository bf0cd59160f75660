"""A consumer that applies every Kafka record exactly once to PostgreSQL (decision 4).

For each batch of one partition, one database transaction holds the processor's effects, the
outbox rows it emits and the partition's next offset. The offset row is locked first and compared
with the position the in-memory state belongs to, which fences off a stale instance (one that lost
the partition in a rebalance but is still finishing a batch): it rolls back, reloads, re-seeks.
After the commit the outbox is published and the offset is also committed to Kafka, for lag tools.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from bisect import bisect_left
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import (
    CommitFailedError,
    IllegalStateError,
    KafkaConnectionError,
    KafkaError,
)
from prometheus_client import Histogram

from marketplace import metrics
from marketplace.db import UNREACHABLE, Conn
from marketplace.kafka import fetcher_error
from marketplace.logs import get_logger
from marketplace.runtime import outbox
from marketplace.runtime.deadletter import TOPIC as DEAD_LETTER_TOPIC
from marketplace.runtime.outbox import OutboxMessage, OutboxPublisher
from marketplace.settings import Settings

log = get_logger(__name__)

S = TypeVar("S")

CONSUMED = metrics.counter(
    "marketplace_records_consumed_total", "Kafka records applied", ("group", "topic")
)
EMITTED = metrics.counter(
    "marketplace_events_emitted_total", "events emitted through the outbox", ("group", "topic")
)
DEAD_LETTERS = metrics.counter(
    "marketplace_dead_letters_total", "records sent to ops.deadletters", ("group",)
)
FAILURES = metrics.counter(
    "marketplace_batch_failures_total", "batches rolled back and retried", ("group",)
)
BATCH_RECORDS = metrics.histogram(
    "marketplace_batch_records",
    "records per applied batch",
    ("group",),
    buckets=(1, 2, 5, 10, 25, 50, 100, 250, 500, 1000),
)
BATCH_SECONDS = metrics.histogram(
    "marketplace_batch_seconds", "time to apply and commit one batch", ("group",)
)
END_TO_END = metrics.histogram(
    "marketplace_end_to_end_lag_seconds",
    "from a record's Kafka timestamp to its effect committed",
    ("group", "topic"),
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
)
LAG = metrics.gauge(
    "marketplace_consumer_lag_records",
    "records behind the partition's end, as of the last fetch",
    ("group", "topic", "partition"),
)
DB_WAITING = metrics.gauge(
    "marketplace_consumer_waiting_for_database",
    "1 while the consumer is paused because PostgreSQL does not answer",
    ("group",),
)
CONSUMERS_RENEWED = metrics.counter(
    "marketplace_kafka_consumers_renewed_total",
    "Kafka consumers replaced after their client failed for good",
    ("group",),
)
OUTBOX_BACKLOG = metrics.gauge(
    "marketplace_outbox_backlog", "emitted events not yet published", ("group",)
)

# Kafka consumers replaced one after another, with no fetch succeeding between, before the
# consumer gives up and the service stops (a client that keeps failing is not a passing state).
MAX_RENEWALS_IN_A_ROW = 5

# Records a processor's `prepare` takes at a time (a few hundred microseconds of decoding).
_PREPARE_SLICE = 50


# The longest a stopping consumer waits for one step of its shutdown that needs Kafka or
# PostgreSQL to answer (an offset commit, leaving the group, flushing the producer, closing the
# pool); past it the step is abandoned with a warning. Nothing is lost by that: the outbox keeps
# what was not acknowledged and PostgreSQL holds the position.
STOP_STEP_S = 10.0


async def bounded(step: Awaitable[Any], seconds: float, logger: Any, event: str) -> bool:
    """Awaits `step` for at most `seconds` (cancelling it then) and logs `event` when it did
    not finish or failed; True when it finished."""
    task = asyncio.ensure_future(step)
    try:
        done, _ = await asyncio.wait({task}, timeout=seconds)
    except BaseException:
        task.cancel()
        raise
    if not done:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        logger.warning(event, waited_s=seconds)
        return False
    if not task.cancelled() and task.exception() is not None:
        logger.warning(event, error=repr(task.exception()))
        return False
    return True


def _call_each(hooks: Sequence[Callable[[], None]]) -> None:
    for hook in hooks:
        hook()


# Names of the points where a test (or a chaos run) may crash the process on purpose.
FaultHook = Callable[[str], None]


class Transaction:
    """What a processor may touch inside the batch's transaction."""

    def __init__(self, conn: Conn, topic: str, partition: int) -> None:
        self.conn = conn
        self.topic = topic
        self.partition = partition
        self.emitted: list[OutboxMessage] = []
        self.committed: list[Callable[[], None]] = []
        self.abandoned: list[Callable[[], None]] = []

    def emit(self, message: OutboxMessage) -> None:
        self.emitted.append(message)

    def after_commit(self, done: Callable[[], None], undone: Callable[[], None]) -> None:
        """Calls `done` once the batch's transaction has committed, or `undone` if it does not
        (rolled back, fenced, or its commit's fate unknown); exactly one of them, once. Both run
        on the event loop, must not block and must not raise."""
        self.committed.append(done)
        self.abandoned.append(undone)


class Processor(Protocol[S]):
    """A stateful consumer's logic. `process` returns the partition's new state; it may change
    `state` in place (a large book is not copied per batch): when the transaction fails, the
    runtime throws the in-memory state away and reloads it with `load`.

    A processor may also have `prepare(records: list) -> list`: pure work on a partition's
    fetched records (decoding, say), with no I/O, that the runtime does as it fetches them,
    while the batches before them wait for PostgreSQL. It returns one item per record, in order,
    each with the record's `offset` and `timestamp`; `process` then gets those items instead of
    the records. It must not raise: a record it cannot handle is left for `process` to refuse
    (an exception there fails the batch, which is retried)."""

    async def load(self, conn: Conn, topic: str, partition: int) -> S: ...

    async def process(self, tx: Transaction, state: S, records: Sequence[Any]) -> S: ...


@dataclass(slots=True)
class ConsumerStats:
    records: int = 0
    batches: int = 0
    emitted: int = 0
    fenced: int = 0
    failures: int = 0
    assigned: set[TopicPartition] = field(default_factory=set)


class ProcessingFailed(RuntimeError):
    """A batch failed more often than the retry budget allows; the consumer stops."""


class ExactlyOnceConsumer(Generic[S]):
    def __init__(
        self,
        settings: Settings,
        *,
        group_id: str,
        topics: Sequence[str],
        processor: Processor[S],
        pool: asyncpg.Pool,
        consumer: AIOKafkaConsumer,
        producer: AIOKafkaProducer,
        fault: FaultHook | None = None,
        renew_producer: Callable[[], AIOKafkaProducer] | None = None,
        renew_consumer: Callable[[], AIOKafkaConsumer] | None = None,
    ) -> None:
        self.settings = settings
        self.group_id = group_id
        self.topics = list(topics)
        self.processor = processor
        self.pool = pool
        self.consumer = consumer
        self.producer = producer
        self.outbox = OutboxPublisher(pool, producer, group_id, renew=renew_producer)
        self.stats = ConsumerStats()
        self._new_consumer = renew_consumer
        self.consumers_renewed = 0
        self._fault = fault or (lambda _point: None)
        self._prepare: Callable[[list[Any]], list[Any]] | None = getattr(processor, "prepare", None)
        self._states: dict[TopicPartition, S] = {}
        # The stored offset that the in-memory state of each partition corresponds to.
        self._positions: dict[TopicPartition, int] = {}
        self._failures: dict[TopicPartition, int] = {}
        # Stored offsets to copy to Kafka after an assignment: a predecessor may have committed
        # to PostgreSQL and died before telling Kafka, and lag tools read Kafka's offsets.
        self._kafka_sync: dict[TopicPartition, int] = {}
        # Seeks per partition: a fetch made before a partition's last seek may hold records from
        # where its position was before; those are dropped (`_fetch`, `_fresh`).
        self._seeks: dict[TopicPartition, int] = {}
        self._sought: dict[TopicPartition, int] = {}  # where each was last sought
        # Offsets waiting to be copied to Kafka, and the copy under way (`_commit_in_background`).
        self._to_kafka: dict[TopicPartition, int] = {}
        self._kafka_commit_failing = False
        self._kafka_commit: asyncio.Task[None] | None = None
        # One per partition, held while a batch's transaction runs, so that revoking the
        # partition waits for it to finish.
        self._locks: dict[TopicPartition, asyncio.Lock] = {}
        self._side_by_side = asyncio.Semaphore(settings.consumer_partition_concurrency)
        self._stop = asyncio.Event()
        self._polling = False
        self._waiting_since: float | None = None
        self._listener_error: KafkaError | None = None  # a rebalance step that failed
        self.log = log.bind(group=group_id)
        metrics.READINESS[f"consumer:{group_id}"] = lambda: (
            self._polling and self._waiting_since is None
        )

    def request_stop(self) -> None:
        self._stop.set()

    async def run(self) -> None:
        """Consumes until request_stop(); leaves the group cleanly on the way out."""
        self.consumer.subscribe(self.topics, listener=_Listener(self))
        await self.outbox.sweep(min_age_s=0)  # leftovers of a crashed predecessor
        sweeper = asyncio.create_task(self._sweep_forever(), name=f"outbox-sweeper-{self.group_id}")
        stop_wait = asyncio.create_task(self._stop.wait())
        fetch: (
            asyncio.Task[tuple[dict[TopicPartition, list[Any]], dict[TopicPartition, int]]] | None
        ) = None
        renewals = 0  # consumers replaced since the last fetch that succeeded
        try:
            while not self._stop.is_set():
                if fetch is None:
                    fetch = asyncio.create_task(self._fetch())
                await asyncio.wait({fetch, stop_wait}, return_when=asyncio.FIRST_COMPLETED)
                if not fetch.done():
                    break
                try:
                    fetched = fetch.result()
                except (KafkaError, RuntimeError) as exc:
                    fetch = None
                    if isinstance(exc, ProcessingFailed) or self._new_consumer is None:
                        raise
                    renewals = await self._renew_consumer(exc, renewals)
                    continue
                renewals = 0
                batches = self._fresh(*fetched)
                fetch = None
                self._polling = True
                if not any(batches.values()) and self.outbox.acknowledged:
                    await self._flush_acknowledged()  # idle: no next batch to delete them
                to_commit, self._kafka_sync = self._kafka_sync, {}
                # The partitions' batches run side by side, each in a transaction on a
                # connection of its own: one partition's round trips do not wait for another's.
                handled = [(tp, records) for tp, records in batches.items() if records]
                if handled and not self._stop.is_set():
                    # The next fetch, and the processor's `prepare` of it, run while these
                    # batches wait for PostgreSQL. Its batches are applied after these, each
                    # against its partition's stored offset like any other (`_apply`): one that
                    # starts past it after a rewind seeks back, records below it are dropped.
                    fetch = asyncio.create_task(self._fetch())
                results = await asyncio.gather(
                    *(self._handle_in_turn(tp, records) for tp, records in handled),
                    return_exceptions=True,
                )
                for (tp, _), result in zip(handled, results, strict=True):
                    if isinstance(result, BaseException):
                        raise result
                    if result is not None:
                        to_commit[tp] = result
                    self._observe_lag(tp)
                if to_commit or self._to_kafka:
                    self._commit_in_background(to_commit)
        finally:
            stop_wait.cancel()
            sweeper.cancel()
            if fetch is not None:
                fetch.cancel()  # fetched but not applied: the next owner fetches them again
            await asyncio.gather(
                sweeper, stop_wait, *([fetch] if fetch else []), return_exceptions=True
            )
            # Kafka's offsets catch up with PostgreSQL's before the consumer leaves, if Kafka
            # answers soon: they are for lag tools (the position is PostgreSQL's), and aiokafka
            # retries an offset commit without end while it finds no coordinator (a broker just
            # restarted), which once held a stopping auditor past 60 s in the fault suite.
            if self._kafka_commit is not None:
                await bounded(
                    self._kafka_commit, STOP_STEP_S, self.log, "kafka_commit_abandoned_on_stop"
                )
            if self._to_kafka:
                await bounded(
                    self._commit_to_kafka(self._to_kafka),
                    STOP_STEP_S,
                    self.log,
                    "kafka_commit_abandoned_on_stop",
                )
                self._to_kafka = {}
            await self._flush_acknowledged()
            self._polling = False
            metrics.READINESS.pop(f"consumer:{self.group_id}", None)
            self.log.info("consumer_stopping", records=self.stats.records)

    async def _renew_consumer(self, exc: BaseException, renewals: int) -> int:
        """Replaces a Kafka consumer that failed for good with a new one in the same group;
        returns the clients that failed since the last fetch that succeeded (`renewals` before).

        aiokafka's group coordination runs in a task of its own; an error it does not expect
        ends that task, and every fetch then raises it. On uvloop a write to a connection the
        broker has just closed raises RuntimeError instead of OSError, which aiokafka does not
        catch (aio-libs/aiokafka#1038): the fault suite saw a matcher stop this way while its
        brokers restarted. Nothing is lost by replacing the client: the partitions are given
        up as in a rebalance (their in-memory states dropped), the new consumer joins the
        group, and each partition assigned to it resumes from its offset in PostgreSQL.

        A new client that cannot reach any broker is tried again, without limit, until one
        answers (the consumer is not ready meanwhile); past MAX_RENEWALS_IN_A_ROW clients that
        failed otherwise, the error is raised and the service stops."""
        assert self._new_consumer is not None
        self._polling = False
        if self._kafka_commit is not None:
            # A copy for lag tools through the failed client: the new assignment copies every
            # stored offset to Kafka again (`on_assigned`).
            self._kafka_commit.cancel()
            await asyncio.gather(self._kafka_commit, return_exceptions=True)
            self._kafka_commit = None
        await self.on_revoked(set(self.stats.assigned))
        if not await bounded(
            self.consumer.stop(), STOP_STEP_S, self.log, "consumer_leave_abandoned"
        ):
            # aiokafka's stop closes the group, then the fetcher, then the connections; a
            # fetcher that ended with an error raises there, and the connections stay open.
            await bounded(
                self.consumer._client.close(), STOP_STEP_S, self.log, "consumer_close_abandoned"
            )
        self._listener_error = None  # the old client's; the new one's assignment runs anew
        unreachable = 0
        while True:
            renewals += 1
            if renewals > MAX_RENEWALS_IN_A_ROW:
                raise exc
            fresh = self._new_consumer()
            fresh.subscribe(self.topics, listener=_Listener(self))
            try:
                await fresh.start()
            except KafkaError as error:
                await bounded(fresh.stop(), STOP_STEP_S, self.log, "consumer_leave_abandoned")
                self.log.warning("kafka_consumer_start_failed", error=repr(error))
                exc = error
                if isinstance(error, KafkaConnectionError):
                    # No broker answers (the cluster restarting): not counted, tried again.
                    renewals -= 1
                    unreachable += 1
                    pause = min(5.0, 0.5 * 2**unreachable)
                else:
                    pause = min(5.0, 0.5 * 2 ** (renewals - 1))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), pause)
                if self._stop.is_set():
                    return renewals
                continue
            self.consumer = fresh
            self.consumers_renewed += 1
            self.log.warning("kafka_consumer_renewed", error=repr(exc), in_a_row=renewals)
            CONSUMERS_RENEWED.labels(group=self.group_id).inc()
            return renewals

    def _seek(self, tp: TopicPartition, offset: int) -> None:
        self._seeks[tp] = self._seeks.get(tp, 0) + 1
        self._sought[tp] = offset
        self.consumer.seek(tp, offset)

    def _fresh(
        self, batches: dict[TopicPartition, list[Any]], seeks: dict[TopicPartition, int]
    ) -> dict[TopicPartition, list[Any]]:
        """A fetch's batches without those of a partition sought since the fetch began: the
        fetch may have taken them from the position before the seek (a fetch made ahead, while
        the batch before it was in hand, and applied after a rewind had sought back), and
        applying them would skip the records between. Such a partition is sought again to
        where it was last sought (records the fetch took after that seek are fetched again)."""
        fresh: dict[TopicPartition, list[Any]] = {}
        for tp, records in batches.items():
            if self._seeks.get(tp, 0) == seeks.get(tp, 0):
                fresh[tp] = records
            elif records and tp in self.stats.assigned:
                self._seek(tp, self._sought[tp])
        return fresh

    async def _fetch(
        self,
    ) -> tuple[dict[TopicPartition, list[Any]], dict[TopicPartition, int]]:
        """The next records of each partition, through the processor's `prepare` if it has one
        (pure work on the records, such as decoding, done here ahead of the transaction), with
        the partitions' seek counts when the fetch began (for `_fresh`, when they are applied)."""
        seeks = dict(self._seeks)
        batches: dict[TopicPartition, list[Any]] = await self.consumer.getmany(
            timeout_ms=self.settings.consumer_poll_ms,
            max_records=self.settings.consumer_max_batch,
        )
        if self._listener_error is not None:
            # Partitions this runner does not know it holds: replaced (`run`), as below.
            failed, self._listener_error = self._listener_error, None
            raise failed
        if not batches and (ended := fetcher_error(self.consumer)) is not None:
            # Its fetcher has ended, and it would return nothing for ever: replaced (`run`).
            raise ended
        prepare = self._prepare
        if prepare is None:
            return batches, seeks
        # In slices, handing the loop back between them: the batches in hand go on with their
        # statements as soon as PostgreSQL answers, rather than after the whole fetch is ready.
        prepared: dict[TopicPartition, list[Any]] = {}
        for tp, records in batches.items():
            items: list[Any] = []
            for start in range(0, len(records), _PREPARE_SLICE):
                await asyncio.sleep(0)
                items += prepare(records[start : start + _PREPARE_SLICE])
            prepared[tp] = items
        return prepared, seeks

    async def _flush_acknowledged(self) -> None:
        try:
            await self.outbox.flush()
        except (asyncpg.PostgresError, *UNREACHABLE) as exc:
            # Kept for the next batch or sweep; at worst republished under the same ids.
            self.log.info("outbox_cleanup_deferred", error=repr(exc))

    def _observe_lag(self, tp: TopicPartition) -> None:
        if tp not in self.stats.assigned or tp not in self.consumer.assignment():
            return  # revoked while its batch was handled: not ours to report any more
        end = self.consumer.highwater(tp)
        position = self._positions.get(tp)
        if end is not None and position is not None:
            LAG.labels(group=self.group_id, topic=tp.topic, partition=str(tp.partition)).set(
                max(0, end - position)
            )

    async def _handle_in_turn(self, tp: TopicPartition, records: list[Any]) -> int | None:
        async with self._side_by_side:
            return await self._handle(tp, records)

    async def _handle(self, tp: TopicPartition, records: list[Any]) -> int | None:
        """Applies one partition's batch; returns the next offset if it committed."""
        started = time.perf_counter()
        try:
            result = await self._apply(tp, records)
        except UNREACHABLE as exc:
            # PostgreSQL is down or restarting: not the batch's fault. Pause this partition at
            # its stored position and try again until the database answers; never give up.
            self._database_away(exc, topic=tp.topic, partition=tp.partition)
            self._rewind(tp, records[0].offset)
            await asyncio.sleep(1.0)
            return None
        except (asyncpg.DeadlockDetectedError, asyncpg.SerializationError) as exc:
            # Two partitions' transactions (they run side by side) wrote the same rows in
            # opposite orders and PostgreSQL chose this one to give way: not the batch's
            # fault, and it succeeds when tried again; not counted against the retry budget.
            self.log.info(
                "batch_conflict_retried", topic=tp.topic, partition=tp.partition, error=repr(exc)
            )
            self._rewind(tp, records[0].offset)
            await asyncio.sleep(0.01)
            return None
        except Exception as exc:
            FAILURES.labels(group=self.group_id).inc()
            failures = self._failures.get(tp, 0) + 1
            self._failures[tp] = failures
            self.stats.failures += 1
            self.log.exception(
                "batch_failed",
                topic=tp.topic,
                partition=tp.partition,
                first_offset=records[0].offset,
                attempt=failures,
            )
            if failures > self.settings.consumer_max_retries:
                raise ProcessingFailed(
                    f"{tp.topic}[{tp.partition}] offset {records[0].offset}: "
                    f"failed {failures} times: {exc}"
                ) from exc
            self._rewind(tp, records[0].offset)
            await asyncio.sleep(min(5.0, 0.1 * 2**failures))
            return None
        self._failures.pop(tp, None)
        self._database_back()
        if result is None:
            return None
        next_offset, ids, emitted = result
        self._measure(tp, records, next_offset, emitted, time.perf_counter() - started)
        self._fault("after_db_commit")
        try:
            await self.outbox.publish(ids, emitted)
        except KafkaError:
            # The rows stay in the outbox; the sweeper publishes them once Kafka answers.
            self.log.warning("outbox_publish_deferred", topic=tp.topic, rows=len(emitted))
        except UNREACHABLE as exc:
            # Committed (and perhaps published), but PostgreSQL went away before the published
            # rows were deleted: they stay in the outbox and the sweeper publishes them again,
            # with the same ids, once the database answers. The batch itself is done.
            self.log.warning(
                "outbox_cleanup_deferred", topic=tp.topic, rows=len(emitted), error=repr(exc)
            )
        self._fault("after_publish")
        return next_offset

    async def _apply(
        self, tp: TopicPartition, records: list[Any]
    ) -> tuple[int, list[int], list[OutboxMessage]] | None:
        async with self._lock(tp):
            if tp not in self.stats.assigned:
                return None  # revoked while the batch was in flight
            opened: list[Transaction] = []
            try:
                applied = await self._transact(tp, records, opened)
            except BaseException:
                # Rolled back, or the commit's fate is unknown (it failed or was cancelled): the
                # processor's after-commit hooks are told it did not happen.
                for tx in opened:
                    _call_each(tx.abandoned)
                raise
            if applied is None:
                return None
            # (A failed COMMIT raises out of `_transact` and loses only the deletion of
            # `published`: the sweeper republishes those rows under the same ids.)
            tx, fresh, new_state, next_offset, ids = applied
            _call_each(tx.committed)
            self._states[tp] = new_state
            self._positions[tp] = next_offset
            self.stats.records += len(fresh)
            self.stats.batches += 1
            self.stats.emitted += len(tx.emitted)
            return next_offset, ids, tx.emitted

    async def _transact(
        self, tp: TopicPartition, records: list[Any], opened: list[Transaction]
    ) -> tuple[Transaction, list[Any], S, int, list[int]] | None:
        """One batch's transaction; the `Transaction` it hands the processor goes to `opened`
        first, so the caller can tell its hooks the outcome."""
        async with self.pool.acquire() as conn, conn.transaction():
            stored = await _lock_offset(conn, self.group_id, tp)
            if self._positions.get(tp) != stored:
                if tp in self._positions:
                    self.stats.fenced += 1
                    self.log.warning(
                        "partition_moved_on",
                        topic=tp.topic,
                        partition=tp.partition,
                        expected=self._positions[tp],
                        stored=stored,
                    )
                self._states[tp] = await self.processor.load(conn, tp.topic, tp.partition)
                self._positions[tp] = stored
                if records[0].offset > stored:
                    # The fetched batch starts past the stored position: fetch again from it.
                    self._seek(tp, stored)
                    return None
            fresh = [r for r in records if r.offset >= stored]
            if not fresh:
                return None
            tx = Transaction(conn, tp.topic, tp.partition)
            opened.append(tx)
            new_state = await self.processor.process(tx, self._states[tp], fresh)
            next_offset = fresh[-1].offset + 1
            published = self.outbox.take_acknowledged()
            try:
                ids = await outbox.insert_and_advance(
                    conn,
                    self.group_id,
                    tx.emitted,
                    topic=tp.topic,
                    partition=tp.partition,
                    next_offset=next_offset,
                    published=published,
                )
                self._fault("before_db_commit")
            except BaseException:
                self.outbox.restore_acknowledged(published)
                raise
        return tx, fresh, new_state, next_offset, ids

    def _measure(
        self,
        tp: TopicPartition,
        records: list[Any],
        next_offset: int,
        emitted: list[OutboxMessage],
        seconds: float,
    ) -> None:
        group = self.group_id
        applied = [r for r in records if r.offset < next_offset]
        CONSUMED.labels(group=group, topic=tp.topic).inc(len(applied))
        BATCH_RECORDS.labels(group=group).observe(len(applied))
        BATCH_SECONDS.labels(group=group).observe(seconds)
        now_ms = time.time() * 1000
        observe_each(
            END_TO_END.labels(group=group, topic=tp.topic),
            [max(0.0, (now_ms - r.timestamp) / 1000) for r in applied],
        )
        # One labelled child per topic a batch emitted to, not one look-up per message.
        for topic, count in Counter(m.topic for m in emitted).items():
            EMITTED.labels(group=group, topic=topic).inc(count)
            if topic == DEAD_LETTER_TOPIC:
                DEAD_LETTERS.labels(group=group).inc(count)

    def _rewind(self, tp: TopicPartition, batch_start: int) -> None:
        # The failed batch may have changed the in-memory state before failing: forget it, so the
        # next batch reloads it from the database, and fetch again from the last stored offset,
        # or, when the batch failed before that offset was known (the partition's first batch),
        # from the batch's own start: the fetch position has moved past it already, and no later
        # record may come to bring it back.
        position = self._positions.pop(tp, None)
        self._states.pop(tp, None)
        if tp in self.stats.assigned:
            self._seek(tp, batch_start if position is None else position)

    def _commit_in_background(self, offsets: dict[TopicPartition, int]) -> None:
        """Copies the stored offsets to Kafka (for lag tools) without waiting for the broker:
        one commit at a time, with the latest offsets of every partition gathered since the one
        before. The next fetch does not wait for it; a clean stop does."""
        self._to_kafka.update(offsets)
        if self._kafka_commit is None or self._kafka_commit.done():
            pending, self._to_kafka = self._to_kafka, {}
            self._kafka_commit = asyncio.create_task(self._commit_to_kafka(pending))

    async def _commit_to_kafka(self, offsets: dict[TopicPartition, int]) -> None:
        owned = {tp: off for tp, off in offsets.items() if tp in self.stats.assigned}
        if not owned:
            return
        try:
            await self.consumer.commit(owned)
        except (CommitFailedError, IllegalStateError, KafkaError, RuntimeError) as exc:
            # RuntimeError: a connection closed under uvloop (see `_renew_consumer`).
            # Only the lag shown by Kafka tools is affected; PostgreSQL holds the real position.
            # The offsets are kept for the next commit (the loop tries again after its next
            # fetch, a stop once more): skipped for good, a partition that then goes quiet
            # would show a lag it does not have (a commit refused during a rebalance, seen in
            # test_exactly_once's SIGKILL test).
            for tp, offset in owned.items():
                if self._to_kafka.get(tp, -1) < offset:
                    self._to_kafka[tp] = offset
            if not self._kafka_commit_failing:
                self.log.info("kafka_commit_skipped", reason=str(exc))
            self._kafka_commit_failing = True
        else:
            if self._kafka_commit_failing:
                self.log.info("kafka_commit_recovered")
            self._kafka_commit_failing = False

    async def _sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(self.settings.outbox_sweep_interval_s)
            try:
                await self.outbox.sweep(self.settings.outbox_sweep_min_age_s)
                async with self.pool.acquire() as conn:
                    backlog = await conn.fetchval(
                        "SELECT count(*) FROM outbox WHERE group_id = $1", self.group_id
                    )
                OUTBOX_BACKLOG.labels(group=self.group_id).set(backlog)
            except (KafkaError, asyncpg.PostgresError, *UNREACHABLE):
                # Never ends the sweeper: a dropped connection is retried at the next interval.
                self.log.exception("outbox_sweep_failed")

    async def on_assigned(self, assigned: set[TopicPartition]) -> None:
        stored = await self._stored_offsets()
        if stored is None:
            return  # stopping while PostgreSQL was away: nothing of this assignment is applied
        for tp in assigned:
            self.stats.assigned.add(tp)
            if tp in stored:
                self._seek(tp, stored[tp])
                self._kafka_sync[tp] = stored[tp]
            else:
                self._seeks[tp] = self._seeks.get(tp, 0) + 1
                self._sought[tp] = 0  # the beginning (a later seek to 0 resets to the earliest)
                await self.consumer.seek_to_beginning(tp)
        self.log.info(
            "partitions_assigned", partitions=sorted(f"{t.topic}[{t.partition}]" for t in assigned)
        )

    async def _stored_offsets(self) -> dict[TopicPartition, int] | None:
        """The group's offsets in PostgreSQL, for an assignment. While PostgreSQL does not
        answer (a rebalance during its restart) they are asked for again every second until it
        does; None once the consumer stops. An error here would leave the partitions assigned
        in Kafka but unknown to this runner, never sought nor applied: aiokafka logs a
        listener's error and goes on (the fault suite saw a consumer stall so, thousands of
        records behind, in silence)."""
        while True:
            try:
                rows = await self._read_offsets()
            except UNREACHABLE as exc:
                self._database_away(exc, during="assignment")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), 1.0)
                if self._stop.is_set():
                    return None
                continue
            self._database_back()
            return {TopicPartition(r["topic"], r["partition"]): r["next_offset"] for r in rows}

    def _database_away(self, exc: BaseException, **where: object) -> None:
        """PostgreSQL did not answer: not ready (`/readyz`, the gauge) until it does again."""
        self._waiting_since = self._waiting_since or time.monotonic()
        DB_WAITING.labels(group=self.group_id).set(1)
        self.log.warning(
            "database_unavailable",
            error=repr(exc),
            waiting_s=round(time.monotonic() - self._waiting_since, 1),
            **where,
        )

    def _database_back(self) -> None:
        if self._waiting_since is not None:
            self.log.info(
                "database_back", waited_s=round(time.monotonic() - self._waiting_since, 1)
            )
            self._waiting_since = None
            DB_WAITING.labels(group=self.group_id).set(0)

    def listener_failed(self, during: str, exc: Exception) -> None:
        """A rebalance step failed (`_Listener`): kept for the next fetch to raise."""
        self.log.error("rebalance_failed", during=during, error=repr(exc))
        if self._listener_error is None:
            self._listener_error = KafkaError(f"the consumer's {during} failed: {exc!r}")

    async def _read_offsets(self) -> list[asyncpg.Record]:
        async with self.pool.acquire() as conn:
            return await conn.fetch(
                "SELECT topic, partition, next_offset FROM consumer_offsets"
                " WHERE group_id = $1 AND topic = ANY($2::text[])",
                self.group_id,
                self.topics,
            )

    def _lock(self, tp: TopicPartition) -> asyncio.Lock:
        lock = self._locks.get(tp)
        if lock is None:
            lock = self._locks[tp] = asyncio.Lock()
        return lock

    async def on_revoked(self, revoked: set[TopicPartition]) -> None:
        for tp in revoked:
            async with self._lock(tp):
                # By position, in the gauge's label order: group, topic, partition.
                LAG.remove(self.group_id, tp.topic, str(tp.partition))
                self.stats.assigned.discard(tp)
                self._states.pop(tp, None)
                self._positions.pop(tp, None)
                self._failures.pop(tp, None)
        if revoked:
            self.log.info(
                "partitions_revoked",
                partitions=sorted(f"{t.topic}[{t.partition}]" for t in revoked),
            )


def observe_each(histogram: Histogram, values: Sequence[float]) -> None:
    """`histogram.observe(v)` for every value, with the same buckets, count and sum, but one
    update of each bucket it touches (and of the sum) instead of one of each per value: the
    end-to-end lag is observed for every record (issue #18: at a few microseconds a record,
    one lock and one loop over the buckets per record were a visible part of a light
    consumer's work). Relies on prometheus_client's `Histogram` keeping its non-cumulative
    bucket counts in `_buckets` by `_upper_bounds` (tests/unit/test_runtime_metrics.py checks
    the exposition against observing one by one)."""
    if not values:
        return
    bounds: list[float] = histogram._upper_bounds
    counts = [0] * len(bounds)
    for value in values:
        counts[bisect_left(bounds, value)] += 1  # the first bound >= value, as observe()
    buckets = histogram._buckets
    for index, count in enumerate(counts):
        if count:
            buckets[index].inc(count)
    histogram._sum.inc(sum(values))


async def start_group_at(
    conn: Conn, group_id: str, positions: Mapping[tuple[str, int], int]
) -> None:
    """Where a new consumer group starts: the next offset of each (topic, partition) given.
    A partition the group already has a position for keeps it (ON CONFLICT DO NOTHING)."""
    await conn.executemany(
        "INSERT INTO consumer_offsets (group_id, topic, partition, next_offset)"
        " VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
        [(group_id, topic, partition, offset) for (topic, partition), offset in positions.items()],
    )


async def _lock_offset(conn: Conn, group_id: str, tp: TopicPartition) -> int:
    """Locks the partition's offset row for the transaction and returns the stored offset, in
    one round trip: a first batch inserts the row at 0, a later one "updates" it to itself,
    which takes the row lock as SELECT ... FOR UPDATE would."""
    value: int = await conn.fetchval(
        "INSERT INTO consumer_offsets AS c (group_id, topic, partition, next_offset)"
        " VALUES ($1, $2, $3, 0)"
        " ON CONFLICT (group_id, topic, partition) DO UPDATE SET next_offset = c.next_offset"
        " RETURNING c.next_offset",
        group_id,
        tp.topic,
        tp.partition,
    )
    return value


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    """The runner's side of a rebalance. aiokafka logs an error raised here and goes on, with
    the partitions assigned in Kafka but never sought nor applied by the runner: the consumer
    would stall in silence. So an error is kept instead, and the next fetch raises it, which
    replaces the Kafka consumer (`_renew_consumer`): the new one joins the group and its
    assignment runs again from the offsets in PostgreSQL."""

    def __init__(self, owner: ExactlyOnceConsumer[Any]) -> None:
        self._owner = owner

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        try:
            await self._owner.on_revoked(set(revoked))
        except Exception as exc:  # noqa: BLE001 - kept and raised by the next fetch
            self._owner.listener_failed("revocation", exc)

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        try:
            await self._owner.on_assigned(set(assigned))
        except Exception as exc:  # noqa: BLE001 - kept and raised by the next fetch
            self._owner.listener_failed("assignment", exc)
