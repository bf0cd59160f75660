"""The impact and operations endpoints behind the dashboard: who sees what, and bad input."""

from __future__ import annotations

import pytest

from consumers.analytics import TOPICS, Analytics
from marketplace.settings import Settings
from tests.integration.api_helpers import (
    consumer_running,
    eventually,
    offer_body,
    register,
    running_api,
)

pytestmark = pytest.mark.integration


async def test_smes_see_their_own_figures_and_the_association_sees_all(settings: Settings) -> None:
    seller = await register(settings, "sme", "Impact Textil OOD")
    other = await register(settings, "sme", "Someone Else AB")
    operator = await register(settings, "operator", "Cluster Council")
    carrier = await register(settings, "logistics", "Hauler AB")
    async with (
        consumer_running(settings, "analytics", TOPICS, Analytics),
        running_api(settings) as client,
    ):
        r = await client.post("/v1/offers", json=offer_body(), headers=seller.auth)
        assert r.status == 202, await r.text()

        async def counted() -> bool:
            r = await client.get("/v1/impact", headers=seller.auth)
            return r.status == 200 and (await r.json())["headline"]["offers"] == 1

        await eventually(counted, 60)
        own = await (await client.get("/v1/impact?slice=region", headers=seller.auth)).json()
        assert own["partner"] == seller.partner_id
        assert sum(row["offers"] for row in own["tables"]["listings"]) == 1
        theirs = await (await client.get("/v1/impact", headers=other.auth)).json()
        assert theirs["headline"]["offers"] == 0

        everyone = await (await client.get("/v1/impact", headers=operator.auth)).json()
        assert everyone["partner"] is None
        assert everyone["headline"]["offers"] >= 1
        one = await client.get(f"/v1/impact?partner={seller.partner_id}", headers=operator.auth)
        assert (await one.json())["headline"]["offers"] == 1

        for path, who, status in (
            (f"/v1/impact?partner={other.partner_id}", seller, 403),
            ("/v1/impact", carrier, 403),
            ("/v1/ops/consumers", seller, 403),
            ("/v1/impact?slice=weekly", operator, 422),
            ("/v1/impact?from=yesterday", operator, 422),
            ("/v1/impact?from=2026-12-01&to=2026-11-01", operator, 422),
        ):
            r = await client.get(path, headers=who.auth)
            assert r.status == status, (path, await r.text())
            assert r.content_type == "application/problem+json"
        assert (await client.get("/v1/impact")).status == 401

        ops = await client.get("/v1/ops/consumers", headers=operator.auth)
        assert ops.status == 200
        data = await ops.json()
        assert data["kafka"] == "ok"
        assert all(g["lag"] >= 0 and g["partitions"] > 0 for g in data["groups"])
        assert not any(g["group"].startswith("test.") for g in data["groups"])

        published = await client.get("/audit/public-key")
        assert published.status == 200
        key = await published.json()
        assert key["algorithm"] == "Ed25519"
        assert len(bytes.fromhex(key["public_key"])) == 32

        page = await client.get("/dashboard")
        assert page.status == 200
        assert page.content_type == "text/html"
        assert "Association dashboard" in await page.text()
