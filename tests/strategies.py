"""hypothesis strategies for the exchange's values and events, shared by the unit tests and the
load generator."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import strategies as st

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
