"""The association's dashboard in headless Chromium, against the real stack fed by the market
simulator: sign-in, figures, live updates without a reload, the flows map, consumer health."""

from __future__ import annotations

import asyncio
import dataclasses
import re

import pytest
from playwright.async_api import Browser, expect

from consumers.analytics import TOPICS, Analytics
from marketplace.settings import Settings
from producers.simulator.driver import simulate
from tests.e2e.pages import checked_page, loopback_page
from tests.integration.api_helpers import consumer_running, register, running_api
from tests.integration.test_matcher import matcher_running

pytestmark = pytest.mark.integration

PROPOSALS = (
    "Number((document.querySelector('[data-kpi=proposals] b') || {}).textContent"
    "?.replace(/,/g, '') || 'NaN')"
)


async def test_the_dashboard_follows_a_simulated_market_live(
    settings: Settings, browser: Browser
) -> None:
    quick = dataclasses.replace(settings, match_answer_period_s=60.0)
    operator = await register(quick, "operator", "Cluster Council Gabrovo")
    async with (
        consumer_running(quick, "analytics", TOPICS, Analytics),
        running_api(quick) as client,
        matcher_running(quick),
        loopback_page(browser, bypass_csp=True) as page,
    ):
        await page.goto(str(client.make_url("/dashboard")))
        await checked_page(page, "dashboard-sign-in")
        # A wrong key is refused with the API's reason.
        await page.locator("#key").fill("mk_nobody_nothing")
        await page.locator("#login-form button").click()
        await expect(page.locator("#login-error")).not_to_be_empty()
        assert await page.locator("#app").get_attribute("hidden") is not None

        market = asyncio.create_task(
            simulate(
                quick,
                api_url=str(client.make_url("/")),
                rate=5.0,
                duration_s=25.0,
                seed=31,
                smes=30,
                carriers=2,
            )
        )
        await page.evaluate("window.__stayed = true")
        await page.locator("#key").fill(operator.key)
        await page.locator("#login-form button").click()
        await expect(page.locator("#app")).to_be_visible()
        await page.wait_for_function(f"{PROPOSALS} >= 0", timeout=60_000)
        first = await page.evaluate(PROPOSALS)
        # New proposals show up without a reload (the marker set before survives).
        await page.wait_for_function(f"{PROPOSALS} > {first}", timeout=90_000)
        assert await page.evaluate("window.__stayed === true") is True
        await expect(page.locator("#map line.flow").first).to_be_attached(timeout=90_000)
        await expect(page.locator("#groups table")).to_be_attached()
        await expect(page.locator("#cards")).to_contain_text("tonnes")
        # Partner feedback (#11): its figures and its panel (empty, or one bar per region with
        # its number of answers: the database is shared with the feedback tests).
        for kpi in ("deliveries", "response_rate", "mean_rating"):
            await expect(page.locator(f"[data-kpi={kpi}]")).to_be_attached()
        rating = await page.locator("[data-kpi=mean_rating] b").text_content() or ""
        assert re.fullmatch(r"n/a|[1-5](\.\d+)?", rating), rating
        panel = await page.locator("#feedback").text_content() or ""
        assert "Nothing in this period" in panel or re.search(r"\(\d+\)", panel), panel
        await expect(page.locator("#status")).to_have_text(re.compile(r"^updated"))
        await checked_page(page, "dashboard")
        stats = await market
        assert stats.counts["proposed"] > 0
