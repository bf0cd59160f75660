"""The whole pipeline: how many listings per second it carries from its way in to proposals
delivered, with one and with several instances of each consumer, and the end-to-end latency from
a listing's HTTP 202 to its proposal delivered, at 10 %, 50 % and 90 % of that maximum.

    python -m loadtests.bench_pipeline [--listings 4000] [--instances 1,2] [--smes 300]
                                       [--latency-s 30] [--fractions 0.1,0.5,0.9]

The pipeline: the API, the matcher, the notifier, the projector (which stores the notifications
the live push sends) and the webhook worker, each service a process of its own
(`python -m loadtests.stack`), on a scratch database, with consumer groups of the benchmark's
own. The market simulator's SMEs (`--smes`) are registered, each with a webhook endpoint on a
receiver on loopback (signatures checked); the first 40 also hold a WebSocket open.

1. Kafka in, one round per instance count: `--listings` actions of the simulator's mix are put on
   market.listings by the load generator (`--mode kafka`, as the API would publish them) while
   the consumers are stopped; then k processes of each consumer start and the round's rate is
   the listings over the time from the matcher's first commit to the last proposal's webhook.
2. API in: with one instance of each consumer running, the generator posts through the API
   open-loop at `--api-rate` (above what the pipeline can take) for `--api-seconds`; the
   pipeline's maximum is the lower of the rates at which, after `--warm-s`, the matcher applied
   listings and the webhooks of their proposals arrived (in listings: webhooks per listing
   counted over the round) while the API was taking posts, i.e. sustained, with the API
   competing for the cores. (A burst drained with the API idle goes faster: also reported.)
3. Latency: open-loop through the API at each fraction of (2) for `--latency-s` seconds. Each
   proposal's start is the 202 of the later of its offer and its request (a proposal that a
   later event caused, a withdrawal or a decline that freed quantity, is counted apart: its
   CloudEvent time, its cause's, is after that 202); stages: proposal on
   market.matches, notification on partners.notifications, webhook received, WebSocket
   message received (HDR histograms, p50/p95/p99/max).

Baselines in the same run, on the first round's listings: the bare aiokafka consume and
consume-produce loops and Kafka's ProducerPerformance/ConsumerPerformance tools
(`loadtests/bench_consumers.py`); each pipeline rate is also given as a ratio to them.
Writes loadtests/reports/pipeline-<timestamp>.json and .html. Bounded: every wait has a limit."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import os
import signal
import sys
import time
import uuid
from datetime import datetime
from typing import Any

import aiohttp
import orjson
from aiohttp import web
from aiokafka import TopicPartition

from loadtests import cpu, pgstats
from loadtests.bench_consumers import (
    _ends,
    bare_loop,
    baseline_settings,
    consumer_settings,
    kafka_tools,
)
from loadtests.bench_notify import signed
from loadtests.hdr import Histogram
from loadtests.loadgen import LoadGenerator
from loadtests.report import (
    bar_chart,
    commit,
    line_chart,
    machine,
    statements_table,
    table,
    write_report,
)
from loadtests.scratch import scratch_database
from loadtests.soak import free_port
from loadtests.stack import start_at_end, subscriptions
from loadtests.trend import slope
from marketplace.db import Conn, connect
from marketplace.kafka import ensure_topics, make_consumer, partition_counts
from marketplace.logs import configure_logging
from marketplace.settings import Settings
from marketplace.translate.matching import source_of
from schemas.topics import TopicSpec

CONSUMERS = ("matcher", "notifier", "projector", "webhooks")
STAGES = ("proposal_on_kafka", "notification_on_kafka", "webhook", "websocket")
WS_CLIENTS = 40
LIMIT_S = 240  # the longest any one wait may last


@dataclasses.dataclass
class Seen:
    """When each proposal and its deliveries were seen (perf_counter seconds)."""

    # match id -> (seen, offer id, request id, the wall-clock time of the event that caused it)
    proposals: dict[str, tuple[float, str, str, float]] = dataclasses.field(default_factory=dict)
    stages: dict[str, dict[tuple[str, str], float]] = dataclasses.field(
        default_factory=lambda: {s: {} for s in STAGES[1:]}
    )
    mine: set[str] = dataclasses.field(default_factory=set)  # the benchmark's partner ids
    matcher: str = ""  # the ce_source of the round's matcher group
    bad_signatures: int = 0
    # Wall-clock seconds for the hops (--rates): the Kafka timestamps of each proposal and
    # notification (set by the producer when its service handed the record over) and each
    # webhook's arrival at the receiver.
    proposal_sent: dict[str, float] = dataclasses.field(default_factory=dict)
    notification_sent: dict[tuple[str, str], float] = dataclasses.field(default_factory=dict)
    webhook_wall: dict[tuple[str, str], float] = dataclasses.field(default_factory=dict)

    def mark(self, stage: str, match_id: str, side: str) -> None:
        self.stages[stage].setdefault((match_id, side), time.perf_counter())

    def last_delivery(self, match_ids: set[str]) -> tuple[int, float]:
        """How many of these proposals' webhooks arrived, and when the last one did."""
        got = [t for (m, _), t in self.stages["webhook"].items() if m in match_ids]
        return len(got), max(got, default=0.0)


async def receiver(seen: Seen, secrets: dict[str, str]) -> tuple[web.AppRunner, int]:
    async def hook(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        if not signed(secrets[request.match_info["who"]], request.headers, body):
            seen.bad_signatures += 1
            return web.Response(status=400)
        data = orjson.loads(body)["data"]["data"]
        seen.mark("webhook", data["match_id"], data["your_side"])
        seen.webhook_wall.setdefault((data["match_id"], data["your_side"]), time.time())
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/hook/{who}", hook)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner, port


async def watch(settings: Settings, seen: Seen, ready: asyncio.Event) -> None:
    """Proposals on market.matches and their notifications, from the topics' current ends."""
    topics = ["market.matches", "partners.notifications"]
    counts = await partition_counts(settings, topics)
    consumer = make_consumer(settings, None, max_poll_records=2000)
    await consumer.start()
    try:
        parts = [TopicPartition(t, p) for t in topics for p in range(counts[t])]
        consumer.assign(parts)
        await consumer.seek_to_end(*parts)
        for tp in parts:
            await consumer.position(tp)
        ready.set()
        while True:
            batches = await consumer.getmany(timeout_ms=100)
            now = time.perf_counter()
            for tp, records in batches.items():
                for r in records:
                    body = orjson.loads(r.value)
                    if tp.topic == "market.matches":
                        # The topic is shared: other matchers (a soak, `make run`) propose
                        # pairs of our listings too; only the round's own matcher counts.
                        if (
                            body.get("type") == "market.match.proposed.v1"
                            and dict(r.headers).get("ce_source") == seen.matcher.encode()
                            and {body.get("seller_id"), body.get("buyer_id")} & seen.mine
                        ):
                            cause = datetime.fromisoformat(
                                dict(r.headers)["ce_time"].decode()
                            ).timestamp()
                            seen.proposals.setdefault(
                                body["match_id"],
                                (now, body["offer_id"], body["request_id"], cause),
                            )
                            seen.proposal_sent.setdefault(body["match_id"], r.timestamp / 1000)
                    elif body.get("kind") == "match.proposed":
                        key = (body["data"]["match_id"], body["data"]["your_side"])
                        seen.stages["notification_on_kafka"].setdefault(key, now)
                        seen.notification_sent.setdefault(key, r.timestamp / 1000)
    finally:
        await consumer.stop()


async def websocket(base: str, key: str, seen: Seen, ready: asyncio.Event) -> None:
    async with (
        aiohttp.ClientSession() as http,
        http.ws_connect(
            f"{base}/v1/notifications/ws", headers={"Authorization": f"Bearer {key}"}
        ) as ws,
    ):
        async for msg in ws:
            data = orjson.loads(msg.data)
            if data["type"] == "ready":
                ready.set()
            elif data["type"] == "notification":
                note = data["notification"]
                if note["kind"] == "match.proposed":
                    seen.mark("websocket", note["data"]["match_id"], note["data"]["your_side"])


class Services:
    """Service processes (`python -m loadtests.stack`), stopped by SIGTERM."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.procs: list[asyncio.subprocess.Process] = []
        self.names: dict[int, str] = {}  # pid -> service

    async def start(
        self, prefix: str, service: str, copies: int = 1, extra: dict[str, str] | None = None
    ) -> None:
        extra = extra or {}
        # A variant's `nice.SERVICE=N`: that service's processes run N steps below the others'
        # CPU priority (`nice -n N`, which keeps the pid whose CPU is counted).
        niceness = extra.get(f"nice.{service}")
        prefix_argv = ["nice", "-n", niceness] if niceness else []
        settings = {k: v for k, v in extra.items() if not k.startswith("nice.")}
        for _ in range(copies):
            env = self.env | settings | {"MARKETPLACE_METRICS_PORT": str(free_port())}
            self.procs.append(
                await asyncio.create_subprocess_exec(
                    *prefix_argv,
                    sys.executable,
                    "-m",
                    "loadtests.stack",
                    prefix,
                    "--services",
                    service,
                    env=env,
                    stdout=asyncio.subprocess.DEVNULL,
                )
            )
            self.names[self.procs[-1].pid] = service

    def cpu_by_pid(self) -> dict[int, float]:
        """CPU seconds of each running service process since it started."""
        return {p.pid: cpu.process_seconds(p.pid) for p in self.procs if p.returncode is None}

    def cpu_seconds(self, since: dict[int, float] | None = None) -> dict[str, list[float]]:
        """CPU seconds of each running service process, by service: since it started, or less
        what it had used at `since` (`cpu_by_pid` then; a process started later counts whole)."""
        out: dict[str, list[float]] = {}
        for pid, seconds in self.cpu_by_pid().items():
            used = seconds - (since or {}).get(pid, 0.0)
            out.setdefault(self.names.get(pid, "?"), []).append(round(used, 3))
        return out

    def check(self) -> None:
        for p in self.procs:
            if p.returncode is not None:
                raise RuntimeError(f"a service process stopped (exit {p.returncode})")

    async def stop(self, keep: int = 0) -> None:
        """Stops all but the first `keep` processes."""
        stopping, self.procs = self.procs[keep:], self.procs[:keep]
        for p in stopping:
            if p.returncode is None:
                p.send_signal(signal.SIGTERM)
        for p in stopping:
            try:
                await asyncio.wait_for(p.wait(), 30)
            except TimeoutError:
                p.kill()
                await p.wait()


Mark = tuple[cpu.Snapshot, dict[int, float]]


def mark(services: Services) -> Mark:
    """Where a round starts: the machine's CPU counters and each running service's CPU."""
    return cpu.snapshot(), services.cpu_by_pid()


def usage(before: Mark, services: Services) -> dict[str, Any]:
    """A round's CPU seconds, all over the round only: the broker, PostgreSQL, this process (the
    load generator, the webhook receiver and the WebSocket clients) and each service process
    (one started during the round counts from its start). Until stop 33 the services' figures
    ran from each process's start, so a latency round's included the overload round before it
    (the reports of that time: docs/operators/capacity.md)."""
    snapshot, started = before
    return {
        **cpu.between(snapshot, cpu.snapshot()),
        "services_cpu_s": services.cpu_seconds(since=started),
    }


async def caught_up(conn: Conn, group: str, topic: str, target: dict[int, int]) -> bool:
    rows = await conn.fetch(
        "SELECT partition, next_offset FROM consumer_offsets WHERE group_id = $1 AND topic = $2",
        group,
        topic,
    )
    have = {r["partition"]: r["next_offset"] for r in rows}
    return all(have.get(p, 0) >= o for p, o in target.items())


async def progress(conn: Conn, group: str, topic: str, start: dict[int, int]) -> int:
    rows = await conn.fetch(
        "SELECT partition, next_offset FROM consumer_offsets WHERE group_id = $1 AND topic = $2",
        group,
        topic,
    )
    return sum(max(0, r["next_offset"] - start.get(r["partition"], 0)) for r in rows)


async def settle(
    settings: Settings, conn: Conn, prefix: str, seen: Seen, services: Services
) -> tuple[set[str], float]:
    """Waits until the matcher, then the notifier, then the projector and the webhook worker
    have applied everything on their topics, and every proposal seen since `seen.proposals` was
    last cleared has had both its webhooks; returns those proposals and the moment the last
    webhook arrived."""
    deadline = time.monotonic() + LIMIT_S
    for group, topic in (
        ("matcher", "market.listings"),
        ("notifier", "market.matches"),
        ("projector", "partners.notifications"),
        ("webhooks", "partners.notifications"),
    ):
        target = await _ends(settings, topic)
        while not await caught_up(conn, f"{prefix}.{group}", topic, target):
            services.check()
            if time.monotonic() > deadline:
                raise TimeoutError(f"{group} did not catch up within {LIMIT_S} s")
            await asyncio.sleep(0.1)
    await asyncio.sleep(0.5)  # the watcher has read what was committed
    mine = set(seen.proposals)
    wanted = 2 * len(mine)
    while seen.last_delivery(mine)[0] < wanted and time.monotonic() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.1)
    return mine, seen.last_delivery(mine)[1]


def latencies(
    seen: Seen, sent: dict[str, tuple[float, float]]
) -> tuple[dict[str, dict[str, float]], int]:
    """Per stage, HDR percentiles (ms) from the 202 of the later of each proposal's two
    listings; and how many proposals were left out because a later event caused them (a
    withdrawal or a decline that freed quantity: their CloudEvent time, the cause's, is after
    that 202)."""
    hist = {s: Histogram(lowest=1e-4) for s in STAGES}
    other_cause = 0
    for match_id, (at, offer_id, request_id, cause_wall) in seen.proposals.items():
        starts = [sent[x] for x in (offer_id, request_id) if x in sent]
        if not starts:
            continue  # not this phase's
        start, start_wall = max(starts)
        if cause_wall > start_wall + 0.001:
            other_cause += 1
            continue
        hist["proposal_on_kafka"].record(max(at - start, 1e-4))
        for stage in STAGES[1:]:
            for side in ("seller", "buyer"):
                t = seen.stages[stage].get((match_id, side))
                if t is not None:
                    hist[stage].record(max(t - start, 1e-4))
    return {
        s: {k: v * (1000 if k != "count" else 1) for k, v in h.summary().items()}
        for s, h in hist.items()
    }, other_cause


async def measure(args: argparse.Namespace) -> dict[str, Any]:
    base = Settings.from_env()
    seen = Seen()
    result: dict[str, Any] = {
        "rounds": [],
        "latency": [],
        "machine_at_start": machine(),
        "settings": {"consumers": consumer_settings(base), "baselines": baseline_settings(base)},
    }
    result["pg_stat_statements"] = pgstats.reset()
    async with scratch_database(base, "bench_pipeline") as scratch:
        settings = dataclasses.replace(scratch, log_level="warning")
        api_port = free_port()
        env = {
            **os.environ,
            "MARKETPLACE_DATABASE_URL": scratch.dsn,
            "MARKETPLACE_HTTP_PORT": str(api_port),
            "MARKETPLACE_WEBHOOK_ALLOW_NETWORKS": "127.0.0.0/8",
            "MARKETPLACE_API_RATE_PER_S": "100000",
            "MARKETPLACE_API_RATE_BURST": "100000",
            "MARKETPLACE_LOG_LEVEL": "warning",
        }
        api_url = f"http://127.0.0.1:{api_port}"
        services = Services(env)
        tag = uuid.uuid4().hex[:6]
        secrets: dict[str, str] = {}
        hooks, hook_port = await receiver(seen, secrets)
        ready = asyncio.Event()
        watcher = asyncio.create_task(watch(settings, seen, ready))
        side_tasks: list[asyncio.Task[None]] = []
        conn = await connect(settings)
        try:
            await asyncio.wait_for(ready.wait(), 60)
            await services.start(f"pipe.{tag}.api", "api")
            gen = LoadGenerator(settings, mode="kafka", seed=args.seed, smes=args.smes)
            await gen.register()
            seen.mine = set(gen.ids.values())
            async with aiohttp.ClientSession() as http:
                await api_ready(http, api_url)
                for index, key in gen.keys.items():
                    async with http.post(
                        f"{api_url}/v1/webhooks",
                        json={
                            "url": f"http://127.0.0.1:{hook_port}/hook/{index}",
                            "kinds": ["match.proposed"],
                        },
                        headers={"Authorization": f"Bearer {key}"},
                    ) as r:
                        if r.status != 201:
                            raise RuntimeError(f"webhook registration: {await r.text()}")
                        secrets[str(index)] = (await r.json())["secret"]
            for key in list(gen.keys.values())[:WS_CLIENTS]:
                opened = asyncio.Event()
                side_tasks.append(asyncio.create_task(websocket(api_url, key, seen, opened)))
                await asyncio.wait_for(opened.wait(), 30)

            # 1. Kafka in, k instances of each consumer.
            for k in args.instances:
                prefix = f"pipe.{tag}.kafka{k}"
                groups = subscriptions(prefix, list(CONSUMERS))
                await start_at_end(settings, groups)
                start = await _ends(settings, "market.listings")
                seen.proposals.clear()
                seen.matcher = source_of(f"{prefix}.matcher")
                gen.mode = "kafka"
                loaded = await gen.run(5000.0, 60.0, args.listings)
                end = await _ends(settings, "market.listings")
                n = sum(end[p] - start[p] for p in start)
                if k == args.instances[0]:
                    found = await baselines(settings, start, end)
                    result["sink"] = found.pop("sink")
                    result["baselines"] = found
                    first_range = (start, end)
                before = mark(services)
                for service in CONSUMERS:
                    await services.start(prefix, service, k)
                t_first = await first_commit(conn, f"{prefix}.matcher", start, services)
                matches, t_last = await settle(settings, conn, prefix, seen, services)
                rate = n / max(t_last - t_first, 1e-6)
                result["rounds"].append(
                    {
                        "way_in": "kafka",
                        "instances": k,
                        "listings": n,
                        "accepted": loaded.summary()["accepted"],
                        "proposals": len(matches),
                        "seconds": t_last - t_first,
                        "listings_per_s": rate,
                        "cpu": usage(before, services),
                    }
                )
                print(f"pipeline, Kafka in, x{k}: {n} listings, {rate:,.0f}/s", flush=True)
                await services.stop(keep=1)  # the API stays

            # 2. API in, one instance of each consumer (they stay for the latency runs).
            prefix = f"pipe.{tag}.api1"
            groups = subscriptions(prefix, list(CONSUMERS))
            await start_at_end(settings, groups)
            before = mark(services)
            for service in CONSUMERS:
                await services.start(prefix, service, 1)
            seen.matcher = source_of(f"{prefix}.matcher")
            await asyncio.sleep(3)  # the consumers have joined their groups
            gen.mode, gen.api = "api", api_url
            sent: dict[str, tuple[float, float]] = {}  # listing id -> its 202: perf, wall clock
            gen.on_accepted = lambda _kind, listing_id, at: sent.__setitem__(
                listing_id, (at, time.time())
            )
            seen.proposals.clear()
            listings_from = await _ends(settings, "market.listings")
            t_first = time.perf_counter()
            # Overload for --api-seconds: the stages work flat out while the API takes posts,
            # as they would at their sustained maximum; sampled every second.
            posting = asyncio.create_task(gen.run(args.api_rate, args.api_seconds, 1_000_000))
            series: list[tuple[float, float, float]] = []  # (s, listings matched, webhooks)
            hooks_before = len(seen.stages["webhook"])  # the earlier rounds' webhooks
            while not posting.done() and time.perf_counter() - t_first < args.api_seconds:
                await asyncio.sleep(1.0)
                done = await progress(conn, f"{prefix}.matcher", "market.listings", listings_from)
                series.append(
                    (
                        time.perf_counter() - t_first,
                        float(done),
                        float(len(seen.stages["webhook"]) - hooks_before),
                    )
                )
            offered = await posting
            matches, t_last = await settle(settings, conn, prefix, seen, services)
            accepted = offered.summary()
            drained = accepted["accepted"] / max(t_last - t_first, 1e-6)
            webhooks_per_listing = 2 * len(matches) / max(accepted["accepted"], 1)
            window = [p for p in series if p[0] >= args.warm_s]
            matched_rate = slope([(t, m) for t, m, _ in window])
            hooks_rate = slope([(t, w) for t, _, w in window]) / max(webhooks_per_listing, 1e-9)
            top = min(matched_rate, hooks_rate)
            result["rounds"].append(
                {
                    "way_in": "api",
                    "instances": 1,
                    "offered_per_s": args.api_rate,
                    "listings": accepted["accepted"],
                    "api": accepted,
                    "proposals": len(matches),
                    "seconds": t_last - t_first,
                    "drained_listings_per_s": drained,
                    "sustained_matcher_listings_per_s": matched_rate,
                    "sustained_webhooks_in_listings_per_s": hooks_rate,
                    "webhooks_per_listing": webhooks_per_listing,
                    "listings_per_s": top,
                    "series": series,
                    "cpu": usage(before, services),
                }
            )
            print(
                f"pipeline, API in, x1: {accepted['accepted']} accepted at "
                f"{accepted['accepted_per_s']:,.0f}/s; sustained under overload: matcher "
                f"{matched_rate:,.0f} listings/s, webhooks {hooks_rate:,.0f} listings/s; "
                f"whole run drained at {drained:,.0f}/s",
                flush=True,
            )
            result["max_listings_per_s"] = top

            # 3. Latency at fractions of the maximum, through the API.
            for fraction in args.fractions:
                rate = top * fraction
                sent.clear()
                seen.proposals.clear()
                before = mark(services)
                offered = await gen.run(rate, args.latency_s, 1_000_000)
                await settle(settings, conn, prefix, seen, services)
                stages, other_cause = latencies(seen, dict(sent))
                summary = offered.summary()
                result["latency"].append(
                    {
                        "fraction_of_max": fraction,
                        "rate_per_s": rate,
                        "seconds": args.latency_s,
                        "accepted": summary["accepted"],
                        "http_202_ms": summary["ack_ms"],
                        "proposals_caused_by_later_events": other_cause,
                        "stages_ms": stages,
                        "cpu": usage(before, services),
                    }
                )
                w = stages["webhook"]
                print(
                    f"latency at {fraction:.0%} ({rate:,.1f}/s): webhook p50 {w['p50']:.0f} "
                    f"p95 {w['p95']:.0f} p99 {w['p99']:.0f} max {w['max']:.0f} ms "
                    f"(n={w['count']:.0f})",
                    flush=True,
                )
            # Deliveries that needed more than one attempt (a retry waits 5-10 s: the tail).
            result["webhook_deliveries"] = [
                dict(r)
                for r in await conn.fetch(
                    "SELECT group_id, count(*) AS deliveries,"
                    " count(*) FILTER (WHERE attempts > 1) AS retried,"
                    " count(*) FILTER (WHERE status <> 'delivered') AS not_delivered,"
                    " array_remove(array_agg(DISTINCT left(last_error, 100)), NULL) AS errors"
                    " FROM webhook_deliveries GROUP BY group_id ORDER BY group_id"
                )
            ]
            # The machine is shared: the bare loops again at the end; each baseline is the
            # better of its two measurements.
            again = {
                "aiokafka-consume": await bare_loop(settings, *first_range, None),
                "aiokafka-consume-produce": await bare_loop(settings, *first_range, result["sink"]),
            }
            result["baselines_at_start"] = dict(result["baselines"])
            result["baselines_at_end"] = again
            for name, rate in again.items():
                result["baselines"][name] = max(result["baselines"][name], rate)
            result["pg_stat_statements"] = pgstats.top()
        finally:
            for t in [*side_tasks, watcher]:
                t.cancel()
            await asyncio.gather(*side_tasks, watcher, return_exceptions=True)
            await services.stop()
            await hooks.cleanup()
            await conn.close()
    result["bad_signatures"] = seen.bad_signatures
    return result


HOPS = ("matcher", "notifier", "webhook_inbox", "webhook_dispatch", "end_to_end")


async def hops(
    conn: Conn, group: str, seen: Seen, sent: dict[str, tuple[float, float]]
) -> dict[str, dict[str, float]]:
    """Per hop, HDR percentiles (ms) on the wall clock, from the 202 of the later listing of
    each proposal (counted as `latencies` counts them): to the matcher handing the proposal to
    its producer (its Kafka timestamp: fetch, batch, commit); to the notifier handing the
    notification over (the matcher's linger and acks, the notifier's fetch, batch, commit);
    to the webhook worker's inbox transaction that stored the delivery (its `created_at`, the
    transaction's start: the notifier's linger and acks, the inbox's fetch); to the receiver
    (the inbox's batch and commit, the NOTIFY, the claim, the POST)."""
    stored: dict[tuple[str, str], float] = {}
    for row in await conn.fetch(
        "SELECT body, extract(epoch FROM created_at)::float8 AS at FROM webhook_deliveries"
        " WHERE group_id = $1",
        group,
    ):
        data = orjson.loads(row["body"])["data"]["data"]
        stored[(data["match_id"], data["your_side"])] = row["at"]
    hist = {h: Histogram(lowest=1e-4) for h in HOPS}
    for match_id, (_, offer_id, request_id, cause_wall) in seen.proposals.items():
        starts = [sent[x] for x in (offer_id, request_id) if x in sent]
        proposed = seen.proposal_sent.get(match_id)
        if not starts or proposed is None:
            continue
        start_wall = max(starts)[1]
        if cause_wall > start_wall + 0.001:
            continue
        hist["matcher"].record(max(proposed - start_wall, 1e-4))
        for side in ("seller", "buyer"):
            key = (match_id, side)
            points = (
                seen.notification_sent.get(key),
                stored.get(key),
                seen.webhook_wall.get(key),
            )
            if any(p is None for p in points):
                continue
            notified, inbox, received = (float(p) for p in points if p is not None)
            hist["notifier"].record(max(notified - proposed, 1e-4))
            hist["webhook_inbox"].record(max(inbox - notified, 1e-4))
            hist["webhook_dispatch"].record(max(received - inbox, 1e-4))
            hist["end_to_end"].record(max(received - start_wall, 1e-4))
    return {
        h: {k: v * (1000 if k != "count" else 1) for k, v in x.summary().items()}
        for h, x in hist.items()
    }


def parse_variant(text: str) -> tuple[str, dict[str, str]]:
    """ "name" or "name:MARKETPLACE_X=1,MARKETPLACE_Y=2": a variant's name and the settings
    (environment variables of every service process) it runs with. An item `nice.SERVICE=N`
    (N from 1 to 19) runs that service's processes at a lower CPU priority instead."""
    name, _, rest = text.partition(":")
    env: dict[str, str] = {}
    for item in filter(None, rest.split(",")):
        key, sep, value = item.partition("=")
        if key.startswith("nice."):
            service = key.removeprefix("nice.")
            if (
                service not in (*CONSUMERS, "api")
                or not value.isdigit()
                or not 1 <= int(value) <= 19
            ):
                raise ValueError(
                    f"variant {name}: {item!r}: nice.SERVICE=N takes a service of the pipeline"
                    f" ({', '.join(('api', *CONSUMERS))}) and N from 1 to 19"
                )
            env[key] = value
            continue
        if not sep or not key.startswith("MARKETPLACE_"):
            raise ValueError(f"variant {name}: {item!r} is not MARKETPLACE_NAME=value")
        env[key] = value
    if not name.isidentifier():
        raise ValueError(f"variant name {name!r}: letters, digits, underscores")
    return name, env


async def measure_rates(args: argparse.Namespace) -> dict[str, Any]:
    """Latency A/B at fixed rates through the API (--rates): for each round, each rate and each
    variant (the order alternating, ABBA), the API and one instance of each consumer start
    afresh with the variant's settings in groups of their own, the generator posts open-loop at
    the rate for --warm-s (not counted) and --latency-s, and the stages and hops of the
    proposals are measured; then the services stop. No WebSocket clients."""
    base = Settings.from_env()
    seen = Seen()
    variants = [parse_variant(v) for v in args.variant] or [("default", {})]
    result: dict[str, Any] = {
        "segments": [],
        "variants": dict(variants),
        "machine_at_start": machine(),
        "settings": {"consumers": consumer_settings(base)},
    }
    pgstats.reset()
    async with scratch_database(base, "bench_pipeline") as scratch:
        settings = dataclasses.replace(scratch, log_level="warning")
        api_port = free_port()
        env = {
            **os.environ,
            "MARKETPLACE_DATABASE_URL": scratch.dsn,
            "MARKETPLACE_HTTP_PORT": str(api_port),
            "MARKETPLACE_WEBHOOK_ALLOW_NETWORKS": "127.0.0.0/8",
            "MARKETPLACE_API_RATE_PER_S": "100000",
            "MARKETPLACE_API_RATE_BURST": "100000",
            "MARKETPLACE_LOG_LEVEL": "warning",
        }
        api_url = f"http://127.0.0.1:{api_port}"
        services = Services(env)
        tag = uuid.uuid4().hex[:6]
        secrets: dict[str, str] = {}
        hooks, hook_port = await receiver(seen, secrets)
        ready = asyncio.Event()
        watcher = asyncio.create_task(watch(settings, seen, ready))
        conn = await connect(settings)
        try:
            await asyncio.wait_for(ready.wait(), 60)
            await services.start(f"pipe.{tag}.setup", "api")
            gen = LoadGenerator(
                settings, mode="api", seed=args.seed, smes=args.smes, api_url=api_url
            )
            await gen.register()
            seen.mine = set(gen.ids.values())
            async with aiohttp.ClientSession() as http:
                await api_ready(http, api_url)
                for index, key in gen.keys.items():
                    async with http.post(
                        f"{api_url}/v1/webhooks",
                        json={
                            "url": f"http://127.0.0.1:{hook_port}/hook/{index}",
                            "kinds": ["match.proposed"],
                        },
                        headers={"Authorization": f"Bearer {key}"},
                    ) as r:
                        if r.status != 201:
                            raise RuntimeError(f"webhook registration: {await r.text()}")
                        secrets[str(index)] = (await r.json())["secret"]
            await services.stop()
            gen.api = api_url
            sent: dict[str, tuple[float, float]] = {}
            gen.on_accepted = lambda _kind, listing_id, at: sent.__setitem__(
                listing_id, (at, time.time())
            )
            segment = 0
            for round_ in range(args.rounds):
                for rate in args.rates:
                    order = variants if segment % 2 == 0 else variants[::-1]
                    segment += 1
                    for name, extra in order:
                        prefix = f"pipe.{tag}.{name}.{round_}.{rate:g}".replace(".", "_")
                        groups = subscriptions(prefix, list(CONSUMERS))
                        await start_at_end(settings, groups)
                        # A port of its own each time: the last one may still be closing.
                        port = free_port()
                        gen.api = f"http://127.0.0.1:{port}"
                        own = extra | {"MARKETPLACE_HTTP_PORT": str(port)}
                        await services.start(prefix, "api", 1, own)
                        for service in CONSUMERS:
                            await services.start(prefix, service, 1, extra)
                        async with aiohttp.ClientSession() as http:
                            await api_ready(http, gen.api)
                        await asyncio.sleep(3)  # the consumers have joined their groups
                        seen.matcher = source_of(f"{prefix}.matcher")
                        await gen.run(rate, args.warm_s, 1_000_000)
                        await settle(settings, conn, prefix, seen, services)
                        sent.clear()
                        seen.proposals.clear()
                        before = mark(services)
                        load_before = os.getloadavg()
                        offered = await gen.run(rate, args.latency_s, 1_000_000)
                        await settle(settings, conn, prefix, seen, services)
                        stages, other_cause = latencies(seen, dict(sent))
                        per_hop = await hops(conn, f"{prefix}.webhooks", seen, dict(sent))
                        used = usage(before, services)
                        summary = offered.summary()
                        result["segments"].append(
                            {
                                "round": round_,
                                "rate_per_s": rate,
                                "variant": name,
                                "seconds": args.latency_s,
                                "accepted": summary["accepted"],
                                "http_202_ms": summary["ack_ms"],
                                "proposals_caused_by_later_events": other_cause,
                                "stages_ms": stages,
                                "hops_ms": per_hop,
                                "load_avg_at_start": load_before,
                                "load_avg_at_end": os.getloadavg(),
                                "cpu": used,
                            }
                        )
                        e = per_hop["end_to_end"]
                        print(
                            f"round {round_} {rate:g}/s {name}: {summary['accepted']} posts, "
                            f"webhook p50 {e['p50']:.1f} p99 {e['p99']:.1f} ms "
                            f"(n={e['count']:.0f}); "
                            + ", ".join(
                                f"{h} {per_hop[h]['p50']:.1f}/{per_hop[h]['p99']:.1f}"
                                for h in HOPS[:-1]
                            )
                            + f"; load {os.getloadavg()[0]:.2f}",
                            flush=True,
                        )
                        await services.stop()
            result["pg_stat_statements"] = pgstats.top()
        finally:
            watcher.cancel()
            await asyncio.gather(watcher, return_exceptions=True)
            await services.stop()
            await hooks.cleanup()
            await conn.close()
    result["bad_signatures"] = seen.bad_signatures
    return result


def report_rates(result: dict[str, Any]) -> None:
    """The A/B report: per rate and variant, each hop's percentiles over the rounds' samples
    merged (medians of the rounds' percentiles), the samples, and CPU per listing."""
    rows = []
    for seg in result["segments"]:
        cpu_s = seg["cpu"]
        services_s = sum(sum(v) for v in cpu_s["services_cpu_s"].values())
        total = services_s + cpu_s["broker_cpu_s"] + cpu_s["postgres_cpu_s"]
        seg["cpu_ms_per_listing"] = 1000 * total / max(seg["accepted"], 1)
        seg["cpu_ms_per_listing_with_load_generator"] = (
            1000 * (total + cpu_s["load_generator_cpu_s"]) / max(seg["accepted"], 1)
        )
        h = seg["hops_ms"]
        rows.append(
            [
                f"{seg['rate_per_s']:g}/s r{seg['round']}",
                seg["variant"],
                f"{h['end_to_end']['count']:.0f}",
                *(f"{h[x]['p50']:.1f} / {h[x]['p99']:.1f}" for x in HOPS),
                f"{seg['cpu_ms_per_listing']:.2f}",
                f"{seg['load_avg_at_start'][0]:.2f}-{seg['load_avg_at_end'][0]:.2f}",
            ]
        )
    for row in rows:
        print("  ".join(row))
    paths = write_report(
        "pipeline-latency",
        title="Pipeline latency A/B at fixed rates: 202 to webhook, hop by hop",
        summary=(
            f"API, matcher, notifier, projector and webhook worker as separate processes on "
            f"{os.cpu_count()} cores shared with other sessions (load average "
            f"{result['machine_at_start']['load_1m']:.2f} at the start, "
            f"{result['machine_at_end']['load_1m']:.2f} at the end), commit {result['commit']}. "
            "Variants: "
            + "; ".join(f"{n} {e or '(defaults)'}" for n, e in result["variants"].items())
            + ". Hops on the wall clock from the 202 of the later listing: matcher (to the "
            "proposal's Kafka timestamp), notifier (to the notification's), webhook inbox (to "
            "the delivery row's transaction start), webhook dispatch (to the receiver). CPU per "
            "listing: every service process, the broker and PostgreSQL over the measured part."
        ),
        data=result,
        headers=[
            "rate, round",
            "variant",
            "webhooks",
            *(f"{x} p50 / p99 ms" for x in HOPS),
            "CPU ms / listing",
            "load avg",
        ],
        rows=rows,
        extra=statements_table(result["pg_stat_statements"]),
    )
    print(f"report: {paths[0]} and {paths[1].name}")


async def api_ready(http: aiohttp.ClientSession, url: str) -> None:
    deadline = time.monotonic() + 60
    while True:
        with contextlib.suppress(aiohttp.ClientError):
            async with http.get(url + "/readyz") as r:
                if r.status == 200:
                    return
        if time.monotonic() > deadline:
            raise TimeoutError("the API did not become ready")
        await asyncio.sleep(0.3)


async def first_commit(conn: Conn, group: str, start: dict[int, int], services: Services) -> float:
    deadline = time.monotonic() + LIMIT_S
    while await progress(conn, group, "market.listings", start) == 0:
        services.check()
        if time.monotonic() > deadline:
            raise TimeoutError(f"{group} applied nothing within {LIMIT_S} s")
        await asyncio.sleep(0.02)
    return time.perf_counter()


async def baselines(settings: Settings, start: dict[int, int], end: dict[int, int]) -> Any:
    """The bare loops and Kafka's tools on the round's listings (and the sink topic's name)."""
    sink, raw = f"bench.sink.{uuid.uuid4().hex[:8]}", f"bench.raw.{uuid.uuid4().hex[:8]}"
    await ensure_topics(
        settings,
        [TopicSpec(t, key="-", purpose="benchmark") for t in (sink, raw)],
        partitions=settings.topic_partitions,
        replication=1,
    )
    n = sum(end[p] - start[p] for p in start)
    found = {
        "aiokafka-consume": await bare_loop(settings, start, end, None),
        "aiokafka-consume-produce": await bare_loop(settings, start, end, sink),
        **await asyncio.to_thread(kafka_tools, settings, raw, max(n, 10000), 700),
    }
    for name, rate in found.items():
        print(f"baseline {name:<26} {rate:>10,.0f} records/s", flush=True)
    return found | {"sink": sink}


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--listings", type=int, default=4000)
    parser.add_argument("--instances", default="1,2")
    parser.add_argument("--smes", type=int, default=300)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--api-rate", type=float, default=400.0, help="offered in step 2")
    parser.add_argument("--api-seconds", type=float, default=40.0, help="of overload in step 2")
    parser.add_argument("--warm-s", type=float, default=10.0, help="not counted in step 2")
    parser.add_argument("--latency-s", type=float, default=30.0)
    parser.add_argument("--fractions", default="0.1,0.5,0.9")
    parser.add_argument(
        "--rates", default="", help="fixed rates (listings/s): latency A/B only, see measure_rates"
    )
    parser.add_argument(
        "--variant",
        action="append",
        default=[],
        help="with --rates: NAME or NAME:MARKETPLACE_X=1,MARKETPLACE_Y=2 (repeatable)",
    )
    parser.add_argument("--rounds", type=int, default=1, help="with --rates: repeats")
    args = parser.parse_args()
    if args.rates:
        args.rates = [float(x) for x in args.rates.split(",")]
        if not (
            all(0 < r <= 1000 for r in args.rates)
            and 1 <= args.rounds <= 4
            and 0 < args.latency_s <= 300
            and 0 <= args.warm_s <= 60
            and 2 <= args.smes <= 5000
        ):
            parser.error("keep it bounded: rates 0..1000, rounds 1..4, latency-s 0..300")
        configure_logging(dataclasses.replace(Settings.from_env(), log_level="warning"))
        found = asyncio.run(asyncio.wait_for(measure_rates(args), 1800))
        found |= {"commit": commit(), "machine_at_end": machine(), "args": vars(args)}
        report_rates(found)
        return
    args.instances = [int(x) for x in args.instances.split(",")]
    args.fractions = [float(x) for x in args.fractions.split(",")]
    if not (
        100 <= args.listings <= 100_000
        and all(1 <= k <= 6 for k in args.instances)
        and 2 <= args.smes <= 5000
        and 0 < args.api_rate <= 5000
        and 0 < args.warm_s < args.api_seconds <= 300
        and 0 < args.latency_s <= 300
        and all(0 < f <= 1.5 for f in args.fractions)
    ):
        parser.error("keep it bounded: listings 100..1e5, instances 1..6, latency-s 0..300")
    configure_logging(dataclasses.replace(Settings.from_env(), log_level="warning"))
    result = asyncio.run(asyncio.wait_for(measure(args), 1800))
    result |= {"commit": commit(), "machine_at_end": machine(), "args": vars(args)}
    base = result["baselines"]
    rows = [[name, f"{rate:,.0f}", "", ""] for name, rate in base.items()]
    for r in result["rounds"]:
        rows.append(
            [
                f"pipeline, {r['way_in']} in, x{r['instances']}",
                f"{r['listings_per_s']:,.0f}",
                f"{r['listings_per_s'] / base['aiokafka-consume']:.4f}",
                f"{r['listings_per_s'] / base['aiokafka-consume-produce']:.4f}",
            ]
        )
        r["ratio_to_aiokafka_consume"] = r["listings_per_s"] / base["aiokafka-consume"]
        r["ratio_to_aiokafka_consume_produce"] = (
            r["listings_per_s"] / base["aiokafka-consume-produce"]
        )
        r["ratio_to_kafka_consumer_perf"] = r["listings_per_s"] / base["kafka-consumer-perf"]
    lat_rows = []
    for run in result["latency"]:
        for stage, s in run["stages_ms"].items():
            lat_rows.append(
                [
                    f"{run['fraction_of_max']:.0%} ({run['rate_per_s']:,.1f}/s)",
                    stage,
                    f"{s['count']:.0f}",
                    f"{s['p50']:.1f}",
                    f"{s['p95']:.1f}",
                    f"{s['p99']:.1f}",
                    f"{s['max']:.1f}",
                ]
            )
    api_round = next(r for r in result["rounds"] if r["way_in"] == "api")
    print(f"bad webhook signatures: {result['bad_signatures']}")
    for row in lat_rows:
        print("  ".join(row))
    curves = {
        f"{run['fraction_of_max']:.0%} webhook": [
            (p, v)
            for p, v in zip(
                (50.0, 95.0, 99.0, 100.0), _pcts(run["stages_ms"]["webhook"]), strict=True
            )
        ]
        for run in result["latency"]
    }
    paths = write_report(
        "pipeline",
        title="Pipeline: maximum throughput and latency from 202 to proposal delivered",
        summary=(
            f"API, matcher, notifier, projector and webhook worker as separate processes on "
            f"{os.cpu_count()} cores shared with other agents' test runs (load average "
            f"{result['machine_at_start']['load_1m']:.2f} at the start, "
            f"{result['machine_at_end']['load_1m']:.2f} at the end), commit {result['commit']}; "
            f"{result['pg_stat_statements']['note']}. "
            f"Maximum sustained through the API: {result['max_listings_per_s']:,.0f} listings/s "
            f"(matcher {api_round['sustained_matcher_listings_per_s']:,.0f}/s, webhooks "
            f"{api_round['sustained_webhooks_in_listings_per_s']:,.0f} listings/s while the API "
            f"took {api_round['api']['accepted_per_s']:,.0f} posts/s; a burst drained at "
            f"{api_round['drained_listings_per_s']:,.0f}/s). "
            "Ratios are to the baselines measured in the same run."
        ),
        data=result,
        headers=[
            "stage",
            "listings or records/s",
            "ratio to aiokafka consume",
            "to consume-produce",
        ],
        rows=rows,
        figure=bar_chart(
            [(r[0].replace("pipeline, ", ""), float(r[1].replace(",", ""))) for r in rows],
            unit="/s",
        ),
        extra=table(
            ["load", "stage", "n", "p50 ms", "p95 ms", "p99 ms", "max ms"],
            lat_rows,
            "Latency from the 202 of the later listing of each proposal (HDR percentiles)",
        )
        + line_chart(
            {
                "listings matched": [(t, m) for t, m, _ in api_round["series"]],
                "webhooks received": [(t, w) for t, _, w in api_round["series"]],
            },
            title="Step 2: overload through the API (the slopes after the warm-up give the max)",
            x_label="seconds",
            y_label="count",
        )
        + line_chart(
            curves,
            title="Webhook latency by percentile, at 10/50/90 % of the maximum",
            x_label="percentile (100 = max)",
            y_label="ms",
            log_y=True,
        )
        + statements_table(result["pg_stat_statements"]),
    )
    print(f"report: {paths[0]} and {paths[1].name}")


def _pcts(s: dict[str, float]) -> list[float]:
    return [s["p50"], s["p95"], s["p99"], s["max"]]


if __name__ == "__main__":
    main()
