"""A spatial grid index: find the ids near a point without scanning them all. Pure."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from math import cos, floor, radians

from loadtests.matching_before.geo import distance_km

CELL_DEG = 0.2  # about 22 km of latitude
KM_PER_DEG_LAT = 111.2
LON_CELLS = int(360 / CELL_DEG)

Cell = tuple[int, int]


def cell_of(lat: float, lon: float) -> Cell:
    return (floor(lat / CELL_DEG), floor(lon / CELL_DEG))


@dataclass(frozen=True, slots=True)
class Box:
    """The cells that may hold a point within a radius: a superset, cheap to test."""

    lat0: int
    lat1: int
    lon0: int
    lon1: int
    all_lon: bool

    def size(self) -> int:
        width = LON_CELLS if self.all_lon else self.lon1 - self.lon0 + 1
        return (self.lat1 - self.lat0 + 1) * width

    def __contains__(self, cell: Cell) -> bool:
        i, j = cell
        if not self.lat0 <= i <= self.lat1:
            return False
        if self.all_lon:
            return True
        # The box may run across the antimeridian: compare on the circle of cells.
        return (j - self.lon0) % LON_CELLS <= self.lon1 - self.lon0

    def cells(self) -> list[Cell]:
        width = LON_CELLS if self.all_lon else self.lon1 - self.lon0 + 1
        start = -LON_CELLS // 2 if self.all_lon else self.lon0
        return [
            (i, (start + k + LON_CELLS // 2) % LON_CELLS - LON_CELLS // 2)
            for i in range(self.lat0, self.lat1 + 1)
            for k in range(width)
        ]


def box_around(lat: float, lon: float, radius_km: float) -> Box:
    dlat = radius_km / KM_PER_DEG_LAT
    # Longitude degrees shrink towards the poles: use the widest latitude the circle reaches.
    widest = min(89.9, abs(lat) + dlat)
    dlon = radius_km / (KM_PER_DEG_LAT * max(cos(radians(widest)), 1e-6))
    lon0, lon1 = floor((lon - dlon) / CELL_DEG), floor((lon + dlon) / CELL_DEG)
    return Box(
        lat0=floor((lat - dlat) / CELL_DEG),
        lat1=floor((lat + dlat) / CELL_DEG),
        lon0=lon0,
        lon1=lon1,
        all_lon=lon1 - lon0 + 1 >= LON_CELLS,
    )


class GridIndex:
    """ids filed by (key, cell); the key is the List of Waste code."""

    def __init__(self) -> None:
        # key -> cell -> id -> (lat, lon)
        self._cells: dict[str, dict[Cell, dict[str, tuple[float, float]]]] = defaultdict(dict)

    def add(self, key: str, lat: float, lon: float, item: str) -> None:
        self._cells[key].setdefault(cell_of(lat, lon), {})[item] = (lat, lon)

    def remove(self, key: str, lat: float, lon: float, item: str) -> None:
        cells = self._cells.get(key)
        if cells is None:
            return
        cell = cell_of(lat, lon)
        bucket = cells.get(cell)
        if bucket is not None:
            bucket.pop(item, None)
            if not bucket:
                del cells[cell]
        if not cells:
            del self._cells[key]

    def nearest(self, key: str, lat: float, lon: float, radius_km: float, limit: int) -> list[str]:
        """At most `limit` ids within radius_km, nearest first (ties by id): cells are visited
        ring by ring from the point's own, and the search stops at the first ring boundary past
        `limit` ids, after which only the nearest `limit` are kept. The answer depends on the
        index's content only, never on the order it was filled in."""
        return [item for _, item in self.nearest_with_distance(key, lat, lon, radius_km, limit)]

    def nearest_with_distance(
        self, key: str, lat: float, lon: float, radius_km: float, limit: int
    ) -> list[tuple[float, str]]:
        """As `nearest`, with each id's great-circle distance from the point, in km."""
        cells = self._cells.get(key)
        if not cells:
            return []
        box = box_around(lat, lon, radius_km)
        ci, cj = cell_of(lat, lon)
        found: list[tuple[float, str]] = []

        def take(bucket: dict[str, tuple[float, float]]) -> None:
            for item, (plat, plon) in bucket.items():
                d = distance_km(lat, lon, plat, plon)
                if d <= radius_km:
                    found.append((d, item))

        if box.size() > len(cells):
            # Few occupied cells: order those inside the box by ring instead of walking rings.
            rings: dict[int, list[Cell]] = {}
            for cell in cells:
                if cell in box:
                    rings.setdefault(_ring(cell, ci, cj), []).append(cell)
            for r in sorted(rings):
                for cell in rings[r]:
                    take(cells[cell])
                if len(found) >= limit:
                    break
        else:
            max_ring = max(
                ci - box.lat0,
                box.lat1 - ci,
                _ring((0, box.lon0), 0, cj),
                _ring((0, box.lon1), 0, cj),
            )
            for r in range(max_ring + 1):
                for cell in _ring_cells(ci, cj, r):
                    bucket = cells.get(cell)
                    if bucket and cell in box:
                        take(bucket)
                if len(found) >= limit:
                    break
        found.sort()
        return found[:limit]

    def near(self, key: str, lat: float, lon: float, radius_km: float) -> set[str]:
        """A superset of the ids within radius_km (every id in the cells that may hold one)."""
        cells = self._cells.get(key)
        if not cells:
            return set()
        box = box_around(lat, lon, radius_km)
        found: set[str] = set()
        if box.size() <= len(cells):
            for cell in box.cells():
                bucket = cells.get(cell)
                if bucket:
                    found.update(bucket)
        else:
            for cell, bucket in cells.items():
                if cell in box:
                    found.update(bucket)
        return found


def _ring(cell: Cell, ci: int, cj: int) -> int:
    """Chebyshev distance in cells, longitude taken round the circle."""
    dj = (cell[1] - cj) % LON_CELLS
    return max(abs(cell[0] - ci), min(dj, LON_CELLS - dj))


def _ring_cells(ci: int, cj: int, r: int) -> list[Cell]:
    if r == 0:
        return [(ci, cj)]
    out = [(ci + di, cj + dj) for di in (-r, r) for dj in range(-r, r + 1)]
    out += [(ci + di, cj + dj) for di in range(-r + 1, r) for dj in (-r, r)]
    # Wrap longitude onto the cells points are filed under.
    return [(i, (j + LON_CELLS // 2) % LON_CELLS - LON_CELLS // 2) for i, j in out]
