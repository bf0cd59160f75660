"""The API with a projector behind it, and partners to call it, for integration tests."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from consumers.projector import TOPICS, Projector
from marketplace.db import connect
from marketplace.events import to_message
from marketplace.kafka import make_producer
from marketplace.partners import issue_key, registration
from marketplace.runtime.service import run_consumer
from marketplace.settings import Settings
from producers.api.app import create_app
from schemas.common import Role
from tests.integration.kafka_helpers import start_at_session_start


@dataclasses.dataclass(frozen=True)
class Partner:
    partner_id: str
    key: str

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}


async def register(settings: Settings, role: Role, name: str = "Test AB") -> Partner:
    event = registration(
        name=name, role=role, country="SE", region="SE312", sector="13", registered_by="tests"
    )
    message = to_message(
        event,
        event_id=str(uuid.uuid4()),
        source="/tests",
        time=datetime.now(UTC),
        subject=event.partner_id,
    )
    producer = make_producer(settings)
    await producer.start()
    try:
        await producer.send_and_wait(
            message.topic, message.value, key=message.key, headers=list(message.headers)
        )
    finally:
        await producer.stop()
    conn = await connect(settings)
    try:
        key = await issue_key(conn, event.partner_id, role)
    finally:
        await conn.close()
    return Partner(event.partner_id, key)


@asynccontextmanager
async def running_api(
    settings: Settings,
    app: Callable[[Settings], web.Application] = create_app,
    projector_group: str | None = None,
) -> AsyncIterator[TestClient[Any, Any]]:
    """The API app (or `app`, e.g. with the pages) plus a projector (own consumer group, or
    `projector_group`) feeding its read models."""
    stop = asyncio.Event()
    group = projector_group or f"test.projector.{uuid.uuid4().hex[:8]}"
    await start_at_session_start(settings, group, TOPICS)
    projector = asyncio.create_task(
        run_consumer(settings, group_id=group, topics=TOPICS, processor=Projector(group), stop=stop)
    )
    try:
        async with TestClient(TestServer(app(settings))) as client:

            async def ready() -> bool:
                return (await client.get("/readyz")).status == 200

            await eventually(ready, 30)
            yield client
    finally:
        stop.set()
        await asyncio.wait_for(projector, timeout=30)


async def eventually(check: Callable[[], Awaitable[bool]], limit_s: float = 30) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit_s
    while not await check():
        if loop.time() > deadline:
            raise TimeoutError("condition not met in time")
        await asyncio.sleep(0.1)


async def projected(settings: Settings, *partners: Partner | str, limit_s: float = 30) -> None:
    """Waits until every partner (or partner id) is an active row of the projector's registry,
    which the pages read to act for an organisation. The API key answers before that (it is
    issued straight into its own table), so a call with it does not wait for the projector."""
    ids = sorted({p if isinstance(p, str) else p.partner_id for p in partners})

    async def there() -> bool:
        conn = await connect(settings)
        try:
            found = await conn.fetchval(
                "SELECT count(*) FROM partners WHERE partner_id = ANY($1::text[]) AND active", ids
            )
        finally:
            await conn.close()
        return bool(found == len(ids))

    await eventually(there, limit_s)


def offer_body(code: str = "040222", **terms: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "quantity": {"amount": 12.5, "unit": "t"},
        "price": {"amount": -15.0, "currency": "EUR"},
        "available": {"start": "2026-12-01T00:00:00Z", "end": "2027-01-31T00:00:00Z"},
    }
    base.update(terms)
    return {
        "material": {"code": code, "description": "cotton offcuts", "form": "bales"},
        "location": {"lat": 59.86, "lon": 17.64, "region": "SE121"},
        "terms": base,
    }


def request_body(code: str = "040222") -> dict[str, Any]:
    return {
        "material": {"code": code, "description": "cotton for insulation"},
        "location": {"lat": 60.67, "lon": 17.14, "region": "SE313"},
        "terms": {
            "quantity": {"amount": 5, "unit": "t"},
            "max_price": {"amount": 20, "currency": "EUR"},
            "wanted": {"start": "2026-12-15T00:00:00Z", "end": "2027-03-01T00:00:00Z"},
            "max_distance_km": 150,
        },
    }


@asynccontextmanager
async def consumer_running(
    settings: Settings, name: str, topics: list[str], processor: Callable[[str], Any]
) -> AsyncIterator[str]:
    """A consumer with a group of its own (`test.<name>.<uuid>`) that reads this session's
    records; yields the group id and stops the consumer on the way out."""
    group = f"test.{name}.{uuid.uuid4().hex[:8]}"
    await start_at_session_start(settings, group, topics)
    stop = asyncio.Event()
    task = asyncio.create_task(
        run_consumer(settings, group_id=group, topics=topics, processor=processor(group), stop=stop)
    )
    try:
        yield group
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
