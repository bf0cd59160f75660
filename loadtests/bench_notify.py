"""End-to-end notification latency: from an offer's HTTP 202 to the matching proposal reaching a
partner's webhook receiver and its WebSocket client, at a steady offered load.

    python -m loadtests.bench_notify [--rate 4] [--duration 30] [--pairs 40]

In one process, on the local Kafka and a scratch database (dropped afterwards), with consumer
groups of their own: the API, the projector, the matcher, the notifier and the webhook worker.
`--pairs` buyer/seller pairs, each at a place of its own far from the others; every buyer posts a
request, registers a webhook endpoint (a receiver on loopback that checks the signature) and
opens a WebSocket. Then offers are posted open-loop at `--rate` per second for `--duration`
seconds (each pair's seller again and again, each offer matching only its own buyer's request
once and the request re-posted after), and for each offer the bench records when its 202 came
back, when the proposal was on market.matches, when the notifications were on
partners.notifications, when the webhook arrived and when the WebSocket message arrived.

Reported as HDR percentiles (p50, p95, p99, max) per stage; the matcher's own stage (202 ->
proposal on Kafka) is the baseline measured in the same run, and the delivery figures are also
given as ratios to it. Writes loadtests/reports/notify-<timestamp>.json and .html."""

from __future__ import annotations

import argparse
import asyncio
import base64
import dataclasses
import hmac
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import aiohttp
import orjson
from aiohttp import web
from aiokafka import TopicPartition

from consumers.matcher import Matcher
from consumers.notifier import TOPICS as NOTIFIER_TOPICS
from consumers.notifier import Notifier
from consumers.projector import TOPICS as PROJECTOR_TOPICS
from consumers.projector import Projector
from consumers.webhooks import run_webhooks
from loadtests import cpu, pgstats
from loadtests.bench_consumers import consumer_settings
from loadtests.hdr import Histogram
from loadtests.report import bar_chart, commit, machine, statements_table, write_report
from loadtests.scratch import scratch_database
from marketplace.db import connect
from marketplace.events import to_message
from marketplace.kafka import make_consumer, make_producer, partition_counts
from marketplace.logs import configure_logging
from marketplace.partners import issue_key, registration
from marketplace.runtime.consumer import start_group_at
from marketplace.runtime.service import run_consumer
from marketplace.settings import Settings
from marketplace.translate.matching import market_config
from producers.api.app import create_app

STAGES = ("proposal_on_kafka", "notification_on_kafka", "webhook", "websocket")


@dataclasses.dataclass
class Pair:
    seller_key: str
    buyer_key: str
    buyer_id: str
    lat: float
    lon: float
    secret: str = ""


@dataclasses.dataclass
class Clock:
    """When each offer's 202 came back, and when each stage saw its proposal."""

    sent: dict[str, float] = dataclasses.field(default_factory=dict)
    seen: dict[str, dict[str, float]] = dataclasses.field(default_factory=dict)
    bad_signatures: int = 0

    def mark(self, stage: str, offer_id: str) -> None:
        self.seen.setdefault(stage, {}).setdefault(offer_id, time.perf_counter())


async def start_at_end(settings: Settings, group: str, topics: tuple[str, ...] | list[str]) -> None:
    """A new group starts at the topics' current ends (what came before is not this run's)."""
    counts = await partition_counts(settings, list(topics))
    reader = make_consumer(settings, None)
    await reader.start()
    try:
        ends: dict[tuple[str, int], int] = {}
        for topic in topics:
            parts = [TopicPartition(topic, p) for p in range(counts[topic])]
            ends |= {
                (tp.topic, tp.partition): o for tp, o in (await reader.end_offsets(parts)).items()
            }
    finally:
        await reader.stop()
    conn = await connect(settings)
    try:
        await start_group_at(conn, group, ends)
    finally:
        await conn.close()


async def register(settings: Settings, role: Any) -> tuple[str, str]:
    event = registration(
        name="Bench AB", role=role, country="SE", region="SE312", sector="13", registered_by="bench"
    )
    message = to_message(
        event, event_id=str(uuid.uuid4()), source="/loadtests", time=datetime.now(UTC)
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
        return event.partner_id, await issue_key(conn, event.partner_id, role)
    finally:
        await conn.close()


def offer_body(p: Pair) -> dict[str, Any]:
    return {
        "material": {"code": "150102", "description": "PE film, baled", "form": "bales"},
        "location": {"lat": p.lat, "lon": p.lon},
        "terms": {
            "quantity": {"amount": 4, "unit": "t"},
            "price": {"amount": 10, "currency": "EUR"},
            "available": {"start": "2026-12-01T00:00:00Z", "end": "2027-03-01T00:00:00Z"},
        },
    }


def request_body(p: Pair) -> dict[str, Any]:
    return {
        "material": {"code": "150102", "description": "PE film for regranulation"},
        "location": {"lat": p.lat + 0.05, "lon": p.lon},
        "terms": {
            "quantity": {"amount": 4, "unit": "t"},
            "max_price": {"amount": 80, "currency": "EUR"},
            "wanted": {"start": "2026-12-15T00:00:00Z", "end": "2027-02-01T00:00:00Z"},
            "max_distance_km": 50,
        },
    }


def signed(secret: str, headers: Any, body: bytes) -> bool:
    key = base64.b64decode(secret.removeprefix("whsec_"))
    mac = hmac.new(
        key, f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + body, "sha256"
    )
    expected = "v1," + base64.b64encode(mac.digest()).decode()
    return any(hmac.compare_digest(expected, s) for s in headers["webhook-signature"].split())


async def receiver(clock: Clock, secrets: dict[str, str]) -> tuple[web.AppRunner, int]:
    async def hook(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        if not signed(secrets[request.match_info["buyer"]], request.headers, body):
            clock.bad_signatures += 1
            return web.Response(status=400)
        data = orjson.loads(body)["data"]["data"]
        clock.mark("webhook", data["offer_id"])
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/hook/{buyer}", hook)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    server = site._server
    assert server is not None
    return runner, server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]


async def watch_topic(settings: Settings, topic: str, clock: Clock, stop: asyncio.Event) -> None:
    consumer = make_consumer(settings, None, auto_offset_reset="latest")
    await consumer.start()
    consumer.subscribe([topic])
    try:
        while not stop.is_set():
            batches = await consumer.getmany(timeout_ms=100)
            for records in batches.values():
                for r in records:
                    body = orjson.loads(r.value)
                    if topic == "market.matches" and body.get("type") == "market.match.proposed.v1":
                        clock.mark("proposal_on_kafka", body["offer_id"])
                    elif topic == "partners.notifications" and body.get("kind") == "match.proposed":
                        clock.mark("notification_on_kafka", body["data"]["offer_id"])
    finally:
        await consumer.stop()


async def websocket(base: str, pair: Pair, clock: Clock, ready: asyncio.Event) -> None:
    async with (
        aiohttp.ClientSession() as http,
        http.ws_connect(
            f"{base}/v1/notifications/ws", headers={"Authorization": f"Bearer {pair.buyer_key}"}
        ) as ws,
    ):
        async for msg in ws:
            data = orjson.loads(msg.data)
            if data["type"] == "ready":
                ready.set()
            elif (
                data["type"] == "notification" and data["notification"]["kind"] == "match.proposed"
            ):
                clock.mark("websocket", data["notification"]["data"]["offer_id"])


async def measure(rate: float, duration: float, pairs: int) -> dict[str, Any]:
    base_settings = Settings.from_env()
    clock = Clock()
    async with scratch_database(base_settings, "bench_notify") as scratch:
        settings = dataclasses.replace(
            scratch, webhook_allow_networks="127.0.0.0/8", api_rate_per_s=1000, api_rate_burst=1000
        )
        stop = asyncio.Event()
        tag = uuid.uuid4().hex[:8]
        tasks: list[asyncio.Task[Any]] = []
        for name, topics in (("projector", PROJECTOR_TOPICS), ("notifier", NOTIFIER_TOPICS)):
            group = f"bench.{name}.{tag}"
            await start_at_end(settings, group, topics)
            processor = Projector(group) if name == "projector" else Notifier(group)
            tasks.append(
                asyncio.create_task(
                    run_consumer(
                        settings, group_id=group, topics=topics, processor=processor, stop=stop
                    )
                )
            )
        matcher_group = f"bench.matcher.{tag}"
        await start_at_end(settings, matcher_group, ["market.listings"])
        tasks.append(
            asyncio.create_task(
                run_consumer(
                    settings,
                    group_id=matcher_group,
                    topics=["market.listings"],
                    processor=Matcher(market_config(settings), matcher_group),
                    stop=stop,
                )
            )
        )
        hooks_group = f"bench.webhooks.{tag}"
        await start_at_end(settings, hooks_group, ["partners.notifications"])
        tasks.append(asyncio.create_task(run_webhooks(settings, stop, hooks_group)))
        tasks += [
            asyncio.create_task(watch_topic(settings, topic, clock, stop))
            for topic in ("market.matches", "partners.notifications")
        ]

        api = web.AppRunner(create_app(settings), access_log=None)
        await api.setup()
        site = web.TCPSite(api, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None
        base = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"  # type: ignore[attr-defined]
        secrets: dict[str, str] = {}
        hook_runner, hook_port = await receiver(clock, secrets)
        ws_tasks = []
        try:
            people = []
            for i in range(pairs):
                _, seller_key = await register(settings, "sme")
                buyer_id, buyer_key = await register(settings, "sme")
                # Far apart (0.6 degrees of latitude, 0.8 of longitude: over 60 km; requests
                # reach 50 km), and far from the simulator's towns in Sweden and Bulgaria.
                lat, lon = 36.0 + (i // 20) * 0.6, -9.0 + (i % 20) * 0.8
                people.append(Pair(seller_key, buyer_key, buyer_id, lat, lon))
            async with aiohttp.ClientSession() as http:
                for p in people:
                    auth = {"Authorization": f"Bearer {p.buyer_key}"}
                    async with http.post(
                        f"{base}/v1/webhooks",
                        json={
                            "url": f"http://127.0.0.1:{hook_port}/hook/{p.buyer_id}",
                            "kinds": ["match.proposed"],
                        },
                        headers=auth,
                    ) as r:
                        assert r.status == 201, await r.text()
                        secrets[p.buyer_id] = (await r.json())["secret"]
                    ready = asyncio.Event()
                    ws_tasks.append(asyncio.create_task(websocket(base, p, clock, ready)))
                    await asyncio.wait_for(ready.wait(), 30)
                    async with http.post(
                        f"{base}/v1/requests", json=request_body(p), headers=auth
                    ) as r:
                        assert r.status == 202, await r.text()
                await asyncio.sleep(3)  # the requests are in the matcher's book
                interval, count = 1 / rate, int(rate * duration)
                started = time.perf_counter()
                posts = []

                async def post_offer(k: int) -> None:
                    p = people[k % pairs]
                    auth = {"Authorization": f"Bearer {p.seller_key}"}
                    async with http.post(
                        f"{base}/v1/offers", json=offer_body(p), headers=auth
                    ) as r:
                        at = time.perf_counter()
                        assert r.status == 202, await r.text()
                        clock.sent[(await r.json())["offer_id"]] = at
                    # The buyer wants it again, for the pair's next round.
                    auth = {"Authorization": f"Bearer {p.buyer_key}"}
                    async with http.post(
                        f"{base}/v1/requests", json=request_body(p), headers=auth
                    ) as r:
                        assert r.status == 202, await r.text()

                for k in range(count):
                    # Open loop: on schedule, whatever earlier posts are doing.
                    delay = started + k * interval - time.perf_counter()
                    if delay > 0:
                        await asyncio.sleep(delay)
                    posts.append(asyncio.create_task(post_offer(k)))
                await asyncio.gather(*posts)
                deadline = time.perf_counter() + 30
                while time.perf_counter() < deadline and any(  # noqa: ASYNC110 - a bounded wait
                    len(clock.seen.get(s, {})) < len(clock.sent) for s in ("webhook", "websocket")
                ):
                    await asyncio.sleep(0.2)
        finally:
            stop.set()
            for t in ws_tasks:
                t.cancel()
            await asyncio.gather(*ws_tasks, return_exceptions=True)
            await api.cleanup()
            await hook_runner.cleanup()
            await asyncio.gather(*tasks, return_exceptions=True)
    stages: dict[str, dict[str, float]] = {}
    for stage in STAGES:
        h = Histogram(lowest=1e-4)
        for offer_id, at in clock.sent.items():
            seen = clock.seen.get(stage, {}).get(offer_id)
            if seen is not None:
                h.record(max(seen - at, 1e-4))
        stages[stage] = {k: v * (1000 if k != "count" else 1) for k, v in h.summary().items()}
    base_p50 = stages["proposal_on_kafka"]["p50"]
    return {
        "rate_per_s": rate,
        "duration_s": duration,
        "pairs": pairs,
        "offers": len(clock.sent),
        "bad_signatures": clock.bad_signatures,
        "stages_ms": stages,
        "ratio_p50_to_proposal": {s: stages[s]["p50"] / base_p50 for s in STAGES},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--rate", type=float, default=4.0, help="offers per second")
    parser.add_argument("--duration", type=float, default=30.0, help="seconds of offered load")
    parser.add_argument("--pairs", type=int, default=40, help="buyer/seller pairs")
    args = parser.parse_args()
    if not (0 < args.rate <= 50 and 0 < args.duration <= 300 and 1 <= args.pairs <= 200):
        parser.error("keep it bounded: rate 0..50/s, duration 0..300 s, pairs 1..200")
    settings = Settings.from_env()
    configure_logging(dataclasses.replace(settings, log_level="warning"))
    at_start, statements, before = machine(), pgstats.reset(), cpu.snapshot()
    result = asyncio.run(asyncio.wait_for(measure(args.rate, args.duration, args.pairs), 900))
    # Every service runs in this one process, so its CPU is theirs and the load generator's.
    usage = cpu.between(before, cpu.snapshot())
    usage["services_and_load_generator_cpu_s"] = usage.pop("load_generator_cpu_s")
    result |= {
        "commit": commit(),
        "machine_at_start": at_start,
        "machine_at_end": machine(),
        "cpu": usage,
        "settings": {"consumers": consumer_settings(settings)},
        "pg_stat_statements": pgstats.top() if statements["loaded"] else statements,
    }
    rows = []
    for stage, s in result["stages_ms"].items():
        ratio = result["ratio_p50_to_proposal"][stage]
        rows.append(
            [
                stage,
                f"{s['count']:.0f}",
                f"{s['p50']:.1f}",
                f"{s['p95']:.1f}",
                f"{s['p99']:.1f}",
                f"{s['max']:.1f}",
                f"{ratio:.2f}",
            ]
        )
    print(f"{result['offers']} offers at {args.rate}/s; bad signatures: {result['bad_signatures']}")
    for row in rows:
        print(
            f"{row[0]:<22} n={row[1]:>5} p50 {row[2]:>8} p95 {row[3]:>8} p99 {row[4]:>8}"
            f" max {row[5]:>8} ms  p50 x{row[6]} of the proposal stage"
        )
    paths = write_report(
        "notify",
        title="Notification latency: offer 202 to webhook and WebSocket",
        summary=(
            f"{result['offers']} offers open-loop at {args.rate}/s over {args.duration:g} s, "
            f"{args.pairs} buyer/seller pairs; milliseconds from the offer's 202; "
            "ratios are p50 over the proposal stage's p50 in the same run. Load average "
            f"{result['machine_at_start']['load_1m']:.2f} at the start, "
            f"{result['machine_at_end']['load_1m']:.2f} at the end (a shared machine), commit "
            f"{result['commit']}; {result['pg_stat_statements']['note']}."
        ),
        data=result,
        headers=["stage", "n", "p50 ms", "p95 ms", "p99 ms", "max ms", "p50 ratio"],
        rows=rows,
        figure=bar_chart([(s, v["p99"]) for s, v in result["stages_ms"].items()], unit="ms (p99)"),
        extra=statements_table(result["pg_stat_statements"]),
    )
    print(f"report: {paths[0]} and {paths[1].name}")


if __name__ == "__main__":
    main()
