"""The open-loop load generator: the market simulator's mix of offers, requests and withdrawals
(`producers/simulator/market.py`), fired at their scheduled times (Poisson arrivals at `--rate`
per second) whatever happened to the earlier ones, so a slow exchange shows as latency instead of
as a slower load. Two ways in:

- `--mode api`: through the partner HTTP API (POST /v1/offers, /v1/requests, DELETE to withdraw),
  as registered SMEs with their own keys; loopback only;
- `--mode kafka`: straight onto `market.listings`, each body decoded by the API's own types and
  published as the same CloudEvent the API would publish (`marketplace/events.py`, source
  `/api`, subject the listing id, key the material family), acks=all.

    python -m loadtests.loadgen --mode api|kafka [--rate 50] [--duration 30] [--max-actions N]
                                [--smes 400] [--seed 1] [--api http://127.0.0.1:8080]

Bounded in count and time (`--max-actions`, `--duration`, at most `MAX_IN_FLIGHT` calls under way;
arrivals beyond that are counted as dropped, never queued). Prints what was offered, accepted
and refused, the achieved rate and the latency of the 202 (or the broker's ack) as HDR
percentiles. The pipeline benchmark (`loadtests/bench_pipeline.py`) drives it as a library."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import aiohttp
import msgspec
import orjson
from aiokafka import AIOKafkaProducer

from loadtests.hdr import Histogram
from marketplace.db import connect
from marketplace.events import to_message
from marketplace.kafka import make_producer
from marketplace.logs import configure_logging
from marketplace.partners import register_partner
from marketplace.secretbox import key_file
from marketplace.settings import Settings
from producers.api.bodies import OfferIn, RequestIn
from producers.simulator.driver import check_loopback
from producers.simulator.market import Action, Market
from schemas import listings as ls

Mode = Literal["api", "kafka"]
MAX_IN_FLIGHT = 4000
# Called with (kind, listing id, the moment its 202 or ack came back) for each accepted post.
OnAccepted = Callable[[str, str, float], None]


@dataclass(slots=True)
class Outcome:
    """What one run of the generator offered and what came back."""

    mode: Mode
    rate: float
    offered: int = 0
    dropped: int = 0
    counts: Counter[str] = field(default_factory=Counter)
    statuses: Counter[str] = field(default_factory=Counter)
    latency: Histogram = field(default_factory=lambda: Histogram(lowest=1e-5))
    first_s: float = 0.0
    last_s: float = 0.0

    def summary(self) -> dict[str, Any]:
        span = max(self.last_s - self.first_s, 1e-9)
        accepted = sum(self.counts.values())
        return {
            "mode": self.mode,
            "rate_offered_per_s": self.rate,
            "actions_offered": self.offered,
            "accepted": accepted,
            "dropped_over_in_flight_limit": self.dropped,
            "by_kind": dict(self.counts),
            "statuses": dict(self.statuses),
            "accepted_per_s": accepted / span if accepted > 1 else 0.0,
            "ack_ms": {
                k: (v * 1000 if k != "count" else v) for k, v in self.latency.summary().items()
            },
        }


class LoadGenerator:
    """Registers the market's SMEs (in `settings`' database and on partners.registry), then fires
    its actions open-loop through the API or onto Kafka."""

    def __init__(
        self,
        settings: Settings,
        *,
        mode: Mode,
        seed: int = 1,
        smes: int = 400,
        api_url: str = "",
        on_accepted: OnAccepted | None = None,
    ) -> None:
        self.settings = settings
        self.mode = mode
        self.market = Market(seed, smes=smes, carriers=0)
        self.api = check_loopback(api_url) if mode == "api" else ""
        self.on_accepted = on_accepted
        self.ids: dict[int, str] = {}  # firm index -> partner id
        self.keys: dict[int, str] = {}  # firm index -> API key
        self.open: dict[int, list[tuple[str, str, str]]] = {}  # firm -> [(kind, id, code)]
        self.tasks: set[asyncio.Task[None]] = set()

    async def register(self) -> None:
        conn = await connect(self.settings)
        producer = make_producer(self.settings, client_id="loadgen")
        await producer.start()
        try:
            for firm in self.market.firms:
                partner_id, key = await register_partner(
                    conn,
                    producer,
                    name=firm.name,
                    role="sme",
                    country=firm.town.country,
                    region=firm.town.region,
                    sector=firm.sector.nace if firm.sector else None,
                    registered_by="loadgen",
                    source="/loadtests/loadgen",
                    ring=key_file(self.settings.webhook_keys_path).ring(),
                )
                self.ids[firm.index] = partner_id
                self.keys[firm.index] = key
        finally:
            await producer.stop()
            await conn.close()

    async def run(self, rate: float, duration_s: float, max_actions: int) -> Outcome:
        """Fires actions for `duration_s` seconds or `max_actions` actions, whichever first,
        then waits (at most 30 s) for the calls under way."""
        if not self.ids:
            await self.register()
        out = Outcome(self.mode, rate)
        producer: AIOKafkaProducer | None = None
        http: aiohttp.ClientSession | None = None
        if self.mode == "kafka":
            producer = make_producer(self.settings, client_id="loadgen")
            await producer.start()
        else:
            http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=500))
        start = datetime.now(UTC)
        t0 = time.perf_counter()
        out.first_s = t0
        try:
            for n, action in enumerate(self.market.actions(rate, start)):
                if n >= max_actions or action.at_s > duration_s:
                    break
                delay = t0 + action.at_s - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                out.offered += 1
                if len(self.tasks) >= MAX_IN_FLIGHT:
                    out.dropped += 1
                    continue
                if producer is not None:
                    coro = self._to_kafka(producer, action, out)
                else:
                    assert http is not None
                    coro = self._to_api(http, action, out)
                task = asyncio.create_task(coro)
                self.tasks.add(task)
                task.add_done_callback(self.tasks.discard)
            if self.tasks:
                await asyncio.wait(set(self.tasks), timeout=30)
        finally:
            for task in set(self.tasks):
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.gather(*self.tasks, return_exceptions=True)
            if producer is not None:
                await producer.stop()
            if http is not None:
                await http.close()
        return out

    def _done(self, out: Outcome, kind: str, listing_id: str, firm: int, code: str) -> None:
        at = time.perf_counter()
        out.last_s = max(out.last_s, at)
        out.counts[kind] += 1
        if kind != "withdraw":
            self.open.setdefault(firm, []).append((kind, listing_id, code))
        if self.on_accepted is not None:
            self.on_accepted(kind, listing_id, at)

    def _pick(self, action: Action) -> tuple[str, str, str] | None:
        listings = self.open.get(action.firm)
        if not listings:
            return None
        return listings.pop(int(action.pick * len(listings)))

    async def _to_api(self, http: aiohttp.ClientSession, action: Action, out: Outcome) -> None:
        auth = {"Authorization": f"Bearer {self.keys[action.firm]}"}
        if action.kind == "withdraw":
            picked = self._pick(action)
            if picked is None:
                out.statuses["withdraw-nothing-open"] += 1
                return
            kind, listing_id, code = picked
            method, path, body = "DELETE", f"/v1/{kind}s/{listing_id}", None
        else:
            method, path, body = "POST", f"/v1/{action.kind}s", action.body
            code = str(action.body["material"]["code"])
        t = time.perf_counter()
        try:
            async with http.request(method, self.api + path, json=body, headers=auth) as r:
                data = await r.read()
                status = r.status
        except aiohttp.ClientError as exc:
            out.statuses[type(exc).__name__] += 1
            return
        out.latency.record(time.perf_counter() - t)
        out.statuses[str(status)] += 1
        if status != 202:
            return
        if action.kind == "withdraw":
            self._done(out, "withdraw", path.rsplit("/", 1)[1], action.firm, code)
        else:
            answer = orjson.loads(data)
            self._done(out, action.kind, answer[f"{action.kind}_id"], action.firm, code)

    async def _to_kafka(self, producer: AIOKafkaProducer, action: Action, out: Outcome) -> None:
        message, kind, listing_id, code = self.message(action)
        if message is None:
            out.statuses["withdraw-nothing-open"] += 1
            return
        t = time.perf_counter()
        try:
            await producer.send_and_wait(
                message.topic, message.value, key=message.key, headers=list(message.headers)
            )
        except Exception as exc:  # noqa: BLE001 - counted, like an HTTP error
            out.statuses[type(exc).__name__] += 1
            return
        out.latency.record(time.perf_counter() - t)
        out.statuses["acked"] += 1
        self._done(out, kind, listing_id, action.firm, code)

    def message(self, action: Action) -> tuple[Any, str, str, str]:
        """The record the API would publish for this action: (message or None, kind, id, code)."""
        owner = self.ids[action.firm]
        event_id = str(uuid.uuid4())
        event: Any
        if action.kind == "withdraw":
            picked = self._pick(action)
            if picked is None:
                return None, "withdraw", "", ""
            kind, listing_id, code = picked
            if kind == "offer":
                event = ls.OfferWithdrawn(
                    offer_id=listing_id, owner_id=owner, actor_id=owner, material_code=code
                )
            else:
                event = ls.RequestWithdrawn(
                    request_id=listing_id, owner_id=owner, actor_id=owner, material_code=code
                )
            return self._encode(event, event_id, listing_id), "withdraw", listing_id, code
        raw = orjson.dumps(action.body)
        listing_id = str(uuid.uuid4())
        if action.kind == "offer":
            offer = msgspec.json.decode(raw, type=OfferIn)
            event = ls.OfferPosted(
                offer_id=listing_id,
                owner_id=owner,
                actor_id=owner,
                material=offer.material,
                location=offer.location,
                terms=offer.terms,
            )
            code = offer.material.code
        else:
            request = msgspec.json.decode(raw, type=RequestIn)
            event = ls.RequestPosted(
                request_id=listing_id,
                owner_id=owner,
                actor_id=owner,
                material=request.material,
                accepts_codes=request.accepts_codes,
                location=request.location,
                hazardous_permit=request.hazardous_permit,
                terms=request.terms,
            )
            code = request.material.code
        return self._encode(event, event_id, listing_id), action.kind, listing_id, code

    @staticmethod
    def _encode(event: Any, event_id: str, subject: str) -> Any:
        return to_message(
            event, event_id=event_id, source="/api", time=datetime.now(UTC), subject=subject
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--mode", choices=("api", "kafka"), required=True)
    parser.add_argument("--rate", type=float, default=50.0, help="actions per second")
    parser.add_argument("--duration", type=float, default=30.0, help="seconds of arrivals")
    parser.add_argument("--max-actions", type=int, default=100_000)
    parser.add_argument("--smes", type=int, default=400)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--api", default="http://127.0.0.1:8080")
    args = parser.parse_args()
    if not (
        0 < args.rate <= 5000
        and 0 < args.duration <= 3600
        and 0 < args.max_actions <= 1_000_000
        and 2 <= args.smes <= 100_000
    ):
        parser.error("keep it bounded: rate 0..5000/s, duration 0..3600 s, max-actions 1..1e6")
    settings = Settings.from_env()
    configure_logging(settings)
    gen = LoadGenerator(settings, mode=args.mode, seed=args.seed, smes=args.smes, api_url=args.api)
    outcome = asyncio.run(gen.run(args.rate, args.duration, args.max_actions))
    print(orjson.dumps(outcome.summary(), option=orjson.OPT_INDENT_2).decode())


if __name__ == "__main__":
    main()
