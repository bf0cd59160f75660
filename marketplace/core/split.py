"""Moving a material family that already trades from the matcher's book into geographic cells
(#17 item 2, `marketplace rebuild split`). Pure.

The family's open items leave the matcher's book (the one partition of its family key) and are
filed where their future events will be decided (marketplace/core/shards.py):

- an offer in the cell of its place, as it is (reserved and confirmed quantities, periods);
- a request whose reach stays inside its cell, and whose open proposals and standing agreements
  are all with offers of that cell, in that cell, as it is;
- every other request at the family's wide key: its free quantity there, and in each cell where
  it has open proposals or standing agreements a ghost holding exactly what they take, lent from
  the wide key; what its past confirmed deals took stays used. A recurring request is lent whole,
  so one with items in two cells cannot be moved (SplitError names it);
- an open proposal and a standing agreement in the cell of its offer, where its answers and
  timers (forwarded to every cell) find it; a closed pair there too, and at the wide key for a
  wide request;
- the wide key's mirror of each cell's offers, and each cell's record of what it told.

Nothing is decided and no event is emitted: every listing keeps what it has, and answers, updates
and timers continue where they are filed. Quantities are conserved: for every request, its free
quantity at the wide key plus what its ghosts hold plus what it used equals its quantity."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace

from marketplace.core.book import Book, Listing
from marketplace.core.matching import MarketConfig
from marketplace.core.shards import CellState, ShardPlan, WideRequest, WideState


class SplitError(ValueError):
    """The family cannot be moved as it stands; the message says which item and why."""


@dataclass(slots=True)
class Moved:
    cells: dict[str, CellState] = field(default_factory=dict)  # by cell name
    wide: WideState = field(default_factory=WideState)
    offers: int = 0
    local_requests: int = 0
    wide_requests: int = 0
    ghosts: int = 0
    proposals: int = 0
    agreements: int = 0
    closed_pairs: int = 0


def split_family(
    book: Book,
    family: str,
    plan: ShardPlan,
    config: MarketConfig,
    family_of: Callable[[str], str],
) -> Moved:
    """Takes `family`'s items out of `book` (marked dirty there) and returns them filed in cells
    and at the wide key."""
    if family not in plan.families:
        raise SplitError(f"{family} is not among the families the plan splits")
    mine = {lid: x for lid, x in book.listings.items() if family_of(x.code) == family}
    proposals = [p for p in book.proposals.values() if p.offer_id in mine]
    agreements = [a for a in book.agreements.values() if a.proposal.offer_id in mine]
    for p in proposals:
        if p.request_id not in mine:
            raise SplitError(f"proposal {p.match_id}: its request is of another family")
    out = Moved()

    def cell(name: str) -> CellState:
        found = out.cells.get(name)
        if found is None:
            found = out.cells[name] = CellState(name, Book(seq=book.seq))
        return found

    where = {lid: plan.cell(x.place) for lid, x in mine.items() if x.kind == "offer"}
    # Where each request trades now: the cells of its offers in proposals and agreements.
    trades: dict[str, set[str]] = {}
    for p in proposals:
        trades.setdefault(p.request_id, set()).add(where[p.offer_id])
    for a in agreements:
        trades.setdefault(a.proposal.request_id, set()).add(where[a.proposal.offer_id])
    wide_ids: set[str] = set()
    for lid, x in mine.items():
        if x.kind == "offer":
            continue
        home = plan.cell(x.place)
        if plan.contains(x.place, x.terms.max_distance_km or 0.0) and trades.get(lid, {home}) <= {
            home
        }:
            where[lid] = home
        else:
            wide_ids.add(lid)
    # Listings that stay whole: offers and local requests.
    for lid, x in mine.items():
        if lid in wide_ids:
            continue
        target = cell(where[lid])
        target.book.listings[lid] = x
        target.book.file(x, config.substitutions)
        target.book.dirty.add(lid)
        if x.kind == "offer":
            out.offers += 1
        else:
            out.local_requests += 1
    # Wide requests: free at the wide key, a ghost per cell it trades in.
    for rid in sorted(wide_ids):
        r = mine[rid]
        cells = sorted(trades.get(rid, set()))
        recurring = r.terms.flow is not None
        if recurring and len(cells) > 1:
            raise SplitError(
                f"request {rid} is recurring and trades in {len(cells)} cells ({', '.join(cells)}):"
                " a recurring request is lent whole, to one cell"
            )
        w = WideRequest(replace(r, reserved=0.0, confirmed=0.0, period_used={}))
        if recurring:
            if cells:
                ghost = replace(r, period_used=dict(r.period_used))
                _file_ghost(cell(cells[0]), ghost, config)
                w.lent[cells[0]] = r.terms.quantity
                out.ghosts += 1
        else:
            held: dict[str, float] = {}
            for p in proposals:
                if p.request_id == rid:
                    take, _ = p.take("request")
                    held[where[p.offer_id]] = held.get(where[p.offer_id], 0.0) + take
            for name, amount in sorted(held.items()):
                ghost = replace(
                    r,
                    terms=replace(r.terms, quantity=amount),
                    reserved=amount,
                    confirmed=0.0,
                    period_used={},
                )
                _file_ghost(cell(name), ghost, config)
                w.lent[name] = amount
                out.ghosts += 1
            # What its past deals took (their proposals are gone from the book).
            w.used = max(0.0, r.confirmed)
        out.wide.requests[rid] = w
        out.wide_requests += 1
    # Proposals, agreements and closed pairs, in the cell of their offer.
    for p in proposals:
        cell(where[p.offer_id]).book.add_proposal(p)
        out.proposals += 1
    for a in agreements:
        target = cell(where[a.proposal.offer_id])
        target.book.agreements[a.proposal.match_id] = a
        target.book.dirty.add(a.proposal.match_id)
        out.agreements += 1
    for oid, rid in sorted(book.closed_pairs):
        if oid in mine and rid in mine:
            cell(where[oid]).book.closed_pairs.add((oid, rid))
            if rid in wide_ids:
                out.wide.closed.add((oid, rid))
            out.closed_pairs += 1
    # The wide key's mirror of the offers, and what each cell told it.
    for lid, x in mine.items():
        if x.kind == "offer":
            c = cell(where[lid])
            c.told[lid] = (x.available, x.terms)
            out.wide.mirrors.setdefault(c.name, {})[lid] = replace(x)
    # Out of the matcher's book.
    for p in proposals:
        book.drop_proposal(p)
    for a in agreements:
        del book.agreements[a.proposal.match_id]
        book.dirty.add(a.proposal.match_id)
    book.closed_pairs = {
        (oid, rid) for oid, rid in book.closed_pairs if oid not in mine and rid not in mine
    }
    for lid, x in mine.items():
        book.unfile(x, config.substitutions)
        del book.listings[lid]
        book.dirty.add(lid)
    return out


def _file_ghost(cell: CellState, ghost: Listing, config: MarketConfig) -> None:
    cell.book.listings[ghost.id] = ghost
    cell.book.file(ghost, config.substitutions)
    cell.book.dirty.add(ghost.id)
    cell.ghosts.add(ghost.id)
