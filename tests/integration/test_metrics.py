"""/metrics, /healthz and /readyz of a consumer process and of the API, on the real stack."""

from __future__ import annotations

import asyncio
import dataclasses
import socket
import uuid

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from consumers.projector import TOPICS, Projector
from marketplace.metrics import serve_ops
from marketplace.runtime.service import run_consumer
from marketplace.settings import Settings
from tests.integration.api_helpers import eventually, register, running_api
from tests.integration.kafka_helpers import start_at_session_start

pytestmark = pytest.mark.integration


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def samples(text: str, name: str, **labels: str) -> list[float]:
    """The values of the samples called `name` whose labels include `labels` (in any order: the
    exposition sorts them by name)."""
    return [
        s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == name and labels.items() <= s.labels.items()
    ]


def sample(text: str, name: str, **labels: str) -> float:
    """The value of the one sample called `name` with these labels."""
    found = samples(text, name, **labels)
    assert len(found) == 1, f"{name}{labels}: {len(found)} samples"
    return found[0]


async def test_a_consumer_process_reports_its_work_and_readiness(settings: Settings) -> None:
    ops = dataclasses.replace(settings, metrics_port=free_port())
    group = f"test.metrics.{uuid.uuid4().hex[:8]}"
    await start_at_session_start(settings, group, TOPICS)
    stop = asyncio.Event()
    server = asyncio.create_task(serve_ops(ops, stop))
    base = f"http://127.0.0.1:{ops.metrics_port}"
    async with aiohttp.ClientSession() as http:

        async def get(path: str) -> tuple[int, str]:
            async with http.get(base + path) as r:
                return r.status, await r.text()

        async def listening() -> bool:
            try:
                return (await get("/healthz"))[0] == 200
            except aiohttp.ClientError:
                return False

        await eventually(listening)
        consumer = asyncio.create_task(
            run_consumer(ops, group_id=group, topics=TOPICS, processor=Projector(group), stop=stop)
        )
        try:
            await register(ops, "sme", "Metrics Test EOOD")
            registry = {"group": group, "topic": "partners.registry"}

            async def counted() -> bool:
                # The lag gauge is set once the batch's partitions are all handled, a moment
                # after the records are counted.
                _, text = await get("/metrics")
                return bool(
                    samples(text, "marketplace_records_consumed_total", **registry)
                    and samples(text, "marketplace_consumer_lag_records", **registry)
                )

            await eventually(counted, 60)
            status, text = await get("/metrics")
            assert status == 200
            assert sample(text, "marketplace_records_consumed_total", **registry) >= 1
            assert sample(text, "marketplace_batch_records_count", group=group) >= 1
            assert sample(text, "marketplace_end_to_end_lag_seconds_count", **registry) >= 1
            assert samples(text, "marketplace_consumer_lag_records", **registry)
            status, body = await get("/readyz")
            assert status == 200
            assert f"consumer:{group}" in body
        finally:
            stop.set()
            await asyncio.wait_for(asyncio.gather(consumer, server), 30)


async def test_the_api_counts_its_requests_on_the_ops_port_only(settings: Settings) -> None:
    """The API's metrics are on the process's ops port (as every service's), not on the public
    API port."""
    ops = dataclasses.replace(settings, metrics_port=free_port())
    seller = await register(settings, "sme")
    stop = asyncio.Event()
    server = asyncio.create_task(serve_ops(ops, stop))
    try:
        async with running_api(settings) as client, aiohttp.ClientSession() as http:
            await client.get("/readyz")
            r = await client.get("/v1/offers")  # no key: 401, counted all the same
            assert r.status == 401
            # Not on the public port: without a key it is not public, with one it is not found.
            public = await client.get("/metrics")
            assert public.status == 401
            assert public.content_type == "application/problem+json"
            public = await client.get("/metrics", headers=seller.auth)
            assert public.status == 404
            assert "marketplace_http_requests_total" not in await public.text()

            async def scrape() -> tuple[int, str, str]:
                async with http.get(f"http://127.0.0.1:{ops.metrics_port}/metrics") as m:
                    return m.status, m.headers["Content-Type"], await m.text()

            async def listening() -> bool:
                try:
                    return (await scrape())[0] == 200
                except aiohttp.ClientError:
                    return False

            await eventually(listening)
            status, content_type, text = await scrape()
            assert status == 200
            assert content_type.startswith("text/plain; version=0.0.4")
            requests = {"method": "GET", "route": "/v1/offers", "status": "401"}
            assert sample(text, "marketplace_http_requests_total", **requests) >= 1
            readyz = {"method": "GET", "route": "/readyz", "le": "+Inf"}
            assert sample(text, "marketplace_http_request_seconds_bucket", **readyz) >= 1
            unmatched = {"method": "GET", "route": "unmatched", "status": "404"}
            assert sample(text, "marketplace_http_requests_total", **unmatched) >= 1
    finally:
        stop.set()
        await asyncio.wait_for(server, 30)
