"""The transport auction's pure core: scenarios for each rule, and properties over random streams
of quotes, revisions, withdrawals, reserves and timers (the award always goes to a valid, on-time
quote with the best rank; no award without one; the same events give the same decisions, also
when the state goes through its JSON form between any two events)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings

from marketplace.core.auction import (
    REASON_CODES,
    Auction,
    AuctionConfig,
    Awarded,
    Command,
    DeadlineDue,
    DeadlineSet,
    Event,
    Failed,
    Open,
    Rejected,
    SetReserve,
    Submit,
    Withdraw,
    step,
    transport_estimate,
)
from marketplace.core.carriers import Coverage, Depot, Place, unfit_reasons
from marketplace.core.economics import TransportModel
from tests.strategies import (
    AUCTION_DEADLINE,
    AUCTION_REOPEN,
    AUCTION_T0,
    auction_commands,
    auction_job,
)

CONFIG = AuctionConfig(reopen_after=AUCTION_REOPEN)
FITS = Coverage(
    depots=(Depot(Place(60.67, 17.14), 200.0),),
    regions=(),
    capacity_t=12.0,
    hazardous_permit=False,
    vehicle_types=("rigid_truck", "tipper"),
)
PICKUP = AUCTION_T0 + timedelta(days=3)


def run(
    commands: list[Command], config: AuctionConfig = CONFIG, through_json: bool = False
) -> tuple[Auction | None, list[Event]]:
    state: Auction | None = None
    events: list[Event] = []
    for c in commands:
        state, out = step(state, c, config)
        events += out
        if through_json and state is not None:
            state = msgspec.json.decode(msgspec.json.encode(state), type=Auction)
    return state, events


def quote(
    n: int,
    carrier: str,
    price: float,
    *,
    qid: str | None = None,
    minutes: int = 60,
    co2e: float = 20.0,
    **kw: object,
) -> Submit:
    fields: dict[str, object] = {
        "event_id": f"e-{n}",
        "at": AUCTION_T0 + timedelta(minutes=minutes),
        "job_id": "job-1",
        "quote_id": qid or f"{carrier}-q",
        "carrier_id": carrier,
        "price": price,
        "currency": "EUR",
        "vehicle": "rigid_truck",
        "co2e_kg": co2e,
        "pickup_at": PICKUP,
        "coverage": FITS,
    }
    fields.update(kw)
    return Submit(**fields)  # type: ignore[arg-type]


def opened(reserve: float | None = None, **job: Any) -> Open:
    return Open("e-open", AUCTION_T0, dataclasses.replace(auction_job(reserve), **job))


def due(n: int, at: datetime = AUCTION_DEADLINE) -> DeadlineDue:
    return DeadlineDue(f"due-{n}", "job-1", at)


def of(kind: type, events: list[Event]) -> list[Event]:
    return [e for e in events if isinstance(e, kind)]


# Scenarios ---------------------------------------------------------------------------------------


def test_three_bid_one_revises_one_withdraws_and_the_lowest_wins() -> None:
    state, events = run(
        [
            opened(),
            quote(1, "a", 150.0),
            quote(2, "b", 120.0),
            quote(3, "c", 110.0),
            quote(4, "a", 100.0),  # a revises below everyone
            Withdraw("e-5", AUCTION_T0 + timedelta(hours=2), "job-1", "c-q", "c"),
            due(1),
        ]
    )
    (award,) = of(Awarded, events)
    assert isinstance(award, Awarded)
    assert (award.quote.carrier_id, award.quote.price) == ("a", 100.0)
    assert award.bidders == ("a", "b", "c")  # every bidder is told, the withdrawn one too
    assert not of(Rejected, events)
    assert state is not None
    assert (state.status, state.winner) == ("awarded", "a-q")
    assert of(DeadlineSet, events) == [DeadlineSet("job-1", AUCTION_DEADLINE)]


def test_ties_go_to_lower_co2e_then_to_the_earlier_arrival() -> None:
    _, events = run(
        [
            opened(),
            quote(1, "a", 100.0, co2e=30.0),
            quote(2, "b", 100.0, co2e=12.0),
            quote(3, "c", 100.0, co2e=12.0),
            due(1),
        ]
    )
    (award,) = of(Awarded, events)
    assert isinstance(award, Awarded)
    assert award.quote.carrier_id == "b"
    # A revision arrives anew: b re-sends the same figures and now comes after c.
    _, events = run(
        [
            opened(),
            quote(1, "b", 100.0, co2e=12.0),
            quote(2, "c", 100.0, co2e=12.0),
            quote(3, "b", 100.0, co2e=12.0),
            due(1),
        ]
    )
    (award,) = of(Awarded, events)
    assert isinstance(award, Awarded)
    assert award.quote.carrier_id == "c"


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"coverage": None}, "no_capabilities"),
        ({"coverage": dataclasses.replace(FITS, depots=(Depot(Place(42.1, 24.7), 150),))}, "unfit"),
        ({"coverage": dataclasses.replace(FITS, capacity_t=5.0)}, "unfit"),
        ({"vehicle": "tanker"}, "vehicle"),
        ({"pickup_at": AUCTION_T0 + timedelta(days=9)}, "pickup_window"),
        ({"currency": "SEK"}, "currency"),
        ({"price": -1.0}, "price"),
        ({"at": AUCTION_DEADLINE}, "late"),
    ],
)
def test_a_quote_that_does_not_fit_is_refused_with_its_reason(
    change: dict[str, Any], code: str
) -> None:
    submit = dataclasses.replace(quote(1, "a", 100.0), **change)
    state, events = run([opened(), submit, due(1)])
    (refusal,) = of(Rejected, events)
    assert isinstance(refusal, Rejected)
    assert (refusal.code, refusal.carrier_id, refusal.submission_id) == (code, "a", "e-1")
    assert refusal.code in REASON_CODES
    assert refusal.reason
    assert not refusal.previous_stands
    assert not of(Awarded, events)
    assert state is not None
    assert state.bidders == ()


def test_hazardous_waste_needs_the_permit() -> None:
    job = Open("e-open", AUCTION_T0, auction_job(None, hazardous=True))
    _, events = run([job, quote(1, "a", 100.0), due(1)])
    (refusal,) = of(Rejected, events)
    assert isinstance(refusal, Rejected)
    assert refusal.code == "unfit"
    assert "permit" in refusal.reason
    permitted = dataclasses.replace(FITS, hazardous_permit=True)
    _, events = run([job, quote(1, "a", 100.0, coverage=permitted), due(1)])
    assert len(of(Awarded, events)) == 1


def test_duplicates_foreign_and_withdrawn_quote_ids_are_refused() -> None:
    _, events = run(
        [
            opened(),
            quote(1, "a", 100.0, qid="qa"),
            quote(2, "a", 90.0, qid="qa-2"),  # a second live quote of a
            quote(3, "b", 80.0, qid="qa"),  # a's quote id
            Withdraw("e-4", AUCTION_T0 + timedelta(hours=1), "job-1", "qa", "b"),
            Withdraw("e-5", AUCTION_T0 + timedelta(hours=1), "job-1", "qa", "a"),
            quote(6, "a", 95.0, qid="qa"),  # revive the withdrawn one
            Withdraw("e-7", AUCTION_T0 + timedelta(hours=1), "job-1", "nope", "a"),
            quote(8, "a", 95.0, qid="qa-3"),  # a new quote after withdrawing is fine
            due(1),
        ]
    )
    codes = [(r.submission_id, r.code) for r in of(Rejected, events) if isinstance(r, Rejected)]
    assert codes == [
        ("e-2", "duplicate"),
        ("e-3", "not_yours"),
        ("e-4", "not_yours"),
        ("e-6", "withdrawn"),
        ("e-7", "unknown_quote"),
    ]
    (award,) = of(Awarded, events)
    assert isinstance(award, Awarded)
    assert award.quote.quote_id == "qa-3"


def test_a_late_revision_or_withdrawal_leaves_the_quote_standing() -> None:
    after = 11 * 60
    _, events = run(
        [
            opened(),
            quote(1, "a", 100.0),
            quote(2, "a", 50.0, minutes=after),
            Withdraw("e-3", AUCTION_T0 + timedelta(minutes=after), "job-1", "a-q", "a"),
            due(1),
            quote(4, "b", 10.0, minutes=after),  # after the award
        ]
    )
    refusals = [r for r in of(Rejected, events) if isinstance(r, Rejected)]
    assert [(r.code, r.action, r.previous_stands) for r in refusals] == [
        ("late", "submission", True),
        ("late", "withdrawal", True),
        ("closed", "submission", False),
    ]
    (award,) = of(Awarded, events)
    assert isinstance(award, Awarded)
    assert award.quote.price == 100.0


def test_no_bids_fails_reopens_once_then_fails_for_good() -> None:
    reopened = AUCTION_DEADLINE + AUCTION_REOPEN
    state, events = run([opened(), due(1), due(2), due(3, reopened), due(4, reopened)])
    failures = [e for e in of(Failed, events) if isinstance(e, Failed)]
    assert [(f.reopened_until, f.bidders) for f in failures] == [(reopened, ()), (None, ())]
    assert "no quotes" in failures[0].reason
    assert of(DeadlineSet, events) == [
        DeadlineSet("job-1", AUCTION_DEADLINE),
        DeadlineSet("job-1", reopened),
    ]
    assert state is not None
    assert state.status == "failed"


def test_a_reopened_auction_takes_quotes_until_the_new_deadline() -> None:
    reopened = AUCTION_DEADLINE + AUCTION_REOPEN
    _, events = run([opened(), due(1), quote(2, "a", 100.0, minutes=12 * 60), due(3, reopened)])
    (award,) = of(Awarded, events)
    assert isinstance(award, Awarded)
    assert award.quote.carrier_id == "a"


def test_reserve_is_the_lowest_cap_of_the_job_and_the_parties() -> None:
    def reserve(n: int, who: str, price: float | None, currency: str = "EUR") -> SetReserve:
        return SetReserve(f"r-{n}", AUCTION_T0, "job-1", who, price, currency)

    commands: list[Command] = [
        opened(reserve=150.0),
        quote(1, "a", 120.0),
        reserve(2, "seller", 110.0),
        reserve(3, "stranger", 1.0),  # not a party: no effect
        reserve(4, "buyer", 5.0, "SEK"),  # wrong currency: no effect
        due(5),
    ]
    state, events = run(commands)
    (failure, _) = of(Failed, events) + of(DeadlineSet, events)[1:]
    assert isinstance(failure, Failed)
    assert "reserve price of 110 EUR" in failure.reason
    assert failure.bidders == ("a",)
    assert state is not None
    assert state.reserve() == 110.0
    # The seller lifts its cap: the job's own 150 applies and a wins at the new deadline.
    lifted = [*commands[:-1], reserve(6, "seller", None), due(5)]
    _, events = run(lifted)
    assert len(of(Awarded, events)) == 1


def test_early_close_decides_when_enough_quotes_are_in() -> None:
    config = AuctionConfig(reopen_after=AUCTION_REOPEN, early_close_quotes=2)
    _, events = run(
        [opened(), quote(1, "a", 120.0), quote(2, "b", 110.0), quote(3, "c", 50.0), due(4)],
        config,
    )
    (award,) = of(Awarded, events)
    assert isinstance(award, Awarded)
    assert award.quote.carrier_id == "b"
    assert award.at == AUCTION_T0 + timedelta(minutes=60)
    assert [r.code for r in of(Rejected, events) if isinstance(r, Rejected)] == ["closed"]


def test_quotes_for_an_unknown_job_are_refused_and_repeats_change_nothing() -> None:
    state, events = run([quote(1, "a", 100.0)])
    assert state is None
    (refusal,) = of(Rejected, events)
    assert isinstance(refusal, Rejected)
    assert refusal.code == "unknown_job"
    first = quote(1, "a", 100.0)
    once, _ = run([opened(), first, opened()])
    twice, events = run([opened(), first, first, due(1), due(1)])
    assert once is not None
    assert twice is not None
    assert once.quotes == twice.quotes
    assert len(of(Awarded, events)) == 1


def test_without_a_job_currency_the_first_quote_sets_it() -> None:
    _, events = run(
        [opened(currency=None), quote(1, "a", 100.0, currency="SEK"), quote(2, "b", 1.0), due(3)]
    )
    assert [r.code for r in of(Rejected, events) if isinstance(r, Rejected)] == ["currency"]
    (award,) = of(Awarded, events)
    assert isinstance(award, Awarded)
    assert award.quote.currency == "SEK"


def test_transport_estimate_for_a_job() -> None:
    job = auction_job()
    model = TransportModel(cost_per_tkm={"EUR": 0.12}, kgco2e_per_tkm=0.1)
    estimate = transport_estimate(job.needs, model, "EUR")
    assert estimate is not None
    km = job.needs.pickup.km_to(job.needs.delivery) * 1.3
    assert estimate == (round(km * 8 * 0.12, 2), round(km * 8 * 0.1, 3))
    assert transport_estimate(job.needs, model, "SEK") is None


# Properties --------------------------------------------------------------------------------------


def _check(commands: list[Command], events: list[Event]) -> None:
    """Follows the stream beside the core and checks each decision against the rules."""
    job = commands[0].job  # type: ignore[union-attr]
    refused = {r.submission_id for r in events if isinstance(r, Rejected)}
    deadline, decided = job.deadline, False
    live: dict[str, Submit] = {}
    caps: dict[str, float] = {}
    by_cause = _events_by_cause(commands)
    for c in commands:
        out = by_cause[id(c)]
        if isinstance(c, Submit):
            if c.event_id not in refused:
                # Accepted: it fits and is on time.
                assert not decided
                assert c.at < deadline
                assert c.coverage is not None
                assert not unfit_reasons(job.needs, c.coverage)
                assert c.vehicle in c.coverage.vehicle_types
                assert job.pickup_start <= c.pickup_at <= job.pickup_end
                assert c.currency == job.currency
                assert c.price >= 0
                live[c.quote_id] = c
            else:
                (refusal,) = (e for e in out if isinstance(e, Rejected))
                _justified(refusal, c, job, deadline, decided)
        elif isinstance(c, Withdraw) and c.event_id not in refused:
            assert not decided
            assert c.at < deadline
            assert live.pop(c.quote_id).carrier_id == c.carrier_id
        elif (
            isinstance(c, SetReserve)
            and not decided
            and c.at < deadline
            and c.partner_id in job.parties
            and (c.price is None or c.currency == job.currency)
        ):
            caps.pop(c.partner_id, None)
            if c.price is not None:
                caps[c.partner_id] = c.price
        for e in out:
            limits = [*caps.values(), *([job.reserve] if job.reserve is not None else [])]
            cap = min(limits) if limits else None
            if isinstance(e, Awarded):
                assert not decided
                won = live[e.quote.quote_id]
                assert (won.carrier_id, won.price, won.co2e_kg) == (
                    e.quote.carrier_id,
                    e.quote.price,
                    e.quote.co2e_kg,
                )
                assert cap is None or e.quote.price <= cap
                # Nothing live ranks better.
                for q in live.values():
                    assert (q.price, q.co2e_kg) >= (e.quote.price, e.quote.co2e_kg)
                decided = True
            elif isinstance(e, Failed):
                assert not decided
                # No award without a valid quote: nothing live is within the reserve.
                assert all(cap is not None and q.price > cap for q in live.values())
                if e.reopened_until is None:
                    decided = True
                else:
                    assert e.reopened_until == deadline + AUCTION_REOPEN
                    deadline = e.reopened_until


def _justified(r: Rejected, c: Submit, job: object, deadline: datetime, decided: bool) -> None:
    assert r.code in REASON_CODES
    assert r.quote_id == c.quote_id
    assert r.carrier_id == c.carrier_id
    needs = job.needs  # type: ignore[attr-defined]
    checks: dict[str, Callable[[], bool]] = {
        "closed": lambda: decided,
        "late": lambda: c.at >= deadline,
        "no_capabilities": lambda: c.coverage is None,
        "unfit": lambda: c.coverage is not None and bool(unfit_reasons(needs, c.coverage)),
        "vehicle": lambda: c.coverage is not None and c.vehicle not in c.coverage.vehicle_types,
        "pickup_window": lambda: (
            not (
                job.pickup_start <= c.pickup_at <= job.pickup_end  # type: ignore[attr-defined]
            )
        ),
        "currency": lambda: c.currency != job.currency,  # type: ignore[attr-defined]
        "price": lambda: c.price < 0,
    }
    if r.code in checks:
        assert checks[r.code](), (r.code, c)


def _events_by_cause(commands: list[Command]) -> dict[int, list[Event]]:
    state: Auction | None = None
    out: dict[int, list[Event]] = {}
    for c in commands:
        state, events = step(state, c, CONFIG)
        out[id(c)] = events
    return out


@settings(max_examples=300, deadline=None)
@given(auction_commands())
def test_every_decision_follows_the_rules(commands: list[Command]) -> None:
    _, events = run(commands)
    _check(commands, events)
    assert len(of(Awarded, events)) <= 1
    assert len([e for e in of(Failed, events) if isinstance(e, Failed)]) <= 2


@settings(max_examples=200, deadline=None)
@given(auction_commands())
def test_same_events_same_decisions_also_through_the_stored_state(commands: list[Command]) -> None:
    first = run(commands)
    assert run(commands) == first
    assert run(commands, through_json=True) == first


@settings(max_examples=200, deadline=None)
@given(auction_commands())
def test_an_award_only_with_a_valid_quote(commands: list[Command]) -> None:
    # Strip every quote that could count: no award can come out.
    hopeless = [
        dataclasses.replace(c, vehicle="tanker") if isinstance(c, Submit) else c for c in commands
    ]
    _, events = run(hopeless)
    assert not of(Awarded, events)
    assert all(e.bidders == () for e in of(Failed, events) if isinstance(e, Failed))
