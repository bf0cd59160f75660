"""A small HDR-style histogram: values recorded with a fixed relative precision (buckets whose
width is a constant fraction of their value) over a wide range, so that p99 and max of latencies
from microseconds to minutes are exact to the precision, whatever the spread."""

from __future__ import annotations

import math
from collections.abc import Iterable


class Histogram:
    def __init__(self, lowest: float = 1e-6, significant_digits: int = 2) -> None:
        # Bucket i holds values in [lowest * g**i, lowest * g**(i+1)), g = 1 + 10**-digits.
        self.lowest = lowest
        self.growth = 1.0 + 10.0**-significant_digits
        self._log_growth = math.log(self.growth)
        self.counts: dict[int, int] = {}
        self.total = 0
        self.max = 0.0
        self.min = math.inf

    def record(self, value: float) -> None:
        value = max(value, self.lowest)
        i = int(math.log(value / self.lowest) / self._log_growth)
        self.counts[i] = self.counts.get(i, 0) + 1
        self.total += 1
        self.max = max(self.max, value)
        self.min = min(self.min, value)

    def record_all(self, values: Iterable[float]) -> None:
        for v in values:
            self.record(v)

    def _value(self, i: int) -> float:
        # The bucket's midpoint, a relative error of at most half a bucket's width.
        return self.lowest * self.growth**i * (1 + self.growth) / 2

    def percentile(self, p: float) -> float:
        if not self.total:
            return math.nan
        if p >= 100:
            return self.max
        rank = max(1, math.ceil(p / 100 * self.total))
        seen = 0
        for i in sorted(self.counts):
            seen += self.counts[i]
            if seen >= rank:
                return min(self._value(i), self.max)
        return self.max

    def summary(self) -> dict[str, float]:
        return {
            "count": float(self.total),
            "p50": self.percentile(50),
            "p95": self.percentile(95),
            "p99": self.percentile(99),
            "max": self.max if self.total else math.nan,
        }

    def distribution(self) -> list[tuple[float, float]]:
        """(value, percentile) points of the cumulative distribution, for plotting."""
        out, seen = [], 0
        for i in sorted(self.counts):
            seen += self.counts[i]
            out.append((self._value(i), 100.0 * seen / self.total))
        return out
