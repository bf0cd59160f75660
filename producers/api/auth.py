"""Authentication by API key on every partner route, then the per-key rate limit (shared by
every API process: producers/api/ratelimit.py).

Both are one statement, read on every call (nothing is cached, so a revoked key is refused from
the next call on): the key's row, the UPSERT of its bucket when the key is valid, and, for a
write, what the write path would read next on its own round trip: the stored answer of its
Idempotency-Key (`replay_middleware`) and the organisation's data key that seals its personal
fields (`writes.sealed`). Those two are read in the same snapshot as the key, as they would have
been a moment later; the write path falls back to its own reads whenever the request is not the
one they were read for (another subject, no key yet)."""

from __future__ import annotations

import hashlib

from aiohttp import web

from marketplace.partners import Principal, parse_key
from marketplace.translate.shredding import PARTNER
from producers.api.context import LIMITER, POOL, PRINCIPAL
from producers.api.problems import Handler, Problem
from producers.api.ratelimit import TAKE_FROM_K
from producers.api.writes import ANSWER_READ, OWN_DATA_KEY, WRITE_METHODS, replay_key

PUBLIC = frozenset(
    {"/healthz", "/readyz", "/openapi.json", "/dashboard", "/audit/public-key"}
    # The SME page's files carry no data; the live WebSocket authenticates in its handler
    # (browsers cannot set headers on a WebSocket, so its first message may carry the key).
    | {"/sme", "/v1/notifications/ws"}
)

# $1 key id, $2 SHA-256 of the secret (as marketplace/partners.py stores it), $3 rate per second,
# $4 burst, $5 the Idempotency-Key to read the answer of (NULL: none), $6 whether to read the
# organisation's data key. The hash is compared in SQL so that a wrong secret never takes a
# token: a comparison of SHA-256 digests, whose timing tells nothing about the secret.
_PREAMBLE = f"""
WITH k AS (
    SELECT partner_id, role FROM api_keys
    WHERE key_id = $1 AND revoked_at IS NULL AND secret_hash = $2
), bucket AS ({TAKE_FROM_K})
SELECT k.partner_id, k.role, bucket.allowed, bucket.tokens,
       a.request_hash IS NOT NULL AS answer_found, a.request_hash, a.status, a.body, a.headers,
       a.expired, d.sealed_key
FROM k CROSS JOIN bucket
LEFT JOIN LATERAL (
    SELECT request_hash, status, body, headers, held_until < now() AS expired
    FROM idempotency_keys WHERE partner_id = k.partner_id AND key = $5::text
) AS a ON true
LEFT JOIN data_keys AS d ON $6::bool AND d.subject = 'partner:' || k.partner_id
"""  # noqa: S608 - constant pieces
_ANSWER_COLUMNS = ("request_hash", "status", "body", "headers", "expired")


def presented_key(request: web.Request) -> str | None:
    auth = request.headers.get("Authorization", "")
    if auth[:7].lower() == "bearer ":
        return auth[7:].strip()
    return request.headers.get("X-API-Key")


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.path in PUBLIC or request.path == "/app" or request.path.startswith("/app/"):
        # The pages for people authenticate by session (producers/web/session.py).
        return await handler(request)
    challenge = {"WWW-Authenticate": 'Bearer realm="circular-exchange"'}
    key = presented_key(request)
    if not key:
        raise Problem(
            401, "an API key is required (Authorization: Bearer <key>)", headers=challenge
        )
    parsed = parse_key(key)
    if parsed is None:
        raise Problem(401, "the API key is not valid or was revoked", headers=challenge)
    key_id, secret = parsed
    idempotency_key = replay_key(request)
    write = request.method in WRITE_METHODS
    limiter = request.app[LIMITER]
    # The bucket is in PostgreSQL: one limit per key, however many API processes serve it.
    row = await request.app[POOL].fetchrow(
        _PREAMBLE,
        key_id,
        hashlib.sha256(secret.encode()).digest(),
        limiter.rate,
        float(limiter.burst),
        idempotency_key,
        write,
    )
    if row is None:
        raise Problem(401, "the API key is not valid or was revoked", headers=challenge)
    wait = limiter.wait(row["allowed"], row["tokens"])
    if wait > 0:
        raise Problem(
            429,
            "too many requests for this API key; slow down",
            headers={"Retry-After": limiter.retry_after_header(wait)},
        )
    found = Principal(partner_id=row["partner_id"], role=row["role"], key_id=key_id)
    request[PRINCIPAL] = found
    if idempotency_key is not None:
        answer = {c: row[c] for c in _ANSWER_COLUMNS} if row["answer_found"] else None
        request[ANSWER_READ] = (found.partner_id, idempotency_key, answer)
    if write:
        request[OWN_DATA_KEY] = (PARTNER + found.partner_id, row["sealed_key"])
    return await handler(request)


def require_role(request: web.Request, *roles: str) -> None:
    role = request[PRINCIPAL].role
    if role not in roles:
        raise Problem(
            403, f"a {role} partner cannot do this; it needs the role {' or '.join(roles)}"
        )
