"""A partner's own notifications: listed, streamed over Server-Sent Events, or pushed over a
WebSocket; each resumes after a given notification id, so a client that reconnects misses
nothing. The projector stores notifications and NOTIFYs the partner's id at commit; one
LISTENing connection per API process wakes that partner's streams."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg
import orjson
from aiohttp import WSMsgType, web

from marketplace.db import NOTIFY_CHANNEL, UNREACHABLE, connect
from marketplace.logs import get_logger
from marketplace.partners import Principal, authenticate
from marketplace.settings import Settings
from producers.api.auth import presented_key
from producers.api.context import POOL, SETTINGS, principal
from producers.api.problems import Problem

log = get_logger(__name__)
PAGE = 200
# With no news, a stream wakes this often anyway (SSE sends a comment line to keep proxies open;
# both re-read, in case a NOTIFY was lost while the listening connection was reconnecting).
IDLE_S = 15.0
AUTH_TIMEOUT_S = 10.0
WS_PATH = "/v1/notifications/ws"
STATIC = Path(__file__).resolve().parent / "static"


class Hub:
    """Who is waiting for news of which partner; woken by PostgreSQL NOTIFY."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.waiters: dict[str, set[asyncio.Event]] = {}

    def subscribe(self, partner_id: str) -> asyncio.Event:
        event = asyncio.Event()
        self.waiters.setdefault(partner_id, set()).add(event)
        return event

    def unsubscribe(self, partner_id: str, event: asyncio.Event) -> None:
        waiting = self.waiters.get(partner_id)
        if waiting is not None:
            waiting.discard(event)
            if not waiting:
                del self.waiters[partner_id]

    def _notified(self, _conn: Any, _pid: int, _channel: str, payload: object) -> None:
        for event in self.waiters.get(str(payload), ()):
            event.set()

    def _wake_all(self) -> None:
        for waiting in self.waiters.values():
            for event in waiting:
                event.set()

    async def run(self) -> None:
        while True:
            try:
                conn = await connect(self.settings, timeout_s=3600)
            except TimeoutError:
                continue
            closed = asyncio.Event()
            conn.add_termination_listener(lambda _c, lost=closed: lost.set())
            try:
                await conn.add_listener(NOTIFY_CHANNEL, self._notified)
                # Whatever happened while not listening is read now.
                self._wake_all()
                await closed.wait()
            except (asyncpg.PostgresError, *UNREACHABLE) as exc:
                log.warning("live_listener_lost", error=repr(exc))
            finally:
                with contextlib.suppress(Exception):
                    await conn.close()
            await asyncio.sleep(1)


HUB = web.AppKey("live_hub", Hub)


async def _hub_context(app: web.Application) -> AsyncIterator[None]:
    hub = Hub(app[SETTINGS])
    app[HUB] = hub
    task = asyncio.create_task(hub.run(), name="live-hub")
    yield
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


def as_json(row: Any) -> dict[str, Any]:
    body: dict[str, Any] = orjson.loads(row["body"])
    return {**body, "issued_at": row["issued_at"].isoformat()}


async def seq_after(pool: asyncpg.Pool, partner_id: str, after: str | None) -> int:
    """The position after the notification `after` (one of the partner's); 0: from the start."""
    if not after:
        return 0
    seq = await pool.fetchval(
        "SELECT seq FROM notifications WHERE notification_id = $1 AND partner_id = $2",
        after,
        partner_id,
    )
    if seq is None:
        raise Problem(404, f"no notification {after} of yours to resume after", field="after")
    return int(seq)


async def page(pool: asyncpg.Pool, partner_id: str, after_seq: int, limit: int) -> list[Any]:
    return list(
        await pool.fetch(
            "SELECT seq, body, issued_at FROM notifications WHERE partner_id = $1 AND seq > $2"
            " ORDER BY seq LIMIT $3",
            partner_id,
            after_seq,
            limit,
        )
    )


async def follow(
    request: web.Request,
    partner_id: str,
    after_seq: int,
    send: Callable[[dict[str, Any]], Awaitable[None]],
    idle: Callable[[], Awaitable[None]],
    done: asyncio.Event,
) -> None:
    """Sends every notification after `after_seq`, then each new one as it is stored."""
    hub, pool = request.app[HUB], request.app[POOL]
    news = hub.subscribe(partner_id)
    try:
        while not done.is_set():
            news.clear()
            rows = await page(pool, partner_id, after_seq, PAGE)
            for row in rows:
                await send(as_json(row))
                after_seq = row["seq"]
            if len(rows) == PAGE:
                continue
            closing = asyncio.ensure_future(done.wait())
            woken = asyncio.ensure_future(news.wait())
            finished, _ = await asyncio.wait(
                {closing, woken}, timeout=IDLE_S, return_when=asyncio.FIRST_COMPLETED
            )
            closing.cancel()
            woken.cancel()
            if not finished:
                await idle()
    finally:
        hub.unsubscribe(partner_id, news)


def _limit(request: web.Request) -> int:
    raw = request.query.get("limit", "100")
    if not raw.isdigit() or not 1 <= int(raw) <= 500:
        raise Problem(
            422, "limit is a whole number from 1 to 500", field="limit", kind="validation"
        )
    return int(raw)


async def list_notifications(request: web.Request) -> web.StreamResponse:
    who = principal(request)
    pool = request.app[POOL]
    after = await seq_after(pool, who.partner_id, request.query.get("after"))
    rows = await page(pool, who.partner_id, after, _limit(request))
    return web.json_response({"items": [as_json(r) for r in rows]})


async def sse(request: web.Request) -> web.StreamResponse:
    who = principal(request)
    after_id = request.headers.get("Last-Event-ID") or request.query.get("after")
    after = await seq_after(request.app[POOL], who.partner_id, after_id)
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-cache",
            "X-Accel-Buffering": "no",
        }
    )
    await response.prepare(request)
    await response.write(b"retry: 2000\n\n")

    async def send(item: dict[str, Any]) -> None:
        data = orjson.dumps(item).decode()
        await response.write(
            f"id: {item['notification_id']}\nevent: {item['kind']}\ndata: {data}\n\n".encode()
        )

    async def idle() -> None:
        await response.write(b": keep-alive\n\n")

    with contextlib.suppress(ConnectionResetError):
        await follow(request, who.partner_id, after, send, idle, asyncio.Event())
    return response


async def _ws_principal(
    request: web.Request, ws: web.WebSocketResponse
) -> tuple[Principal, str | None] | None:
    """From the Authorization header, or (browsers cannot set it) from the first message:
    {"type": "auth", "api_key": "...", "after": "<notification id>"}."""
    after = request.query.get("after")
    key = presented_key(request)
    if key is None:
        try:
            msg = await ws.receive(timeout=AUTH_TIMEOUT_S)
        except TimeoutError:
            return None
        if msg.type != WSMsgType.TEXT:
            return None
        try:
            first = orjson.loads(msg.data)
        except orjson.JSONDecodeError:
            return None
        if not isinstance(first, dict) or first.get("type") != "auth":
            return None
        key = str(first.get("api_key", ""))
        after = first.get("after") or after
    async with request.app[POOL].acquire() as conn:
        found = await authenticate(conn, key)
    if found is None:
        return None
    return found, str(after) if after else None


async def websocket(request: web.Request) -> web.StreamResponse:
    ws = web.WebSocketResponse(heartbeat=20.0, max_msg_size=16384)
    await ws.prepare(request)
    auth = await _ws_principal(request, ws)
    if auth is None:
        await ws.send_json({"type": "error", "status": 401, "detail": "a valid API key is needed"})
        await ws.close(code=4401, message=b"unauthorized")
        return ws
    who, after_id = auth
    try:
        after = await seq_after(request.app[POOL], who.partner_id, after_id)
    except Problem as exc:
        await ws.send_json({"type": "error", "status": exc.status, "detail": exc.detail})
        await ws.close(code=4404, message=b"unknown notification")
        return ws
    await ws.send_json({"type": "ready", "partner_id": who.partner_id})
    done = asyncio.Event()

    async def read() -> None:
        # The client sends nothing more; reading notices it closing.
        async for _ in ws:
            pass
        done.set()

    async def send(item: dict[str, Any]) -> None:
        await ws.send_str(orjson.dumps({"type": "notification", "notification": item}).decode())

    async def idle() -> None:
        return None

    reader = asyncio.create_task(read())
    try:
        with contextlib.suppress(ConnectionResetError):
            await follow(request, who.partner_id, after, send, idle, done)
    finally:
        reader.cancel()
        await asyncio.gather(reader, return_exceptions=True)
        await ws.close()
    return ws


async def sme_page(_request: web.Request) -> web.StreamResponse:
    return web.FileResponse(STATIC / "sme.html")


def add_routes(app: web.Application) -> None:
    app.cleanup_ctx.append(_hub_context)
    app.router.add_get("/sme", sme_page)
    app.router.add_get("/v1/notifications", list_notifications)
    app.router.add_get("/v1/notifications/stream", sse)
    app.router.add_get(WS_PATH, websocket)
