"""A spatial grid index: find the ids near a point without scanning them all. Pure."""

from __future__ import annotations

import heapq
from collections import defaultdict
from dataclasses import dataclass
from math import asin, cos, floor, pi, radians, sin, sqrt

from marketplace.core.geo import EARTH_RADIUS_KM, distance_km

CELL_DEG = 0.2  # about 22 km of latitude
KM_PER_DEG_LAT = 111.2
LON_CELLS = int(360 / CELL_DEG)

Cell = tuple[int, int]
# How an id's place is kept: (lat, lon, lat in radians, its cosine).
Spot = tuple[float, float, float, float]
# A search (key, lat, lon, radius in km, limit) and its remembered answer: the key's shape
# version, the stamps of the cells it measured, the answer.
Question = tuple[str, float, float, float, int]
Answer = tuple[int, list[tuple[Cell, int]], list[tuple[float, str]]]


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


# A cell with more ids than this keeps them in a quadtree as well, so that a search in a dense
# cell (a town with thousands of listings of one code) measures the distance to the nearest ids
# only instead of to every one: the cost of a search stays flat as the book grows.
SMALL_CELL = 48
LEAF_SIZE = 12
MAX_DEPTH = 24
# Bounds on a node's distances are trusted only this far inside (km): far more than the
# rounding of the haversine formula, far less than any distance that matters.
MARGIN_KM = 1e-6
# Searches whose answers are remembered (GridIndex.nearest_with_distance), the oldest forgotten
# first: a few tens of MB at most.
ANSWERS_KEPT = 16384
# The corner bound below holds while the node is within this many degrees of the point.
_BOUNDED_DEG = 60.0
_DEG = pi / 180
_DIAMETER = 2 * EARTH_RADIUS_KM


def _spot(lat: float, lon: float) -> Spot:
    p = radians(lat)
    return (lat, lon, p, cos(p))


class _Node:
    """A quadtree node over a cell's ids: a leaf holds them, an inner node its four quarters.
    Ids go to a quarter by comparing their coordinates with the middle, so a node's bounds
    always hold its ids."""

    __slots__ = ("cmin", "count", "items", "kids", "lat0", "lat1", "lon0", "lon1")

    def __init__(self, lat0: float, lat1: float, lon0: float, lon1: float) -> None:
        self.lat0, self.lat1, self.lon0, self.lon1 = lat0, lat1, lon0, lon1
        # The smallest cosine of a latitude in the node (cos is concave: at an edge), for
        # _Probe.lower.
        self.cmin = max(0.0, min(cos(lat0 * _DEG), cos(lat1 * _DEG)))
        self.count = 0
        self.items: dict[str, Spot] | None = {}
        self.kids: tuple[_Node, _Node, _Node, _Node] | None = None

    def add(self, item: str, lat: float, lon: float, depth: int = 0) -> None:
        node = self
        while True:
            node.count += 1
            items = node.items
            if items is not None:
                items[item] = _spot(lat, lon)
                if len(items) > LEAF_SIZE and depth < MAX_DEPTH:
                    node._split(depth)
                return
            node = node._kid(lat, lon)
            depth += 1

    def remove(self, item: str, lat: float, lon: float) -> None:
        path = []
        node = self
        while node.items is None:
            path.append(node)
            node = node._kid(lat, lon)
        if node.items.pop(item, None) is not None:
            node.count -= 1
            for n in path:
                n.count -= 1

    def _kid(self, lat: float, lon: float) -> _Node:
        kids = self.kids
        assert kids is not None
        north = lat >= (self.lat0 + self.lat1) / 2
        east = lon >= (self.lon0 + self.lon1) / 2
        return kids[2 * north + east]

    def _split(self, depth: int) -> None:
        """Makes the leaf at `depth` an inner node; quarters still too full split in turn, down
        to MAX_DEPTH (ids at one spot stay together in a deep leaf, however many)."""
        items = self.items
        assert items is not None
        mlat, mlon = (self.lat0 + self.lat1) / 2, (self.lon0 + self.lon1) / 2
        self.kids = (
            _Node(self.lat0, mlat, self.lon0, mlon),
            _Node(self.lat0, mlat, mlon, self.lon1),
            _Node(mlat, self.lat1, self.lon0, mlon),
            _Node(mlat, self.lat1, mlon, self.lon1),
        )
        self.items = None
        for item, spot in items.items():
            kid = self._kid(spot[0], spot[1])
            kid.count += 1
            kid_items = kid.items
            assert kid_items is not None
            kid_items[item] = spot
        for kid in self.kids:
            if kid.items is not None and len(kid.items) > LEAF_SIZE and depth + 1 < MAX_DEPTH:
                kid._split(depth + 1)


class _Probe:
    """Distance bounds from one point to quadtree nodes."""

    __slots__ = ("c1", "coslat", "lat", "lon", "p1", "radius")

    def __init__(self, lat: float, lon: float, radius_km: float) -> None:
        self.lat, self.lon, self.radius = lat, lon, radius_km
        self.coslat = cos(lat * _DEG)
        self.p1 = radians(lat)
        self.c1 = cos(self.p1)

    def lower(self, n: _Node) -> float:
        """At most the distance to anything in the node: the latitude and longitude gaps taken
        separately, the longitude gap at the node's widest parallel (haversine terms are
        monotone in both while the gaps stay under 90 degrees)."""
        lat, lon = self.lat, self.lon
        if abs(lon - n.lon0) > 90 or abs(lon - n.lon1) > 90:
            return 0.0
        dphi = n.lat0 - lat if lat < n.lat0 else lat - n.lat1 if lat > n.lat1 else 0.0
        dlam = n.lon0 - lon if lon < n.lon0 else lon - n.lon1 if lon > n.lon1 else 0.0
        if dphi <= 0.0 and dlam <= 0.0:
            return 0.0
        h = sin(dphi * _DEG / 2) ** 2 + self.coslat * n.cmin * sin(dlam * _DEG / 2) ** 2
        return 2 * EARTH_RADIUS_KM * asin(min(1.0, sqrt(h))) - MARGIN_KM

    def inside(self, n: _Node) -> bool:
        """Whether everything in the node is surely within the radius: the farthest corner is.
        Near the point the haversine is convex along a meridian and grows with the longitude
        gap, so the farthest point of a node is a corner."""
        lat, lon = self.lat, self.lon
        if (
            abs(lat - n.lat0) > _BOUNDED_DEG
            or abs(lat - n.lat1) > _BOUNDED_DEG
            or abs(lon - n.lon0) > _BOUNDED_DEG
            or abs(lon - n.lon1) > _BOUNDED_DEG
        ):
            return False
        far_lon = n.lon0 if abs(lon - n.lon0) >= abs(lon - n.lon1) else n.lon1
        limit = self.radius - MARGIN_KM
        return (
            distance_km(lat, lon, n.lat0, far_lon) <= limit
            and distance_km(lat, lon, n.lat1, far_lon) <= limit
        )

    def count(self, node: _Node) -> int:
        """How many ids in the node are within the radius, exactly."""
        if node.count == 0 or self.lower(node) > self.radius:
            return 0
        if self.inside(node):
            return node.count
        items = node.items
        if items is None:
            assert node.kids is not None
            return sum(self.count(kid) for kid in node.kids)
        return len(self.within(items, []))

    def within(
        self, items: dict[str, Spot], found: list[tuple[float, str]]
    ) -> list[tuple[float, str]]:
        """Appends (distance, id) for the ids within the radius to `found`, which it returns:
        distance_km(lat, lon, plat, plon) to the last bit, with the point's terms and each id's
        latitude terms computed once (`_spot`) instead of for every pair."""
        # The same operations as distance_km, written out: radians(x) is x * (pi / 180) in
        # CPython's math module, and min(1.0, s) is s below 1.0. (Squares stay `** 2`: on this
        # platform x ** 2 and x * x differ in the last bit now and then.)
        lon, radius, p1, c1 = self.lon, self.radius, self.p1, self.c1
        append = found.append
        for item, (_, plon, p2, c2) in items.items():
            s = sqrt(sin((p2 - p1) / 2) ** 2 + c1 * c2 * sin((plon - lon) * _DEG / 2) ** 2)
            d = _DIAMETER * asin(s if s < 1.0 else 1.0)
            if d <= radius:
                append((d, item))
        return found


def _root(cell: Cell) -> _Node:
    # A little wider than the cell, so that rounding in cell_of never puts an id outside it.
    i, j = cell
    slack = 1e-7
    return _Node(
        i * CELL_DEG - slack,
        (i + 1) * CELL_DEG + slack,
        j * CELL_DEG - slack,
        (j + 1) * CELL_DEG + slack,
    )


class GridIndex:
    """ids filed by (key, cell); the key is the List of Waste code."""

    def __init__(self) -> None:
        # key -> cell -> id -> its Spot
        self._cells: dict[str, dict[Cell, dict[str, Spot]]] = defaultdict(dict)
        # key -> cell -> the quadtree of the cell's ids, for cells of more than SMALL_CELL ids
        self._trees: dict[str, dict[Cell, _Node]] = {}
        # The occupied cells of a key by ring from a search's cell, kept for searches from the
        # same cell (any radius) while the key's occupied cells stay the same (their version:
        # bumped whenever a cell of the key fills or empties).
        self._shape: dict[str, int] = {}
        self._rings: dict[tuple[str, int, int], tuple[int, list[tuple[int, Cell]]]] = {}
        # key -> cell -> how many times an id was added to or removed from the cell.
        self._stamps: dict[str, dict[Cell, int]] = {}
        # The answers of recent searches. An answer depends only on the occupied cells the
        # search measured (later rings were not reached, and only a cell that fills or empties
        # could change which cells a search reaches): it is given again while the key's
        # occupied cells and the stamps of the cells it measured stay the same. The matcher asks
        # the same questions again and again (each answer to a proposal reallocates both
        # listings, which searched when they last allocated).
        self._answers: dict[Question, Answer] = {}

    def add(self, key: str, lat: float, lon: float, item: str) -> None:
        cell = cell_of(lat, lon)
        stamps = self._stamps.setdefault(key, {})
        stamps[cell] = stamps.get(cell, 0) + 1
        cells = self._cells[key]
        bucket = cells.get(cell)
        if bucket is None:
            bucket = cells[cell] = {}
            self._shape[key] = self._shape.get(key, 0) + 1
        old = bucket.get(item)
        bucket[item] = _spot(lat, lon)
        trees = self._trees.get(key)
        tree = trees.get(cell) if trees is not None else None
        if tree is not None:
            if old is not None:
                tree.remove(item, old[0], old[1])
            tree.add(item, lat, lon)
        elif len(bucket) > SMALL_CELL:
            tree = _root(cell)
            for other, spot in bucket.items():
                tree.add(other, spot[0], spot[1])
            self._trees.setdefault(key, {})[cell] = tree

    def remove(self, key: str, lat: float, lon: float, item: str) -> None:
        cells = self._cells.get(key)
        if cells is None:
            return
        cell = cell_of(lat, lon)
        bucket = cells.get(cell)
        if bucket is not None:
            stamps = self._stamps[key]
            stamps[cell] = stamps.get(cell, 0) + 1
            where = bucket.pop(item, None)
            trees = self._trees.get(key)
            if where is not None and trees is not None and cell in trees:
                if bucket:
                    trees[cell].remove(item, where[0], where[1])
                else:
                    del trees[cell]
                    if not trees:
                        del self._trees[key]
            if not bucket:
                del cells[cell]
                del stamps[cell]
                self._shape[key] = self._shape.get(key, 0) + 1
        if not cells:
            del self._cells[key]
            del self._stamps[key]

    def nearest(self, key: str, lat: float, lon: float, radius_km: float, limit: int) -> list[str]:
        """At most `limit` ids within radius_km, nearest first (ties by id): cells are visited
        ring by ring from the point's own, and the search stops at the first ring boundary past
        `limit` ids, after which only the nearest `limit` are kept. The answer depends on the
        index's content only, never on the order it was filled in."""
        return [item for _, item in self.nearest_with_distance(key, lat, lon, radius_km, limit)]

    def nearest_with_distance(
        self, key: str, lat: float, lon: float, radius_km: float, limit: int
    ) -> list[tuple[float, str]]:
        """As `nearest`, with each id's great-circle distance from the point, in km. Small cells
        are measured id by id; in a dense cell the quadtree counts the ids within the radius
        (whole nodes at once where they surely are) and then gives the nearest ones, best first,
        so that the answer is exactly the one measuring every id would give. The answer is
        given again (as a fresh list) while nothing it depends on changed."""
        question = (key, lat, lon, radius_km, limit)
        answers = self._answers
        known = answers.get(question)
        shape = self._shape.get(key, 0)
        if known is not None and known[0] == shape:
            stamps = self._stamps.get(key)
            if stamps is not None and all(stamps.get(c) == n for c, n in known[1]):
                return list(known[2])
        measured: list[Cell] = []
        answer = self._search(key, lat, lon, radius_km, limit, measured)
        stamps = self._stamps.get(key)
        if stamps is not None:
            if len(answers) >= ANSWERS_KEPT:
                del answers[next(iter(answers))]  # the oldest question
            answers[question] = (shape, [(c, stamps[c]) for c in measured], answer)
        return list(answer)

    def _search(
        self,
        key: str,
        lat: float,
        lon: float,
        radius_km: float,
        limit: int,
        measured: list[Cell],
    ) -> list[tuple[float, str]]:
        """The search itself; appends to `measured` the occupied cells it looked into."""
        cells = self._cells.get(key)
        if not cells:
            return []
        trees = self._trees.get(key, {})
        box = box_around(lat, lon, radius_km)
        ci, cj = cell_of(lat, lon)
        found: list[tuple[float, str]] = []
        dense: list[_Node] = []
        probe = _Probe(lat, lon, radius_km)
        counted = 0

        def take(cell: Cell, bucket: dict[str, Spot]) -> int:
            measured.append(cell)
            tree = trees.get(cell)
            if tree is not None:
                n = probe.count(tree)
                if n:
                    dense.append(tree)
                return n
            before = len(found)
            probe.within(bucket, found)
            return len(found) - before

        if box.size() > len(cells):
            # Few occupied cells: order those inside the box by ring instead of walking rings.
            for ring in self._rings_of(key, cells, box, ci, cj):
                for cell in ring:
                    counted += take(cell, cells[cell])
                if counted >= limit:
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
                        counted += take(cell, bucket)
                if counted >= limit:
                    break
        if dense:
            _nearest_in(dense, probe, limit, found)
        found.sort()
        return found[:limit]

    def _rings_of(
        self, key: str, cells: dict[Cell, dict[str, Spot]], box: Box, ci: int, cj: int
    ) -> list[list[Cell]]:
        """The occupied cells inside the box, grouped by ring from (ci, cj), nearest ring first
        (in each ring, in the order of `cells`). Every occupied cell of the key with its ring is
        kept in ring order per search cell (`_by_ring`), so that searches from the same cell
        with other radii take them from there: only the rings the box reaches are walked."""
        by_ring = self._by_ring(key, cells, ci, cj)
        if box.all_lon or 2 * (box.lon1 - box.lon0) >= LON_CELLS:
            last = LON_CELLS  # (more than any ring)
        else:
            # The search's cell lies in the box, so no cell of the box is farther than its edges.
            last = max(ci - box.lat0, box.lat1 - ci, _ring((0, box.lon0), 0, cj))
            last = max(last, _ring((0, box.lon1), 0, cj))
        # (`cell in box`, written out: this runs for every occupied cell up to the last ring.)
        lat0, lat1, lon0, span = box.lat0, box.lat1, box.lon0, box.lon1 - box.lon0
        all_lon = box.all_lon
        ordered: list[list[Cell]] = []
        at = -1
        for r, cell in by_ring:
            if r > last:
                break
            i, j = cell
            if lat0 <= i <= lat1 and (all_lon or (j - lon0) % LON_CELLS <= span):
                if r != at:
                    ordered.append([cell])
                    at = r
                else:
                    ordered[-1].append(cell)
        return ordered

    def _by_ring(
        self, key: str, cells: dict[Cell, dict[str, Spot]], ci: int, cj: int
    ) -> list[tuple[int, Cell]]:
        """Every occupied cell of the key with its ring from (ci, cj), by ring (in each ring in
        the order of `cells`), kept while the key's occupied cells stay the same."""
        shape = self._shape.get(key, 0)
        known = self._rings.get((key, ci, cj))
        if known is not None and known[0] == shape:
            return known[1]
        # (`_ring`, written out.)
        rings: list[tuple[int, Cell]] = []
        for cell in cells:
            i, j = cell
            dj = (j - cj) % LON_CELLS
            di = i - ci if i >= ci else ci - i
            rings.append((max(di, min(dj, LON_CELLS - dj)), cell))
        rings.sort(key=_first)  # stable: each ring keeps the order of `cells`
        if len(self._rings) >= 8192:
            self._rings.clear()
        self._rings[(key, ci, cj)] = (shape, rings)
        return rings

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


def _first(entry: tuple[int, Cell]) -> int:
    return entry[0]


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


def _nearest_in(
    roots: list[_Node], probe: _Probe, limit: int, found: list[tuple[float, str]]
) -> None:
    """Adds to `found` the ids within the radius in the trees, at least the `limit` nearest of
    them and of what `found` holds already: nodes are opened nearest first (by a lower bound of
    their distance), until none left can hold anything nearer than the limit-th nearest found."""
    radius = probe.radius
    # The `limit` smallest distances found so far, negated (a max-heap).
    best = [-d for d, _ in found]
    if len(best) > limit:
        best = [-d for d in sorted(-b for b in best)[:limit]]
    heapq.heapify(best)
    todo: list[tuple[float, int, _Node]] = []
    n = 0
    for root in roots:
        n += 1
        todo.append((probe.lower(root), n, root))
    heapq.heapify(todo)
    while todo:
        lower, _, node = heapq.heappop(todo)
        if lower > radius or (len(best) >= limit and lower > -best[0]):
            break
        items = node.items
        if items is None:
            assert node.kids is not None
            for kid in node.kids:
                if kid.count:
                    n += 1
                    heapq.heappush(todo, (probe.lower(kid), n, kid))
            continue
        start = len(found)
        probe.within(items, found)
        for k in range(start, len(found)):
            d = found[k][0]
            if len(best) < limit:
                heapq.heappush(best, -d)
            elif d < -best[0]:
                heapq.heapreplace(best, -d)
