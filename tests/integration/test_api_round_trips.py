"""What a listing post costs PostgreSQL (issue #18, target 3): the API key, its rate-limit bucket,
the stored answer of an Idempotency-Key and the organisation's data key are read in one
statement (producers/api/auth.py), and an answer is stored in one more; nothing is cached, so a
revoked key is refused on its next call and a wrong secret takes no token from the key's bucket.

The statements are counted with asyncpg's query logger on every connection the app's pool lends
(the real pool and server: the counter only listens)."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, cast

import pytest
from aiohttp import web

from marketplace.db import connect
from marketplace.partners import revoke_keys
from marketplace.settings import Settings
from marketplace.translate.shredding import destroy
from producers.api.app import create_app
from producers.api.context import POOL
from tests.integration.api_helpers import Partner, offer_body, register, running_api

pytestmark = pytest.mark.integration


class CountingPool:
    """The app's pool, unchanged, noting every statement sent on a connection it lends."""

    def __init__(self, pool: Any) -> None:
        self._pool = pool
        self.sent: list[str] = []

    def _note(self, record: Any) -> None:
        self.sent.append(record.query)

    @asynccontextmanager
    async def acquire(self) -> AsyncIterator[Any]:
        async with self._pool.acquire() as conn:
            conn.add_query_logger(self._note)
            try:
                yield conn
            finally:
                conn.remove_query_logger(self._note)

    async def fetchrow(self, *args: Any, **kwargs: Any) -> Any:
        async with self.acquire() as conn:
            return await conn.fetchrow(*args, **kwargs)

    async def fetchval(self, *args: Any, **kwargs: Any) -> Any:
        async with self.acquire() as conn:
            return await conn.fetchval(*args, **kwargs)

    async def fetch(self, *args: Any, **kwargs: Any) -> Any:
        async with self.acquire() as conn:
            return await conn.fetch(*args, **kwargs)

    async def execute(self, *args: Any, **kwargs: Any) -> Any:
        async with self.acquire() as conn:
            return await conn.execute(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._pool, name)


def counted_app(settings: Settings) -> web.Application:
    """The API app with its pool behind a CountingPool once it has started."""
    app = create_app(settings)

    async def counting(app: web.Application) -> AsyncIterator[None]:
        app[POOL] = cast(Any, CountingPool(app[POOL]))
        yield

    app.cleanup_ctx.append(counting)
    return app


def described(code: str = "040222") -> dict[str, Any]:
    """An offer with a description, a personal field that is sealed with the owner's data key."""
    body = offer_body(code)
    body["material"]["description"] = "bales of pressed offcuts"
    return body


async def test_a_post_costs_one_statement_and_a_keyed_one_four(settings: Settings) -> None:
    seller = await register(settings, "sme", "Round Trips AB")
    async with running_api(settings, counted_app) as client:
        pool = cast(CountingPool, client.app[POOL])
        # The first post makes the organisation's data key (read, made, read again).
        first = await client.post("/v1/offers", json=described(), headers=seller.auth)
        assert first.status == 202, await first.text()

        pool.sent.clear()
        r = await client.post("/v1/offers", json=described(), headers=seller.auth)
        assert r.status == 202, await r.text()
        assert len(pool.sent) == 1, pool.sent
        assert "api_rate_buckets" in pool.sent[0]
        assert "data_keys" in pool.sent[0]

        key = {"Idempotency-Key": str(uuid.uuid4())} | seller.auth
        pool.sent.clear()
        r = await client.post("/v1/offers", json=described(), headers=key)
        assert r.status == 202, await r.text()
        # The key and its answer read; the reservation; the answer read again behind it; the
        # answer stored and the reservation let go.
        assert len(pool.sent) == 4, pool.sent
        assert "idempotency_reservations" in pool.sent[1]
        assert "DELETE FROM idempotency_reservations" in pool.sent[3]
        made = await r.json()

        pool.sent.clear()
        again = await client.post("/v1/offers", json=described(), headers=key)
        assert again.status == 202
        assert again.headers["Idempotent-Replayed"] == "true"
        assert await again.json() == made
        assert again.headers["Location"] == r.headers["Location"]
        assert len(pool.sent) == 1, pool.sent

        # The same key for another body is refused, as before.
        other = await client.post("/v1/offers", json=described("020104"), headers=key)
        assert other.status == 422
        assert (await other.json())["type"].endswith("idempotency-key-reused")


async def test_a_destroyed_data_key_is_made_again_by_the_next_post(settings: Settings) -> None:
    seller = await register(settings, "sme", "Shredded Then Back AB")
    subject = f"partner:{seller.partner_id}"
    conn = await connect(settings)
    try:
        async with running_api(settings, counted_app) as client:
            pool = cast(CountingPool, client.app[POOL])
            r = await client.post("/v1/offers", json=described(), headers=seller.auth)
            assert r.status == 202, await r.text()
            before = await conn.fetchval(
                "SELECT sealed_key FROM data_keys WHERE subject = $1", subject
            )
            assert before is not None
            assert await destroy(conn, [subject]) == 1
            pool.sent.clear()
            r = await client.post("/v1/offers", json=described(), headers=seller.auth)
            assert r.status == 202, await r.text()
            # Not found with the API key, so the sealing reads and makes it on its own.
            assert len(pool.sent) > 1, pool.sent
            after = await conn.fetchval(
                "SELECT sealed_key FROM data_keys WHERE subject = $1", subject
            )
            assert after is not None
            assert after != before
    finally:
        await conn.close()


async def test_keys_are_checked_on_every_call_and_bad_secrets_take_no_token(
    settings: Settings,
) -> None:
    seller = await register(settings, "sme", "Every Call AB")
    key_id = seller.key.split("_")[1]
    wrong = Partner(seller.partner_id, f"{seller.key.rsplit('_', 1)[0]}_not-the-secret")
    assert wrong.key.split("_")[1] == key_id
    strict = dataclasses.replace(settings, api_rate_per_s=0.001, api_rate_burst=2)
    conn = await connect(settings)
    try:
        async with running_api(strict) as client:
            for _ in range(4):
                r = await client.post("/v1/offers", json=described(), headers=wrong.auth)
                assert r.status == 401
            # The burst of 2 is still whole: the wrong secret took nothing from it.
            for _ in range(2):
                r = await client.get("/v1/me", headers=seller.auth)
                assert r.status == 200
            assert (await client.get("/v1/me", headers=seller.auth)).status == 429
            assert await revoke_keys(conn, seller.partner_id) == 1
            # Refused on the very next call, before any bucket is looked at.
            r = await client.post("/v1/offers", json=described(), headers=seller.auth)
            assert r.status == 401
            assert "revoked" in (await r.json())["detail"]
    finally:
        await conn.close()
