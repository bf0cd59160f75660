"""Matching, between the contracts and the pure core: the core's configuration from the settings
and the reference data, the commands a `market.listings` event gives, the contracts the core's
events become, and `decide`, the one step the matcher, the API's preview and `marketplace audit
replay` all take."""

from __future__ import annotations

from datetime import datetime, timedelta
from functools import cache
from typing import Any

from marketplace.core.book import Book, Flow, Listing, Proposal, Terms
from marketplace.core.economics import TransportModel
from marketplace.core.eligibility import Finding, findings
from marketplace.core.ids import derived_id
from marketplace.core.matching import (
    AgreementOver,
    Answer,
    Cancelled,
    Command,
    Confirmed,
    DeadlineDue,
    DeliveryDue,
    Event,
    Expired,
    MarketConfig,
    PeriodDue,
    Post,
    Proposed,
    Update,
    Withdraw,
    step,
)
from marketplace.core.specification import NOTHING_STATED, Spec, Stated
from marketplace.core.units import IncompatibleUnits, to_tonnes
from marketplace.events import Decoded, to_message
from marketplace.reference import list_of_waste, material_factors, substitutions, transport_factors
from marketplace.runtime.outbox import OutboxMessage
from marketplace.settings import Settings
from marketplace.translate.common import location_of, money, place_of, tonnes, window_of
from schemas import common
from schemas import listings as ls
from schemas import matches as ms

SOURCE = "/consumers/matcher"


@cache
def market_config(settings: Settings) -> MarketConfig:
    """The core's configuration (one per settings: the reference data is read once)."""
    costs = parse_costs(settings.transport_cost_per_tkm)
    kg_per_tkm = transport_factors()[settings.estimate_vehicle]
    return MarketConfig(
        transport=TransportModel(cost_per_tkm=costs, kgco2e_per_tkm=kg_per_tkm),
        factors=material_factors(),
        substitutions=substitutions(),
        answer_period=timedelta(seconds=settings.match_answer_period_s),
    )


def parse_costs(raw: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for part in raw.split(","):
        currency, sep, value = part.strip().partition("=")
        if not sep or len(currency) != 3:
            raise ValueError(f"transport cost {part!r}: write CUR=amount, e.g. EUR=0.12")
        out[currency.upper()] = float(value)
    return out


# From contracts to the core's commands ----------------------------------------------------------


Mass = tuple[float | None, float | None]  # (t per m3, t per piece), as the material says


def _base(q: common.Quantity, mass: Mass) -> tuple[float, str, float]:
    """(amount in the base unit, base unit, factor from one original unit to the base unit)."""
    try:
        per_unit = to_tonnes(1.0, q.unit, *mass)
    except IncompatibleUnits:
        return q.amount, q.unit, 1.0
    return q.amount * per_unit, "t", per_unit


def _terms(
    quantity: common.Quantity,
    price: common.Money,
    window: common.Window,
    mass: Mass,
    **extra: Any,
) -> Terms:
    amount, unit, per_unit = _base(quantity, mass)
    min_lot = extra.pop("min_lot", None)
    if min_lot is not None:
        min_lot = _base(min_lot, mass)[0]
    return Terms(
        quantity=amount,
        unit=unit,  # type: ignore[arg-type]
        price=price.amount / per_unit,
        currency=price.currency,
        start=window.start,
        end=window.end,
        min_lot=min_lot,
        **extra,
    )


def _flow(r: common.Recurrence | None) -> Flow | None:
    return None if r is None else Flow(r.period, r.starts, r.ends)


def offer_terms(t: ls.OfferTerms, mass: Mass) -> Terms:
    return _terms(
        t.quantity, t.price, t.available, mass, min_lot=t.min_lot, flow=_flow(t.recurrence)
    )


def request_terms(t: ls.RequestTerms, mass: Mass) -> Terms:
    spec = t.specification
    return _terms(
        t.quantity,
        t.max_price,
        t.wanted,
        mass,
        max_distance_km=t.max_distance_km,
        weight_price=spec.weight_price if spec else 0.5,
        weight_co2e=spec.weight_co2e if spec else 0.5,
        flow=_flow(t.recurrence),
        spec=spec_of(spec),
    )


def spec_of(spec: common.BuyerSpecification | None) -> Spec:
    if spec is None:
        return Spec()
    return Spec(spec.min_recycled_content_pct, spec.max_contamination_pct, spec.certifications)


def stated_of(material: common.Material, certifications: tuple[str, ...]) -> Stated:
    return Stated(material.recycled_content_pct, material.contamination_pct, certifications)


def _mass_of(material: common.Material) -> Mass:
    return material.density_t_per_m3, material.mass_per_piece_t


def _mass_held(book: Book, listing_id: str) -> Mass:
    current = book.listings.get(listing_id)
    return (current.density, current.mass_per_piece) if current else (None, None)


def to_command(d: Decoded, book: Book) -> Command | None:
    e, at, eid = d.event, d.envelope.time, d.envelope.id
    match e:
        case ls.OfferPosted():
            mass = _mass_of(e.material)
            return Post(
                eid,
                at,
                e.offer_id,
                "offer",
                e.owner_id,
                e.material.code,
                place_of(e.location),
                offer_terms(e.terms, mass),
                hazardous=list_of_waste().is_hazardous(e.material.code),
                density=mass[0],
                mass_per_piece=mass[1],
                stated=stated_of(e.material, e.certifications),
            )
        case ls.RequestPosted():
            mass = _mass_of(e.material)
            return Post(
                eid,
                at,
                e.request_id,
                "request",
                e.owner_id,
                e.material.code,
                place_of(e.location),
                request_terms(e.terms, mass),
                hazardous_permit=e.hazardous_permit,
                # Codes of the request's own family only, since the API refuses others; a
                # request posted before that rule is taken as it was, so that a replay of the
                # log decides what was decided.
                accepts=e.accepts_codes,
                density=mass[0],
                mass_per_piece=mass[1],
            )
        case ls.OfferUpdated():
            terms = offer_terms(e.terms, _mass_held(book, e.offer_id))
            return Update(eid, at, e.offer_id, "offer", e.owner_id, terms)
        case ls.RequestUpdated():
            terms = request_terms(e.terms, _mass_held(book, e.request_id))
            return Update(eid, at, e.request_id, "request", e.owner_id, terms)
        case ls.OfferWithdrawn():
            return Withdraw(eid, at, e.offer_id, "offer", e.owner_id)
        case ls.RequestWithdrawn():
            return Withdraw(eid, at, e.request_id, "request", e.owner_id)
        case ls.MatchAccepted():
            return Answer(eid, at, e.match_id, e.partner_id, True)
        case ls.MatchDeclined():
            return Answer(eid, at, e.match_id, e.partner_id, False)
        case ls.MatchDeadlineDue():
            return DeadlineDue(eid, e.due, e.match_id)
        case ls.AgreementPeriodDue():
            return PeriodDue(eid, e.due, e.match_id, e.period_key)
    return None


# From the core's events to contracts ------------------------------------------------------------


def _agreement(p: Proposal) -> common.Agreement | None:
    a = p.agreement
    if a is None:
        return None
    return common.Agreement(
        period=a.period, quantity=tonnes(p.quantity), starts=a.starts, ends=a.ends
    )


def to_contract(event: Event) -> Contract:
    match event:
        case Proposed(proposal=p):
            return ms.MatchProposed(
                match_id=p.match_id,
                offer_id=p.offer_id,
                request_id=p.request_id,
                seller_id=p.seller,
                buyer_id=p.buyer,
                material_code=p.code,
                quantity=tonnes(p.quantity),
                delivered_price=money(p.delivered_price, p.currency),
                distance_km=next(r.value for r in event.reasons if r.factor == "distance_km"),
                transport_co2e_kg=round(p.estimate.transport_co2e_kg, 3),
                co2e_saved_kg=round(p.estimate.saved_co2e_kg or 0.0, 3),
                co2e_known=p.estimate.saved_co2e_kg is not None,
                score=event.score,
                reasons=tuple(
                    common.Reason(factor=r.factor, value=r.value, note=r.note[:200])
                    for r in event.reasons
                ),
                expires_at=p.expires_at,
                agreement=_agreement(p),
                criteria=tuple(
                    common.CriterionCheck(
                        criterion=c.criterion,
                        required=c.required[:200],
                        offered=c.offered[:200],
                        met=c.met,
                    )
                    for c in event.criteria
                ),
            )
        case Confirmed(proposal=p, offer=o, request=r):
            agreed = window_of(p.window)
            return ms.MatchConfirmed(
                match_id=p.match_id,
                offer_id=p.offer_id,
                request_id=p.request_id,
                seller_id=p.seller,
                buyer_id=p.buyer,
                material_code=p.code,
                hazardous=o.hazardous,
                quantity=tonnes(p.quantity),
                weight_t=round(p.quantity, 6),
                pickup=location_of(o.place),
                delivery=location_of(r.place),
                pickup_window=agreed,
                delivery_window=agreed,
                delivered_price=money(p.delivered_price, p.currency),
                agreement=_agreement(p),
            )
        case DeliveryDue(standing=a, key=key, window=w):
            p = a.proposal
            return ms.DeliveryScheduled(
                delivery_id=delivery_id_of(p.match_id, key),
                match_id=p.match_id,
                offer_id=p.offer_id,
                request_id=p.request_id,
                seller_id=p.seller,
                buyer_id=p.buyer,
                material_code=p.code,
                hazardous=a.hazardous,
                period_key=key,
                quantity=tonnes(p.quantity),
                weight_t=round(p.quantity, 6),
                pickup=location_of(a.pickup),
                delivery=location_of(a.delivery),
                pickup_window=window_of(w),
                delivery_window=window_of(w),
                delivered_price=money(p.delivered_price, p.currency),
            )
        case AgreementOver():
            return ms.AgreementEnded(
                match_id=event.match_id,
                material_code=event.code,
                reason=event.reason,
                last_period_key=event.last_key,
            )
        case Expired():
            return ms.MatchExpired(match_id=event.match_id, material_code=event.code)
        case Cancelled():
            return ms.MatchCancelled(
                match_id=event.match_id,
                material_code=event.code,
                reason=event.reason,
                by_partner_id=event.by,
            )
    raise TypeError(f"unknown core event {event!r}")


Contract = (
    ms.MatchProposed
    | ms.MatchConfirmed
    | ms.MatchExpired
    | ms.MatchCancelled
    | ms.DeliveryScheduled
    | ms.AgreementEnded
)


def delivery_id_of(match_id: str, period_key: str) -> str:
    """One delivery per agreement and period, with an id anyone can derive."""
    return derived_id(f"{match_id}/delivery/{period_key}")


def listing_of(
    listing_id: str,
    owner_id: str,
    material: common.Material,
    location: common.Location,
    terms: ls.OfferTerms | ls.RequestTerms,
    *,
    accepts: tuple[str, ...] = (),
    hazardous_permit: bool = False,
    certifications: tuple[str, ...] = (),
) -> Listing:
    """A listing as the core sees it, from what an offer or a request says (the matcher's book
    keeps more: its position in the partition and what is reserved)."""
    mass = _mass_of(material)
    is_offer = isinstance(terms, ls.OfferTerms)
    core_terms = (
        offer_terms(terms, mass) if isinstance(terms, ls.OfferTerms) else request_terms(terms, mass)
    )
    return Listing(
        id=listing_id,
        kind="offer" if is_offer else "request",
        owner=owner_id,
        code=material.code,
        place=place_of(location),
        terms=core_terms,
        seq=0,
        hazardous=is_offer and list_of_waste().is_hazardous(material.code),
        hazardous_permit=hazardous_permit,
        accepts=accepts,
        density=mass[0],
        mass_per_piece=mass[1],
        stated=stated_of(material, certifications) if is_offer else NOTHING_STATED,
    )


def findings_of(listing: Listing, config: MarketConfig) -> tuple[Finding, ...]:
    """What stands between a listing and a match now (marketplace/core/eligibility.py)."""
    return findings(
        listing,
        cost_per_tkm=config.transport.cost_per_tkm,
        factors=config.factors.keys(),
        hazardous_codes=list_of_waste().hazardous_codes(),
    )


def source_of(group_id: str) -> str:
    return f"{SOURCE}/{group_id}"


def decide(
    book: Book, command: Command, decoded: Decoded, config: MarketConfig, source: str
) -> tuple[Book, list[tuple[Event, OutboxMessage]]]:
    """One command through the pure core, and the events it decides as the messages to publish
    (ids derived from the cause). The matcher and `marketplace audit replay` both call this."""
    book, out = step(book, command, config)
    messages: list[tuple[Event, OutboxMessage]] = []
    for k, event in enumerate(out):
        contract = to_contract(event)
        message = to_message(
            contract,
            event_id=derived_id(f"{decoded.envelope.id}/matcher", k),
            source=source,
            time=decoded.envelope.time,
            subject=contract.delivery_id
            if isinstance(contract, ms.DeliveryScheduled)
            else contract.match_id,
        )
        messages.append((event, message))
    return book, messages


# The timers a decision asks for (the matcher and the cells consumer) ----------------------------


def deadline_timer(p: Proposal) -> tuple[str, OutboxMessage, datetime]:
    """The timer that ends a proposal's answer period (MatchDeadlineDue): id, event, due time."""
    due = ls.MatchDeadlineDue(match_id=p.match_id, material_code=p.code, due=p.expires_at)
    timer_id = derived_id(p.match_id, 0)
    message = to_message(
        due, event_id=timer_id, source="/producers/scheduler", time=p.expires_at, subject=p.match_id
    )
    return timer_id, message, p.expires_at


def period_timer(p: Proposal, key: str, due: datetime) -> tuple[str, OutboxMessage, datetime]:
    """The timer of a standing agreement's delivery period (AgreementPeriodDue)."""
    timer = ls.AgreementPeriodDue(
        match_id=p.match_id, material_code=p.code, period_key=key, due=due
    )
    timer_id = derived_id(f"{p.match_id}/period/{key}")
    message = to_message(
        timer, event_id=timer_id, source="/producers/scheduler", time=due, subject=p.match_id
    )
    return timer_id, message, due
