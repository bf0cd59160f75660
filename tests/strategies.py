"""hypothesis strategies for the exchange's values and events, shared by the unit tests and the
load generator."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import strategies as st

from marketplace.core.auction import Command, DeadlineDue, Job, Open, SetReserve, Submit, Withdraw
from marketplace.core.carriers import Coverage, Depot, JobNeeds, Place
from schemas.common import Location, Material, Money, Quantity, Window
from schemas.listings import OfferPosted, OfferTerms, RequestPosted, RequestTerms

# A few codes from different chapters: textiles, plastics, wood, food, hazardous oils.
CODES = ("040222", "150102", "150103", "170201", "020304", "130205")

ids = st.uuids().map(str)
units = st.sampled_from(("t", "kg", "m3", "pieces"))
quantities = st.builds(Quantity, amount=st.floats(0.01, 1e5), unit=units)
money = st.builds(
    Money, amount=st.floats(-500, 5000).map(lambda x: round(x, 2)), currency=st.just("EUR")
)
# Central Sweden and Bulgaria, where the first associations are.
locations = st.one_of(
    st.builds(
        Location, lat=st.floats(58.5, 61.5), lon=st.floats(13.0, 18.5), region=st.just("SE312")
    ),
    st.builds(
        Location, lat=st.floats(41.3, 44.2), lon=st.floats(22.4, 28.6), region=st.just("BG411")
    ),
)
starts = st.datetimes(
    min_value=datetime(2026, 1, 1),  # noqa: DTZ001 - hypothesis takes naive bounds
    max_value=datetime(2027, 12, 31),  # noqa: DTZ001
    timezones=st.just(UTC),
)
windows = st.builds(
    lambda start, days: Window(start=start, end=start + timedelta(days=days)),
    starts,
    st.integers(1, 120),
)
materials = st.builds(
    Material,
    code=st.sampled_from(CODES),
    description=st.just("test material"),
    form=st.sampled_from(("bales", "loose", "pallets")),
)


@st.composite
def offers(draw: st.DrawFn) -> OfferPosted:
    owner = draw(ids)
    return OfferPosted(
        offer_id=draw(ids),
        owner_id=owner,
        actor_id=owner,
        material=draw(materials),
        location=draw(locations),
        terms=OfferTerms(quantity=draw(quantities), price=draw(money), available=draw(windows)),
    )


@st.composite
def requests(draw: st.DrawFn) -> RequestPosted:
    owner = draw(ids)
    return RequestPosted(
        request_id=draw(ids),
        owner_id=owner,
        actor_id=owner,
        material=draw(materials),
        location=draw(locations),
        terms=RequestTerms(
            quantity=draw(quantities),
            max_price=draw(money),
            wanted=draw(windows),
            max_distance_km=draw(st.floats(1, 1000)),
        ),
    )


# Transport auctions (marketplace/core/auction.py) ----------------------------------------------
# One job near Gävle, four carriers whose coverage may or may not fit it, and a stream of their
# quotes, revisions, withdrawals, the SMEs' reserves and deadline timers, in any order.

AUCTION_T0 = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
AUCTION_DEADLINE = AUCTION_T0 + timedelta(hours=10)
AUCTION_REOPEN = timedelta(hours=6)
AUCTION_CARRIERS = ("c1", "c2", "c3", "c4")
AUCTION_PARTIES = ("seller", "buyer")


def auction_job(reserve: float | None = None, hazardous: bool = False) -> Job:
    return Job(
        job_id="job-1",
        match_id="match-1",
        needs=JobNeeds(
            pickup=Place(60.61, 16.54, "SE312"),
            delivery=Place(60.67, 17.14, "SE313"),
            weight_t=8.0,
            hazardous=hazardous,
        ),
        pickup_start=AUCTION_T0 + timedelta(days=2),
        pickup_end=AUCTION_T0 + timedelta(days=4),
        deadline=AUCTION_DEADLINE,
        currency="EUR",
        reserve=reserve,
        parties=AUCTION_PARTIES,
    )


@st.composite
def carrier_coverages(draw: st.DrawFn) -> Coverage:
    radius = draw(st.sampled_from((10.0, 200.0, 200.0)))  # mostly fitting
    return Coverage(
        depots=(Depot(Place(60.67, 17.14), radius),),
        regions=draw(st.sampled_from(((), ("SE3",)))),
        capacity_t=draw(st.sampled_from((5.0, 12.0, 12.0, 40.0))),
        hazardous_permit=draw(st.booleans()),
        vehicle_types=draw(st.sampled_from((("rigid_truck",), ("rigid_truck", "tipper")))),
    )


@st.composite
def auction_commands(draw: st.DrawFn) -> list[Command]:
    """A job's opening followed by up to 30 commands about it, each with a distinct event id."""
    hazardous = draw(st.booleans())
    reserve = draw(st.one_of(st.none(), st.sampled_from((100.0, 150.0))))
    job = auction_job(reserve, hazardous)
    coverages = {c: draw(carrier_coverages()) for c in AUCTION_CARRIERS}
    # Quote ids: two per carrier, plus one that several carriers use.
    quote_ids = [f"{c}-q{i}" for c in AUCTION_CARRIERS for i in (1, 2)] + ["shared"]
    minutes = st.integers(0, 26 * 60).map(lambda m: AUCTION_T0 + timedelta(minutes=m))
    pickups = st.sampled_from((2, 3, 4, 5)).map(lambda d: AUCTION_T0 + timedelta(days=d))
    commands: list[Command] = [Open("e-open", AUCTION_T0, job)]
    for n in range(draw(st.integers(0, 30))):
        eid = f"e-{n}"
        kind = draw(st.sampled_from(("submit", "submit", "submit", "withdraw", "reserve", "due")))
        carrier = draw(st.sampled_from(AUCTION_CARRIERS))
        if kind == "submit":
            own = [q for q in quote_ids if q.startswith(carrier)] + ["shared"]
            commands.append(
                Submit(
                    event_id=eid,
                    at=draw(minutes),
                    job_id=job.job_id,
                    quote_id=draw(st.sampled_from(own)),
                    carrier_id=carrier,
                    price=draw(st.sampled_from((-5.0, 0.0, 90.0, 120.0, 120.0, 140.0, 200.0))),
                    currency=draw(st.sampled_from(("EUR", "EUR", "EUR", "SEK"))),
                    vehicle=draw(st.sampled_from(("rigid_truck", "tipper", "tanker"))),
                    co2e_kg=draw(st.sampled_from((10.0, 20.0, 20.0))),
                    pickup_at=draw(pickups),
                    # Now and then a quote without a declared coverage.
                    coverage=None if draw(st.integers(0, 19)) == 0 else coverages[carrier],
                )
            )
        elif kind == "withdraw":
            commands.append(
                Withdraw(eid, draw(minutes), job.job_id, draw(st.sampled_from(quote_ids)), carrier)
            )
        elif kind == "reserve":
            price = draw(st.one_of(st.none(), st.sampled_from((80.0, 130.0, 200.0))))
            commands.append(
                SetReserve(
                    event_id=eid,
                    at=draw(minutes),
                    job_id=job.job_id,
                    partner_id=draw(st.sampled_from((*AUCTION_PARTIES, "stranger"))),
                    price=price,
                    currency=None if price is None else draw(st.sampled_from(("EUR", "SEK"))),
                )
            )
        else:
            due = draw(st.sampled_from((AUCTION_DEADLINE, AUCTION_DEADLINE + AUCTION_REOPEN)))
            commands.append(DeadlineDue(eid, job.job_id, due))
    return commands
