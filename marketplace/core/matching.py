"""The matching decision: `step(book, command, config) -> (book, events)`. Pure.

Offers meet requests as they arrive. A pair is proposed only when it is compatible (code or a
configured substitute, hazardous permit, overlapping windows, distance within the buyer's limit,
both quantities in tonnes, the seller's minimum lot), when the delivered price (asking price
plus estimated transport) is within the buyer's maximum, and when the CO2e that reuse saves
exceeds the transport's. The quantity proposed is reserved on both sides until both accept
(confirmed), one declines, a listing is withdrawn or updated (cancelled), or the answer period
ends (expired); then it is released and offered to the next candidate.

Candidates are ranked by a score in [0, 1]: the buyer's weights over price headroom and net
CO2e share make up 80 %, quantity fit 20 %. Ties go to the shorter distance, then the older
listing, then the smaller id. Every proposal carries these figures as its reasons. The book is
changed in place and returned; the caller (the matcher) persists what `book.dirty` names."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Literal

from marketplace.core.book import EPS, Book, Kind, Listing, Proposal, Terms
from marketplace.core.economics import Estimate, MaterialFactor, TransportModel, estimate
from marketplace.core.geo import Place
from marketplace.core.ids import derived_id


@dataclass(frozen=True, slots=True)
class MarketConfig:
    transport: TransportModel
    factors: Mapping[str, MaterialFactor]
    # code -> codes a buyer of it also takes, e.g. plastic packaging and municipal plastics.
    substitutions: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    answer_period: timedelta = timedelta(hours=48)
    # Candidates considered per listing and code: the nearest ones, ring of grid cells by ring.
    # Bounds the cost of an event however dense the book grows.
    max_candidates: int = 64


# Commands: what the matcher reads from market.listings, in the core's own terms.
@dataclass(frozen=True, slots=True)
class Post:
    event_id: str
    at: datetime
    id: str
    kind: Kind
    owner: str
    code: str
    place: Place
    terms: Terms
    hazardous: bool = False
    hazardous_permit: bool = False
    accepts: tuple[str, ...] = ()
    density: float | None = None
    mass_per_piece: float | None = None


@dataclass(frozen=True, slots=True)
class Update:
    event_id: str
    at: datetime
    id: str
    kind: Kind
    owner: str
    terms: Terms


@dataclass(frozen=True, slots=True)
class Withdraw:
    event_id: str
    at: datetime
    id: str
    kind: Kind
    owner: str


@dataclass(frozen=True, slots=True)
class Answer:
    event_id: str
    at: datetime
    match_id: str
    partner: str
    accept: bool


@dataclass(frozen=True, slots=True)
class DeadlineDue:
    event_id: str
    at: datetime
    match_id: str


Command = Post | Update | Withdraw | Answer | DeadlineDue


# Events: what the matcher writes to market.matches.
@dataclass(frozen=True, slots=True)
class Reason:
    factor: str
    value: float
    note: str


@dataclass(frozen=True, slots=True)
class Proposed:
    proposal: Proposal
    score: float
    reasons: tuple[Reason, ...]


@dataclass(frozen=True, slots=True)
class Confirmed:
    proposal: Proposal
    offer: Listing
    request: Listing


@dataclass(frozen=True, slots=True)
class Expired:
    match_id: str
    code: str


CancelReason = Literal[
    "declined", "offer_withdrawn", "request_withdrawn", "offer_updated", "request_updated"
]


@dataclass(frozen=True, slots=True)
class Cancelled:
    match_id: str
    code: str
    reason: CancelReason
    by: str | None = None


Event = Proposed | Confirmed | Expired | Cancelled


@dataclass(frozen=True, slots=True)
class Candidate:
    offer: Listing
    request: Listing
    distance_km: float
    quantity: float
    estimate: Estimate
    delivered_price: float
    score: float

    def reasons(self) -> tuple[Reason, ...]:
        """Why this pair: built only for the candidates that become proposals."""
        o, r, est = self.offer.terms, self.request.terms, self.estimate
        quantity, distance, delivered = self.quantity, self.distance_km, self.delivered_price
        fit = quantity / r.quantity if r.quantity > 0 else 0.0
        return (
            Reason(
                "distance_km", round(distance, 3), f"within the buyer's {r.max_distance_km:g} km"
            ),
            Reason(
                "delivered_price",
                round(delivered, 2),
                f"{o.price:g} asked + {est.transport_cost_per_t:.2f} transport per t; "
                f"buyer's maximum {r.price:g} {o.currency}",
            ),
            Reason("quantity_fit", round(fit, 4), f"{quantity:g} t of the {r.quantity:g} t wanted"),
            Reason(
                "net_co2e_kg",
                round(est.net_co2e_kg, 1),
                f"{est.saved_co2e_kg:.0f} kg saved by reuse - "
                f"{est.transport_co2e_kg:.0f} kg transport",
            ),
        )

    def rank(self, driver: Listing) -> tuple[float, float, int, str]:
        other = self.request if driver.kind == "offer" else self.offer
        return (-self.score, round(self.distance_km, 6), other.seq, other.id)


def step(book: Book, command: Command, config: MarketConfig) -> tuple[Book, list[Event]]:
    out: list[Event] = []
    match command:
        case Post():
            _post(book, command, config, out)
        case Update():
            _update(book, command, config, out)
        case Withdraw():
            _withdraw(book, command, config, out)
        case Answer():
            _answer(book, command, config, out)
        case DeadlineDue():
            p = book.proposals.get(command.match_id)
            if p is not None and command.at >= p.expires_at:
                book.closed_pairs.add((p.offer_id, p.request_id))
                _release(book, p)
                out.append(Expired(p.match_id, p.code))
                _reallocate(book, [p.offer_id, p.request_id], command, config, out)
    return book, out


def _post(book: Book, command: Post, config: MarketConfig, out: list[Event]) -> None:
    if command.id in book.listings:
        return  # a redelivered post changes nothing
    book.seq += 1
    listing = Listing(
        id=command.id,
        kind=command.kind,
        owner=command.owner,
        code=command.code,
        place=command.place,
        terms=command.terms,
        seq=book.seq,
        hazardous=command.hazardous,
        hazardous_permit=command.hazardous_permit,
        accepts=command.accepts,
        density=command.density,
        mass_per_piece=command.mass_per_piece,
    )
    book.listings[listing.id] = listing
    book.file(listing, config.substitutions)
    book.dirty.add(listing.id)
    _allocate(book, listing, command, config, out)


def _own(book: Book, command: Update | Withdraw) -> Listing | None:
    listing = book.listings.get(command.id)
    if listing is None or listing.owner != command.owner or listing.kind != command.kind:
        return None
    return listing


def _update(book: Book, command: Update, config: MarketConfig, out: list[Event]) -> None:
    listing = _own(book, command)
    if listing is None:
        return
    why: CancelReason = "offer_updated" if listing.kind == "offer" else "request_updated"
    freed = _cancel_all(book, listing, why, out)
    book.unfile(listing, config.substitutions)
    # A smaller quantity cannot undo what was already confirmed.
    listing.terms = replace(command.terms, quantity=max(command.terms.quantity, listing.confirmed))
    book.file(listing, config.substitutions)
    book.dirty.add(listing.id)
    _allocate(book, listing, command, config, out)
    _reallocate(book, freed, command, config, out)


def _withdraw(book: Book, command: Withdraw, config: MarketConfig, out: list[Event]) -> None:
    listing = _own(book, command)
    if listing is None:
        return
    why: CancelReason = "offer_withdrawn" if listing.kind == "offer" else "request_withdrawn"
    freed = _cancel_all(book, listing, why, out)
    _remove(book, listing, config)
    _reallocate(book, freed, command, config, out)


def _answer(book: Book, command: Answer, config: MarketConfig, out: list[Event]) -> None:
    p = book.proposals.get(command.match_id)
    if p is None or command.partner not in (p.seller, p.buyer) or command.partner in p.answers:
        return
    if not command.accept:
        book.closed_pairs.add((p.offer_id, p.request_id))
        _release(book, p)
        out.append(Cancelled(p.match_id, p.code, "declined", command.partner))
        _reallocate(book, [p.offer_id, p.request_id], command, config, out)
        return
    p.answers[command.partner] = True
    book.dirty.add(p.match_id)
    if p.seller in p.answers and p.buyer in p.answers:
        offer, request = book.listings[p.offer_id], book.listings[p.request_id]
        for listing in (offer, request):
            listing.reserved = max(0.0, listing.reserved - p.quantity)
            listing.confirmed += p.quantity
            book.dirty.add(listing.id)
        book.drop_proposal(p)
        out.append(Confirmed(p, replace(offer), replace(request)))
        for listing in (offer, request):
            if listing.terms.quantity - listing.confirmed <= EPS and not book.by_listing.get(
                listing.id
            ):
                _remove(book, listing, config)


def _release(book: Book, p: Proposal) -> None:
    for lid in (p.offer_id, p.request_id):
        listing = book.listings.get(lid)
        if listing is not None:
            listing.reserved = max(0.0, listing.reserved - p.quantity)
            book.dirty.add(lid)
    book.drop_proposal(p)


def _cancel_all(book: Book, listing: Listing, reason: CancelReason, out: list[Event]) -> list[str]:
    """Cancels the listing's open proposals; returns the counterparts they freed."""
    freed = []
    for p in book.open_proposals_of(listing.id):
        _release(book, p)
        out.append(Cancelled(p.match_id, p.code, reason, listing.owner))
        freed.append(p.request_id if listing.kind == "offer" else p.offer_id)
    return freed


def _remove(book: Book, listing: Listing, config: MarketConfig) -> None:
    book.unfile(listing, config.substitutions)
    del book.listings[listing.id]
    book.dirty.add(listing.id)


def _reallocate(
    book: Book, ids: list[str], cause: Command, config: MarketConfig, out: list[Event]
) -> None:
    for lid in sorted(
        set(ids), key=lambda i: (book.listings[i].seq if i in book.listings else 0, i)
    ):
        listing = book.listings.get(lid)
        if listing is not None:
            _allocate(book, listing, cause, config, out)


def _allocate(
    book: Book, listing: Listing, cause: Command, config: MarketConfig, out: list[Event]
) -> None:
    """Proposes the listing's available quantity to its best candidates, best first."""
    if listing.available <= EPS or listing.terms.unit != "t":
        return
    candidates = [c for c in _candidates(book, listing, config) if c is not None]
    candidates.sort(key=lambda c: c.rank(listing))
    for c in candidates:
        if listing.available <= EPS:
            break
        # Recompute: earlier proposals in this loop may have used the other side too.
        fresh = _evaluate(book, c.offer, c.request, config)
        if fresh is None:
            continue
        index = sum(1 for e in out if isinstance(e, Proposed))
        p = Proposal(
            match_id=derived_id(cause.event_id, index),
            offer_id=fresh.offer.id,
            request_id=fresh.request.id,
            seller=fresh.offer.owner,
            buyer=fresh.request.owner,
            code=fresh.offer.code,
            quantity=fresh.quantity,
            delivered_price=fresh.delivered_price,
            currency=fresh.offer.terms.currency,
            estimate=fresh.estimate,
            expires_at=cause.at + config.answer_period,
            window=(
                max(fresh.offer.terms.start, fresh.request.terms.start),
                min(fresh.offer.terms.end, fresh.request.terms.end),
            ),
        )
        fresh.offer.reserved += p.quantity
        fresh.request.reserved += p.quantity
        book.dirty.update((fresh.offer.id, fresh.request.id))
        book.add_proposal(p)
        out.append(Proposed(p, fresh.score, fresh.reasons()))


def _candidates(book: Book, listing: Listing, config: MarketConfig) -> list[Candidate | None]:
    # The index gives each candidate's distance along with it (the same great-circle formula,
    # symmetric to the last bit), so that evaluating a pair does not compute it again.
    p = listing.place
    limit = config.max_candidates
    if listing.kind == "offer":
        reach = book.reach_km.get(listing.code, 0.0)
        near = book.requests.nearest_with_distance(listing.code, p.lat, p.lon, reach, limit)
        found = {i: d for d, i in near}
        return [_evaluate(book, listing, book.listings[i], config, found[i]) for i in sorted(found)]
    radius = listing.terms.max_distance_km or 0.0
    found = {
        i: d
        for code in book.request_codes(listing, config.substitutions)
        for d, i in book.offers.nearest_with_distance(code, p.lat, p.lon, radius, limit)
    }
    return [_evaluate(book, book.listings[i], listing, config, found[i]) for i in sorted(found)]


def _evaluate(
    book: Book,
    offer: Listing,
    request: Listing,
    config: MarketConfig,
    distance: float | None = None,
) -> Candidate | None:
    """The pair as a candidate, or None when any rule forbids it. `distance` is the pair's
    great-circle distance when the caller has it already."""
    o, r = offer.terms, request.terms
    if (offer.id, request.id) in book.closed_pairs or book.pair_open(offer.id, request.id):
        return None
    if offer.owner == request.owner:
        return None
    if offer.hazardous and not request.hazardous_permit:
        return None
    if o.unit != "t" or r.unit != "t" or o.currency != r.currency:
        return None
    if max(o.start, r.start) >= min(o.end, r.end):
        return None
    if distance is None:
        distance = offer.place.km_to(request.place)
    if r.max_distance_km is None or distance > r.max_distance_km:
        return None
    quantity = min(offer.available, request.available)
    if quantity <= EPS or (o.min_lot is not None and quantity < o.min_lot - EPS):
        return None
    factor = config.factors.get(offer.code)
    if factor is None:
        return None
    est = estimate(
        distance_km=distance,
        tonnes=quantity,
        factor=factor,
        transport=config.transport,
        currency=o.currency,
    )
    if est is None:
        return None
    delivered = o.price + est.transport_cost_per_t
    if delivered > r.price + EPS or est.saved_co2e_kg <= est.transport_co2e_kg:
        return None
    headroom = (r.price - delivered) / max(abs(r.price), 1.0)
    price_score = min(1.0, max(0.0, headroom))
    co2_score = min(1.0, max(0.0, est.net_co2e_kg / est.saved_co2e_kg))
    fit = quantity / r.quantity if r.quantity > 0 else 0.0
    weights = r.weight_price + r.weight_co2e
    wp, wc = (r.weight_price / weights, r.weight_co2e / weights) if weights > 0 else (0.5, 0.5)
    score = round(0.8 * (wp * price_score + wc * co2_score) + 0.2 * fit, 6)
    return Candidate(offer, request, distance, quantity, est, delivered, score)
