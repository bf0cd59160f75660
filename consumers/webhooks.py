"""Webhook delivery (decision 7): `marketplace run webhooks`.

Two parts in one process. The inbox (on the exactly-once runtime) reads partners.notifications and,
in the batch's transaction, writes one delivery row per notification and subscribed endpoint. A
delivery its own dispatcher has a free slot for is written already leased to this process and
handed over once the batch commits (`Transaction.after_commit`): no claim, no NOTIFY, no wake-up
(`MARKETPLACE_WEBHOOK_HAND_OVER`). The others, and every retry, wait in PostgreSQL for the
dispatcher's claim. The dispatcher sends due deliveries, signed the Standard Webhooks way, and
keeps each one's retry state in PostgreSQL: success ends it, a failure (timeout, connection
refused, any non-2xx answer) schedules the next attempt with exponential backoff and jitter (the
outcomes of the attempts that finished meanwhile are written by one statement), and after the last
attempt it is dead-lettered (`marketplace webhooks dead-letters`, `GET /v1/webhooks/dead-letters`)
until someone redelivers it.

At least once: an attempt in flight holds a lease; a worker killed mid-attempt leaves the lease to
run out and the next worker sends it again, with the same webhook-id. Each endpoint has its own
small number of slots (`MARKETPLACE_WEBHOOK_ENDPOINT_CONCURRENCY`) within the overall limit, so a
slow or dead endpoint only ever waits on itself. Targets are checked again when sent (the resolver
refuses addresses the policy refuses, so a DNS change cannot point a webhook inward).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import random
import socket
import time
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import orjson
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import ThreadedResolver

from marketplace import metrics
from marketplace.core import webhooks as core
from marketplace.core.ids import derived_id
from marketplace.db import UNREACHABLE, Conn, connect, create_pool
from marketplace.logs import get_logger
from marketplace.runtime import Transaction
from marketplace.runtime.decoding import decode_or_dead_letter
from marketplace.secretbox import SecretKeyError, key_file
from marketplace.settings import Settings
from marketplace.translate import shredding
from schemas import topics
from schemas.partners import NotificationIssued

GROUP = "webhooks"
# With a backlog, at most one claim of due deliveries per this many seconds. A claim ranks every
# due delivery of the group per endpoint, so its cost grows with the backlog, and under load the
# attempts that finish one by one each asked for one (pipeline-20261130T155456Z: the claim was
# PostgreSQL's costliest statement, 11,571 calls for 25,144 deliveries). Without a backlog a
# claim is cheap and is made at once, so an idle exchange's latency is not touched.
CLAIM_GAP_S = 0.01
TOPIC = topics.NOTIFICATIONS
CHANNEL = "webhook_deliveries"
log = get_logger(__name__)

ATTEMPTS = metrics.counter(
    "marketplace_webhook_attempts_total", "webhook delivery attempts", ("outcome",)
)
DEAD = metrics.counter("marketplace_webhook_dead_letters_total", "deliveries dead-lettered", ())
IN_FLIGHT = metrics.gauge("marketplace_webhook_in_flight", "webhook attempts under way", ())


def body_of(event: NotificationIssued, issued_at: datetime) -> bytes:
    """The JSON a receiver gets: Standard Webhooks' {type, timestamp, data}."""
    return orjson.dumps(
        {
            "type": event.kind,
            "timestamp": issued_at.isoformat(),
            "data": {
                "notification_id": event.notification_id,
                "partner_id": event.partner_id,
                "kind": event.kind,
                "subject_id": event.subject_id,
                "cause_event_id": event.cause_event_id,
                "summary": event.summary,
                "data": event.data,
            },
        }
    )


class WebhookInbox:
    """partners.notifications -> delivery rows. Stateless; the runtime applies each record once
    and the delivery id (derived from group, notification and endpoint) makes a repeat a no-op."""

    def __init__(
        self,
        group_id: str = GROUP,
        keys_path: Path | None = None,
        dispatcher: Dispatcher | None = None,
    ) -> None:
        self.group_id = group_id
        # The operator's key ring, to open the texts a notification carries sealed (#21 item 8);
        # None: MARKETPLACE_WEBHOOK_SECRET_KEYS.
        self.keys_path = keys_path
        # The dispatcher of this process: a delivery it has a free slot for is written already
        # leased ('sending') and handed to it once the batch commits, so it needs no claim.
        self.dispatcher = dispatcher

    async def load(self, conn: Conn, topic: str, partition: int) -> None:  # noqa: ARG002
        return None

    async def process(self, tx: Transaction, state: None, records: Sequence[Any]) -> None:
        found: list[tuple[NotificationIssued, datetime]] = []
        for record in records:
            decoded = decode_or_dead_letter(tx, self.group_id, record)
            if decoded is None:
                continue
            if isinstance(decoded.event, NotificationIssued):
                found.append((decoded.event, decoded.envelope.time))
        if not found:
            return state
        if shredding.sealed_subjects(n for n, _ in found):
            ring = shredding.operator_ring(self.keys_path)
            found = await shredding.open_notifications(tx.conn, ring, found)
        rows = await tx.conn.fetch(
            "SELECT endpoint_id, partner_id, kinds, url, secret, previous_secret,"
            " previous_until > now() AS previous_valid FROM webhook_endpoints"
            " WHERE deleted_at IS NULL AND partner_id = ANY($1::text[])",
            sorted({n.partner_id for n, _ in found}),
        )
        by_partner: dict[str, list[tuple[Any, set[str]]]] = {}
        for r in rows:
            by_partner.setdefault(r["partner_id"], []).append((r, set(r["kinds"])))
        ids, nids, eids, pids, kinds, bodies, taken = [], [], [], [], [], [], []
        handed: dict[str, dict[str, Any]] = {}
        seen: set[str] = set()
        dispatcher = self.dispatcher
        for n, at in found:
            for endpoint, wanted in by_partner.get(n.partner_id, []):
                if wanted and n.kind not in wanted:
                    continue
                endpoint_id = endpoint["endpoint_id"]
                delivery_id = derived_id(f"{self.group_id}/{n.notification_id}/{endpoint_id}")
                if delivery_id in seen:
                    continue  # the same notification twice in one batch
                seen.add(delivery_id)
                body = body_of(n, at)
                take = dispatcher is not None and dispatcher.reserve(endpoint_id)
                if take:
                    handed[delivery_id] = {
                        "delivery_id": delivery_id,
                        "notification_id": n.notification_id,
                        "endpoint_id": endpoint_id,
                        "body": body,
                        "attempts": 0,
                        "url": endpoint["url"],
                        "secret": endpoint["secret"],
                        "previous_secret": endpoint["previous_secret"],
                        "previous_valid": endpoint["previous_valid"],
                    }
                ids.append(delivery_id)
                nids.append(n.notification_id)
                eids.append(endpoint_id)
                pids.append(n.partner_id)
                kinds.append(n.kind)
                bodies.append(body)
                taken.append(take)
        if not ids:
            return state
        lease = dispatcher.lease_s if dispatcher is not None else 0.0
        written = await tx.conn.fetch(
            "INSERT INTO webhook_deliveries (delivery_id, group_id, notification_id,"
            " endpoint_id, partner_id, kind, body, status, lease_until)"
            " SELECT u.id, $1, u.nid, u.eid, u.pid, u.kind, u.body,"
            " CASE WHEN u.taken THEN 'sending' ELSE 'pending' END,"
            " CASE WHEN u.taken THEN now() + make_interval(secs => $9) END"
            " FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::text[],"
            " $7::bytea[], $8::bool[]) AS u(id, nid, eid, pid, kind, body, taken)"
            " ON CONFLICT (delivery_id) DO NOTHING RETURNING delivery_id, status",
            self.group_id,
            ids,
            nids,
            eids,
            pids,
            kinds,
            bodies,
            taken,
            lease,
        )
        if dispatcher is not None and handed:
            # Only rows this batch wrote leased are sent: one already there (a notification
            # issued twice) is the claim's to send, or was sent.
            fresh = {r["delivery_id"] for r in written if r["status"] == "sending"}
            start = [row for delivery_id, row in handed.items() if delivery_id in fresh]
            left = [row for delivery_id, row in handed.items() if delivery_id not in fresh]
            tx.after_commit(
                functools.partial(dispatcher.hand_over, start, left),
                functools.partial(dispatcher.release, list(handed.values())),
            )
        if any(r["status"] == "pending" for r in written):
            await tx.conn.execute("SELECT pg_notify($1, $2)", CHANNEL, self.group_id)
        return state


class GuardedResolver(AbstractResolver):
    """Resolves as usual, then refuses a host any of whose addresses the policy refuses."""

    def __init__(self, allowed: Sequence[core.Network]) -> None:
        self.inner = ThreadedResolver()
        self.allowed = tuple(allowed)

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        found = await self.inner.resolve(host, port, family)
        addresses = [core.literal_address(r["host"]) for r in found]
        problem = core.addresses_problem([a for a in addresses if a is not None], self.allowed)
        if problem is not None or None in addresses:
            raise OSError(f"webhook target {host} refused: {problem or 'unreadable address'}")
        return found

    async def close(self) -> None:
        await self.inner.close()


_CLAIM = """
WITH busy AS (SELECT * FROM unnest($3::text[], $4::int[]) AS b(endpoint_id, n)),
ranked AS (
    SELECT d.delivery_id, d.endpoint_id, d.next_attempt_at,
           row_number() OVER (PARTITION BY d.endpoint_id
                              ORDER BY d.next_attempt_at, d.delivery_id) AS rn
    FROM webhook_deliveries d
    WHERE d.group_id = $1
      AND ((d.status = 'pending' AND d.next_attempt_at <= now())
           OR (d.status = 'sending' AND d.lease_until < now()))
)
SELECT r.delivery_id FROM ranked r LEFT JOIN busy b ON b.endpoint_id = r.endpoint_id
WHERE r.rn <= $5 - COALESCE(b.n, 0)
ORDER BY r.next_attempt_at, r.delivery_id LIMIT $2
"""

_TAKE = """
UPDATE webhook_deliveries d
SET status = CASE WHEN e.deleted_at IS NULL THEN 'sending' ELSE 'cancelled' END,
    lease_until = now() + make_interval(secs => $3)
FROM webhook_endpoints e
WHERE d.delivery_id = ANY($1::text[]) AND d.group_id = $2 AND e.endpoint_id = d.endpoint_id
  AND ((d.status = 'pending' AND d.next_attempt_at <= now())
       OR (d.status = 'sending' AND d.lease_until < now()))
RETURNING d.delivery_id, d.notification_id, d.endpoint_id, d.body, d.attempts, d.status,
          e.url, e.secret, e.previous_secret, e.previous_until > now() AS previous_valid
"""


# Each outcome applies only to the attempt it belongs to (still leased, attempts one fewer): a
# late write cannot undo what another worker did after this one's lease ran out.
_RECORD = """
UPDATE webhook_deliveries d
SET status = u.outcome, attempts = u.attempts, last_status = u.status, last_error = u.error,
    lease_until = NULL,
    delivered_at = CASE WHEN u.outcome = 'delivered' THEN now() ELSE d.delivered_at END,
    dead_at = CASE WHEN u.outcome = 'dead' THEN now() ELSE d.dead_at END,
    next_attempt_at = CASE WHEN u.outcome = 'pending'
                           THEN now() + make_interval(secs => u.delay)
                           ELSE d.next_attempt_at END
FROM unnest($1::text[], $2::text[], $3::int[], $4::int[], $5::text[], $6::float8[])
     AS u(id, outcome, attempts, status, error, delay)
WHERE d.delivery_id = u.id AND d.status = 'sending' AND d.attempts = u.attempts - 1
"""


class Dispatcher:
    """Sends due deliveries of one group; see the module's docstring."""

    def __init__(
        self,
        settings: Settings,
        pool: asyncpg.Pool,
        group_id: str = GROUP,
        *,
        draw: Callable[[], float] = random.random,
        poll_s: float = 1.0,
        claim_gap_s: float = CLAIM_GAP_S,
    ) -> None:
        self.settings = settings
        self.pool = pool
        self.group_id = group_id
        self.draw = draw
        self.poll_s = poll_s
        self.claim_gap_s = claim_gap_s
        self.policy = core.RetryPolicy(
            max_attempts=settings.webhook_max_attempts,
            base_s=settings.webhook_retry_base_s,
            cap_s=settings.webhook_retry_cap_s,
        )
        self.allowed = core.parse_networks(settings.webhook_allow_networks)
        # Secrets are stored encrypted (marketplace/secretbox.py); the ring follows its file.
        self.keys = key_file(settings.webhook_keys_path)
        self.lease_s = settings.webhook_timeout_s + 30
        self.wake = asyncio.Event()
        # Slots per endpoint in use: attempts under way and slots the inbox reserved for a
        # batch not yet committed (`reserved` of them).
        self.busy: Counter[str] = Counter()
        self.reserved = 0
        self.claiming = False
        # Endpoints with deliveries the inbox wrote pending because their slots were all busy.
        self.waiting: set[str] = set()
        self.tasks: set[asyncio.Task[None]] = set()
        self.session: aiohttp.ClientSession | None = None
        # Whether deliveries may be waiting in PostgreSQL (the last claim filled every free
        # slot, or a NOTIFY said new ones were written): only then does a finished attempt
        # make a claim; otherwise the poll finds retries that came due.
        self.backlog = True
        # Finished attempts' outcomes, written by one statement per flush (`_flush`).
        self.outcomes: list[tuple[str, str, int, int | None, str | None, float]] = []
        self.recorded = asyncio.Event()

    def reserve(self, endpoint_id: str) -> bool:
        """A slot for a delivery the inbox is about to write, if one is free; the inbox then
        calls `hand_over` or `release` for it."""
        if self.claiming or self.session is None or self.session.closed:
            # (While a claim is under way its count of busy slots must stay true: a slot
            # reserved now could be claimed from PostgreSQL a second time.)
            return False
        limit = self.settings.webhook_max_in_flight
        if len(self.tasks) + self.reserved >= limit:
            return False
        if self.busy[endpoint_id] >= self.settings.webhook_endpoint_concurrency:
            # Written pending: a claim takes it once one of the endpoint's attempts ends.
            self.waiting.add(endpoint_id)
            return False
        self.busy[endpoint_id] += 1
        self.reserved += 1
        return True

    def release(self, rows: Sequence[dict[str, Any]]) -> None:
        """Gives back the slots of deliveries that will not be handed over."""
        for row in rows:
            self.reserved -= 1
            self._free(row["endpoint_id"])

    def hand_over(self, rows: Sequence[dict[str, Any]], left: Sequence[dict[str, Any]]) -> None:
        """Starts attempts for deliveries a committed batch wrote already leased to this
        process; `left` are reserved slots the batch did not use."""
        self.release(left)
        session = self.session
        if session is None or session.closed:
            # Stopping: the leases run out and a worker sends them then.
            self.release(rows)
            return
        for row in rows:
            self.reserved -= 1
            self._start(session, row)
        IN_FLIGHT.set(len(self.tasks))

    def _start(self, session: aiohttp.ClientSession, row: Any) -> None:
        task = asyncio.create_task(self._attempt(session, row))
        self.tasks.add(task)
        task.add_done_callback(functools.partial(self._done, endpoint_id=row["endpoint_id"]))

    def _free(self, endpoint_id: str) -> None:
        self.busy[endpoint_id] -= 1
        if self.busy[endpoint_id] <= 0:
            del self.busy[endpoint_id]

    async def run(self, stop: asyncio.Event) -> None:
        self.keys.ring()  # no key file: stop now, with the operator's instructions
        listener = await connect(self.settings)
        await listener.add_listener(CHANNEL, lambda *_: self._notified())
        connector = aiohttp.TCPConnector(
            resolver=GuardedResolver(self.allowed), limit=self.settings.webhook_max_in_flight
        )
        session = aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(total=self.settings.webhook_timeout_s),
            headers={"User-Agent": "circular-exchange-webhooks/1"},
        )
        self.session = session
        flusher = asyncio.create_task(self._flush_forever())
        log.info("webhooks_dispatching", group=self.group_id)
        loop = asyncio.get_running_loop()
        last = float("-inf")
        # Whether the last claim filled every free slot. `self.backlog` is wider: a NOTIFY sets
        # it too, and it decides whether a finished attempt wakes this loop; this one decides
        # only whether the wake-up waits for the claim gap (a NOTIFY's claims at once).
        filled = False
        try:
            while not stop.is_set():
                # With a backlog (the last claim filled every free slot) every finished attempt
                # wakes the loop; the wake-ups of a short gap then make one claim. Without one,
                # a wake-up claims at once.
                gap = self.claim_gap_s - (loop.time() - last) if filled else 0.0
                if gap > 0:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), gap)
                    if stop.is_set():
                        break
                self.wake.clear()
                last = loop.time()
                try:
                    filled = await self._fill(session)
                    self.backlog = filled
                except (*UNREACHABLE, asyncpg.PostgresError) as exc:
                    # PostgreSQL away or restarting (found by the fault suite: a connection lost
                    # mid-claim raised InternalClientError and stopped the dispatcher for good).
                    log.warning("webhooks_claim_failed", error=repr(exc))
                stopping = asyncio.ensure_future(stop.wait())
                woken = asyncio.ensure_future(self.wake.wait())
                await asyncio.wait(
                    {stopping, woken}, timeout=self.poll_s, return_when=asyncio.FIRST_COMPLETED
                )
                stopping.cancel()
                woken.cancel()
        finally:
            # Attempts under way are abandoned: their leases run out and they are sent again.
            self.session = None
            for task in list(self.tasks):
                task.cancel()
            await asyncio.gather(*self.tasks, return_exceptions=True)
            flusher.cancel()
            await asyncio.gather(flusher, return_exceptions=True)
            # The outcomes of attempts that finished are written if PostgreSQL answers soon;
            # if not, their leases run out and they are sent again.
            with contextlib.suppress(TimeoutError, *UNREACHABLE, asyncpg.PostgresError):
                await asyncio.wait_for(self._flush(), 5.0)
            await session.close()
            await listener.close()

    def _notified(self) -> None:
        self.backlog = True
        self.wake.set()

    async def _fill(self, session: aiohttp.ClientSession) -> bool:
        """Claims due deliveries for the free slots and starts their attempts; True when every
        free slot was filled (more are likely due)."""
        free = self.settings.webhook_max_in_flight - len(self.tasks) - self.reserved
        if free <= 0:
            return True
        self.claiming = True
        try:
            busy = list(self.busy.items())
            async with self.pool.acquire() as conn:
                ids = await conn.fetch(
                    _CLAIM,
                    self.group_id,
                    free,
                    [e for e, _ in busy],
                    [n for _, n in busy],
                    self.settings.webhook_endpoint_concurrency,
                )
                if not ids:
                    return False
                rows = await conn.fetch(
                    _TAKE, [r["delivery_id"] for r in ids], self.group_id, self.lease_s
                )
        finally:
            self.claiming = False
        for row in rows:
            if row["status"] != "sending":
                continue
            self.busy[row["endpoint_id"]] += 1
            self._start(session, row)
        IN_FLIGHT.set(len(self.tasks))
        return len(ids) >= free

    def _done(self, task: asyncio.Task[None], endpoint_id: str) -> None:
        self.tasks.discard(task)
        self._free(endpoint_id)
        IN_FLIGHT.set(len(self.tasks))
        if not task.cancelled() and task.exception() is not None:
            log.error("webhook_attempt_crashed", error=repr(task.exception()))
        if self.backlog or endpoint_id in self.waiting:
            self.waiting.discard(endpoint_id)
            self.wake.set()

    async def _attempt(self, session: aiohttp.ClientSession, row: Any) -> None:
        body: bytes = row["body"]
        status: int | None = None
        error: str | None = None
        secrets: list[str] = []
        try:
            ring = self.keys.ring()
            secrets.append(ring.decrypt(row["secret"]))
            if row["previous_secret"] and row["previous_valid"]:
                secrets.append(ring.decrypt(row["previous_secret"]))
        except SecretKeyError as exc:
            # The message names the key id, never a secret or a key; retried like a failure.
            error = f"signing secret unreadable: {exc}"
        target, problem = core.target_problem(row["url"])
        literal = core.literal_address(target.host) if target else None
        if problem is None and literal is not None:
            problem = core.address_problem(literal, self.allowed)
        if error is None and problem is not None:
            error = f"target refused: {problem}"
        if error is None:
            headers = core.headers(secrets, row["notification_id"], int(time.time()), body)
            try:
                async with session.post(
                    row["url"], data=body, headers=headers, allow_redirects=False
                ) as response:
                    status = response.status
                    await response.content.read(4096)
            except TimeoutError:
                error = f"no answer within {self.settings.webhook_timeout_s:g} s"
            except (aiohttp.ClientError, OSError) as exc:
                error = f"{type(exc).__name__}: {exc}"[:500]
        ok = status is not None and 200 <= status < 300
        if status is not None and not ok:
            error = f"HTTP {status}"
        await self._record(row, ok, status, error)

    async def _record(self, row: Any, ok: bool, status: int | None, error: str | None) -> None:
        """Queues the attempt's outcome for the next flush; the slot is free at once (the row
        stays leased to this process until the flush writes it)."""
        attempts = row["attempts"] + 1
        if ok:
            ATTEMPTS.labels(outcome="delivered").inc()
            self._queue(row["delivery_id"], "delivered", attempts, status, None, 0.0)
            return
        delay = core.retry_delay(self.policy, attempts, self.draw())
        ATTEMPTS.labels(outcome="failed").inc()
        log.info(
            "webhook_attempt_failed",
            delivery_id=row["delivery_id"],
            endpoint_id=row["endpoint_id"],
            attempts=attempts,
            error=error,
            retry_in_s=delay,
        )
        if delay is None:
            DEAD.inc()
            self._queue(row["delivery_id"], "dead", attempts, status, error, 0.0)
            return
        self._queue(row["delivery_id"], "pending", attempts, status, error, delay)

    def _queue(
        self,
        delivery_id: str,
        outcome: str,
        attempts: int,
        status: int | None,
        error: str | None,
        delay: float,
    ) -> None:
        self.outcomes.append((delivery_id, outcome, attempts, status, error, delay))
        self.recorded.set()

    async def _flush_forever(self) -> None:
        """Writes queued outcomes: one statement for whatever finished while the last one ran
        (so an idle exchange writes each at once, a busy one many per statement)."""
        while True:
            await self.recorded.wait()
            self.recorded.clear()
            try:
                await self._flush()
            except (*UNREACHABLE, asyncpg.PostgresError) as exc:
                log.warning("webhooks_record_failed", error=repr(exc))
                self.recorded.set()
                await asyncio.sleep(1.0)

    async def _flush(self) -> None:
        taken, self.outcomes = self.outcomes, []
        if not taken:
            return
        try:
            async with self.pool.acquire() as conn:
                await conn.execute(_RECORD, *(list(c) for c in zip(*taken, strict=True)))
        except BaseException:
            self.outcomes[:0] = taken
            raise


async def run_webhooks(settings: Settings, stop: asyncio.Event, group_id: str = GROUP) -> None:
    """The inbox and the dispatcher side by side until `stop`."""
    from marketplace.runtime.service import run_consumer

    # Without waiting for the disk at commit unless the operator asks (the setting's comment
    # says why a lost commit only sends a webhook again).
    durable = settings.webhook_synchronous_commit
    pool = await create_pool(settings, synchronous_commit=durable)
    dispatcher = Dispatcher(settings, pool, group_id)
    try:
        await asyncio.gather(
            run_consumer(
                settings,
                group_id=group_id,
                topics=[TOPIC],
                processor=WebhookInbox(
                    group_id,
                    settings.webhook_keys_path,
                    dispatcher if settings.webhook_hand_over else None,
                ),
                stop=stop,
                synchronous_commit=durable,
            ),
            dispatcher.run(stop),
        )
    finally:
        await pool.close()
