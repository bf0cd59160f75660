"""Reminders (#20 item 3): which are due, decided from the log, pure.

A reminder is the exchange's own prompt to a partner that something waits for it, named apart
from a facilitator's nudge (`listing.nudged`, a person's choice). Four rules:

- `reminder.proposal_expiring`: each side that has not answered an open proposal, 24 hours
  before it expires (none for a proposal that lives a day or less: its own notice is the
  reminder);
- `reminder.listing_unmatched`: the owner of a listing that had no proposal 14 days after it was
  posted, with the reasons the matcher cannot match it, if any (marketplace/core/eligibility.py,
  found by the shell when the listing was posted or changed); none when the listing's window
  ends before then;
- `reminder.delivery_upcoming`: both sides of a standing agreement, two days before each
  period's delivery window opens (none for a delivery that opens less than two days after the
  agreement was confirmed, nor once the window opened);
- `reminder.feedback_missing`: each party named in a delivery that gave no feedback on it a week
  after it was confirmed.

`plan(facts, now)` takes what the log says of one subject (a proposal, a listing, a standing
agreement, a delivery), as the facts below, and the time of the event being decided on (a
`ReminderDue` timer's, read as a fact too with the time it was published, or another fact's own): it
answers the reminders due by then that were not sent (a `Reminded` fact says one was), and the later
moments at which more may fall due (the shell asks the scheduler for a timer at each). No clock, no
randomness, no I/O: the same facts and time give the same answer, and a reminder's id derives from
its rule, subject, occasion and recipient, so each is sent once (the shell records `Reminded` in the
transaction that emits it). A reminder whose moment passed more than two days before that time is
not sent (`STALE_AFTER`)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, Literal

from marketplace.core import periods
from marketplace.core.book import Listing, Terms
from marketplace.core.ids import derived_id

PROPOSAL = "reminder.proposal_expiring"
LISTING = "reminder.listing_unmatched"
DELIVERY = "reminder.delivery_upcoming"
FEEDBACK = "reminder.feedback_missing"
KINDS = (PROPOSAL, LISTING, DELIVERY, FEEDBACK)

BEFORE_EXPIRY = timedelta(hours=24)
UNMATCHED_AFTER = timedelta(days=14)
BEFORE_DELIVERY = timedelta(days=2)
FEEDBACK_AFTER = timedelta(days=7)
# A reminder whose moment passed this long ago is not sent: it would tell of what the partner
# has long seen or missed (a scheduler that was away for days; the exchange's history when the
# reminders first run on it, whose timers all fire at once).
STALE_AFTER = timedelta(days=2)
# An open-ended agreement has periods without end: the plan looks this many ahead at most.
MAX_PERIODS = 2000

JSON = Any


# The facts ----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Reason:
    """Why the matcher cannot match a listing: an eligibility finding's code and sentence."""

    code: str
    detail: str


@dataclass(frozen=True, slots=True)
class ProposalMade:
    at: datetime
    match_id: str
    seller_id: str
    buyer_id: str
    expires_at: datetime
    material_code: str
    quantity: JSON = None  # {"amount", "unit"}
    delivered_price: JSON = None  # {"amount", "currency"}


@dataclass(frozen=True, slots=True)
class ProposalAnswered:
    at: datetime
    match_id: str
    partner_id: str


@dataclass(frozen=True, slots=True)
class ProposalClosed:
    """Confirmed, expired or cancelled: nobody is waited for any more."""

    at: datetime
    match_id: str


@dataclass(frozen=True, slots=True)
class ListingPosted:
    at: datetime
    listing: Listing
    blocking: tuple[Reason, ...] = ()


@dataclass(frozen=True, slots=True)
class ListingChanged:
    """New terms (the 14 days still count from the posting)."""

    at: datetime
    listing_id: str
    terms: Terms
    blocking: tuple[Reason, ...] = ()


@dataclass(frozen=True, slots=True)
class ListingProposed:
    at: datetime
    listing_id: str


@dataclass(frozen=True, slots=True)
class ListingClosed:
    at: datetime
    listing_id: str


@dataclass(frozen=True, slots=True)
class AgreementMade:
    at: datetime
    match_id: str
    seller_id: str
    buyer_id: str
    material_code: str
    period: periods.Period
    starts: date
    ends: date | None = None
    quantity: JSON = None  # per period


@dataclass(frozen=True, slots=True)
class AgreementStopped:
    at: datetime
    match_id: str


@dataclass(frozen=True, slots=True)
class Delivered:
    at: datetime
    match_id: str
    delivery_id: str | None
    seller_id: str
    buyer_id: str
    carrier_id: str | None
    material_code: str


@dataclass(frozen=True, slots=True)
class FeedbackGiven:
    at: datetime
    match_id: str
    delivery_id: str | None
    partner_id: str


@dataclass(frozen=True, slots=True)
class TimerRang:
    """A `ReminderDue` of the subject was read: its time has come, whichever of the subject's
    other facts are read after it (a consumer group reading the log anew reads the topics in no
    fixed order between them). `published`: when the scheduler published it (the record's
    timestamp in the log), later than `at` when the scheduler fired it late."""

    at: datetime
    published: datetime | None = None


@dataclass(frozen=True, slots=True)
class Reminded:
    at: datetime
    reminder_id: str


Fact = (
    ProposalMade
    | ProposalAnswered
    | ProposalClosed
    | ListingPosted
    | ListingChanged
    | ListingProposed
    | ListingClosed
    | AgreementMade
    | AgreementStopped
    | Delivered
    | FeedbackGiven
    | TimerRang
    | Reminded
)
FACTS: tuple[type[Any], ...] = (
    ProposalMade,
    ProposalAnswered,
    ProposalClosed,
    ListingPosted,
    ListingChanged,
    ListingProposed,
    ListingClosed,
    AgreementMade,
    AgreementStopped,
    Delivered,
    FeedbackGiven,
    TimerRang,
    Reminded,
)


# The answer ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Reminder:
    reminder_id: str
    kind: str
    partner_id: str
    subject_id: str
    due_at: datetime
    summary: str
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Plan:
    due: tuple[Reminder, ...]  # to send now: due by `now`, not sent before
    wake: tuple[datetime, ...]  # later moments at which more may fall due


def reminder_id(kind: str, subject_id: str, occasion: str, partner_id: str) -> str:
    return derived_id(f"reminder/{kind}/{subject_id}/{occasion}/{partner_id}")


def plan(facts: Iterable[Fact], now: datetime) -> Plan:
    """The reminders of one subject due at `now` and not yet sent, and when to look again. A
    timer read earlier counts as `now` when it is later."""
    facts = sorted(facts, key=lambda f: f.at)
    rang = [f for f in facts if isinstance(f, TimerRang)]
    now = max([now, *(f.at for f in rang), *(f.published for f in rang if f.published)])
    sent = {f.reminder_id for f in facts if isinstance(f, Reminded)}
    candidates = [
        *_proposal(facts, now),
        *_listing(facts),
        *_deliveries(facts, now),
        *_feedback(facts),
    ]
    due: dict[str, Reminder] = {}
    wake: set[datetime] = set()
    for r in candidates:
        if r.reminder_id in sent or now - r.due_at > STALE_AFTER:
            continue
        if r.due_at <= now:
            due.setdefault(r.reminder_id, r)
        else:
            wake.add(r.due_at)
    return Plan(
        tuple(sorted(due.values(), key=lambda r: (r.due_at, r.kind, r.partner_id))),
        tuple(sorted(wake)),
    )


def _sides(seller: str, buyer: str) -> list[tuple[str, str]]:
    return [(seller, "seller"), (buyer, "buyer")] if seller != buyer else [(seller, "seller")]


def _proposal(facts: list[Fact], now: datetime) -> list[Reminder]:
    made = [f for f in facts if isinstance(f, ProposalMade)]
    if not made or any(isinstance(f, ProposalClosed) for f in facts):
        return []
    p = made[0]
    due_at = p.expires_at - BEFORE_EXPIRY
    if due_at <= p.at or now >= p.expires_at:
        return []
    answered = {f.partner_id for f in facts if isinstance(f, ProposalAnswered)}
    summary = f"A proposal for {p.material_code} expires in 24 hours: please accept or decline"
    data = {
        "match_id": p.match_id,
        "material_code": p.material_code,
        "quantity": p.quantity,
        "delivered_price": p.delivered_price,
        "expires_at": p.expires_at.isoformat(),
    }
    return [
        Reminder(
            reminder_id(PROPOSAL, p.match_id, "", partner),
            PROPOSAL,
            partner,
            p.match_id,
            due_at,
            summary,
            data | {"your_side": side},
        )
        for partner, side in _sides(p.seller_id, p.buyer_id)
        if partner not in answered
    ]


def _listing(facts: list[Fact]) -> list[Reminder]:
    posted = [f for f in facts if isinstance(f, ListingPosted)]
    if not posted:
        return []
    if any(isinstance(f, ListingProposed | ListingClosed) for f in facts):
        return []
    first = posted[0]
    listing = first.listing
    end, blocking = listing.terms.end, first.blocking
    for f in facts:
        if isinstance(f, ListingChanged):
            end, blocking = f.terms.end, f.blocking
    due_at = first.at + UNMATCHED_AFTER
    if end <= due_at:
        return []  # its window closes first: nothing left to remind of
    days = UNMATCHED_AFTER.days
    summary = f"Your {listing.kind} of {listing.code} has had no proposal for {days} days"
    if blocking:
        summary += ": the exchange cannot match it as it is ("
        summary += "; ".join(r.detail for r in blocking) + ")"
    data: dict[str, Any] = {
        "listing_id": listing.id,
        "kind": listing.kind,
        "material_code": listing.code,
        "days_open": days,
        "matchable": not blocking,
    }
    if blocking:
        data["reason"] = "; ".join(r.detail for r in blocking)
        data["reason_codes"] = [r.code for r in blocking]
    return [
        Reminder(
            reminder_id(LISTING, listing.id, "", listing.owner),
            LISTING,
            listing.owner,
            listing.id,
            due_at,
            summary,
            data,
        )
    ]


def _deliveries(facts: list[Fact], now: datetime) -> list[Reminder]:
    made = [f for f in facts if isinstance(f, AgreementMade)]
    if not made or any(isinstance(f, AgreementStopped) for f in facts):
        return []
    a = made[0]
    out: list[Reminder] = []
    begins = periods.start_of(a.period, max(a.starts, a.at.date()))
    for _ in range(MAX_PERIODS):
        if a.ends is not None and begins >= a.ends:
            break
        opens = periods.midnight(max(begins, a.starts))
        due_at = opens - BEFORE_DELIVERY
        key = periods.key_of(a.period, begins)
        if due_at >= a.at and now < opens:
            summary = (
                f"The delivery of {a.material_code} for {key} under your standing agreement"
                f" can be picked up from {opens.date().isoformat()}"
            )
            data = {
                "match_id": a.match_id,
                "material_code": a.material_code,
                "period_key": key,
                "quantity": a.quantity,
                "pickup_from": opens.isoformat(),
            }
            out += [
                Reminder(
                    reminder_id(DELIVERY, a.match_id, key, partner),
                    DELIVERY,
                    partner,
                    a.match_id,
                    due_at,
                    summary,
                    data | {"your_side": side},
                )
                for partner, side in _sides(a.seller_id, a.buyer_id)
            ]
            if due_at > now:
                break  # the first one to come is enough: its timer brings the next
        begins = periods.next_start(a.period, begins)
    return out


def _feedback(facts: list[Fact]) -> list[Reminder]:
    delivered = [f for f in facts if isinstance(f, Delivered)]
    if not delivered:
        return []
    d = delivered[0]
    subject = d.delivery_id or d.match_id
    given = {f.partner_id for f in facts if isinstance(f, FeedbackGiven)}
    parties: dict[str, str] = {}
    sides: tuple[tuple[str | None, Literal["seller", "buyer", "carrier"]], ...] = (
        (d.seller_id, "seller"),
        (d.buyer_id, "buyer"),
        (d.carrier_id, "carrier"),
    )
    for partner, side in sides:
        if partner is not None:
            parties.setdefault(partner, side)  # a party on two sides is asked once
    summary = f"Your feedback on the delivery of {d.material_code} is still missing"
    data = {
        "match_id": d.match_id,
        "delivery_id": d.delivery_id,
        "material_code": d.material_code,
        "delivered_at": d.at.isoformat(),
        "answer_at": f"/v1/matches/{d.match_id}/feedback",
    }
    return [
        Reminder(
            reminder_id(FEEDBACK, subject, "", partner),
            FEEDBACK,
            partner,
            subject,
            d.at + FEEDBACK_AFTER,
            summary,
            data | {"your_side": side},
        )
        for partner, side in parties.items()
        if partner not in given
    ]
