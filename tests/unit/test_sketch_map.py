"""The proposal map's pure drawing logic (#19): rounding the other side's place, the
projection into the box, the graticule and the scale bar; and what the SME page hands its
template (producers/web/sme.py proposal_map)."""

from __future__ import annotations

import orjson
import pytest

from marketplace.core.geo import distance_km
from marketplace.core.sketch_map import GRID_DEG, approximate, sketch
from producers.web.sme import proposal_map


def test_approximate_rounds_to_the_grid_and_its_circle_holds_the_true_place() -> None:
    place = approximate(61.3042, 17.0611)  # Söderhamn
    assert (place.lat, place.lon) == (61.5, 17.0)
    assert distance_km(61.3042, 17.0611, place.lat, place.lon) <= place.radius_km
    # The circle is the cell's farthest corner away, and no wider than that (rounded up).
    assert 27 < place.radius_km <= 32


@pytest.mark.parametrize(
    ("lat", "lon"),
    [(42.1354, 24.7453), (60.8553, 15.0), (66.2499, 15.2499), (-33.9, 151.2), (0.0, 0.0)],
)
def test_every_place_is_inside_its_approximate_circle(lat: float, lon: float) -> None:
    place = approximate(lat, lon)
    assert abs(place.lat - lat) <= GRID_DEG / 2 + 1e-9
    assert abs(place.lon - lon) <= GRID_DEG / 2 + 1e-9
    assert distance_km(lat, lon, place.lat, place.lon) <= place.radius_km


def test_places_in_one_cell_give_the_same_approximation() -> None:
    assert approximate(42.14, 24.80) == approximate(41.80, 24.99)
    assert approximate(42.14, 24.80) != approximate(42.26, 24.80)


def test_approximate_refuses_a_step_that_is_not_positive() -> None:
    with pytest.raises(ValueError, match="step"):
        approximate(42.0, 24.0, step=0)


def test_both_places_and_the_whole_circle_are_inside_the_box() -> None:
    own = (61.3042, 17.0611)
    other = approximate(60.6749, 17.1413)  # Gävle, rounded
    s = sketch(*own, other.lat, other.lon, other.radius_km, width=320, height=200)
    for p in (s.own, s.other):
        assert 0 <= p.x <= 320
        assert 0 <= p.y <= 200
    assert s.other_radius > 0
    assert s.other.x - s.other_radius >= 0
    assert s.other.x + s.other_radius <= 320
    assert s.other.y - s.other_radius >= 0
    assert s.other.y + s.other_radius <= 200


def test_north_is_up_and_east_is_right() -> None:
    s = sketch(42.0, 24.0, 43.0, 25.0)
    assert s.other.y < s.own.y  # the other place is further north: higher on the map
    assert s.other.x > s.own.x  # and further east: to the right


def test_the_projection_keeps_distances_in_proportion() -> None:
    """At the same scale along both axes, the drawn distance over the scale bar's length is
    the great-circle distance over the bar's km, within a few percent."""
    s = sketch(59.33, 18.06, 59.86, 17.64)  # Stockholm to Uppsala, about 64 km
    drawn = ((s.own.x - s.other.x) ** 2 + (s.own.y - s.other.y) ** 2) ** 0.5
    km = drawn / s.scale_length * s.scale_km
    assert km == pytest.approx(distance_km(59.33, 18.06, 59.86, 17.64), rel=0.03)


def test_two_places_a_street_apart_are_still_drawn_apart_in_a_readable_area() -> None:
    s = sketch(42.1354, 24.7453, 42.1360, 24.7460)
    # The area is at least MIN_SPAN_KM: the scale bar is a few km, not metres.
    assert s.scale_km >= 5
    assert abs(s.own.x - s.other.x) < 5
    assert abs(s.own.y - s.other.y) < 5


def test_the_graticule_and_scale_bar_fit_in_the_box() -> None:
    s = sketch(42.1354, 24.7453, 59.33, 18.06)  # Plovdiv to Stockholm
    assert len(s.meridians) >= 2
    assert len(s.parallels) >= 2
    assert all(0 <= x <= s.width for x in s.meridians)
    assert all(0 <= y <= s.height for y in s.parallels)
    assert 0 < s.scale_length <= s.width / 4 + 0.1
    assert s.scale_km in (200, 500)


def test_sketch_refuses_a_box_without_area_or_a_negative_radius() -> None:
    with pytest.raises(ValueError, match="width"):
        sketch(42.0, 24.0, 43.0, 25.0, width=0)
    with pytest.raises(ValueError, match="radius"):
        sketch(42.0, 24.0, 43.0, 25.0, other_radius_km=-1)


def test_an_unconfirmed_proposals_map_holds_nothing_of_the_exact_place() -> None:
    """What sme.proposal_map hands the template: before confirmation, the rounded place's
    drawing only; the exact coordinates appear nowhere in it."""
    own = orjson.dumps({"lat": 61.3042, "lon": 17.0611, "region": "SE313"}).decode()
    other = orjson.dumps({"lat": 60.6749, "lon": 17.1413, "region": "SE313"}).decode()
    shown = proposal_map(own, other, confirmed=False, distance_km=70.4)
    assert shown is not None
    assert not shown["exact"]
    assert (shown["lat"], shown["lon"]) == ("", "")
    assert shown["distance_km"] == "70"
    area = approximate(60.6749, 17.1413)
    assert shown["sketch"] == sketch(61.3042, 17.0611, area.lat, area.lon, area.radius_km)
    assert shown["radius_km"] == f"{area.radius_km:.0f}"
    for exact in ("60.6749", "17.1413", "60.675", "17.141"):
        assert exact not in repr(shown)
    confirmed = proposal_map(own, other, confirmed=True, distance_km=70.4)
    assert confirmed is not None
    assert (confirmed["lat"], confirmed["lon"]) == ("60.6749", "17.1413")
    assert confirmed["sketch"] == sketch(61.3042, 17.0611, 60.6749, 17.1413)
    assert confirmed["sketch"].other_radius == 0


def test_a_proposal_without_a_known_place_has_no_map() -> None:
    place = orjson.dumps({"lat": 61.3, "lon": 17.0}).decode()
    assert proposal_map(None, place, confirmed=False, distance_km=1) is None
    assert proposal_map(place, None, confirmed=True, distance_km=1) is None
