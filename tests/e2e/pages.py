"""Web pages in Debian's headless Chromium, driven by Playwright, that can reach this machine only.

The browser is the one infra/chromium.sh installs (never one Playwright downloads), with a
throw-away profile per launch. Every request of a page whose host is not loopback is aborted by
the context's routes before it is sent (plain requests, and WebSockets); Chromium's own background
traffic is switched off by flags, and a dead proxy catches anything that would still get past."""

from __future__ import annotations

import fcntl
import os
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import orjson
from playwright.async_api import (
    Browser,
    BrowserContext,
    Page,
    Playwright,
    Route,
    ViewportSize,
    WebSocketRoute,
)

from marketplace.settings import ROOT, Settings

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


async def accessibility_results(page: Page) -> dict[str, Any]:
    """What axe-core finds against WCAG 2.1 A and AA on the page as it is now (axe-core from
    infra/web/package-lock.json, injected; the page's context must bypass its CSP): the
    violations (rule, impact, the elements), and how many rules passed, could not be decided
    (incomplete: for a person to check) and did not apply."""
    if not AXE.is_file():
        raise RuntimeError("axe-core is missing: run `infra/web.sh install` (`make setup` does)")
    await page.add_script_tag(path=str(AXE))
    found = await page.evaluate(
        """async () => {
            const r = await axe.run(document, {runOnly: {type: "tag",
                values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]}});
            return {
                violations: r.violations.map(v => ({id: v.id, impact: v.impact,
                    nodes: v.nodes.map(n => n.target.join(" "))})),
                passes: r.passes.length,
                incomplete: r.incomplete.map(v => v.id),
                inapplicable: r.inapplicable.length,
                axe: r.testEngine.version,
            };
        }"""
    )
    return dict(found)


async def accessibility_violations(page: Page) -> list[dict[str, object]]:
    """The violations alone (see accessibility_results)."""
    return list((await accessibility_results(page))["violations"])


# Where the page tests leave what the closing note of #19 asks for (docs/developers/
# page-evidence.md): a screenshot per page and state, and axe-core's counts per page and state.
EVIDENCE = Settings.from_env().local_dir
SCREENSHOTS = EVIDENCE / "screenshots"
A11Y_REPORT = EVIDENCE / "a11y" / "report.json"


def _record(report: Path, name: str, entry: dict[str, Any]) -> None:
    """Adds (or replaces) one page's entry in the JSON report, under a lock: page tests of other
    runs may write the same report at the same time."""
    report.parent.mkdir(parents=True, exist_ok=True)
    with (report.parent / ".report.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        pages: dict[str, Any] = {}
        if report.is_file():
            try:
                pages = dict(orjson.loads(report.read_bytes()).get("pages", {}))
            except orjson.JSONDecodeError:
                pages = {}  # a report cut short by a killed run: started again
        pages[name] = entry
        ordered = dict(sorted(pages.items()))
        totals = {
            k: sum(int(p[k]) for p in ordered.values())
            for k in ("violations", "passes", "incomplete", "inapplicable")
        }
        body = {"pages": ordered, "page_count": len(ordered), "totals": totals}
        temporary = report.with_suffix(".tmp")
        temporary.write_bytes(orjson.dumps(body, option=orjson.OPT_INDENT_2))
        os.replace(temporary, report)


async def checked_page(page: Page, name: str, *, fits_width: bool = True) -> dict[str, Any]:
    """One page in one state, checked as #19 asks: axe-core finds no WCAG 2.1 A/AA violation
    (asserted), the page does not scroll sideways (`fits_width`), a full-page screenshot is
    written to SCREENSHOTS/<name>.png and axe-core's counts to A11Y_REPORT under `name`."""
    results = await accessibility_results(page)
    viewport = page.viewport_size or VIEWPORT
    width = int(await page.evaluate("document.documentElement.scrollWidth"))
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    shot = SCREENSHOTS / f"{name}.png"
    await page.screenshot(path=str(shot), full_page=True)
    entry = {
        "url": urlsplit(page.url).path,
        "viewport": f"{viewport['width']}x{viewport['height']}",
        "lang": await page.evaluate("document.documentElement.lang"),
        "violations": len(results["violations"]),
        "passes": results["passes"],
        "incomplete": len(results["incomplete"]),
        "incomplete_rules": results["incomplete"],
        "inapplicable": results["inapplicable"],
        "axe_core": results["axe"],
        "screenshot": str(shot.relative_to(EVIDENCE.parent))
        if shot.is_relative_to(EVIDENCE.parent)
        else str(shot),
        "checked_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    _record(A11Y_REPORT, name, entry)
    assert results["violations"] == [], f"{name}: {results['violations']}"
    if fits_width:
        assert width <= viewport["width"], f"{name} is {width}px wide in {viewport['width']}px"
    return entry
