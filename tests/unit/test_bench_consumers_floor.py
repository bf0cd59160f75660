"""The exactly-once floors of loadtests/bench_consumers.py: for the consumers that emit (the
notifier and the auctioneer), what each record makes them write and emit, built before the clock
by the consumers' own code, and the arguments of a batch's one statement; for the consumers that
tell people, how a run's rows are dealt over the records and written again."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import orjson
import pytest

from loadtests import bench_consumers as bench
from marketplace.core import auction as core
from marketplace.events import Decoded, decode, to_message
from schemas import common
from schemas import matches as ms


def decoded(messages: list[Any]) -> list[Decoded]:
    return [decode(m.topic, m.value, m.headers) for m in messages]


def test_the_auctioneers_effects_save_each_job_and_ask_its_deadline_once() -> None:
    records = decoded(bench.job_events(6, seed=3))
    auctions: dict[str, core.Auction] = {}
    asked: set[str] = set()
    config = core.AuctionConfig(early_close_quotes=1)  # the first fitting quote wins at once
    effects = [bench.auctioneer_effects(d, auctions, asked, config) for d in records]
    assert sum(len(e.rows) for e in effects) == len(asked) == 6  # one deadline timer per job
    assert {a.status for a in auctions.values()} == {"awarded"}
    awards = [m for e in effects for m in e.outbox if m[0] == "logistics.awards"]
    assert len(awards) >= 6
    assert sum(len(e.sent) for e in effects) == sum(len(e.outbox) for e in effects)
    # A batch saves each job once, as its last record left it, as the consumer does.
    args = bench.floor_batch("auctioneer", "g", bench.JOBS, 2, effects, [7, 8])
    assert args[:3] == ["g", bench.JOBS, 2]
    job_ids, statuses, bodies = args[9:12]
    assert sorted(job_ids) == sorted(auctions)
    for job_id, status, body in zip(job_ids, statuses, bodies, strict=True):
        assert status == auctions[job_id].status
        assert msgspec.json.decode(body, type=core.Auction) == auctions[job_id]
    topics, _keys, _values, headers = args[12:16]
    assert len(topics) == sum(len(e.outbox) for e in effects)
    assert all(isinstance(orjson.loads(h), list) for h in headers)
    assert args[16] == [7, 8]
    assert len(args) == 17  # $1-$17 of the auctioneer's floor statement


def test_the_notifiers_effects_remember_a_match_once_and_notify_both_parties() -> None:
    match_id, seller, buyer = (str(uuid.UUID(int=n)) for n in (1, 2, 3))
    at = datetime(2026, 12, 1, tzinfo=UTC)
    proposal = ms.MatchProposed(
        match_id=match_id,
        offer_id=str(uuid.UUID(int=4)),
        request_id=str(uuid.UUID(int=5)),
        seller_id=seller,
        buyer_id=buyer,
        material_code="170405",
        quantity=common.Quantity(10.0, "t"),
        delivered_price=common.Money(amount=100.0, currency="EUR"),
        distance_km=12.0,
        transport_co2e_kg=1.0,
        co2e_saved_kg=2.0,
        co2e_known=True,
        score=0.5,
        reasons=(),
        expires_at=at + timedelta(days=2),
    )
    messages = [
        to_message(proposal, event_id=str(uuid.UUID(int=10 + n)), source="/t", time=at)
        for n in range(2)
    ]
    parties: dict[str, tuple[str, str]] = {}
    first, again = (bench.notifier_effects(d, parties) for d in decoded(messages))
    assert first.rows == ((match_id, seller, buyer),)
    assert again.rows == ()  # first writer wins: the row comes with the first record only
    assert len(first.outbox) == 2  # one notification for each party
    assert {m[0] for m in first.outbox} == {"partners.notifications"}
    args = bench.floor_batch("notifier", "g", bench.MATCHES, 0, [first, again], [])
    assert args[:4] == ["g", [match_id], [seller], [buyer]]
    assert len(args[4]) == 4
    assert len(args) == 9  # $1-$9 of the notifier's floor statement


def test_a_floor_statement_is_for_the_consumers_that_emit_only() -> None:
    with pytest.raises(ValueError, match="no floor statement"):
        bench.floor_batch("projector", "g", bench.LISTINGS, 0, [], [])
    sorts = (set(bench.FLOOR_STATEMENTS), set(bench.FLOOR_TABLES), set(bench.FLOOR_COPIED))
    assert set.union(*sorts) == set(bench.FLOOR_DIGESTED)
    assert sum(len(k) for k in sorts) == len(bench.FLOOR_DIGESTED)  # each of one sort only
    assert set(bench.FLOOR_KEPT) <= set(bench.FLOOR_TABLES)


def test_copied_rows_are_dealt_over_the_records_evenly_and_in_order() -> None:
    start, end = {0: 10, 1: 0}, {0: 14, 1: 2}  # six records: 0/10-13, then 1/0-1
    messages = bench.CopiedTable("m", ("a",), [(n,) for n in range(3)], False, ("int4",))
    notices = bench.CopiedTable("n", ("b",), [(n,) for n in range(12)], False, ("int4",))
    dealt = bench.spread([messages, notices], start, end)
    assert list(dealt) == [(0, 10), (0, 11), (0, 12), (0, 13), (1, 0), (1, 1)]
    # Every row once, each table's in its order, as many per record as the run wrote on average.
    for index, table in enumerate((messages, notices)):
        rows = [row for rows in dealt.values() for i, row in rows if i == index]
        assert rows == table.rows
    assert [len([1 for i, _ in rows if i == 0]) for rows in dealt.values()] == [1, 0, 1, 0, 1, 0]
    assert [len([1 for i, _ in rows if i == 1]) for rows in dealt.values()] == [2] * 6
    assert bench.spread([bench.CopiedTable("e", ("a",), [], False, ("int4",))], start, end) == {
        r: [] for r in dealt
    }


def test_the_keeping_statement_binds_one_typed_array_per_column() -> None:
    table = bench.CopiedTable(
        "webhook_deliveries",
        ("group_id", "delivery_id", "body"),
        [],
        True,
        ("text", "text", "bytea"),
    )
    assert table.keeping() == (
        "INSERT INTO webhook_deliveries (group_id, delivery_id, body) SELECT * FROM"
        " unnest($1::text[], $2::text[], $3::bytea[]) ON CONFLICT DO NOTHING"
    )
