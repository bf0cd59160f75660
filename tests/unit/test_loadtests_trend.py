"""The soak verdict: a leak or a falling-behind consumer is called growing, a warm-up or a
worked-off burst is not."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from loadtests.trend import net_of, slope, trend


@given(
    st.floats(min_value=-100, max_value=100),
    st.floats(min_value=-1000, max_value=1000),
    st.integers(min_value=2, max_value=50),
)
def test_slope_of_a_straight_line_is_its_slope(a: float, b: float, n: int) -> None:
    points = [(float(x), a * x + b) for x in range(n)]
    assert math.isclose(slope(points), a, rel_tol=1e-6, abs_tol=1e-6)


def test_slope_of_too_few_points_is_zero() -> None:
    assert slope([]) == 0.0
    assert slope([(1.0, 5.0)]) == 0.0
    assert slope([(1.0, 5.0), (1.0, 9.0)]) == 0.0


def test_a_steady_leak_is_growing() -> None:
    # 100 MB growing by 1 MB a minute for 30 minutes: 15 MB over the second half > 10 % of ~122.
    points = [(m / 6, 100 + m / 6) for m in range(181)]
    t = trend(points)
    assert not t.bounded
    assert math.isclose(t.second_slope, 1.0, rel_tol=1e-6)
    assert math.isclose(t.second_growth, 15.0, rel_tol=1e-3)


def test_a_warm_up_that_levels_off_is_bounded() -> None:
    # Climbs from 60 to 95 MB in the first 10 minutes, then stays at 95 with noise.
    points = [(m / 6, min(60 + 3.5 * m / 6, 95) + (0.5 if m % 2 else -0.5)) for m in range(181)]
    t = trend(points)
    assert t.bounded
    assert t.first_slope > 1.0
    assert abs(t.second_slope) < 0.1


def test_a_burst_worked_off_is_bounded_but_a_lag_that_keeps_climbing_is_not() -> None:
    burst = [(float(m), 30000.0 if m == 3 else 10.0) for m in range(30)]
    assert trend(burst, floor=500).bounded
    behind = [(float(m), 100.0 * m) for m in range(30)]
    t = trend(behind, floor=500)
    assert not t.bounded
    assert t.second_mean > t.first_mean


def test_the_floor_tolerates_small_absolute_growth() -> None:
    small = [(float(m), 2.0 * m) for m in range(30)]  # lag of a few dozen records
    assert not trend(small).bounded
    assert trend(small, floor=500).bounded


def test_no_samples_is_bounded() -> None:
    assert trend([]).bounded


def test_memory_that_follows_the_book_is_bounded_once_the_book_is_taken_out() -> None:
    # 60 MB plus 2 KB per open listing, the book growing by 100 listings a minute, plus noise.
    book = [100.0 * m for m in range(31)]
    points = [(float(m), 60 + 0.002 * book[m] + (0.3 if m % 3 else -0.3)) for m in range(31)]
    residual, per_item = net_of(points, book)
    assert math.isclose(per_item, 0.002, rel_tol=0.05)
    assert trend(residual, tolerance=0.1).bounded


def test_a_leak_beside_the_book_still_shows() -> None:
    book = [100.0 * (m % 10) for m in range(31)]  # the book comes and goes
    points = [(float(m), 60 + 0.002 * book[m] + 1.5 * m) for m in range(31)]  # and 1.5 MB/min
    residual, _ = net_of(points, book)
    assert not trend(residual, tolerance=0.1).bounded
