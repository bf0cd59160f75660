"""Web pages in Debian's headless Chromium, driven by Playwright, that can reach this machine only.

The browser is the one infra/chromium.sh installs (never one Playwright downloads), with a
throw-away profile per launch. Every request of a page whose host is not loopback is aborted by
the context's routes before it is sent (plain requests, and WebSockets); Chromium's own background
traffic is switched off by flags, and a dead proxy catches anything that would still get past."""

from __future__ import annotations

import os
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from urllib.parse import urlsplit

from playwright.async_api import (
    Browser,
    BrowserContext,
    Page,
    Playwright,
    Route,
    ViewportSize,
    WebSocketRoute,
)

from marketplace.settings import ROOT

LOOPBACK = frozenset({"127.0.0.1", "::1", "localhost"})
# What a request stopped by the guard fails with (a real network error would say otherwise).
BLOCKED = "net::ERR_BLOCKED_BY_CLIENT"
FLAGS = (
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-quic",
    "--disable-gpu",
    "--disable-dev-shm-usage",
)
# A dead proxy behind the routes: whatever they miss goes to a closed loopback port instead of
# out, the browser's own requests included (Debian's build was seen asking update.googleapis.com
# and accounts.google.com despite the flags). Chromium never sends loopback through a proxy.
DEAD_PROXY = "http://127.0.0.1:9"
VIEWPORT: ViewportSize = {"width": 1280, "height": 1000}


def chromium_path() -> str:
    found = subprocess.run(
        [str(ROOT / "infra" / "chromium.sh"), "path"],
        capture_output=True,
        text=True,
        check=False,
    )
    if found.returncode != 0:
        raise RuntimeError(
            "Chromium is needed for the web page tests: run `infra/chromium.sh install` "
            "(`make test` does)"
        )
    return found.stdout.strip()


def is_loopback(url: str) -> bool:
    try:
        host = urlsplit(url).hostname
    except ValueError:
        return False
    return host in LOOPBACK


def leaves_machine(url: str) -> bool:
    return not is_loopback(url)


async def launch(playwright: Playwright, proxy: str = DEAD_PROXY) -> Browser:
    """Debian's Chromium, headless; its sandbox is off only when running as root."""
    return await playwright.chromium.launch(
        executable_path=chromium_path(),
        headless=True,
        # Not Playwright's proxy option: that one would send loopback through the proxy too.
        args=[*FLAGS, f"--proxy-server={proxy}"],
        chromium_sandbox=os.geteuid() != 0,
    )


async def _abort(route: Route) -> None:
    await route.abort("blockedbyclient")


async def _refuse(ws: WebSocketRoute) -> None:
    # Never connected to the server: the page sees its socket closed.
    await ws.close(code=1008, reason="only loopback")


async def keep_on_loopback(context: BrowserContext) -> None:
    """Abort, before it is sent, every request of the context's pages to a host not loopback."""
    await context.route(leaves_machine, _abort)
    await context.route_web_socket(leaves_machine, _refuse)


@asynccontextmanager
async def loopback_page(
    browser: Browser,
    locale: str = "en-GB",
    viewport: ViewportSize = VIEWPORT,
    bypass_csp: bool = False,
) -> AsyncIterator[Page]:
    """A page in a context of its own, speaking `locale` (navigator.languages and
    Accept-Language), whose requests to anything but this machine are aborted. `bypass_csp`
    lets a test inject axe-core into pages whose Content-Security-Policy forbids it."""
    # Service workers are blocked: their requests would not go through the context's routes.
    context = await browser.new_context(
        locale=locale, viewport=viewport, service_workers="block", bypass_csp=bypass_csp
    )
    try:
        await keep_on_loopback(context)
        yield await context.new_page()
    finally:
        await context.close()


AXE = ROOT / "infra" / "web" / "node_modules" / "axe-core" / "axe.min.js"


async def accessibility_violations(page: Page) -> list[dict[str, object]]:
    """What axe-core finds against WCAG 2.1 A and AA on the page as it is now (axe-core from
    infra/web/package-lock.json, injected; the page's context must bypass its CSP)."""
    if not AXE.is_file():
        raise RuntimeError("axe-core is missing: run `infra/web.sh install` (`make setup` does)")
    await page.add_script_tag(path=str(AXE))
    found = await page.evaluate(
        """async () => {
            const r = await axe.run(document, {runOnly: {type: "tag",
                values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]}});
            return r.violations.map(v => ({id: v.id, impact: v.impact,
                nodes: v.nodes.map(n => n.target.join(" "))}));
        }"""
    )
    return list(found)
