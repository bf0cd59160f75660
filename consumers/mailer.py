"""E-mail to people (#20): `marketplace run mailer`.

Three parts in one process. The inbox (on the exactly-once runtime) reads partners.notifications
and, in the batch's transaction, decides for each member of the notified organisation (and of each
facilitator the notified SME consented to) what their preferences say: an immediate message
(rendered in their language and stored with a Message-ID derived from the notification and the
person), an item for their daily digest, or nothing. A person whose address is not verified gets
nothing and is counted (`marketplace_mail_skipped_total`). The digester makes each person's digest
once their hour has come in their time zone. The sender hands due messages to the relay (DKIM
signed), keeping each one's retry state in PostgreSQL like the webhook dispatcher: a failure (relay
away, refused) schedules the next attempt with backoff and jitter, and after the last one the
message is dead.

At least once, under one Message-ID: an attempt in flight holds a lease; a mailer killed between
the relay's acceptance and recording it leaves the lease to run out, and the next sends the same
stored bytes again (the same Message-ID, which mail systems use to drop the repeat)."""

from __future__ import annotations

import asyncio
import functools
import random
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import orjson

from marketplace import metrics
from marketplace.core import webhooks as retry
from marketplace.db import UNREACHABLE, Conn, connect, create_pool
from marketplace.logs import get_logger
from marketplace.mail import render, smtp
from marketplace.mail.links import link_key
from marketplace.mail.outbox import CHANNEL
from marketplace.mail.outbox import GROUP as MAIL_GROUP
from marketplace.mail.prefs import VERIFIED_SQL, preferences_from_row, zone_of_country
from marketplace.runtime import Transaction
from marketplace.runtime.decoding import decode_or_dead_letter
from marketplace.settings import Settings
from marketplace.translate import shredding
from schemas import topics
from schemas.partners import NotificationIssued

GROUP = MAIL_GROUP
TOPIC = topics.NOTIFICATIONS
log = get_logger(__name__)

SKIPPED = metrics.counter(
    "marketplace_mail_skipped_total",
    "notifications not mailed to a person who wanted them, by reason (unverified: no verified"
    " address)",
    ("reason",),
)
ATTEMPTS = metrics.counter(
    "marketplace_mail_attempts_total", "messages handed to the relay, by outcome", ("outcome",)
)
DEAD = metrics.counter("marketplace_mail_dead_letters_total", "messages given up on", ())
QUEUED = metrics.counter(
    "marketplace_mail_queued_total", "messages and digest items queued, by choice", ("choice",)
)

# The people a notification of each partner reaches: the partner's own members, and the members
# of every facilitator the partner (an SME) consented to (#20 item 1: facilitators get the mail of
# the SMEs that consented; the consents read model, as the API's checks read it).
_PEOPLE = f"""
WITH addressed AS (
    SELECT n AS notified, n AS member_of, NULL::text AS sme_name
    FROM unnest($1::text[]) AS n
    UNION ALL
    SELECT c.partner_id, c.facilitator_id, sme.name
    FROM consents c
    LEFT JOIN partners sme ON sme.partner_id = c.partner_id
    WHERE c.partner_id = ANY($1::text[]) AND c.status = 'granted'
)
SELECT a.notified, a.sme_name, p.person_id, p.partner_id, p.email, p.display_name, p.locale,
       mp.kinds::text AS kinds, mp.digest_hour, mp.time_zone, pa.country,
       {VERIFIED_SQL} AS verified
FROM addressed a
JOIN people p ON p.partner_id = a.member_of
LEFT JOIN mail_preferences mp ON mp.person_id = p.person_id
LEFT JOIN partners pa ON pa.partner_id = p.partner_id
WHERE p.disabled_at IS NULL
ORDER BY a.notified, p.person_id
"""  # noqa: S608 - constant SQL


def recipient_of(row: Any) -> render.Recipient:
    prefs = preferences_from_row(row)
    return render.Recipient(
        person_id=str(row["person_id"]),
        email=row["email"],
        name=row["display_name"],
        locale=row["locale"],
        zone=prefs.time_zone or zone_of_country(row["country"]),
    )


def on_behalf(data: dict[str, Any], row: Any) -> dict[str, Any]:
    """What a message shows: the notification's data, and for a facilitator's member the SME it
    came from (its name, else its id)."""
    if row["partner_id"] == row["notified"]:
        return data
    return data | {"on_behalf_of": row["sme_name"] or row["notified"]}


class MailInbox:
    """partners.notifications -> immediate messages and digest items, once per record (the
    runtime) and once per notification and person (the keys)."""

    def __init__(self, settings: Settings, group_id: str = GROUP) -> None:
        self.settings = settings
        self.group_id = group_id
        self.key = link_key(settings.mail_link_key_path)

    async def load(self, conn: Conn, topic: str, partition: int) -> None:  # noqa: ARG002
        return None

    async def process(self, tx: Transaction, state: None, records: Sequence[Any]) -> None:
        found: list[tuple[NotificationIssued, datetime]] = []
        for record in records:
            decoded = decode_or_dead_letter(tx, self.group_id, record)
            if decoded is not None and isinstance(decoded.event, NotificationIssued):
                found.append((decoded.event, decoded.envelope.time))
        if not found:
            return state
        if shredding.sealed_subjects(n for n, _ in found):
            # A nudge's message, a consent's note: opened for the mail (#21 item 8).
            ring = shredding.operator_ring(self.settings.webhook_keys_path)
            found = await shredding.open_notifications(tx.conn, ring, found)
        rows = await tx.conn.fetch(_PEOPLE, sorted({n.partner_id for n, _ in found}))
        people: dict[str, list[Any]] = {}
        for r in rows:
            people.setdefault(r["notified"], []).append(r)
        mails: list[tuple[str, uuid.UUID, str, str, str, bytes]] = []
        items: list[tuple[uuid.UUID, str, str, str, str, datetime]] = []
        for n, at in found:
            for row in people.get(n.partner_id, []):
                if n.person_id is not None and str(row["person_id"]) != n.person_id:
                    continue  # one person's (a saved search's alert): not the others'
                choice = preferences_from_row(row).choice(n.kind)
                if choice == "none":
                    continue
                if not row["verified"]:
                    SKIPPED.labels(reason="unverified").inc()
                    continue
                QUEUED.labels(choice=choice).inc()
                shown = on_behalf(n.data, row)
                if choice == "digest":
                    data = orjson.dumps(shown).decode()
                    items.append((row["person_id"], n.notification_id, n.kind, n.summary, data, at))
                    continue
                to = recipient_of(row)
                mid, message = render.notification(
                    self.settings,
                    self.key,
                    to,
                    notification_id=n.notification_id,
                    kind=n.kind,
                    data=shown,
                    issued_at=at,
                )
                mails.append((mid, row["person_id"], n.kind, n.notification_id, to.email, message))
        if mails:
            await tx.conn.execute(
                "INSERT INTO mail_deliveries (group_id, message_id, person_id, kind,"
                " notification_id, recipient, message)"
                " SELECT $1, u.mid, u.pid, u.kind, u.nid, u.rcpt, u.msg FROM unnest($2::text[],"
                " $3::uuid[], $4::text[], $5::text[], $6::text[], $7::bytea[])"
                " AS u(mid, pid, kind, nid, rcpt, msg) ON CONFLICT DO NOTHING",
                self.group_id,
                *(list(c) for c in zip(*mails, strict=True)),
            )
            await tx.conn.execute("SELECT pg_notify($1, $2)", CHANNEL, self.group_id)
        if items:
            await tx.conn.execute(
                "INSERT INTO mail_digest_items (group_id, person_id, notification_id, kind,"
                " summary, data, issued_at)"
                " SELECT $1, u.pid, u.nid, u.kind, u.summary, u.data::jsonb, u.at"
                " FROM unnest($2::uuid[], $3::text[], $4::text[], $5::text[], $6::text[],"
                " $7::timestamptz[]) AS u(pid, nid, kind, summary, data, at)"
                " ON CONFLICT DO NOTHING",
                self.group_id,
                *(list(c) for c in zip(*items, strict=True)),
            )
        return state


# --- digests -----------------------------------------------------------------------------------


def last_cutoff(now: datetime, zone: str, hour: int) -> datetime:
    """The latest moment at or before `now` when the clock in `zone` showed `hour`:00 (the
    digest of that local day is due from then)."""
    tz = ZoneInfo(zone)
    local = now.astimezone(tz)
    day: date = local.date()
    at = datetime.combine(day, time(hour), tzinfo=tz)
    if at > local:
        at = datetime.combine(day - timedelta(days=1), time(hour), tzinfo=tz)
    return at


_WAITING = f"""
SELECT p.person_id, p.partner_id, p.email, p.display_name, p.locale,
       mp.kinds::text AS kinds, mp.digest_hour, mp.time_zone, pa.country,
       {VERIFIED_SQL} AS verified, min(i.issued_at) AS oldest
FROM mail_digest_items i
JOIN people p ON p.person_id = i.person_id
LEFT JOIN mail_preferences mp ON mp.person_id = p.person_id
LEFT JOIN partners pa ON pa.partner_id = p.partner_id
WHERE i.group_id = $1 AND i.digest_id IS NULL AND p.disabled_at IS NULL
GROUP BY p.person_id, mp.person_id, pa.partner_id
"""  # noqa: S608 - constant SQL


async def make_digests(
    conn: Conn, settings: Settings, key: bytes, group_id: str, now: datetime
) -> int:
    """Makes each digest that is due at `now`: per person, the items issued before their last
    digest hour, under a Message-ID of the person and that local day. Returns how many."""
    made = 0
    for row in await conn.fetch(_WAITING, group_id):
        prefs = preferences_from_row(row)
        to = recipient_of(row)
        cutoff = last_cutoff(now, to.zone, prefs.digest_hour)
        if row["oldest"] >= cutoff or not row["verified"]:
            continue
        day = cutoff.date().isoformat()
        async with conn.transaction():
            taken = await conn.fetch(
                "SELECT notification_id, kind, data::text AS data, issued_at"
                " FROM mail_digest_items WHERE group_id = $1 AND person_id = $2"
                " AND digest_id IS NULL AND issued_at < $3 ORDER BY issued_at FOR UPDATE",
                group_id,
                row["person_id"],
                cutoff,
            )
            if not taken:
                continue
            items = [render.Item(r["kind"], orjson.loads(r["data"]), r["issued_at"]) for r in taken]
            mid, message = render.digest(settings, key, to, day=day, items=items, at=cutoff)
            inserted = await conn.fetchval(
                "INSERT INTO mail_deliveries (group_id, message_id, person_id, kind, recipient,"
                " message) VALUES ($1, $2, $3, 'digest', $4, $5) ON CONFLICT DO NOTHING"
                " RETURNING true",
                group_id,
                mid,
                row["person_id"],
                to.email,
                message,
            )
            if not inserted:
                continue  # that day's digest went already: these wait for the next one
            await conn.execute(
                "UPDATE mail_digest_items SET digest_id = $4 WHERE group_id = $1"
                " AND person_id = $2 AND notification_id = ANY($3::text[])",
                group_id,
                row["person_id"],
                [r["notification_id"] for r in taken],
                mid,
            )
            made += 1
    return made


# --- sending -----------------------------------------------------------------------------------

_CLAIM = """
WITH picked AS MATERIALIZED (
    SELECT message_id FROM mail_deliveries
    WHERE group_id = $1
      AND ((status = 'pending' AND next_attempt_at <= now())
           OR (status = 'sending' AND lease_until < now()))
    ORDER BY next_attempt_at, message_id LIMIT $2 FOR UPDATE SKIP LOCKED)
UPDATE mail_deliveries d SET status = 'sending', lease_until = now() + make_interval(secs => $3)
FROM picked WHERE d.group_id = $1 AND d.message_id = picked.message_id
RETURNING d.message_id, d.kind, d.recipient, d.message, d.attempts
"""
# (A CTE, not `IN (SELECT ... LIMIT n FOR UPDATE SKIP LOCKED)`: PostgreSQL may run such a
# subquery more than once and claim more than n rows; found by the kill test.)


class Sender:
    """Hands due messages of one group to the relay; see the module's docstring."""

    def __init__(
        self,
        settings: Settings,
        pool: asyncpg.Pool,
        group_id: str = GROUP,
        *,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        draw: Callable[[], float] = random.random,
        poll_s: float = 1.0,
        digest_every_s: float = 60.0,
    ) -> None:
        self.settings = settings
        self.pool = pool
        self.group_id = group_id
        self.now = now
        self.draw = draw
        self.poll_s = poll_s
        self.digest_every_s = digest_every_s
        self.key = link_key(settings.mail_link_key_path)
        self.policy = retry.RetryPolicy(
            max_attempts=settings.mail_max_attempts,
            base_s=settings.mail_retry_base_s,
            cap_s=settings.mail_retry_cap_s,
        )
        self.wake = asyncio.Event()
        self.tasks: set[asyncio.Task[None]] = set()

    async def run(self, stop: asyncio.Event) -> None:
        listener = await connect(self.settings)
        await listener.add_listener(CHANNEL, lambda *_: self.wake.set())
        loop = asyncio.get_running_loop()
        next_digest = 0.0
        log.info("mailer_sending", group=self.group_id, relay=self.settings.mail_smtp_host)
        try:
            while not stop.is_set():
                self.wake.clear()
                try:
                    if loop.time() >= next_digest:
                        async with self.pool.acquire() as conn:
                            await make_digests(
                                conn, self.settings, self.key, self.group_id, self.now()
                            )
                        next_digest = loop.time() + self.digest_every_s
                    await self._fill()
                except (*UNREACHABLE, asyncpg.PostgresError) as exc:
                    log.warning("mailer_claim_failed", error=repr(exc))
                stopping = asyncio.ensure_future(stop.wait())
                woken = asyncio.ensure_future(self.wake.wait())
                await asyncio.wait(
                    {stopping, woken}, timeout=self.poll_s, return_when=asyncio.FIRST_COMPLETED
                )
                stopping.cancel()
                woken.cancel()
        finally:
            # Attempts under way are abandoned: their leases run out and they are sent again.
            for task in list(self.tasks):
                task.cancel()
            await asyncio.gather(*self.tasks, return_exceptions=True)
            await listener.close()

    async def _fill(self) -> None:
        free = self.settings.mail_max_in_flight - len(self.tasks)
        if free <= 0:
            return
        lease = self.settings.mail_smtp_timeout_s + 5
        async with self.pool.acquire() as conn:
            rows = await conn.fetch(_CLAIM, self.group_id, free, lease)
        for row in rows:
            task = asyncio.create_task(self._attempt(row))
            self.tasks.add(task)
            task.add_done_callback(functools.partial(self._done))

    def _done(self, task: asyncio.Task[None]) -> None:
        self.tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("mail_attempt_crashed", error=repr(task.exception()))
        self.wake.set()

    async def _attempt(self, row: Any) -> None:
        error = None
        try:
            await smtp.send(self.settings, bytes(row["message"]), row["recipient"])
        except smtp.RelayError as exc:
            error = str(exc)
        await self._record(row, error)

    async def _record(self, row: Any, error: str | None) -> None:
        attempts = row["attempts"] + 1
        async with self.pool.acquire() as conn:
            if error is None:
                ATTEMPTS.labels(outcome="sent").inc()
                # An account e-mail's link is a credential: not kept once it went out.
                await conn.execute(
                    "UPDATE mail_deliveries SET status = 'sent', attempts = $3, sent_at = now(),"
                    " last_error = NULL, lease_until = NULL,"
                    " message = CASE WHEN kind LIKE 'account.%' THEN ''::bytea ELSE message END"
                    " WHERE group_id = $1 AND message_id = $2 AND status = 'sending'",
                    self.group_id,
                    row["message_id"],
                    attempts,
                )
                return
            ATTEMPTS.labels(outcome="failed").inc()
            delay = retry.retry_delay(self.policy, attempts, self.draw())
            log.info(
                "mail_attempt_failed",
                message_id=row["message_id"],
                attempts=attempts,
                error=error,
                retry_in_s=delay,
            )
            if delay is None:
                DEAD.inc()
                await conn.execute(
                    "UPDATE mail_deliveries SET status = 'dead', attempts = $3, dead_at = now(),"
                    " last_error = $4, lease_until = NULL"
                    " WHERE group_id = $1 AND message_id = $2 AND status = 'sending'",
                    self.group_id,
                    row["message_id"],
                    attempts,
                    error,
                )
                return
            await conn.execute(
                "UPDATE mail_deliveries SET status = 'pending', attempts = $3, last_error = $4,"
                " next_attempt_at = now() + make_interval(secs => $5), lease_until = NULL"
                " WHERE group_id = $1 AND message_id = $2 AND status = 'sending'",
                self.group_id,
                row["message_id"],
                attempts,
                error,
                delay,
            )


async def run_mailer(
    settings: Settings,
    stop: asyncio.Event,
    group_id: str = GROUP,
    *,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
    poll_s: float = 1.0,
    digest_every_s: float = 60.0,
) -> None:
    """The inbox and the sender side by side until `stop`."""
    from marketplace.runtime.service import run_consumer

    pool = await create_pool(settings)
    sender = Sender(settings, pool, group_id, now=now, poll_s=poll_s, digest_every_s=digest_every_s)
    try:
        await asyncio.gather(
            run_consumer(
                settings,
                group_id=group_id,
                topics=[TOPIC],
                processor=MailInbox(settings, group_id),
                stop=stop,
            ),
            sender.run(stop),
        )
    finally:
        await pool.close()
