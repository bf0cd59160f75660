"""A partner's webhook endpoints (register, list, rotate the secret, delete) and its dead
letters (list, redeliver). Secrets are shown once, when made; stored encrypted with the
operator's key ring (marketplace/secretbox.py); never logged."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

import msgspec
from aiohttp import web

from marketplace import webhooks as store
from marketplace.core.notifications import KINDS
from marketplace.core.webhooks import parse_networks
from marketplace.logs import get_logger
from marketplace.secretbox import KeyRing, SecretKeyError, key_file
from producers.api.context import POOL, SETTINGS, principal
from producers.api.problems import Problem
from producers.api.writes import read_body

Kind = Annotated[str, msgspec.Meta(pattern=r"^[a-z][a-z0-9_.-]{0,63}$")]
MAX_ENDPOINTS = 10
log = get_logger(__name__)


def _ring(request: web.Request) -> KeyRing:
    try:
        return key_file(request.app[SETTINGS].webhook_keys_path).ring()
    except SecretKeyError as exc:
        log.error("webhook_secret_keys_unusable", error=str(exc))
        raise Problem(503, "webhook endpoints cannot be changed right now") from None


class EndpointIn(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    url: Annotated[str, msgspec.Meta(min_length=1, max_length=2000)]
    # The notification kinds to receive; empty: all of them.
    kinds: Annotated[tuple[Kind, ...], msgspec.Meta(max_length=32)] = ()
    description: Annotated[str, msgspec.Meta(max_length=200)] = ""


class RotateIn(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    # How long the current secret still signs beside the new one (default: the operator's).
    overlap_s: Annotated[float, msgspec.Meta(ge=0, le=30 * 86400)] | None = None


async def register(request: web.Request) -> web.StreamResponse:
    who = principal(request)
    body = await read_body(request, EndpointIn)
    unknown = sorted(set(body.kinds) - set(KINDS))
    if unknown:
        raise Problem(
            422, f"unknown notification kind {unknown[0]}; known: {', '.join(KINDS)}", field="kinds"
        )
    ring = _ring(request)
    allowed = parse_networks(request.app[SETTINGS].webhook_allow_networks)
    try:
        await store.check_target(body.url, allowed)
    except store.TargetRefused as exc:
        raise Problem(422, f"this URL cannot receive webhooks: {exc}", field="url") from None
    async with request.app[POOL].acquire() as conn:
        if len(await store.endpoints(conn, who.partner_id)) >= MAX_ENDPOINTS:
            raise Problem(409, f"at most {MAX_ENDPOINTS} endpoints per partner", kind="too-many")
        endpoint, secret = await store.register(
            conn, ring, who.partner_id, body.url, body.kinds, body.description
        )
    return web.json_response({**endpoint.public(), "secret": secret}, status=201)


async def list_endpoints(request: web.Request) -> web.StreamResponse:
    async with request.app[POOL].acquire() as conn:
        found = await store.endpoints(conn, principal(request).partner_id)
    return web.json_response({"items": [e.public() for e in found]})


async def get_endpoint(request: web.Request) -> web.StreamResponse:
    endpoint_id = request.match_info["id"]
    async with request.app[POOL].acquire() as conn:
        found = await store.endpoint(conn, principal(request).partner_id, endpoint_id)
    if found is None:
        raise Problem(404, f"no webhook endpoint {endpoint_id} of yours")
    return web.json_response(found.public())


async def rotate(request: web.Request) -> web.StreamResponse:
    endpoint_id = request.match_info["id"]
    body = await read_body(request, RotateIn, optional=True)
    overlap = (
        body.overlap_s
        if body.overlap_s is not None
        else request.app[SETTINGS].webhook_secret_overlap_s
    )
    ring = _ring(request)
    async with request.app[POOL].acquire() as conn:
        done = await store.rotate(
            conn, ring, principal(request).partner_id, endpoint_id, timedelta(seconds=overlap)
        )
    if done is None:
        raise Problem(404, f"no webhook endpoint {endpoint_id} of yours")
    endpoint, secret = done
    return web.json_response({**endpoint.public(), "secret": secret})


async def delete(request: web.Request) -> web.StreamResponse:
    endpoint_id = request.match_info["id"]
    async with request.app[POOL].acquire() as conn:
        deleted = await store.delete(conn, principal(request).partner_id, endpoint_id)
    if not deleted:
        raise Problem(404, f"no webhook endpoint {endpoint_id} of yours")
    return web.Response(status=204)


async def dead_letters(request: web.Request) -> web.StreamResponse:
    async with request.app[POOL].acquire() as conn:
        items = await store.dead_letters(conn, principal(request).partner_id)
    return web.json_response({"items": items})


async def redeliver(request: web.Request) -> web.StreamResponse:
    delivery_id = request.match_info["id"]
    async with request.app[POOL].acquire() as conn:
        done = await store.redeliver(conn, delivery_id, principal(request).partner_id)
    if not done:
        raise Problem(
            404, f"no dead-lettered delivery {delivery_id} of yours to a current endpoint"
        )
    return web.json_response({"status": "pending", "delivery_id": delivery_id})


# An endpoint's id is never `dead-letters`: that path is the dead letters' list, which answers
# only GET (405 with `Allow: GET, HEAD` to any other method, not a DELETE of an endpoint).
_ENDPOINT = "/v1/webhooks/{id:(?!dead-letters$)[^{}/]+}"


def add_routes(app: web.Application) -> None:
    app.router.add_post("/v1/webhooks", register)
    app.router.add_get("/v1/webhooks", list_endpoints)
    app.router.add_get("/v1/webhooks/dead-letters", dead_letters)
    app.router.add_post("/v1/webhooks/dead-letters/{id}/redeliver", redeliver)
    app.router.add_get(_ENDPOINT, get_endpoint)
    app.router.add_post(_ENDPOINT + "/rotate-secret", rotate)
    app.router.add_delete(_ENDPOINT, delete)
