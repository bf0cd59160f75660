"""The timer scheduler and the webhook dispatcher outlive a PostgreSQL that drops connections in
the middle of their queries (as a restart under load does). Both used to stop for good: the
scheduler on InterfaceError from a transaction whose connection was gone, the dispatcher on
asyncpg's InternalClientError (found by the fault suite). Each runs on a scratch database, so
nothing of the shared one is claimed or fired."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable, Coroutine
from typing import Any
from urllib.parse import urlsplit

import pytest

from consumers.webhooks import Dispatcher
from loadtests.scratch import scratch_database
from marketplace.db import create_pool
from marketplace.settings import Settings
from producers.scheduler import run_scheduler
from tests.faults import Proxy, proxy

pytestmark = pytest.mark.integration


def through(settings: Settings, pg: Proxy) -> Settings:
    database = urlsplit(settings.dsn).path.lstrip("/")
    return dataclasses.replace(
        settings,
        database_url=(
            f"postgresql://{settings.db_app_user}:{settings.db_app_password}@127.0.0.1:{pg.port}/{database}"
        ),
        scheduler_interval_s=0.01,
    )


async def flap(pg: Proxy, task: asyncio.Task[None], times: int = 100) -> None:
    """Drops every connection through the proxy `times` times, 50 ms apart."""
    for _ in range(times):
        pg.cut()
        await asyncio.sleep(0.01)
        pg.restore()
        await asyncio.sleep(0.04)
        assert not task.done(), f"it stopped: {task.exception()!r}"
    assert pg.cuts == times


async def survives(
    settings: Settings,
    name: str,
    run: Callable[[Settings, asyncio.Event], Coroutine[Any, Any, None]],
) -> None:
    async with (
        scratch_database(settings, name) as scratch,
        proxy("127.0.0.1", settings.pg_port) as pg,
    ):
        stop = asyncio.Event()
        task = asyncio.create_task(run(through(scratch, pg), stop))
        await asyncio.sleep(0.5)
        await flap(pg, task)
        await asyncio.sleep(0.5)
        assert not task.done(), f"it stopped: {task.exception()!r}"
        stop.set()
        await asyncio.wait_for(task, 30)  # ends cleanly, raising nothing


async def test_the_scheduler_outlives_dropped_connections(settings: Settings) -> None:
    await survives(settings, "flap_scheduler", run_scheduler)


async def test_the_webhook_dispatcher_outlives_dropped_connections(settings: Settings) -> None:
    async def dispatch(s: Settings, stop: asyncio.Event) -> None:
        pool = await create_pool(s)
        try:
            await Dispatcher(s, pool, "flap", poll_s=0.01).run(stop)
        finally:
            pool.terminate()

    await survives(settings, "flap_webhooks", dispatch)
