"""Notifications, between the contracts and the pure planner (marketplace/core/notifications.py):
the happening an event of `market.matches`, `logistics.jobs`, `logistics.awards` or
`partners.registry` is, the logistics firms whose coverage fits a job, and the
`partners.notifications` messages the planner's notes become."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgspec

from marketplace.core import notifications as core
from marketplace.core.carriers import JobNeeds, unfit_reasons
from marketplace.core.ids import derived_id
from marketplace.events import Decoded, to_message
from marketplace.runtime.outbox import OutboxMessage
from marketplace.translate import shredding
from marketplace.translate.auction import coverage_of
from marketplace.translate.common import place_of
from schemas import facilitators as fa
from schemas import feedback as fb
from schemas import logistics as lg
from schemas import matches as ms
from schemas.partners import NotificationIssued

SOURCE = "/consumers/notifier"


def source_of(group_id: str) -> str:
    return f"{SOURCE}/{group_id}"


def _plain(value: Any) -> Any:
    return msgspec.to_builtins(value)


def happening_of(event: Any) -> core.Happening | None:
    """What the planner needs of one contract event; None for an event nobody is told about."""
    match event:
        case ms.MatchProposed():
            return core.Proposed(
                match_id=event.match_id,
                offer_id=event.offer_id,
                request_id=event.request_id,
                seller_id=event.seller_id,
                buyer_id=event.buyer_id,
                material_code=event.material_code,
                quantity=_plain(event.quantity),
                delivered_price=_plain(event.delivered_price),
                distance_km=event.distance_km,
                co2e_saved_kg=event.co2e_saved_kg if event.co2e_known else None,
                score=event.score,
                expires_at=event.expires_at,
                agreement=_plain(event.agreement),
                criteria=_plain(event.criteria),
            )
        case ms.MatchConfirmed():
            return core.Confirmed(
                match_id=event.match_id,
                seller_id=event.seller_id,
                buyer_id=event.buyer_id,
                material_code=event.material_code,
                quantity=_plain(event.quantity),
                delivered_price=_plain(event.delivered_price),
                agreement=_plain(event.agreement),
            )
        case ms.DeliveryScheduled():
            return core.DeliveryScheduled(
                delivery_id=event.delivery_id,
                match_id=event.match_id,
                seller_id=event.seller_id,
                buyer_id=event.buyer_id,
                period_key=event.period_key,
                material_code=event.material_code,
                quantity=_plain(event.quantity),
                pickup_window=_plain(event.pickup_window),
                pickup_date=event.pickup_window.start.date().isoformat(),
            )
        case ms.AgreementEnded():
            return core.AgreementEnded(event.match_id, event.reason, event.last_period_key)
        case ms.MatchExpired():
            return core.Expired(event.match_id)
        case ms.MatchCancelled():
            return core.Cancelled(event.match_id, event.reason, event.by_partner_id)
        case lg.TransportJobRequested():
            return core.JobRequested(
                job_id=event.job_id,
                match_id=event.match_id,
                material_code=event.material_code,
                hazardous=event.hazardous,
                weight_t=event.weight_t,
                pickup=_plain(event.pickup),
                delivery=_plain(event.delivery),
                pickup_window=_plain(event.pickup_window),
                delivery_window=_plain(event.delivery_window),
                bidding_deadline=event.bidding_deadline,
            )
        case lg.QuoteRejected():
            return core.QuoteRejected(
                carrier_id=event.carrier_id,
                job_id=event.job_id,
                quote_id=event.quote_id,
                action=event.action,
                reason_code=event.reason_code,
                reason=event.reason,
                previous_stands=event.previous_stands,
            )
        case lg.TransportAwarded():
            return core.Awarded(
                job_id=event.job_id,
                match_id=event.match_id,
                quote_id=event.quote_id,
                carrier_id=event.carrier_id,
                price=_plain(event.price),
                co2e_kg=event.co2e_kg,
                bidders=tuple(event.bidders),
            )
        case lg.AuctionFailed():
            return core.AuctionFailed(
                job_id=event.job_id,
                match_id=event.match_id,
                reason=event.reason,
                reopened_until=event.reopened_until,
                bidders=tuple(event.bidders),
            )
        case fa.ListingNudged():
            return core.Nudged(
                partner_id=event.partner_id,
                facilitator_id=event.facilitator_id,
                listing_id=event.listing_id,
                kind=event.kind,
                material_code=event.material_code,
                days_unchanged=event.days_unchanged,
                message=event.message,
            )
        case fa.ConsentGranted():
            return core.ConsentGranted(event.partner_id, event.facilitator_id, event.note)
        case fa.ConsentRevoked():
            return core.ConsentRevoked(event.partner_id, event.facilitator_id, event.reason)
        case fb.MatchDelivered():
            return core.Delivered(
                match_id=event.match_id,
                delivery_id=event.delivery_id,
                material_code=event.material_code,
                confirmed_as=event.confirmed_as,
                seller_id=event.seller_id,
                buyer_id=event.buyer_id,
                carrier_id=event.carrier_id,
                feedback_reasons=tuple(fb.FEEDBACK_REASONS),
            )
    return None


def plan(event: Any, known: core.Known) -> list[core.Note]:
    """The planner's notes for one contract event."""
    happening = happening_of(event)
    return [] if happening is None else core.plan(happening, known)


def job_needs(job: lg.TransportJobRequested) -> JobNeeds:
    return JobNeeds(
        pickup=place_of(job.pickup),
        delivery=place_of(job.delivery),
        weight_t=job.weight_t,
        hazardous=job.hazardous,
    )


def fitting_carriers(
    job: lg.TransportJobRequested, carriers: Sequence[tuple[str, lg.CarrierCoverage]]
) -> tuple[str, ...]:
    """The logistics firms whose declared coverage and fleet fit the job, sorted."""
    needs = job_needs(job)
    return tuple(sorted(pid for pid, cov in carriers if not unfit_reasons(needs, coverage_of(cov))))


def notification_id(cause_event_id: str, note: core.Note) -> str:
    return derived_id(f"{cause_event_id}/notify/{note.kind}/{note.partner_id}")


def messages(decoded: Decoded, notes: Sequence[core.Note], source: str) -> list[OutboxMessage]:
    """One NotificationIssued per note, its id derived from the cause, the kind and the partner."""
    cause = decoded.envelope.id
    out = []
    for note in notes:
        nid = notification_id(cause, note)
        event = NotificationIssued(
            notification_id=nid,
            partner_id=note.partner_id,
            kind=note.kind,
            subject_id=note.subject_id,
            cause_event_id=cause,
            summary=note.summary[:200],
            data=note.data,
            # A nudge's message, a consent's note: sealed as the cause sealed them (#21 item 8).
            sealed=shredding.notification_sealed(decoded.event),
        )
        out.append(
            to_message(
                event,
                event_id=nid,
                source=source,
                time=decoded.envelope.time,
                subject=note.partner_id,
            )
        )
    return out
