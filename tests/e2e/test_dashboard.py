"""The association's dashboard in headless Chromium, against the real stack fed by the market
simulator: sign-in, figures, live updates without a reload, the flows map, consumer health."""

from __future__ import annotations

import asyncio
import dataclasses
import re

import orjson
import pytest

from consumers.analytics import TOPICS, Analytics
from marketplace.settings import Settings
from producers.simulator.driver import simulate
from tests.browser import browser
from tests.integration.api_helpers import consumer_running, register, running_api
from tests.integration.test_matcher import matcher_running

pytestmark = pytest.mark.integration

SCREENSHOTS = Settings().local_dir / "screenshots"
PROPOSALS = (
    "Number((document.querySelector('[data-kpi=proposals] b') || {}).textContent"
    "?.replace(/,/g, '') || 'NaN')"
)


async def test_the_dashboard_follows_a_simulated_market_live(settings: Settings) -> None:
    quick = dataclasses.replace(settings, match_answer_period_s=60.0)
    operator = await register(quick, "operator", "Cluster Council Gabrovo")
    async with (
        consumer_running(quick, "analytics", TOPICS, Analytics),
        running_api(quick) as client,
        matcher_running(quick),
        browser() as page,
    ):
        await page.goto(str(client.make_url("/dashboard")))
        # A wrong key is refused with the API's reason.
        await page.eval(
            "document.getElementById('key').value = 'mk_nobody_nothing';"
            "document.querySelector('#login-form button').click(); true"
        )
        await page.wait_for("document.getElementById('login-error').textContent.length > 0")
        assert await page.eval("document.getElementById('app').hidden") is True

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
        await page.eval(
            f"document.getElementById('key').value = {orjson.dumps(operator.key).decode()};"
            "document.querySelector('#login-form button').click(); window.__stayed = true; true"
        )
        await page.wait_for("document.getElementById('app').hidden === false")
        first = await page.wait_for(f"{PROPOSALS} >= 0 && {PROPOSALS} + 1", 60) - 1
        # New proposals show up without a reload (the marker set before survives).
        await page.wait_for(f"{PROPOSALS} > {first}", 90)
        assert await page.eval("window.__stayed === true") is True
        await page.wait_for("document.querySelectorAll('#map line.flow').length > 0", 90)
        await page.wait_for("document.querySelector('#groups table') !== null")
        assert "tonnes" in await page.eval("document.getElementById('cards').textContent")
        # Partner feedback (#11): its figures and its panel (empty, or one bar per region with
        # its number of answers: the database is shared with the feedback tests).
        for kpi in ("deliveries", "response_rate", "mean_rating"):
            assert await page.eval(f"document.querySelector('[data-kpi={kpi}]') !== null"), kpi
        rating = await page.eval("document.querySelector('[data-kpi=mean_rating] b').textContent")
        assert re.fullmatch(r"n/a|[1-5](\.\d+)?", rating), rating
        panel = await page.eval("document.getElementById('feedback').textContent")
        assert "Nothing in this period" in panel or re.search(r"\(\d+\)", panel), panel
        status = await page.eval("document.getElementById('status').textContent")
        assert status.startswith("updated")
        await page.screenshot(SCREENSHOTS / "dashboard.png")
        stats = await market
        assert stats.counts["proposed"] > 0
