"""The services `marketplace run <name>` can start. `all` runs every one of them in one process."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable, Coroutine
from typing import Any

from aiohttp import web

from marketplace.core.shards import ShardPlan, parse_plan
from marketplace.logs import get_logger
from marketplace.settings import Settings

log = get_logger(__name__)

Service = Callable[[Settings, asyncio.Event], Coroutine[Any, Any, None]]


async def run_api(settings: Settings, stop: asyncio.Event) -> None:
    from producers.web.app import create_service

    runner = web.AppRunner(create_service(settings), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, settings.http_host, settings.http_port)
    await site.start()
    log.info("api_listening", url=f"http://{settings.http_host}:{settings.http_port}")
    try:
        await stop.wait()
    finally:
        await runner.cleanup()


async def run_projector(settings: Settings, stop: asyncio.Event) -> None:
    from consumers.projector import GROUP, TOPICS, Projector
    from marketplace.runtime.service import run_consumer

    await run_consumer(
        settings, group_id=GROUP, topics=TOPICS, processor=Projector(GROUP), stop=stop
    )


async def run_matcher(settings: Settings, stop: asyncio.Event) -> None:
    from consumers.matcher import GROUP, TOPIC, Matcher
    from marketplace.runtime.service import run_consumer
    from marketplace.translate.matching import market_config

    matcher = Matcher(market_config(settings), GROUP, split_plan(settings))
    await run_consumer(settings, group_id=GROUP, topics=[TOPIC], processor=matcher, stop=stop)


def split_plan(settings: Settings) -> ShardPlan:
    """The families split into cells, as the settings say (checked when they were read)."""
    return parse_plan(settings.split_families, settings.split_lat_cuts, settings.split_lon_cuts)


async def run_cells(settings: Settings, stop: asyncio.Event) -> None:
    """The matching of split families (idle while MARKETPLACE_SPLIT_FAMILIES is empty)."""
    from consumers.cells import GROUP, TOPIC, CellsMatcher
    from marketplace.runtime.service import run_consumer
    from marketplace.translate.matching import market_config

    cells = CellsMatcher(market_config(settings), split_plan(settings), GROUP)
    await run_consumer(settings, group_id=GROUP, topics=[TOPIC], processor=cells, stop=stop)


async def run_scheduler(settings: Settings, stop: asyncio.Event) -> None:
    from producers.scheduler import run_scheduler as scheduler

    await scheduler(settings, stop)


async def run_auditor(settings: Settings, stop: asyncio.Event) -> None:
    from consumers.auditor import run_auditor as auditor

    await auditor(settings, stop)


async def run_analytics(settings: Settings, stop: asyncio.Event) -> None:
    from consumers.analytics import GROUP, TOPICS, Analytics
    from marketplace.runtime.service import run_consumer

    await run_consumer(
        settings, group_id=GROUP, topics=TOPICS, processor=Analytics(GROUP), stop=stop
    )


async def run_job_creator(settings: Settings, stop: asyncio.Event) -> None:
    from consumers.auctioneer import CREATOR_GROUP, CREATOR_TOPIC, JobCreator
    from marketplace.runtime.service import run_consumer

    creator = JobCreator(settings, CREATOR_GROUP)
    await run_consumer(
        settings, group_id=CREATOR_GROUP, topics=[CREATOR_TOPIC], processor=creator, stop=stop
    )


async def run_auctioneer(settings: Settings, stop: asyncio.Event) -> None:
    from consumers.auctioneer import GROUP, TOPIC, Auctioneer
    from marketplace.runtime.service import run_consumer
    from marketplace.translate.auction import auction_config

    auctioneer = Auctioneer(auction_config(settings), GROUP)
    await run_consumer(settings, group_id=GROUP, topics=[TOPIC], processor=auctioneer, stop=stop)


async def run_notifier(settings: Settings, stop: asyncio.Event) -> None:
    from consumers.notifier import GROUP, TOPICS, Notifier
    from marketplace.runtime.service import run_consumer

    await run_consumer(
        settings, group_id=GROUP, topics=TOPICS, processor=Notifier(GROUP), stop=stop
    )


async def run_webhooks(settings: Settings, stop: asyncio.Event) -> None:
    from consumers.webhooks import run_webhooks as webhooks

    await webhooks(settings, stop)


async def run_mailer(settings: Settings, stop: asyncio.Event) -> None:
    from consumers.mailer import run_mailer as mailer

    await mailer(settings, stop)


async def run_deals(settings: Settings, stop: asyncio.Event) -> None:
    from consumers.deals import GROUP, TOPICS, DealRooms
    from marketplace.runtime.service import run_consumer

    await run_consumer(
        settings, group_id=GROUP, topics=TOPICS, processor=DealRooms(GROUP), stop=stop
    )


async def run_reminders(settings: Settings, stop: asyncio.Event) -> None:
    from consumers.reminders import GROUP, TOPICS, Reminders
    from marketplace.runtime.service import run_consumer

    await run_consumer(
        settings, group_id=GROUP, topics=TOPICS, processor=Reminders(settings, GROUP), stop=stop
    )


async def run_alerts(settings: Settings, stop: asyncio.Event) -> None:
    from consumers.alerts import GROUP, TOPICS, Alerts
    from marketplace.runtime.service import run_consumer

    await run_consumer(settings, group_id=GROUP, topics=TOPICS, processor=Alerts(GROUP), stop=stop)


async def run_mail_sink(settings: Settings, stop: asyncio.Event) -> None:
    from marketplace.mail.sink import run_sink

    await run_sink(settings, stop)


SERVICES: dict[str, Service] = {
    "api": run_api,
    "projector": run_projector,
    "matcher": run_matcher,
    "cells": run_cells,
    "scheduler": run_scheduler,
    "auditor": run_auditor,
    "analytics": run_analytics,
    "job-creator": run_job_creator,
    "auctioneer": run_auctioneer,
    "notifier": run_notifier,
    "webhooks": run_webhooks,
    "mailer": run_mailer,
    "deals": run_deals,
    "reminders": run_reminders,
    "alerts": run_alerts,
}


def local_extras(settings: Settings) -> dict[str, Service]:
    """What `marketplace run all` starts beside the services when a setting asks for it: the
    local mail sink when MARKETPLACE_MAIL_SINK is on, as `make run` sets it (a laptop's stand-in
    for a relay, not a service of the exchange)."""
    return {"mail-sink": run_mail_sink} if settings.mail_sink else {}


def simulator(
    rate: float, duration_s: float = 0.0, seed: int = 1, smes: int = 60, carriers: int = 6
) -> Service:
    """The market simulator as a service beside the others (`marketplace run all --simulate`)."""

    async def run(settings: Settings, stop: asyncio.Event) -> None:
        from producers.simulator.driver import simulate

        await simulate(
            settings,
            api_url=f"http://{settings.http_host}:{settings.http_port}",
            rate=rate,
            duration_s=duration_s,
            seed=seed,
            smes=smes,
            carriers=carriers,
            stop=stop,
        )

    return run


async def run_services(
    settings: Settings, names: list[str], extra: dict[str, Service] | None = None
) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    from marketplace.metrics import serve_ops

    chosen = {n: SERVICES[n] for n in names} | (extra or {}) | {"ops": serve_ops}
    names = list(chosen)
    tasks = [asyncio.create_task(service(settings, stop), name=n) for n, service in chosen.items()]
    log.info("services_started", services=names)
    await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
    stop.set()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    failed = [
        (t.get_name(), r)
        for t, r in zip(tasks, results, strict=True)
        if isinstance(r, BaseException)
    ]
    for name, exc in failed:
        log.error("service_failed", service=name, error=repr(exc))
    if failed:
        raise SystemExit(1)
    log.info("services_stopped", services=names)
