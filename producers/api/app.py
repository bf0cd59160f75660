"""The API's application factory: middlewares, routes, and the pool and producer it shares.

The API's own metrics (requests, latency, events published) are not served here, on the public
port: like every service's, they are on the process's ops port (MARKETPLACE_METRICS_PORT,
`marketplace.metrics.serve_ops`, which `marketplace run` starts beside the API)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import asyncpg
from aiohttp import web
from aiohttp.typedefs import Handler

from marketplace import metrics
from marketplace.db import create_pool
from marketplace.kafka import make_admin, make_producer
from marketplace.settings import Settings
from producers.api import (
    facilitators,
    feedback,
    impact,
    jobs,
    legal,
    listings,
    live,
    matches,
    partners,
    people,
    preview,
    webhooks,
)
from producers.api.auth import auth_middleware
from producers.api.context import LIMITER, POOL, PRODUCER, SETTINGS, ProducerHandle
from producers.api.problems import problem_middleware
from producers.api.ratelimit import RateLimiter
from producers.api.writes import replay_middleware
from schemas.files import OPENAPI


async def healthz(_request: web.Request) -> web.StreamResponse:
    # Liveness: the process runs its event loop. Dependencies are /readyz's business.
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.StreamResponse:
    checks: dict[str, str] = {}
    try:
        async with request.app[POOL].acquire() as conn:
            await asyncio.wait_for(conn.fetchval("SELECT 1"), timeout=2)
        checks["postgres"] = "ok"
    except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
        checks["postgres"] = f"unavailable: {type(exc).__name__}"
    admin = make_admin(request.app[SETTINGS])
    try:
        await asyncio.wait_for(admin.start(), timeout=3)
        await asyncio.wait_for(admin.describe_cluster(), timeout=3)
        checks["kafka"] = "ok"
    except Exception as exc:  # noqa: BLE001 - any failure means "not ready"; the reason is reported
        checks["kafka"] = f"unavailable: {type(exc).__name__}"
    finally:
        await admin.close()
    # Writes need the API's own producer connected, not just a broker that answers.
    checks["producer"] = "ok" if request.app[PRODUCER].producer is not None else "connecting"
    ready = all(v == "ok" for v in checks.values())
    return web.json_response(
        {"status": "ready" if ready else "not ready", "checks": checks},
        status=200 if ready else 503,
    )


async def openapi(_request: web.Request) -> web.StreamResponse:
    return web.Response(body=OPENAPI.read_bytes(), content_type="application/json")


REQUESTS = metrics.counter(
    "marketplace_http_requests_total", "API requests answered", ("method", "route", "status")
)
REQUEST_SECONDS = metrics.histogram(
    "marketplace_http_request_seconds", "time to answer an API request", ("method", "route")
)


@web.middleware
async def metrics_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    started = time.perf_counter()
    resource = request.match_info.route.resource
    route = resource.canonical if resource is not None else "unmatched"
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    finally:
        REQUESTS.labels(method=request.method, route=route, status=str(status)).inc()
        REQUEST_SECONDS.labels(method=request.method, route=route).observe(
            time.perf_counter() - started
        )


def create_app(settings: Settings) -> web.Application:
    app = web.Application(
        middlewares=[metrics_middleware, problem_middleware, auth_middleware, replay_middleware],
        client_max_size=settings.api_max_body_bytes,
    )
    app[SETTINGS] = settings
    app[LIMITER] = RateLimiter(settings.api_rate_per_s, settings.api_rate_burst)

    async def resources(app: web.Application) -> AsyncIterator[None]:
        app[POOL] = await create_pool(settings, min_size=0)
        # A write waits at most 10 s for Kafka, then answers 503 with Retry-After.
        handle = ProducerHandle(
            lambda: make_producer(settings, client_id="marketplace-api", request_timeout_ms=10000)
        )
        app[PRODUCER] = handle
        connecting = asyncio.create_task(handle.connect(), name="api-producer-connect")
        yield
        connecting.cancel()
        await asyncio.gather(connecting, return_exceptions=True)
        await handle.stop()
        await app[POOL].close()

    app.cleanup_ctx.append(resources)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/openapi.json", openapi)
    preview.add_routes(app)
    listings.add_routes(app)
    facilitators.add_routes(app)
    feedback.add_routes(app)
    partners.add_routes(app)
    legal.add_routes(app)
    people.add_routes(app)
    matches.add_routes(app)
    jobs.add_routes(app)
    impact.add_routes(app)
    webhooks.add_routes(app)
    live.add_routes(app)
    return app
