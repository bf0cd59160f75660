"""The reminders' pure core (marketplace/core/reminders.py): each rule at and around its
moment, what silences it, and each reminder once."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from marketplace.core import reminders as r
from marketplace.core.book import Listing, Terms
from marketplace.core.geo import Place

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
S, B, C = "seller-1", "buyer-1", "carrier-1"


def proposal(expires_in: timedelta = timedelta(hours=48), at: datetime = T0) -> r.ProposalMade:
    return r.ProposalMade(
        at,
        "m1",
        S,
        B,
        at + expires_in,
        "150102",
        {"amount": 4, "unit": "t"},
        {"amount": 35, "currency": "EUR"},
    )


def sent(plan: r.Plan, at: datetime) -> list[r.Reminded]:
    return [r.Reminded(at, x.reminder_id) for x in plan.due]


def who(plan: r.Plan) -> list[tuple[str, str]]:
    return [(x.kind, x.partner_id) for x in plan.due]


# Proposals ----------------------------------------------------------------------------------------


def test_both_sides_are_reminded_a_day_before_the_proposal_expires_not_a_moment_earlier() -> None:
    facts: list[r.Fact] = [proposal()]
    due_at = T0 + timedelta(hours=24)
    early = r.plan(facts, due_at - timedelta(seconds=1))
    assert early.due == ()
    assert early.wake == (due_at,)
    on_time = r.plan(facts, due_at)
    assert who(on_time) == [(r.PROPOSAL, B), (r.PROPOSAL, S)]
    assert {x.data["your_side"] for x in on_time.due} == {"seller", "buyer"}
    assert on_time.due[0].data["expires_at"] == (T0 + timedelta(hours=48)).isoformat()
    assert on_time.wake == ()


def test_a_side_that_answered_is_not_reminded() -> None:
    facts: list[r.Fact] = [proposal(), r.ProposalAnswered(T0 + timedelta(hours=1), "m1", B)]
    assert who(r.plan(facts, T0 + timedelta(hours=30))) == [(r.PROPOSAL, S)]


def test_a_closed_proposal_reminds_nobody() -> None:
    facts: list[r.Fact] = [proposal(), r.ProposalClosed(T0 + timedelta(hours=2), "m1")]
    plan = r.plan(facts, T0 + timedelta(hours=30))
    assert plan == r.Plan((), ())


def test_a_proposal_living_a_day_or_less_gets_no_reminder_and_none_after_it_expired() -> None:
    short = [proposal(timedelta(hours=24))]
    assert r.plan(short, T0 + timedelta(hours=23)) == r.Plan((), ())
    assert r.plan([proposal(timedelta(hours=24, seconds=1))], T0 + timedelta(seconds=1)).due
    late = [proposal()]
    assert r.plan(late, T0 + timedelta(hours=48)).due == (), "expired: nothing to answer"


def test_a_reminder_is_given_once() -> None:
    facts: list[r.Fact] = [proposal()]
    at = T0 + timedelta(hours=25)
    first = r.plan(facts, at)
    assert len(first.due) == 2
    again = r.plan([*facts, *sent(first, at)], at + timedelta(hours=1))
    assert again == r.Plan((), ())
    # Half sent (one reminder recorded): the other one still is due, and only it.
    half = r.plan([*facts, sent(first, at)[0]], at)
    assert [x.reminder_id for x in half.due] == [first.due[1].reminder_id]


def test_ids_are_the_same_whenever_and_in_whatever_order_they_are_decided() -> None:
    facts: list[r.Fact] = [proposal(), r.ProposalAnswered(T0 + timedelta(hours=1), "m1", "x")]
    a = r.plan(facts, T0 + timedelta(hours=24))
    b = r.plan(list(reversed(facts)), T0 + timedelta(hours=47))
    assert a == b
    assert a.due[0].reminder_id == r.reminder_id(r.PROPOSAL, "m1", "", B)


def test_a_timer_read_before_the_facts_still_counts() -> None:
    """A consumer group reading the log anew may read a timer before the proposal (two topics):
    the timer's time is a fact, and the proposal read after it is decided at that time."""
    due_at = T0 + timedelta(hours=24)
    facts: list[r.Fact] = [r.TimerRang(due_at), proposal()]
    assert who(r.plan(facts, T0)) == [(r.PROPOSAL, B), (r.PROPOSAL, S)]
    assert r.plan([r.TimerRang(due_at - timedelta(seconds=1)), proposal()], T0).due == ()


# Listings -----------------------------------------------------------------------------------------


def listing(kind: str = "offer", ends: datetime = T0 + timedelta(days=60)) -> Listing:
    return Listing(
        id="o1",
        kind="offer" if kind == "offer" else "request",
        owner="owner-1",
        code="150102",
        place=Place(42.7, 23.3),
        terms=Terms(quantity=10, unit="t", price=50, currency="EUR", start=T0, end=ends),
        seq=0,
    )


def test_a_listing_without_a_proposal_is_reminded_after_14_days() -> None:
    facts: list[r.Fact] = [r.ListingPosted(T0, listing())]
    day14 = T0 + timedelta(days=14)
    assert r.plan(facts, day14 - timedelta(microseconds=1)) == r.Plan((), (day14,))
    plan = r.plan(facts, day14)
    assert who(plan) == [(r.LISTING, "owner-1")]
    assert plan.due[0].data["matchable"] is True
    assert "reason" not in plan.due[0].data


def test_the_reminder_says_why_the_matcher_cannot_match_the_listing() -> None:
    why = (r.Reason("unit-not-convertible", "quantities in m3 are matched in tonnes"),)
    facts: list[r.Fact] = [r.ListingPosted(T0, listing(), why)]
    [x] = r.plan(facts, T0 + timedelta(days=15)).due
    assert x.data["reason_codes"] == ["unit-not-convertible"]
    assert x.data["matchable"] is False
    assert "quantities in m3" in x.summary
    # A change that makes it matchable takes the reason away (the 14 days still count).
    fixed = listing().terms
    facts.append(r.ListingChanged(T0 + timedelta(days=3), "o1", fixed, ()))
    [y] = r.plan(facts, T0 + timedelta(days=14)).due
    assert y.data["matchable"] is True
    assert y.reminder_id == x.reminder_id


def test_a_listing_proposed_withdrawn_or_closing_first_is_not_reminded() -> None:
    day15 = T0 + timedelta(days=15)
    posted = r.ListingPosted(T0, listing())
    assert r.plan([posted, r.ListingProposed(T0 + timedelta(days=1), "o1")], day15).due == ()
    assert r.plan([posted, r.ListingClosed(T0 + timedelta(days=1), "o1")], day15).due == ()
    closing = r.ListingPosted(T0, listing(ends=T0 + timedelta(days=14)))
    assert r.plan([closing], day15) == r.Plan((), ())
    still = r.ListingPosted(T0, listing(ends=T0 + timedelta(days=14, seconds=1)))
    assert r.plan([still], day15).due


# Standing agreements ----------------------------------------------------------------------------


def agreement(at: datetime, starts: date, ends: date | None = None) -> r.AgreementMade:
    return r.AgreementMade(at, "m2", S, B, "020304", "month", starts, ends, {"amount": 5})


def test_each_delivery_is_announced_two_days_before_its_window_opens() -> None:
    # Confirmed on 1 Dec for monthly deliveries from January.
    a = agreement(T0, date(2027, 1, 1), date(2027, 3, 1))
    jan = datetime(2027, 1, 1, tzinfo=UTC)
    before = r.plan([a], T0)
    assert before == r.Plan((), (jan - timedelta(days=2),))
    plan = r.plan([a], jan - timedelta(days=2))
    assert who(plan) == [(r.DELIVERY, B), (r.DELIVERY, S)]
    assert plan.due[0].data["period_key"] == "2027-01"
    assert plan.due[0].data["pickup_from"] == jan.isoformat()
    feb = datetime(2027, 2, 1, tzinfo=UTC)
    assert plan.wake == (feb - timedelta(days=2),), "the next one is asked for"
    facts: list[r.Fact] = [a, *sent(plan, jan - timedelta(days=2))]
    second = r.plan(facts, feb - timedelta(days=2))
    assert [x.data["period_key"] for x in second.due] == ["2027-02", "2027-02"]
    # The term ends with February: no March delivery, nothing more to wait for.
    assert second.wake == ()


def test_no_delivery_reminder_too_late_for_two_days_ahead_or_after_the_agreement_ended() -> None:
    # Confirmed on 31 Dec for January: the window opens a day later, no reminder for it.
    late = agreement(datetime(2026, 12, 31, 9, tzinfo=UTC), date(2027, 1, 1))
    plan = r.plan([late], datetime(2026, 12, 31, 9, tzinfo=UTC))
    assert plan.due == ()
    assert plan.wake == (datetime(2027, 1, 30, tzinfo=UTC),)
    # A window that opened is past reminding, even if nobody looked before.
    missed = r.plan([agreement(T0, date(2027, 1, 1))], datetime(2027, 1, 1, 0, 1, tzinfo=UTC))
    assert all(x.data["period_key"] != "2027-01" for x in missed.due)
    ended: list[r.Fact] = [
        agreement(T0, date(2027, 1, 1)),
        r.AgreementStopped(T0 + timedelta(days=3), "m2"),
    ]
    assert r.plan(ended, datetime(2026, 12, 30, tzinfo=UTC)) == r.Plan((), ())


# Feedback -----------------------------------------------------------------------------------------


def test_feedback_missing_a_week_after_delivery_is_asked_for_from_each_silent_party() -> None:
    d = r.Delivered(T0, "m3", "d3", S, B, C, "150102")
    week = T0 + timedelta(days=7)
    assert r.plan([d], week - timedelta(seconds=1)) == r.Plan((), (week,))
    facts: list[r.Fact] = [d, r.FeedbackGiven(T0 + timedelta(days=1), "m3", "d3", B)]
    plan = r.plan(facts, week)
    assert who(plan) == [(r.FEEDBACK, C), (r.FEEDBACK, S)]
    assert {x.subject_id for x in plan.due} == {"d3"}
    assert r.plan([*facts, *sent(plan, week)], week + timedelta(days=30)).due == ()


def test_a_one_off_delivery_without_carrier_and_a_party_on_two_sides() -> None:
    d = r.Delivered(T0, "m4", None, S, S, None, "150102")
    [x] = r.plan([d], T0 + timedelta(days=8)).due
    assert (x.partner_id, x.subject_id, x.data["your_side"]) == (S, "m4", "seller")


# Late timers -----------------------------------------------------------------------------------


def test_a_reminder_more_than_two_days_late_is_not_sent() -> None:
    """A timer the scheduler published days after its moment (it was away, or the reminders
    first run on an exchange with a history): what it would remind of is long past."""
    posted = r.ListingPosted(T0, listing())
    day14 = T0 + timedelta(days=14)
    on_time = r.plan([posted, r.TimerRang(day14, day14 + timedelta(seconds=1))], day14)
    assert who(on_time) == [(r.LISTING, "owner-1")]
    a_day_late = r.plan([posted, r.TimerRang(day14, day14 + timedelta(days=1))], day14)
    assert who(a_day_late) == [(r.LISTING, "owner-1")]
    stale = r.plan([posted, r.TimerRang(day14, day14 + timedelta(days=2, seconds=1))], day14)
    assert stale == r.Plan((), ())


def test_a_late_timer_decides_at_the_time_it_was_published() -> None:
    # Published after the proposal expired: nothing to answer any more.
    due_at = T0 + timedelta(hours=24)
    late = r.TimerRang(due_at, T0 + timedelta(hours=48))
    assert r.plan([proposal(), late], due_at) == r.Plan((), ())


def test_an_old_agreement_read_for_the_first_time_reminds_of_the_coming_delivery_only() -> None:
    """Monthly deliveries since 2025 and a timer published in December 2026: the missed
    months are not reminded of; the next timer is January 2027's."""
    a = agreement(datetime(2025, 1, 10, tzinfo=UTC), date(2025, 2, 1))
    published = datetime(2026, 12, 10, tzinfo=UTC)
    plan = r.plan([a, r.TimerRang(datetime(2025, 1, 30, tzinfo=UTC), published)], published)
    assert plan.due == ()
    assert plan.wake == (datetime(2026, 12, 30, tzinfo=UTC),)
