"""Geographic shards of a hot material family, and the lending protocol that lets a request
reaching across shards meet offers in any of them (#17, step 2 of routing). Pure.

A material family is the key of `market.listings` (families.py): every pair that can trade falls
on one partition, so the busiest family (a fifth of the traffic) pins its matching to one
instance. A `ShardPlan` splits a hot family by place into cells of a latitude/longitude grid:

- an offer is owned by the cell it lies in (key "plastics@n0e1");
- a request whose circle (its place and its maximum distance) lies inside one cell is owned by
  that cell too: every offer it can meet lies there;
- a request whose circle crosses a cell's edge is owned by the family's wide key
  ("plastics@wide").

Each listing's free quantity has exactly one owner. A wide request meets offers of other cells by
lending: the wide key keeps a mirror of every cell's offers (each cell tells it what changed,
`OfferSeen`), picks the cell holding the request's best compatible offer, and lends the request's
whole free quantity there (`Lend`). The cell files the request as a "ghost" of that quantity and
decides with the ordinary core (`matching.step`): the ghost competes with the cell's own requests
for the cell's offers, its proposals, answers and timers are the cell's. Whatever the ghost could
not place goes back at once (`Returned`, with the offers closed to it), and quantity freed later
(a decline, an expiry, a cancelled proposal) goes back after the cell has offered it to its own
offers again. The wide key does not lend a request to a cell again until that cell reports a
change of its offers, so a loan that found nothing is not repeated. An update or a withdrawal of
a wide request recalls it from every cell holding a part of it (`Recall`): the cell cancels the
ghost's open proposals as the core cancels a request's, keeps what was confirmed and returns the
rest, which the wide key lends again within the request's new quantity.

Every command about a listing goes to its home, the key it was posted under. An update that takes
a cell's own request beyond the cell's edge makes it the wide key's (`Moved`): it stays in the
cell as a ghost holding what it has, its free part goes back, and the cell forwards its later
updates and withdrawals to the wide key (`Forwarded`), in order behind the move.

When the traffic is drained, no compatible pair with free quantity on both sides is left
unproposed: the wide key holds every wide request's free quantity and a mirror of every offer as
its cell last reported it; a compatible offer in a cell the request was not lent to since that
report would be lent to, and a cell that returned the request after the report had that offer
in its book when it decided. `tests/unit/test_shards.py` checks this, no over-allocation, the
conservation of a wide request's quantity and the validity of every proposal on random streams
delivered in random interleavings.

A recurring request that reaches beyond its cell is lent whole and comes back whole, only once it
holds nothing in its cell (its quantity is per period, and a period's tonnes taken in one cell
must not be lent again): it trades with one cell at a time."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime
from math import asin, cos, radians, sin
from typing import Literal

from marketplace.core.book import EPS, Book, Listing, Terms
from marketplace.core.families import SHARED
from marketplace.core.geo import EARTH_RADIUS_KM, Place
from marketplace.core.ids import derived_id
from marketplace.core.matching import (
    Command,
    Event,
    MarketConfig,
    Post,
    Update,
    Withdraw,
    _allocate,
    _remove,
    assess,
    step,
)

WIDE = "wide"
# A circle closer to a cell's edge than this is treated as crossing it: the edge distances below
# and the core's haversine round differently in the last bits.
MARGIN_KM = 0.5
_KM_PER_DEGREE = radians(1.0) * EARTH_RADIUS_KM


@dataclass(frozen=True, slots=True)
class ShardPlan:
    """Which families are split by place, and the grid that splits them: cells between the
    latitude cuts and between the longitude cuts (degrees, ascending). A plan with no cuts keeps
    every family whole."""

    families: frozenset[str] = frozenset()
    lat_cuts: tuple[float, ...] = ()
    lon_cuts: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        for name, cuts, bound in (("lat", self.lat_cuts, 90.0), ("lon", self.lon_cuts, 180.0)):
            if list(cuts) != sorted(set(cuts)):
                raise ValueError(f"{name}_cuts must ascend without repeats: {cuts}")
            if any(not -bound < c < bound for c in cuts):
                raise ValueError(f"{name}_cuts must lie strictly between -{bound} and {bound}")

    def cell(self, place: Place) -> str:
        """The cell of a place: "n<i>e<j>", i and j counting the cuts below and west of it."""
        i = sum(1 for c in self.lat_cuts if place.lat >= c)
        j = sum(1 for c in self.lon_cuts if place.lon >= c)
        return f"n{i}e{j}"

    def cells(self) -> tuple[str, ...]:
        """Every cell of the grid."""
        return tuple(
            f"n{i}e{j}"
            for i in range(len(self.lat_cuts) + 1)
            for j in range(len(self.lon_cuts) + 1)
        )

    def keys(self, family: str) -> tuple[str, ...]:
        """Every key of a split family: its cells', then its wide key. The commands that do not
        name a place (updates, withdrawals, answers, timers) go to all of them, and the key that
        holds the listing or the proposal acts."""
        return (*(f"{family}@{c}" for c in self.cells()), f"{family}@{WIDE}")

    def contains(self, place: Place, radius_km: float) -> bool:
        """Whether the circle lies inside the cell of its centre, `MARGIN_KM` to spare."""
        reach = radius_km + MARGIN_KM
        i = sum(1 for c in self.lat_cuts if place.lat >= c)
        j = sum(1 for c in self.lon_cuts if place.lon >= c)
        # The nearest point of a parallel lies on the meridian: |dlat| in km.
        lats = [self.lat_cuts[k] for k in (i - 1, i) if 0 <= k < len(self.lat_cuts)]
        if any(abs(place.lat - c) * _KM_PER_DEGREE <= reach for c in lats):
            return False
        if not self.lon_cuts:
            return True
        # The outer cells meet at the antimeridian, an edge too.
        lons = [self.lon_cuts[k] for k in (j - 1, j) if 0 <= k < len(self.lon_cuts)] + [180.0]
        return all(_km_to_meridian(place, c) > reach for c in lons)

    def key(
        self, family: str, kind: Literal["offer", "request"], place: Place, radius_km: float | None
    ) -> str:
        """The partition key of a listing of `family`: the family itself unless the plan splits
        it; else its cell, or the family's wide key for a request whose circle leaves its cell."""
        if family not in self.families:
            return family
        if kind == "request" and not self.contains(place, radius_km or 0.0):
            return f"{family}@{WIDE}"
        return f"{family}@{self.cell(place)}"


def parse_plan(families: str, lat_cuts: str, lon_cuts: str) -> ShardPlan:
    """A plan from its settings' text: families comma-separated (a shared family's name or a
    4-digit sub-chapter), cuts comma-separated degrees. ValueError names what is wrong."""
    names = [f.strip() for f in families.split(",") if f.strip()]
    for name in names:
        if name not in SHARED and not (len(name) == 4 and name.isdigit()):
            raise ValueError(
                f"{name!r} is not a material family (one of {', '.join(SHARED)}, or a 4-digit "
                "List of Waste sub-chapter)"
            )

    def cuts(text: str, what: str) -> tuple[float, ...]:
        try:
            return tuple(float(c) for c in text.split(",") if c.strip())
        except ValueError:
            raise ValueError(f"{what} cuts {text!r}: degrees, comma-separated") from None

    return ShardPlan(frozenset(names), cuts(lat_cuts, "latitude"), cuts(lon_cuts, "longitude"))


def _km_to_meridian(place: Place, lon: float) -> float:
    """Great-circle distance from a place to the half-meridian at `lon` (pole to pole): to the
    foot of the perpendicular when it lies on that half, else to the nearer pole."""
    dlon = radians(place.lon - lon)
    if cos(dlon) >= 0.0:
        return asin(min(1.0, abs(sin(dlon)) * cos(radians(place.lat)))) * EARTH_RADIUS_KM
    return (90.0 - abs(place.lat)) * _KM_PER_DEGREE


# Messages between a split family's keys (carried on market.listings in the wiring to come).
@dataclass(frozen=True, slots=True)
class Lend:
    """Wide -> cell: `quantity` of the request, to be matched with the cell's offers."""

    event_id: str
    at: datetime
    request: Listing  # as the wide key holds it (its terms; its own quantity is not used)
    quantity: float


@dataclass(frozen=True, slots=True)
class Recall:
    """Wide -> cell: the request was updated (`terms`) or withdrawn (None)."""

    event_id: str
    at: datetime
    request_id: str
    owner: str
    terms: Terms | None


@dataclass(frozen=True, slots=True)
class Returned:
    """Cell -> wide: free quantity of a request given back, and the cell's offers closed to it."""

    cell: str
    request_id: str
    quantity: float
    closed: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class OfferSeen:
    """Cell -> wide: an offer as the cell now holds it (None: gone)."""

    cell: str
    offer_id: str
    offer: Listing | None


@dataclass(frozen=True, slots=True)
class Moved:
    """Cell -> wide: a request of this cell whose reach an update took across the cell's edge.
    The wide key owns it from now on, the cell holding all of it until it returns the free part
    (the message that follows). Its later updates and withdrawals still come to the cell (its
    home, the key it was posted under), which forwards them."""

    cell: str
    request: Listing  # its terms after the update, whole quantity


@dataclass(frozen=True, slots=True)
class Forwarded:
    """Cell -> wide: an update or withdrawal of a request the cell moved to the wide key."""

    command: Update | Withdraw


ToWide = Returned | OfferSeen | Moved | Forwarded


# A cell ------------------------------------------------------------------------------------------


@dataclass(slots=True)
class CellState:
    name: str
    book: Book = field(default_factory=Book)
    ghosts: set[str] = field(default_factory=set)  # wide requests lent here
    moved: set[str] = field(default_factory=set)  # requests posted here, owned by the wide key
    # What the wide key was last told of each offer: its free quantity and terms.
    told: dict[str, tuple[float, Terms]] = field(default_factory=dict)


def cell_step(
    cell: CellState, command: Command | Lend | Recall, config: MarketConfig, plan: ShardPlan
) -> tuple[list[Event], list[ToWide]]:
    """One command at a cell: the core's events, and what the wide key must be told."""
    book = cell.book
    events: list[Event] = []
    reports: list[ToWide] = []
    back = 0.0
    if isinstance(command, Lend):
        events = _lend(cell, command, config)
    elif isinstance(command, Recall):
        events, back = _recall(cell, command, config)
    elif isinstance(command, Update | Withdraw) and command.id in cell.moved:
        reports.append(Forwarded(command))
    elif isinstance(command, Update | Withdraw) and command.id in cell.ghosts:
        pass  # a lent request changes through its recall, never directly
    else:
        _, events = step(book, command, config)
        if isinstance(command, Update) and command.kind == "request":
            moved = _move_if_beyond(cell, command.id, plan)
            if moved is not None:
                reports.append(moved)
    # The offers first: the wide key reads a return against the offers as the cell left them.
    seen = _offers_seen(cell)
    if back > EPS:
        rid = command.request_id  # type: ignore[union-attr]
        closed = tuple(sorted(o for o, r in book.closed_pairs if r == rid))
        seen.append(Returned(cell.name, rid, back, closed))
    return events, reports + seen + _returns(cell, config)


def _move_if_beyond(cell: CellState, rid: str, plan: ShardPlan) -> Moved | None:
    """A request of this cell whose reach now leaves it becomes the wide key's: it stays here
    as a ghost holding what it has (the core has just offered it the cell's offers on its new
    terms), and its free part goes back with the cell's returns."""
    request = cell.book.listings.get(rid)
    if request is None or rid in cell.ghosts:
        return None
    if plan.contains(request.place, request.terms.max_distance_km or 0.0):
        return None
    cell.ghosts.add(rid)
    cell.moved.add(rid)
    return Moved(cell.name, replace(request, confirmed=0.0, reserved=0.0, period_used={}))


def _lend(cell: CellState, lend: Lend, config: MarketConfig) -> list[Event]:
    book, r = cell.book, lend.request
    ghost = book.listings.get(r.id)
    if ghost is None:
        cell.ghosts.add(r.id)
        post = Post(
            event_id=lend.event_id,
            at=lend.at,
            id=r.id,
            kind="request",
            owner=r.owner,
            code=r.code,
            place=r.place,
            terms=replace(r.terms, quantity=lend.quantity),
            hazardous_permit=r.hazardous_permit,
            accepts=r.accepts,
            density=r.density,
            mass_per_piece=r.mass_per_piece,
        )
        _, events = step(book, post, config)
        return events
    quantity = ghost.terms.quantity + lend.quantity
    if replace(ghost.terms, quantity=0.0) != replace(r.terms, quantity=0.0):
        # Terms changed since the ghost was filed (its recall is on its way or done): the core's
        # update files them, cancelling what the old terms proposed.
        update = Update(
            lend.event_id, lend.at, r.id, "request", r.owner, replace(r.terms, quantity=quantity)
        )
        _, events = step(book, update, config)
        return events
    ghost.terms = replace(ghost.terms, quantity=quantity)
    book.dirty.add(ghost.id)
    out: list[Event] = []
    cause = Post(lend.event_id, lend.at, r.id, "request", r.owner, r.code, r.place, r.terms)
    _allocate(book, ghost, cause, config, out)
    return out


def _recall(cell: CellState, recall: Recall, config: MarketConfig) -> tuple[list[Event], float]:
    """A lent request updated or withdrawn: the events, and the quantity that goes back."""
    book = cell.book
    ghost = book.listings.get(recall.request_id)
    if ghost is None:
        cell.ghosts.discard(recall.request_id)
        return [], 0.0
    if recall.terms is None:
        _, events = step(
            book, Withdraw(recall.event_id, recall.at, ghost.id, "request", recall.owner), config
        )
        cell.ghosts.discard(recall.request_id)
        return events, 0.0
    terms = recall.terms
    if ghost.terms.flow is not None and terms.flow is not None:
        # A recurring request is lent whole: it stays whole here, on its new terms (the core's
        # update cancels its open proposals and offers it this cell's offers again).
        update = Update(recall.event_id, recall.at, ghost.id, "request", recall.owner, terms)
        _, events = step(book, update, config)
        return events, 0.0
    # The core's update cancels the open proposals and keeps what was confirmed (a quantity of 0
    # is raised to it); the rest goes back, to be lent again within the request's new quantity.
    held = ghost.terms.quantity
    update = Update(
        recall.event_id, recall.at, ghost.id, "request", recall.owner, replace(terms, quantity=0.0)
    )
    _, events = step(book, update, config)
    return events, max(0.0, held - ghost.terms.quantity)


def _returns(cell: CellState, config: MarketConfig) -> list[ToWide]:
    """Gives every ghost's free quantity back (after the core has offered it to the cell); a
    ghost left with nothing open or confirmed leaves the book."""
    book = cell.book
    out: list[ToWide] = []
    for rid in sorted(cell.ghosts):
        ghost = book.listings.get(rid)
        if ghost is None:
            cell.ghosts.discard(rid)
            continue
        free = ghost.available
        if ghost.terms.flow is not None and (
            ghost.confirmed > EPS
            or ghost.reserved > EPS
            or ghost.period_used
            or book.by_listing.get(rid)
        ):
            # A recurring request is lent whole and comes back whole: its quantity is per
            # period, and what it took in one period of one cell must not be lent again.
            free = 0.0
        if free > EPS:
            ghost.terms = replace(ghost.terms, quantity=ghost.terms.quantity - free)
            book.dirty.add(rid)
            closed = tuple(sorted(o for o, r in book.closed_pairs if r == rid))
            out.append(Returned(cell.name, rid, free, closed))
        if ghost.terms.quantity - ghost.confirmed <= EPS and not book.by_listing.get(rid):
            _remove(book, ghost, config)
            cell.ghosts.discard(rid)
    return out


def _offers_seen(cell: CellState) -> list[ToWide]:
    """The offers whose free quantity or terms changed, as the wide key must now see them."""
    book = cell.book
    out: list[ToWide] = []
    for oid in sorted(book.dirty):
        offer = book.listings.get(oid)
        if offer is not None and offer.kind != "offer":
            continue
        if offer is None:
            if cell.told.pop(oid, None) is not None:
                out.append(OfferSeen(cell.name, oid, None))
            continue
        now = (offer.available, offer.terms)
        if cell.told.get(oid) != now:
            cell.told[oid] = now
            out.append(OfferSeen(cell.name, oid, replace(offer)))
    return out


# The wide key ------------------------------------------------------------------------------------


@dataclass(slots=True)
class WideRequest:
    listing: Listing  # its terms; `listing.terms.quantity` is its whole quantity
    lent: dict[str, float] = field(default_factory=dict)  # cell -> quantity out there
    home: str = WIDE  # where its commands arrive: posted wide, or the cell that moved it
    used: float = 0.0  # what deals confirmed before the family was split took (split.py)

    @property
    def free(self) -> float:
        return max(0.0, self.listing.terms.quantity - self.used - sum(self.lent.values()))


@dataclass(slots=True)
class WideState:
    requests: dict[str, WideRequest] = field(default_factory=dict)
    mirrors: dict[str, dict[str, Listing]] = field(default_factory=dict)  # cell -> offers
    # Cells a request came back from, until the cell reports a change of its offers.
    tried: dict[str, set[str]] = field(default_factory=dict)
    closed: set[tuple[str, str]] = field(default_factory=set)
    sent: int = 0  # messages sent, for their ids
    # The requests and the mirrored offers by code and place (derived: built on first use).
    index: WideIndex | None = field(default=None, repr=False, compare=False)


@dataclass(slots=True)
class WideIndex:
    """The wide key's grids: its requests (filed under every code they take) and the cells'
    offers, so that a loan weighs only the offers within the request's reach, and a changed
    offer only the requests that reach it."""

    book: Book
    cell_of: dict[str, str]


def _index(wide: WideState, config: MarketConfig) -> WideIndex:
    if wide.index is None:
        book = Book()
        cell_of: dict[str, str] = {}
        for w in wide.requests.values():
            book.file(w.listing, config.substitutions)
        for cell, offers in wide.mirrors.items():
            for oid, offer in offers.items():
                book.file(offer, config.substitutions)
                cell_of[oid] = cell
        wide.index = WideIndex(book, cell_of)
    return wide.index


def _filed(wide: WideState, listing: Listing, config: MarketConfig, cell: str = "") -> None:
    if wide.index is not None:
        wide.index.book.file(listing, config.substitutions)
        if cell:
            wide.index.cell_of[listing.id] = cell


def _unfiled(wide: WideState, listing: Listing, config: MarketConfig) -> None:
    if wide.index is not None:
        wide.index.book.unfile(listing, config.substitutions)
        wide.index.cell_of.pop(listing.id, None)


Outbound = tuple[str, Lend | Recall]  # (cell, message)


def wide_step(
    wide: WideState, command: Command | ToWide, config: MarketConfig, at: datetime
) -> list[Outbound]:
    """One command or cell report at the wide key; returns the messages for the cells."""
    out: list[Outbound] = []
    match command:
        case Post(kind="request"):
            if command.id not in wide.requests:
                listing = Listing(
                    id=command.id,
                    kind="request",
                    owner=command.owner,
                    code=command.code,
                    place=command.place,
                    terms=command.terms,
                    seq=0,
                    hazardous_permit=command.hazardous_permit,
                    accepts=command.accepts,
                    density=command.density,
                    mass_per_piece=command.mass_per_piece,
                )
                wide.requests[command.id] = WideRequest(listing)
                _filed(wide, listing, config)
                _lend_all(wide, [command.id], config, at, out)
        case Update(kind="request") | Withdraw(kind="request"):
            # Broadcast to every key of the family: the wide key acts on its own requests; a
            # moved request's commands come forwarded by its home cell.
            w = wide.requests.get(command.id)
            if w is not None and w.home == WIDE:
                _change(wide, w, command, config, at, out)
        case Moved():
            r = command.request
            if r.id not in wide.requests:
                wide.requests[r.id] = WideRequest(r, {command.cell: r.terms.quantity}, command.cell)
                _filed(wide, r, config)
        case Forwarded():
            w = wide.requests.get(command.command.id)
            if w is not None:
                _change(wide, w, command.command, config, at, out)
        case Returned():
            w = wide.requests.get(command.request_id)
            if w is not None:
                w.lent[command.cell] = w.lent.get(command.cell, 0.0) - command.quantity
                wide.closed.update((o, command.request_id) for o in command.closed)
                wide.tried.setdefault(command.cell, set()).add(command.request_id)
                _lend_all(wide, [command.request_id], config, at, out)
        case OfferSeen():
            offers = wide.mirrors.setdefault(command.cell, {})
            before = offers.pop(command.offer_id, None)
            if before is not None:
                _unfiled(wide, before, config)
            offer = command.offer
            if offer is not None:
                offers[command.offer_id] = offer
                _filed(wide, offer, config, command.cell)
            wide.tried.pop(command.cell, None)
            # The requests that may reach it (its place is the one it had); one gone frees none.
            if offer is not None:
                book = _index(wide, config).book
                reach = book.reach_km.get(offer.code, 0.0)
                near = book.requests.near(offer.code, offer.place.lat, offer.place.lon, reach)
                _lend_all(wide, sorted(near & wide.requests.keys()), config, at, out)
    return out


def _change(
    wide: WideState,
    w: WideRequest,
    command: Update | Withdraw,
    config: MarketConfig,
    at: datetime,
    out: list[Outbound],
) -> None:
    """An update or a withdrawal of a request the wide key owns: recalled from every cell
    holding a part of it; an update is then lent again on its new terms."""
    if w.listing.owner != command.owner or command.kind != "request":
        return
    terms = command.terms if isinstance(command, Update) else None
    for cell, held in sorted(w.lent.items()):
        if held > EPS:
            out.append((cell, _recall_msg(wide, at, w, terms)))
    _unfiled(wide, w.listing, config)
    if terms is None:
        del wide.requests[w.listing.id]
        return
    if w.listing.terms.flow is not None and terms.flow is not None:
        # Lent whole, it stays whole in its cell, on its new quantity.
        w.lent = {c: (terms.quantity if v > EPS else v) for c, v in w.lent.items()}
    w.listing.terms = terms
    _filed(wide, w.listing, config)
    for cells in wide.tried.values():
        cells.discard(w.listing.id)
    _lend_all(wide, [w.listing.id], config, at, out)


def _recall_msg(wide: WideState, at: datetime, w: WideRequest, terms: Terms | None) -> Recall:
    wide.sent += 1
    return Recall(
        derived_id(f"wide/{w.listing.id}", wide.sent), at, w.listing.id, w.listing.owner, terms
    )


def _lend_all(
    wide: WideState, ids: Iterable[str], config: MarketConfig, at: datetime, out: list[Outbound]
) -> None:
    for rid in ids:
        w = wide.requests[rid]
        free = w.free
        if free <= EPS:
            continue
        if w.listing.terms.flow is not None and any(v > EPS for v in w.lent.values()):
            continue  # a recurring request is in one cell at a time, whole
        cell = best_cell(wide, w, free, config)
        if cell is None:
            continue
        w.lent[cell] = w.lent.get(cell, 0.0) + free
        wide.sent += 1
        out.append((cell, Lend(derived_id(f"wide/{rid}", wide.sent), at, w.listing, free)))


def best_cell(wide: WideState, w: WideRequest, free: float, config: MarketConfig) -> str | None:
    """The cell holding the request's best compatible offer, as the mirrors show them, among
    the cells it has not come back from since their last report."""
    r = w.listing
    view = replace(r, terms=replace(r.terms, quantity=free))
    index = _index(wide, config)
    radius = r.terms.max_distance_km or 0.0
    best: tuple[float, float, str] | None = None
    for code in index.book.request_codes(r, config.substitutions):
        for oid in sorted(index.book.offers.near(code, r.place.lat, r.place.lon, radius)):
            cell = index.cell_of[oid]
            if r.id in wide.tried.get(cell, ()) or (oid, r.id) in wide.closed:
                continue
            offer = wide.mirrors[cell][oid]
            if offer.owner == r.owner:
                continue
            c = assess(offer, view, config)
            if c is not None and (best is None or (-c.score, c.distance_km, cell) < best):
                best = (-c.score, c.distance_km, cell)
    return None if best is None else best[2]
