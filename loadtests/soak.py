"""A soak run: every service in one process (`marketplace run all`) with the market simulator
driving it at a steady rate for a long time, while memory and consumer lag are sampled; neither
may grow without bound.

    python -m loadtests.soak [--minutes 30] [--rate 2] [--sample-s 10]

It runs against a scratch database (dropped afterwards) whose consumer groups start at the
topics' current ends, so only the soak's own traffic is processed; run it where no other
`marketplace run all` is running (the Kafka group names are the services' own). Writes
loadtests/reports/soak-<timestamp>.json and .html: resident memory of the process and the total
lag of every consumer group over time, the memory slope over the second half, and the lag at
the end."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import sys
import time
from pathlib import Path
from typing import Any

from loadtests.bench_consumers import _ends
from loadtests.report import write_report
from loadtests.scratch import scratch_database
from marketplace.db import connect
from marketplace.settings import Settings
from marketplace.topics import TOPICS


def subscriptions() -> dict[str, list[str]]:
    """Each service's consumer group and the topics it reads."""
    from consumers import analytics, auctioneer, auditor, matcher, projector

    groups = {
        matcher.GROUP: [matcher.TOPIC],
        projector.GROUP: list(projector.TOPICS),
        auditor.GROUP: list(auditor.TOPICS),
        analytics.GROUP: list(analytics.TOPICS),
        auctioneer.GROUP: [auctioneer.TOPIC],
        auctioneer.CREATOR_GROUP: [auctioneer.CREATOR_TOPIC],
    }
    try:  # the notifications issue's consumers, where this build has them
        from consumers import notifier, webhooks

        groups[notifier.GROUP] = list(notifier.TOPICS)
        groups[webhooks.GROUP] = [webhooks.TOPIC]
    except ImportError:
        pass
    return groups


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


def slope(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of y over x."""
    n = len(points)
    if n < 2:
        return 0.0
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    sxx = sum((x - mx) ** 2 for x, _ in points)
    return sum((x - mx) * (y - my) for x, y in points) / sxx if sxx else 0.0


def svg_series(points: list[tuple[float, float]], label: str) -> str:
    w, h, pad = 560, 220, 40
    if not points:
        return ""
    x1 = max(x for x, _ in points) or 1.0
    y1 = max(y for _, y in points) * 1.1 or 1.0
    line = " ".join(
        f"{pad + x / x1 * (w - 2 * pad):.1f},{h - pad - y / y1 * (h - 2 * pad):.1f}"
        for x, y in points
    )
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-size="12">'
        f'<line x1="{pad}" y1="{h - pad}" x2="{w - pad}" y2="{h - pad}" stroke="black"/>'
        f'<text x="{pad}" y="14">{label} (max {y1 / 1.1:,.1f})</text>'
        f'<text x="{w - pad}" y="{h - 8}" text-anchor="end">minutes ({x1:.0f} total)</text>'
        f'<polyline points="{line}" fill="none" stroke="#2a7" stroke-width="2"/></svg>'
    )


async def soak(minutes: float, rate: float, sample_s: float) -> dict[str, Any]:
    settings = Settings.from_env()
    samples: list[dict[str, float]] = []
    async with scratch_database(settings, "soak") as scratch:
        conn = await connect(scratch)
        try:
            groups = subscriptions()
            for group, topics in groups.items():
                for topic in topics:
                    for partition, offset in (await _ends(settings, topic)).items():
                        await conn.execute(
                            "INSERT INTO consumer_offsets (group_id, topic, partition,"
                            " next_offset) VALUES ($1, $2, $3, $4)",
                            group,
                            topic,
                            partition,
                            offset,
                        )
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
                "marketplace.cli",
                "run",
                "all",
                "--simulate",
                str(rate),
                env=env,
                stdout=asyncio.subprocess.DEVNULL,
            )
            t0 = time.monotonic()
            try:
                while time.monotonic() - t0 < minutes * 60:
                    await asyncio.sleep(sample_s)
                    if proc.returncode is not None:
                        raise RuntimeError(f"the services stopped (exit {proc.returncode})")
                    rows = await conn.fetch(
                        "SELECT group_id, topic, partition, next_offset FROM consumer_offsets"
                        " WHERE group_id = ANY($1::text[])",
                        list(groups),
                    )
                    ends = {spec.name: await _ends(settings, spec.name) for spec in TOPICS}
                    per_group: dict[str, int] = dict.fromkeys(groups, 0)
                    for r in rows:
                        behind = ends[r["topic"]].get(r["partition"], 0) - r["next_offset"]
                        per_group[r["group_id"]] += max(0, behind)
                    lag = sum(per_group.values())
                    sample = {
                        "minute": (time.monotonic() - t0) / 60,
                        "rss_mb": rss_mb(proc.pid),
                        "lag_records": float(lag),
                        **{f"lag_{g}": float(v) for g, v in per_group.items()},
                    }
                    samples.append(sample)
                    worst = max(per_group, key=lambda g: per_group[g])
                    print(
                        f"{sample['minute']:6.1f} min  rss {sample['rss_mb']:7.1f} MB"
                        f"  lag {lag:>6} records (most: {worst} {per_group[worst]})",
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
    second_half = [(s["minute"], s["rss_mb"]) for s in samples if s["minute"] >= minutes / 2]
    return {
        "minutes": minutes,
        "rate_per_s": rate,
        "samples": samples,
        "rss_slope_mb_per_min_second_half": slope(second_half),
        "lag_at_end": samples[-1]["lag_records"] if samples else None,
        "max_lag": max((s["lag_records"] for s in samples), default=None),
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
    summary = (
        f"{args.minutes:g} minutes at {args.rate:g} simulator actions/s: memory slope over the "
        f"second half {result['rss_slope_mb_per_min_second_half']:+.2f} MB/min, lag at the end "
        f"{result['lag_at_end']:.0f} records (max {result['max_lag']:.0f})."
    )
    paths = write_report(
        "soak",
        title="Soak run: memory and lag over time",
        summary=summary,
        data=result,
        headers=["minute", "resident MB", "lag (records)"],
        rows=[
            [f"{s['minute']:.1f}", f"{s['rss_mb']:.1f}", f"{s['lag_records']:.0f}"] for s in points
        ],
        figure=svg_series([(s["minute"], s["rss_mb"]) for s in points], "resident memory, MB")
        + svg_series([(s["minute"], s["lag_records"]) for s in points], "lag, records"),
    )
    print(summary)
    print(f"report: {paths[0]} and {paths[1].name}")


if __name__ == "__main__":
    main()
