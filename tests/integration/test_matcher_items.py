"""How the matcher keeps its book in PostgreSQL (`matcher_items`, migration 0034; issue #18
target 2): items as msgpack `bytea` read back equal to what was written, times with their own
UTC offsets; rows that migration 0034 carried over from `jsonb` (JSON text) still read; a batch
writes only the items whose stored body changed, deletes the items that closed, and sends no
deletion for an item that was never stored. On the real PostgreSQL of the test stack."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import AsyncIterator
from datetime import datetime, timedelta, timezone
from typing import Any

import msgspec
import pytest

from consumers.matcher import Matcher, decode_item, encode_item
from loadtests.bench_matcher_io import SOURCE, filled_books
from loadtests.simmix import SimMix
from marketplace.core.book import Book, Listing
from marketplace.db import Conn, connect
from marketplace.events import Decoded
from marketplace.runtime import Transaction
from marketplace.settings import Settings
from marketplace.translate.matching import decide, market_config

pytestmark = pytest.mark.integration


@pytest.fixture
async def conn(settings: Settings) -> AsyncIterator[Conn]:
    c = await connect(settings)
    try:
        yield c
    finally:
        await c.close()


class _Mix(SimMix):
    """The simulator's mix, keeping the contract event of its last command."""

    last: Decoded | None = None

    def _decoded(self, event: Any, at_s: float, subject: str) -> Decoded:
        self.last = super()._decoded(event, at_s, subject)
        return self.last


def busy_book(settings: Settings) -> Book:
    """A book with listings and open proposals (the simulator's mix through the core), one
    listing's window moved to UTC+1."""
    config = market_config(settings)
    book = filled_books(150, 11, 1, config)[0]
    mix = _Mix(12)
    while len(book.proposals) < 3:
        command = next(mix)
        assert mix.last is not None
        book, out = decide(book, command, mix.last, config, SOURCE)
        mix.observe([e for e, _ in out])
    first = next(iter(book.listings.values()))
    plus_one = timezone(timedelta(hours=1))
    terms = dataclasses.replace(
        first.terms,
        start=first.terms.start.astimezone(plus_one),
        end=first.terms.end.astimezone(plus_one),
    )
    book.listings[first.id] = dataclasses.replace(first, terms=terms)
    return book


async def rows(conn: Conn, m: Matcher, topic: str) -> dict[str, tuple[str, bytes, int]]:
    found = await conn.fetch(
        "SELECT item_id, kind, body, xmin::text::bigint AS version FROM matcher_items"
        " WHERE group_id = $1 AND topic = $2 AND partition = 0",
        m.group_id,
        topic,
    )
    return {r["item_id"]: (r["kind"], r["body"], r["version"]) for r in found}


async def test_book_round_trip_keeps_items_and_their_offsets(
    settings: Settings, conn: Conn
) -> None:
    m = Matcher(market_config(settings), f"test.items.{uuid.uuid4().hex[:8]}")
    topic = "test.matcher-items"
    book = busy_book(settings)
    async with conn.transaction():
        await m.replace_book(conn, topic, 0, book)
    try:
        stored = await rows(conn, m, topic)
        assert len(stored) == len(book.listings) + len(book.proposals) + len(book.agreements)
        assert all(body[:1] != b"{" for _, body, _ in stored.values())  # msgpack, not JSON
        again = await Matcher(market_config(settings), m.group_id).load(conn, topic, 0)
        assert again.listings == book.listings
        assert again.proposals == book.proposals
        assert again.agreements == book.agreements
        shifted = [
            item for item in again.listings.values() if item.terms.start.utcoffset() != timedelta()
        ]
        assert [x.terms.start.utcoffset() for x in shifted] == [timedelta(hours=1)]
        assert again.by_listing == book.by_listing
    finally:
        await conn.execute("DELETE FROM matcher_items WHERE group_id = $1", m.group_id)
        await conn.execute("DELETE FROM matcher_partitions WHERE group_id = $1", m.group_id)
        await conn.execute("DELETE FROM matcher_closed_pairs WHERE group_id = $1", m.group_id)


async def test_rows_carried_over_as_json_text_are_read(settings: Settings, conn: Conn) -> None:
    m = Matcher(market_config(settings), f"test.items.{uuid.uuid4().hex[:8]}")
    topic = "test.matcher-items"
    listing = next(iter(busy_book(settings).listings.values()))
    # What migration 0034 leaves of a jsonb row: PostgreSQL's own text of the document.
    await conn.execute(
        "INSERT INTO matcher_items (group_id, topic, partition, item_id, kind, body)"
        " VALUES ($1, $2, 0, $3, 'listing', convert_to($4::jsonb::text, 'UTF8'))",
        m.group_id,
        topic,
        listing.id,
        msgspec.json.encode(listing).decode(),
    )
    try:
        book = await m.load(conn, topic, 0)
        assert book.listings == {listing.id: listing}
        assert decode_item("listing", encode_item(listing)) == listing
        # Its next change is written as msgpack.
        book.listings[listing.id] = dataclasses.replace(listing, reserved=listing.reserved + 1)
        book.dirty.add(listing.id)
        async with conn.transaction():
            await m.process(Transaction(conn, topic, 0), book, [])
        (_, body, _) = (await rows(conn, m, topic))[listing.id]
        assert body[:1] != b"{"
        assert msgspec.msgpack.decode(body, type=Listing).reserved == listing.reserved + 1
    finally:
        await conn.execute("DELETE FROM matcher_items WHERE group_id = $1", m.group_id)
        await conn.execute("DELETE FROM matcher_partitions WHERE group_id = $1", m.group_id)


async def test_a_batch_writes_what_changed_and_deletes_what_closed(
    settings: Settings, conn: Conn
) -> None:
    m = Matcher(market_config(settings), f"test.items.{uuid.uuid4().hex[:8]}")
    topic = "test.matcher-items"
    async with conn.transaction():
        await m.replace_book(conn, topic, 0, busy_book(settings))
    try:
        book = await m.load(conn, topic, 0)
        before = await rows(conn, m, topic)
        same, changed = list(book.listings)[:2]
        closed = next(iter(book.proposals))
        book.listings[changed] = dataclasses.replace(book.listings[changed], reserved=7.5)
        del book.proposals[closed]
        book.seq += 1
        # Dirty: one unchanged, one changed, one closed, one never stored.
        book.dirty.update({same, changed, closed, "never-stored"})
        async with conn.transaction():
            await m.process(Transaction(conn, topic, 0), book, [])
        after = await rows(conn, m, topic)
        assert after[same] == before[same]  # not rewritten: same row version
        assert after[changed][2] != before[changed][2]
        assert decode_item("listing", after[changed][1]).reserved == 7.5
        assert closed not in after
        assert set(after) == set(before) - {closed}
        seq = await conn.fetchval(
            "SELECT seq FROM matcher_partitions WHERE group_id = $1 AND topic = $2"
            " AND partition = 0",
            m.group_id,
            topic,
        )
        assert seq == book.seq
        # A fresh load gives the book as the batch left it.
        again = await Matcher(market_config(settings), m.group_id).load(conn, topic, 0)
        assert again.listings == book.listings
        assert again.proposals == book.proposals
        assert book.dirty == set()
        assert isinstance(again.listings[changed].terms.start, datetime)
    finally:
        await conn.execute("DELETE FROM matcher_items WHERE group_id = $1", m.group_id)
        await conn.execute("DELETE FROM matcher_partitions WHERE group_id = $1", m.group_id)
        await conn.execute("DELETE FROM matcher_closed_pairs WHERE group_id = $1", m.group_id)
