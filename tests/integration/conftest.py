"""Integration tests talk to the real Kafka and PostgreSQL that `marketplace up` starts.
A missing service fails the run with the reason; nothing is skipped."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import pytest

from marketplace.db import connect, create_pool
from marketplace.kafka import wait_for_kafka
from marketplace.settings import Settings
from tests.integration.kafka_helpers import mark_session_start


@pytest.fixture(scope="session", autouse=True)
def _services_are_up() -> None:
    settings = Settings.from_env()

    async def check() -> None:
        conn = await connect(settings, timeout_s=10)
        await conn.close()
        await wait_for_kafka(settings, timeout_s=20)
        await mark_session_start(settings)

    try:
        asyncio.run(check())
    except (TimeoutError, OSError) as exc:
        pytest.fail(
            f"integration tests need Kafka and PostgreSQL: {exc}. "
            "Start them with `marketplace up` (or run the suite with `make test`).",
            pytrace=False,
        )


@pytest.fixture
async def pool(settings: Settings) -> AsyncIterator[asyncpg.Pool]:
    """Connections as the services' role (owns nothing, reads and writes rows)."""
    p = await create_pool(settings)
    yield p
    await p.close()


@pytest.fixture
async def owner(settings: Settings) -> AsyncIterator[asyncpg.Connection]:
    """A connection as the role that owns the tables (migrations), for a test's own tables."""
    conn = await connect(settings, dsn=settings.migrate_dsn)
    yield conn
    await conn.close()
