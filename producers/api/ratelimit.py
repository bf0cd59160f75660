"""Per-key token buckets, shared by every API process: a steady rate with a burst allowance.

Each bucket is a row of api_rate_buckets (infra/migrations/0017) that one UPSERT per request
refills (by the time since it was last touched, on the database's clock, so that processes on
different hosts agree) and takes a token from when it holds one. The row lock makes concurrent
requests, from any process, take turns: together they get the burst, then the rate.

The API runs that UPSERT inside the statement that authenticates the key (producers/api/auth.py),
so a request costs one round trip for both."""

from __future__ import annotations

import math

# Takes a token from the bucket of the key `k` yields ($1 its id, $3 the rate per second, $4 the
# burst): a key that yields no row (not valid) touches no bucket. Returns (allowed, tokens).
TAKE_FROM_K = """
INSERT INTO api_rate_buckets AS b (key_id, tokens, updated_at, allowed)
SELECT $1, $4::float8 - 1, now(), true FROM k
ON CONFLICT (key_id) DO UPDATE SET (tokens, allowed, updated_at) = (
    SELECT CASE WHEN r.level >= 1 THEN r.level - 1 ELSE r.level END,
           r.level >= 1,
           greatest(b.updated_at, now())
    FROM (
        SELECT least($4::float8, b.tokens
                     + greatest(0, extract(epoch FROM now() - b.updated_at)) * $3::float8)
            AS level
    ) AS r
)
RETURNING allowed, tokens"""


class RateLimiter:
    def __init__(self, rate_per_s: float, burst: int) -> None:
        self.rate = rate_per_s
        self.burst = burst

    def wait(self, allowed: bool, tokens: float) -> float:
        """The seconds to wait, from what the UPSERT returned: 0 when the token was taken."""
        if allowed:
            return 0.0
        return max(0.0, (1 - float(tokens)) / self.rate)

    @staticmethod
    def retry_after_header(wait_s: float) -> str:
        return str(max(1, math.ceil(wait_s)))
