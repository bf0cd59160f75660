"""The exchange's services for a benchmark, with consumer groups of the benchmark's own.

    python -m loadtests.stack PREFIX [--services api,matcher,...] [--simulate RATE]

Runs the chosen services (default: every one, like `marketplace run all`) in this process, each
consumer in the group `PREFIX.<service>`, so a benchmark never joins the groups of a
`marketplace run all` or of a test that runs on the same broker. Settings come from the
environment (the benchmark points them at a scratch database and free ports). `start_at_end`
makes those groups start at the topics' current ends, so only the benchmark's own traffic is
processed."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

from aiokafka import TopicPartition

from marketplace.app.services import SERVICES, Service, run_services, simulator
from marketplace.db import connect
from marketplace.kafka import make_consumer, partition_counts
from marketplace.logs import configure_logging
from marketplace.runtime import loop as event_loop
from marketplace.runtime.consumer import start_group_at
from marketplace.settings import Settings

ALL = (
    "api",
    "projector",
    "matcher",
    "scheduler",
    "auditor",
    "analytics",
    "job-creator",
    "auctioneer",
    "notifier",
    "webhooks",
)


def subscriptions(prefix: str, names: tuple[str, ...] | list[str] = ALL) -> dict[str, list[str]]:
    """The consumer group of each chosen service that has one, and the topics it reads."""
    from consumers import analytics, auctioneer, auditor, matcher, notifier, projector, webhooks

    topics: dict[str, list[str]] = {
        "projector": list(projector.TOPICS),
        "matcher": [matcher.TOPIC],
        "auditor": list(auditor.TOPICS),
        "analytics": list(analytics.TOPICS),
        "job-creator": [auctioneer.CREATOR_TOPIC],
        "auctioneer": [auctioneer.TOPIC],
        "notifier": list(notifier.TOPICS),
        "webhooks": [webhooks.TOPIC],
    }
    return {f"{prefix}.{n}": topics[n] for n in names if n in topics}


def services(prefix: str, names: list[str]) -> dict[str, Service]:
    """The chosen services, each consumer in its own `prefix.<name>` group."""
    from consumers.analytics import TOPICS as FACTS
    from consumers.analytics import Analytics
    from consumers.auctioneer import CREATOR_TOPIC, Auctioneer, JobCreator
    from consumers.auctioneer import TOPIC as JOBS
    from consumers.auditor import run_auditor
    from consumers.matcher import TOPIC as LISTINGS
    from consumers.matcher import Matcher
    from consumers.notifier import TOPICS as NOTIFIED
    from consumers.notifier import Notifier
    from consumers.projector import TOPICS as PROJECTED
    from consumers.projector import Projector
    from consumers.webhooks import run_webhooks
    from marketplace.runtime.service import run_consumer
    from marketplace.translate.auction import auction_config
    from marketplace.translate.matching import market_config

    def consumer(name: str, topics: list[str], build: Callable[[Settings, str], Any]) -> Service:
        group = f"{prefix}.{name}"

        async def run(settings: Settings, stop: asyncio.Event) -> None:
            await run_consumer(
                settings,
                group_id=group,
                topics=topics,
                processor=build(settings, group),
                stop=stop,
            )

        return run

    def with_group(
        name: str, fn: Callable[[Settings, asyncio.Event, str], Coroutine[Any, Any, None]]
    ) -> Service:
        async def run(settings: Settings, stop: asyncio.Event) -> None:
            await fn(settings, stop, f"{prefix}.{name}")

        return run

    made: dict[str, Service] = {
        "api": SERVICES["api"],
        "scheduler": SERVICES["scheduler"],
        "projector": consumer("projector", list(PROJECTED), lambda _s, g: Projector(g)),
        "matcher": consumer("matcher", [LISTINGS], lambda s, g: Matcher(market_config(s), g)),
        "auditor": with_group("auditor", run_auditor),
        "analytics": consumer("analytics", list(FACTS), lambda _s, g: Analytics(g)),
        "job-creator": consumer("job-creator", [CREATOR_TOPIC], lambda s, g: JobCreator(s, g)),
        "auctioneer": consumer("auctioneer", [JOBS], lambda s, g: Auctioneer(auction_config(s), g)),
        "notifier": consumer("notifier", list(NOTIFIED), lambda _s, g: Notifier(g)),
        "webhooks": with_group("webhooks", run_webhooks),
    }
    return {n: made[n] for n in names}


async def start_at_end(settings: Settings, groups: dict[str, list[str]]) -> None:
    """Stores the topics' current ends as each group's offsets (in `settings`' database)."""
    topics = sorted({t for ts in groups.values() for t in ts})
    counts = await partition_counts(settings, topics)
    reader = make_consumer(settings, None)
    await reader.start()
    try:
        parts = [TopicPartition(t, p) for t in topics for p in range(counts[t])]
        ends = await reader.end_offsets(parts)
    finally:
        await reader.stop()
    conn = await connect(settings)
    try:
        for group, wanted in groups.items():
            positions = {
                (tp.topic, tp.partition): o for tp, o in ends.items() if tp.topic in wanted
            }
            await start_group_at(conn, group, positions)
    finally:
        await conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("prefix", help="consumer groups are PREFIX.<service>")
    parser.add_argument("--services", default=",".join(ALL))
    parser.add_argument("--simulate", type=float, default=0.0, help="simulator actions/s")
    parser.add_argument("--smes", type=int, default=60)
    args = parser.parse_args()
    names = [n for n in args.services.split(",") if n]
    unknown = set(names) - set(ALL)
    if unknown or not args.prefix:
        parser.error(f"unknown services {sorted(unknown)}; choose from {', '.join(ALL)}")
    settings = Settings.from_env()
    configure_logging(settings)
    chosen = services(args.prefix, names)
    if args.simulate > 0:
        chosen["simulator"] = simulator(args.simulate, smes=args.smes)
    # On the services' own event loop (uvloop unless MARKETPLACE_EVENT_LOOP says otherwise), as
    # `marketplace run` runs them.
    event_loop.run(run_services(settings, [], extra=chosen), settings)


if __name__ == "__main__":
    main()
