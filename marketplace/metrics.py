"""Operations metrics in the Prometheus text format, and the small HTTP server every service
process runs for them (`/metrics`, `/healthz`, `/readyz`).

One registry per process; metrics are created once at import by the modules that own them. No
dependency: counters, gauges and histograms with labels are all the services need."""

from __future__ import annotations

import asyncio
import bisect
import math
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from aiohttp import web

from marketplace.logs import get_logger
from marketplace.settings import Settings

log = get_logger(__name__)

LabelValues = tuple[str, ...]


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(names: Sequence[str], values: LabelValues, extra: str = "") -> str:
    parts = [f'{n}="{_escape(v)}"' for n, v in zip(names, values, strict=True)]
    if extra:
        parts.append(extra)
    return "{" + ",".join(parts) + "}" if parts else ""


def _num(value: float) -> str:
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value)) if not float(value).is_integer() else str(int(value))


class _Metric:
    kind = ""

    def __init__(self, name: str, help_: str, labels: Sequence[str] = ()) -> None:
        self.name = name
        self.help = help_
        self.label_names = tuple(labels)

    def _key(self, labels: dict[str, str]) -> LabelValues:
        if set(labels) != set(self.label_names):
            raise ValueError(f"{self.name}: labels {sorted(labels)} != {sorted(self.label_names)}")
        return tuple(str(labels[n]) for n in self.label_names)

    def header(self) -> list[str]:
        return [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} {self.kind}"]

    def samples(self) -> Iterable[str]:
        raise NotImplementedError


class Counter(_Metric):
    kind = "counter"

    def __init__(self, name: str, help_: str, labels: Sequence[str] = ()) -> None:
        super().__init__(name, help_, labels)
        self.values: dict[LabelValues, float] = {}

    def inc(self, amount: float = 1.0, **labels: str) -> None:
        if amount < 0:
            raise ValueError("a counter only goes up")
        key = self._key(labels)
        self.values[key] = self.values.get(key, 0.0) + amount

    def get(self, **labels: str) -> float:
        return self.values.get(self._key(labels), 0.0)

    def samples(self) -> Iterable[str]:
        for key, value in sorted(self.values.items()):
            yield f"{self.name}{_labels(self.label_names, key)} {_num(value)}"


class Gauge(Counter):
    kind = "gauge"

    def set(self, value: float, **labels: str) -> None:
        self.values[self._key(labels)] = value

    def inc(self, amount: float = 1.0, **labels: str) -> None:
        key = self._key(labels)
        self.values[key] = self.values.get(key, 0.0) + amount

    def remove(self, **labels: str) -> None:
        self.values.pop(self._key(labels), None)


class Histogram(_Metric):
    kind = "histogram"

    def __init__(
        self, name: str, help_: str, labels: Sequence[str] = (), buckets: Sequence[float] = ()
    ) -> None:
        super().__init__(name, help_, labels)
        self.buckets = tuple(sorted(buckets)) or (
            0.005,
            0.01,
            0.025,
            0.05,
            0.1,
            0.25,
            0.5,
            1,
            2.5,
            5,
            10,
        )
        self.counts: dict[LabelValues, list[int]] = {}
        self.sums: dict[LabelValues, float] = {}

    def observe(self, value: float, **labels: str) -> None:
        key = self._key(labels)
        counts = self.counts.get(key)
        if counts is None:
            counts = self.counts[key] = [0] * (len(self.buckets) + 1)
            self.sums[key] = 0.0
        counts[bisect.bisect_left(self.buckets, value)] += 1
        self.sums[key] += value

    def count(self, **labels: str) -> int:
        return sum(self.counts.get(self._key(labels), ()))

    def samples(self) -> Iterable[str]:
        for key in sorted(self.counts):
            cumulative = 0
            for bound, n in zip((*self.buckets, math.inf), self.counts[key], strict=True):
                cumulative += n
                le = f'le="{_num(bound)}"'
                yield f"{self.name}_bucket{_labels(self.label_names, key, le)} {cumulative}"
            yield f"{self.name}_sum{_labels(self.label_names, key)} {_num(self.sums[key])}"
            yield f"{self.name}_count{_labels(self.label_names, key)} {cumulative}"


class Registry:
    def __init__(self) -> None:
        self.metrics: dict[str, _Metric] = {}
        # Readiness of the parts of this process: name -> "is it ready?"
        self.readiness: dict[str, Callable[[], bool]] = {}

    def _add(self, metric: Any) -> Any:
        existing = self.metrics.get(metric.name)
        if existing is not None:
            if type(existing) is not type(metric) or existing.label_names != metric.label_names:
                raise ValueError(f"metric {metric.name} registered twice, differently")
            return existing
        self.metrics[metric.name] = metric
        return metric

    def counter(self, name: str, help_: str, labels: Sequence[str] = ()) -> Counter:
        result: Counter = self._add(Counter(name, help_, labels))
        return result

    def gauge(self, name: str, help_: str, labels: Sequence[str] = ()) -> Gauge:
        result: Gauge = self._add(Gauge(name, help_, labels))
        return result

    def histogram(
        self, name: str, help_: str, labels: Sequence[str] = (), buckets: Sequence[float] = ()
    ) -> Histogram:
        result: Histogram = self._add(Histogram(name, help_, labels, buckets))
        return result

    def render(self) -> str:
        lines: list[str] = []
        for name in sorted(self.metrics):
            metric = self.metrics[name]
            lines += metric.header()
            lines += metric.samples()
        return "\n".join(lines) + "\n"

    def not_ready(self) -> list[str]:
        return sorted(name for name, check in self.readiness.items() if not check())


REGISTRY = Registry()
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


async def metrics_handler(_request: web.Request) -> web.StreamResponse:
    return web.Response(body=REGISTRY.render().encode(), headers={"Content-Type": CONTENT_TYPE})


async def _healthz(_request: web.Request) -> web.StreamResponse:
    return web.json_response({"status": "alive"})


async def _readyz(_request: web.Request) -> web.StreamResponse:
    waiting = REGISTRY.not_ready()
    if waiting:
        return web.json_response({"status": "not ready", "waiting_for": waiting}, status=503)
    return web.json_response({"status": "ready", "parts": sorted(REGISTRY.readiness)})


async def serve_ops(settings: Settings, stop: asyncio.Event, tries: int = 16) -> None:
    """`/metrics`, `/healthz` and `/readyz` for this process, on the first free port from
    MARKETPLACE_METRICS_PORT up (several instances may share a host), until `stop`."""
    app = web.Application()
    app.router.add_get("/metrics", metrics_handler)
    app.router.add_get("/healthz", _healthz)
    app.router.add_get("/readyz", _readyz)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        for port in range(settings.metrics_port, settings.metrics_port + tries):
            site = web.TCPSite(runner, settings.http_host, port)
            try:
                await site.start()
            except OSError:
                continue
            log.info("ops_listening", url=f"http://{settings.http_host}:{port}/metrics")
            break
        else:
            log.warning("ops_no_free_port", first=settings.metrics_port, tries=tries)
        await stop.wait()
    finally:
        await runner.cleanup()
