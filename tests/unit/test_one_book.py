"""One book over the whole market is the reference (#17 item 3): the same seeded stream decided by
the core with a single book and by the core split the way the matcher splits it (one book per
partition of the material-family key) gives the same proposals, confirmations, cancellations and
expiries at 1, 3, 6 and 12 partitions; no listing is over-allocated; no two partitions hold a pair
that could trade; and the drained books leave no compatible pair with free quantity on both sides
unproposed. The stream and the tools are in loadtests/one_book.py."""

from __future__ import annotations

from typing import NamedTuple

import orjson
import pytest

from loadtests.one_book import (
    config,
    cross_partition_pairs,
    generate,
    over_allocated,
    run_split,
    subchapter_key,
    unproposed,
)
from marketplace.events import decode
from marketplace.runtime.outbox import OutboxMessage

SEEDS = (1, 7, 23, 2026)


class _Posted(NamedTuple):
    subject: str
    code: str


def _posted(m: OutboxMessage) -> _Posted | None:
    event = decode(m.topic, m.value, list(m.headers)).event
    material = getattr(event, "material", None)
    if material is None:
        return None
    return _Posted(getattr(event, "offer_id", None) or event.request_id, material.code)  # type: ignore[attr-defined]


PARTITIONS = (1, 3, 6, 12)


@pytest.mark.parametrize("seed", SEEDS)
def test_the_split_core_decides_what_one_book_decides(seed: int) -> None:
    stream = generate(seed)
    cfg = config()
    # The stream exercises what it should: every kind of event, and many decisions.
    for name in (
        "OfferPosted",
        "RequestPosted",
        "OfferUpdated",
        "RequestUpdated",
        "OfferWithdrawn",
        "RequestWithdrawn",
        "MatchAccepted",
        "MatchDeclined",
        "MatchDeadlineDue",
    ):
        assert stream.counts.get(name, 0) > 0, name
    assert len(stream.decided) > 50
    assert over_allocated(stream.book) == []
    assert unproposed(stream.book, cfg) == []
    for partitions in PARTITIONS:
        split = run_split(stream.messages, partitions)
        assert split.decided == stream.decided, f"{partitions} partitions decided otherwise"
        assert cross_partition_pairs(split.books, cfg) == []
        for book in split.books.values():
            assert over_allocated(book) == []
            assert unproposed(book, cfg) == []
        held = [lid for book in split.books.values() for lid in book.listings]
        assert sorted(held) == sorted(stream.book.listings), "each listing has one owner"


def test_substitutes_and_accepted_codes_across_subchapters_are_proposed_and_confirmed() -> None:
    stream = generate(7)
    code_of = {m.subject: m.code for m in map(_posted, stream.messages) if m is not None}
    across = confirmed = 0
    for value in stream.decided.values():
        body = orjson.loads(value)
        if "score" in body and code_of[body["request_id"]][:4] != body["material_code"][:4]:
            across += 1
        confirmed += "pickup" in body
    assert across > 10, "proposals whose offer is of another sub-chapter than the request"
    assert confirmed > 5


def test_the_old_subchapter_key_loses_decisions_the_reference_makes() -> None:
    """The test has teeth: split by the 4-digit sub-chapter (the key before families), the
    stream's substitutes and accepted codes fall on other partitions and decisions change."""
    stream = generate(7)
    differs = [
        n
        for n in (3, 6, 12)
        if run_split(stream.messages, n, subchapter_key).decided != stream.decided
    ]
    assert differs, "splitting by sub-chapter should have lost cross-sub-chapter proposals"
    assert run_split(stream.messages, 1, subchapter_key).decided == stream.decided
