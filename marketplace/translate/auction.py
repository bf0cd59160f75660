"""Transport auctions, between the contracts and the pure core (marketplace/core/auction.py): the
job a confirmed match or a scheduled delivery asks for, the commands `logistics.jobs` events give,
the contracts the core's decisions become, and `decide`, the one step the auctioneer and
`marketplace audit replay` both take."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from marketplace.core import auction as core
from marketplace.core.carriers import Coverage, Depot, JobNeeds
from marketplace.core.economics import TransportModel
from marketplace.core.ids import derived_id
from marketplace.events import Decoded, to_message
from marketplace.runtime.outbox import OutboxMessage
from marketplace.settings import Settings
from marketplace.translate.common import money, place_of
from schemas import common
from schemas import logistics as lg
from schemas.matches import DeliveryScheduled, MatchConfirmed

SOURCE = "/consumers/auctioneer"
TIMER_SOURCE = "/producers/scheduler"


def source_of(group_id: str) -> str:
    """Every instance of a group signs its events alike; groups are told apart."""
    return f"{SOURCE}/{group_id}"


def auction_config(settings: Settings) -> core.AuctionConfig:
    return core.AuctionConfig(
        reopen_after=timedelta(seconds=settings.auction_reopen_period_s),
        early_close_quotes=settings.auction_early_close_quotes,
    )


def job_id_for(match_id: str) -> str:
    """One transport job per confirmed match, with an id anyone can derive from the match."""
    return derived_id(f"{match_id}/transport-job")


def job_for(
    confirmed: MatchConfirmed | DeliveryScheduled,
    decided_at: Any,
    bidding_period: timedelta,
    model: TransportModel,
) -> lg.TransportJobRequested:
    """The transport job for a one-off match, or for one period's delivery of a standing
    agreement (its id then derived from the delivery)."""
    needs = JobNeeds(
        pickup=place_of(confirmed.pickup),
        delivery=place_of(confirmed.delivery),
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
        estimated_price=money(estimate[0], currency) if estimate else None,
        estimated_co2e_kg=estimate[1] if estimate else None,
        delivery_id=delivery,
    )


def coverage_of(c: lg.CarrierCoverage) -> Coverage:
    return Coverage(
        depots=tuple(Depot(place_of(d.location), d.radius_km) for d in c.depots),
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
                    pickup=place_of(e.pickup),
                    delivery=place_of(e.delivery),
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


def job_id_of(command: core.Command) -> str:
    return command.job.job_id if isinstance(command, core.Open) else command.job_id
