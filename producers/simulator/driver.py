"""Running the simulated market against the real API (loopback only), open-loop: actions fire at
their scheduled times whether or not earlier ones have been answered, so a slow exchange shows as
latency rather than as a slower market. Proposals are answered and jobs quoted as the firms'
answers are read from Kafka. A live summary goes to stderr."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TextIO
from urllib.parse import urlsplit

import aiohttp
import msgspec
import orjson
from aiokafka import TopicPartition

from marketplace.cloudevents import Envelope, EnvelopeError
from marketplace.db import connect
from marketplace.kafka import make_consumer, make_producer, partition_counts
from marketplace.logs import get_logger
from marketplace.partners import register_partner
from marketplace.reference import transport_factors
from marketplace.secretbox import key_file
from marketplace.settings import Settings
from producers.simulator.market import Action, Firm, Market
from schemas import topics
from schemas.logistics import TransportJobRequested

_job = msgspec.json.Decoder(TransportJobRequested)

log = get_logger(__name__)
WATCHED = (topics.MATCHES, topics.JOBS, topics.AWARDS)
MAX_IN_FLIGHT = 2000


class NotLoopback(ValueError):
    """The simulator only ever talks to this machine."""


def check_loopback(url: str) -> str:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return url.rstrip("/")
    try:
        if ipaddress.ip_address(host).is_loopback:
            return url.rstrip("/")
    except ValueError:
        pass
    raise NotLoopback(f"{url}: the simulator sends traffic to 127.0.0.1 or ::1 only")


@dataclass(slots=True)
class Stats:
    started: float = field(default_factory=time.monotonic)
    counts: Counter[str] = field(default_factory=Counter)
    statuses: Counter[int] = field(default_factory=Counter)
    latencies_ms: list[float] = field(default_factory=list)

    def line(self) -> str:
        c = self.counts
        lat = sorted(self.latencies_ms[-2000:])
        p50 = lat[len(lat) // 2] if lat else 0.0
        errors = sum(n for s, n in self.statuses.items() if s >= 400)
        return (
            f"t={time.monotonic() - self.started:6.0f}s  offers {c['offer']:>5}  requests "
            f"{c['request']:>5}  withdrawn {c['withdraw']:>4}  proposals {c['proposed']:>5}  "
            f"accepted {c['accepted']:>4}  declined {c['declined']:>4}  confirmed "
            f"{c['confirmed']:>4}  jobs {c['jobs']:>4}  quotes {c['quotes']:>4}  awards "
            f"{c['awards']:>4}  http p50 {p50:5.1f} ms  errors {errors}"
        )


class Simulation:
    def __init__(
        self, settings: Settings, market: Market, api_url: str, out: TextIO | None = None
    ) -> None:
        self.settings = settings
        self.market = market
        self.api = check_loopback(api_url)
        self.out = out or sys.stderr
        self.stats = Stats()
        self.ids: dict[int, str] = {}  # firm index -> partner id
        self.keys: dict[str, str] = {}  # partner id -> API key
        self.firm_of: dict[str, Firm] = {}
        self.open: dict[int, list[tuple[str, str]]] = {}  # firm -> [(kind, id)]
        self.tasks: set[asyncio.Task[None]] = set()
        self.kg_per_tkm = transport_factors()

    async def register(self) -> None:
        conn = await connect(self.settings)
        producer = make_producer(self.settings, client_id="marketplace-simulator")
        await producer.start()
        try:
            for firm in self.market.firms:
                partner_id, key = await register_partner(
                    conn,
                    producer,
                    name=firm.name,
                    role=firm.role,
                    country=firm.town.country,
                    region=firm.town.region,
                    sector=firm.sector.nace if firm.sector else "49.41",
                    registered_by="simulator",
                    source="/producers/simulator",
                    ring=key_file(self.settings.webhook_keys_path).ring(),
                )
                self.ids[firm.index] = partner_id
                self.keys[partner_id] = key
                self.firm_of[partner_id] = firm
        finally:
            await producer.stop()
            await conn.close()

    async def call(
        self,
        http: aiohttp.ClientSession,
        method: str,
        path: str,
        partner_id: str,
        body: Any = None,
        retry_404_s: float = 0.0,
    ) -> tuple[int, Any]:
        """One API call as a firm; 404s are retried while the read model catches up."""
        deadline = time.monotonic() + retry_404_s
        while True:
            t0 = time.perf_counter()
            async with http.request(
                method,
                self.api + path,
                json=body,
                headers={"Authorization": f"Bearer {self.keys[partner_id]}"},
            ) as r:
                data = await r.read()
                status = r.status
            self.stats.latencies_ms.append((time.perf_counter() - t0) * 1000)
            if status == 404 and time.monotonic() < deadline:
                await asyncio.sleep(0.3)
                continue
            if status == 429:
                await asyncio.sleep(1.0)
                continue
            self.stats.statuses[status] += 1
            return status, orjson.loads(data) if data else None

    async def act(self, http: aiohttp.ClientSession, action: Action) -> None:
        pid = self.ids[action.firm]
        if action.kind == "withdraw":
            listings = self.open.get(action.firm)
            if not listings:
                return
            kind, item = listings.pop(int(action.pick * len(listings)))
            status, _ = await self.call(http, "DELETE", f"/v1/{kind}s/{item}", pid, retry_404_s=10)
            if status == 202:
                self.stats.counts["withdraw"] += 1
            return
        status, data = await self.call(http, "POST", f"/v1/{action.kind}s", pid, action.body)
        if status == 202 and isinstance(data, dict):
            self.stats.counts[action.kind] += 1
            new_id = data.get("offer_id") or data.get("request_id")
            if new_id:
                self.open.setdefault(action.firm, []).append((action.kind, str(new_id)))
        else:
            log.warning("simulator_refused", kind=action.kind, status=status, problem=data)

    async def answer(self, http: aiohttp.ClientSession, body: dict[str, Any]) -> None:
        match_id = body["match_id"]
        for side in ("seller_id", "buyer_id"):
            pid = str(body.get(side))
            if pid not in self.keys:
                continue
            accept, delay = self.market.answers(match_id, pid)
            await asyncio.sleep(delay)
            verb = "accept" if accept else "decline"
            status, _ = await self.call(
                http, "POST", f"/v1/matches/{match_id}/{verb}", pid, {}, retry_404_s=15
            )
            if status == 202:
                self.stats.counts["accepted" if accept else "declined"] += 1
            if not accept:
                return

    async def bid(self, http: aiohttp.ClientSession, job: dict[str, Any]) -> None:
        per_tkm = 0.12
        for pid, firm in self.firm_of.items():
            if firm.role != "logistics":
                continue
            quote = self.market.quote(firm, job, self.kg_per_tkm, per_tkm)
            if quote is None:
                continue
            status, _ = await self.call(
                http, "POST", f"/v1/jobs/{job['job_id']}/quotes", pid, quote, retry_404_s=10
            )
            if status == 202:
                self.stats.counts["quotes"] += 1

    def spawn(self, coro: Any) -> None:
        if len(self.tasks) >= MAX_IN_FLIGHT:
            self.stats.counts["dropped"] += 1
            coro.close()
            return
        task = asyncio.create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self.tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self.stats.counts["failed"] += 1
            log.warning("simulator_task_failed", error=repr(task.exception()))

    async def watch(self, http: aiohttp.ClientSession, ready: asyncio.Event) -> None:
        """Reads the exchange's decisions from the end of their topics, no consumer group."""
        counts = await partition_counts(self.settings, WATCHED)
        consumer = make_consumer(self.settings, None, client_id="marketplace-simulator")
        await consumer.start()
        try:
            parts = [TopicPartition(t, p) for t, n in counts.items() for p in range(n)]
            consumer.assign(parts)
            await consumer.seek_to_end(*parts)
            for tp in parts:
                await consumer.position(tp)
            ready.set()
            while True:
                batches = await consumer.getmany(timeout_ms=500)
                for records in batches.values():
                    for r in records:
                        self._on_record(http, r)
        finally:
            await consumer.stop()

    def _on_record(self, http: aiohttp.ClientSession, r: Any) -> None:
        try:
            kind = Envelope.from_headers(r.headers).type
            body = orjson.loads(r.value)
        except (EnvelopeError, orjson.JSONDecodeError):
            return
        if not isinstance(body, dict):
            return  # not an event of ours (a poison record in a fault test, say)
        mine = bool({body.get("seller_id"), body.get("buyer_id")} & self.keys.keys())
        if kind == "market.match.proposed.v1" and mine:
            self.stats.counts["proposed"] += 1
            self.spawn(self.answer(http, body))
        elif kind == "market.match.confirmed.v1" and mine:
            self.stats.counts["confirmed"] += 1
        elif kind == "logistics.job.requested.v1":
            try:
                _job.decode(r.value)
            except msgspec.ValidationError:
                return  # carriers bid on real jobs only
            self.stats.counts["jobs"] += 1
            self.spawn(self.bid(http, body))
        elif kind == "logistics.transport.awarded.v1" and body.get("carrier_id") in self.keys:
            self.stats.counts["awards"] += 1

    async def run(self, rate: float, duration_s: float, max_actions: int) -> Stats:
        """Registers the firms, then acts for `duration_s` (0: until cancelled)."""
        connector = aiohttp.TCPConnector(limit=200)
        async with aiohttp.ClientSession(connector=connector) as http:
            await self._api_ready(http)
            await self.register()
            for firm in self.market.firms:
                if firm.role == "logistics":
                    await self.call(
                        http,
                        "PUT",
                        "/v1/carrier/capabilities",
                        self.ids[firm.index],
                        self.market.capabilities(firm),
                    )
            ready = asyncio.Event()
            watcher = asyncio.create_task(self.watch(http, ready))
            await asyncio.wait(
                {watcher, asyncio.create_task(ready.wait())},
                timeout=60,
                return_when=asyncio.FIRST_COMPLETED,
            )
            if watcher.done():
                watcher.result()  # raises what stopped it
            if not ready.is_set():
                raise TimeoutError("could not start reading the exchange's decisions from Kafka")
            summary = asyncio.create_task(self._summarise())
            start = datetime.now(UTC)
            t0 = time.monotonic()
            try:
                for n, action in enumerate(self.market.actions(rate, start)):
                    if n >= max_actions or (duration_s and action.at_s > duration_s):
                        break
                    delay = t0 + action.at_s - time.monotonic()
                    if delay > 0:
                        await asyncio.sleep(delay)
                    self.spawn(self.act(http, action))
                # Let answers and quotes already under way finish.
                if self.tasks:
                    await asyncio.wait(set(self.tasks), timeout=20)
            finally:
                for task in (watcher, summary, *self.tasks):
                    task.cancel()
                for task in (watcher, summary):
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
                self.out.write(self.stats.line() + "\n")
        return self.stats

    async def _api_ready(self, http: aiohttp.ClientSession, limit_s: float = 120) -> None:
        deadline = time.monotonic() + limit_s
        while True:
            with contextlib.suppress(aiohttp.ClientError):
                async with http.get(self.api + "/readyz") as r:
                    if r.status == 200:
                        return
            if time.monotonic() > deadline:
                raise TimeoutError(f"the API at {self.api} is not ready after {limit_s:.0f} s")
            await asyncio.sleep(0.5)

    async def _summarise(self) -> None:
        live = self.out.isatty()
        while True:
            await asyncio.sleep(1.0 if live else 10.0)
            if live:
                self.out.write("\r" + self.stats.line())
            else:
                self.out.write(self.stats.line() + "\n")
            self.out.flush()


async def simulate(
    settings: Settings,
    *,
    api_url: str,
    rate: float,
    duration_s: float,
    seed: int,
    smes: int,
    carriers: int,
    max_actions: int = 1_000_000,
    stop: asyncio.Event | None = None,
) -> Stats:
    sim = Simulation(settings, Market(seed, smes, carriers), api_url)
    run = asyncio.create_task(sim.run(rate, duration_s, max_actions))
    if stop is None:
        return await run
    stopper = asyncio.create_task(stop.wait())
    await asyncio.wait({run, stopper}, return_when=asyncio.FIRST_COMPLETED)
    stopper.cancel()
    if not run.done():
        run.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await run
        return sim.stats
    return run.result()
