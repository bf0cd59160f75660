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

import heapq
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Literal

from marketplace.core import periods
from marketplace.core.book import EPS, Book, Flow, Kind, Listing, Proposal, Standing, Terms
from marketplace.core.economics import Estimate, MaterialFactor, TransportModel, estimate
from marketplace.core.eligibility import in_tonnes, permitted, priced
from marketplace.core.geo import Place
from marketplace.core.ids import derived_id
from marketplace.core.specification import NOTHING_STATED, Check, Stated, check, meets


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
    stated: Stated = NOTHING_STATED


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


@dataclass(frozen=True, slots=True)
class PeriodDue:
    """Timer: period `key` of a standing agreement begins."""

    event_id: str
    at: datetime
    match_id: str
    key: str


Command = Post | Update | Withdraw | Answer | DeadlineDue | PeriodDue


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
    criteria: tuple[Check, ...] = ()


@dataclass(frozen=True, slots=True)
class Confirmed:
    proposal: Proposal
    offer: Listing
    request: Listing
    # A standing agreement's first period: (key, when its timer is due).
    first_period: tuple[str, datetime] | None = None


@dataclass(frozen=True, slots=True)
class DeliveryDue:
    """One period's delivery under a standing agreement, and when the next period begins."""

    standing: Standing
    key: str
    window: tuple[datetime, datetime]
    next_period: tuple[str, datetime]


@dataclass(frozen=True, slots=True)
class AgreementOver:
    match_id: str
    code: str
    reason: Literal["term_over", "offer_withdrawn", "request_withdrawn"]
    last_key: str | None


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


Event = Proposed | Confirmed | Expired | Cancelled | DeliveryDue | AgreementOver


@dataclass(slots=True)  # not frozen: made for every candidate, and frozen init costs more
class Deal:
    """How a pair would trade: per agreement period between two recurring listings, once
    otherwise; and what each side gives up in its own units (and from which period)."""

    quantity: float
    offer_take: float
    request_take: float
    offer_period: str | None = None
    request_period: str | None = None
    agreement: Flow | None = None


@dataclass(frozen=True, slots=True)
class Candidate:
    offer: Listing
    request: Listing
    distance_km: float
    quantity: float
    estimate: Estimate
    delivered_price: float
    score: float
    deal: Deal

    def criteria(self) -> tuple[Check, ...]:
        r = self.request.terms
        return check(r.spec, self.offer.stated, self.distance_km, r.max_distance_km)

    def reasons(self) -> tuple[Reason, ...]:
        """Why this pair: built only for the candidates that become proposals."""
        o, r, est = self.offer.terms, self.request.terms, self.estimate
        quantity, distance, delivered = self.quantity, self.distance_km, self.delivered_price
        fit = self.deal.request_take / r.quantity if r.quantity > 0 else 0.0
        agreement = self.deal.agreement
        per = f" per {agreement.period}" if agreement else ""
        extra: tuple[Reason, ...] = ()
        if agreement is not None:
            until = f" until {agreement.ends.isoformat()}" if agreement.ends else ""
            extra = (
                Reason(
                    "agreement_t_per_period",
                    round(quantity, 6),
                    f"{quantity:g} t every {agreement.period} from "
                    f"{agreement.starts.isoformat()}{until}",
                ),
            )
        elif self.deal.offer_period or self.deal.request_period:
            key = self.deal.offer_period or self.deal.request_period
            extra = (Reason("from_period", 0.0, f"one delivery, taken from period {key}"),)
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
            Reason(
                "quantity_fit",
                round(fit, 4),
                f"{quantity:g} t{per} of the {r.quantity:g} t wanted"
                + (f" per {r.flow.period}" if r.flow else ""),
            ),
            self._co2e_reason(per),
            *extra,
        )

    def _co2e_reason(self, per: str) -> Reason:
        est = self.estimate
        if est.saved_co2e_kg is None or est.net_co2e_kg is None:
            return Reason(
                "co2e_unknown",
                round(est.transport_co2e_kg, 1),
                f"CO2e saved unknown: no sourced carbon factor for {self.offer.code}; "
                f"{est.transport_co2e_kg:.0f} kg transport{per}",
            )
        return Reason(
            "net_co2e_kg",
            round(est.net_co2e_kg, 1),
            f"{est.saved_co2e_kg:.0f} kg saved by reuse - "
            f"{est.transport_co2e_kg:.0f} kg transport{per}",
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
        case PeriodDue():
            _period_due(book, command, config, out)
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
        stated=command.stated,
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
    ended: Literal["offer_withdrawn", "request_withdrawn"] = (
        "offer_withdrawn" if listing.kind == "offer" else "request_withdrawn"
    )
    for standing in book.agreements_of(listing.id):
        freed.extend(_end(book, standing, ended, out))
    _remove(book, listing, config)
    _reallocate(book, [i for i in freed if i != listing.id], command, config, out)


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
            take, key = p.take(listing.kind)
            if key is None:  # a one-off deal from a recurring listing stays in its period
                listing.reserved = max(0.0, listing.reserved - take)
                listing.confirmed += take
            book.dirty.add(listing.id)
        book.drop_proposal(p)
        first = None
        if p.agreement is not None:
            book.agreements[p.match_id] = Standing(p, offer.place, request.place, offer.hazardous)
            book.dirty.add(p.match_id)
            # The first period is the one the agreement starts in (or the current one), its
            # timer due when the agreement starts (or at once).
            day = max(p.agreement.starts, command.at.date())
            first = (
                periods.key_of(p.agreement.period, day),
                max(command.at, periods.midnight(day)),
            )
        out.append(Confirmed(p, replace(offer), replace(request), first))
        for listing in (offer, request):
            if (
                listing.terms.flow is None
                and listing.terms.quantity - listing.confirmed <= EPS
                and not book.by_listing.get(listing.id)
            ):
                _remove(book, listing, config)
        # While the pair's proposal was open, neither side could propose to the other again
        # (one open proposal per pair): quantity freed meanwhile on both sides meets now.
        _reallocate(book, [p.offer_id, p.request_id], command, config, out)


def _period_due(book: Book, command: PeriodDue, config: MarketConfig, out: list[Event]) -> None:
    standing = book.agreements.get(command.match_id)
    if standing is None:
        return  # ended already
    p = standing.proposal
    flow = p.agreement
    assert flow is not None
    if standing.last_key is not None and command.key <= standing.last_key:
        return  # this period's delivery was scheduled already
    begins = periods.start_of_named(flow.period, command.key)
    if begins is None:
        return  # not a key of the agreement's period: not a timer the matcher asked for
    if flow.ends is not None and begins >= flow.ends:
        freed = _end(book, standing, "term_over", out)
        _reallocate(book, freed, command, config, out)
        return
    following = periods.next_start(flow.period, begins)
    opens = periods.midnight(max(begins, flow.starts))
    closes = periods.midnight(min(following, flow.ends) if flow.ends else following)
    standing.last_key = command.key
    book.dirty.add(p.match_id)
    out.append(
        DeliveryDue(
            standing,
            command.key,
            (opens, closes),
            (periods.key_of(flow.period, following), periods.midnight(following)),
        )
    )


def _end(
    book: Book,
    standing: Standing,
    reason: Literal["term_over", "offer_withdrawn", "request_withdrawn"],
    out: list[Event],
) -> list[str]:
    """Ends a standing agreement and gives both sides their per-period quantity back; returns
    the listings freed."""
    p = standing.proposal
    freed = []
    for lid in (p.offer_id, p.request_id):
        listing = book.listings.get(lid)
        if listing is not None:
            take, _ = p.take(listing.kind)
            listing.confirmed = max(0.0, listing.confirmed - take)
            book.dirty.add(lid)
            freed.append(lid)
    del book.agreements[p.match_id]
    book.dirty.add(p.match_id)
    out.append(AgreementOver(p.match_id, p.code, reason, standing.last_key))
    return freed


def _release(book: Book, p: Proposal) -> None:
    for lid in (p.offer_id, p.request_id):
        listing = book.listings.get(lid)
        if listing is not None:
            take, key = p.take(listing.kind)
            if key is None:
                listing.reserved = max(0.0, listing.reserved - take)
            else:
                left = listing.period_used.get(key, 0.0) - take
                if left > EPS:
                    listing.period_used[key] = left
                else:
                    listing.period_used.pop(key, None)
            book.dirty.add(lid)
    book.drop_proposal(p)


def _reserve(listing: Listing, take: float, key: str | None) -> None:
    if key is None:
        listing.reserved += take
    else:
        listing.period_used[key] = listing.period_used.get(key, 0.0) + take


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
    """Proposes the listing's available quantity to its best candidates, best first.

    The candidates are those `_candidates` gives, taken in its rank order, but scored lazily:
    each pair's upper bound (`_bounds`) is cheap, and a pair is scored exactly (`_exact`) only
    once no pair already scored outranks its bound. The exact scores are those of the book as
    it stood when the allocation began, as `_candidates` would have given them then: a proposal
    changes the listing and the counterpart it goes to (which is scored already), so a pair is
    scored with the listing's reservations as they were."""
    if listing.available <= EPS or listing.terms.unit != "t":
        return
    bounds = _bounds(book, listing, config)
    if not bounds:
        return
    bounds.sort()
    ranked: list[Ranked] = []  # a heap of the pairs scored exactly and not yet proposed
    closed, driver_is_offer = book.closed_pairs, listing.kind == "offer"
    n, b = len(bounds), 0
    reserved, period_used = listing.reserved, dict(listing.period_used)
    proposed = False
    # The n-th proposal a command makes is derived as its n-th (ids only for proposals made).
    index = sum(1 for e in out if isinstance(e, Proposed)) - 1
    while listing.available > EPS:
        if b < n and (not ranked or bounds[b][0] < ranked[0][0]):
            if proposed:  # the listing as it was when the allocation began, for the scores
                now = listing.reserved, listing.period_used
                listing.reserved, listing.period_used = reserved, period_used
            try:
                while b < n and (not ranked or bounds[b][0] < ranked[0][0]):
                    entry = _exact(bounds[b], closed, config, driver_is_offer)
                    b += 1
                    if entry is not None:
                        heapq.heappush(ranked, entry)
            finally:
                if proposed:
                    listing.reserved, listing.period_used = now
        if not ranked:
            break
        *_, offer, request, distance = heapq.heappop(ranked)
        # Recompute: earlier proposals in this loop may have used either side (a recurring
        # listing's period, say). `_score` refuses what `assess` refuses, without making
        # anything, and the index's distance is the pair's to the last bit.
        if _score(offer, request, config, distance) is None:
            continue
        fresh = _evaluate(book, offer, request, config, distance)
        if fresh is None:
            continue
        deal = fresh.deal
        index += 1
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
            agreement=deal.agreement,
            offer_take=deal.offer_take,
            request_take=deal.request_take,
            offer_period=deal.offer_period,
            request_period=deal.request_period,
        )
        _reserve(fresh.offer, deal.offer_take, deal.offer_period)
        _reserve(fresh.request, deal.request_take, deal.request_period)
        proposed = True
        book.dirty.update((fresh.offer.id, fresh.request.id))
        book.add_proposal(p)
        out.append(Proposed(p, fresh.score, fresh.reasons(), fresh.criteria()))


def _exact(
    bound: Bound, closed: set[tuple[str, str]], config: MarketConfig, driver_is_offer: bool
) -> Ranked | None:
    """The pair of a bound, ranked by its exact score as `_candidates` ranks it, or None when
    `_candidates` leaves it out (closed, or refused by `_score`)."""
    _, _, offer, request, d = bound
    if (offer.id, request.id) in closed:
        return None
    score = _score(offer, request, config, d)
    if score is None:
        return None
    other = request if driver_is_offer else offer
    return (-score, round(d, 6), other.seq, other.id, offer, request, d)


# A pair worth proposing, as its rank, its two sides and their distance: (-score, distance
# rounded, the other side's seq and id, offer, request, distance). The rank tells every pair apart
# (ids are unique), so sorting never compares listings; nothing more is made for a pair until it
# is proposed.
Ranked = tuple[float, float, int, str, Listing, Listing, float]


def _candidates(book: Book, listing: Listing, config: MarketConfig) -> list[Ranked]:
    """The pairs the listing may form with its nearest counterparts, ranked as
    `Candidate.rank` ranks them, in no particular order: every pair `_bounds` gives, scored
    exactly (`_allocate` scores only those it needs)."""
    closed, driver_is_offer = book.closed_pairs, listing.kind == "offer"
    ranked = (_exact(b, closed, config, driver_is_offer) for b in _bounds(book, listing, config))
    return [r for r in ranked if r is not None]


# A pair that may be proposed, before it is scored: (-bound, its place among the pairs found,
# offer, request, distance). The bound is above the pair's score as the score is rounded, so
# a pair whose -bound is not below a scored pair's -score ranks after it.
Bound = tuple[float, int, Listing, Listing, float]
# What a bound adds to its terms: more than the score's rounding to 6 places (5e-7) and than
# the rounding that tells the bound's arithmetic from the score's (about 1e-16).
BOUND_MARGIN = 1e-6


def _bounds(book: Book, listing: Listing, config: MarketConfig) -> list[Bound]:
    """The pairs the listing may form with its nearest counterparts (the 64 nearest per code
    by the index, compatible or not), each with an upper bound of its score, in no particular
    order. A pair is left out when `_score` would refuse it for anything but a transport that
    emits more CO2e than reuse saves, and when it has an open proposal or the same owner on both
    sides; closed pairs and the CO2e check are left to the exact score (`_exact`). The bound
    takes the price headroom and the quantity fit as the score does, the CO2e share without the
    quantity (the same ratio, rounding aside) and adds BOUND_MARGIN. The index gives each
    counterpart's distance along with it (the same great-circle formula, symmetric to the last
    bit), so that scoring a pair does not compute it again."""
    if listing.terms.unit != "t":
        return []
    cost = config.transport.cost_per_tkm.get(listing.terms.currency)
    if cost is None:
        return []
    p = listing.place
    limit = config.max_candidates
    mine = [book.proposals[m] for m in book.by_listing.get(listing.id, ())]
    if listing.kind == "offer":
        reach = book.reach_km.get(listing.code, 0.0)
        near = book.requests.nearest_with_distance(listing.code, p.lat, p.lon, reach, limit)
        return _request_bounds(book, listing, near, {q.request_id for q in mine}, config, cost)
    radius = listing.terms.max_distance_km or 0.0
    found = {
        i: d
        for code in book.request_codes(listing, config.substitutions)
        for d, i in book.offers.nearest_with_distance(code, p.lat, p.lon, radius, limit)
    }
    return _offer_bounds(book, listing, found, {q.offer_id for q in mine}, config, cost)


def _request_bounds(
    book: Book,
    offer: Listing,
    near: list[tuple[float, str]],
    busy: set[str],
    config: MarketConfig,
    cost: float,
) -> list[Bound]:
    listings = book.listings
    owner = offer.owner
    o = offer.terms
    currency, o_start, o_end, o_price, min_lot = o.currency, o.start, o.end, o.price, o.min_lot
    hazardous, stated, one_off = offer.hazardous, offer.stated, o.flow is None
    left = o.quantity - offer.confirmed - offer.reserved
    if left < 0.0:
        left = 0.0
    transport = config.transport
    detour, kg = transport.detour_factor, transport.kgco2e_per_tkm
    factor = config.factors.get(offer.code)
    saved_per_t = None if factor is None else factor.saved_per_t
    out: list[Bound] = []
    k = 0
    for d, i in near:
        request = listings[i]
        if request.owner == owner or i in busy:
            continue
        r = request.terms
        if r.currency != currency:
            continue
        max_km = r.max_distance_km
        if max_km is None or d > max_km:
            continue
        if hazardous and not request.hazardous_permit:
            continue
        if r.unit != "t":
            continue
        start = r.start if r.start > o_start else o_start
        end = r.end if r.end < o_end else o_end
        if start >= end:
            continue
        wanted_q = r.quantity
        if one_off and r.flow is None:
            quantity = left
            wanted = wanted_q - request.confirmed - request.reserved
            if wanted < 0.0:
                wanted = 0.0
            if wanted < quantity:
                quantity = wanted
            if quantity <= EPS:
                continue
            if min_lot is not None and quantity < min_lot - EPS:
                continue
            fit = quantity / wanted_q if wanted_q > 0 else 0.0
        else:
            traded = _quantity(offer, request)
            if traded is None:
                continue
            quantity, take = traded
            if quantity <= EPS:
                continue
            if min_lot is not None and quantity < min_lot - EPS:
                continue
            fit = take / wanted_q if wanted_q > 0 else 0.0
        road_km = d * detour
        delivered = o_price + road_km * cost
        r_price = r.price
        if delivered > r_price + EPS:
            continue
        spec = r.spec
        if not spec.empty and not meets(spec, stated):
            continue
        if saved_per_t is None:
            co2 = 0.0
        elif not saved_per_t > 0.0:
            co2 = 1.0  # nothing saved: the score refuses the pair; the bound stays a bound
        else:
            co2 = (saved_per_t - road_km * kg) / saved_per_t
            if not co2 > 0.0:
                co2 = 0.0
            elif not co2 < 1.0:
                co2 = 1.0
        scale = abs(r_price)
        price_score = (r_price - delivered) / (1.0 if scale < 1.0 else scale)
        if not price_score > 0.0:
            price_score = 0.0
        elif not price_score < 1.0:
            price_score = 1.0
        weights = r.weight_price + r.weight_co2e
        wp, wc = (r.weight_price / weights, r.weight_co2e / weights) if weights > 0 else (0.5, 0.5)
        if wc < 0.0:
            co2 = 0.0  # a negative weight: the bound takes the CO2e term at its largest
        k += 1
        bound = 0.8 * (wp * price_score + wc * co2) + 0.2 * fit + BOUND_MARGIN
        out.append((-bound, k, offer, request, d))
    return out


def _offer_bounds(
    book: Book,
    request: Listing,
    found: dict[str, float],
    busy: set[str],
    config: MarketConfig,
    cost: float,
) -> list[Bound]:
    listings = book.listings
    owner = request.owner
    r = request.terms
    currency, r_start, r_end, r_price = r.currency, r.start, r.end, r.price
    max_km, permit, one_off = r.max_distance_km, request.hazardous_permit, r.flow is None
    if max_km is None:
        return []
    spec = None if r.spec.empty else r.spec
    wanted = r.quantity - request.confirmed - request.reserved
    if wanted < 0.0:
        wanted = 0.0
    ceiling = r_price + EPS
    scale = abs(r_price)
    scale = 1.0 if scale < 1.0 else scale
    wanted_q = r.quantity
    weights = r.weight_price + r.weight_co2e
    wp, wc = (r.weight_price / weights, r.weight_co2e / weights) if weights > 0 else (0.5, 0.5)
    transport = config.transport
    detour, kg, factors = transport.detour_factor, transport.kgco2e_per_tkm, config.factors
    out: list[Bound] = []
    k = 0
    for i, d in found.items():
        offer = listings[i]
        if offer.owner == owner or i in busy:
            continue
        o = offer.terms
        if o.currency != currency:
            continue
        if d > max_km:
            continue
        if offer.hazardous and not permit:
            continue
        if o.unit != "t":
            continue
        start = r_start if r_start > o.start else o.start
        end = r_end if r_end < o.end else o.end
        if start >= end:
            continue
        if one_off and o.flow is None:
            quantity = o.quantity - offer.confirmed - offer.reserved
            if quantity < 0.0:
                quantity = 0.0
            if wanted < quantity:
                quantity = wanted
            if quantity <= EPS:
                continue
            min_lot = o.min_lot
            if min_lot is not None and quantity < min_lot - EPS:
                continue
            fit = quantity / wanted_q if wanted_q > 0 else 0.0
        else:
            traded = _quantity(offer, request)
            if traded is None:
                continue
            quantity, take = traded
            if quantity <= EPS:
                continue
            min_lot = o.min_lot
            if min_lot is not None and quantity < min_lot - EPS:
                continue
            fit = take / wanted_q if wanted_q > 0 else 0.0
        road_km = d * detour
        delivered = o.price + road_km * cost
        if delivered > ceiling:
            continue
        if spec is not None and not meets(spec, offer.stated):
            continue
        factor = factors.get(offer.code)
        if factor is None or wc < 0.0:
            co2 = 0.0  # no factor: the score's CO2e term is 0; a negative weight: at most 0
        else:
            saved_per_t = factor.saved_per_t
            if not saved_per_t > 0.0:
                co2 = 1.0  # nothing saved: the score refuses the pair; the bound stays a bound
            else:
                co2 = (saved_per_t - road_km * kg) / saved_per_t
                if not co2 > 0.0:
                    co2 = 0.0
                elif not co2 < 1.0:
                    co2 = 1.0
        price_score = (r_price - delivered) / scale
        if not price_score > 0.0:
            price_score = 0.0
        elif not price_score < 1.0:
            price_score = 1.0
        k += 1
        bound = 0.8 * (wp * price_score + wc * co2) + 0.2 * fit + BOUND_MARGIN
        out.append((-bound, k, offer, request, d))
    return out


def _score(offer: Listing, request: Listing, config: MarketConfig, distance: float) -> float | None:
    """The pair's score as `assess(offer, request, config, distance)` gives it, or None when
    `assess` refuses the pair: the same rules and the same arithmetic, the cheapest checks
    first, and nothing made for the pair (the equivalence test holds it to `assess`)."""
    o, r = offer.terms, request.terms
    currency = o.currency
    if currency != r.currency:
        return None
    max_km = r.max_distance_km
    if max_km is None or distance > max_km:
        return None
    if offer.hazardous and not request.hazardous_permit:
        return None
    if o.unit != "t" or r.unit != "t":
        return None
    # max(o.start, r.start) >= min(o.end, r.end), written out
    start = r.start if r.start > o.start else o.start
    end = r.end if r.end < o.end else o.end
    if start >= end:
        return None
    if o.flow is None and r.flow is None:
        # Deal(q, q, q) with q the smaller of what both have left (Listing.available).
        quantity = o.quantity - offer.confirmed - offer.reserved
        wanted = r.quantity - request.confirmed - request.reserved
        if quantity < 0.0:
            quantity = 0.0
        if wanted < 0.0:
            wanted = 0.0
        if wanted < quantity:
            quantity = wanted
        take = quantity
    else:
        traded = _quantity(offer, request)
        if traded is None:
            return None
        quantity, take = traded
    if quantity <= EPS:
        return None
    if o.min_lot is not None and quantity < o.min_lot - EPS:
        return None
    transport = config.transport
    cost = transport.cost_per_tkm.get(currency)
    if cost is None:
        return None
    road_km = distance * transport.detour_factor
    delivered = o.price + road_km * cost
    if delivered > r.price + EPS:
        return None
    spec = r.spec
    if not spec.empty and not meets(spec, offer.stated):
        return None
    factor = config.factors.get(offer.code)
    transport_co2e = quantity * road_km * transport.kgco2e_per_tkm
    if factor is None:
        co2_score = 0.0
    else:
        saved = quantity * factor.saved_per_t
        if saved <= transport_co2e:
            return None
        share = (saved - transport_co2e) / saved
        # min(1.0, max(0.0, share)), written out (here and below)
        co2_score = share if share > 0.0 else 0.0
        if not co2_score < 1.0:
            co2_score = 1.0
    scale = abs(r.price)
    headroom = (r.price - delivered) / (1.0 if scale < 1.0 else scale)
    price_score = headroom if headroom > 0.0 else 0.0
    if not price_score < 1.0:
        price_score = 1.0
    fit = take / r.quantity if r.quantity > 0 else 0.0
    weights = r.weight_price + r.weight_co2e
    wp, wc = (r.weight_price / weights, r.weight_co2e / weights) if weights > 0 else (0.5, 0.5)
    return round(0.8 * (wp * price_score + wc * co2_score) + 0.2 * fit, 6)


def _evaluate(
    book: Book,
    offer: Listing,
    request: Listing,
    config: MarketConfig,
    distance: float | None = None,
) -> Candidate | None:
    """The pair as a candidate, or None when any rule forbids it. `distance` is the pair's
    great-circle distance when the caller has it already."""
    if (offer.id, request.id) in book.closed_pairs or book.pair_open(offer.id, request.id):
        return None
    if offer.owner == request.owner:
        return None
    return assess(offer, request, config, distance)


Why = list[str] | None


def _no(why: Why, rule: str) -> Candidate | None:
    """Refuses a pair, saying why when asked."""
    if why is not None:
        why.append(rule)
    return None


def assess(
    offer: Listing,
    request: Listing,
    config: MarketConfig,
    distance: float | None = None,
    why: Why = None,
) -> Candidate | None:
    """The pair on its own merits (what the book knows of other pairs aside): a candidate, or
    None with the rule that forbids it appended to `why` when given."""
    o, r = offer.terms, request.terms
    if not permitted(offer.hazardous, request.hazardous_permit):
        return _no(why, "hazardous material needs a receiver with a permit")
    if not (in_tonnes(offer) and in_tonnes(request)):
        return _no(why, "quantities must convert to tonnes")
    if o.currency != r.currency:
        return _no(why, "different currencies")
    if max(o.start, r.start) >= min(o.end, r.end):
        return _no(why, "the listings' windows do not overlap")
    if distance is None:
        distance = offer.place.km_to(request.place)
    if r.max_distance_km is None or distance > r.max_distance_km:
        return _no(why, "farther than the buyer's maximum distance")
    if not r.spec.empty and not meets(r.spec, offer.stated):
        return _no(why, "does not meet the buyer's specification")
    deal = _deal(offer, request)
    if deal is None:
        return _no(why, "the recurring flows do not overlap in time")
    quantity = deal.quantity
    if quantity <= EPS:
        return _no(why, "nothing left to trade")
    if o.min_lot is not None and quantity < o.min_lot - EPS:
        return _no(why, "below the seller's minimum lot")
    if not priced(o.currency, config.transport.cost_per_tkm):
        return _no(why, "no transport cost for the currency")
    # The offered material's factor counts (a substitute saves what the offered material saves);
    # without a sourced factor the saving is unknown: the pair is judged on everything else.
    factor = config.factors.get(offer.code)
    est = estimate(
        distance_km=distance,
        tonnes=quantity,
        factor=factor,
        transport=config.transport,
        currency=o.currency,
    )
    if est is None:
        return _no(why, "no transport cost for the currency")
    delivered = o.price + est.transport_cost_per_t
    if delivered > r.price + EPS:
        return _no(why, "the delivered price is above the buyer's maximum")
    saved, net = est.saved_co2e_kg, est.net_co2e_kg
    if saved is not None and saved <= est.transport_co2e_kg:
        return _no(why, "transport emits more CO2e than reuse saves")
    headroom = (r.price - delivered) / max(abs(r.price), 1.0)
    price_score = min(1.0, max(0.0, headroom))
    # An unknown saving adds nothing to the score.
    co2_score = 0.0 if saved is None or net is None else min(1.0, max(0.0, net / saved))
    fit = deal.request_take / r.quantity if r.quantity > 0 else 0.0
    weights = r.weight_price + r.weight_co2e
    wp, wc = (r.weight_price / weights, r.weight_co2e / weights) if weights > 0 else (0.5, 0.5)
    score = round(0.8 * (wp * price_score + wc * co2_score) + 0.2 * fit, 6)
    return Candidate(offer, request, distance, quantity, est, delivered, score, deal)


# Period keys are asked for the same few days over and over while pairs are weighed.
_key_of = lru_cache(maxsize=4096)(periods.key_of)


def _quantity(offer: Listing, request: Listing) -> tuple[float, float] | None:
    """`_deal`'s (quantity, request_take) for a pair with a recurring side, without making the
    deal: the same arithmetic (`Listing.available` and `available_in` written out: max(0.0, x)
    is x when x > 0.0, else 0.0; min(a, b) is b when b < a, else a)."""
    o, r = offer.terms, request.terms
    of, rf = o.flow, r.flow
    o_left = o.quantity - offer.confirmed - offer.reserved
    o_left = o_left if o_left > 0.0 else 0.0
    r_left = r.quantity - request.confirmed - request.reserved
    r_left = r_left if r_left > 0.0 else 0.0
    if of is not None and rf is not None:
        start = rf.starts if rf.starts > of.starts else of.starts
        end = of.ends if rf.ends is None else rf.ends if of.ends is None else min(of.ends, rf.ends)
        if end is not None and end <= start:
            return None
        period = _COARSER[of.period, rf.period]
        n_o, n_r = _MIN_COUNT[of.period, period], _MIN_COUNT[rf.period, period]
        if offer.period_used:
            o_left = offer.available_in(None, _key_of(of.period, start))
        if request.period_used:
            r_left = request.available_in(None, _key_of(rf.period, start))
        a, b = o_left * n_o, r_left * n_r
        q = b if b < a else a
        return q, q / n_r
    # One recurring side, one one-off lot: `_deal`'s last case, without making the deal.
    if of is not None:
        flow, lot_terms, lot_left, recurring, left = of, r, r_left, offer, o_left
    else:
        assert rf is not None
        flow, lot_terms, lot_left, recurring, left = rf, o, o_left, request, r_left
    day = lot_terms.start.date()
    if flow.starts > day:
        day = flow.starts
    if day >= lot_terms.end.date() or (flow.ends is not None and day >= flow.ends):
        return None
    used = recurring.period_used
    if used:
        left = left - used.get(_key_of(flow.period, day), 0.0)
        left = left if left > 0.0 else 0.0
    q = left if left < lot_left else lot_left
    return q, q


_PERIODS: tuple[periods.Period, ...] = ("week", "month", "quarter", "year")
_COARSER = {(a, b): periods.coarser(a, b) for a in _PERIODS for b in _PERIODS}
_MIN_COUNT = {
    (a, b): periods.min_count(a, b)
    for a in _PERIODS
    for b in _PERIODS
    if periods.ORDER[a] <= periods.ORDER[b]
}


def _deal(offer: Listing, request: Listing) -> Deal | None:
    """The quantity a pair could trade now, or None when their flows never meet in time."""
    of, rf = offer.terms.flow, request.terms.flow
    if of is None and rf is None:
        q = min(offer.available, request.available)
        return Deal(q, q, q)
    if of is not None and rf is not None:
        span = periods.overlap(of.starts, of.ends, rf.starts, rf.ends)
        if span is None:
            return None
        period = periods.coarser(of.period, rf.period)
        n_o, n_r = periods.min_count(of.period, period), periods.min_count(rf.period, period)
        o_left = offer.available_in(None, _key_of(of.period, span[0]))
        r_left = request.available_in(None, _key_of(rf.period, span[0]))
        q = min(o_left * n_o, r_left * n_r)
        return Deal(q, q / n_o, q / n_r, agreement=Flow(period, span[0], span[1]))
    # One recurring side, one one-off lot: one delivery, from the period the lot falls in.
    flow, lot = (of, request) if of is not None else (rf, offer)
    assert flow is not None
    day = max(lot.terms.start.date(), flow.starts)
    if day >= lot.terms.end.date() or (flow.ends is not None and day >= flow.ends):
        return None
    key = _key_of(flow.period, day)
    recurring = offer if of is not None else request
    q = min(lot.available, recurring.available_in(key))
    if of is not None:
        return Deal(q, q, q, offer_period=key)
    return Deal(q, q, q, request_period=key)
