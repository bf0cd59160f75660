"""Geography: great-circle distance. Pure."""

from __future__ import annotations

from dataclasses import dataclass
from math import asin, cos, radians, sin, sqrt

EARTH_RADIUS_KM = 6371.0088  # the IUGG mean radius


def distance_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance by the haversine formula."""
    p1, p2 = radians(lat1), radians(lat2)
    dp, dl = p2 - p1, radians(lon2 - lon1)
    h = sin(dp / 2) ** 2 + cos(p1) * cos(p2) * sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_KM * asin(min(1.0, sqrt(h)))


def in_region(region: str | None, covered: str) -> bool:
    """NUTS codes nest by prefix: "SE3" covers "SE312"."""
    return region is not None and region.startswith(covered)


@dataclass(frozen=True, slots=True)
class Place:
    lat: float
    lon: float
    region: str | None = None

    def km_to(self, other: Place) -> float:
        return distance_km(self.lat, self.lon, other.lat, other.lon)
