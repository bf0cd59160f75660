"""What an idle exchange's consumers cost the broker, by fetch wait (issue #18).

    python -m loadtests.idle_fetch [--consumers 10] [--seconds 20] [--waits 10,25,100,500]

Starts `--consumers` aiokafka consumers, each in a group of its own subscribed to the market
topics as the services are, with nothing to read, and measures the broker's CPU seconds over
`--seconds` at each fetch wait, interleaved twice. The broker is shared with whatever else runs:
a run with no consumers at all (wait "none") measures that background. Writes
loadtests/reports/idle-fetch-<timestamp>.json."""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import uuid
from typing import Any

from loadtests import cpu
from loadtests.report import machine, write_report
from marketplace.kafka import make_consumer
from marketplace.settings import Settings

TOPICS = ("market.listings", "market.matches", "logistics.jobs", "partners.registry")


async def idle(settings: Settings, consumers: int, seconds: float, wait_ms: int | None) -> float:
    """The broker's CPU seconds per wall second with `consumers` idle consumers polling."""
    started = []
    if wait_ms is not None:
        for _ in range(consumers):
            c = make_consumer(
                settings, f"bench.idle.{uuid.uuid4().hex[:8]}", fetch_max_wait_ms=wait_ms
            )
            await c.start()
            c.subscribe(list(TOPICS))
            started.append(c)
    stop = time.monotonic() + seconds + 5

    async def poll(c: Any) -> None:
        while time.monotonic() < stop:
            await c.getmany(timeout_ms=200)

    tasks = [asyncio.create_task(poll(c)) for c in started]
    try:
        await asyncio.sleep(5)  # joined, assigned, at the end of each partition
        before = cpu.snapshot()
        t0 = time.monotonic()
        await asyncio.sleep(seconds)
        after = cpu.snapshot()
        return (after.broker_s - before.broker_s) / (time.monotonic() - t0)
    finally:
        await asyncio.gather(*tasks, return_exceptions=True)
        for c in started:
            await c.stop()


async def measure(args: argparse.Namespace) -> dict[str, Any]:
    settings = Settings.from_env()
    waits: list[int | None] = [None, *args.waits]
    samples: dict[str, list[float]] = {str(w): [] for w in waits}
    for _ in range(args.repeat):
        for w in waits:
            rate = await idle(settings, args.consumers, args.seconds, w)
            samples[str(w)].append(rate)
            print(f"fetch wait {w!s:>5} ms: broker {rate:.3f} CPU s per s", flush=True)
    return {
        "consumers": args.consumers,
        "seconds": args.seconds,
        "broker_cpu_s_per_s": {w: statistics.median(v) for w, v in samples.items()},
        "samples": samples,
        "machine_at_end": machine(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--consumers", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--waits", default="10,25,100,500")
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    args.waits = [int(w) for w in args.waits.split(",")]
    if not (0 < args.consumers <= 30 and 0 < args.seconds <= 120 and 1 <= args.repeat <= 5):
        parser.error("keep it bounded: consumers 1..30, seconds 1..120, repeat 1..5")
    result = asyncio.run(measure(args))
    rows = [[w, f"{r:.3f}"] for w, r in result["broker_cpu_s_per_s"].items()]
    paths = write_report(
        "idle-fetch",
        title="The broker's CPU for idle consumers, by fetch wait",
        summary=(
            f"{args.consumers} idle consumers on {len(TOPICS)} topics, {args.seconds:.0f} s per"
            f" sample, medians of {args.repeat}; 'None' is the broker with none of them (the"
            " background load of whatever else runs)"
        ),
        data=result,
        headers=["fetch wait, ms", "broker CPU seconds per second"],
        rows=rows,
    )
    print(f"report: {paths[0]}")


if __name__ == "__main__":
    main()
