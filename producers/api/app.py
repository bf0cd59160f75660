"""The API's application factory. So far it serves the health endpoints the operators probe;
the partner endpoints arrive with the contracts-and-API work."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
from aiohttp import web

from marketplace.db import create_pool
from marketplace.kafka import make_admin
from marketplace.settings import Settings

SETTINGS = web.AppKey("settings", Settings)
POOL = web.AppKey("pool", asyncpg.Pool)


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
    ready = all(v == "ok" for v in checks.values())
    return web.json_response(
        {"status": "ready" if ready else "not ready", "checks": checks},
        status=200 if ready else 503,
    )


def create_app(settings: Settings) -> web.Application:
    app = web.Application()
    app[SETTINGS] = settings

    async def database(app: web.Application) -> AsyncIterator[None]:
        app[POOL] = await create_pool(settings, min_size=0)
        yield
        await app[POOL].close()

    app.cleanup_ctx.append(database)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    return app
