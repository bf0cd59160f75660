"""The hot-class measurement by the decisions' own work (#17 item 2): the market simulator's mix
(loadtests/simmix.py: the simulator's posts and withdrawals, the partners' answers) decided

- as the matcher decides it without a split: one book per material family key, and
- with the busiest families split into geographic cells (marketplace/core/shards.py): every
  cell and wide key with a state of its own, the loans between them delivered at once, the
  commands that name no place sent to every key of the family (as the matcher forwards them).

The CPU time of each key's decisions is measured around them (the core alone: no Kafka, no
PostgreSQL). Kafka's default partitioner puts each key on a partition; the busiest partition's
share of all the decisions' CPU is what one instance carries at least, however many instances
the group runs.

    python -m loadtests.cells_spread [--commands 20000] [--seed 7] [--hot 4]
        [--lat-cuts 50] [--lon-cuts ""] [--partitions 6 12 24] [--json FILE]"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections import Counter, defaultdict, deque
from collections.abc import Callable
from datetime import datetime
from typing import Any

from aiokafka.partitioner import DefaultPartitioner

from loadtests.simmix import SimMix, config
from marketplace.core.book import Book
from marketplace.core.families import family_of
from marketplace.core.matching import (
    Answer,
    Command,
    DeadlineDue,
    Event,
    MarketConfig,
    PeriodDue,
    Post,
    Proposed,
    Update,
    Withdraw,
    step,
)
from marketplace.core.shards import WIDE, CellState, ShardPlan, WideState, cell_step, wide_step


class Run:
    """One pass over the mix with a plan (an empty plan: the family keys)."""

    def __init__(self, plan: ShardPlan, cfg: MarketConfig) -> None:
        self.plan = plan
        self.cfg = cfg
        self.books: dict[str, Book] = {}
        self.cells: dict[str, CellState] = {}
        self.wides: dict[str, WideState] = {}
        self.cpu: dict[str, float] = defaultdict(float)  # seconds per key
        self.messages: Counter[str] = Counter()  # deliveries per key
        self.listing_family: dict[str, str] = {}
        self.match_family: dict[str, str] = {}
        self.proposals = 0
        self.commands = 0

    def family(self, command: Command) -> str | None:
        match command:
            case Post():
                family = family_of(command.code)
                self.listing_family[command.id] = family
                return family
            case Update() | Withdraw():
                return self.listing_family.get(command.id)
            case Answer() | DeadlineDue() | PeriodDue():
                return self.match_family.get(command.match_id)

    def decide(self, command: Command, observe: Callable[[list[Event]], None]) -> None:
        family = self.family(command)
        if family is None:
            return
        self.commands += 1
        if family not in self.plan.families:
            book = self.books.setdefault(family, Book())
            started = time.process_time()
            _, events = step(book, command, self.cfg)
            self.cpu[family] += time.process_time() - started
            self.messages[family] += 1
            self._made(family, events)
            observe(events)
            return
        keys: tuple[str, ...]
        if isinstance(command, Post):
            radius = command.terms.max_distance_km
            keys = (self.plan.key(family, command.kind, command.place, radius),)
        elif isinstance(command, Update | Withdraw):
            keys = self.plan.keys(family)
        else:
            keys = self.plan.keys(family)[:-1]
        queue: deque[tuple[str, Any]] = deque((k, command) for k in keys)
        at: datetime = command.at
        while queue:
            key, message = queue.popleft()
            self.messages[key] += 1
            name = key.partition("@")[2]
            started = time.process_time()
            if name == WIDE:
                wide = self.wides.setdefault(family, WideState())
                outs = wide_step(wide, message, self.cfg, at)
                self.cpu[key] += time.process_time() - started
                queue.extend((f"{family}@{cell}", out) for cell, out in outs)
                continue
            cell = self.cells.setdefault(key, CellState(name))
            events, reports = cell_step(cell, message, self.cfg, self.plan)
            cell.book.dirty.clear()  # the consumer saves and clears it per batch
            self.cpu[key] += time.process_time() - started
            queue.extend((f"{family}@{WIDE}", r) for r in reports)
            self._made(family, events)
            observe(events)

    def _made(self, family: str, events: list[Event]) -> None:
        for e in events:
            if isinstance(e, Proposed):
                self.match_family[e.proposal.match_id] = family
                self.proposals += 1


def by_partition(load: dict[str, float], partitions: int) -> dict[int, float]:
    every = list(range(partitions))
    partitioner = DefaultPartitioner()
    out: dict[int, float] = defaultdict(float)
    for key, value in load.items():
        out[int(partitioner(key.encode(), every, every))] += value
    return out


def measure(plan: ShardPlan, commands: int, seed: int, cfg: MarketConfig) -> Run:
    mix = SimMix(seed)
    run = Run(plan, cfg)
    for command in mix:
        run.decide(command, mix.observe)
        if run.commands >= commands:
            break
    return run


def summary(run: Run, partitions: list[int]) -> dict[str, Any]:
    total = sum(run.cpu.values())
    keys = sorted(((v / total, k) for k, v in run.cpu.items()), reverse=True)
    wide = sum(v for k, v in run.cpu.items() if k.endswith(f"@{WIDE}"))
    return {
        "commands": run.commands,
        "proposals": run.proposals,
        "cpu_s": round(total, 3),
        "deliveries": sum(run.messages.values()),
        "keys": len(run.cpu),
        "busiest_keys": [[k, round(v, 4)] for v, k in keys[:6]],
        "wide_cpu_share": round(wide / total, 4),
        "busiest_partition": {
            str(n): round(max(by_partition(run.cpu, n).values()) / total, 4) for n in partitions
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--commands", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--hot", type=int, default=4, help="the busiest families, split")
    parser.add_argument("--lat-cuts", default="50")
    parser.add_argument("--lon-cuts", default="")
    parser.add_argument("--partitions", type=int, nargs="+", default=[6, 12, 24])
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()
    cfg = config()
    whole = measure(ShardPlan(), args.commands, args.seed, cfg)
    hot = frozenset(sorted(whole.cpu, key=lambda k: -whole.cpu[k])[: args.hot])
    lats = tuple(float(c) for c in args.lat_cuts.split(",") if c.strip())
    lons = tuple(float(c) for c in args.lon_cuts.split(",") if c.strip())
    split = measure(ShardPlan(hot, lats, lons), args.commands, args.seed, cfg)
    report = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "load_average": list(os.getloadavg()),
        "seed": args.seed,
        "split_families": sorted(hot),
        "lat_cuts": lats,
        "lon_cuts": lons,
        "family_keys": summary(whole, args.partitions),
        "cells": summary(split, args.partitions),
    }
    for name in ("family_keys", "cells"):
        s = report[name]
        print(
            f"{name}: {s['commands']:,} commands, {s['proposals']:,} proposals,"
            f" {s['cpu_s']} s CPU, {s['deliveries']:,} deliveries over {s['keys']} keys;"
            f" busiest keys {s['busiest_keys'][:4]}; busiest partition"
            f" {s['busiest_partition']}"
        )
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(report, f, indent=2)
            f.write("\n")


if __name__ == "__main__":
    main()
