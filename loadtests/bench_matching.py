"""Benchmark of the pure matching core: CPU per event as the open book grows.

    python -m loadtests.bench_matching [--mix simulator|synthetic] [--sizes 10000,100000,1000000]
        [--events 2000] [--repeats 3] [--cores before,after] [--check] [--profile after]

`--mix simulator` (the default): the market simulator's actions (producers/simulator/market.py)
made into the matcher's commands the way the matcher makes them (loadtests/simmix.py: API body
-> OfferPosted/RequestPosted/...Withdrawn -> translate.matching.to_command), with the partners'
answers to the proposals as the simulator gives them, all in one book. The book is grown to each
size by filing the simulator's posts without deciding anything (stepping 1M listings through the
old core would take hours); then 1000 untimed events of the full mix put proposals and answers
in flight, and `repeats` rounds of `events` events are timed. Every event goes through each core
in turn (interleaved: the core as it was, frozen in loadtests/matching_before, and the core as it
is), each timed by time.process_time around `step` alone; the report gives the median µs per
event of the rounds, the speed-up and the ratio to the smallest size. `--check` compares the two
cores' events as they go. `--profile` prints a cProfile of one core's first round. Writes
loadtests/reports/matching-sim-<timestamp>.json (loadtests/reports is ignored: the reports the
docs quote are added with `git add -f`).

`--mix synthetic`: the earlier synthetic workload (a few dozen codes of one sub-chapter family,
places over Sweden and Bulgaria, mixed prices), timing `probe` post-and-withdraw pairs per size
with the current core; it reaches full evaluation far less often than the simulator's mix.
Writes loadtests/reports/matching-<timestamp>.json and .html."""

from __future__ import annotations

import argparse
import cProfile
import gc
import importlib
import json
import os
import pstats
import random
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, fields, is_dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

from marketplace.core.book import Book, Terms
from marketplace.core.economics import MaterialFactor, TransportModel
from marketplace.core.geo import Place
from marketplace.core.matching import Command, MarketConfig, Post, Withdraw, step

REPORTS = Path(__file__).resolve().parent / "reports"
T0 = datetime(2026, 12, 1, tzinfo=UTC)
CODES = [f"1501{n:02d}" for n in range(1, 11)] + [f"2001{n:02d}" for n in range(1, 41)]
FACTOR = MaterialFactor(virgin=2000, reuse=300, disposal=40)
CONFIG = MarketConfig(
    transport=TransportModel(cost_per_tkm={"EUR": 0.12}, kgco2e_per_tkm=0.08),
    factors=dict.fromkeys(CODES, FACTOR),
    substitutions={"150102": ("200139",), "200139": ("150102",)},
)
# Regions where the first associations are: central Sweden and Bulgaria.
AREAS = [(58.5, 61.5, 13.0, 18.5), (41.3, 44.2, 22.4, 28.6)]


@dataclass
class Generator:
    rng: random.Random
    n: int = 0

    def command(self) -> Command:
        self.n += 1
        lat0, lat1, lon0, lon1 = self.rng.choice(AREAS)
        place = Place(self.rng.uniform(lat0, lat1), self.rng.uniform(lon0, lon1))
        is_offer = self.rng.random() < 0.5
        start = T0 + timedelta(days=self.rng.randrange(0, 120))
        terms = Terms(
            quantity=self.rng.uniform(0.5, 30),
            unit="t",
            price=self.rng.uniform(-20, 60) if is_offer else self.rng.uniform(0, 90),
            currency="EUR",
            start=start,
            end=start + timedelta(days=self.rng.randrange(7, 90)),
            max_distance_km=None if is_offer else self.rng.uniform(20, 150),
        )
        return Post(
            event_id=f"e{self.n}",
            at=T0,
            id=f"l{self.n}",
            kind="offer" if is_offer else "request",
            owner=f"p{self.rng.randrange(5000)}",
            code=self.rng.choice(CODES),
            place=place,
            terms=terms,
        )


def measure(sizes: list[int], probe: int, seed: int) -> list[dict[str, float]]:
    gen = Generator(random.Random(seed))
    book = Book()
    rows = []
    for size in sizes:
        build_start = time.perf_counter()
        while len(book.listings) < size:
            book, _ = step(book, gen.command(), CONFIG)
            book.dirty.clear()
        build_s = time.perf_counter() - build_start
        probes = [gen.command() for _ in range(probe)]
        gc.collect()
        proposals = 0
        start = time.perf_counter()
        for c in probes:
            book, out = step(book, c, CONFIG)
            proposals += len(out)
            assert isinstance(c, Post)
            book, _ = step(book, Withdraw(c.event_id + "w", T0, c.id, c.kind, c.owner), CONFIG)
        elapsed = time.perf_counter() - start
        book.dirty.clear()
        events = 2 * probe
        rows.append(
            {
                "book_size": len(book.listings),
                "open_proposals": len(book.proposals),
                "events": events,
                "seconds": elapsed,
                "us_per_event": elapsed / events * 1e6,
                "events_per_s": events / elapsed,
                "proposals_per_probe": proposals / probe,
                "build_seconds": build_s,
            }
        )
        print(
            f"{len(book.listings):>9} listings: {rows[-1]['us_per_event']:8.1f} us/event "
            f"{rows[-1]['events_per_s']:9.0f} events/s (built in {build_s:.1f} s)",
            flush=True,
        )
    base = rows[0]["us_per_event"]
    for r in rows:
        r["ratio_to_smallest"] = r["us_per_event"] / base
    return rows


def svg_plot(rows: list[dict[str, Any]]) -> str:
    import math

    w, h, pad = 560, 300, 50
    xs = [math.log10(r["book_size"]) for r in rows]
    ys = [r["us_per_event"] for r in rows]
    x0, x1 = min(xs), max(xs) if max(xs) > min(xs) else min(xs) + 1
    y1 = max(ys) * 1.2
    pts = [
        (pad + (x - x0) / (x1 - x0) * (w - 2 * pad), h - pad - y / y1 * (h - 2 * pad))
        for x, y in zip(xs, ys, strict=True)
    ]
    line = " ".join(f"{x:.1f},{y:.1f}" for x, y in pts)
    labels = "".join(
        f'<circle cx="{x:.1f}" cy="{y:.1f}" r="4"/>'
        f'<text x="{x:.1f}" y="{h - pad + 18}" text-anchor="middle">{int(r["book_size"]):,}</text>'
        f'<text x="{x:.1f}" y="{y - 10:.1f}" text-anchor="middle">{r["us_per_event"]:.0f} µs</text>'
        for (x, y), r in zip(pts, rows, strict=True)
    )
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-size="12">'
        f'<line x1="{pad}" y1="{h - pad}" x2="{w - pad}" y2="{h - pad}" stroke="black"/>'
        f'<line x1="{pad}" y1="{pad}" x2="{pad}" y2="{h - pad}" stroke="black"/>'
        f'<text x="{w / 2}" y="{h - 8}" text-anchor="middle">open listings (log scale)</text>'
        f'<text x="14" y="{h / 2}" transform="rotate(-90 14 {h / 2})" text-anchor="middle">'
        f"µs per event</text>"
        f'<polyline points="{line}" fill="none" stroke="#2a7" stroke-width="2"/>{labels}</svg>'
    )


# The simulator's mix, A/B between the core as it was (loadtests/matching_before) and as it is ---


class Core:
    """One implementation of the core: its step, its book, and its own classes for commands."""

    def __init__(self, name: str, matching: ModuleType, book: ModuleType) -> None:
        self.name = name
        self.matching = matching
        self.book_module = book
        self.book: Any = book.Book()
        self.step: Callable[..., tuple[Any, list[Any]]] = matching.step
        self.config: Any = None
        self.classes: dict[str, type] = {}
        for module in _modules_of(matching):
            for attr in vars(module).values():
                if isinstance(attr, type) and is_dataclass(attr):
                    self.classes.setdefault(attr.__name__, attr)

    def own(self, obj: Any) -> Any:
        """A value of the new core's types as this core's (the same when it is the new core)."""
        return convert(obj, self.classes) if self.name != "after" else obj

    def file(self, post: Post) -> None:
        """Files a posted listing without deciding anything: how the book grows to a size."""
        book = self.book
        if post.id in book.listings:
            return
        book.seq += 1
        cmd = self.own(post)
        listing = self.book_module.Listing(
            id=cmd.id,
            kind=cmd.kind,
            owner=cmd.owner,
            code=cmd.code,
            place=cmd.place,
            terms=cmd.terms,
            seq=book.seq,
            hazardous=cmd.hazardous,
            hazardous_permit=cmd.hazardous_permit,
            accepts=cmd.accepts,
            density=cmd.density,
            mass_per_piece=cmd.mass_per_piece,
            stated=cmd.stated,
        )
        book.listings[listing.id] = listing
        book.file(listing, self.config.substitutions)


def _modules_of(matching: ModuleType) -> list[ModuleType]:
    package = matching.__name__.rsplit(".", 1)[0]
    names = ("matching", "book", "geo", "specification", "economics")
    return [importlib.import_module(f"{package}.{n}") for n in names]


def convert(obj: Any, classes: dict[str, type]) -> Any:
    """Rebuilds dataclass values (commands, terms, places...) with the classes of the same name
    in `classes`; anything else as it is."""
    if is_dataclass(obj) and not isinstance(obj, type):
        cls = classes.get(type(obj).__name__)
        values = {f.name: convert(getattr(obj, f.name), classes) for f in fields(obj) if f.init}
        return obj if cls is None else cls(**values)
    if isinstance(obj, tuple):
        return tuple(convert(v, classes) for v in obj)
    if isinstance(obj, list):
        return [convert(v, classes) for v in obj]
    if isinstance(obj, dict):
        return {k: convert(v, classes) for k, v in obj.items()}
    return obj


def plain(obj: Any) -> Any:
    """A value as nested tuples and dicts (dataclasses by class name and fields), so that the
    events of two cores with classes of their own compare field by field."""
    if is_dataclass(obj) and not isinstance(obj, type):
        return (type(obj).__name__, *(plain(getattr(obj, f.name)) for f in fields(obj)))
    if isinstance(obj, tuple | list):
        return tuple(plain(v) for v in obj)
    if isinstance(obj, dict):
        return {k: plain(v) for k, v in obj.items()}
    if isinstance(obj, set):
        return frozenset(plain(v) for v in obj)
    return obj


AFTER_CLASSES = {
    cls.__name__: cls
    for module in ("matching", "book", "geo", "specification", "economics")
    for cls in vars(importlib.import_module(f"marketplace.core.{module}")).values()
    if isinstance(cls, type) and is_dataclass(cls)
}


def cores(names: list[str]) -> list[Core]:
    from loadtests.matching_before import book as before_book
    from loadtests.matching_before import matching as before_matching
    from marketplace.core import book as after_book
    from marketplace.core import matching as after_matching

    known = {
        "before": (before_matching, before_book),
        "after": (after_matching, after_book),
    }
    out = []
    for name in names:
        matching, book = known[name]
        core = Core(name, matching, book)
        out.append(core)
    return out


def measure_simulator(
    sizes: list[int],
    events: int,
    repeats: int,
    seed: int,
    names: list[str],
    check: bool,
    profile: str | None,
) -> list[dict[str, Any]]:
    """Grows one book per core to each size by filing the simulator's posts (no decisions),
    runs `warmup` untimed events of the full mix, then `repeats` rounds of `events` events of
    the full mix (posts, withdrawals, the partners' answers) through every core in turn, each
    core timed by process_time around `step` alone. Every core gets the same commands; with
    `check` their events are compared (outside the timing)."""
    from loadtests.simmix import SimMix, config

    cfg = config()
    ab = cores(names)
    for core in ab:
        core.config = core.own(cfg)
    fill = SimMix(seed)
    mix = SimMix(seed + 1)
    rows: list[dict[str, Any]] = []
    for size in sizes:
        build = time.perf_counter()
        while len(ab[0].book.listings) < size:
            command = next(fill)
            if isinstance(command, Post):  # the book grows by the posts alone
                for core in ab:
                    core.file(command)
        build_s = time.perf_counter() - build
        gc.collect()
        _run(ab, mix, min(events, 1000), check, None)  # warm-up: proposals and answers in flight
        load_at_start = os.getloadavg()
        samples: dict[str, list[float]] = {c.name: [] for c in ab}
        kinds: dict[str, int] = {}
        for r in range(repeats):
            before_counts = dict(mix.counts)
            spent = _run(ab, mix, events, check, profile if r == 0 else None)
            for name, s in spent.items():
                samples[name].append(s / events * 1e6)
            for k, v in mix.counts.items():
                kinds[k] = kinds.get(k, 0) + v - before_counts.get(k, 0)
        row: dict[str, Any] = {
            "book_size": len(ab[0].book.listings),
            "open_proposals": len(ab[0].book.proposals),
            "events_per_repeat": events,
            "repeats": repeats,
            "mix": kinds,
            "build_seconds": build_s,
            "load_average_at_start": load_at_start,
            "load_average": os.getloadavg(),
        }
        for name, xs in samples.items():
            row[f"us_per_event_{name}"] = statistics.median(xs)
            row[f"samples_{name}"] = xs
        if "before" in samples and "after" in samples:
            row["speedup"] = row["us_per_event_before"] / row["us_per_event_after"]
        rows.append(row)
        print(
            f"{row['book_size']:>9} listings:  "
            + "  ".join(f"{n} {row[f'us_per_event_{n}']:8.1f} us/event" for n in samples)
            + (f"  speed-up {row['speedup']:.1f}x" if "speedup" in row else "")
            + f"  (load {row['load_average'][0]:.2f}, built in {build_s:.0f} s)",
            flush=True,
        )
    for name in names:
        base = rows[0][f"us_per_event_{name}"]
        for row in rows:
            row[f"ratio_to_smallest_{name}"] = row[f"us_per_event_{name}"] / base
    return rows


def _run(
    ab: list[Core], mix: Any, events: int, check: bool, profile: str | None
) -> dict[str, float]:
    """`events` commands of the mix through every core; returns the CPU seconds each spent."""
    spent = dict.fromkeys((c.name for c in ab), 0.0)
    profiler = cProfile.Profile() if profile else None
    clock = time.process_time
    for _ in range(events):
        command = next(mix)
        outs = []
        for core in ab:
            own = core.own(command)
            if profiler is not None and core.name == profile:
                profiler.enable()
            t = clock()
            core.book, out = core.step(core.book, own, core.config)
            spent[core.name] += clock() - t
            if profiler is not None and core.name == profile:
                profiler.disable()
            core.book.dirty.clear()
            outs.append(out)
        if check and len(outs) > 1:
            first = plain(outs[0])
            for core, out in zip(ab[1:], outs[1:], strict=True):
                if plain(out) != first:
                    raise SystemExit(f"{core.name} decided otherwise than {ab[0].name}: {command}")
        after = next((o for c, o in zip(ab, outs, strict=True) if c.name == "after"), None)
        mix.observe(after if after is not None else convert(outs[0], AFTER_CLASSES))
    if profiler is not None:
        stats = pstats.Stats(profiler)
        stats.sort_stats("tottime").print_stats(25)
        stats.sort_stats("cumulative").print_stats(25)
    return spent


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--mix", choices=("simulator", "synthetic"), default="simulator")
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--probe", type=int, default=2000, help="synthetic: pairs per size")
    parser.add_argument("--events", type=int, default=2000, help="simulator: events per repeat")
    parser.add_argument("--repeats", type=int, default=3, help="simulator: rounds per size")
    parser.add_argument("--cores", default="before,after", help="simulator: before, after or both")
    parser.add_argument("--check", action="store_true", help="simulator: compare the decisions")
    parser.add_argument("--profile", choices=("before", "after"), help="cProfile one core")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    sizes = sorted(int(s) for s in args.sizes.split(","))
    if not (0 < max(sizes) <= 2_000_000 and 0 < args.events <= 100_000 and args.repeats >= 1):
        parser.error("keep it bounded: sizes up to 2e6, events up to 1e5 per repeat")
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    REPORTS.mkdir(exist_ok=True)
    if args.mix == "synthetic":
        rows: list[dict[str, Any]] = [dict(r) for r in measure(sizes, args.probe, args.seed)]
        _write_synthetic(rows, args.probe, args.seed, stamp)
        return
    names = args.cores.split(",")
    rows = measure_simulator(
        sizes, args.events, args.repeats, args.seed, names, args.check, args.profile
    )
    report = {
        "benchmark": "matching core, simulator mix, cost per event vs open book (A/B)",
        "when": stamp,
        "cpu": "time.process_time around step() only; median of the repeats",
        "machine": f"{os.cpu_count()} CPUs shared with other agents running tests",
        "events_per_repeat": args.events,
        "repeats": args.repeats,
        "seed": args.seed,
        "cores": names,
        "rows": rows,
    }
    (REPORTS / f"matching-sim-{stamp}.json").write_text(json.dumps(report, indent=2))
    print(f"report: loadtests/reports/matching-sim-{stamp}.json")


def _write_synthetic(rows: list[dict[str, Any]], probe: int, seed: int, stamp: str) -> None:
    report = {
        "benchmark": "matching core, cost per event vs open book",
        "when": stamp,
        "probe_pairs": probe,
        "seed": seed,
        "rows": rows,
    }
    (REPORTS / f"matching-{stamp}.json").write_text(json.dumps(report, indent=2))
    table = "".join(
        f"<tr><td>{int(r['book_size']):,}</td><td>{r['us_per_event']:.1f}</td>"
        f"<td>{r['events_per_s']:,.0f}</td><td>{r['ratio_to_smallest']:.2f}</td></tr>"
        for r in rows
    )
    (REPORTS / f"matching-{stamp}.html").write_text(
        "<!doctype html><meta charset=utf-8><title>Matching core benchmark</title>"
        "<h1>Matching core: cost per event as the book grows</h1>"
        f"<p>{probe} post+withdraw pairs per size, seed {seed}, {stamp}.</p>"
        "<table border=1 cellpadding=4><tr><th>open listings</th><th>µs/event</th>"
        f"<th>events/s</th><th>ratio to smallest</th></tr>{table}</table>{svg_plot(rows)}"
    )
    print(f"report: loadtests/reports/matching-{stamp}.json and .html")


if __name__ == "__main__":
    main()
