"""The move of the matcher's books from the sub-chapter key to the family key (#17 item 2,
marketplace/core/rekey.py): a seeded stream decided under the old key for its first part, the
books moved, the rest decided under the new key. Every open listing ends in exactly one book,
the one of its family; nothing is over-allocated or lost; pairs that the old key kept apart
are proposed by the move; a proposal between two families is cancelled and its request keeps
only codes of its own family; the move decides the same events however often it is made."""

from __future__ import annotations

import copy
import uuid
from dataclasses import replace
from datetime import timedelta
from typing import Any

import orjson
import pytest

from loadtests.one_book import (
    START,
    config,
    cross_partition_pairs,
    generate,
    kafka_key,
    over_allocated,
    partition_of,
    subchapter_key,
    unproposed,
)
from marketplace.core import periods
from marketplace.core.book import Book, Flow, Kind, Terms
from marketplace.core.families import family_of
from marketplace.core.geo import Place
from marketplace.core.matching import Answer, Cancelled, PeriodDue, Post, Proposed, step
from marketplace.core.rekey import RekeyError, rekey
from marketplace.events import decode, to_message
from marketplace.runtime.outbox import OutboxMessage
from marketplace.translate.matching import decide, to_command
from schemas import listings as ls
from schemas.common import Location, Material, Money, Quantity, Window

SOURCE = "/tests/rekey"
AT = START + timedelta(days=1)


def feed(books: dict[int, Book], messages: list[OutboxMessage], n: int, keyer) -> list[bytes]:  # type: ignore[no-untyped-def]
    """Decides `messages` one book per partition, as the matcher does; returns the events."""
    cfg = config()
    out: list[bytes] = []
    for m in messages:
        p = partition_of(keyer(m), n)
        book = books.setdefault(p, Book())
        decoded = decode(m.topic, m.value, list(m.headers))
        command = to_command(decoded, book)
        if command is None:
            continue
        books[p], decided = decide(book, command, decoded, cfg, SOURCE)
        out.extend(message.value for _, message in decided)
    return out


def moved(books: dict[int, Book], n: int, cause: str = "rekey/test"):  # type: ignore[no-untyped-def]
    return rekey(
        books,
        family_of=family_of,
        partition_of=lambda key: partition_of(key.encode(), n),
        partitions=n,
        config=config(),
        cause_id=cause,
        at=AT,
    )


def confirmed(books: dict[int, Book]) -> dict[str, float]:
    return {lid: round(x.confirmed, 9) for b in books.values() for lid, x in b.listings.items()}


@pytest.mark.parametrize(("seed", "partitions"), [(7, 6), (23, 3), (2026, 12)])
def test_books_moved_mid_stream_keep_one_owner_and_meet_across_subchapters(
    seed: int, partitions: int
) -> None:
    stream = generate(seed, events=400)
    cfg = config()
    half = len(stream.messages) // 2
    old: dict[int, Book] = {}
    feed(old, stream.messages[:half], partitions, subchapter_key)
    before = copy.deepcopy(old)
    assert cross_partition_pairs(old, cfg), "the old key keeps some compatible pairs apart"

    result = moved(old, partitions)
    books = result.books
    # The old books are left as they were.
    assert {p: sorted(b.listings) for p, b in old.items()} == {
        p: sorted(b.listings) for p, b in before.items()
    }
    assert sorted(books) == list(range(partitions))
    # Each open listing in exactly one book: the one its later events are keyed to.
    held = [(lid, p) for p, b in books.items() for lid in b.listings]
    assert sorted(lid for lid, _ in held) == sorted(lid for b in old.values() for lid in b.listings)
    for lid, p in held:
        listing = books[p].listings[lid]
        assert p == partition_of(family_of(listing.code).encode(), partitions)
    assert result.summary.listings == len(held)
    assert result.summary.moved > 0
    # Nothing accepted is lost; nothing is promised twice; no compatible pair is left apart
    # or unproposed, since the move offers every listing its new neighbours.
    assert confirmed(books) == confirmed(old)
    assert cross_partition_pairs(books, cfg) == []
    for book in books.values():
        assert over_allocated(book) == []
        assert unproposed(book, cfg) == []
    assert result.summary.proposed == sum(isinstance(e, Proposed) for e in result.events) > 0
    for event in result.events:
        if isinstance(event, Proposed):
            p = event.proposal
            book = books[partition_of(family_of(p.code).encode(), partitions)]
            assert book.proposals[p.match_id].offer_id == p.offer_id

    # The rest of the stream, keyed by family, decided by the moved books.
    feed(books, stream.messages[half:], partitions, kafka_key)
    assert cross_partition_pairs(books, cfg) == []
    for book in books.values():
        assert over_allocated(book) == []
        assert unproposed(book, cfg) == []


def test_the_same_move_decides_the_same_events() -> None:
    stream = generate(11, events=300)
    old: dict[int, Book] = {}
    feed(old, stream.messages, 6, subchapter_key)
    first, second = moved(copy.deepcopy(old), 6), moved(copy.deepcopy(old), 6)
    assert first.events == second.events
    assert first.summary == second.summary
    ids = [e.proposal.match_id for e in first.events if isinstance(e, Proposed)]
    assert len(set(ids)) == len(ids) > 0
    other = moved(copy.deepcopy(old), 6, cause="rekey/another")
    assert [e.proposal.match_id for e in other.events if isinstance(e, Proposed)] != ids


def _posted(event: ls.OfferPosted | ls.RequestPosted, n: int) -> OutboxMessage:
    return to_message(
        event, event_id=str(uuid.uuid5(uuid.NAMESPACE_URL, f"rekey/{n}")), source=SOURCE, time=START
    )


def _window() -> Window:
    return Window(start=START, end=START + timedelta(days=60))


def test_a_proposal_between_two_families_is_cancelled_and_the_codes_dropped() -> None:
    here = Location(lat=59.86, lon=17.64)
    offer = ls.OfferPosted(
        offer_id="offer-paper",
        owner_id="seller",
        actor_id="seller",
        material=Material(code="150101", description="cardboard"),
        location=here,
        terms=ls.OfferTerms(
            quantity=Quantity(amount=8, unit="t"),
            price=Money(amount=10, currency="EUR"),
            available=_window(),
        ),
    )
    # Mixed packaging (a family of its own) that also took cardboard: the API refuses such a
    # request now; one posted before keeps its accepted code until the move.
    request = ls.RequestPosted(
        request_id="request-mixed",
        owner_id="buyer",
        actor_id="buyer",
        material=Material(code="150106", description="mixed packaging"),
        accepts_codes=("150101",),
        location=here,
        terms=ls.RequestTerms(
            quantity=Quantity(amount=5, unit="t"),
            max_price=Money(amount=90, currency="EUR"),
            wanted=_window(),
            max_distance_km=50,
        ),
    )
    assert family_of("150101") != family_of("150106")
    old: dict[int, Book] = {}
    decided = feed(old, [_posted(offer, 1), _posted(request, 2)], 6, subchapter_key)
    proposal = orjson.loads(decided[0])
    assert (proposal["offer_id"], proposal["request_id"]) == ("offer-paper", "request-mixed")
    (book,) = old.values()
    assert book.listings["offer-paper"].reserved == 5

    result = moved(old, 6)
    assert result.summary.cancelled == 1
    assert result.summary.accepts_dropped == 1
    assert result.events[0] == Cancelled(proposal["match_id"], "150101", "request_updated", None)
    books = result.books
    where = {lid: p for p, b in books.items() for lid in b.listings}
    assert where["offer-paper"] == partition_of(b"paper", 6)
    assert where["request-mixed"] == partition_of(b"1501", 6)
    assert books[where["offer-paper"]].listings["offer-paper"].reserved == 0
    assert books[where["request-mixed"]].listings["request-mixed"].reserved == 0
    assert books[where["request-mixed"]].listings["request-mixed"].accepts == ()
    assert not any(b.proposals for b in books.values())
    # The pair is not proposed again, neither by the move nor later.
    assert not [e for e in result.events if isinstance(e, Proposed)]


def test_a_listing_held_by_two_partitions_is_refused() -> None:
    stream = generate(3, events=60)
    old: dict[int, Book] = {}
    feed(old, stream.messages, 1, subchapter_key)
    twice = {0: old[0], 1: copy.deepcopy(old[0])}
    with pytest.raises(RekeyError, match="is in partitions 0 and 1"):
        moved(twice, 6)


def _recurring(post: Post) -> Post:
    flow = Flow("month", START.date(), None)
    return replace(post, terms=replace(post.terms, flow=flow, end=START + timedelta(days=365)))


def _confirmed(commands: list[Post]) -> tuple[Book, Proposed]:
    """One old book in which the two recurring listings agreed (both accepted)."""
    book = Book()
    cfg = config()
    found: list[Proposed] = []
    for c in commands:
        book, out = step(book, c, cfg)
        found += [e for e in out if isinstance(e, Proposed)]
    (proposed,) = found
    p = proposed.proposal
    for n, partner in enumerate((p.seller, p.buyer)):
        book, out = step(book, Answer(f"yes-{n}", START, p.match_id, partner, True), cfg)
    assert p.match_id in book.agreements
    return book, proposed


def _post(i: str, kind: Kind, code: str, owner: str, **extra: Any) -> Post:
    place = Place(59.86, 17.64, "SE121")
    terms = Terms(
        quantity=4.0,
        unit="t",
        price=10.0 if kind == "offer" else 90.0,
        currency="EUR",
        start=START,
        end=START + timedelta(days=60),
        max_distance_km=None if kind == "offer" else 50.0,
    )
    return _recurring(Post(f"e-{i}", START, i, kind, owner, code, place, terms, **extra))


@pytest.mark.parametrize("request_code", ["150101", "150106"])
def test_standing_agreements_move_with_their_material_and_stay_confirmed(
    request_code: str,
) -> None:
    """A standing agreement moves to the partition of its material's family (its period timers
    arrive there) and is kept, between two families too (counted), with what each side has
    confirmed; the next period's delivery is scheduled from the moved book."""
    accepts = ("150101",) if request_code != "150101" else ()
    book, proposed = _confirmed(
        [
            _post("o", "offer", "150101", "seller"),
            _post("r", "request", request_code, "buyer", accepts=accepts),
        ]
    )
    p = proposed.proposal
    result = moved({partition_of(b"1501", 6): book}, 6)
    home = partition_of(b"paper", 6)
    assert set(result.books[home].agreements) == {p.match_id}
    assert result.summary.agreements == 1
    assert result.summary.agreements_across == (request_code == "150106")
    assert confirmed(result.books) == confirmed({0: book})
    assert confirmed(result.books)["o"] == pytest.approx(4.0)
    assert result.summary.cancelled == 0
    key = periods.key_of("month", START.date())
    _, out = step(result.books[home], PeriodDue("due-1", START, p.match_id, key), config())
    assert [type(e).__name__ for e in out] == ["DeliveryDue"]
