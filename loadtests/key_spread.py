"""How the market topics' traffic spreads over keys and partitions (#17, the hot-class
measurement): the simulator's offers and requests counted by the key they would be published
under, by the 4-digit sub-chapter (the key before material families) and by the material family
(the key now), and per partition as Kafka's default partitioner (murmur2 of the key) places them.

    python -m loadtests.key_spread [--listings 20000] [--seed 17] [--partitions 6 12]

Prints one line per key scheme: the busiest keys with their share, then per partition count the
busiest partition's share and how many partitions hold any listing."""

from __future__ import annotations

import argparse
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime

from aiokafka.partitioner import DefaultPartitioner

from marketplace.core.families import family_of
from producers.simulator.market import Market

SCHEMES: dict[str, Callable[[str], str]] = {
    "subchapter": lambda code: code[:4],
    "family": family_of,
}


def count(listings: int, seed: int) -> dict[str, Counter[str]]:
    """Offers and requests of the simulator's mix by key, per key scheme."""
    actions = Market(seed, smes=400, carriers=0).actions(50.0, datetime(2026, 12, 1, tzinfo=UTC))
    out: dict[str, Counter[str]] = {name: Counter() for name in SCHEMES}
    n = 0
    for action in actions:
        if action.kind not in ("offer", "request"):
            continue
        code = action.body["material"]["code"]
        for name, key in SCHEMES.items():
            out[name][key(code)] += 1
        n += 1
        if n >= listings:
            break
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
    args = parser.parse_args()
    for name, keys in count(args.listings, args.seed).items():
        total = sum(keys.values())
        top = ", ".join(f"{k} {v / total:.1%}" for k, v in keys.most_common(5))
        print(f"{name}: {len(keys)} keys; busiest {top}")
        for partitions in args.partitions:
            load = by_partition(keys, partitions)
            print(
                f"  {partitions} partitions: busiest partition {max(load.values()) / total:.1%},"
                f" {len(load)} of {partitions} hold listings"
            )


if __name__ == "__main__":
    main()
