"""Proposals per material chapter in a simulated day (#17, "Done when": none of the seeds'
chapters 02, 04, 15, 17, 19 and 20 at zero).

The market simulator's mix (`producers/simulator/market.py`, through `loadtests/simmix.py`:
offers, requests and withdrawals as the API would publish them, the partners' answers as the
simulator's driver gives them) runs for a simulated day through the pure matching core with one
book over the whole market, which decides what the matcher decides at any partition count
(tests/unit/test_one_book.py, tests/integration/test_one_book_matchers.py). A proposal counts
for the chapter of its offered material (`proposals`) and for the chapter of its request
(`proposals_to_requests_of_this_chapter`). Nothing leaves the process: no network at all.
Bounded by the simulated time, a count of actions (offers, requests, withdrawals) and a
wall-clock limit, whichever comes first (the report says which).

    python -m loadtests.chapters_day [--seed 1] [--smes 400] [--rate 1.0] [--hours 24]
        [--max-actions 100000] [--limit-s 600]

writes loadtests/reports/chapters-<timestamp>.json and exits 1 when a seed chapter has no
proposal for its offered material."""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from loadtests.simmix import START, SimMix, config
from marketplace.core.book import Book
from marketplace.core.matching import Confirmed, Post, Proposed, Withdraw, step
from marketplace.reference import list_of_waste

SEED_CHAPTERS = ("02", "04", "15", "17", "19", "20")
REPORTS = Path(__file__).resolve().parent / "reports"


@dataclass
class Chapter:
    offers: int = 0
    requests: int = 0
    proposals: int = 0
    proposed_t: float = 0.0
    co2e_unknown: int = 0  # proposals whose offered material has no sourced factor
    other_chapter: int = 0  # proposals whose request is of another chapter
    wanted: int = 0  # proposals whose request is of this chapter (whatever the offer's)
    confirmed: int = 0
    confirmed_t: float = 0.0
    codes: dict[str, int] = field(default_factory=dict)  # proposals per offered code


def run(
    *, seed: int, smes: int, rate: float, seconds: float, max_actions: int, limit_s: float
) -> dict[str, Any]:
    cfg = config()
    mix = SimMix(seed, smes=smes, rate=rate)
    book = Book()
    chapters: dict[str, Chapter] = {}
    commands = actions = 0
    stopped = "simulated time"
    started = time.perf_counter()
    for command in mix:
        if mix.now_s >= seconds:
            break
        if actions >= max_actions:
            stopped = "count of actions"
            break
        if time.perf_counter() - started > limit_s:
            stopped = "wall-clock limit"
            break
        commands += 1
        actions += isinstance(command, Post | Withdraw)
        if isinstance(command, Post):
            c = chapters.setdefault(command.code[:2], Chapter())
            if command.kind == "offer":
                c.offers += 1
            else:
                c.requests += 1
        book, events = step(book, command, cfg)
        for e in events:
            if isinstance(e, Proposed):
                p = e.proposal
                c = chapters.setdefault(p.code[:2], Chapter())
                c.proposals += 1
                c.proposed_t += p.quantity
                c.co2e_unknown += p.estimate.saved_co2e_kg is None
                request = book.listings.get(p.request_id)
                if request is not None:
                    c.other_chapter += request.code[:2] != p.code[:2]
                    chapters.setdefault(request.code[:2], Chapter()).wanted += 1
                c.codes[p.code] = c.codes.get(p.code, 0) + 1
            elif isinstance(e, Confirmed):
                c = chapters.setdefault(e.proposal.code[:2], Chapter())
                c.confirmed += 1
                c.confirmed_t += e.proposal.quantity
        mix.observe(events)
    titles = list_of_waste()
    per_chapter = {
        ch: {
            "title": entry.description if (entry := titles.get(ch)) else None,
            "offers": c.offers,
            "requests": c.requests,
            "proposals": c.proposals,
            "proposed_t": round(c.proposed_t, 1),
            "proposals_co2e_unknown": c.co2e_unknown,
            "proposals_with_a_request_of_another_chapter": c.other_chapter,
            "proposals_to_requests_of_this_chapter": c.wanted,
            "confirmed": c.confirmed,
            "confirmed_t": round(c.confirmed_t, 1),
            "proposals_per_code": dict(sorted(c.codes.items())),
        }
        for ch, c in sorted(chapters.items())
    }
    zero = [ch for ch in SEED_CHAPTERS if per_chapter.get(ch, {}).get("proposals", 0) == 0]
    return {
        "what": "proposals per List of Waste chapter (of the offered material) in a simulated "
        "day of the market simulator's mix, decided by the matching core with one book",
        "seed": seed,
        "smes": smes,
        "actions_per_s": rate,
        "simulated_from": START.isoformat(),
        "simulated_s": round(min(mix.now_s, seconds), 1),
        "stopped_by": stopped,
        "actions": actions,
        "commands": commands,
        "commands_by_kind": dict(sorted(mix.counts.items())),
        "open_listings_at_the_end": len(book.listings),
        "wall_s": round(time.perf_counter() - started, 1),
        "proposals": sum(c.proposals for c in chapters.values()),
        "confirmed": sum(c.confirmed for c in chapters.values()),
        "seed_chapters": {ch: per_chapter.get(ch, {}).get("proposals", 0) for ch in SEED_CHAPTERS},
        "seed_chapters_by_request": {
            ch: per_chapter.get(ch, {}).get("proposals_to_requests_of_this_chapter", 0)
            for ch in SEED_CHAPTERS
        },
        "seed_chapters_at_zero": zero,
        "chapters": per_chapter,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description="proposals per material chapter in a day")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--smes", type=int, default=400)
    parser.add_argument("--rate", type=float, default=1.0, help="actions per simulated second")
    parser.add_argument("--hours", type=float, default=24.0, help="simulated hours")
    parser.add_argument("--max-actions", type=int, default=100_000)
    parser.add_argument("--limit-s", type=float, default=600.0, help="wall-clock seconds")
    args = parser.parse_args()
    report = run(
        seed=args.seed,
        smes=args.smes,
        rate=args.rate,
        seconds=args.hours * 3600,
        max_actions=args.max_actions,
        limit_s=args.limit_s,
    )
    REPORTS.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = REPORTS / f"chapters-{stamp}.json"
    path.write_text(json.dumps(report, indent=1, ensure_ascii=False) + "\n")
    summary = {k: v for k, v in report.items() if k != "chapters"}
    summary["offers_requests_per_chapter"] = {
        ch: [c["offers"], c["requests"]] for ch, c in report["chapters"].items()
    }
    print(json.dumps(summary, indent=1, ensure_ascii=False))
    print(f"report: loadtests/reports/{path.name}")
    sys.exit(1 if report["seed_chapters_at_zero"] else 0)


if __name__ == "__main__":
    main()
