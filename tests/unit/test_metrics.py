"""What marketplace.metrics adds to prometheus_client: the names the services expose, the counter
naming rule, the buckets, readiness, and the ops endpoints."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

import consumers.mailer
import consumers.webhooks
import marketplace.runtime.consumer
import producers.api.app
import producers.api.writes
from marketplace import metrics

# The modules that create metrics, at import: all of them are imported here.
OWNERS = (
    marketplace.runtime.consumer,
    consumers.webhooks,
    consumers.mailer,
    producers.api.app,
    producers.api.writes,
)
# Every metric the services expose, with its type: dashboards and alerts depend on these names.
EXPOSED = {
    "marketplace_api_events_published_total": "counter",
    "marketplace_batch_failures_total": "counter",
    "marketplace_batch_records": "histogram",
    "marketplace_batch_seconds": "histogram",
    "marketplace_consumer_lag_records": "gauge",
    "marketplace_consumer_waiting_for_database": "gauge",
    "marketplace_dead_letters_total": "counter",
    "marketplace_end_to_end_lag_seconds": "histogram",
    "marketplace_events_emitted_total": "counter",
    "marketplace_http_request_seconds": "histogram",
    "marketplace_http_requests_total": "counter",
    "marketplace_kafka_consumers_renewed_total": "counter",
    "marketplace_mail_attempts_total": "counter",
    "marketplace_mail_dead_letters_total": "counter",
    "marketplace_mail_queued_total": "counter",
    "marketplace_mail_skipped_total": "counter",
    "marketplace_outbox_backlog": "gauge",
    "marketplace_records_consumed_total": "counter",
    "marketplace_webhook_attempts_total": "counter",
    "marketplace_webhook_dead_letters_total": "counter",
    "marketplace_webhook_in_flight": "gauge",
}
SUFFIXES = {"counter": ("",), "gauge": ("",), "histogram": ("_bucket", "_sum", "_count")}


@pytest.fixture
def scratch() -> Iterator[list[Any]]:
    """Metrics a test adds to the process registry, taken out again afterwards."""
    made: list[Any] = []
    yield made
    for metric in made:
        metrics.REGISTRY.unregister(metric)


@pytest.fixture
def readiness() -> Iterator[dict[str, Any]]:
    saved = dict(metrics.READINESS)
    metrics.READINESS.clear()
    yield metrics.READINESS
    metrics.READINESS.clear()
    metrics.READINESS.update(saved)


def test_the_services_expose_the_same_metric_names_and_types_as_before() -> None:
    text = generate_latest(metrics.REGISTRY).decode()
    types = {
        line.split()[2]: line.split()[3] for line in text.splitlines() if line.startswith("# TYPE")
    }
    assert types == EXPOSED
    sample_names = {
        line.split("{")[0].split(" ")[0] for line in text.splitlines() if not line.startswith("#")
    }
    allowed = {n + s for n, kind in EXPOSED.items() for s in SUFFIXES[kind]}
    assert sample_names <= allowed, sample_names - allowed  # no _created series, no renames
    # A metric without labels has its sample from the start (labelled ones once used).
    assert "marketplace_webhook_dead_letters_total" in sample_names


def test_a_counter_is_exposed_under_the_name_it_is_given(scratch: list[Any]) -> None:
    c = metrics.counter("test_things_total", "things", ("group",))
    scratch.append(c)
    c.labels(group="a").inc(3)
    text = generate_latest(metrics.REGISTRY).decode()
    assert 'test_things_total{group="a"} 3.0\n' in text
    assert "test_things_created" not in text
    with pytest.raises(ValueError, match="_total"):
        metrics.counter("test_things", "no suffix")


def test_histograms_default_to_the_services_buckets(scratch: list[Any]) -> None:
    h = metrics.histogram("test_seconds", "time")
    scratch.append(h)
    h.observe(0.3)
    bounds = [
        s.labels["le"]
        for family in text_string_to_metric_families(generate_latest(metrics.REGISTRY).decode())
        if family.name == "test_seconds"
        for s in family.samples
        if s.name == "test_seconds_bucket"
    ]
    assert [float(b) for b in bounds] == [*metrics.DEFAULT_BUCKETS, float("inf")]


def test_readiness_names_what_is_not_ready(readiness: dict[str, Any]) -> None:
    state = {"ok": False}
    readiness["consumer:matcher"] = lambda: state["ok"]
    readiness["consumer:projector"] = lambda: True
    assert metrics.not_ready() == ["consumer:matcher"]
    state["ok"] = True
    assert metrics.not_ready() == []


async def test_the_ops_endpoints(readiness: dict[str, Any], scratch: list[Any]) -> None:
    g = metrics.gauge("test_depth", "how deep", ("pool",))
    scratch.append(g)
    g.labels(pool="a").set(7)
    state = {"ok": False}
    readiness["consumer:matcher"] = lambda: state["ok"]
    async with TestClient(TestServer(metrics.ops_app())) as client:
        r = await client.get("/metrics")
        assert r.status == 200
        assert r.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
        assert 'test_depth{pool="a"} 7.0\n' in await r.text()
        r = await client.get("/healthz")
        assert (r.status, await r.json()) == (200, {"status": "alive"})
        r = await client.get("/readyz")
        assert r.status == 503
        assert await r.json() == {"status": "not ready", "waiting_for": ["consumer:matcher"]}
        state["ok"] = True
        r = await client.get("/readyz")
        assert (r.status, await r.json()) == (
            200,
            {"status": "ready", "parts": ["consumer:matcher"]},
        )
