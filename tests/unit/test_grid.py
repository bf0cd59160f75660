from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from marketplace.core.geo import distance_km
from marketplace.core.grid import GridIndex

points = st.tuples(st.floats(-70, 70), st.floats(-180, 179.99))


@settings(max_examples=200, deadline=None)
@given(st.lists(points, min_size=1, max_size=60), points, st.floats(1, 3000))
def test_searches_never_miss_a_point_within_the_radius(
    stored: list[tuple[float, float]], center: tuple[float, float], radius: float
) -> None:
    index = GridIndex()
    for n, (lat, lon) in enumerate(stored):
        index.add("150102", lat, lon, f"p{n}")
    within = {
        f"p{n}"
        for n, (lat, lon) in enumerate(stored)
        if distance_km(center[0], center[1], lat, lon) <= radius
    }
    assert within <= index.near("150102", center[0], center[1], radius)
    assert within <= set(index.nearest("150102", center[0], center[1], radius, 10**9))


def test_nearest_stops_at_the_ring_that_gives_enough() -> None:
    index = GridIndex()
    for n in range(10):
        index.add("150102", 60.0 + n * 0.01, 17.0, f"close{n}")  # one cell
    for n in range(10):
        index.add("150102", 61.6, 17.0, f"far{n}")  # three cells north
    few = index.nearest("150102", 60.01, 17.0, 300, limit=5)
    # The five nearest to 60.01 N: 60.01 itself, then 60.00/60.02, then 60.03, then 60.04.
    assert few == ["close1", "close0", "close2", "close3", "close4"]
    # Past the close cell, the far ring holds ten at one distance: ties go by id.
    assert set(index.nearest("150102", 60.01, 17.0, 300, limit=15)) == {
        *(f"close{n}" for n in range(10)),
        *(f"far{n}" for n in range(5)),
    }
    # The answer does not depend on the order of filing.
    other = GridIndex()
    for n in reversed(range(10)):
        other.add("150102", 60.0 + n * 0.01, 17.0, f"close{n}")
    assert other.nearest("150102", 60.01, 17.0, 300, limit=5) == few


def test_removed_ids_are_gone() -> None:
    index = GridIndex()
    index.add("150102", 60.0, 17.0, "a")
    index.remove("150102", 60.0, 17.0, "a")
    assert index.near("150102", 60.0, 17.0, 50) == set()
    assert index.nearest("150102", 60.0, 17.0, 50, 5) == []
