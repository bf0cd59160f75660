"""Reminders, between the contracts and the pure core (marketplace/core/reminders.py): the facts
an event of `market.listings`, `market.matches` or `market.reminders` gives of which subjects,
their rows in `reminder_facts`, the timers the core asks for, and the notifications its
reminders become on `partners.notifications`."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import msgspec

from marketplace.core import reminders as core
from marketplace.core.book import Listing
from marketplace.core.eligibility import Finding
from marketplace.core.ids import derived_id
from marketplace.events import Decoded, to_message
from marketplace.runtime.outbox import OutboxMessage
from marketplace.translate.matching import listing_of, offer_terms, request_terms
from schemas import feedback as fb
from schemas import listings as ls
from schemas import matches as ms
from schemas.partners import NotificationIssued
from schemas.reminders import ReminderDue

SOURCE = "/consumers/reminders"
TIMER_SOURCE = "/producers/scheduler"

_BY_NAME: dict[str, type[Any]] = {cls.__name__: cls for cls in core.FACTS}
_encoder = msgspec.json.Encoder()


def source_of(group_id: str) -> str:
    return f"{SOURCE}/{group_id}"


@dataclasses.dataclass(frozen=True, slots=True)
class Row:
    """One fact of one subject, as `reminder_facts` keeps it."""

    subject_id: str
    material_code: str
    fact_id: str
    fact: core.Fact

    @property
    def kind(self) -> str:
        return type(self.fact).__name__

    def body(self) -> str:
        return _encoder.encode(self.fact).decode()


def decode_fact(kind: str, body: str | bytes) -> core.Fact:
    fact: core.Fact = msgspec.json.decode(body, type=_BY_NAME[kind])
    return fact


def _plain(value: Any) -> Any:
    return msgspec.to_builtins(value)


def _reasons(found: Sequence[Finding]) -> tuple[core.Reason, ...]:
    return tuple(core.Reason(f.code, f.detail) for f in found if f.blocking)


Eligibility = Callable[[Listing], Sequence[Finding]]
Posted = Callable[[str], Listing | None]


def facts_of(
    d: Decoded, why: Eligibility, posted: Posted, received: datetime | None = None
) -> list[Row]:
    """The facts one event gives, each under its subject. `why` finds what stands between a
    listing and a match (marketplace/translate/matching.findings_of); `posted` is the listing as
    it was posted, for a change of its terms (None when this consumer never saw it posted);
    `received` the record's timestamp in the log (for a timer: when the scheduler published it)."""
    e, at, eid = d.event, d.envelope.time, d.envelope.id
    rows: list[Row] = []

    def add(subject: str, code: str, fact: core.Fact) -> None:
        rows.append(Row(subject, code, f"{eid}/{len(rows)}", fact))

    match e:
        case ls.OfferPosted():
            listing = listing_of(
                e.offer_id,
                e.owner_id,
                e.material,
                e.location,
                e.terms,
                certifications=e.certifications,
            )
            add(
                e.offer_id, e.material.code, core.ListingPosted(at, listing, _reasons(why(listing)))
            )
        case ls.RequestPosted():
            listing = listing_of(
                e.request_id,
                e.owner_id,
                e.material,
                e.location,
                e.terms,
                accepts=e.accepts_codes,
                hazardous_permit=e.hazardous_permit,
            )
            add(
                e.request_id,
                e.material.code,
                core.ListingPosted(at, listing, _reasons(why(listing))),
            )
        case ls.OfferUpdated() | ls.RequestUpdated():
            lid = e.offer_id if isinstance(e, ls.OfferUpdated) else e.request_id
            before = posted(lid)
            if before is not None:
                mass = (before.density, before.mass_per_piece)
                terms = (
                    offer_terms(e.terms, mass)
                    if isinstance(e.terms, ls.OfferTerms)
                    else request_terms(e.terms, mass)
                )
                after = dataclasses.replace(before, terms=terms)
                add(lid, e.material_code, core.ListingChanged(at, lid, terms, _reasons(why(after))))
        case ls.OfferWithdrawn():
            add(e.offer_id, e.material_code, core.ListingClosed(at, e.offer_id))
        case ls.RequestWithdrawn():
            add(e.request_id, e.material_code, core.ListingClosed(at, e.request_id))
        case ls.MatchAccepted() | ls.MatchDeclined():
            add(e.match_id, e.material_code, core.ProposalAnswered(at, e.match_id, e.partner_id))
        case ms.MatchProposed():
            add(
                e.match_id,
                e.material_code,
                core.ProposalMade(
                    at,
                    e.match_id,
                    e.seller_id,
                    e.buyer_id,
                    e.expires_at,
                    e.material_code,
                    _plain(e.quantity),
                    _plain(e.delivered_price),
                ),
            )
            add(e.offer_id, e.material_code, core.ListingProposed(at, e.offer_id))
            add(e.request_id, e.material_code, core.ListingProposed(at, e.request_id))
        case ms.MatchConfirmed():
            add(e.match_id, e.material_code, core.ProposalClosed(at, e.match_id))
            if e.agreement is not None:
                a = e.agreement
                add(
                    e.match_id,
                    e.material_code,
                    core.AgreementMade(
                        at,
                        e.match_id,
                        e.seller_id,
                        e.buyer_id,
                        e.material_code,
                        a.period,
                        a.starts,
                        a.ends,
                        _plain(a.quantity),
                    ),
                )
        case ms.MatchExpired() | ms.MatchCancelled():
            add(e.match_id, e.material_code, core.ProposalClosed(at, e.match_id))
        case ms.AgreementEnded():
            add(e.match_id, e.material_code, core.AgreementStopped(at, e.match_id))
        case fb.MatchDelivered():
            add(
                e.delivery_id or e.match_id,
                e.material_code,
                core.Delivered(
                    at,
                    e.match_id,
                    e.delivery_id,
                    e.seller_id,
                    e.buyer_id,
                    e.carrier_id,
                    e.material_code,
                ),
            )
        case ReminderDue():
            add(e.subject_id, e.material_code, core.TimerRang(at, received))
        case fb.FeedbackGiven():
            add(
                e.delivery_id or e.match_id,
                e.material_code,
                core.FeedbackGiven(at, e.match_id, e.delivery_id, e.partner_id),
            )
        case _:
            pass
    return rows


def subjects_of(event: Any) -> list[str]:
    """The subjects whose facts an event's translation needs (a change of terms: the listing
    as posted)."""
    match event:
        case ls.OfferUpdated():
            return [event.offer_id]
        case ls.RequestUpdated():
            return [event.request_id]
        case _:
            return []


def timer_id_of(subject_id: str, due: datetime) -> str:
    return derived_id(f"reminder-due/{subject_id}/{due.isoformat()}")


def timestamp_of(record: Any) -> datetime | None:
    """A Kafka record's timestamp (milliseconds since the epoch), as a time."""
    ms = getattr(record, "timestamp", None)
    return datetime.fromtimestamp(ms / 1000, UTC) if isinstance(ms, int) and ms >= 0 else None


def timer(subject_id: str, material_code: str, due: datetime) -> tuple[str, OutboxMessage]:
    """The timer that brings a `ReminderDue` of the subject at `due`: its id derives from both,
    so asking again (another batch, a replay, another group) changes nothing."""
    timer_id = timer_id_of(subject_id, due)
    event = ReminderDue(subject_id=subject_id, material_code=material_code, due=due)
    message = to_message(
        event, event_id=timer_id, source=TIMER_SOURCE, time=due, subject=subject_id
    )
    return timer_id, message


def notification(reminder: core.Reminder, source: str) -> OutboxMessage:
    """A reminder as the notification the mailer, the webhooks and the pages receive. Its id is
    the reminder's and its cause the timer of its moment, whatever event brought it due, so
    the same reminder is always the same bytes."""
    cause_id = timer_id_of(reminder.subject_id, reminder.due_at)
    event = NotificationIssued(
        notification_id=reminder.reminder_id,
        partner_id=reminder.partner_id,
        kind=reminder.kind,
        subject_id=reminder.subject_id,
        cause_event_id=cause_id,
        summary=reminder.summary[:200],
        data=reminder.data,
    )
    return to_message(
        event,
        event_id=reminder.reminder_id,
        source=source,
        time=reminder.due_at,
        subject=reminder.partner_id,
    )
