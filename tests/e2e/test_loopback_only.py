"""The browser of the web page tests reaches this machine and nothing else: a page served on
loopback gets its own requests answered, while its requests, navigations and WebSockets to an
outside address are aborted by the context's routes before anything is sent."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from aiohttp import WSMsgType, web
from playwright.async_api import Browser, Error, Page, async_playwright

from tests.e2e.pages import BLOCKED, DEAD_PROXY, FLAGS, is_loopback, launch

# TEST-NET-1 (RFC 5737): documentation only, and never asked for here anyway.
OUTSIDE = "192.0.2.1"
FETCH = "([url, opts]) => fetch(url, opts).then(r => 'reached ' + r.type, e => e.name)"
SOCKET = """url => new Promise(done => {
  const ws = new WebSocket(url);
  let opened = false;
  ws.onopen = () => { opened = true; ws.send('ping'); };
  ws.onmessage = (m) => { ws.close(); done('echo ' + m.data); };
  ws.onclose = (e) => done(opened ? 'closed after opening' : 'refused ' + e.code);
})"""


async def _home(request: web.Request) -> web.Response:
    return web.Response(text="<p>here</p>", content_type="text/html")


async def _ping(request: web.Request) -> web.Response:
    return web.Response(text="pong")


async def _echo(request: web.Request) -> web.WebSocketResponse:
    ws = web.WebSocketResponse()
    await ws.prepare(request)
    async for msg in ws:
        if msg.type == WSMsgType.TEXT:
            await ws.send_str(msg.data)
    return ws


@asynccontextmanager
async def local_site() -> AsyncIterator[int]:
    app = web.Application()
    app.router.add_get("/", _home)
    app.router.add_get("/ping", _ping)
    app.router.add_get("/ws", _echo)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield runner.addresses[0][1]
    finally:
        await runner.cleanup()


@pytest.mark.parametrize(
    ("url", "loopback"),
    [
        ("http://127.0.0.1:8080/dashboard", True),
        ("http://localhost/", True),
        ("ws://[::1]:9000/v1/notifications/ws", True),
        ("https://user@localhost:1/", True),
        (f"http://{OUTSIDE}/", False),
        ("https://example.com/", False),
        ("http://127.0.0.1.nip.io/", False),
        ("http://localhost.example.com/", False),
        ("http://127.0.0.2/", False),
        ("http://[::1/", False),
        ("data:text/plain,hi", False),
    ],
)
def test_only_loopback_hosts_count_as_this_machine(url: str, loopback: bool) -> None:
    assert is_loopback(url) is loopback


async def test_a_page_reaches_this_machine_and_nothing_else(page: Page) -> None:
    async with local_site() as port:
        failed: list[tuple[str, str | None]] = []
        page.on("requestfailed", lambda r: failed.append((r.url, r.failure)))
        await page.goto(f"http://127.0.0.1:{port}/")
        assert await page.evaluate(FETCH, [f"http://127.0.0.1:{port}/ping", {}]) == "reached basic"
        assert await page.evaluate(
            FETCH, [f"http://localhost:{port}/ping", {"mode": "no-cors"}]
        ) == ("reached opaque")
        assert await page.evaluate(SOCKET, f"ws://127.0.0.1:{port}/ws") == "echo ping"

        # Outside: the fetch fails in the page, and it is the guard that stopped it.
        outside = [f"http://{OUTSIDE}/", f"https://{OUTSIDE}/", "https://example.com/"]
        for url in outside:
            assert await page.evaluate(FETCH, [url, {"mode": "no-cors"}]) == "TypeError", url
        assert [u for u, _ in failed] == outside
        assert all(f is not None and f.startswith(BLOCKED) for _, f in failed), failed
        # A WebSocket is never connected; the page sees it closed without opening.
        assert await page.evaluate(SOCKET, f"ws://{OUTSIDE}/") == "refused 1008"
        # Nor can the page navigate away from the machine.
        with pytest.raises(Error, match=BLOCKED):
            await page.goto(f"http://{OUTSIDE}/")


async def test_chromium_runs_without_background_networking(page: Page) -> None:
    await page.goto("chrome://version")
    command_line = (await page.locator("#command_line").text_content() or "").split()
    assert {*FLAGS, f"--proxy-server={DEAD_PROXY}"} <= set(command_line)


def _own_address() -> str | None:
    """This machine's address on its default route (a UDP connect sends nothing)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect((OUTSIDE, 9))
        except OSError:
            return None
        address: str = s.getsockname()[0]
    return None if address.startswith("127.") else address


async def test_what_the_routes_miss_goes_to_the_dead_proxy() -> None:
    """A context without the routes, and a proxy that listens instead of the dead one: a request
    to a host that is not loopback reaches the proxy, not the host. The host is this machine's
    own outside address, so that even a failing test sends nothing out."""
    own = _own_address()
    if own is None:
        pytest.skip("no address but loopback")
    asked: list[str] = []

    async def proxy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        asked.append((await reader.readline()).decode("latin-1").strip())
        writer.close()
        await writer.wait_closed()

    server = await asyncio.start_server(proxy, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        async with async_playwright() as playwright:
            browser: Browser = await launch(playwright, proxy=f"http://127.0.0.1:{port}")
            try:
                context = await browser.new_context()
                page = await context.new_page()
                url = f"http://{own}:18080/out"
                assert await page.evaluate(FETCH, [url, {"mode": "no-cors"}]) == "TypeError"
                await context.close()
            finally:
                await browser.close()
    finally:
        server.close()
        await server.wait_closed()
    assert f"GET {url} HTTP/1.1" in asked, asked
