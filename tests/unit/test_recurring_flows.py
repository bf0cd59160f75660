"""Recurring flows in the matching core: standing agreements between recurring listings, one-off
lots against a recurring flow, each period's delivery, and the end of an agreement."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from marketplace.core import periods
from marketplace.core.book import EPS, Book, Flow
from marketplace.core.matching import (
    AgreementOver,
    Answer,
    Command,
    Confirmed,
    DeliveryDue,
    Event,
    PeriodDue,
    Post,
    Proposed,
    Withdraw,
    step,
)
from tests.unit.test_matching import CONFIG, T0, offer, request

PERIODS: tuple[periods.Period, ...] = ("week", "month", "quarter", "year")


def recurring(post: Post, period: periods.Period, starts: date, ends: date | None = None) -> Post:
    return replace(post, terms=replace(post.terms, flow=Flow(period, starts, ends)))


def run(book: Book, *commands: Command) -> list[Event]:
    out: list[Event] = []
    for c in commands:
        book, events = step(book, c, CONFIG)
        out.extend(events)
    return out


def proposals(events: list[Event]) -> list[Proposed]:
    return [e for e in events if isinstance(e, Proposed)]


def accept_both(p: Proposed, at: datetime = T0) -> list[Command]:
    m = p.proposal
    return [
        Answer(f"a-{m.match_id}-s", at, m.match_id, m.seller, True),
        Answer(f"a-{m.match_id}-b", at, m.match_id, m.buyer, True),
    ]


# Periods -----------------------------------------------------------------------------------------


@given(st.dates(min_value=date(2000, 1, 1), max_value=date(2100, 12, 1)), st.sampled_from(PERIODS))
def test_a_period_key_names_its_start_and_the_next_period_follows(
    day: date, period: periods.Period
) -> None:
    start = periods.start_of(period, day)
    key = periods.key_of(period, day)
    assert start <= day < periods.next_start(period, day)
    assert periods.start_of_key(period, key) == start
    assert periods.start_of_named(period, key) == start
    assert periods.key_of(period, periods.next_start(period, day)) > key  # keys sort by time


@pytest.mark.parametrize(
    ("period", "key"),
    [
        ("week", "2031-03"),
        ("month", "2031-W09"),
        ("year", "2031-Q1"),
        ("week", "2027-W53"),
        ("month", "2031-13"),
        ("quarter", "2031-Q5"),
        ("month", "2031-3"),
    ],
)
def test_a_key_of_another_period_names_no_period(period: periods.Period, key: str) -> None:
    assert periods.start_of_named(period, key) is None


@given(st.dates(min_value=date(2000, 1, 1), max_value=date(2100, 12, 1)), st.sampled_from(PERIODS))
def test_every_coarser_period_holds_at_least_min_count_finer_ones(
    day: date, coarse: periods.Period
) -> None:
    first = periods.start_of(coarse, day)
    days = (periods.next_start(coarse, day) - first).days
    # Weeks do not align with months: count days. Months, quarters and years nest exactly.
    assert days >= 7 * periods.min_count("week", coarse)
    for fine in PERIODS[1 : PERIODS.index(coarse) + 1]:
        starts, d = 0, first
        while d < periods.next_start(coarse, day):
            starts += 1
            d = periods.next_start(fine, d)
        assert starts == periods.min_count(fine, coarse)


# Standing agreements -------------------------------------------------------------------------


def test_two_recurring_listings_get_a_standing_agreement_in_the_coarser_period() -> None:
    book = Book()
    events = run(
        book,
        recurring(offer("o1", "seller", 2, 10), "week", date(2026, 12, 1)),
        recurring(request("r1", "buyer", 10, 200), "month", date(2026, 12, 1)),
    )
    (p,) = proposals(events)
    a = p.proposal.agreement
    assert a == Flow("month", date(2026, 12, 1), None)
    # A month holds at least 4 weeks: 4 x 2 t; the buyer wants 10 t a month.
    assert abs(p.proposal.quantity - 8) < EPS
    assert abs(book.listings["o1"].reserved - 2) < EPS  # the whole weekly flow, per week
    assert abs(book.listings["r1"].reserved - 8) < EPS
    assert any(r.factor == "agreement_t_per_period" for r in p.reasons)


def test_confirmed_agreement_schedules_each_period_then_ends_with_its_term() -> None:
    book = Book()
    events = run(
        book,
        recurring(offer("o1", "seller", 3, 10), "month", date(2026, 12, 10), date(2027, 2, 1)),
        recurring(request("r1", "buyer", 3, 200), "month", date(2026, 12, 1)),
    )
    (p,) = proposals(events)
    confirmed = [e for e in run(book, *accept_both(p)) if isinstance(e, Confirmed)]
    assert len(confirmed) == 1
    assert confirmed[0].first_period is not None
    key, due = confirmed[0].first_period
    # Confirmed on 1 December; the flow starts on the 10th: the first timer is then.
    assert key == "2026-12"
    assert due == datetime(2026, 12, 10, tzinfo=UTC)
    assert "o1" in book.listings
    assert "r1" in book.listings

    first = run(book, PeriodDue("t1", due, p.proposal.match_id, key))
    (d1,) = [e for e in first if isinstance(e, DeliveryDue)]
    assert d1.window == (datetime(2026, 12, 10, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC))
    assert d1.next_period == ("2027-01", datetime(2027, 1, 1, tzinfo=UTC))
    # The same period again (a repeated timer) schedules nothing more.
    assert run(book, PeriodDue("t1b", due, p.proposal.match_id, key)) == []

    second = run(book, PeriodDue("t2", d1.next_period[1], p.proposal.match_id, "2027-01"))
    (d2,) = [e for e in second if isinstance(e, DeliveryDue)]
    assert d2.window == (datetime(2027, 1, 1, tzinfo=UTC), datetime(2027, 2, 1, tzinfo=UTC))

    over = run(book, PeriodDue("t3", d2.next_period[1], p.proposal.match_id, "2027-02"))
    assert [e for e in over if isinstance(e, AgreementOver)] == [
        AgreementOver(p.proposal.match_id, "150102", "term_over", "2027-01")
    ]
    assert p.proposal.match_id not in book.agreements
    assert book.listings["r1"].confirmed == 0  # the buyer's monthly need is open again
    assert run(book, PeriodDue("t4", d2.next_period[1], p.proposal.match_id, "2027-03")) == []


def test_a_period_timer_whose_key_is_not_the_agreements_period_is_ignored() -> None:
    """A timer from elsewhere (found by the one-book sweep: the same match id named another
    pair's weekly agreement) is ignored, as an early deadline timer is: never a failure."""
    book = Book()
    events = run(
        book,
        recurring(offer("o1", "seller", 3, 10), "month", date(2026, 12, 1)),
        recurring(request("r1", "buyer", 3, 200), "month", date(2026, 12, 1)),
    )
    (p,) = proposals(events)
    run(book, *accept_both(p))
    due = datetime(2026, 12, 1, tzinfo=UTC)
    assert run(book, PeriodDue("w1", due, p.proposal.match_id, "2026-W49")) == []
    assert book.agreements[p.proposal.match_id].last_key is None
    (d1,) = run(book, PeriodDue("m1", due, p.proposal.match_id, "2026-12"))
    assert isinstance(d1, DeliveryDue)


def test_withdrawing_a_side_ends_the_agreement_and_frees_the_other_for_someone_else() -> None:
    book = Book()
    events = run(
        book,
        recurring(offer("o1", "seller", 5, 10), "week", date(2026, 12, 1)),
        recurring(request("r1", "buyer", 5, 200), "week", date(2026, 12, 1)),
    )
    (p,) = proposals(events)
    run(book, *accept_both(p))
    # A second seller arrives: nothing is left for it while the agreement runs.
    assert (
        proposals(run(book, recurring(offer("o2", "other", 5, 10), "week", date(2026, 12, 1))))
        == []
    )
    later = run(book, Withdraw("w1", T0, "o1", "offer", "seller"))
    ended = [e for e in later if isinstance(e, AgreementOver)]
    assert [e.reason for e in ended] == ["offer_withdrawn"]
    assert book.agreements == {}
    # The buyer's weekly need is open again, and goes to the second seller.
    (again,) = proposals(later)
    assert (again.proposal.offer_id, again.proposal.request_id) == ("o2", "r1")
    assert again.proposal.agreement == Flow("week", date(2026, 12, 1), None)


def test_a_one_off_lot_takes_from_one_period_of_a_recurring_flow() -> None:
    book = Book()
    run(book, recurring(offer("o1", "seller", 2, 10), "week", date(2026, 11, 30)))
    first = proposals(run(book, request("r1", "b1", 1.5, 200)))
    assert [round(p.proposal.quantity, 6) for p in first] == [1.5]
    assert first[0].proposal.offer_period == "2026-W49"
    assert first[0].proposal.agreement is None
    # Another lot in the same week gets only what is left of that week's 2 t.
    second = proposals(run(book, request("r2", "b2", 1.5, 200)))
    assert [round(p.proposal.quantity, 6) for p in second] == [0.5]
    # A lot wanted a week later gets a full week's flow.
    later = request("r3", "b3", 1.5, 200)
    later = replace(
        later,
        terms=replace(later.terms, start=T0 + timedelta(days=7), end=T0 + timedelta(days=20)),
    )
    third = proposals(run(book, later))
    assert third[0].proposal.offer_period == "2026-W50"
    assert abs(third[0].proposal.quantity - 1.5) < EPS
    # Confirming a one-off deal keeps it in its period, not in the standing commitments.
    run(book, *accept_both(first[0]))
    assert book.listings["o1"].confirmed == 0
    assert abs(book.listings["o1"].period_used["2026-W49"] - 2.0) < EPS


def test_a_lot_before_the_flow_starts_is_not_proposed() -> None:
    book = Book()
    run(book, recurring(offer("o1", "seller", 2, 10), "week", date(2027, 3, 1)))
    assert proposals(run(book, request("r1", "b1", 1.5, 200))) == []


# Property: an agreement never exceeds either side -------------------------------------------


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["offer", "request"]),
            st.sampled_from(PERIODS),
            st.floats(min_value=0.5, max_value=40),
        ),
        min_size=2,
        max_size=10,
    )
)
def test_standing_agreements_never_exceed_either_side_per_period(
    listings: list[tuple[str, periods.Period, float]],
) -> None:
    book = Book()
    posts: list[Command] = []
    for k, (kind, period, qty) in enumerate(listings):
        base = (
            offer(f"l{k}", f"p{k}", qty, 10)
            if kind == "offer"
            else request(f"l{k}", f"p{k}", qty, 200)
        )
        posts.append(recurring(base, period, date(2026, 12, 1)))
    events = run(book, *posts)
    for p in proposals(events):
        run(book, *accept_both(p))
    for listing in book.listings.values():
        flow = listing.terms.flow
        assert flow is not None
        # What each side's agreements take, in its own period, stays within its quantity.
        taken = 0.0
        for a in book.agreements.values():
            m = a.proposal
            if listing.id in (m.offer_id, m.request_id):
                assert m.agreement is not None
                n = periods.min_count(flow.period, m.agreement.period)
                share, _ = m.take(listing.kind)
                assert abs(share * n - m.quantity) < 1e-6
                taken += share
        assert taken <= listing.terms.quantity + 1e-6
        assert abs(listing.confirmed - taken) < 1e-6
