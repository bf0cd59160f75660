"""The per-key rate limit is one limit, however many API processes serve the key: an API in this
process and another one started as `marketplace run api` in a subprocess, called in turn with
one key, together let the burst through and no more, each answering 429 with Retry-After after
that; another key is not held back. The subprocess's metrics are on its ops port, not on its
API port."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import socket
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
import pytest

from marketplace.settings import Settings
from tests.integration.api_helpers import eventually, register, running_api

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
# One token per 1000 s: nothing comes back during the test, so the count is exact.
RATE_PER_S, BURST = 0.001, 6


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@asynccontextmanager
async def api_process(http_port: int, ops_port: int) -> AsyncIterator[str]:
    """`marketplace run api` in a subprocess, with the test's rate limit; yields its base URL."""
    env = os.environ | {
        "MARKETPLACE_HTTP_PORT": str(http_port),
        "MARKETPLACE_METRICS_PORT": str(ops_port),
        "MARKETPLACE_API_RATE_PER_S": str(RATE_PER_S),
        "MARKETPLACE_API_RATE_BURST": str(BURST),
        "MARKETPLACE_LOG_LEVEL": "warning",
    }
    cmd = [sys.executable, "-m", "marketplace.app.cli", "run", "api"]
    proc = await asyncio.create_subprocess_exec(*cmd, cwd=ROOT, env=env)
    base = f"http://127.0.0.1:{http_port}"
    try:
        async with aiohttp.ClientSession() as http:

            async def ready() -> bool:
                assert proc.returncode is None, "the API process exited"
                try:
                    async with http.get(base + "/readyz") as r:
                        return r.status == 200
                except aiohttp.ClientError:
                    return False

            await eventually(ready, 60)
        yield base
    finally:
        if proc.returncode is None:
            proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), 30)
        except TimeoutError:
            proc.kill()
            await proc.wait()


async def test_two_api_processes_share_one_limit_per_key(settings: Settings) -> None:
    seller = await register(settings, "sme", "Two Doors AB")
    other = await register(settings, "sme", "Other Key AB")
    strict = dataclasses.replace(settings, api_rate_per_s=RATE_PER_S, api_rate_burst=BURST)
    ops_port = free_port()
    async with (
        api_process(free_port(), ops_port) as base,
        running_api(strict) as here,
        aiohttp.ClientSession() as http,
    ):

        async def there(path: str, headers: dict[str, str]) -> tuple[int, dict[str, str]]:
            async with http.get(base + path, headers=headers) as r:
                await r.read()
                return r.status, dict(r.headers)

        statuses: list[tuple[str, int]] = []
        retry_after: list[str] = []
        for n in range(2 * BURST):
            if n % 2:
                r = await here.get("/v1/me", headers=seller.auth)
                status, headers = r.status, dict(r.headers)
                statuses.append(("here", status))
            else:
                status, headers = await there("/v1/me", seller.auth)
                statuses.append(("there", status))
            if status == 429:
                retry_after.append(headers["Retry-After"])
        # Each process alone would have let BURST through (2 * BURST together).
        assert [s for _, s in statuses] == [200] * BURST + [429] * BURST, statuses
        assert {where for where, s in statuses if s == 429} == {"here", "there"}
        assert all(int(r) >= 1 for r in retry_after)
        # Another key has a bucket of its own.
        assert (await here.get("/v1/me", headers=other.auth)).status == 200
        assert (await there("/v1/me", other.auth))[0] == 200

        # The process's metrics: on its ops port, counting the 429s; not on its API port.
        async with http.get(f"http://127.0.0.1:{ops_port}/metrics") as r:
            assert r.status == 200
            text = await r.text()
        assert 'route="/v1/me",status="429"' in text
        assert (await there("/metrics", seller.auth))[0] in (404, 429)
        assert (await there("/metrics", {}))[0] == 401
