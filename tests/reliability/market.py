"""The faulted market run: the simulator drives the API at a steady load while every consumer
type is killed and restarted (one at a time and several at once), every group is scaled from one
instance to three and back, PostgreSQL is restarted, brokers of the three-node cluster are killed
one after the other, the whole cluster is killed and restarted, and poison messages are put
straight onto every input topic. Afterwards the run collects, from the audit log, the read models
and Kafka, what the checks in test_market_faults.py compare."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import aiohttp
import orjson
from aiohttp import web

from marketplace import dlq
from marketplace.audit.replay import ReplayReport, replay, stages
from marketplace.audit.verify import Report, verify_database
from marketplace.db import Conn, connect
from marketplace.kafka import make_producer
from marketplace.settings import Settings
from producers.simulator.driver import Simulation
from producers.simulator.market import Action, Market
from schemas.registry import TOPIC_EVENTS, members, type_name
from tests.integration.kafka_helpers import end_offsets
from tests.reliability.stack import (
    CONSUMERS,
    GROUP_TOPICS,
    Stack,
    eventually,
    free_port,
    fully_replicated,
)

# The topics poison is put on: every topic a consumer decodes. The groups that must dead-letter
# it are all that read the topic but the auditor, which records every record as it is.
INPUT_TOPICS = tuple(
    sorted({t for g, topics in GROUP_TOPICS.items() if g != "auditor" for t in topics})
)
POISON_KINDS = ("invalid-json", "unknown-type", "wrong-version", "oversized")
# What a dead letter's reason must say for each kind.
REASONS = {
    "invalid-json": "invalid JSON",
    "unknown-type": "unknown event type",
    "wrong-version": "schema version",
    "oversized": "over the limit",
}
OVERSIZED_BYTES = 600_000  # under the broker's 1 MiB record limit, over the exchange's


def readers(topic: str) -> set[str]:
    return {g for g, topics in GROUP_TOPICS.items() if topic in topics and g != "auditor"}


@dataclass(frozen=True, slots=True)
class Accepted:
    method: str
    path: str
    event_id: str
    body: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Poison:
    kind: str
    topic: str
    partition: int
    offset: int
    value: bytes


class Receiver:
    """A partner's webhook endpoint on 127.0.0.1: counts every delivery by its webhook-id."""

    def __init__(self) -> None:
        self.received: Counter[str] = Counter()
        self.url = ""
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/hook", self._hook)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}/hook"

    async def _hook(self, request: web.Request) -> web.Response:
        await request.read()
        self.received[request.headers.get("webhook-id", "")] += 1
        return web.Response(status=204)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


class RecordingSimulation(Simulation):
    """The market simulator, recording every 202 the API gives, registering a webhook endpoint
    for every firm, and stopping its stream of actions when asked."""

    def __init__(self, settings: Settings, api_url: str, hook_url: str, seed: int) -> None:
        super().__init__(settings, Market(seed, smes=60, carriers=6), api_url)
        self.accepted: list[Accepted] = []
        self.hook_url = hook_url
        self.halt = asyncio.Event()
        self.connection_errors = 0
        actions = self.market.actions

        def stoppable(rate: float, start: datetime) -> Iterator[Action]:
            for action in actions(rate, start):
                if self.halt.is_set():
                    return
                yield action

        self.market.actions = stoppable  # type: ignore[method-assign]

    async def call(
        self,
        http: aiohttp.ClientSession,
        method: str,
        path: str,
        partner_id: str,
        body: Any = None,
        retry_404_s: float = 0.0,
    ) -> tuple[int, Any]:
        try:
            status, data = await super().call(http, method, path, partner_id, body, retry_404_s)
        except (aiohttp.ClientError, TimeoutError):
            self.connection_errors += 1
            return 0, None
        if status == 202 and isinstance(data, dict) and "event_id" in data:
            self.accepted.append(Accepted(method, path, str(data["event_id"]), data))
        return status, data

    async def register(self) -> None:
        await super().register()
        async with aiohttp.ClientSession() as http:
            for partner_id in self.keys:
                status, data = await self.call(
                    http, "POST", "/v1/webhooks", partner_id, {"url": self.hook_url}
                )
                assert status == 201, (status, data)


@dataclass
class Result:
    accepted: list[Accepted] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    refused_while_kafka_down: int = 0
    faults: list[str] = field(default_factory=list)
    poison: list[Poison] = field(default_factory=list)
    dead_letters: list[dlq.DeadLetter] = field(default_factory=list)
    audit_counts: dict[str, int] = field(default_factory=dict)  # ce_id -> rows, accepted ids
    audited_poison: set[tuple[str, int, int]] = field(default_factory=set)
    replay: ReplayReport | None = None
    verify: Report | None = None
    log_ids: dict[str, set[str]] = field(default_factory=dict)  # what the log says, by kind
    read_ids: dict[str, set[str]] = field(default_factory=dict)  # what read models say
    duplicates_differ: list[str] = field(default_factory=list)
    received: Counter[str] = field(default_factory=Counter)
    deliveries: Counter[str] = field(default_factory=Counter)  # webhook delivery status
    outbox_left: int = -1
    records: int = 0
    seconds: float = 0.0


async def run_market(stack: Stack, rate: float = 3.0, seed: int = 10) -> Result:
    started = time.monotonic()
    result = Result(faults=stack.faults)
    receiver = Receiver()
    await receiver.start()
    try:
        await _run(stack, receiver, result, rate, seed)
    finally:
        await receiver.stop()
    result.seconds = time.monotonic() - started
    return result


async def _run(stack: Stack, receiver: Receiver, result: Result, rate: float, seed: int) -> None:
    settings = stack.settings
    api_port = free_port()
    stack.start("api", extra={"MARKETPLACE_HTTP_PORT": str(api_port)})
    stack.start("scheduler")
    for service in CONSUMERS:
        stack.start(service)
    await stack.all_ready()
    sim = RecordingSimulation(settings, f"http://127.0.0.1:{api_port}", receiver.url, seed)
    simulating = asyncio.create_task(sim.run(rate, 0, 10**9))

    async def progress(more: int = 10, limit_s: float = 180) -> None:
        """Until the market has moved on: `more` further commands accepted."""
        target = len(sim.accepted) + more

        async def moved() -> bool:
            if simulating.done():
                simulating.result()  # raises what stopped it
                raise AssertionError("the simulator stopped")
            if dead := stack.dead():
                raise AssertionError("\n".join(dead))
            return len(sim.accepted) >= target

        await eventually(moved, limit_s, f"{more} more commands accepted")

    faults = stack.faults
    try:
        await progress(30, limit_s=300)
        # Each consumer type SIGKILLed and restarted, one at a time.
        for service in CONSUMERS:
            stack.kill(service)
            faults.append(f"SIGKILL {service}")
            stack.start(service)
            await stack.ready(service)
            await progress(5)
        # Poison on every input topic, while the market runs.
        result.poison = await send_poison(settings)
        faults.append(f"{len(result.poison)} poison records")
        await progress(5)
        # Several at once: the deciders with the notifier, then the rest.
        for batch in (
            ("matcher", "job-creator", "auctioneer", "notifier"),
            ("projector", "analytics", "auditor", "webhooks"),
        ):
            for service in batch:
                stack.kill(service)
            faults.append("SIGKILL together: " + ", ".join(batch))
            for service in batch:
                stack.start(service)
            await asyncio.gather(*(stack.ready(s) for s in batch))
            await progress(5)
        # Every group from one instance to three, and back to one.
        for service in CONSUMERS:
            for n in (2, 3):
                stack.start(service, n)
        await stack.all_ready(limit_s=240)
        await asyncio.gather(
            *(assigned(stack, s, n) for s in CONSUMERS for n in (1, 2, 3)),
        )
        faults.append("every group scaled 1 -> 3")
        await progress(10)
        await asyncio.gather(*(stack.stop(s, n) for s in CONSUMERS for n in (3, 2)))
        faults.append("every group scaled 3 -> 1 (SIGTERM)")
        await progress(5)
        # PostgreSQL restarted under everything.
        await asyncio.to_thread(stack.postgres, "down")
        faults.append("PostgreSQL stopped")
        await asyncio.sleep(3)  # the outage's length, not a check
        await asyncio.to_thread(stack.postgres, "up")
        faults.append("PostgreSQL started")
        await stack.all_ready()
        await progress(10)
        # One broker killed, back, then another.
        for node in ("1", "2"):
            await asyncio.to_thread(stack.cluster, "kill", node)
            faults.append(f"broker {node} SIGKILLed")
            await progress(10)  # the market goes on with two of three brokers
            await asyncio.to_thread(stack.cluster, "start", node)
            faults.append(f"broker {node} started")
            await eventually(lambda: fully_replicated(settings), 180, "every replica in sync")
        # The whole cluster killed, then started: Kafka is away, the API must refuse writes.
        before = sim.stats.statuses[503]
        for node in ("1", "2", "3"):
            await asyncio.to_thread(stack.cluster, "kill", node)
        faults.append("all brokers SIGKILLed")

        async def refused() -> bool:
            return sim.stats.statuses[503] > before

        await eventually(refused, 90, "the API answering 503 while Kafka is away")
        await asyncio.to_thread(stack.cluster, "up")
        result.refused_while_kafka_down = sim.stats.statuses[503] - before
        faults.append("all brokers started")
        await eventually(lambda: fully_replicated(settings), 180, "every replica in sync")
        await stack.all_ready()
        await progress(20)
    finally:
        sim.halt.set()
        await asyncio.wait({simulating}, timeout=120)
        if not simulating.done():
            simulating.cancel()
    simulating.result()
    assert not stack.dead(), stack.dead()
    # No new events from here on: the scheduler stops, the simulator is done; then everything
    # in flight settles.
    await stack.stop("scheduler")
    await settled(stack)
    assert not stack.dead(), stack.dead()
    for service, n in list(stack.instances):
        await stack.stop(service, n)
    result.accepted = list(sim.accepted)
    result.statuses = Counter(sim.stats.statuses)
    result.received = Counter(receiver.received)
    await collect(settings, result)


async def assigned(stack: Stack, service: str, n: int, limit_s: float = 180) -> None:
    """Until the instance's log shows it got partitions of its group."""
    instance = stack.instances[(service, n)]

    async def check() -> bool:
        for line in instance.log.read_text(errors="replace").splitlines():
            if '"partitions_assigned"' in line:
                with contextlib.suppress(ValueError):
                    if json.loads(line).get("partitions"):
                        return True
        return False

    await eventually(check, limit_s, f"{instance.name} assigned partitions")


async def send_poison(settings: Settings) -> list[Poison]:
    producer = make_producer(settings, client_id="fault-suite-poison", request_timeout_ms=30000)
    await producer.start()
    sent: list[Poison] = []
    try:
        for topic in INPUT_TOPICS:
            real = type_name(next(iter(members(TOPIC_EVENTS[topic]))))
            for kind in POISON_KINDS:
                ce_type, value = _poison(kind, real, topic)
                marker = f"poison-{uuid.uuid4()}"
                headers = [
                    ("ce_specversion", b"1.0"),
                    ("ce_id", marker.encode()),
                    ("ce_source", b"/tests/faults"),
                    ("ce_type", ce_type.encode()),
                    ("ce_time", b"2026-11-23T11:00:00Z"),
                    ("content-type", b"application/json"),
                ]
                meta = await producer.send_and_wait(
                    topic, value, key=marker.encode(), headers=headers
                )
                sent.append(Poison(kind, topic, meta.partition, meta.offset, value))
    finally:
        await producer.stop()
    return sent


def _poison(kind: str, real: str, topic: str) -> tuple[str, bytes]:
    stem = real.rsplit(".v", 1)[0]
    if kind == "invalid-json":
        return real, b'{"type": "' + real.encode() + b'", "broken": '
    if kind == "unknown-type":
        ghost = f"{topic.split('.')[0]}.teleport.happened.v1"
        return ghost, orjson.dumps({"type": ghost})
    if kind == "wrong-version":
        return f"{stem}.v99", orjson.dumps({"type": f"{stem}.v99"})
    return real, orjson.dumps({"type": real, "padding": "x" * OVERSIZED_BYTES})


async def settled(stack: Stack, limit_s: float = 300) -> None:
    """Until every group has applied everything on its topics, the outbox is empty, no webhook
    delivery is pending, and the topics' ends stay put."""
    settings = stack.settings
    last: dict[str, dict[int, int]] = {}
    seen: dict[str, Any] = {}  # what the last check found, for the message if it times out

    async def check() -> bool:
        nonlocal last
        ends = {t: await end_offsets(settings, t) for t in GROUP_TOPICS["auditor"]}
        conn = await connect(settings)
        try:
            rows = await conn.fetch(
                "SELECT group_id, topic, partition, next_offset FROM consumer_offsets"
            )
            stored = {(r["group_id"], r["topic"], r["partition"]): r["next_offset"] for r in rows}
            outbox = await conn.fetchval("SELECT count(*) FROM outbox")
            pending = await conn.fetchval(
                "SELECT count(*) FROM webhook_deliveries WHERE status IN ('pending', 'sending')"
            )
        finally:
            await conn.close()
        behind = [
            (g, t, p)
            for g, topics in GROUP_TOPICS.items()
            for t in topics
            for p, end in ends[t].items()
            if stored.get((g, t, p), 0) < end
        ]
        steady = ends == last
        last = ends
        lag: dict[str, int] = {}
        for g, t, p in behind:
            lag[g] = lag.get(g, 0) + ends[t][p] - stored.get((g, t, p), 0)
        seen.update(records_behind_by_group=lag, outbox=outbox, webhooks_pending=pending)
        if stack.dead():
            raise AssertionError("\n".join(stack.dead()))
        return not behind and outbox == 0 and pending == 0 and steady

    try:
        await eventually(check, limit_s, "everything applied, published and delivered", every_s=2)
    except TimeoutError as exc:
        # Which group stalled: the services' logs are in MARKETPLACE_LOCAL_DIR/logs.
        raise TimeoutError(f"{exc}; at the last check: {seen}") from None


async def collect(settings: Settings, result: Result) -> None:
    conn = await connect(settings)
    try:
        await _collect(conn, settings, result)
    finally:
        await conn.close()
    result.dead_letters = await dlq.read(settings, limit=1_000_000)


async def _ids(conn: Conn, sql: str, *args: Any) -> set[str]:
    return {str(r[0]) for r in await conn.fetch(sql, *args)}


async def _collect(conn: Conn, settings: Settings, result: Result) -> None:
    ids = [a.event_id for a in result.accepted]
    rows = await conn.fetch(
        "SELECT ce_id, count(*) AS n FROM audit_log WHERE ce_id = ANY($1::text[]) GROUP BY ce_id",
        ids,
    )
    result.audit_counts = {r["ce_id"]: r["n"] for r in rows}
    spots = await conn.fetch(
        "SELECT topic, partition, kafka_offset FROM audit_log WHERE ce_id LIKE 'poison-%'"
    )
    result.audited_poison = {(r["topic"], r["partition"], r["kafka_offset"]) for r in spots}
    result.records = await conn.fetchval("SELECT count(*) FROM audit_log")
    result.replay = await replay(conn, stages(settings, {}), progress=False)
    result.verify = await verify_database(conn, group_id="auditor", progress=False)

    def of_type(name: str, field_: str) -> str:
        return (
            f"SELECT DISTINCT data->>'{field_}' FROM audit_log"
            f" WHERE ce_type = '{name}' AND ce_id NOT LIKE 'poison-%'"
        )

    log, read = result.log_ids, result.read_ids
    log["offer"] = await _ids(conn, of_type("market.offer.posted.v1", "offer_id"))
    log["request"] = await _ids(conn, of_type("market.request.posted.v1", "request_id"))
    log["proposed"] = await _ids(conn, of_type("market.match.proposed.v1", "match_id"))
    log["confirmed"] = await _ids(conn, of_type("market.match.confirmed.v1", "match_id"))
    log["confirmed_one_off"] = await _ids(
        conn,
        "SELECT DISTINCT data->>'match_id' FROM audit_log"
        " WHERE ce_type = 'market.match.confirmed.v1' AND ce_id NOT LIKE 'poison-%'"
        " AND coalesce(data->'agreement', 'null'::jsonb) = 'null'::jsonb",
    )
    log["delivery"] = await _ids(
        conn,
        "SELECT DISTINCT ce_id FROM audit_log"
        " WHERE ce_type = 'market.delivery.scheduled.v1' AND ce_id NOT LIKE 'poison-%'",
    )
    log["job"] = await _ids(conn, of_type("logistics.job.requested.v1", "job_id"))
    log["job_match"] = await _ids(conn, of_type("logistics.job.requested.v1", "match_id"))
    log["awarded"] = await _ids(conn, of_type("logistics.transport.awarded.v1", "job_id"))
    log["notification"] = await _ids(
        conn,
        "SELECT DISTINCT ce_id FROM audit_log WHERE topic = 'partners.notifications'"
        " AND ce_id NOT LIKE 'poison-%'",
    )
    read["listing"] = await _ids(conn, "SELECT listing_id FROM listings")
    read["withdrawn"] = await _ids(
        conn, "SELECT listing_id FROM listings WHERE status = 'withdrawn'"
    )
    read["analytics_listing"] = await _ids(conn, "SELECT listing_id FROM analytics_listings")
    read["analytics_withdrawn"] = await _ids(
        conn, "SELECT listing_id FROM analytics_listings WHERE withdrawn_at IS NOT NULL"
    )
    read["match"] = await _ids(conn, "SELECT match_id FROM matches")
    read["confirmed"] = await _ids(conn, "SELECT match_id FROM matches WHERE status = 'confirmed'")
    read["analytics_match"] = await _ids(conn, "SELECT match_id FROM analytics_matches")
    read["job"] = await _ids(conn, "SELECT job_id FROM jobs")
    read["analytics_job"] = await _ids(conn, "SELECT job_id FROM analytics_jobs")
    read["awarded"] = await _ids(conn, "SELECT job_id FROM jobs WHERE status = 'awarded'")
    read["notification"] = await _ids(conn, "SELECT notification_id FROM notifications")
    read["delivered"] = await _ids(
        conn, "SELECT notification_id FROM webhook_deliveries WHERE status = 'delivered'"
    )
    deliveries = await conn.fetch(
        "SELECT status, count(*) AS n FROM webhook_deliveries GROUP BY status"
    )
    result.deliveries = Counter({r["status"]: r["n"] for r in deliveries})
    result.outbox_left = await conn.fetchval("SELECT count(*) FROM outbox")
    # A decision published twice (at-least-once) must be the very same record.
    copies = await conn.fetch(
        "SELECT ce_id, count(DISTINCT value) AS versions FROM audit_log"
        " WHERE topic <> 'ops.deadletters' GROUP BY ce_id HAVING count(*) > 1"
    )
    result.duplicates_differ = [r["ce_id"] for r in copies if r["versions"] > 1]


def short(letter: dlq.DeadLetter) -> str:
    key = base64.b64encode(letter.key or b"").decode()
    where = f"{letter.source_topic}/{letter.source_partition}@{letter.source_offset}"
    return f"{letter.group} {where} key={key} {letter.reason[:120]}"
