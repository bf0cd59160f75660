"""The latency histogram keeps its relative precision across the whole range."""

from __future__ import annotations

import math
import random

from hypothesis import given
from hypothesis import strategies as st

from loadtests.hdr import Histogram


@given(st.lists(st.floats(min_value=1e-5, max_value=600.0), min_size=1, max_size=300))
def test_percentiles_are_within_one_percent_of_the_exact_ones(values: list[float]) -> None:
    h = Histogram(significant_digits=2)
    h.record_all(values)
    ordered = sorted(values)
    for p in (50, 95, 99):
        exact = ordered[max(1, math.ceil(p / 100 * len(ordered))) - 1]
        assert abs(h.percentile(p) - exact) <= exact * 0.011
    assert h.percentile(100) == max(values)
    assert h.total == len(values)


def test_a_spread_from_milliseconds_to_seconds() -> None:
    rng = random.Random(3)
    h = Histogram()
    h.record_all(0.005 + rng.expovariate(1 / 0.02) for _ in range(10000))
    h.record(4.0)
    s = h.summary()
    assert 0.015 < s["p50"] < 0.025
    assert s["p50"] < s["p95"] < s["p99"] < s["max"] == 4.0
    assert h.distribution()[-1][1] == 100.0
