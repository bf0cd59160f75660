"""While PostgreSQL is away the API answers 503 with Retry-After and a problem body (nothing was
stored; the partner tries again), and it serves again as soon as the database is back."""

from __future__ import annotations

import dataclasses

import pytest
from aiohttp.test_utils import TestClient, TestServer

from marketplace.settings import Settings
from producers.api.app import create_app
from tests.faults import proxy
from tests.integration.api_helpers import eventually, register, request_body

pytestmark = pytest.mark.integration


async def test_the_api_refuses_with_503_while_the_database_is_away(settings: Settings) -> None:
    sme = await register(settings, "sme", "Väveri Borås AB")
    async with proxy("127.0.0.1", settings.pg_port) as pg:
        through = dataclasses.replace(
            settings,
            database_url=(
                f"postgresql://{settings.db_app_user}:{settings.db_app_password}"
                f"@127.0.0.1:{pg.port}/{settings.db_name}"
            ),
        )
        async with TestClient(TestServer(create_app(through))) as client:
            assert (await client.get("/v1/me", headers=sme.auth)).status == 200
            pg.cut()
            for method, path, body in (
                ("GET", "/v1/me", None),
                ("GET", "/v1/offers", None),
                ("POST", "/v1/requests", request_body()),
            ):
                r = await client.request(method, path, json=body, headers=sme.auth)
                assert r.status == 503, (path, await r.text())
                assert r.headers["Retry-After"] == "5"
                assert r.content_type == "application/problem+json"
                problem = await r.json()
                assert problem["type"].endswith("/database-unavailable")
                assert "nothing was stored" in problem["detail"]
            ready = await client.get("/readyz")
            assert ready.status == 503
            pg.restore()

            async def serving() -> bool:
                return (await client.get("/v1/me", headers=sme.auth)).status == 200

            await eventually(serving)
