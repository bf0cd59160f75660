"""How the market topics' traffic spreads over keys and partitions (#17, the hot-class
measurement): the simulator's offers and requests counted by the key they would be published
under, by the 4-digit sub-chapter (the key before material families) and by the material family
(the key now), and per partition as Kafka's default partitioner (murmur2 of the key) places them.

    python -m loadtests.key_spread [--listings 20000] [--seed 17] [--partitions 6 12]
        [--hot 4] [--json loadtests/reports/key-spread-<time>.json]

Prints one line per key scheme: the busiest keys with their share, then per partition count the
busiest partition's share and how many partitions hold any listing. Two more schemes split the
`--hot` busiest families into geographic cells (marketplace/core/shards.py, not yet used by the
matcher): "cells-lat50" (north and south of 50 degrees: the seed regions, Bulgaria and central
Sweden, fall apart), "cells-lat50-lon20" (also east and west of 20 degrees) and
"cells-lat50-lon20-26" (Bulgaria cut at 26 degrees east too); a request whose reach leaves its
cell counts under its family's wide key."""

from __future__ import annotations

import argparse
import json
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime

from aiokafka.partitioner import DefaultPartitioner

from marketplace.core.families import family_of
from marketplace.core.geo import Place
from marketplace.core.shards import ShardPlan
from producers.simulator.market import Market

# A scheme keys a listing by its kind, code, place and reach.
Scheme = Callable[[str, str, Place, float | None], str]
SCHEMES: dict[str, Scheme] = {
    "subchapter": lambda _kind, code, _place, _km: code[:4],
    "family": lambda _kind, code, _place, _km: family_of(code),
}
CUTS: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    "cells-lat50": ((50.0,), ()),
    "cells-lat50-lon20": ((50.0,), (20.0,)),
    "cells-lat50-lon20-26": ((50.0,), (20.0, 26.0)),
}


def _listings(listings: int, seed: int) -> list[tuple[str, str, Place, float | None]]:
    actions = Market(seed, smes=400, carriers=0).actions(50.0, datetime(2026, 12, 1, tzinfo=UTC))
    out: list[tuple[str, str, Place, float | None]] = []
    for action in actions:
        if action.kind not in ("offer", "request"):
            continue
        body = action.body
        where = body["location"]
        km = body["terms"].get("max_distance_km")
        place = Place(float(where["lat"]), float(where["lon"]))
        out.append((action.kind, body["material"]["code"], place, km))
        if len(out) >= listings:
            break
    return out


def _cells(plan: ShardPlan) -> Scheme:
    def key(kind: str, code: str, place: Place, km: float | None) -> str:
        return plan.key(family_of(code), "offer" if kind == "offer" else "request", place, km)

    return key


def count(listings: int, seed: int, hot: int = 4) -> dict[str, Counter[str]]:
    """Offers and requests of the simulator's mix by key, per key scheme; the cell schemes
    split the `hot` busiest families."""
    mix = _listings(listings, seed)
    schemes = dict(SCHEMES)
    families = Counter(family_of(code) for _, code, _, _ in mix)
    busiest = frozenset(f for f, _ in families.most_common(hot))
    for name, (lats, lons) in CUTS.items():
        schemes[name] = _cells(ShardPlan(busiest, lats, lons))
    out: dict[str, Counter[str]] = {name: Counter() for name in schemes}
    for kind, code, place, km in mix:
        for name, key in schemes.items():
            out[name][key(kind, code, place, km)] += 1
    return out


def by_partition(keys: Counter[str], partitions: int) -> Counter[int]:
    every = list(range(partitions))
    partitioner = DefaultPartitioner()
    load: Counter[int] = Counter()
    for key, n in keys.items():
        load[int(partitioner(key.encode(), every, every))] += n
    return load


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listings", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=17)
    parser.add_argument("--partitions", type=int, nargs="+", default=[6, 12])
    parser.add_argument("--hot", type=int, default=4, help="families split into cells")
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()
    report: dict[str, object] = {
        "listings": args.listings,
        "seed": args.seed,
        "hot": args.hot,
        "cuts": {k: {"lat": v[0], "lon": v[1]} for k, v in CUTS.items()},
        "schemes": {},
    }
    schemes: dict[str, object] = {}
    for name, keys in count(args.listings, args.seed, args.hot).items():
        total = sum(keys.values())
        top = ", ".join(f"{k} {v / total:.1%}" for k, v in keys.most_common(5))
        print(f"{name}: {len(keys)} keys; busiest {top}")
        wide = sum(v for k, v in keys.items() if k.endswith("@wide"))
        if wide:
            print(f"  wide keys: {wide / total:.1%} of the listings")
        parts: dict[str, object] = {}
        for partitions in args.partitions:
            load = by_partition(keys, partitions)
            print(
                f"  {partitions} partitions: busiest partition {max(load.values()) / total:.1%},"
                f" {len(load)} of {partitions} hold listings"
            )
            parts[str(partitions)] = {
                "busiest_share": round(max(load.values()) / total, 4),
                "partitions_used": len(load),
            }
        schemes[name] = {
            "keys": len(keys),
            "busiest": [[k, round(v / total, 4)] for k, v in keys.most_common(8)],
            "wide_share": round(wide / total, 4),
            "partitions": parts,
        }
    report["schemes"] = schemes
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(report, f, indent=2)
            f.write("\n")


if __name__ == "__main__":
    main()
