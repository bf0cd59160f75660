"""One partition's open offers, requests and proposals, with the indexes that find candidates.
Pure data; the decisions are in matching.py."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Literal

from marketplace.core.economics import Estimate
from marketplace.core.geo import Place
from marketplace.core.grid import GridIndex
from marketplace.core.periods import Period
from marketplace.core.specification import NO_SPEC, NOTHING_STATED, Spec, Stated

Kind = Literal["offer", "request"]
EPS = 1e-9


@dataclass(frozen=True, slots=True)
class Flow:
    """A recurring listing's rhythm: its quantity is per `period`, from `starts` to `ends`."""

    period: Period
    starts: date
    ends: date | None = None


@dataclass(frozen=True, slots=True)
class Terms:
    """A listing's changeable terms, in its base unit (tonnes, or pieces / m3 when no mass is
    known: those are kept but cannot be matched, as transport is costed per tonne-km)."""

    quantity: float
    unit: Literal["t", "m3", "pieces"]
    price: float  # offer: asking price per unit; request: most it pays per unit delivered
    currency: str
    start: datetime
    end: datetime
    min_lot: float | None = None  # offers only
    max_distance_km: float | None = None  # requests only
    weight_price: float = 0.5  # requests: how the buyer weighs price against CO2e
    weight_co2e: float = 0.5
    flow: Flow | None = None  # recurring: `quantity` is per period
    spec: Spec = NO_SPEC  # requests: the buyer's hard criteria


@dataclass(slots=True)
class Listing:
    id: str
    kind: Kind
    owner: str
    code: str
    place: Place
    terms: Terms
    seq: int
    hazardous: bool = False  # offers: the code is hazardous
    hazardous_permit: bool = False  # requests: the receiver may take hazardous waste
    accepts: tuple[str, ...] = ()  # requests: other codes taken
    density: float | None = None  # t per m3, as posted, for updates given in m3
    mass_per_piece: float | None = None  # t per piece, as posted, for updates given in pieces
    stated: Stated = NOTHING_STATED  # offers: recycled content, contamination, certifications held
    # For a recurring listing, `confirmed` and `reserved` count its standing agreements (per
    # period, in its own period) and `period_used` its one-off deals by period key.
    confirmed: float = 0.0
    reserved: float = 0.0
    period_used: dict[str, float] = field(default_factory=dict)

    @property
    def available(self) -> float:
        return max(0.0, self.terms.quantity - self.confirmed - self.reserved)

    def available_in(self, key: str | None, standing_from: str | None = None) -> float:
        """What is left: for a one-off listing (key None), of its quantity; for a recurring one,
        in period `key` for a one-off deal, or per period from `standing_from` on for a new
        standing agreement."""
        left = self.available
        if self.terms.flow is None:
            return left
        if key is not None:
            return max(0.0, left - self.period_used.get(key, 0.0))
        used = [
            v for k, v in self.period_used.items() if standing_from is None or k >= standing_from
        ]
        return max(0.0, left - max(used, default=0.0))


@dataclass(slots=True)
class Proposal:
    match_id: str
    offer_id: str
    request_id: str
    seller: str
    buyer: str
    code: str
    quantity: float
    delivered_price: float
    currency: str
    estimate: Estimate
    expires_at: datetime
    window: tuple[datetime, datetime]
    answers: dict[str, bool] = field(default_factory=dict)
    # A standing agreement between two recurring listings (quantity per `agreement.period`).
    agreement: Flow | None = None
    # What each side gives up, in its own units (its own period for a recurring listing), and
    # for a recurring listing in a one-off deal, the period key it is taken from.
    offer_take: float | None = None
    request_take: float | None = None
    offer_period: str | None = None
    request_period: str | None = None

    def take(self, kind: Kind) -> tuple[float, str | None]:
        if kind == "offer":
            take, key = self.offer_take, self.offer_period
        else:
            take, key = self.request_take, self.request_period
        return (self.quantity if take is None else take), key


@dataclass(slots=True)
class Standing:
    """A confirmed standing agreement, kept until its term is over or a side withdraws."""

    proposal: Proposal
    pickup: Place
    delivery: Place
    hazardous: bool
    last_key: str | None = None  # the last period whose delivery was scheduled


@dataclass(slots=True)
class Book:
    listings: dict[str, Listing] = field(default_factory=dict)
    proposals: dict[str, Proposal] = field(default_factory=dict)
    # (offer id, request id) pairs that were declined or let expire: never proposed again.
    closed_pairs: set[tuple[str, str]] = field(default_factory=set)
    seq: int = 0
    offers: GridIndex = field(default_factory=GridIndex)
    # Requests are filed under every code they take, so an offer finds them by its own code.
    requests: GridIndex = field(default_factory=GridIndex)
    reach_km: dict[str, float] = field(default_factory=dict)
    by_listing: dict[str, set[str]] = field(default_factory=dict)
    # Confirmed standing agreements by match id.
    agreements: dict[str, Standing] = field(default_factory=dict)
    # What changed since the last save (listing ids and match ids), for the consumer that
    # persists the book.
    dirty: set[str] = field(default_factory=set)

    def add_proposal(self, p: Proposal) -> None:
        self.proposals[p.match_id] = p
        for lid in (p.offer_id, p.request_id):
            self.by_listing.setdefault(lid, set()).add(p.match_id)
        self.dirty.add(p.match_id)

    def drop_proposal(self, p: Proposal) -> None:
        del self.proposals[p.match_id]
        for lid in (p.offer_id, p.request_id):
            ids = self.by_listing.get(lid)
            if ids is not None:
                ids.discard(p.match_id)
                if not ids:
                    del self.by_listing[lid]
        self.dirty.add(p.match_id)

    def request_codes(
        self, listing: Listing, substitutions: Mapping[str, tuple[str, ...]]
    ) -> list[str]:
        return sorted({listing.code, *listing.accepts, *substitutions.get(listing.code, ())})

    def file(self, listing: Listing, substitutions: Mapping[str, tuple[str, ...]]) -> None:
        p = listing.place
        if listing.kind == "offer":
            self.offers.add(listing.code, p.lat, p.lon, listing.id)
            return
        reach = listing.terms.max_distance_km or 0.0
        for code in self.request_codes(listing, substitutions):
            self.requests.add(code, p.lat, p.lon, listing.id)
            self.reach_km[code] = max(self.reach_km.get(code, 0.0), reach)

    def unfile(self, listing: Listing, substitutions: Mapping[str, tuple[str, ...]]) -> None:
        p = listing.place
        if listing.kind == "offer":
            self.offers.remove(listing.code, p.lat, p.lon, listing.id)
        else:
            for code in self.request_codes(listing, substitutions):
                self.requests.remove(code, p.lat, p.lon, listing.id)

    def pair_open(self, offer_id: str, request_id: str) -> bool:
        """Whether the pair already has an open proposal: one at a time per pair."""
        return any(
            self.proposals[m].request_id == request_id for m in self.by_listing.get(offer_id, ())
        )

    def open_proposals_of(self, listing_id: str) -> list[Proposal]:
        return [self.proposals[m] for m in sorted(self.by_listing.get(listing_id, ()))]

    def agreements_of(self, listing_id: str) -> list[Standing]:
        return [
            a
            for _, a in sorted(self.agreements.items())
            if listing_id in (a.proposal.offer_id, a.proposal.request_id)
        ]
