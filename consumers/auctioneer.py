"""Transport auctions: the job creator turns confirmed matches into transport jobs, and the
auctioneer decides each job's auction with the pure core (marketplace/core/auction.py).

`marketplace run job-creator` reads market.matches and, for each one-off MatchConfirmed and each
DeliveryScheduled of a standing agreement, emits a TransportJobRequested onto logistics.jobs (its
id derived from the match id or the delivery id, its bidding deadline
`MARKETPLACE_AUCTION_BIDDING_PERIOD_S` after the confirmation). `marketplace run auctioneer`
reads logistics.jobs, whose key (the job id) keeps a job, its quotes, reserves and deadline timers
on one partition, keeps each job's auction in PostgreSQL (`auctioneer_jobs`) and emits awards,
failures and refusals onto logistics.awards, all in the runtime's one transaction per batch."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import msgspec

from consumers.matcher import market_config
from marketplace.core import auction as core
from marketplace.core.carriers import Coverage, Depot, JobNeeds, Place
from marketplace.core.economics import TransportModel
from marketplace.core.ids import derived_id
from marketplace.db import Conn
from marketplace.events import Decoded, to_message
from marketplace.logs import get_logger
from marketplace.runtime import Transaction
from marketplace.runtime.decoding import decode_or_dead_letter
from marketplace.runtime.outbox import OutboxMessage
from marketplace.settings import Settings
from marketplace.timers import schedule
from schemas import common
from schemas import logistics as lg
from schemas.matches import DeliveryScheduled, MatchConfirmed

GROUP = "auctioneer"
TOPIC = "logistics.jobs"
SOURCE = "/consumers/auctioneer"
CREATOR_GROUP = "job-creator"
CREATOR_TOPIC = "market.matches"
CREATOR_SOURCE = "/consumers/job-creator"
TIMER_SOURCE = "/producers/scheduler"
log = get_logger(__name__)
_json = msgspec.json.Encoder()
_auction = msgspec.json.Decoder(core.Auction)


def auction_config(settings: Settings) -> core.AuctionConfig:
    return core.AuctionConfig(
        reopen_after=timedelta(seconds=settings.auction_reopen_period_s),
        early_close_quotes=settings.auction_early_close_quotes,
    )


def job_id_for(match_id: str) -> str:
    """One transport job per confirmed match, with an id anyone can derive from the match."""
    return derived_id(f"{match_id}/transport-job")


def _place(loc: common.Location) -> Place:
    return Place(loc.lat, loc.lon, loc.region)


def _money(amount: float, currency: str) -> common.Money:
    return common.Money(amount=round(amount, 2), currency=currency)


# The job creator -------------------------------------------------------------------------------


def job_for(
    confirmed: MatchConfirmed | DeliveryScheduled,
    decided_at: Any,
    bidding_period: timedelta,
    model: TransportModel,
) -> lg.TransportJobRequested:
    """The transport job for a one-off match, or for one period's delivery of a standing
    agreement (its id then derived from the delivery)."""
    needs = JobNeeds(
        pickup=_place(confirmed.pickup),
        delivery=_place(confirmed.delivery),
        weight_t=confirmed.weight_t,
        hazardous=confirmed.hazardous,
    )
    currency = confirmed.delivered_price.currency
    estimate = core.transport_estimate(needs, model, currency)
    delivery = confirmed.delivery_id if isinstance(confirmed, DeliveryScheduled) else None
    return lg.TransportJobRequested(
        job_id=job_id_for(delivery or confirmed.match_id),
        match_id=confirmed.match_id,
        material_code=confirmed.material_code,
        hazardous=confirmed.hazardous,
        quantity=confirmed.quantity,
        weight_t=confirmed.weight_t,
        pickup=confirmed.pickup,
        delivery=confirmed.delivery,
        pickup_window=confirmed.pickup_window,
        delivery_window=confirmed.delivery_window,
        bidding_deadline=decided_at + bidding_period,
        currency=currency,
        seller_id=confirmed.seller_id,
        buyer_id=confirmed.buyer_id,
        estimated_price=_money(estimate[0], currency) if estimate else None,
        estimated_co2e_kg=estimate[1] if estimate else None,
        delivery_id=delivery,
    )


class JobCreator:
    """Stateless: each one-off MatchConfirmed, and each DeliveryScheduled of a standing
    agreement, gives one job, whose event id derives from its cause, so a repeat publishes the
    very same event."""

    def __init__(self, settings: Settings, group_id: str = CREATOR_GROUP) -> None:
        self.group_id = group_id
        self.bidding_period = timedelta(seconds=settings.auction_bidding_period_s)
        self.model = market_config(settings).transport
        self.source = f"{CREATOR_SOURCE}/{group_id}"

    async def load(self, conn: Conn, topic: str, partition: int) -> None:  # noqa: ARG002
        return None

    async def process(self, tx: Transaction, state: None, records: Sequence[Any]) -> None:
        for record in records:
            decoded = decode_or_dead_letter(tx, self.group_id, record)
            if decoded is None:
                continue
            event = decoded.event
            # A standing agreement's confirmation carries no job: each period's delivery does.
            if not isinstance(event, MatchConfirmed | DeliveryScheduled) or (
                isinstance(event, MatchConfirmed) and event.agreement is not None
            ):
                continue
            job = job_for(event, decoded.envelope.time, self.bidding_period, self.model)
            tx.emit(
                to_message(
                    job,
                    event_id=derived_id(f"{decoded.envelope.id}/job-creator"),
                    source=self.source,
                    time=decoded.envelope.time,
                    subject=job.job_id,
                )
            )
        return state


# The auctioneer: contracts to the core's commands and back -------------------------------------


def coverage_of(c: lg.CarrierCoverage) -> Coverage:
    return Coverage(
        depots=tuple(Depot(_place(d.location), d.radius_km) for d in c.depots),
        regions=c.regions,
        capacity_t=c.capacity_t,
        hazardous_permit=c.hazardous_permit,
        vehicle_types=c.vehicle_types,
    )


def to_command(d: Decoded) -> core.Command | None:
    e, at, eid = d.event, d.envelope.time, d.envelope.id
    match e:
        case lg.TransportJobRequested():
            reserve = e.reserve_price
            currency = e.currency or (reserve.currency if reserve else None)
            job = core.Job(
                job_id=e.job_id,
                match_id=e.match_id,
                needs=JobNeeds(
                    pickup=_place(e.pickup),
                    delivery=_place(e.delivery),
                    weight_t=e.weight_t,
                    hazardous=e.hazardous,
                ),
                pickup_start=e.pickup_window.start,
                pickup_end=e.pickup_window.end,
                deadline=e.bidding_deadline,
                currency=currency,
                reserve=reserve.amount if reserve else None,
                parties=tuple(p for p in (e.seller_id, e.buyer_id) if p),
                estimated_price=e.estimated_price.amount if e.estimated_price else None,
                estimated_co2e_kg=e.estimated_co2e_kg,
            )
            return core.Open(eid, at, job)
        case lg.QuoteSubmitted():
            return core.Submit(
                event_id=eid,
                at=at,
                job_id=e.job_id,
                quote_id=e.quote_id,
                carrier_id=e.carrier_id,
                price=e.price.amount,
                currency=e.price.currency,
                vehicle=e.vehicle,
                co2e_kg=e.co2e_kg,
                pickup_at=e.pickup_at,
                coverage=coverage_of(e.coverage) if e.coverage else None,
            )
        case lg.QuoteWithdrawn():
            return core.Withdraw(eid, at, e.job_id, e.quote_id, e.carrier_id)
        case lg.ReservePriceSet():
            price = e.price
            return core.SetReserve(
                event_id=eid,
                at=at,
                job_id=e.job_id,
                partner_id=e.partner_id,
                price=price.amount if price else None,
                currency=price.currency if price else None,
            )
        case lg.AuctionDeadlineDue():
            return core.DeadlineDue(eid, e.job_id, e.due)
    return None


def to_contract(event: core.Rejected | core.Awarded | core.Failed) -> lg.AwardEvent:
    match event:
        case core.Rejected():
            return lg.QuoteRejected(
                quote_id=event.quote_id,
                job_id=event.job_id,
                carrier_id=event.carrier_id,
                action=event.action,
                submission_id=event.submission_id,
                reason_code=event.code,
                reason=event.reason,
                previous_stands=event.previous_stands,
            )
        case core.Awarded(job=job, quote=q):
            currency = job.currency or q.currency
            return lg.TransportAwarded(
                job_id=job.job_id,
                match_id=job.match_id,
                quote_id=q.quote_id,
                carrier_id=q.carrier_id,
                price=common.Money(amount=q.price, currency=q.currency),
                co2e_kg=q.co2e_kg,
                bidders=event.bidders,
                vehicle=q.vehicle,  # type: ignore[arg-type]  # checked against VehicleType on input
                pickup_at=q.pickup_at,
                weight_t=job.needs.weight_t,
                estimated_price=(
                    common.Money(amount=job.estimated_price, currency=currency)
                    if job.estimated_price is not None
                    else None
                ),
                estimated_co2e_kg=job.estimated_co2e_kg,
            )
        case core.Failed(job=job):
            return lg.AuctionFailed(
                job_id=job.job_id,
                match_id=job.match_id,
                reason=event.reason,
                reopened_until=event.reopened_until,
                bidders=event.bidders,
            )
    raise TypeError(f"unknown core event {event!r}")


def deadline_timer(job_id: str, due: Any) -> tuple[str, OutboxMessage]:
    """The timer that brings the deadline back as an event; its id (and its event's) derives from
    the job and the due time, so asking again, or firing twice, repeats the very same event."""
    timer_id = derived_id(f"{job_id}/deadline/{due.isoformat()}")
    event = lg.AuctionDeadlineDue(job_id=job_id, due=due)
    return timer_id, to_message(
        event, event_id=timer_id, source=TIMER_SOURCE, time=due, subject=job_id
    )


def decide(
    auction: core.Auction | None,
    command: core.Command,
    decoded: Decoded,
    config: core.AuctionConfig,
    source: str,
) -> tuple[core.Auction | None, list[OutboxMessage], list[core.DeadlineSet]]:
    """One command through the pure core; the events it decides as messages to publish (ids
    derived from the cause) and the deadlines to set as timers."""
    auction, out = core.step(auction, command, config)
    messages: list[OutboxMessage] = []
    timers: list[core.DeadlineSet] = []
    k = 0
    for event in out:
        if isinstance(event, core.DeadlineSet):
            timers.append(event)
            continue
        contract = to_contract(event)
        messages.append(
            to_message(
                contract,
                event_id=derived_id(f"{decoded.envelope.id}/auctioneer", k),
                source=source,
                time=decoded.envelope.time,
                subject=contract.job_id,
            )
        )
        k += 1
    return auction, messages, timers


class Auctioneer:
    """State: the partition's open auctions by job id. Decided auctions stay in PostgreSQL and
    are read back only when a late event about them arrives."""

    def __init__(self, config: core.AuctionConfig, group_id: str = GROUP) -> None:
        self.config = config
        self.group_id = group_id
        self.source = f"{SOURCE}/{group_id}"

    async def load(self, conn: Conn, topic: str, partition: int) -> dict[str, core.Auction]:
        rows = await conn.fetch(
            "SELECT job_id, body FROM auctioneer_jobs WHERE group_id = $1 AND topic = $2"
            " AND partition = $3 AND status = 'open'",
            self.group_id,
            topic,
            partition,
        )
        return {r["job_id"]: _auction.decode(r["body"]) for r in rows}

    async def process(
        self, tx: Transaction, state: dict[str, core.Auction], records: Sequence[Any]
    ) -> dict[str, core.Auction]:
        decoded: list[tuple[Decoded, core.Command]] = []
        for record in records:
            d = decode_or_dead_letter(tx, self.group_id, record)
            if d is None:
                continue
            command = to_command(d)
            if command is not None:
                decoded.append((d, command))
        await self._fetch_decided(tx, state, {job_id_of(c) for _, c in decoded})
        dirty: set[str] = set()
        for d, command in decoded:
            job_id = job_id_of(command)
            before = state.get(job_id)
            after, messages, timers = decide(before, command, d, self.config, self.source)
            for message in messages:
                tx.emit(message)
            for t in timers:
                timer_id, message = deadline_timer(t.job_id, t.due)
                await schedule(tx.conn, timer_id, message, t.due)
            if after is not None and after is not before:
                state[job_id] = after
                dirty.add(job_id)
        await self._save(tx, state, dirty)
        for job_id in [j for j, a in state.items() if a.status != "open"]:
            del state[job_id]
        return state

    async def _fetch_decided(
        self, tx: Transaction, state: dict[str, core.Auction], job_ids: set[str]
    ) -> None:
        missing = sorted(job_ids - state.keys())
        if not missing:
            return
        rows = await tx.conn.fetch(
            "SELECT job_id, body FROM auctioneer_jobs WHERE group_id = $1 AND topic = $2"
            " AND partition = $3 AND job_id = ANY($4::text[])",
            self.group_id,
            tx.topic,
            tx.partition,
            missing,
        )
        for r in rows:
            state[r["job_id"]] = _auction.decode(r["body"])

    async def _save(self, tx: Transaction, state: dict[str, core.Auction], dirty: set[str]) -> None:
        if not dirty:
            return
        ids = sorted(dirty)
        await tx.conn.execute(
            "INSERT INTO auctioneer_jobs (group_id, topic, partition, job_id, status, body)"
            " SELECT $1, $2, $3, u.id, u.status, u.body::jsonb"
            " FROM unnest($4::text[], $5::text[], $6::text[]) AS u(id, status, body)"
            " ON CONFLICT (group_id, topic, partition, job_id)"
            " DO UPDATE SET status = EXCLUDED.status, body = EXCLUDED.body",
            self.group_id,
            tx.topic,
            tx.partition,
            ids,
            [state[i].status for i in ids],
            [_json.encode(state[i]).decode() for i in ids],
        )


def job_id_of(command: core.Command) -> str:
    return command.job.job_id if isinstance(command, core.Open) else command.job_id
