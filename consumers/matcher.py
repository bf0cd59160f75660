"""The matcher: one partition's book in memory, the pure core deciding, PostgreSQL keeping the
book, the emitted events and the offset in one transaction (decisions 2, 3, 4).

`marketplace run matcher` runs one instance; more instances in the group share the partitions
of market.listings, whose key (the material's List of Waste sub-chapter) keeps every listing,
answer and timer a decision depends on in one partition."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import msgspec

from marketplace.core.book import Book, Flow, Listing, Proposal, Standing, Terms
from marketplace.core.economics import TransportModel
from marketplace.core.geo import Place
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
from marketplace.core.specification import Spec, Stated
from marketplace.core.taxonomy import UnknownCode
from marketplace.core.units import IncompatibleUnits, to_tonnes
from marketplace.db import Conn
from marketplace.events import Decoded, to_message
from marketplace.logs import get_logger
from marketplace.reference import list_of_waste, material_factors, substitutions, transport_factors
from marketplace.runtime import Transaction
from marketplace.runtime.deadletter import dead_letter
from marketplace.runtime.decoding import decode_or_dead_letter
from marketplace.runtime.outbox import OutboxMessage
from marketplace.settings import Settings
from marketplace.timers import schedule
from schemas import common
from schemas import listings as ls
from schemas import matches as ms

GROUP = "matcher"
TOPIC = "market.listings"
SOURCE = "/consumers/matcher"
log = get_logger(__name__)
_json = msgspec.json.Encoder()


def market_config(settings: Settings) -> MarketConfig:
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


def _place(loc: common.Location) -> Place:
    return Place(loc.lat, loc.lon, loc.region)


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
                _place(e.location),
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
                _place(e.location),
                request_terms(e.terms, mass),
                hazardous_permit=e.hazardous_permit,
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


def _quantity(amount: float) -> common.Quantity:
    return common.Quantity(amount=round(amount, 6), unit="t")


def _location(p: Place) -> common.Location:
    return common.Location(lat=p.lat, lon=p.lon, region=p.region)


def _money(amount: float, currency: str) -> common.Money:
    return common.Money(amount=round(amount, 2), currency=currency)


def _agreement(p: Proposal) -> common.Agreement | None:
    a = p.agreement
    if a is None:
        return None
    return common.Agreement(
        period=a.period, quantity=_quantity(p.quantity), starts=a.starts, ends=a.ends
    )


def _window(w: tuple[Any, Any]) -> common.Window:
    return common.Window(start=w[0], end=w[1])


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
                quantity=_quantity(p.quantity),
                delivered_price=_money(p.delivered_price, p.currency),
                distance_km=next(r.value for r in event.reasons if r.factor == "distance_km"),
                transport_co2e_kg=round(p.estimate.transport_co2e_kg, 3),
                co2e_saved_kg=round(p.estimate.saved_co2e_kg, 3),
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
            window = common.Window(start=p.window[0], end=p.window[1])
            return ms.MatchConfirmed(
                match_id=p.match_id,
                offer_id=p.offer_id,
                request_id=p.request_id,
                seller_id=p.seller,
                buyer_id=p.buyer,
                material_code=p.code,
                hazardous=o.hazardous,
                quantity=_quantity(p.quantity),
                weight_t=round(p.quantity, 6),
                pickup=_location(o.place),
                delivery=_location(r.place),
                pickup_window=window,
                delivery_window=window,
                delivered_price=_money(p.delivered_price, p.currency),
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
                quantity=_quantity(p.quantity),
                weight_t=round(p.quantity, 6),
                pickup=_location(a.pickup),
                delivery=_location(a.delivery),
                pickup_window=_window(w),
                delivery_window=_window(w),
                delivered_price=_money(p.delivered_price, p.currency),
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


# The processor -----------------------------------------------------------------------------------


class Matcher:
    def __init__(self, config: MarketConfig, group_id: str = GROUP) -> None:
        self.config = config
        self.group_id = group_id
        # Every instance of a group signs its events alike; groups are told apart.
        self.source = source_of(group_id)

    async def load(self, conn: Conn, topic: str, partition: int) -> Book:
        book = Book()
        key = (self.group_id, topic, partition)
        book.seq = (
            await conn.fetchval(
                "SELECT seq FROM matcher_partitions WHERE group_id = $1 AND topic = $2"
                " AND partition = $3",
                *key,
            )
            or 0
        )
        rows = await conn.fetch(
            "SELECT kind, body FROM matcher_items WHERE group_id = $1 AND topic = $2"
            " AND partition = $3",
            *key,
        )
        for row in rows:
            if row["kind"] == "listing":
                listing = msgspec.json.decode(row["body"], type=Listing)
                book.listings[listing.id] = listing
                book.file(listing, self.config.substitutions)
        for row in rows:
            if row["kind"] == "proposal":
                book.add_proposal(msgspec.json.decode(row["body"], type=Proposal))
            elif row["kind"] == "agreement":
                standing = msgspec.json.decode(row["body"], type=Standing)
                book.agreements[standing.proposal.match_id] = standing
        pairs = await conn.fetch(
            "SELECT offer_id, request_id FROM matcher_closed_pairs WHERE group_id = $1"
            " AND topic = $2 AND partition = $3",
            *key,
        )
        book.closed_pairs = {(r["offer_id"], r["request_id"]) for r in pairs}
        book.dirty.clear()
        return book

    async def process(self, tx: Transaction, book: Book, records: Sequence[Any]) -> Book:
        closed_before = set(book.closed_pairs)
        for record in records:
            decoded = decode_or_dead_letter(tx, self.group_id, record)
            if decoded is None:
                continue
            try:
                command = to_command(decoded, book)
            except (UnknownCode, IncompatibleUnits, ValueError) as exc:
                # The API validates the same rules, so this is a record from elsewhere.
                reason = f"{decoded.envelope.type}: {exc}"
                log.warning("dead_letter", offset=record.offset, reason=reason)
                tx.emit(dead_letter(self.group_id, record, reason))
                continue
            if command is None:
                continue
            book, out = decide(book, command, decoded, self.config, self.source)
            for event, message in out:
                tx.emit(message)
                if isinstance(event, Proposed):
                    await self._ask_timer(tx, event.proposal)
                elif isinstance(event, Confirmed) and event.first_period is not None:
                    await self._ask_period(tx, event.proposal, *event.first_period)
                elif isinstance(event, DeliveryDue):
                    await self._ask_period(tx, event.standing.proposal, *event.next_period)
        await self._save(tx, book, closed_before)
        return book

    async def _ask_timer(self, tx: Transaction, p: Proposal) -> None:
        due = ls.MatchDeadlineDue(match_id=p.match_id, material_code=p.code, due=p.expires_at)
        timer_id = derived_id(p.match_id, 0)
        message = to_message(
            due,
            event_id=timer_id,
            source="/producers/scheduler",
            time=p.expires_at,
            subject=p.match_id,
        )
        await schedule(tx.conn, timer_id, message, p.expires_at)

    async def _ask_period(self, tx: Transaction, p: Proposal, key: str, due: Any) -> None:
        timer = ls.AgreementPeriodDue(
            match_id=p.match_id, material_code=p.code, period_key=key, due=due
        )
        timer_id = derived_id(f"{p.match_id}/period/{key}")
        message = to_message(
            timer, event_id=timer_id, source="/producers/scheduler", time=due, subject=p.match_id
        )
        await schedule(tx.conn, timer_id, message, due)

    async def _save(self, tx: Transaction, book: Book, closed_before: set[tuple[str, str]]) -> None:
        key = (self.group_id, tx.topic, tx.partition)
        upserts: list[tuple[str, str, str]] = []
        deletes: list[str] = []
        for item in sorted(book.dirty):
            if item in book.listings:
                upserts.append((item, "listing", _json.encode(book.listings[item]).decode()))
            elif item in book.proposals:
                upserts.append((item, "proposal", _json.encode(book.proposals[item]).decode()))
            elif item in book.agreements:
                upserts.append((item, "agreement", _json.encode(book.agreements[item]).decode()))
            else:
                deletes.append(item)
        if upserts:
            await tx.conn.execute(
                "INSERT INTO matcher_items (group_id, topic, partition, item_id, kind, body)"
                " SELECT $1, $2, $3, u.id, u.kind, u.body::jsonb"
                " FROM unnest($4::text[], $5::text[], $6::text[]) AS u(id, kind, body)"
                " ON CONFLICT (group_id, topic, partition, item_id)"
                " DO UPDATE SET body = EXCLUDED.body, kind = EXCLUDED.kind",
                *key,
                [u[0] for u in upserts],
                [u[1] for u in upserts],
                [u[2] for u in upserts],
            )
        if deletes:
            await tx.conn.execute(
                "DELETE FROM matcher_items WHERE group_id = $1 AND topic = $2"
                " AND partition = $3 AND item_id = ANY($4::text[])",
                *key,
                deletes,
            )
        new_pairs = sorted(book.closed_pairs - closed_before)
        if new_pairs:
            await tx.conn.execute(
                "INSERT INTO matcher_closed_pairs"
                " (group_id, topic, partition, offer_id, request_id)"
                " SELECT $1, $2, $3, o, r FROM unnest($4::text[], $5::text[]) AS u(o, r)"
                " ON CONFLICT DO NOTHING",
                *key,
                [p[0] for p in new_pairs],
                [p[1] for p in new_pairs],
            )
        await tx.conn.execute(
            "INSERT INTO matcher_partitions (group_id, topic, partition, seq)"
            " VALUES ($1, $2, $3, $4)"
            " ON CONFLICT (group_id, topic, partition) DO UPDATE SET seq = EXCLUDED.seq",
            *key,
            book.seq,
        )
        book.dirty.clear()
