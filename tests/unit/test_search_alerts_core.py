"""The pure decision of the saved searches' alerts (marketplace/core/search_alerts.py): which
people are told of a listing, once each, never its own organisation, never its owner named."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from marketplace.core import notifications, search_alerts
from marketplace.core.search_alerts import Listing, Search, alert_id, fits, plan
from marketplace.core.units import Unit

AT = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
OWNER = "owner-org"
BUYER = "buyer-org"


def listing(**changes: object) -> Listing:
    base: dict[str, object] = {
        "listing_id": "L1",
        "kind": "offer",
        "owner_id": OWNER,
        "material_code": "150102",
        "title": "plastic packaging",
        "region": "SE313",
        "quantity": {"amount": 4.0, "unit": "t"},
        "window": {"start": "2026-12-01T00:00:00Z", "end": "2026-12-31T00:00:00Z"},
    }
    return Listing(**(base | changes))  # type: ignore[arg-type]


def search(person: str = "p1", partner: str = BUYER, **changes: str) -> Search:
    base = {"search_id": f"s-{person}", "kind": "", "q": "", "region": ""}
    return Search(
        person_id=person, partner_id=partner, since=AT - timedelta(days=1), **(base | changes)
    )


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ({}, True),
        ({"kind": "offer"}, True),
        ({"kind": "request"}, False),
        ({"q": "1501"}, True),
        ({"q": "15 01 02"}, True),
        ({"q": "1502"}, False),
        ({"q": "Plastic"}, True),
        ({"q": "packaging plastic"}, True),
        ({"q": "plastic glass"}, False),
        ({"region": "se3"}, True),
        ({"region": "SE313"}, True),
        ({"region": "SE32"}, False),
        ({"kind": "offer", "q": "plastic", "region": "SE"}, True),
        ({"kind": "offer", "q": "plastic", "region": "BG"}, False),
    ],
)
def test_a_search_fits_as_the_market_page_finds(filters: dict[str, str], expected: bool) -> None:
    assert fits(listing(), search(**filters)) is expected


def test_a_region_filter_never_fits_a_listing_without_a_region() -> None:
    assert not fits(listing(region=""), search(region="SE"))
    assert fits(listing(region=""), search())


def test_one_alert_per_person_never_the_owners_organisation() -> None:
    searches = [
        search("p1", q="plastic", search_id="b"),
        search("p1", q="1501", search_id="a"),  # the same person: one alert, the first search
        search("p2", kind="request"),  # does not fit
        search("p3", partner=OWNER),  # the listing's own organisation
        search("p4", partner="third-org", region="SE3"),
    ]
    alerts = plan(listing(), AT, searches)
    assert [(a.person_id, a.partner_id, a.search_id) for a in alerts] == [
        ("p1", BUYER, "a"),
        ("p4", "third-org", "s-p4"),
    ]
    for a in alerts:
        assert a.notification_id == alert_id("L1", a.person_id)
        assert a.listing_id == "L1"
        assert OWNER not in a.summary
        assert OWNER not in str(a.data)
        assert a.data["material_code"] == "150102"
        assert a.data["quantity"] == {"amount": 4.0, "unit": "t"}
        assert a.data["region"] == "SE313"
    assert alerts[0].summary == "New offer on the market: 4 t of 150102 in SE313"


def test_people_already_told_are_not_told_again() -> None:
    searches = [search("p1"), search("p2")]
    assert [a.person_id for a in plan(listing(), AT, searches, told={"p1"})] == ["p2"]
    assert plan(listing(), AT, searches, told={"p1", "p2"}) == []


def test_a_withdrawn_listing_alerts_nobody() -> None:
    assert plan(listing(open=False), AT, [search("p1")]) == []


def test_a_listing_fully_taken_by_confirmed_deals_alerts_nobody() -> None:
    four = search_alerts.base_amount(4.0, "t")
    assert four == 4.0
    assert plan(listing(base_quantity=four, taken=4.0), AT, [search("p1")]) == []
    assert plan(listing(base_quantity=four, taken=4.5), AT, [search("p1")]) == []
    # Partly taken: still open; and a listing whose quantity is not known to the consumer (one
    # posted before its log began) is open whatever was taken.
    partly = plan(listing(base_quantity=four, taken=3.0), AT, [search("p1")])
    assert [a.person_id for a in partly] == ["p1"]
    assert [a.person_id for a in plan(listing(taken=99.0), AT, [search("p1")])] == ["p1"]


@pytest.mark.parametrize(
    ("amount", "unit", "density", "piece", "expected"),
    [
        (2500.0, "kg", None, None, 2.5),
        (10.0, "m3", 0.3, None, 3.0),
        (10.0, "m3", None, None, 10.0),  # no density: the matcher counts in m3, so do the alerts
        (40.0, "pieces", None, 0.25, 10.0),
        (40.0, "pieces", None, None, 40.0),
    ],
)
def test_the_quantity_is_counted_in_the_matchers_base_unit(
    amount: float, unit: Unit, density: float | None, piece: float | None, expected: float
) -> None:
    found = search_alerts.base_amount(
        amount, unit, density_t_per_m3=density, mass_per_piece_t=piece
    )
    assert found == pytest.approx(expected)


def test_a_recurring_listing_is_never_taken_for_good() -> None:
    assert search_alerts.base_amount(4.0, "t", recurring=True) is None
    recurring = listing(base_quantity=None, taken=400.0)
    assert not search_alerts.taken(recurring)
    assert search_alerts.is_open(recurring)
    assert not search_alerts.is_open(listing(open=False))


def test_a_change_that_makes_the_listing_fit_alerts_then() -> None:
    wanted = [search("p1", q="wood")]
    assert plan(listing(), AT, wanted) == []
    changed = listing(material_code="150103", title="wooden packaging")
    [alert] = plan(changed, AT, wanted)
    assert alert.data["material_code"] == "150103"
    assert alert.summary == "New offer on the market: 4 t of 150103 in SE313"


def test_the_id_derives_from_the_listing_and_the_person_only() -> None:
    a = alert_id("L1", "p1")
    assert uuid.UUID(a).version == 5
    assert a == alert_id("L1", "p1")
    assert len({a, alert_id("L1", "p2"), alert_id("L2", "p1")}) == 3
    by_request = plan(listing(kind="request"), AT, [search("p1")])
    by_offer = plan(listing(), AT, [search("p1", q="plastic")])
    assert by_request[0].notification_id == by_offer[0].notification_id
    assert by_request[0].summary.startswith("New request on the market")


def test_what_came_before_the_search_was_marked_is_not_sent() -> None:
    marked = Search("s1", "p1", BUYER, "", "", "", since=AT)
    assert plan(listing(), AT - timedelta(seconds=1), [marked]) == []
    assert [a.person_id for a in plan(listing(), AT, [marked])] == ["p1"]


def test_the_kind_is_a_notification_kind() -> None:
    assert search_alerts.KIND in notifications.KINDS
