"""Benchmark of the pure matching core: cost per event as the open book grows.

    python -m loadtests.bench_matching [--sizes 1000,10000,100000,1000000] [--probe 2000]

Grows one partition's book to each size with a realistic spread of listings (a few dozen codes
of one sub-chapter family, places over Sweden and Bulgaria, mixed prices), then times `probe`
post-and-withdraw pairs at that size. The baseline is the smallest size, measured in the same
run; the report gives every size's per-event cost as a ratio to it. Writes
loadtests/reports/matching-<timestamp>.json and .html."""

from __future__ import annotations

import argparse
import gc
import json
import random
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

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


def svg_plot(rows: list[dict[str, float]]) -> str:
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="1000,10000,100000,1000000")
    parser.add_argument("--probe", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    sizes = sorted(int(s) for s in args.sizes.split(","))
    rows = measure(sizes, args.probe, args.seed)
    REPORTS.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    report = {
        "benchmark": "matching core, cost per event vs open book",
        "when": stamp,
        "probe_pairs": args.probe,
        "seed": args.seed,
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
        f"<p>{args.probe} post+withdraw pairs per size, seed {args.seed}, {stamp}.</p>"
        "<table border=1 cellpadding=4><tr><th>open listings</th><th>µs/event</th>"
        f"<th>events/s</th><th>ratio to smallest</th></tr>{table}</table>{svg_plot(rows)}"
    )
    print(f"report: loadtests/reports/matching-{stamp}.json and .html")


if __name__ == "__main__":
    main()
