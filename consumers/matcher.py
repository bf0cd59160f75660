"""The matcher: one partition's book in memory, the pure core deciding, PostgreSQL keeping the
book, the emitted events and the offset in one transaction (decisions 2, 3, 4).

`marketplace run matcher` runs one instance; more instances in the group share the partitions
of market.listings, whose key (the material family of the List of Waste code) keeps every
listing that can meet another, and every answer and timer a decision depends on, in one
partition.

A family the operator splits into geographic cells (MARKETPLACE_SPLIT_FAMILIES,
marketplace/core/shards.py) is not decided here: its records go on to market.cells, a post
under its cell's key (or the family's wide key for a request reaching beyond its cell), every
other record to all the family's keys (answers and timers to its cells), and the cells consumer
(consumers/cells.py) decides them."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import msgspec

from marketplace.core.book import Book, Listing, Proposal, Standing
from marketplace.core.matching import (
    Confirmed,
    DeliveryDue,
    MarketConfig,
    Proposed,
)
from marketplace.core.shards import ShardPlan
from marketplace.core.taxonomy import UnknownCode
from marketplace.core.units import IncompatibleUnits
from marketplace.db import Conn
from marketplace.events import Decoded
from marketplace.logs import get_logger
from marketplace.runtime import OutboxMessage, Transaction
from marketplace.runtime.deadletter import dead_letter
from marketplace.runtime.decoding import decode_or_dead_letter
from marketplace.timers import schedule, schedule_many
from marketplace.translate.common import place_of
from marketplace.translate.matching import (
    deadline_timer,
    decide,
    period_timer,
    source_of,
    to_command,
)
from schemas import listings as ls
from schemas import topics

GROUP = "matcher"
TOPIC = topics.LISTINGS
log = get_logger(__name__)
_json = msgspec.json.Encoder()


# The processor -----------------------------------------------------------------------------------


def cell_keys(plan: ShardPlan, family: str, decoded: Decoded) -> tuple[str, ...]:
    """The market.cells keys a record of a split family goes to: a post to its cell's (or the
    wide key, for a request reaching beyond its cell), an update or withdrawal to every key of
    the family (the one holding the listing acts), an answer or timer to every cell."""
    e = decoded.event
    if isinstance(e, ls.OfferPosted):
        return (plan.key(family, "offer", place_of(e.location), None),)
    if isinstance(e, ls.RequestPosted):
        return (plan.key(family, "request", place_of(e.location), e.terms.max_distance_km),)
    every = plan.keys(family)
    if isinstance(e, ls.OfferUpdated | ls.RequestUpdated | ls.OfferWithdrawn | ls.RequestWithdrawn):
        return every
    return every[:-1]


class Matcher:
    def __init__(
        self,
        config: MarketConfig,
        group_id: str = GROUP,
        plan: ShardPlan | None = None,
        cells_topic: str = topics.CELLS,
    ) -> None:
        self.config = config
        self.group_id = group_id
        # Every instance of a group signs its events alike; groups are told apart.
        self.source = source_of(group_id)
        self.plan = plan or ShardPlan()
        self.cells_topic = cells_topic  # where a split family's records go (a copy in tests)

    async def load(self, conn: Conn, topic: str, partition: int) -> Book:
        book = Book()
        key = (self.group_id, topic, partition)
        book.seq = (
            await conn.fetchval(
                "SELECT seq FROM matcher_partitions WHERE group_id = $1 AND topic = $2"
                " AND partition = $3",
                *key,
            )
            or 0
        )
        rows = await conn.fetch(
            "SELECT kind, body FROM matcher_items WHERE group_id = $1 AND topic = $2"
            " AND partition = $3",
            *key,
        )
        for row in rows:
            if row["kind"] == "listing":
                listing = msgspec.json.decode(row["body"], type=Listing)
                book.listings[listing.id] = listing
                book.file(listing, self.config.substitutions)
        for row in rows:
            if row["kind"] == "proposal":
                book.add_proposal(msgspec.json.decode(row["body"], type=Proposal))
            elif row["kind"] == "agreement":
                standing = msgspec.json.decode(row["body"], type=Standing)
                book.agreements[standing.proposal.match_id] = standing
        pairs = await conn.fetch(
            "SELECT offer_id, request_id FROM matcher_closed_pairs WHERE group_id = $1"
            " AND topic = $2 AND partition = $3",
            *key,
        )
        book.closed_pairs = {(r["offer_id"], r["request_id"]) for r in pairs}
        book.dirty.clear()
        return book

    async def process(self, tx: Transaction, book: Book, records: Sequence[Any]) -> Book:
        closed_before = set(book.closed_pairs)
        # The batch's timers, written in one statement with its other effects.
        timers: list[tuple[str, OutboxMessage, datetime]] = []
        for record in records:
            decoded = decode_or_dead_letter(tx, self.group_id, record)
            if decoded is None:
                continue
            if self.plan.families and record.key is not None:
                family = record.key.decode()
                if family in self.plan.families:
                    headers = tuple(record.headers)
                    for key in cell_keys(self.plan, family, decoded):
                        tx.emit(
                            OutboxMessage(self.cells_topic, key.encode(), record.value, headers)
                        )
                    continue
            try:
                command = to_command(decoded, book)
            except (UnknownCode, IncompatibleUnits, ValueError) as exc:
                # The API validates the same rules, so this is a record from elsewhere.
                reason = f"{decoded.envelope.type}: {exc}"
                log.warning("dead_letter", offset=record.offset, reason=reason)
                tx.emit(dead_letter(self.group_id, record, reason))
                continue
            if command is None:
                continue
            book, out = decide(book, command, decoded, self.config, self.source)
            for event, message in out:
                tx.emit(message)
                if isinstance(event, Proposed):
                    timers.append(deadline_timer(event.proposal))
                elif isinstance(event, Confirmed) and event.first_period is not None:
                    timers.append(period_timer(event.proposal, *event.first_period))
                elif isinstance(event, DeliveryDue):
                    timers.append(period_timer(event.standing.proposal, *event.next_period))
        await schedule_many(tx.conn, timers)
        await self._save(tx, book, closed_before)
        return book

    async def ask_deadline(self, conn: Conn, p: Proposal) -> None:
        """Asks for the proposal's answer period to end by a timer (MatchDeadlineDue)."""
        await schedule(conn, *deadline_timer(p))

    async def replace_book(self, conn: Conn, topic: str, partition: int, book: Book) -> None:
        """Writes `book` as the partition's whole book, in place of what was there (the move to
        the family key, `marketplace rebuild rekey`)."""
        key = (self.group_id, topic, partition)
        await conn.execute(
            "DELETE FROM matcher_items WHERE group_id = $1 AND topic = $2 AND partition = $3",
            *key,
        )
        await conn.execute(
            "DELETE FROM matcher_closed_pairs WHERE group_id = $1 AND topic = $2"
            " AND partition = $3",
            *key,
        )
        book.dirty.update(book.listings, book.proposals, book.agreements)
        await self._save(Transaction(conn, topic, partition), book, set())

    async def _save(self, tx: Transaction, book: Book, closed_before: set[tuple[str, str]]) -> None:
        key = (self.group_id, tx.topic, tx.partition)
        upserts: list[tuple[str, str, str]] = []
        deletes: list[str] = []
        for item in sorted(book.dirty):
            if item in book.listings:
                upserts.append((item, "listing", _json.encode(book.listings[item]).decode()))
            elif item in book.proposals:
                upserts.append((item, "proposal", _json.encode(book.proposals[item]).decode()))
            elif item in book.agreements:
                upserts.append((item, "agreement", _json.encode(book.agreements[item]).decode()))
            else:
                deletes.append(item)
        if upserts:
            await tx.conn.execute(
                "INSERT INTO matcher_items (group_id, topic, partition, item_id, kind, body)"
                " SELECT $1, $2, $3, u.id, u.kind, u.body::jsonb"
                " FROM unnest($4::text[], $5::text[], $6::text[]) AS u(id, kind, body)"
                " ON CONFLICT (group_id, topic, partition, item_id)"
                " DO UPDATE SET body = EXCLUDED.body, kind = EXCLUDED.kind",
                *key,
                [u[0] for u in upserts],
                [u[1] for u in upserts],
                [u[2] for u in upserts],
            )
        if deletes:
            await tx.conn.execute(
                "DELETE FROM matcher_items WHERE group_id = $1 AND topic = $2"
                " AND partition = $3 AND item_id = ANY($4::text[])",
                *key,
                deletes,
            )
        new_pairs = sorted(book.closed_pairs - closed_before)
        if new_pairs:
            await tx.conn.execute(
                "INSERT INTO matcher_closed_pairs"
                " (group_id, topic, partition, offer_id, request_id)"
                " SELECT $1, $2, $3, o, r FROM unnest($4::text[], $5::text[]) AS u(o, r)"
                " ON CONFLICT DO NOTHING",
                *key,
                [p[0] for p in new_pairs],
                [p[1] for p in new_pairs],
            )
        await tx.conn.execute(
            "INSERT INTO matcher_partitions (group_id, topic, partition, seq)"
            " VALUES ($1, $2, $3, $4)"
            " ON CONFLICT (group_id, topic, partition) DO UPDATE SET seq = EXCLUDED.seq",
            *key,
            book.seq,
        )
        book.dirty.clear()
