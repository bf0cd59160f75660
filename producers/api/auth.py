"""Authentication by API key on every partner route, then the per-key rate limit (shared by
every API process: producers/api/ratelimit.py)."""

from __future__ import annotations

from aiohttp import web

from marketplace.partners import authenticate
from producers.api.context import LIMITER, POOL, PRINCIPAL
from producers.api.problems import Handler, Problem

PUBLIC = frozenset(
    {"/healthz", "/readyz", "/openapi.json", "/dashboard", "/audit/public-key"}
    # The SME page's files carry no data; the live WebSocket authenticates in its handler
    # (browsers cannot set headers on a WebSocket, so its first message may carry the key).
    | {"/sme", "/v1/notifications/ws"}
)


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
    async with request.app[POOL].acquire() as conn:
        found = await authenticate(conn, key)
        if found is None:
            raise Problem(401, "the API key is not valid or was revoked", headers=challenge)
        # The bucket is in PostgreSQL: one limit per key, however many API processes serve it.
        wait = await request.app[LIMITER].take(conn, found.key_id)
    if wait > 0:
        raise Problem(
            429,
            "too many requests for this API key; slow down",
            headers={"Retry-After": request.app[LIMITER].retry_after_header(wait)},
        )
    request[PRINCIPAL] = found
    return await handler(request)


def require_role(request: web.Request, *roles: str) -> None:
    role = request[PRINCIPAL].role
    if role not in roles:
        raise Problem(
            403, f"a {role} partner cannot do this; it needs the role {' or '.join(roles)}"
        )
