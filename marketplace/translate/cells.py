"""The decisions of the cells of split material families (#17, marketplace/core/shards.py) on
market.cells records: the state of each key (a cell, or a family's wide key), how it is stored,
and one record through it as the cells consumer makes it (`consumers/cells.py`) and as
`marketplace audit replay` re-makes it."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

import msgspec

from marketplace.cloudevents import Envelope
from marketplace.core.book import Book, Listing, Proposal, Standing, Terms
from marketplace.core.ids import derived_id
from marketplace.core.matching import (
    Command,
    Confirmed,
    DeliveryDue,
    MarketConfig,
    Proposed,
    Update,
    Withdraw,
)
from marketplace.core.shards import (
    WIDE,
    CellState,
    Forwarded,
    Lend,
    Moved,
    OfferSeen,
    Recall,
    Returned,
    ShardPlan,
    ToWide,
    WideRequest,
    WideState,
    cell_step,
    wide_step,
)
from marketplace.events import Decoded, to_message
from marketplace.runtime.outbox import OutboxMessage
from marketplace.translate.matching import deadline_timer, period_timer, to_command, to_contract
from schemas import cells as cs
from schemas.matches import DeliveryScheduled


# The states as stored (msgpack): the core's records, the indexes rebuilt on load.
class _Cell(msgspec.Struct, frozen=True):
    seq: int
    listings: list[Listing]
    proposals: list[Proposal]
    agreements: list[Standing]
    closed_pairs: list[tuple[str, str]]
    ghosts: list[str]
    moved: list[str]
    told: list[tuple[str, float, Terms]]


class _WideRequest(msgspec.Struct, frozen=True):
    listing: Listing
    lent: dict[str, float]
    home: str
    used: float = 0.0


class _Wide(msgspec.Struct, frozen=True):
    requests: list[_WideRequest]
    mirrors: dict[str, list[Listing]]
    tried: dict[str, list[str]]
    closed: list[tuple[str, str]]
    sent: int


_encode = msgspec.msgpack.Encoder().encode
_cell_decoder = msgspec.msgpack.Decoder(_Cell)
_wide_decoder = msgspec.msgpack.Decoder(_Wide)
_listing_json = msgspec.json.Decoder(Listing)
_terms_json = msgspec.json.Decoder(Terms)
_json = msgspec.json.Encoder()


def dump_cell(cell: CellState) -> bytes:
    b = cell.book
    return _encode(
        _Cell(
            b.seq,
            list(b.listings.values()),
            list(b.proposals.values()),
            list(b.agreements.values()),
            sorted(b.closed_pairs),
            sorted(cell.ghosts),
            sorted(cell.moved),
            [(oid, free, terms) for oid, (free, terms) in sorted(cell.told.items())],
        )
    )


def load_cell(name: str, body: bytes, config: MarketConfig) -> CellState:
    d = _cell_decoder.decode(body)
    book = Book(seq=d.seq)
    for listing in d.listings:
        book.listings[listing.id] = listing
        book.file(listing, config.substitutions)
    for p in d.proposals:
        book.add_proposal(p)
    book.agreements = {s.proposal.match_id: s for s in d.agreements}
    book.closed_pairs = set(d.closed_pairs)
    book.dirty.clear()
    told = {oid: (free, terms) for oid, free, terms in d.told}
    return CellState(name, book, set(d.ghosts), set(d.moved), told)


def dump_wide(wide: WideState) -> bytes:
    return _encode(
        _Wide(
            [
                _WideRequest(w.listing, w.lent, w.home, w.used)
                for _, w in sorted(wide.requests.items())
            ],
            {c: list(offers.values()) for c, offers in sorted(wide.mirrors.items())},
            {c: sorted(ids) for c, ids in sorted(wide.tried.items())},
            sorted(wide.closed),
            wide.sent,
        )
    )


def load_wide(body: bytes) -> WideState:
    d = _wide_decoder.decode(body)
    return WideState(
        requests={
            r.listing.id: WideRequest(r.listing, dict(r.lent), r.home, r.used) for r in d.requests
        },
        mirrors={c: {o.id: o for o in offers} for c, offers in d.mirrors.items()},
        tried={c: set(ids) for c, ids in d.tried.items()},
        closed=set(d.closed),
        sent=d.sent,
    )


class Emitter(Protocol):
    """Where a decision's messages go: the batch's transaction, or replay's collector."""

    topic: str

    def emit(self, message: OutboxMessage) -> None: ...


@dataclass(slots=True)
class Cells:
    """One partition's keys: cells by key, wide keys by family."""

    cells: dict[str, CellState] = field(default_factory=dict)
    wides: dict[str, WideState] = field(default_factory=dict)
    dirty: set[str] = field(default_factory=set)


class CellsDecider:
    """One record of market.cells at a time, through the state of its key."""

    def __init__(self, config: MarketConfig, plan: ShardPlan, source: str) -> None:
        self.config = config
        self.plan = plan
        self.source = source

    def decide(
        self,
        tx: Emitter,
        state: Cells,
        decoded: Decoded,
        record: Any,
        timers: list[tuple[str, OutboxMessage, datetime]],
    ) -> None:
        """One record of market.cells (`record.key` set) through its key's state: what it emits
        goes to `tx`, the timers it asks for to `timers`. The consumer calls it in its
        transaction, `marketplace audit replay` with a collector."""
        key = record.key.decode()
        family, _, where = key.partition("@")
        if where == WIDE:
            self._wide(tx, state, family, decoded)
        else:
            self._cell(tx, state, key, family, where, decoded, record, timers)
        state.dirty.add(key)

    # The wide key ------------------------------------------------------------------------------

    def _wide(self, tx: Emitter, state: Cells, family: str, decoded: Decoded) -> None:
        wide = state.wides.setdefault(family, WideState())
        e, env = decoded.event, decoded.envelope
        message: Command | ToWide | None
        match e:
            case cs.CellReturned():
                message = Returned(e.cell, e.request_id, e.quantity, e.closed)
            case cs.CellOfferSeen():
                offer = None if bytes(e.offer) == b"null" else _listing_json.decode(e.offer)
                message = OfferSeen(e.cell, e.offer_id, offer)
            case cs.CellMoved():
                message = Moved(e.cell, _listing_json.decode(e.request))
            case cs.CellLend() | cs.CellRecall():
                return  # for cells only
            case _:
                held = {rid: w.listing for rid, w in wide.requests.items()}
                command = to_command(decoded, Book(listings=held))
                # An update or withdrawal a cell forwarded (of a request it moved here).
                if env.source == self.source and isinstance(command, Update | Withdraw):
                    message = Forwarded(command)
                else:
                    message = command
        if message is None:
            return
        for cell, out in wide_step(wide, message, self.config, env.time):
            to = f"{family}@{cell}"
            contract: cs.CellLend | cs.CellRecall
            if isinstance(out, Lend):
                contract = cs.CellLend(
                    to_key=to,
                    request=msgspec.Raw(_json.encode(out.request)),
                    quantity=out.quantity,
                )
            else:
                terms = cs.NULL if out.terms is None else msgspec.Raw(_json.encode(out.terms))
                contract = cs.CellRecall(
                    to_key=to, request_id=out.request_id, owner_id=out.owner, terms=terms
                )
            sent = to_message(contract, event_id=out.event_id, source=self.source, time=env.time)
            tx.emit(dataclasses.replace(sent, topic=tx.topic))

    # A cell ------------------------------------------------------------------------------------

    def _cell(
        self,
        tx: Emitter,
        state: Cells,
        key: str,
        family: str,
        name: str,
        decoded: Decoded,
        record: Any,
        timers: list[tuple[str, OutboxMessage, datetime]],
    ) -> None:
        cell = state.cells.get(key)
        if cell is None:
            cell = state.cells[key] = CellState(name)
        e, env = decoded.event, decoded.envelope
        command: Command | Lend | Recall | None
        match e:
            case cs.CellLend():
                command = Lend(env.id, env.time, _listing_json.decode(e.request), e.quantity)
            case cs.CellRecall():
                terms = None if bytes(e.terms) == b"null" else _terms_json.decode(e.terms)
                command = Recall(env.id, env.time, e.request_id, e.owner_id, terms)
            case cs.CellReturned() | cs.CellOfferSeen() | cs.CellMoved():
                return  # for the wide key only
            case _:
                command = to_command(decoded, cell.book)
        if command is None:
            return
        events, reports = cell_step(cell, command, self.config, self.plan)
        cause = f"{env.id}/cells/{key}"
        for k, event in enumerate(events):
            contract = to_contract(event)
            subject = (
                contract.delivery_id
                if isinstance(contract, DeliveryScheduled)
                else contract.match_id
            )
            tx.emit(
                to_message(
                    contract,
                    event_id=derived_id(cause, k),
                    source=self.source,
                    time=env.time,
                    subject=subject,
                )
            )
            if isinstance(event, Proposed):
                timers.append(deadline_timer(event.proposal))
            elif isinstance(event, Confirmed) and event.first_period is not None:
                timers.append(period_timer(event.proposal, *event.first_period))
            elif isinstance(event, DeliveryDue):
                timers.append(period_timer(event.standing.proposal, *event.next_period))
        wide_key = f"{family}@{WIDE}"
        for k, report in enumerate(reports, start=len(events)):
            if isinstance(report, Forwarded):
                # The command itself, the same event under the same id, signed by this group so
                # that the wide key tells it from the copy the matcher broadcast to it.
                forwarded = Envelope(env.id, env.type, self.source, env.time, env.subject)
                tx.emit(
                    OutboxMessage(tx.topic, wide_key.encode(), record.value, forwarded.headers())
                )
                continue
            message = to_message(
                _report(report, wide_key),
                event_id=derived_id(cause, k),
                source=self.source,
                time=env.time,
            )
            tx.emit(dataclasses.replace(message, topic=tx.topic))


def _report(report: ToWide, to: str) -> cs.CellReturned | cs.CellOfferSeen | cs.CellMoved:
    match report:
        case Returned():
            return cs.CellReturned(
                to_key=to,
                cell=report.cell,
                request_id=report.request_id,
                quantity=report.quantity,
                closed=report.closed,
            )
        case OfferSeen():
            offer = cs.NULL if report.offer is None else msgspec.Raw(_json.encode(report.offer))
            return cs.CellOfferSeen(
                to_key=to, cell=report.cell, offer_id=report.offer_id, offer=offer
            )
        case Moved():
            return cs.CellMoved(
                to_key=to, cell=report.cell, request=msgspec.Raw(_json.encode(report.request))
            )
    raise TypeError(f"not a report for the wide key: {report!r}")
