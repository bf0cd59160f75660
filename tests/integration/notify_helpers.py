"""The notifier and the webhook worker with consumer groups of their own, events published by
hand, and a webhook receiver that checks every signature, for the notification tests."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import hashlib
import hmac
import time
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import orjson
from aiohttp import web

from consumers.notifier import TOPICS as NOTIFIER_TOPICS
from consumers.notifier import Notifier
from consumers.webhooks import TOPIC as WEBHOOK_TOPIC
from consumers.webhooks import run_webhooks
from marketplace.db import connect
from marketplace.events import to_message
from marketplace.kafka import make_producer
from marketplace.runtime.consumer import start_group_at
from marketplace.runtime.service import run_consumer
from marketplace.settings import Settings
from schemas.base import Event
from tests.integration.kafka_helpers import end_offsets


def quick(settings: Settings, **changes: Any) -> Settings:
    """Loopback targets allowed (tests only), and retries in fractions of a second."""
    base: dict[str, Any] = {
        "webhook_allow_networks": "127.0.0.0/8,::1/128",
        "webhook_retry_base_s": 0.2,
        "webhook_retry_cap_s": 0.8,
        "webhook_max_attempts": 4,
        "webhook_timeout_s": 2.0,
    }
    return dataclasses.replace(settings, **(base | changes))


async def start_at_end(settings: Settings, group: str, topics: Sequence[str]) -> None:
    """A new group starts at the topics' current ends, as if it had read all before."""
    conn = await connect(settings)
    try:
        ends = {(t, p): o for t in topics for p, o in (await end_offsets(settings, t)).items()}
        await start_group_at(conn, group, ends)
    finally:
        await conn.close()


@asynccontextmanager
async def notifier_running(settings: Settings) -> AsyncIterator[str]:
    stop = asyncio.Event()
    group = f"test.notifier.{uuid.uuid4().hex[:8]}"
    await start_at_end(settings, group, NOTIFIER_TOPICS)
    task = asyncio.create_task(
        run_consumer(
            settings,
            group_id=group,
            topics=NOTIFIER_TOPICS,
            processor=Notifier(group),
            stop=stop,
        )
    )
    try:
        yield group
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


async def notifier_knows_carriers(settings: Settings, group: str, partner_ids: set[str]) -> None:
    """Waits until the notifier group has read these firms' declared coverage (partners.registry
    and logistics.jobs are different topics: a job read first would find no firm yet)."""
    conn = await connect(settings)
    try:
        for _ in range(300):
            rows = await conn.fetch(
                "SELECT partner_id FROM notifier_carriers WHERE group_id = $1"
                " AND coverage IS NOT NULL AND partner_id = ANY($2::text[])",
                group,
                list(partner_ids),
            )
            if {r["partner_id"] for r in rows} == partner_ids:
                return
            await asyncio.sleep(0.1)
        raise AssertionError(f"notifier {group} never saw the coverage of {sorted(partner_ids)}")
    finally:
        await conn.close()


@asynccontextmanager
async def webhooks_running(settings: Settings, group: str | None = None) -> AsyncIterator[str]:
    stop = asyncio.Event()
    if group is None:
        group = f"test.webhooks.{uuid.uuid4().hex[:8]}"
        await start_at_end(settings, group, [WEBHOOK_TOPIC])
    task = asyncio.create_task(run_webhooks(settings, stop, group))
    try:
        yield group
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


async def publish(settings: Settings, *events: Event, ids: Sequence[str] = ()) -> list[str]:
    """Publishes the events (with the given CloudEvent ids, or new ones); returns the ids."""
    producer = make_producer(settings)
    await producer.start()
    sent = []
    try:
        for i, event in enumerate(events):
            event_id = ids[i] if i < len(ids) else str(uuid.uuid4())
            message = to_message(event, event_id=event_id, source="/tests", time=datetime.now(UTC))
            await producer.send_and_wait(
                message.topic, message.value, key=message.key, headers=list(message.headers)
            )
            sent.append(event_id)
    finally:
        await producer.stop()
    return sent


class Receiver:
    """Webhook endpoints on loopback. Each path has secrets (set once registered) and a plan:
    how to answer the n-th request (an HTTP status, or "hang" for longer than the timeout).
    Every request's signature is checked by hand (HMAC-SHA256 over id.timestamp.body)."""

    def __init__(self) -> None:
        self.secrets: dict[str, list[str]] = defaultdict(list)
        self.plans: dict[str, list[int | str]] = {}
        self.requests: dict[str, int] = defaultdict(int)
        self.accepted: dict[str, list[tuple[str, dict[str, Any]]]] = defaultdict(list)
        self.bad_signatures: list[str] = []
        self.signature_headers: dict[str, list[str]] = defaultdict(list)
        self.active: dict[str, int] = defaultdict(int)
        self.most_active: dict[str, int] = defaultdict(int)
        self.arrived = asyncio.Event()
        self.runner: web.AppRunner | None = None
        self.port = 0

    async def __aenter__(self) -> Receiver:
        app = web.Application()
        app.router.add_post("/{name}", self._handle)
        # Hanging handlers are cut off on exit rather than waited for, and when the worker gives
        # up on them (so `active` counts what the worker really has in flight).
        self.runner = web.AppRunner(
            app, access_log=None, shutdown_timeout=0.5, handler_cancellation=True
        )
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
        return self

    async def __aexit__(self, *_: object) -> None:
        if self.runner is not None:
            await self.runner.cleanup()

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.port}/{name}"

    def ids(self, name: str) -> set[str]:
        return {i for i, _ in self.accepted[name]}

    @staticmethod
    def signed_by(secret: str, message_id: str, stamp: str, body: bytes, header: str) -> bool:
        key = base64.b64decode(secret.removeprefix("whsec_"))
        mac = hmac.new(key, f"{message_id}.{stamp}.".encode() + body, hashlib.sha256)
        expected = "v1," + base64.b64encode(mac.digest()).decode()
        return any(hmac.compare_digest(expected, s) for s in header.split(" "))

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        body = await request.read()
        message_id = request.headers.get("webhook-id", "")
        stamp = request.headers.get("webhook-timestamp", "0")
        header = request.headers.get("webhook-signature", "")
        self.signature_headers[name].append(header)
        fresh = abs(time.time() - int(stamp)) < 300
        secrets = self.secrets[name]
        if not (
            fresh
            and secrets
            and all(self.signed_by(s, message_id, stamp, body, header) for s in secrets)
        ):
            self.bad_signatures.append(f"{name}:{message_id}")
            return web.Response(status=400)
        n = self.requests[name]
        self.requests[name] += 1
        plan = self.plans.get(name, [])
        answer = plan[n] if n < len(plan) else 200
        if answer == "hang":
            self.active[name] += 1
            self.most_active[name] = max(self.most_active[name], self.active[name])
            try:
                await asyncio.sleep(30)
            finally:
                self.active[name] -= 1
            return web.Response(status=200)
        assert isinstance(answer, int)
        if 200 <= answer < 300:
            self.accepted[name].append((message_id, orjson.loads(body)))
            self.arrived.set()
        return web.Response(status=answer)
