"""Live push on the real stack: notifications published on partners.notifications, stored by
the projector, pushed by the API over WebSocket and SSE to their partner only; a client that
disconnects and resumes after its last notification id misses nothing and gets nothing twice."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp.test_utils import TestClient

from marketplace.settings import Settings
from schemas.partners import NotificationIssued
from tests.integration.api_helpers import Partner, register, running_api
from tests.integration.notify_helpers import publish

pytestmark = pytest.mark.integration
Client = TestClient[Any, Any]


def notes(partner: Partner, n: int) -> list[NotificationIssued]:
    return [
        NotificationIssued(
            notification_id=str(uuid.uuid4()),
            partner_id=partner.partner_id,
            kind="match.proposed",
            subject_id=str(uuid.uuid4()),
            cause_event_id=str(uuid.uuid4()),
            summary=f"live {i}",
        )
        for i in range(n)
    ]


async def receive(ws: aiohttp.ClientWebSocketResponse, n: int) -> list[dict[str, Any]]:
    got: list[dict[str, Any]] = []
    while len(got) < n:
        message = await asyncio.wait_for(ws.receive_json(), 30)
        assert message["type"] == "notification", message
        got.append(message["notification"])
    return got


async def test_a_websocket_client_that_reconnects_misses_nothing(settings: Settings) -> None:
    partner, other = await register(settings, "sme"), await register(settings, "sme")
    async with running_api(settings) as client:
        ws = await client.ws_connect("/v1/notifications/ws", headers=partner.auth)
        assert (await ws.receive_json())["type"] == "ready"
        first = notes(partner, 3)
        await publish(settings, *first)
        got = await receive(ws, 3)
        assert [g["notification_id"] for g in got] == [n.notification_id for n in first]
        assert got[0]["summary"] == "live 0"
        await ws.close()
        # Published while nobody listens, plus someone else's.
        missed = notes(partner, 4)
        await publish(settings, *missed, *notes(other, 2))
        # A browser-style reconnect: no header, the key and the resume point in a first message.
        ws = await client.ws_connect("/v1/notifications/ws")
        await ws.send_json(
            {"type": "auth", "api_key": partner.key, "after": got[-1]["notification_id"]}
        )
        assert (await ws.receive_json())["type"] == "ready"
        resumed = await receive(ws, 4)
        assert [g["notification_id"] for g in resumed] == [n.notification_id for n in missed]
        live = notes(partner, 1)
        await publish(settings, *live)
        assert [g["notification_id"] for g in await receive(ws, 1)] == [live[0].notification_id]
        await ws.close()
        # From the start: everything, in order, once, and only this partner's.
        ws = await client.ws_connect("/v1/notifications/ws", headers=partner.auth)
        assert (await ws.receive_json())["type"] == "ready"
        everything = await receive(ws, 8)
        assert [g["notification_id"] for g in everything] == [
            n.notification_id for n in first + missed + live
        ]
        assert {g["partner_id"] for g in everything} == {partner.partner_id}
        await ws.close()


async def test_a_websocket_without_a_valid_key_is_closed(settings: Settings) -> None:
    async with running_api(settings) as client:
        ws = await client.ws_connect("/v1/notifications/ws")
        await ws.send_json({"type": "auth", "api_key": "mk_nope_nope"})
        error = await ws.receive_json()
        assert error == {"type": "error", "status": 401, "detail": "a valid API key is needed"}
        closing = await ws.receive()
        assert closing.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
        assert ws.close_code == 4401


async def sse_events(response: aiohttp.ClientResponse, n: int) -> list[dict[str, str]]:
    events: list[dict[str, str]] = []
    current: dict[str, str] = {}
    while len(events) < n:
        line = (await asyncio.wait_for(response.content.readline(), 30)).decode().rstrip("\n")
        if not line:
            if "data" in current:
                events.append(current)
            current = {}
            continue
        if line.startswith(":"):
            continue
        field, _, value = line.partition(": ")
        current[field] = value
    return events


async def test_server_sent_events_resume_after_the_last_event_id(settings: Settings) -> None:
    partner = await register(settings, "sme")
    async with running_api(settings) as client:
        first, later = notes(partner, 2), notes(partner, 3)
        response = await client.get("/v1/notifications/stream", headers=partner.auth)
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/event-stream")
        await publish(settings, *first)
        got = await sse_events(response, 2)
        assert [e["id"] for e in got] == [n.notification_id for n in first]
        assert got[0]["event"] == "match.proposed"
        assert orjson.loads(got[1]["data"])["summary"] == "live 1"
        response.close()
        await publish(settings, *later)
        resumed = await client.get(
            "/v1/notifications/stream", headers=partner.auth | {"Last-Event-ID": got[-1]["id"]}
        )
        again = await sse_events(resumed, 3)
        assert [e["id"] for e in again] == [n.notification_id for n in later]
        resumed.close()
        assert (await client.get("/v1/notifications/stream")).status == 401
