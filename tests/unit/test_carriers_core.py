from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from marketplace.core.carriers import Coverage, Depot, JobNeeds, Place, unfit_reasons
from marketplace.core.geo import distance_km, in_region

GAVLE = Place(60.67, 17.14, "SE313")
SANDVIKEN = Place(60.61, 16.54, "SE312")
SOFIA = Place(42.70, 23.32, "BG411")


def test_distances_match_known_figures() -> None:
    assert distance_km(GAVLE.lat, GAVLE.lon, SANDVIKEN.lat, SANDVIKEN.lon) == pytest.approx(
        33.5, abs=1
    )
    # Gävle to Sofia is about 2,080 km as the crow flies.
    assert distance_km(GAVLE.lat, GAVLE.lon, SOFIA.lat, SOFIA.lon) == pytest.approx(2080, rel=0.02)


@given(st.floats(-90, 90), st.floats(-180, 180), st.floats(-90, 90), st.floats(-180, 180))
def test_distance_is_symmetric_and_bounded(a: float, b: float, c: float, d: float) -> None:
    there = distance_km(a, b, c, d)
    assert there == pytest.approx(distance_km(c, d, a, b), abs=1e-6)
    assert 0 <= there <= 20016  # half the Earth's circumference


def coverage(**kw: object) -> Coverage:
    base: dict[str, object] = {
        "depots": (Depot(GAVLE, 100),),
        "regions": (),
        "capacity_t": 12,
        "hazardous_permit": False,
        "vehicle_types": ("rigid_truck",),
    }
    base.update(kw)
    return Coverage(**base)  # type: ignore[arg-type]


def test_a_job_inside_the_radius_fits() -> None:
    assert unfit_reasons(JobNeeds(SANDVIKEN, GAVLE, 4, False), coverage()) == []


def test_each_misfit_is_named() -> None:
    reasons = unfit_reasons(JobNeeds(SOFIA, GAVLE, 20, True), coverage())
    assert reasons == [
        "pickup is outside your coverage",
        "20 t exceeds your capacity of 12 t",
        "hazardous waste needs a hazardous-waste permit",
    ]


def test_regions_cover_by_nuts_prefix() -> None:
    cov = coverage(depots=(), regions=("SE3",))
    assert unfit_reasons(JobNeeds(SANDVIKEN, GAVLE, 4, False), cov) == []
    assert in_region("SE312", "SE3")
    assert not in_region("BG411", "SE3")
    assert not in_region(None, "SE3")
