from __future__ import annotations

import asyncio
import dataclasses

import pytest
from aiohttp.test_utils import TestClient, TestServer

from marketplace.settings import Settings
from producers.api.app import create_app
from tests.integration.api_helpers import offer_body, register

pytestmark = pytest.mark.integration


async def test_ready_when_kafka_and_postgres_answer(settings: Settings) -> None:
    async with TestClient(TestServer(create_app(settings))) as client:
        live = await client.get("/healthz")
        assert live.status == 200
        assert await live.json() == {"status": "ok"}
        ready = await client.get("/readyz")
        for _ in range(100):  # the producer connects in the background, within moments
            if ready.status == 200:
                break
            await asyncio.sleep(0.1)
            ready = await client.get("/readyz")
        assert ready.status == 200
        assert await ready.json() == {
            "status": "ready",
            "checks": {"postgres": "ok", "kafka": "ok", "producer": "ok"},
        }


async def test_not_ready_names_the_missing_dependency(settings: Settings) -> None:
    # Port 9 on loopback (discard) has no broker: Kafka must be reported, PostgreSQL still ok.
    sme = await register(settings, "sme", "Waiting Textiles AB")
    broken = dataclasses.replace(settings, kafka_bootstrap="127.0.0.1:9")
    async with TestClient(TestServer(create_app(broken))) as client:
        ready = await client.get("/readyz")
        body = await ready.json()
        assert ready.status == 503
        assert body["status"] == "not ready"
        assert body["checks"]["postgres"] == "ok"
        assert body["checks"]["kafka"].startswith("unavailable")
        assert body["checks"]["producer"] == "connecting"
        # Writes are refused, with when to come back, rather than accepted and lost.
        r = await client.post("/v1/offers", json=offer_body(), headers=sme.auth)
        assert r.status == 503
        assert r.headers["Retry-After"] == "2"
        assert r.content_type == "application/problem+json"
        assert "Kafka" in (await r.json())["detail"]


async def test_openapi_is_served_without_a_key(settings: Settings) -> None:
    async with TestClient(TestServer(create_app(settings))) as client:
        r = await client.get("/openapi.json")
        assert r.status == 200
        doc = await r.json()
        assert "/v1/offers" in doc["paths"]
