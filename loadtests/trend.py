"""Whether a series sampled over time (memory, lag) grows without bound: the least-squares slopes
of its first and second halves, and a verdict from the second half's fitted growth. Pure."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

Point = tuple[float, float]  # (minute, value)


def slope(points: Sequence[Point]) -> float:
    """Least-squares slope of y over x (0 for fewer than two distinct x)."""
    n = len(points)
    if n < 2:
        return 0.0
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    sxx = sum((x - mx) ** 2 for x, _ in points)
    return sum((x - mx) * (y - my) for x, y in points) / sxx if sxx else 0.0


def mean(points: Sequence[Point]) -> float:
    return sum(y for _, y in points) / len(points) if points else 0.0


@dataclass(frozen=True, slots=True)
class Trend:
    first_slope: float  # per minute
    second_slope: float
    first_mean: float
    second_mean: float
    second_growth: float  # the second half's slope times its length in minutes
    allowance: float  # the growth the verdict tolerates over the second half
    bounded: bool

    def describe(self, unit: str) -> str:
        word = "bounded" if self.bounded else "GROWING"
        return (
            f"{word}: fitted growth over the second half {self.second_growth:+,.1f} {unit} "
            f"(allowed {self.allowance:,.1f}); slope {self.first_slope:+,.2f} {unit}/min in the "
            f"first half, {self.second_slope:+,.2f} in the second; mean {self.first_mean:,.1f} "
            f"then {self.second_mean:,.1f} {unit}"
        )


def trend(points: Sequence[Point], *, tolerance: float = 0.1, floor: float = 0.0) -> Trend:
    """Splits the samples at the middle of their time span. The series counts as bounded when
    the growth its second half's fitted line shows over that half is at most `tolerance` times
    the second half's mean (or `floor`, whichever is larger): a leak or a consumer that falls
    behind keeps climbing in the second half; a warm-up or a burst that is worked off does not."""
    if not points:
        return Trend(0.0, 0.0, 0.0, 0.0, 0.0, floor, True)
    start, end = points[0][0], points[-1][0]
    middle = (start + end) / 2
    first = [p for p in points if p[0] < middle]
    second = [p for p in points if p[0] >= middle]
    s1, s2 = slope(first), slope(second)
    span = (second[-1][0] - second[0][0]) if second else 0.0
    growth = s2 * span
    allowance = max(tolerance * abs(mean(second)), floor)
    return Trend(s1, s2, mean(first), mean(second), growth, allowance, growth <= allowance)


def net_of(points: Sequence[Point], driver: Sequence[float]) -> tuple[list[Point], float]:
    """The series with the part explained by `driver` (sampled at the same times) taken out:
    y - b * driver, b the least-squares slope of y over the driver. Returns the residual series
    and b (e.g. memory per open listing, when a process legitimately holds more state as its
    book grows; what is left must then not grow)."""
    pairs = [(d, y) for d, (_, y) in zip(driver, points, strict=True)]
    b = slope(pairs)
    return [(x, y - b * d) for d, (x, y) in zip(driver, points, strict=True)], b
