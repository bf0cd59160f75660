"""Moving the matcher's books from one routing of `market.listings` to another (#17 item 2):
from the List of Waste sub-chapter as the key to the material family. Pure.

Under the old key each partition's book held the listings whose sub-chapter hashed to it; under
the new key a listing's later events (updates, withdrawals, answers, timers) arrive on the
partition of its family. `rekey` takes every old book at one moment (the cut-over), pools them,
and files each item where its future events will arrive:

- a listing under the partition of its own code's family, a request's accepted codes of another
  family dropped (the API refuses those now; no partition could hold both sides);
- an open proposal under the partition of its offer's family when both sides share a family;
  between two families (only an old request's accepted code of another family allows one) it is
  cancelled, its reservation released on both sides, the request named as changed;
- a confirmed standing agreement under the partition of its material's family (where its period
  timers arrive); one between two families is kept there and counted, since nothing accepted is
  given up (its request, in another partition, cannot end it by a withdrawal);
- a closed pair (declined or expired) under the partition of each of its listings still open.

Then each new book offers every open listing its candidates again, oldest first, since listings
that old keys kept apart may now meet. The ids of what this decides derive from `cause_id`, its
time is `at`: the same cut-over re-made by `marketplace audit replay` decides the same events."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime

from marketplace.core.book import Book, Listing, Proposal, Standing
from marketplace.core.matching import (
    Cancelled,
    DeadlineDue,
    Event,
    MarketConfig,
    _reallocate,
    _release,
)


class RekeyError(ValueError):
    """The books cannot be pooled: an item is held by two partitions."""


@dataclass(slots=True)
class Summary:
    """What the move did, in figures an operator can check."""

    listings: int = 0
    moved: int = 0  # listings now under another partition than before
    proposals: int = 0  # open proposals kept
    cancelled: int = 0  # open proposals between two families, cancelled
    agreements: int = 0
    agreements_across: int = 0  # standing agreements between two families, kept
    closed_pairs: int = 0
    accepts_dropped: int = 0  # accepted codes of another family dropped from requests
    proposed: int = 0  # new proposals between listings that now meet
    by_partition: dict[int, int] = field(default_factory=dict)  # open listings per new partition


@dataclass(slots=True)
class Rekeyed:
    books: dict[int, Book]
    # What the move decides, in order: the cancellations, then each new partition's proposals.
    events: list[Event]
    summary: Summary


@dataclass(slots=True)
class _Pool:
    listings: dict[str, Listing] = field(default_factory=dict)
    proposals: dict[str, Proposal] = field(default_factory=dict)
    agreements: dict[str, Standing] = field(default_factory=dict)
    closed_pairs: set[tuple[str, str]] = field(default_factory=set)
    old_partition: dict[str, int] = field(default_factory=dict)
    seq: int = 0


def _pooled(books: Mapping[int, Book]) -> _Pool:
    pool = _Pool()
    for partition in sorted(books):
        book = books[partition]
        pool.seq = max(pool.seq, book.seq)
        for lid, listing in sorted(book.listings.items()):
            if lid in pool.listings:
                raise RekeyError(
                    f"listing {lid} is in partitions {pool.old_partition[lid]} and {partition}"
                )
            pool.listings[lid] = listing
            pool.old_partition[lid] = partition
        for mid, p in sorted(book.proposals.items()):
            if mid in pool.proposals:
                raise RekeyError(f"proposal {mid} is held by two partitions")
            pool.proposals[mid] = p
        for mid, a in sorted(book.agreements.items()):
            if mid in pool.agreements:
                raise RekeyError(f"agreement {mid} is held by two partitions")
            pool.agreements[mid] = a
        pool.closed_pairs |= book.closed_pairs
    return pool


def rekey(
    books: Mapping[int, Book],
    *,
    family_of: Callable[[str], str],
    partition_of: Callable[[str], int],
    partitions: int,
    config: MarketConfig,
    cause_id: str,
    at: datetime,
) -> Rekeyed:
    """The books of every old partition, filed again by `partition_of(family_of(code))`, as
    one book for each of the `partitions` (an empty one too: each starts its count of listings
    after the highest old one). `books` is not changed; its listings and proposals are copied."""
    pool = _pooled(books)
    summary = Summary()
    # One book holds everything while proposals between families are cancelled, so that both
    # sides' reservations are released wherever they were.
    whole = Book(seq=pool.seq)
    for lid, listing in pool.listings.items():
        copy = replace(listing, period_used=dict(listing.period_used))
        if copy.kind == "request" and copy.accepts:
            own = family_of(copy.code)
            kept = tuple(c for c in copy.accepts if family_of(c) == own)
            summary.accepts_dropped += len(copy.accepts) - len(kept)
            copy.accepts = kept
        whole.listings[lid] = copy
    for p in pool.proposals.values():
        whole.add_proposal(replace(p, answers=dict(p.answers)))
    events: list[Event] = []
    for mid in sorted(pool.proposals):
        p = whole.proposals[mid]
        offer, request = whole.listings.get(p.offer_id), whole.listings.get(p.request_id)
        if offer is None or request is None:
            raise RekeyError(f"proposal {mid} names a listing no partition holds")
        if family_of(offer.code) != family_of(request.code):
            _release(whole, p)
            events.append(Cancelled(mid, p.code, "request_updated", None))
            summary.cancelled += 1

    def home(code: str) -> int:
        return partition_of(family_of(code))

    new = {partition: Book(seq=pool.seq) for partition in range(partitions)}

    def book_of(partition: int) -> Book:
        if partition not in new:
            raise RekeyError(f"partition {partition} is not one of the {partitions}")
        return new[partition]

    for lid, listing in whole.listings.items():
        partition = home(listing.code)
        book = book_of(partition)
        book.listings[lid] = listing
        book.file(listing, config.substitutions)
        summary.listings += 1
        summary.moved += partition != pool.old_partition[lid]
        summary.by_partition[partition] = summary.by_partition.get(partition, 0) + 1
    for _, p in sorted(whole.proposals.items()):
        book_of(home(whole.listings[p.offer_id].code)).add_proposal(p)
        summary.proposals += 1
    for mid, a in sorted(pool.agreements.items()):
        p = a.proposal
        book_of(home(p.code)).agreements[mid] = replace(a)
        summary.agreements += 1
        sides = [whole.listings.get(i) for i in (p.offer_id, p.request_id)]
        families = {family_of(s.code) for s in sides if s is not None}
        summary.agreements_across += len(families) > 1
    for offer_id, request_id in sorted(pool.closed_pairs):
        homes = {
            home(whole.listings[i].code) for i in (offer_id, request_id) if i in whole.listings
        }
        for partition in homes:
            book_of(partition).closed_pairs.add((offer_id, request_id))
        summary.closed_pairs += bool(homes)
    for partition in sorted(new):
        book = new[partition]
        # The cause of what a new book decides: a command with the cut-over's id and time.
        cause = DeadlineDue(event_id=f"{cause_id}/{partition}", at=at, match_id="")
        out: list[Event] = []
        _reallocate(book, list(book.listings), cause, config, out)
        summary.proposed += len(out)
        events.extend(out)
        book.dirty.clear()
    return Rekeyed(new, events, summary)
