"""Reminders (#20 item 3): `marketplace run reminders`.

Reads what the log says of proposals, listings, standing agreements and deliveries
(`market.listings`, `market.matches`) and its own timers (`market.reminders`), on the
exactly-once runtime. Per batch, in its transaction: the facts each event gives are kept per
subject in `reminder_facts` (one copy per consumer group, so a replay of the log decides the
same), the pure core (marketplace/core/reminders.py) says for each subject the batch touched
which reminders are due at the time of the subject's latest event, and when to look again; each
due reminder is recorded as sent and emitted as a notification on `partners.notifications` (so
the mailer, the webhooks and the pages get it by the notifications' own path), and a timer is
asked for each later moment (marketplace/timers.py; the scheduler publishes a `ReminderDue`
then, which this consumer reads like any other event).

Subjects are locked for the batch (advisory locks of the transaction, in one order), as one
subject's facts arrive on several partitions at once.

Once: a reminder's id derives from its rule, subject, occasion and recipient, and it is emitted
only by the transaction whose insert of its `Reminded` row wins (two instances deciding one
subject at once: the second waits for the first's commit and finds the row)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from marketplace.core import reminders as core
from marketplace.core.book import Listing
from marketplace.db import Conn
from marketplace.logs import get_logger
from marketplace.runtime import Transaction
from marketplace.runtime.decoding import decode_or_dead_letter
from marketplace.settings import Settings
from marketplace.timers import schedule_many
from marketplace.translate.matching import findings_of, market_config
from marketplace.translate.reminders import (
    Posted,
    Row,
    decode_fact,
    facts_of,
    notification,
    source_of,
    subjects_of,
    timer,
    timestamp_of,
)
from schemas import topics

GROUP = "reminders"
TOPICS = (topics.LISTINGS, topics.MATCHES, topics.REMINDERS)
log = get_logger(__name__)


class Reminders:
    """Stateless between batches: the facts live in the group's rows of `reminder_facts`."""

    def __init__(self, settings: Settings, group_id: str = GROUP) -> None:
        self.config = market_config(settings)
        self.group_id = group_id
        self.source = source_of(group_id)

    async def load(self, conn: Conn, topic: str, partition: int) -> None:  # noqa: ARG002
        return None

    async def process(self, tx: Transaction, state: None, records: Sequence[Any]) -> None:
        decoded = []
        for record in records:
            d = decode_or_dead_letter(tx, self.group_id, record)
            if d is not None:
                decoded.append((d, timestamp_of(record)))
        if not decoded:
            return state
        # A changed listing's facts are read first (the change needs the listing as posted);
        # every subject touched is read after the batch's facts are in.
        known = await self._facts(tx.conn, {s for d, _ in decoded for s in subjects_of(d.event)})
        new: list[Row] = []
        now: dict[str, datetime] = {}
        codes: dict[str, str] = {}

        def touched(subject: str, code: str, at: datetime) -> None:
            codes[subject] = code
            now[subject] = max(now.get(subject, at), at)

        for d, received in decoded:
            rows = facts_of(
                d, lambda listing: findings_of(listing, self.config), _posted(known), received
            )
            for row in rows:
                known.setdefault(row.subject_id, []).append(row.fact)
                touched(row.subject_id, row.material_code, d.envelope.time)
            new += rows
        # One subject's facts come from several partitions, decided in transactions of their
        # own: each takes the subjects' locks (in one order) before it writes and reads them, so
        # that of two batches the second sees the first's facts (a timer read in one and the
        # proposal in another would otherwise each decide without the other).
        await tx.conn.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended($1 || '/' || s, 0))"
            " FROM unnest($2::text[]) AS s ORDER BY s",
            self.group_id,
            sorted(now),
        )
        if new:
            await tx.conn.execute(
                "INSERT INTO reminder_facts (group_id, subject_id, fact_id, kind, body, at)"
                " SELECT $1, u.s, u.f, u.k, u.b::jsonb, u.at FROM unnest($2::text[], $3::text[],"
                " $4::text[], $5::text[], $6::timestamptz[]) AS u(s, f, k, b, at)"
                " ON CONFLICT DO NOTHING",
                self.group_id,
                [r.subject_id for r in new],
                [r.fact_id for r in new],
                [r.kind for r in new],
                [r.body() for r in new],
                [r.fact.at for r in new],
            )
        known = await self._facts(tx.conn, set(now))
        await self._decide(tx, known, now, codes)
        return state

    async def _decide(
        self,
        tx: Transaction,
        known: dict[str, list[core.Fact]],
        now: dict[str, datetime],
        codes: dict[str, str],
    ) -> None:
        due: list[core.Reminder] = []
        wake: list[tuple[str, Any, datetime]] = []
        for subject in sorted(now):
            plan = core.plan(known.get(subject, []), now[subject])
            due += plan.due
            wake += [(*timer(subject, codes[subject], at), at) for at in plan.wake]
        if due:
            won = await tx.conn.fetch(
                "INSERT INTO reminder_facts (group_id, subject_id, fact_id, kind, body, at)"
                " SELECT $1, u.s, u.f, 'Reminded', u.b::jsonb, u.at FROM unnest($2::text[],"
                " $3::text[], $4::text[], $5::timestamptz[]) AS u(s, f, b, at)"
                " ON CONFLICT DO NOTHING RETURNING fact_id",
                self.group_id,
                [r.subject_id for r in due],
                [r.reminder_id for r in due],
                [_sent(r) for r in due],
                [r.due_at for r in due],
            )
            sent = {w["fact_id"] for w in won}
            for r in due:
                if r.reminder_id in sent:
                    sent.discard(r.reminder_id)  # once, even if two rules named it
                    tx.emit(notification(r, self.source))
                    log.info("reminder_sent", kind=r.kind, subject_id=r.subject_id)
        await schedule_many(tx.conn, wake)

    async def _facts(self, conn: Conn, subjects: set[str]) -> dict[str, list[core.Fact]]:
        out: dict[str, list[core.Fact]] = {s: [] for s in subjects}
        if not subjects:
            return out
        rows = await conn.fetch(
            "SELECT subject_id, kind, body::text AS body FROM reminder_facts"
            " WHERE group_id = $1 AND subject_id = ANY($2::text[]) ORDER BY at, fact_id",
            self.group_id,
            sorted(subjects),
        )
        for r in rows:
            out[r["subject_id"]].append(decode_fact(r["kind"], r["body"]))
        return out


def _sent(r: core.Reminder) -> str:
    """The body of the `Reminded` fact of a reminder."""
    return Row(r.subject_id, "", r.reminder_id, core.Reminded(r.due_at, r.reminder_id)).body()


def _posted(known: dict[str, list[core.Fact]]) -> Posted:
    """The listing as posted, from the facts known so far (for a change of its terms)."""

    def posted(listing_id: str) -> Listing | None:
        for fact in known.get(listing_id, []):
            if isinstance(fact, core.ListingPosted):
                return fact.listing
        return None

    return posted
