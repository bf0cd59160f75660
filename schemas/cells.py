"""Events between the cells of a split material family, on `market.cells` (key: the receiving
cell's or wide key, "plastics@n0e1", "plastics@wide"). The lending protocol of
marketplace/core/shards.py: a wide request lent to a cell, recalled, its free part returned, and
the cells' offers as the wide key must see them. The listings, answers and timers of a split
family travel on the same topic (the matcher forwards them from `market.listings`).

These are the exchange's own bookkeeping between its consumers, not partners' events: the
listing and offer snapshots are the matching core's records (`marketplace/core/book.py`
`Listing`, as JSON), which only the cells consumer reads."""

from __future__ import annotations

from typing import Annotated

import msgspec

from schemas.base import Event
from schemas.common import Id

Key = Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
Tonnes = Annotated[float, msgspec.Meta(ge=0)]
# A JSON null in a field that holds one of the core's records as JSON (msgspec.Raw is not
# optional): a withdrawal's terms, a gone offer.
NULL = msgspec.Raw(b"null")


class CellLend(Event, frozen=True, kw_only=True, tag="market.cell.lend.v1"):
    """Wide key -> cell: `quantity` of a wide request, to match with the cell's offers."""

    to_key: Key
    request: msgspec.Raw  # the core's Listing of the request, as the wide key holds it
    quantity: Tonnes


class CellRecall(Event, frozen=True, kw_only=True, tag="market.cell.recall.v1"):
    """Wide key -> cell: a lent request was updated (`terms`, the core's Terms) or withdrawn
    (`terms` null)."""

    to_key: Key
    request_id: Id
    owner_id: Id
    terms: msgspec.Raw  # JSON null: withdrawn


class CellReturned(Event, frozen=True, kw_only=True, tag="market.cell.returned.v1"):
    """Cell -> wide key: free quantity of a request given back, with the cell's offers closed
    to it (declined or let expire)."""

    to_key: Key
    cell: Key
    request_id: Id
    quantity: Tonnes
    closed: tuple[Id, ...] = ()


class CellOfferSeen(Event, frozen=True, kw_only=True, tag="market.cell.offer_seen.v1"):
    """Cell -> wide key: an offer as the cell now holds it (`offer` null: gone)."""

    to_key: Key
    cell: Key
    offer_id: Id
    offer: msgspec.Raw  # JSON null: gone


class CellMoved(Event, frozen=True, kw_only=True, tag="market.cell.moved.v1"):
    """Cell -> wide key: a request of the cell whose updated reach leaves it; the wide key owns
    it from now on."""

    to_key: Key
    cell: Key
    request: msgspec.Raw


CellEvent = CellLend | CellRecall | CellReturned | CellOfferSeen | CellMoved
