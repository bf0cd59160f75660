"""Per-key token buckets, shared by every API process: a steady rate with a burst allowance.

Each bucket is a row of api_rate_buckets (infra/migrations/0017) that one UPSERT per request
refills (by the time since it was last touched, on the database's clock, so that processes on
different hosts agree) and takes a token from when it holds one. The row lock makes concurrent
requests, from any process, take turns: together they get the burst, then the rate."""

from __future__ import annotations

import math

from marketplace.db import Conn

_TAKE = """
INSERT INTO api_rate_buckets AS b (key_id, tokens, updated_at, allowed)
VALUES ($1, $3::float8 - 1, now(), true)
ON CONFLICT (key_id) DO UPDATE SET (tokens, allowed, updated_at) = (
    SELECT CASE WHEN r.level >= 1 THEN r.level - 1 ELSE r.level END,
           r.level >= 1,
           greatest(b.updated_at, now())
    FROM (
        SELECT least($3::float8, b.tokens
                     + greatest(0, extract(epoch FROM now() - b.updated_at)) * $2::float8)
            AS level
    ) AS r
)
RETURNING allowed, tokens
"""


class RateLimiter:
    def __init__(self, rate_per_s: float, burst: int) -> None:
        self.rate = rate_per_s
        self.burst = burst

    async def take(self, conn: Conn, key: str) -> float:
        """Takes one token from `key`'s bucket; returns 0 when allowed, else the seconds to wait
        before a token is back."""
        row = await conn.fetchrow(_TAKE, key, self.rate, float(self.burst))
        assert row is not None  # an UPSERT ... RETURNING always returns its row
        if row["allowed"]:
            return 0.0
        return max(0.0, (1 - float(row["tokens"])) / self.rate)

    @staticmethod
    def retry_after_header(wait_s: float) -> str:
        return str(max(1, math.ceil(wait_s)))
