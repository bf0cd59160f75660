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

import hashlib
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

# The book's items as stored (`matcher_items.body`, bytea since migration 0034): msgpack of the
# core's record, its times as RFC 3339 text (msgpack's own timestamps would turn every offset
# into UTC, and events made after a reload would show their times otherwise than before it).
# A row still holding the JSON text that migration 0034 carried over from jsonb starts with
# "{", which no msgpack map does; it is read as JSON and written as msgpack when it next changes.
_msgpack = msgspec.msgpack.Encoder()
_ITEM_TYPES: dict[str, Any] = {"listing": Listing, "proposal": Proposal, "agreement": Standing}
_from_msgpack = {kind: msgspec.msgpack.Decoder(t) for kind, t in _ITEM_TYPES.items()}
_from_json = {kind: msgspec.json.Decoder(t) for kind, t in _ITEM_TYPES.items()}


def encode_item(item: Listing | Proposal | Standing) -> bytes:
    """A book item's stored body."""
    return _msgpack.encode(msgspec.to_builtins(item))


def decode_item(kind: str, body: bytes) -> Any:
    """A stored body back into the core's record of its kind."""
    if body[:1] == b"{":
        return _from_json[kind].decode(body)
    return _from_msgpack[kind].decode(body)


def _digest(body: bytes) -> bytes:
    return hashlib.blake2b(body, digest_size=16).digest()


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
        # Per partition, what `matcher_items` holds: each stored item's id and a digest of its
        # body, as read by `load` and kept by `_save` since. An item whose body did not change is
        # not written again, and one never stored is not deleted. Only for a partition whose
        # book this instance loaded (or replaced): the runtime loads the book again after any
        # failed batch, a fence or a new assignment, which starts this record afresh too.
        self._stored: dict[tuple[str, int], dict[str, bytes]] = {}

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
            "SELECT item_id, kind, body FROM matcher_items WHERE group_id = $1 AND topic = $2"
            " AND partition = $3",
            *key,
        )
        for row in rows:
            if row["kind"] == "listing":
                listing = decode_item("listing", row["body"])
                book.listings[listing.id] = listing
                book.file(listing, self.config.substitutions)
        for row in rows:
            if row["kind"] == "proposal":
                book.add_proposal(decode_item("proposal", row["body"]))
            elif row["kind"] == "agreement":
                standing = decode_item("agreement", row["body"])
                book.agreements[standing.proposal.match_id] = standing
        self._stored[(topic, partition)] = {r["item_id"]: _digest(r["body"]) for r in rows}
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
        self._stored[(topic, partition)] = {}
        book.dirty.update(book.listings, book.proposals, book.agreements)
        await self._save(Transaction(conn, topic, partition), book, set())

    async def _save(self, tx: Transaction, book: Book, closed_before: set[tuple[str, str]]) -> None:
        """The batch's changes to the book, in one statement: the items that changed (written
        as a whole), those that closed (deleted), the pairs closed and the book's sequence."""
        key = (self.group_id, tx.topic, tx.partition)
        stored = self._stored.get((tx.topic, tx.partition))
        ids: list[str] = []
        kinds: list[str] = []
        bodies: list[bytes] = []
        deletes: list[str] = []
        for item in sorted(book.dirty):
            found: Listing | Proposal | Standing | None
            if (found := book.listings.get(item)) is not None:
                kind = "listing"
            elif (found := book.proposals.get(item)) is not None:
                kind = "proposal"
            elif (found := book.agreements.get(item)) is not None:
                kind = "agreement"
            else:
                if stored is None or stored.pop(item, None) is not None:
                    deletes.append(item)
                continue
            body = encode_item(found)
            if stored is not None:
                digest = _digest(body)
                if stored.get(item) == digest:
                    continue
                stored[item] = digest
            ids.append(item)
            kinds.append(kind)
            bodies.append(body)
        new_pairs = sorted(book.closed_pairs - closed_before)
        await tx.conn.execute(
            "WITH gone AS ("
            "  DELETE FROM matcher_items WHERE group_id = $1 AND topic = $2"
            "  AND partition = $3 AND item_id = ANY($4::text[])"
            "), written AS ("
            "  INSERT INTO matcher_items (group_id, topic, partition, item_id, kind, body)"
            "  SELECT $1, $2, $3, u.id, u.kind, u.body"
            "  FROM unnest($5::text[], $6::text[], $7::bytea[]) AS u(id, kind, body)"
            "  ON CONFLICT (group_id, topic, partition, item_id)"
            "  DO UPDATE SET body = EXCLUDED.body, kind = EXCLUDED.kind"
            "), pairs AS ("
            "  INSERT INTO matcher_closed_pairs"
            "  (group_id, topic, partition, offer_id, request_id)"
            "  SELECT $1, $2, $3, o, r FROM unnest($8::text[], $9::text[]) AS u(o, r)"
            "  ON CONFLICT DO NOTHING"
            ")"
            " INSERT INTO matcher_partitions (group_id, topic, partition, seq)"
            " VALUES ($1, $2, $3, $10)"
            " ON CONFLICT (group_id, topic, partition) DO UPDATE SET seq = EXCLUDED.seq",
            *key,
            deletes,
            ids,
            kinds,
            bodies,
            [p[0] for p in new_pairs],
            [p[1] for p in new_pairs],
            book.seq,
        )
        book.dirty.clear()
