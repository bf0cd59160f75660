"""A logistics firm's pages in Debian's headless Chromium, against the real stack (API with the
pages, projector, matcher, notifier, job creator, auctioneer, scheduler): a haulier's person,
in English, declares the firm's coverage on the page (a refusal next to its field first), sees a
confirmed match's transport job appear without reloading, quotes with the keyboard alone
(refused, then sent, revised, withdrawn, sent again) and sees the job won on the awards page,
live. axe-core finds no WCAG 2.1 A/AA violation on any state of these pages, and none scrolls
sideways at a phone's width. The SMEs agree through the API."""

from __future__ import annotations

import dataclasses
import re
import uuid

import pytest
from playwright.async_api import Browser, Page, ViewportSize, expect

from marketplace import accounts
from marketplace.db import connect
from marketplace.settings import Settings
from marketplace.translate.auction import job_id_for
from producers.web.app import create_service
from tests.e2e.pages import checked_page, loopback_page
from tests.integration.api_helpers import register, running_api
from tests.integration.kafka_helpers import end_offsets
from tests.integration.notify_helpers import notifier_running
from tests.integration.test_auction import auction_running, get
from tests.integration.test_matcher import matcher_running, matches_about, near, offer, request

pytestmark = pytest.mark.integration

PASSWORD = "timber and gravel 2026"  # noqa: S105 - a test account's
PHONE: ViewportSize = {"width": 360, "height": 780}


async def focused(page: Page, attribute: str) -> str | None:
    found = await page.evaluate(
        f"document.activeElement && document.activeElement.getAttribute({attribute!r})"
    )
    return str(found) if found is not None else None


async def tab_to(page: Page, element_id: str, limit: int = 120) -> None:
    """Presses Tab until the element with this id has the focus (the keyboard alone)."""
    for _ in range(limit):
        if await focused(page, "id") == element_id:
            return
        await page.keyboard.press("Tab")
    raise AssertionError(f"Tab never reached #{element_id}")


async def tab_to_link(page: Page, href: str, limit: int = 120) -> None:
    for _ in range(limit):
        await page.keyboard.press("Tab")
        if await focused(page, "href") == href:
            return
    raise AssertionError(f"Tab never reached the link to {href}")


async def retype(page: Page, element_id: str, text: str) -> None:
    await tab_to(page, element_id)
    await page.keyboard.press("Control+A")
    await page.keyboard.type(text)


async def checked(page: Page, name: str) -> None:
    """axe-core on the page as it is, its width, a screenshot and the counts (checked_page)."""
    await checked_page(page, f"logistics-{name}")


async def test_a_haulier_declares_coverage_quotes_with_the_keyboard_and_wins(
    settings: Settings, browser: Browser
) -> None:
    quick = dataclasses.replace(settings, auction_bidding_period_s=60.0, scheduler_interval_s=0.2)
    seller = await register(settings, "sme", "Folie Norr AB")
    buyer = await register(settings, "sme", "Granulat Luleå AB")
    firm = await register(settings, "logistics", "Åkeri Rättvik AB")
    # A spot of its own in Jämtland, away from the other tests' Arctic listings and jobs.
    n = uuid.uuid4().int
    here = {"lat": 62.0 + n % 1000 / 2000, "lon": 13.0 + n // 1000 % 1000 / 500}
    conn = await connect(settings)
    try:
        person = await accounts.create_person(
            conn,
            partner_id=firm.partner_id,
            email=f"lars-{firm.partner_id[:8]}@haulier.example",
            display_name="Lars Öberg",
            role="admin",
        )
        token = await accounts.issue_link(conn, person.person_id, "invite")
    finally:
        await conn.close()
    since = await end_offsets(settings, "market.matches")
    async with (
        running_api(quick, create_service) as client,
        matcher_running(quick) as group,
        notifier_running(quick),
        auction_running(quick),
        loopback_page(browser, locale="en-GB", bypass_csp=True) as page,
    ):
        base = str(client.make_url("/app"))
        await page.goto(f"{base}/invite/{token}")
        await page.locator("#password").fill(PASSWORD)
        await page.locator("#repeat").fill(PASSWORD)
        await page.locator("#repeat").press("Enter")
        await expect(page.locator("h1")).not_to_contain_text("Welcome")

        await page.goto(f"{base}/logistics")
        await expect(page.locator("h1")).to_have_text("Transport jobs")
        await expect(page.locator("#jobs")).to_contain_text("Declare your coverage first")
        await checked(page, "jobs-no-coverage")

        # The coverage form, reached with the keyboard; a refusal first.
        await page.locator("body").focus()
        await tab_to_link(page, "/app/logistics/coverage")
        await page.keyboard.press("Enter")
        await expect(page.locator("h1")).to_have_text("Coverage")
        await checked(page, "coverage-empty")
        await retype(page, "depots-0-location-lat", f"{here['lat']}")
        await retype(page, "depots-0-location-lon", f"{here['lon']}")
        await retype(page, "depots-0-radius_km", "-5")
        await retype(page, "capacity_t", "24")
        await tab_to(page, "vehicle-rigid_truck")
        await page.keyboard.press("Space")
        await tab_to(page, "save-coverage")
        await page.keyboard.press("Enter")
        await expect(page.locator("#depots-0-radius_km-error")).to_have_text("Enter more than 0.")
        await expect(page.locator("#depots-0-radius_km")).to_have_attribute("aria-invalid", "true")
        await expect(page.locator("#vehicle-rigid_truck")).to_be_checked()
        await checked(page, "coverage-refused")
        await retype(page, "depots-0-radius_km", "40")
        async with page.expect_navigation():
            await page.keyboard.press("Enter")
        await expect(page.locator("p.notice")).to_have_text("Your coverage is saved.")
        await expect(page.locator("#depots-0-radius_km")).to_have_value("40")
        await checked(page, "coverage-saved")
        await get(client, firm, "/v1/carrier/capabilities")

        await page.goto(f"{base}/logistics/jobs")
        await expect(page.locator("#jobs")).not_to_contain_text("Declare your coverage first")
        await checked(page, "jobs-empty")

        # Two SMEs agree through the API: the job appears without a reload.
        r = await client.post("/v1/offers", json=offer(here, 5, 10), headers=seller.auth)
        assert r.status == 202, await r.text()
        offer_id = (await r.json())["offer_id"]
        r = await client.post(
            "/v1/requests", json=request(near(here, 0.1), 5, 90), headers=buyer.auth
        )
        assert r.status == 202, await r.text()
        ((_, proposed),) = await matches_about(
            quick, since, {offer_id}, {"market.match.proposed.v1"}, 1, group
        )
        match_id = proposed["match_id"]
        for sme in (seller, buyer):
            await get(client, sme, f"/v1/matches/{match_id}")
            r = await client.post(f"/v1/matches/{match_id}/accept", headers=sme.auth)
            assert r.status == 202, await r.text()
        job_id = job_id_for(match_id)
        card = page.locator(f"#job-{job_id}")
        await expect(card).to_contain_text("150102", timeout=60_000)
        await expect(card).to_contain_text("You have not quoted yet.")
        await checked(page, "jobs-live")

        # Quoting with the keyboard alone: to the job, a refusal, then the quote.
        await page.locator("body").focus()
        await tab_to_link(page, f"/app/logistics/jobs/{job_id}")
        await page.keyboard.press("Enter")
        await expect(page.locator("h2").last).to_have_text("Send a quote")
        await checked(page, "job")
        await retype(page, "price-amount", "a lot")
        await retype(page, "co2e_kg", "40")
        async with page.expect_navigation():
            await page.keyboard.press("Enter")
        await expect(page.locator("#price-amount-error")).to_have_text("Enter a number.")
        await expect(page.locator("#co2e_kg")).to_have_value("40")
        await checked(page, "job-refused")

        await retype(page, "price-amount", "900")
        async with page.expect_navigation():
            await page.keyboard.press("Enter")
        await expect(page.locator("p.notice")).to_have_text("Your quote is sent.")
        rows = page.locator("tbody tr")
        await expect(rows).to_have_count(1)
        await expect(rows).to_contain_text("900.00 EUR")
        await expect(page.locator("h2").last).to_have_text("Revise your quote")
        await checked(page, "job-quoted")

        # Revised: the same quote, a new price.
        await retype(page, "price-amount", "850")
        async with page.expect_navigation():
            await page.keyboard.press("Enter")
        await expect(rows).to_have_count(1)
        await expect(rows).to_contain_text("850.00 EUR")

        # Withdrawn, with the keyboard: the row's button.
        withdraw = await page.locator("tbody tr button").get_attribute("id")
        assert withdraw is not None
        await page.locator("body").focus()
        await tab_to(page, withdraw)
        async with page.expect_navigation():
            await page.keyboard.press("Enter")
        await expect(page.locator("p.notice")).to_have_text("Your quote is withdrawn.")
        await expect(rows).to_contain_text("withdrawn")
        await expect(page.locator("h2").last).to_have_text("Send a quote")
        await checked(page, "job-withdrawn")

        # A new quote, which wins at the deadline.
        await retype(page, "price-amount", "800")
        await retype(page, "co2e_kg", "35")
        async with page.expect_navigation():
            await page.keyboard.press("Enter")
        await expect(rows).to_have_count(2)
        await expect(page.locator("tbody")).to_contain_text("800.00 EUR")

        await page.locator("body").focus()
        await tab_to_link(page, "/app/logistics/awards")
        await page.keyboard.press("Enter")
        await expect(page.locator("h1")).to_have_text("Awards")
        await checked(page, "awards-none")
        award = page.locator(f"#award-{job_id}")
        await expect(award).to_contain_text("won at 800.00 EUR", timeout=120_000)
        await checked(page, "awards-won")

        await page.goto(f"{base}/logistics/jobs/{job_id}")
        await expect(page.locator("#job-status")).to_have_text("You won this job.")
        await checked(page, "job-won")

        # At a phone's width nothing scrolls sideways.
        await page.set_viewport_size(PHONE)
        for path, name in (
            ("/logistics/jobs", "jobs-phone"),
            (f"/logistics/jobs/{job_id}", "job-phone"),
            ("/logistics/coverage", "coverage-phone"),
        ):
            await page.goto(base + path)
            await checked(page, name)
        await page.goto(base + "/logistics/awards")
        await expect(award).to_be_visible()
        await checked(page, "awards-phone")
    assert re.fullmatch(r"[0-9a-f-]+", job_id)
