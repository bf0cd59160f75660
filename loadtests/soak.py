"""A soak run: every service in one process with the market simulator driving it at a steady rate
for a long time, while memory and consumer lag are sampled; neither may grow without bound.

    python -m loadtests.soak [--minutes 30] [--rate 2] [--sample-s 10]

The services run as `python -m loadtests.stack soak.<tag> --simulate RATE` (what `marketplace run
all --simulate` runs, with consumer groups of the soak's own, so it never joins the groups of a
`marketplace run all` or a test on the same broker) against a scratch database (dropped
afterwards); the groups start at the topics' current ends, so only the soak's own traffic is
processed. Every sample records the process's resident memory and CPU, each group's lag and the
machine's load average (the machine may be shared: the report shows how busy it was).
On a broker that other runs use, the soak's consumers also process (and its matcher and
auctioneer decide on) their traffic; give it a broker of its own:

    loadtests/broker.sh up soak 29092 && MARKETPLACE_KAFKA_PORT=29092 python -m loadtests.soak

The verdict (`loadtests/trend.py`): memory and total lag are each fitted with a line over the
first and over the second half of the run; a series counts as growing without bound when the
second half's fitted growth exceeds 10 % of its mean (lag: or 500 records, whichever is more).
The matcher keeps its book of open listings in memory and listings stay open for their 30 to
120 days, so during a soak the book (sampled too) only grows; memory is also judged net of the
book (memory minus the fitted cost per open listing), which must not grow.
Writes loadtests/reports/soak-<timestamp>.json and .html."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import os
import signal
import socket
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from aiokafka import TopicPartition

from loadtests.report import commit, line_chart, machine, table, write_report
from loadtests.scratch import scratch_database
from loadtests.stack import ALL, start_at_end, subscriptions
from loadtests.trend import net_of, trend
from marketplace.db import connect
from marketplace.kafka import make_consumer, partition_counts
from marketplace.settings import Settings
from schemas.topics import TOPICS

LAG_FLOOR = 500.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def soak(minutes: float, rate: float, sample_s: float) -> dict[str, Any]:
    settings = Settings.from_env()
    samples: list[dict[str, Any]] = []
    prefix = f"soak.{uuid.uuid4().hex[:6]}"
    groups = subscriptions(prefix)
    started_at = machine()
    code = commit()  # what runs is what was checked out at the start
    async with scratch_database(settings, "soak") as scratch:
        await start_at_end(scratch, groups)
        counts = await partition_counts(settings, [spec.name for spec in TOPICS])
        reader = make_consumer(settings, None)
        await reader.start()
        conn = await connect(scratch)
        try:
            env = {
                **os.environ,
                "MARKETPLACE_DATABASE_URL": scratch.dsn,
                "MARKETPLACE_HTTP_PORT": str(free_port()),
                "MARKETPLACE_METRICS_PORT": str(free_port()),
                "MARKETPLACE_LOG_LEVEL": "warning",
            }
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "loadtests.stack",
                prefix,
                "--services",
                ",".join(ALL),
                "--simulate",
                str(rate),
                env=env,
                stdout=asyncio.subprocess.DEVNULL,
            )
            t0 = time.monotonic()
            cpu0, at0 = 0.0, t0
            parts = [TopicPartition(t, p) for t, n in counts.items() for p in range(n)]
            stop = asyncio.Event()  # SIGTERM/SIGINT end the run early, with its report
            for sig in (signal.SIGTERM, signal.SIGINT):
                asyncio.get_running_loop().add_signal_handler(sig, stop.set)
            try:
                while time.monotonic() - t0 < minutes * 60:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), sample_s)
                    if stop.is_set():
                        break
                    if proc.returncode is not None:
                        raise RuntimeError(f"the services stopped (exit {proc.returncode})")
                    rows = await conn.fetch(
                        "SELECT group_id, topic, partition, next_offset FROM consumer_offsets"
                        " WHERE group_id = ANY($1::text[])",
                        list(groups),
                    )
                    ends = {
                        (tp.topic, tp.partition): o
                        for tp, o in (await reader.end_offsets(parts)).items()
                    }
                    per_group: dict[str, int] = dict.fromkeys(groups, 0)
                    for r in rows:
                        behind = ends.get((r["topic"], r["partition"]), 0) - r["next_offset"]
                        per_group[r["group_id"]] += max(0, behind)
                    book = await conn.fetchval(
                        "SELECT count(*) FROM matcher_items WHERE group_id = $1 AND kind ="
                        " 'listing'",
                        f"{prefix}.matcher",
                    )
                    now, cpu = time.monotonic(), cpu_s(proc.pid)
                    lags = {g.removeprefix(prefix + "."): v for g, v in per_group.items()}
                    sample: dict[str, Any] = {
                        "minute": (now - t0) / 60,
                        "rss_mb": rss_mb(proc.pid),
                        "open_listings": float(book),
                        "cpu_cores": (cpu - cpu0) / max(now - at0, 1e-6),
                        "load_1m": os.getloadavg()[0],
                        "lag_records": float(sum(per_group.values())),
                        "lag": lags,
                    }
                    cpu0, at0 = cpu, now
                    samples.append(sample)
                    worst = max(lags, key=lambda g: lags[g])
                    print(
                        f"{sample['minute']:6.1f} min  rss {sample['rss_mb']:7.1f} MB  book "
                        f"{book:>6}  cpu "
                        f"{sample['cpu_cores']:4.2f}  load {sample['load_1m']:5.2f}  lag "
                        f"{sample['lag_records']:>7.0f} (most: {worst} {lags[worst]})",
                        flush=True,
                    )
            finally:
                if proc.returncode is None:
                    proc.send_signal(signal.SIGTERM)
                    try:
                        await asyncio.wait_for(proc.wait(), 60)
                    except TimeoutError:
                        proc.kill()
                        await proc.wait()
        finally:
            await conn.close()
            await reader.stop()
    memory = trend([(s["minute"], s["rss_mb"]) for s in samples], tolerance=0.1)
    # The matcher holds every open listing in memory, and listings stay open for their 30 to
    # 120 days, so over a soak the book only grows; what memory does beside the book must not.
    residual, per_listing = net_of(
        [(s["minute"], s["rss_mb"]) for s in samples], [s["open_listings"] for s in samples]
    )
    beside = trend(residual, tolerance=0.1, floor=0.1 * (samples[0]["rss_mb"] if samples else 0))
    lag = trend([(s["minute"], s["lag_records"]) for s in samples], floor=LAG_FLOOR)
    per_group_lag = {
        g: trend([(s["minute"], float(s["lag"][g])) for s in samples], floor=LAG_FLOOR)
        for g in (samples[0]["lag"] if samples else {})
    }
    loads = [s["load_1m"] for s in samples]
    own = [s["cpu_cores"] for s in samples]
    return {
        "minutes": minutes,
        "rate_per_s": rate,
        "commit": code,
        "broker": settings.kafka_servers,
        "machine_at_start": started_at,
        "machine_load_1m": {
            "mean": sum(loads) / len(loads) if loads else None,
            "max": max(loads, default=None),
            "mean_own_cpu_cores": sum(own) / len(own) if own else None,
        },
        "samples": samples,
        "memory": dataclasses.asdict(memory) | {"verdict": memory.describe("MB")},
        "memory_beside_the_book": dataclasses.asdict(beside)
        | {"verdict": beside.describe("MB"), "mb_per_open_listing": per_listing},
        "open_listings_at_end": samples[-1]["open_listings"] if samples else None,
        "lag": dataclasses.asdict(lag) | {"verdict": lag.describe("records")},
        "lag_by_group": {g: dataclasses.asdict(t) for g, t in per_group_lag.items()},
        "lag_at_end": samples[-1]["lag_records"] if samples else None,
        "max_lag": max((s["lag_records"] for s in samples), default=None),
        "bounded": (memory.bounded or beside.bounded) and lag.bounded,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--rate", type=float, default=2.0, help="simulator actions per second")
    parser.add_argument("--sample-s", type=float, default=10.0)
    args = parser.parse_args()
    if not (0 < args.minutes <= 240 and 0 < args.rate <= 200 and 1 <= args.sample_s <= 600):
        parser.error("keep it bounded: minutes 0..240, rate 0..200, sample 1..600 s")
    result = asyncio.run(soak(args.minutes, args.rate, args.sample_s))
    points = result["samples"]
    busy = result["machine_load_1m"]
    verdict = "neither grows without bound" if result["bounded"] else "SOMETHING GROWS"
    summary = (
        f"{args.minutes:g} minutes at {args.rate:g} simulator actions/s (commit "
        f"{result['commit']}, broker {result['broker']}): {verdict}. Memory: "
        f"{result['memory']['verdict']}. Memory beside the matcher's book of open listings "
        f"({result['open_listings_at_end']:.0f} at the end, "
        f"{result['memory_beside_the_book']['mb_per_open_listing'] * 1024:.1f} KB each by the "
        f"fit): {result['memory_beside_the_book']['verdict']}. Lag: "
        f"{result['lag']['verdict']}; at the end {result['lag_at_end']:.0f} records (max "
        f"{result['max_lag']:.0f}). The machine is shared with other agents' test runs: its "
        f"1-minute load average was {busy['mean']:.2f} on average (max {busy['max']:.2f}) on "
        f"{result['machine_at_start']['cores']:.0f} cores, of which the soak's own process used "
        f"{busy['mean_own_cpu_cores']:.2f} cores; lag spikes can come from the others' bursts."
    )
    groups = list(points[0]["lag"]) if points else []
    group_rows = [
        [
            g,
            f"{t['first_mean']:,.1f}",
            f"{t['second_mean']:,.1f}",
            f"{t['second_growth']:+,.1f}",
            "bounded" if t["bounded"] else "GROWING",
        ]
        for g, t in result["lag_by_group"].items()
    ]
    paths = write_report(
        "soak",
        title="Soak run: memory and lag over time",
        summary=summary,
        data=result,
        headers=[
            "minute",
            "resident MB",
            "open listings",
            "own CPU (cores)",
            "load 1m",
            "lag (records)",
        ],
        rows=[
            [
                f"{s['minute']:.1f}",
                f"{s['rss_mb']:.1f}",
                f"{s['open_listings']:.0f}",
                f"{s['cpu_cores']:.2f}",
                f"{s['load_1m']:.2f}",
                f"{s['lag_records']:.0f}",
            ]
            for s in points
        ],
        figure=line_chart(
            {"resident MB": [(s["minute"], s["rss_mb"]) for s in points]},
            title="Resident memory of the services' process",
            x_label="minutes",
            y_label="MB",
        )
        + line_chart(
            {"open listings in the book": [(s["minute"], s["open_listings"]) for s in points]},
            title="The matcher's book of open listings",
            x_label="minutes",
            y_label="listings",
        )
        + line_chart(
            {g: [(s["minute"], float(s["lag"][g])) for s in points] for g in groups},
            title="Lag per consumer group (records behind the topic ends)",
            x_label="minutes",
            y_label="records",
        )
        + line_chart(
            {
                "machine load (1 min)": [(s["minute"], s["load_1m"]) for s in points],
                "soak process CPU (cores)": [(s["minute"], s["cpu_cores"]) for s in points],
            },
            title="How busy the shared machine was",
            x_label="minutes",
            y_label="runnable / cores",
        ),
        extra=table(
            [
                "group",
                "mean lag 1st half",
                "mean lag 2nd half",
                "fitted growth 2nd half",
                "verdict",
            ],
            group_rows,
            "Lag per group",
        ),
        figure_first=True,  # the samples' table is long
    )
    print(summary)
    print(f"report: {paths[0]} and {paths[1].name}")


if __name__ == "__main__":
    main()
