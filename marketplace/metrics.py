"""Operations metrics, exposed by `prometheus_client` in the Prometheus text format, and the small
HTTP server every service process runs for them (`/metrics`, `/healthz`, `/readyz`).

One registry per process (`REGISTRY`, ours rather than the library's default, so that only the
marketplace's metrics are exposed); the modules that own metrics create them once, at import,
with `counter`, `gauge` and `histogram`, and update them the library's way
(`CONSUMED.labels(group=g, topic=t).inc(n)`). `_created` series are turned off so each metric
exposes exactly the names it has always had. Readiness is ours: each part of the process that
has to be up registers a check in `READINESS`, and `/readyz` answers 503 naming the parts whose
check fails."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

from aiohttp import web
from prometheus_client import (
    CONTENT_TYPE_PLAIN_0_0_4,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)

from marketplace.logs import get_logger
from marketplace.settings import Settings

log = get_logger(__name__)

REGISTRY = CollectorRegistry()
# The format `generate_latest` writes: text 0.0.4, as Prometheus scrapes it.
CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4
# Buckets of a histogram that names none (seconds): the ones these services have always used.
DEFAULT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)

# Counters and histograms would also expose a `<name>_created` series each: names nobody
# scrapes, and names these services never exposed. Process-wide, read at every collection.
disable_created_metrics()  # type: ignore[no-untyped-call]

# Readiness of the parts of this process: name -> "is it ready?"
READINESS: dict[str, Callable[[], bool]] = {}


def counter(name: str, help_: str, labels: Sequence[str] = ()) -> Counter:
    """A counter exposed as `name`, which must end in `_total` (the library adds the suffix to
    whatever name it is given; with one already there, the exposed name is `name` itself)."""
    if not name.endswith("_total"):
        raise ValueError(f"counter {name}: the name must end in _total")
    return Counter(name, help_, labels, registry=REGISTRY)


def gauge(name: str, help_: str, labels: Sequence[str] = ()) -> Gauge:
    return Gauge(name, help_, labels, registry=REGISTRY)


def histogram(
    name: str, help_: str, labels: Sequence[str] = (), buckets: Sequence[float] = DEFAULT_BUCKETS
) -> Histogram:
    return Histogram(name, help_, labels, registry=REGISTRY, buckets=buckets)


def not_ready() -> list[str]:
    return sorted(name for name, check in READINESS.items() if not check())


async def metrics_handler(_request: web.Request) -> web.StreamResponse:
    return web.Response(body=generate_latest(REGISTRY), headers={"Content-Type": CONTENT_TYPE})


async def _healthz(_request: web.Request) -> web.StreamResponse:
    return web.json_response({"status": "alive"})


async def _readyz(_request: web.Request) -> web.StreamResponse:
    waiting = not_ready()
    if waiting:
        return web.json_response({"status": "not ready", "waiting_for": waiting}, status=503)
    return web.json_response({"status": "ready", "parts": sorted(READINESS)})


def ops_app() -> web.Application:
    """`/metrics`, `/healthz` and `/readyz` of this process."""
    app = web.Application()
    app.router.add_get("/metrics", metrics_handler)
    app.router.add_get("/healthz", _healthz)
    app.router.add_get("/readyz", _readyz)
    return app


async def serve_ops(settings: Settings, stop: asyncio.Event, tries: int = 16) -> None:
    """`ops_app` on the first free port from MARKETPLACE_METRICS_PORT up (several instances may
    share a host), until `stop`."""
    runner = web.AppRunner(ops_app(), access_log=None)
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
