"""The transport floor (#18 target 3): the pipeline's traffic per listing with no logic and no
database, to settle what 1,500 listings/s end to end through the API would cost on this machine
in transport alone.

    python -m loadtests.bench_floor [--port 29492] [--name tfloor] [--repeats 3] [--warm-s 5]
                                    [--window-s 20] [--modes max,rate] [--concurrency 32]
                                    [--rate 1500] [--variants ours,batched]
                                    [--report PIPELINE.json]

Each part is a process of its own, as the services are, and each is the thinnest code the
pipeline's libraries allow (aiohttp, aiokafka with the producer and consumer settings of
`marketplace/kafka.py`, msgspec, orjson, uvloop):

1. the load generator posts listing bodies of the market simulator
   (`producers/simulator/market.py`, offers and requests) over HTTP/1.1 keep-alive, closed-loop
   with `--concurrency` calls under way ("max"), or open-loop at `--rate` per second (posts
   beyond 4,000 under way are dropped and counted); at most 300,000 posts a round;
2. the API: decodes the body into a plain msgspec struct, publishes its bytes to `listings`
   (key: the material's family, seven CloudEvent-sized headers; idempotent, acks=all) and
   answers 202 with the listing's number;
3. the matcher hop: consumes `listings` in batches, publishes a proposal of the real one's size
   for a share of them (`proposals_per_listing`), waits for the acknowledgements, commits;
4. the notifier hop: consumes `matches`, publishes `notifications_per_proposal` notifications
   of the real one's size to `notifications`, waits, commits;
5. the projector: consumes the three topics and commits;
6. the webhook sender consumes `notifications` and POSTs each one's value, signed as
   `consumers/webhooks.py` signs (Standard Webhooks: HMAC-SHA256 over id, timestamp and body,
   `marketplace/core/webhooks.py`), at most 64 under way, then commits; the receiver (a process
   of its own) checks each signature and answers 204.

The two shares come from the pipeline report named by `--report` (proposals over listings of
its rounds; webhooks per listing over proposals per listing). Which listings have a proposal
and how many notifications each proposal has is a fixed function of the listing's number, so
the receiver knows when a listing's webhooks have all arrived.

A round: fresh topics (6 partitions) on a private broker (`loadtests/broker.sh`), the parts
started and their consumers assigned; load for `--warm-s` + `--window-s` seconds; then the
pipeline drains (at most 90 s). Sustained rate: listings whose last webhook arrived (a listing
without a proposal: its 202) within the window, per second of the window, with the 202s in the
window beside it. CPU seconds of every part and of the broker's JVM (/proc/<pid>/stat, as
`loadtests/cpu.py` reads them) from the start of the load to the end of the drain, divided by
the listings accepted: CPU per listing per part and in total, against the budget of a 2-core
machine at 1,500 listings/s (2 / 1,500 s = 1.33 ms). Variants (`--variants`): "ours", the
clients as `marketplace/kafka.py` makes them, and "batched", the same with linger_ms 5 and
fetch_min_bytes 32 KiB (is the cost per request or per record?). `--repeats` rounds of each
mode and variant, interleaved; medians reported. The load averages count the bench's own
processes, so each round also records the cores the rest of the machine used meanwhile (its
busy time in /proc/stat less the bench's). The pipeline report's CPU per listing per
process is set beside the floor's. Writes loadtests/reports/floor-<timestamp>.json and .html.
Bounded: every wait has a limit, every round a fixed length. A short round before them, not
counted, warms the broker (a fresh JVM's first traffic costs it more)."""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import os
import signal
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Coroutine
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import msgspec
import orjson
from aiohttp import web
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from loadtests.cpu import TICK, process_seconds
from loadtests.hdr import Histogram
from loadtests.report import REPORTS, bar_chart, commit, machine, table, write_report
from loadtests.soak import free_port
from marketplace.core import webhooks as signing
from marketplace.kafka import make_consumer, make_producer
from marketplace.settings import Settings
from producers.simulator.market import Market

ROOT = Path(__file__).resolve().parent.parent
PIPELINE_REPORT = REPORTS / "pipeline-20261130T155456Z.json"
BUDGET_MS = 2 / 1500 * 1000  # 2 cores, 1,500 listings/s
PARTS = ("loadgen", "api", "matcher", "notifier", "projector", "sender", "receiver")
ENDPOINTS = 300  # webhook endpoints (the simulator's SMEs in the pipeline bench)
MAX_IN_FLIGHT = 4000
MAX_POSTS = 300_000  # per round, whatever the rate
SENDER_IN_FLIGHT = 64  # MARKETPLACE_WEBHOOK_MAX_IN_FLIGHT's default
PROPOSAL_BYTES = 833  # a MatchProposed CloudEvent's value with five reasons
NOTIFICATION_BYTES = 849  # a NotificationIssued for one side of that proposal
DRAIN_LIMIT_S = 90.0
READY_LIMIT_S = 60.0


# ----------------------------------------------------------------------------- shared pieces


def share(n: int, per: float) -> int:
    """How many of something listing number `n` has when there are `per` per listing on
    average: spread evenly over the numbers, the same in every process."""
    return int((n + 1) * per) - int(n * per)


def webhooks_of(n: int, proposals: float, notes: float) -> int:
    return share(n, notes) * share(n, proposals)


def secret_of(endpoint: int) -> str:
    # The same key bytes both sides derive; "whsec_" + base64 as the project stores them.
    return "whsec_" + base64.b64encode(f"floor-endpoint-{endpoint:04d}".encode()).decode()


def ce_headers(kind: str, subject: str) -> list[tuple[str, bytes]]:
    """Seven headers the size of the project's CloudEvent headers."""
    return [
        ("ce_specversion", b"1.0"),
        ("ce_id", str(uuid.uuid4()).encode()),
        ("ce_type", kind.encode()),
        ("ce_source", b"/floor"),
        ("ce_time", datetime.now(UTC).isoformat().encode()),
        ("content-type", b"application/json"),
        ("ce_subject", subject.encode()),
    ]


def subject(headers: Any) -> str:
    for name, value in headers:
        if name == "ce_subject":
            return str(value.decode())
    raise ValueError("record without ce_subject")


def padded(prefix: bytes, size: int) -> bytes:
    """`prefix` + a JSON string field filling the value to `size` bytes."""
    fill = max(0, size - len(prefix) - len(b',"pad":""}'))
    return prefix + b',"pad":"' + b"x" * fill + b'"}'


class Config(msgspec.Struct, frozen=True):
    kafka_port: int
    topics: dict[str, str]
    group: str
    api_port: int
    receiver_port: int
    proposals_per_listing: float
    notifications_per_proposal: float
    out: str
    variant: str = "ours"


def settings_for(config: Config) -> Settings:
    return Settings.from_env({**os.environ, "MARKETPLACE_KAFKA_PORT": str(config.kafka_port)})


# The variants: "ours", the producer and consumer settings the services run with; "batched",
# the same with a producer that lingers and fetches that wait for more bytes, to see how much of
# the broker's and the clients' cost is per request rather than per record.
VARIANTS: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "ours": ({}, {}),
    "batched": ({"linger_ms": 5}, {"fetch_min_bytes": 32768}),
}


def producer_for(config: Config, client_id: str) -> AIOKafkaProducer:
    return make_producer(settings_for(config), client_id=client_id, **VARIANTS[config.variant][0])


def consumer_for(config: Config, group_id: str) -> AIOKafkaConsumer:
    return make_consumer(settings_for(config), group_id, **VARIANTS[config.variant][1])


def dump(path: str, data: dict[str, Any]) -> None:
    """A part's results, read by the round once the part has written them."""
    Path(path).write_bytes(orjson.dumps(data))


def ready() -> None:
    print("ready", flush=True)


async def wait_assigned(consumer: AIOKafkaConsumer) -> None:
    deadline = time.monotonic() + READY_LIMIT_S
    while not consumer.assignment():
        if time.monotonic() > deadline:
            raise TimeoutError("no partitions assigned")
        await consumer.getmany(timeout_ms=100)


async def until_stopped() -> asyncio.Event:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    return stop


# ----------------------------------------------------------------------------- the parts


class Material(msgspec.Struct):
    code: str
    description: str = ""
    form: str | None = None


class Location(msgspec.Struct):
    lat: float
    lon: float
    region: str = ""


class Listing(msgspec.Struct):
    """The posted body as a plain struct: no constraints, no validation beyond the types."""

    material: Material
    location: Location
    terms: dict[str, Any]
    accepts_codes: list[str] = []
    certifications: list[str] = []


async def api(config: Config) -> None:
    producer = producer_for(config, "floor-api")
    await producer.start()
    topic = config.topics["listings"]
    decoder = msgspec.json.Decoder(Listing)
    counter = iter(range(1 << 62))

    async def post(request: web.Request) -> web.Response:
        raw = await request.read()
        try:
            listing = decoder.decode(raw)
        except msgspec.ValidationError as exc:
            return web.Response(status=422, text=str(exc))
        n = next(counter)
        await producer.send_and_wait(
            topic,
            raw,
            key=listing.material.code[:4].encode(),
            headers=ce_headers(f"market.{request.match_info['kind']}.posted.v1", str(n)),
        )
        return web.Response(
            status=202, body=orjson.dumps({"id": n}), content_type="application/json"
        )

    app = web.Application()
    app.router.add_post("/v1/{kind}", post)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", config.api_port).start()
    stop = await until_stopped()
    ready()
    try:
        await stop.wait()
    finally:
        await runner.cleanup()
        await producer.stop()


async def hop(config: Config, part: str) -> None:
    """The matcher hop (listings -> matches), the notifier hop (matches -> notifications) and
    the projector (all three, nothing produced): consume a batch, produce, wait for the
    acknowledgements, commit."""
    settings = settings_for(config)
    sources = {
        "matcher": ["listings"],
        "notifier": ["matches"],
        "projector": ["listings", "matches", "notifications"],
    }[part]
    consumer = consumer_for(config, f"{config.group}.{part}")
    consumer.subscribe([config.topics[s] for s in sources])
    producer = producer_for(config, f"floor-{part}")
    await consumer.start()
    await producer.start()
    proposals, notes = config.proposals_per_listing, config.notifications_per_proposal
    matches, notifications = config.topics["matches"], config.topics["notifications"]
    stop = await until_stopped()
    try:
        await wait_assigned(consumer)
        ready()
        while not stop.is_set():
            batch = await consumer.getmany(
                timeout_ms=settings.consumer_poll_ms, max_records=settings.consumer_max_batch
            )
            if not batch:
                continue
            sent: list[Awaitable[Any]] = []
            for records in batch.values():
                for record in records:
                    if part == "projector":
                        continue
                    n = subject(record.headers)
                    number = int(n.split(".")[0])
                    if part == "matcher":
                        for _ in range(share(number, proposals)):
                            value = padded(b'{"listing":' + n.encode(), PROPOSAL_BYTES)
                            headers = ce_headers("market.match.proposed.v1", n)
                            sent.append(
                                await producer.send(matches, value, key=record.key, headers=headers)
                            )
                    else:
                        for side in range(share(number, notes)):
                            ident = f"{n}.{side}"
                            value = padded(
                                b'{"notification":"' + ident.encode() + b'"', NOTIFICATION_BYTES
                            )
                            key = f"{number % ENDPOINTS:036d}".encode()
                            headers = ce_headers("partners.notification.issued.v1", ident)
                            sent.append(
                                await producer.send(notifications, value, key=key, headers=headers)
                            )
            if sent:
                await asyncio.gather(*sent)
            await consumer.commit()
    finally:
        await consumer.stop()
        await producer.stop()


async def sender(config: Config) -> None:
    settings = settings_for(config)
    consumer = consumer_for(config, f"{config.group}.sender")
    consumer.subscribe([config.topics["notifications"]])
    await consumer.start()
    session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=SENDER_IN_FLIGHT),
        timeout=aiohttp.ClientTimeout(total=10),
    )
    base = f"http://127.0.0.1:{config.receiver_port}/hook/"
    proposals, notes = config.proposals_per_listing, config.notifications_per_proposal
    failed = 0

    async def post(ident: str, body: bytes) -> None:
        nonlocal failed
        number = int(ident.split(".")[0])
        endpoint = number % ENDPOINTS
        # The webhook id carries what the receiver needs: the listing and how many it awaits.
        message_id = f"{ident}.{webhooks_of(number, proposals, notes)}"
        headers = signing.headers([secret_of(endpoint)], message_id, int(time.time()), body)
        async with session.post(f"{base}{endpoint}", data=body, headers=headers) as response:
            await response.read()
            if response.status != 204:
                failed += 1

    stop = await until_stopped()
    try:
        await wait_assigned(consumer)
        ready()
        while not stop.is_set():
            batch = await consumer.getmany(
                timeout_ms=settings.consumer_poll_ms, max_records=settings.consumer_max_batch
            )
            if not batch:
                continue
            await asyncio.gather(
                *(post(subject(r.headers), r.value) for records in batch.values() for r in records)
            )
            await consumer.commit()
    finally:
        await session.close()
        await consumer.stop()
        dump(config.out, {"failed": failed})


async def receiver(config: Config) -> None:
    secrets = [secret_of(e) for e in range(ENDPOINTS)]
    seen: dict[int, int] = {}
    done: list[tuple[int, float]] = []
    counts = {"webhooks": 0, "bad_signatures": 0}

    async def hook(request: web.Request) -> web.Response:
        body = await request.read()
        h = request.headers
        message_id = h["webhook-id"]
        endpoint = int(request.match_info["endpoint"])
        if not signing.verify(
            secrets[endpoint],
            message_id,
            int(h["webhook-timestamp"]),
            body,
            h["webhook-signature"],
            int(time.time()),
        ):
            counts["bad_signatures"] += 1
            return web.Response(status=400)
        counts["webhooks"] += 1
        number, _, expected = (int(p) for p in message_id.split("."))
        got = seen.get(number, 0) + 1
        seen[number] = got
        if got == expected:
            done.append((number, time.time()))
        return web.Response(status=204)

    async def status(_: web.Request) -> web.Response:
        return web.Response(body=orjson.dumps(counts), content_type="application/json")

    app = web.Application()
    app.router.add_post("/hook/{endpoint}", hook)
    app.router.add_get("/status", status)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", config.receiver_port).start()
    stop = await until_stopped()
    ready()
    try:
        await stop.wait()
    finally:
        await runner.cleanup()
        dump(config.out, {**counts, "done": done})


async def loadgen(config: Config, concurrency: int, rate: float, seconds: float) -> None:
    """Closed-loop with `concurrency` calls under way (rate 0), else open-loop at `rate`.
    Waits for "go" on stdin before it starts and for "exit" after it has written its results,
    so that its CPU seconds can still be read."""
    market = Market(11, smes=ENDPOINTS, carriers=0)
    bodies: list[tuple[str, bytes]] = []
    for action in market.actions(100.0, datetime.now(UTC)):
        if action.kind != "withdraw":
            bodies.append((f"{action.kind}s", orjson.dumps(action.body)))
        if len(bodies) >= 2000:
            break
    base = f"http://127.0.0.1:{config.api_port}/v1/"
    session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=concurrency if rate <= 0 else 500),
        timeout=aiohttp.ClientTimeout(total=30),
    )
    accepted: list[tuple[int, float]] = []
    latency = Histogram(lowest=1e-5)
    statuses: dict[str, int] = {}
    sent = 0
    dropped = 0

    async def one(i: int) -> None:
        kind, body = bodies[i % len(bodies)]
        t = time.perf_counter()
        try:
            async with session.post(
                base + kind, data=body, headers={"content-type": "application/json"}
            ) as response:
                answer = await response.read()
                status = response.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            statuses[type(exc).__name__] = statuses.get(type(exc).__name__, 0) + 1
            return
        latency.record(time.perf_counter() - t)
        statuses[str(status)] = statuses.get(str(status), 0) + 1
        if status == 202:
            accepted.append((orjson.loads(answer)["id"], time.time()))

    reader = asyncio.StreamReader()
    loop = asyncio.get_running_loop()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    ready()
    await asyncio.wait_for(reader.readline(), READY_LIMIT_S)
    start_wall = time.time()
    t0 = time.perf_counter()
    end = t0 + seconds
    if rate <= 0:

        async def worker() -> None:
            nonlocal sent
            while time.perf_counter() < end and sent < MAX_POSTS:
                sent += 1
                await one(sent)

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    else:
        tasks: set[asyncio.Task[None]] = set()
        while True:
            now = time.perf_counter()
            if now >= end or sent + dropped >= MAX_POSTS:
                break
            due = int((now - t0) * rate) - sent - dropped
            for _ in range(max(0, due)):
                if len(tasks) >= MAX_IN_FLIGHT:
                    dropped += 1
                    continue
                sent += 1
                task = asyncio.create_task(one(sent))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
            await asyncio.sleep(0.001)
        if tasks:
            await asyncio.wait(set(tasks), timeout=30)
    await session.close()
    dump(
        config.out,
        {
            "start": start_wall,
            "seconds": seconds,
            "sent": sent,
            "dropped": dropped,
            "statuses": statuses,
            "accepted": accepted,
            "ack_ms": {k: (v * 1000 if k != "count" else v) for k, v in latency.summary().items()},
        },
    )
    print("done", flush=True)
    await asyncio.wait_for(reader.readline(), DRAIN_LIMIT_S + 60)


def run_part(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="bench_floor part")
    parser.add_argument("part", choices=PARTS)
    parser.add_argument("config")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--rate", type=float, default=0.0)
    parser.add_argument("--seconds", type=float, default=25.0)
    args = parser.parse_args(argv)
    config = msgspec.json.decode(args.config, type=Config)
    main: Coroutine[Any, Any, None]
    if args.part == "api":
        main = api(config)
    elif args.part in ("matcher", "notifier", "projector"):
        main = hop(config, args.part)
    elif args.part == "sender":
        main = sender(config)
    elif args.part == "receiver":
        main = receiver(config)
    else:
        main = loadgen(config, args.concurrency, args.rate, args.seconds)
    import uvloop

    uvloop.run(main)


# ----------------------------------------------------------------------------- the rounds


def shares(report: Path) -> tuple[float, float, dict[str, Any]]:
    """Proposals per listing and notifications per proposal from a pipeline report, and its
    CPU per listing per process (ms) in each round."""
    data = json.loads(report.read_text())
    rounds = data["rounds"]
    listings = sum(r["listings"] for r in rounds)
    proposals = sum(r["proposals"] for r in rounds) / listings
    api_round = next(r for r in rounds if r["way_in"] == "api")
    per_proposal = api_round["webhooks_per_listing"] / (
        api_round["proposals"] / api_round["listings"]
    )
    cpu_ms: dict[str, Any] = {}
    for r in rounds:
        c = r["cpu"]
        parts = {
            "broker": c["broker_cpu_s"],
            "postgres": c["postgres_cpu_s"],
            "load_generator": c["load_generator_cpu_s"],
            **{k: sum(v) for k, v in c["services_cpu_s"].items()},
        }
        per = {k: round(v / r["listings"] * 1000, 3) for k, v in parts.items()}
        per["total"] = round(sum(parts.values()) / r["listings"] * 1000, 3)
        cpu_ms[f"{r['way_in']} in ({r['listings']} listings)"] = per
    return proposals, per_proposal, {"report": report.name, "cpu_ms_per_listing": cpu_ms}


async def make_topics(port: int, names: list[str]) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=f"127.0.0.1:{port}", client_id="floor-admin")
    await admin.start()
    try:
        await admin.create_topics(
            [NewTopic(n, 6, 1, topic_configs={"min.insync.replicas": "1"}) for n in names]
        )
    finally:
        await admin.close()


async def read_line(proc: asyncio.subprocess.Process, want: str, limit_s: float) -> None:
    assert proc.stdout is not None
    deadline = time.monotonic() + limit_s
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"no {want!r} from pid {proc.pid}")
        line = await asyncio.wait_for(proc.stdout.readline(), left)
        if not line:
            raise RuntimeError(f"pid {proc.pid} ended before {want!r}")
        if line.decode().strip() == want:
            return


async def status(port: int) -> dict[str, int]:
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"http://127.0.0.1:{port}/status") as response,
    ):
        result: dict[str, int] = orjson.loads(await response.read())
        return result


def busy_seconds() -> float:
    """CPU seconds the whole machine has been busy (every core; /proc/stat's first line)."""
    with open("/proc/stat") as stat:
        fields = [int(f) for f in stat.readline().split()[1:9]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields
    return (user + nice + system + irq + softirq + steal) / TICK


def broker_pid(name: str) -> int:
    return int((ROOT / ".local/loadtests" / name / "kafka/kafka.pid").read_text().strip())


async def one_round(
    args: argparse.Namespace,
    index: int,
    mode: str,
    variant: str,
    proposals: float,
    notes: float,
    scratch: Path,
) -> dict[str, Any]:
    tag = f"floor{index}.{uuid.uuid4().hex[:6]}"
    topics = {t: f"{tag}.{t}" for t in ("listings", "matches", "notifications")}
    await make_topics(args.port, list(topics.values()))
    api_port, receiver_port = free_port(), free_port()
    procs: dict[str, asyncio.subprocess.Process] = {}
    outs: dict[str, Path] = {}
    load_s = args.warm_s + args.window_s
    rate = 0.0 if mode == "max" else args.rate
    try:
        # Downstream first, so that every consumer is assigned before the first post.
        for part in ("receiver", "sender", "projector", "notifier", "matcher", "api", "loadgen"):
            outs[part] = scratch / f"{tag}.{part}.json"
            config = Config(
                kafka_port=args.port,
                topics=topics,
                group=tag,
                api_port=api_port,
                receiver_port=receiver_port,
                proposals_per_listing=proposals,
                notifications_per_proposal=notes,
                out=str(outs[part]),
                variant=variant,
            )
            extra = ["--concurrency", str(args.concurrency), "--rate", str(rate)]
            procs[part] = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "loadtests.bench_floor",
                "part",
                part,
                msgspec.json.encode(config).decode(),
                *extra,
                "--seconds",
                str(load_s),
                cwd=ROOT,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
            )
        for proc in procs.values():
            await read_line(proc, "ready", READY_LIMIT_S)
        broker = broker_pid(args.name)
        load_at_start = machine()
        before = {p: process_seconds(proc.pid) for p, proc in procs.items()}
        before["broker"] = process_seconds(broker)
        busy_before, own_before, t_before = (
            busy_seconds(),
            process_seconds(os.getpid()),
            time.time(),
        )
        generator = procs["loadgen"]
        assert generator.stdin is not None
        generator.stdin.write(b"go\n")
        await generator.stdin.drain()
        await read_line(generator, "done", load_s + 60)
        sent = orjson.loads(outs["loadgen"].read_bytes())
        expected = sum(webhooks_of(n, proposals, notes) for n, _ in sent["accepted"])
        deadline = time.monotonic() + DRAIN_LIMIT_S
        got: dict[str, int] = {}
        while time.monotonic() < deadline:
            got = await status(receiver_port)
            if got["webhooks"] >= expected:
                break
            await asyncio.sleep(0.25)
        after = {p: process_seconds(proc.pid) for p, proc in procs.items()}
        after["broker"] = process_seconds(broker)
        busy_after, own_after, t_after = busy_seconds(), process_seconds(os.getpid()), time.time()
        load_at_end: dict[str, float] = dict(machine())
        # The load averages count the bench's own processes; what else ran is the machine's
        # busy time less the parts', the broker's and this process's.
        ours = sum(after.values()) - sum(before.values()) + own_after - own_before
        load_at_end["machine_busy_cores"] = round(
            (busy_after - busy_before) / (t_after - t_before), 3
        )
        load_at_end["others_cores"] = round(
            (busy_after - busy_before - ours) / (t_after - t_before), 3
        )
        load_at_end["measured_s"] = round(t_after - t_before, 2)
        generator.stdin.write(b"exit\n")
        await generator.stdin.drain()
    finally:
        for proc in procs.values():
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(signal.SIGTERM)
        for proc in procs.values():
            try:
                await asyncio.wait_for(proc.wait(), 30)
            except TimeoutError:
                proc.kill()
                await proc.wait()
    received = orjson.loads(outs["receiver"].read_bytes())
    failed = orjson.loads(outs["sender"].read_bytes()).get("failed", 0)
    return figures(
        mode,
        variant,
        rate,
        args,
        sent,
        received,
        expected,
        failed,
        {p: after[p] - before[p] for p in before},
        load_at_start,
        load_at_end,
        proposals,
        notes,
    )


def figures(
    mode: str,
    variant: str,
    rate: float,
    args: argparse.Namespace,
    sent: dict[str, Any],
    received: dict[str, Any],
    expected: int,
    failed: int,
    cpu_s: dict[str, float],
    load_at_start: dict[str, float],
    load_at_end: dict[str, float],
    proposals: float,
    notes: float,
) -> dict[str, Any]:
    start = sent["start"]
    w0, w1 = start + args.warm_s, start + args.warm_s + args.window_s
    accepted: dict[int, float] = dict(sent["accepted"])
    complete: dict[int, float] = {
        n: t for n, t in accepted.items() if webhooks_of(n, proposals, notes) == 0
    }
    complete.update(dict(received["done"]))
    in_window = sum(1 for t in complete.values() if w0 <= t < w1)
    posted_in_window = sum(1 for t in accepted.values() if w0 <= t < w1)
    lag = sum(1 for t in accepted.values() if t < w1) - sum(1 for t in complete.values() if t < w1)
    e2e = Histogram(lowest=1e-5)
    for n, t in received["done"]:
        if n in accepted and w0 <= accepted[n] < w1:
            e2e.record(max(t - accepted[n], 1e-5))
    listings = len(accepted)
    per_listing = {p: round(s / listings * 1000, 4) for p, s in cpu_s.items()} if listings else {}
    per_listing["total"] = round(sum(cpu_s.values()) / max(listings, 1) * 1000, 4)
    return {
        "mode": mode,
        "variant": variant,
        "producer_overrides": VARIANTS[variant][0],
        "consumer_overrides": VARIANTS[variant][1],
        "rate_offered_per_s": rate or None,
        "concurrency": args.concurrency if mode == "max" else None,
        "listings_accepted": listings,
        "posts_sent": sent["sent"],
        "posts_dropped": sent["dropped"],
        "statuses": sent["statuses"],
        "webhooks_expected": expected,
        "webhooks_received": received["webhooks"],
        "webhooks_failed": failed,
        "bad_signatures": received["bad_signatures"],
        "window_s": args.window_s,
        "sustained_listings_per_s": in_window / args.window_s,
        "accepted_in_window_per_s": posted_in_window / args.window_s,
        "lag_at_window_end": lag,
        "ack_ms": sent["ack_ms"],
        "http_202_to_last_webhook_ms": {
            k: (v * 1000 if k != "count" else v) for k, v in e2e.summary().items()
        },
        "cpu_s": {p: round(s, 3) for p, s in cpu_s.items()},
        "cpu_ms_per_listing": per_listing,
        "machine_at_start": load_at_start,
        "machine_at_end": load_at_end,
    }


def median_of(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    parts = list(rounds[0]["cpu_ms_per_listing"])
    return {
        "rounds": len(rounds),
        "sustained_listings_per_s": statistics.median(
            r["sustained_listings_per_s"] for r in rounds
        ),
        "accepted_in_window_per_s": statistics.median(
            r["accepted_in_window_per_s"] for r in rounds
        ),
        "cpu_ms_per_listing": {
            p: round(statistics.median(r["cpu_ms_per_listing"][p] for r in rounds), 4)
            for p in parts
        },
        "http_202_to_last_webhook_p99_ms": statistics.median(
            r["http_202_to_last_webhook_ms"].get("p99", 0.0) for r in rounds
        ),
        "load_1m_at_start": statistics.median(r["machine_at_start"]["load_1m"] for r in rounds),
        "load_1m_at_end": statistics.median(r["machine_at_end"]["load_1m"] for r in rounds),
        "others_cores": statistics.median(r["machine_at_end"]["others_cores"] for r in rounds),
    }


async def measure(args: argparse.Namespace) -> dict[str, Any]:
    proposals, notes, ours = shares(Path(args.report))
    modes = args.modes.split(",")
    variants = args.variants.split(",")
    scratch = ROOT / ".local/loadtests" / args.name / "floor-runs"
    scratch.mkdir(parents=True, exist_ok=True)
    at_start = machine()
    # A short round first, not counted: a fresh broker's first traffic (class loading, JIT)
    # costs it more CPU than the same traffic later.
    primer = argparse.Namespace(**{**vars(args), "warm_s": 1.0, "window_s": 4.0})
    await one_round(primer, 99, "max", variants[0], proposals, notes, scratch)
    rounds: list[dict[str, Any]] = []
    for i in range(args.repeats):
        for mode, variant in [(m, v) for m in modes for v in variants]:
            r = await one_round(args, len(rounds), mode, variant, proposals, notes, scratch)
            r["repeat"] = i
            rounds.append(r)
            print(
                f"{mode}/{variant}: {r['sustained_listings_per_s']:.0f} listings/s sustained, "
                f"{r['cpu_ms_per_listing']['total']:.3f} ms CPU per listing, "
                f"load {r['machine_at_start']['load_1m']:.1f}-"
                f"{r['machine_at_end']['load_1m']:.1f}, "
                f"others {r['machine_at_end']['others_cores']:.2f} cores",
                flush=True,
            )
    return {
        "machine_at_start": at_start,
        "machine_at_end": machine(),
        "budget_ms_per_listing": round(BUDGET_MS, 4),
        "shares": {
            "proposals_per_listing": round(proposals, 4),
            "notifications_per_proposal": round(notes, 4),
            "from": ours["report"],
        },
        "sizes_bytes": {
            "proposal_value": PROPOSAL_BYTES,
            "notification_value_and_webhook_body": NOTIFICATION_BYTES,
            "headers_per_record": 7,
        },
        "settings": {
            "producer": "idempotent, acks=all, linger_ms 0 (marketplace/kafka.py)",
            "consumer": "max_poll_records 500, poll 200 ms, fetch_max_wait 25 ms, "
            "read_committed, manual commit after each batch's acknowledgements",
            "event_loop": "uvloop",
            "topic_partitions": 6,
            "webhook_in_flight": SENDER_IN_FLIGHT,
            "broker": f"private, 127.0.0.1:{args.port} (loadtests/broker.sh {args.name})",
        },
        "rounds": rounds,
        "medians": {
            f"{m}/{v}": median_of([r for r in rounds if (r["mode"], r["variant"]) == (m, v)])
            for m in modes
            for v in variants
        },
        "pipeline": ours,
        "commit": commit(),
        "args": vars(args),
    }


def write(data: dict[str, Any]) -> tuple[Path, Path]:
    first = next(iter(data["medians"]))
    best = data["medians"][first]
    per = best["cpu_ms_per_listing"]
    rows = [
        [
            f"{r['mode']}/{r['variant']} #{r['repeat']}",
            f"{r['sustained_listings_per_s']:.0f}",
            f"{r['accepted_in_window_per_s']:.0f}",
            f"{r['cpu_ms_per_listing']['total']:.3f}",
            f"{r['machine_at_start']['load_1m']:.1f} / {r['machine_at_end']['load_1m']:.1f}",
            f"{r['machine_at_end']['others_cores']:.2f}",
        ]
        for r in data["rounds"]
    ]
    ours = next(iter(v for k, v in data["pipeline"]["cpu_ms_per_listing"].items() if "api" in k))
    kinds = list(data["medians"])
    compare = table(
        ["part", *(f"floor {k} ms/listing" for k in kinds), "pipeline ms/listing (API round)"],
        [
            [
                p,
                *(f"{data['medians'][k]['cpu_ms_per_listing'].get(p, 0.0):.3f}" for k in kinds),
                f"{ours.get(_ours_name(p), 0.0):.3f}",
            ]
            for p in per
        ],
        "CPU per listing by part (medians) against the pipeline report's",
    )
    return write_report(
        "floor",
        title="Transport floor: the pipeline's traffic per listing without logic or database",
        summary=(
            f"Median of {best['rounds']} rounds, {first}: {best['sustained_listings_per_s']:.0f} "
            f"listings/s sustained, {per['total']:.3f} ms CPU per listing against a budget of "
            f"{BUDGET_MS:.2f} ms (2 cores, 1,500/s)"
        ),
        data=data,
        headers=[
            "round",
            "sustained /s",
            "202s in window /s",
            "CPU ms/listing",
            "load 1m start / end",
            "others' cores",
        ],
        rows=rows,
        figure=bar_chart([(p, v) for p, v in per.items() if p != "total"], "ms"),
        extra=compare,
    )


def _ours_name(part: str) -> str:
    return {
        "loadgen": "load_generator",
        "matcher": "matcher",
        "notifier": "notifier",
        "projector": "projector",
        "sender": "webhooks",
        "receiver": "-",
    }.get(part, part)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "part":
        run_part(sys.argv[2:])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=29492, help="the private broker's port")
    parser.add_argument("--name", default="tfloor", help="the private broker's name")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--warm-s", type=float, default=5.0)
    parser.add_argument("--window-s", type=float, default=20.0)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--rate", type=float, default=0.0, help="for mode rate: open-loop at this")
    parser.add_argument("--modes", default="max", help="max (closed-loop), rate (open-loop)")
    parser.add_argument("--variants", default="ours,batched", help=", ".join(VARIANTS))
    parser.add_argument("--report", default=str(PIPELINE_REPORT))
    args = parser.parse_args()
    if not 1 <= args.repeats <= 5 or args.warm_s + args.window_s > 60:
        parser.error("at most 5 repeats and 60 s of load per round")
    if not set(args.modes.split(",")) <= {"max", "rate"} or (
        "rate" in args.modes and args.rate <= 0
    ):
        parser.error("--modes: max and/or rate (with --rate above 0)")
    if not set(args.variants.split(",")) <= set(VARIANTS):
        parser.error(f"--variants: choose from {', '.join(VARIANTS)}")
    data = asyncio.run(measure(args))
    json_path, _ = write(data)
    print(json_path)


if __name__ == "__main__":
    main()
