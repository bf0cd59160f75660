"""A proposal's small map, drawn without tiles (#19): the two sides' places on an
equirectangular projection of the area around them, with a graticule and a scale bar, as
numbers an SVG template can draw. Pure: no I/O, no clock, no randomness.

Until a match is confirmed the other side's place is only approximate: `approximate` rounds
it to a grid of GRID_DEG degrees and gives the radius of a circle that certainly holds the
true place. The map of an unconfirmed proposal is computed from that rounded place only, so
nothing drawn (not even the map's extent) depends on the exact coordinates."""

from __future__ import annotations

from dataclasses import dataclass
from math import ceil, cos, floor, radians

from marketplace.core.geo import distance_km

GRID_DEG = 0.5  # the grid an unconfirmed counterpart's place is rounded to (about 55 km N-S)
KM_PER_DEG_LAT = 111.195  # 2 * pi * EARTH_RADIUS_KM / 360
MIN_SPAN_KM = 40.0  # the smallest area drawn, so two places a street apart still read
PAD = 0.15  # a margin around the places, as a share of the area's span
SCALES_KM = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000)
GRATICULES_DEG = (0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0)


@dataclass(frozen=True, slots=True)
class Approximate:
    """A place rounded to the grid, and a radius within which the true place lies."""

    lat: float
    lon: float
    radius_km: float


def approximate(lat: float, lon: float, step: float = GRID_DEG) -> Approximate:
    """The grid point nearest (lat, lon) and the distance from it to its cell's farthest corner
    (rounded up to the km): the true place is inside that circle."""
    if step <= 0:
        raise ValueError("step must be positive")
    rlat = max(-90.0, min(90.0, round(round(lat / step) * step, 6)))
    rlon = round(round(lon / step) * step, 6)
    half = step / 2
    corners = [
        distance_km(rlat, rlon, max(-90.0, min(90.0, rlat + dlat)), rlon + dlon)
        for dlat in (-half, half)
        for dlon in (-half, half)
    ]
    return Approximate(lat=rlat, lon=rlon, radius_km=float(ceil(max(corners))))


@dataclass(frozen=True, slots=True)
class Point:
    x: float
    y: float


@dataclass(frozen=True, slots=True)
class Sketch:
    """A map in a width x height box (SVG user units, y downwards)."""

    width: int
    height: int
    own: Point
    other: Point
    other_radius: float  # in units; 0 when the other side's place is exact
    meridians: tuple[float, ...]  # x of each drawn meridian
    parallels: tuple[float, ...]  # y of each drawn parallel
    scale_km: int
    scale_length: float  # in units


def _nice(values: tuple[float, ...], at_most: float) -> float:
    fitting = [v for v in values if v <= at_most]
    return fitting[-1] if fitting else values[0]


def sketch(
    own_lat: float,
    own_lon: float,
    other_lat: float,
    other_lon: float,
    other_radius_km: float = 0.0,
    width: int = 320,
    height: int = 200,
) -> Sketch:
    """Both places (the other one with a circle of other_radius_km around it) fitted in the
    box, north up, with the same scale along both axes at the area's middle latitude."""
    if width <= 0 or height <= 0:
        raise ValueError("width and height must be positive")
    if other_radius_km < 0:
        raise ValueError("other_radius_km must not be negative")
    mid_lat = (own_lat + other_lat) / 2
    kx = KM_PER_DEG_LAT * max(cos(radians(mid_lat)), 0.01)  # km per degree of longitude

    def km_xy(lat: float, lon: float) -> tuple[float, float]:
        return (lon * kx, -lat * KM_PER_DEG_LAT)

    ox, oy = km_xy(own_lat, own_lon)
    tx, ty = km_xy(other_lat, other_lon)
    r = other_radius_km
    x0, x1 = min(ox, tx - r), max(ox, tx + r)
    y0, y1 = min(oy, ty - r), max(oy, ty + r)
    units_per_km = min(
        width / (max(x1 - x0, MIN_SPAN_KM) * (1 + 2 * PAD)),
        height / (max(y1 - y0, MIN_SPAN_KM) * (1 + 2 * PAD)),
    )
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2

    def to_box(x_km: float, y_km: float) -> Point:
        return Point(
            x=round(width / 2 + (x_km - cx) * units_per_km, 1),
            y=round(height / 2 + (y_km - cy) * units_per_km, 1),
        )

    # The graticule: a round step in degrees giving a few lines across the box.
    km_across = width / units_per_km
    step = _nice(GRATICULES_DEG, max(km_across / KM_PER_DEG_LAT / 3, GRATICULES_DEG[0]))
    lon_left = cx / kx - (width / 2) / units_per_km / kx
    lon_right = cx / kx + (width / 2) / units_per_km / kx
    lat_top = -(cy - (height / 2) / units_per_km) / KM_PER_DEG_LAT
    lat_bottom = -(cy + (height / 2) / units_per_km) / KM_PER_DEG_LAT
    meridians = tuple(
        to_box(k * step * kx, cy).x
        for k in range(ceil(lon_left / step), floor(lon_right / step) + 1)
    )
    parallels = tuple(
        to_box(cx, -k * step * KM_PER_DEG_LAT).y
        for k in range(ceil(lat_bottom / step), floor(lat_top / step) + 1)
    )
    scale_km = int(_nice(tuple(float(s) for s in SCALES_KM), km_across / 4))
    return Sketch(
        width=width,
        height=height,
        own=to_box(ox, oy),
        other=to_box(tx, ty),
        other_radius=round(r * units_per_km, 1),
        meridians=meridians,
        parallels=parallels,
        scale_km=scale_km,
        scale_length=round(scale_km * units_per_km, 1),
    )
