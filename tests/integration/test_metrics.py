"""/metrics, /healthz and /readyz of a consumer process and of the API, on the real stack."""

from __future__ import annotations

import asyncio
import dataclasses
import socket
import uuid

import aiohttp
import pytest

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


def sample(text: str, prefix: str) -> float:
    """The value of the first sample line starting with `prefix`."""
    for line in text.splitlines():
        if line.startswith(prefix):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"no sample {prefix!r}")


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
            wanted = (
                f'marketplace_records_consumed_total{{group="{group}",topic="partners.registry"}}'
            )

            async def counted() -> bool:
                _, text = await get("/metrics")
                return wanted in text

            await eventually(counted, 60)
            status, text = await get("/metrics")
            assert status == 200
            assert sample(text, wanted) >= 1
            assert sample(text, f'marketplace_batch_records_count{{group="{group}"}}') >= 1
            e2e = (
                "marketplace_end_to_end_lag_seconds_count"
                f'{{group="{group}",topic="partners.registry"}}'
            )
            assert sample(text, e2e) >= 1
            assert (
                f'marketplace_consumer_lag_records{{group="{group}",topic="partners.registry"'
                in text
            )
            status, body = await get("/readyz")
            assert status == 200
            assert f"consumer:{group}" in body
        finally:
            stop.set()
            await asyncio.wait_for(asyncio.gather(consumer, server), 30)


async def test_the_api_counts_its_requests(settings: Settings) -> None:
    async with running_api(settings) as client:
        await client.get("/readyz")
        r = await client.get("/v1/offers")  # no key: 401, counted all the same
        assert r.status == 401
        metrics = await client.get("/metrics")
        assert metrics.status == 200
        assert metrics.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        text = await metrics.text()
        assert (
            sample(
                text,
                'marketplace_http_requests_total{method="GET",route="/v1/offers",status="401"}',
            )
            >= 1
        )
        assert (
            'marketplace_http_request_seconds_bucket{method="GET",route="/readyz",le="+Inf"}'
            in text
        )
