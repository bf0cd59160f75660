"""The reminders' translation (marketplace/translate/reminders.py): the facts that contract events
give, under which subjects, kept and read back as `reminder_facts` rows; a listing the matcher
cannot match says why, and a change of its terms finds the reasons again; the notification and
timer a reminder becomes are the same whatever brought it due."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta

from marketplace.core import reminders as core
from marketplace.core.book import Listing
from marketplace.core.eligibility import Finding
from marketplace.events import Decoded, decode, to_message
from marketplace.settings import Settings
from marketplace.translate.matching import findings_of, market_config
from marketplace.translate.reminders import (
    Row,
    decode_fact,
    facts_of,
    notification,
    subjects_of,
    timer,
)
from schemas import feedback as fb
from schemas import listings as ls
from schemas import matches as ms
from schemas.base import Event
from schemas.common import Agreement, Location, Material, Money, Quantity, Reason, Window
from schemas.partners import NotificationIssued
from schemas.reminders import ReminderDue

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
CONFIG = market_config(Settings.from_env({}))


def why(listing: Listing) -> Sequence[Finding]:
    return findings_of(listing, CONFIG)


def nothing_posted(_: str) -> Listing | None:
    return None


def as_read(event: Event, at: datetime = T0) -> Decoded:
    """The event as a consumer reads it from Kafka (CloudEvents headers, JSON value)."""
    message = to_message(event, event_id=str(uuid.uuid4()), source="/tests", time=at)
    return decode(message.topic, message.value, list(message.headers))


def offer(unit: str = "t") -> ls.OfferPosted:
    return ls.OfferPosted(
        offer_id="o1",
        owner_id="seller-1",
        actor_id="seller-1",
        material=Material(code="150102", description="PE film"),
        location=Location(lat=42.7, lon=23.3),
        terms=ls.OfferTerms(
            quantity=Quantity(amount=10, unit=unit),  # type: ignore[arg-type]
            price=Money(amount=50, currency="EUR"),
            available=Window(start=T0, end=T0 + timedelta(days=90)),
        ),
    )


def roundtrip(rows: list[Row]) -> list[core.Fact]:
    """What `reminder_facts` gives back."""
    return [decode_fact(r.kind, r.body()) for r in rows]


def test_a_listing_the_matcher_cannot_match_is_posted_with_the_reasons() -> None:
    [row] = facts_of(as_read(offer("m3")), why, nothing_posted)
    assert (row.subject_id, row.material_code, row.kind) == ("o1", "150102", "ListingPosted")
    [fact] = roundtrip([row])
    assert fact == row.fact, "kept and read back the same"
    assert isinstance(fact, core.ListingPosted)
    assert [r.code for r in fact.blocking] == ["unit-not-convertible"]
    [fine] = facts_of(as_read(offer("t")), why, nothing_posted)
    assert isinstance(fine.fact, core.ListingPosted)
    assert fine.fact.blocking == ()


def test_a_change_of_terms_finds_the_reasons_again_from_the_listing_as_posted() -> None:
    [posted] = facts_of(as_read(offer("m3")), why, nothing_posted)
    assert isinstance(posted.fact, core.ListingPosted)
    change = ls.OfferUpdated(
        offer_id="o1",
        owner_id="seller-1",
        actor_id="seller-1",
        material_code="150102",
        terms=offer("t").terms,
    )
    assert subjects_of(change) == ["o1"]
    listing = posted.fact.listing
    [row] = facts_of(as_read(change, T0 + timedelta(days=2)), why, lambda _: listing)
    assert isinstance(row.fact, core.ListingChanged)
    assert row.fact.blocking == ()
    assert roundtrip([row]) == [row.fact]
    # Never seen posted (this group started later): no fact, nothing guessed.
    assert facts_of(as_read(change), why, nothing_posted) == []


def test_a_proposal_speaks_of_the_match_and_of_both_listings() -> None:
    proposed = ms.MatchProposed(
        match_id="m1",
        offer_id="o1",
        request_id="r1",
        seller_id="seller-1",
        buyer_id="buyer-1",
        material_code="150102",
        quantity=Quantity(amount=4, unit="t"),
        delivered_price=Money(amount=35, currency="EUR"),
        distance_km=42.0,
        transport_co2e_kg=26.0,
        co2e_saved_kg=5800.0,
        score=0.8,
        reasons=(Reason(factor="distance_km", value=42.0),),
        expires_at=T0 + timedelta(days=2),
    )
    rows = facts_of(as_read(proposed), why, nothing_posted)
    assert [(r.subject_id, r.kind) for r in rows] == [
        ("m1", "ProposalMade"),
        ("o1", "ListingProposed"),
        ("r1", "ListingProposed"),
    ]
    assert len({r.fact_id for r in rows}) == 3
    assert roundtrip(rows) == [r.fact for r in rows]
    answer = ls.MatchAccepted(
        match_id="m1", partner_id="buyer-1", actor_id="buyer-1", material_code="150102"
    )
    [answered] = facts_of(as_read(answer), why, nothing_posted)
    assert answered.fact == core.ProposalAnswered(T0, "m1", "buyer-1")


def test_agreements_deliveries_feedback_and_timers_become_facts() -> None:
    confirmed = ms.MatchConfirmed(
        match_id="m2",
        offer_id="o2",
        request_id="r2",
        seller_id="s",
        buyer_id="b",
        material_code="020304",
        hazardous=False,
        quantity=Quantity(amount=5, unit="t"),
        weight_t=5,
        pickup=Location(lat=42.7, lon=23.3),
        delivery=Location(lat=42.1, lon=24.7),
        pickup_window=Window(start=T0, end=T0 + timedelta(days=30)),
        delivery_window=Window(start=T0, end=T0 + timedelta(days=30)),
        delivered_price=Money(amount=20, currency="EUR"),
        agreement=Agreement(
            period="month", quantity=Quantity(amount=5, unit="t"), starts=date(2027, 1, 1)
        ),
    )
    rows = facts_of(as_read(confirmed), why, nothing_posted)
    assert [r.kind for r in rows] == ["ProposalClosed", "AgreementMade"]
    made = roundtrip(rows)[1]
    assert made == core.AgreementMade(
        T0, "m2", "s", "b", "020304", "month", date(2027, 1, 1), None, {"amount": 5.0, "unit": "t"}
    )
    delivered = fb.MatchDelivered(
        match_id="m2",
        material_code="020304",
        delivery_id="d1",
        partner_id="b",
        actor_id="b",
        confirmed_as="buyer",
        seller_id="s",
        buyer_id="b",
    )
    [d] = facts_of(as_read(delivered), why, nothing_posted)
    assert (d.subject_id, d.kind) == ("d1", "Delivered")
    given = fb.FeedbackGiven(
        feedback_id="f1",
        match_id="m2",
        material_code="020304",
        delivery_id="d1",
        partner_id="s",
        actor_id="s",
        side="seller",
        rating=4,
        reason="quantity",
    )
    [g] = facts_of(as_read(given), why, nothing_posted)
    assert (g.subject_id, g.fact) == ("d1", core.FeedbackGiven(T0, "m2", "d1", "s"))
    due = T0 + timedelta(days=7)
    _, message = timer("d1", "020304", due)
    rang = decode(message.topic, message.value, list(message.headers))
    assert isinstance(rang.event, ReminderDue)
    [t] = facts_of(rang, why, nothing_posted)
    assert (t.subject_id, t.fact) == ("d1", core.TimerRang(due))
    late = due + timedelta(hours=3)  # when the scheduler published it: the record's timestamp
    [t] = facts_of(rang, why, nothing_posted, late)
    assert t.fact == core.TimerRang(due, late)
    assert roundtrip([t]) == [t.fact]


def test_a_timer_and_a_reminders_notification_are_the_same_whenever_asked() -> None:
    due = T0 + timedelta(hours=24)
    first_id, first = timer("m1", "150102", due)
    again_id, again = timer("m1", "150102", due)
    assert (first_id, first) == (again_id, again)
    assert first.topic == "market.reminders"
    assert timer("m1", "150102", due + timedelta(seconds=1))[0] != first_id
    [reminder] = core.plan([core.TimerRang(due), _proposal()], due).due[:1]
    a = notification(reminder, "/consumers/reminders/g")
    b = notification(reminder, "/consumers/reminders/g")
    assert a == b
    note = decode(a.topic, a.value, list(a.headers)).event
    assert isinstance(note, NotificationIssued)
    assert note.notification_id == reminder.reminder_id
    assert note.kind == core.PROPOSAL
    assert note.cause_event_id == first_id


def _proposal() -> core.ProposalMade:
    return core.ProposalMade(T0, "m1", "s", "b", T0 + timedelta(hours=48), "150102")
