"""A standing agreement through the pages only (#19), in Debian's headless Chromium against the
real stack (API with the pages, projector, matcher with the scheduler, notifier, job creator):
a joinery offers a steady monthly flow of offcuts and a pellet mill asks for one, both from the
agreements page; both accept the proposed standing agreement; the mill sees the month's
delivery scheduled, confirms that it arrived and gives its feedback; then it saves a search of
the market, runs it again and deletes it. axe-core finds no WCAG 2.1 A/AA violation on these
pages, the forms and the answers included, and none scrolls sideways at a phone's width."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from playwright.async_api import Browser, Locator, Page, ViewportSize, expect

from marketplace.settings import Settings
from producers.web.app import create_service
from tests.e2e.pages import checked_page, loopback_page
from tests.e2e.test_whole_deal import invitation, join
from tests.integration.api_helpers import register, running_api
from tests.integration.notify_helpers import notifier_running
from tests.integration.test_auction import auction_running
from tests.integration.test_matcher import matcher_running

pytestmark = pytest.mark.integration

PHONE: ViewportSize = {"width": 360, "height": 780}


async def no_violations(page: Page, name: str) -> None:
    """axe-core on the page as it is, its width, a screenshot and the counts (checked_page)."""
    await checked_page(page, f"agreement-{name}")


async def post(page: Page) -> None:
    """Sends the listing form; until the projector has the organisation the page refuses (403):
    back to the filled form, and again."""
    for _ in range(60):
        async with page.expect_navigation():
            await page.locator("form.stack button[type=submit]").click()
        if "posted=" in page.url:
            return
        assert not await page.locator("#form-errors").count(), await page.content()
        await page.wait_for_timeout(500)
        await page.go_back()
    raise AssertionError("the form was never accepted")


async def until_shown(page: Page, target: Locator, limit: int = 120) -> None:
    """Reloads the page (which is not live) until `target` is there."""
    for _ in range(limit):
        if await target.count():
            return
        await page.wait_for_timeout(500)
        await page.reload()
    raise AssertionError(f"never shown: {target}")


async def test_a_standing_agreement_is_set_up_delivered_and_rated_on_the_pages(
    settings: Settings, browser: Browser
) -> None:
    quick = dataclasses.replace(settings, scheduler_interval_s=0.2)
    joinery = await register(settings, "sme", "Snickeri Leksand AB")
    mill = await register(settings, "sme", "Pellets Mora AB")
    seller_token = await invitation(settings, joinery, "Anna Dahl", "en")
    buyer_token = await invitation(settings, mill, "Olof Berg", "en")
    # A spot of its own (Jämtland, by uuid), away from other tests' listings.
    n = uuid.uuid4().int
    lat, lon = 62.5 + n % 1000 / 2000, 13.0 + n // 1000 % 1000 / 500
    today = datetime.now(UTC).date()
    until = (today + timedelta(days=120)).isoformat()
    async with (
        running_api(quick, create_service) as client,
        matcher_running(quick),
        notifier_running(quick),
        auction_running(quick),
        loopback_page(browser, bypass_csp=True) as seller,
        loopback_page(browser, bypass_csp=True) as buyer,
    ):
        base = str(client.make_url("/app"))
        await join(seller, base, seller_token)
        await join(buyer, base, buyer_token)

        # Both set up a steady flow from the agreements page: the form comes set to a monthly
        # flow from today.
        await seller.goto(f"{base}/agreements")
        await no_violations(seller, "list-empty")
        async with seller.expect_navigation():
            await seller.get_by_role("link", name="Offer a steady flow").click()
        await expect(seller.locator("#terms-recurrence-period")).to_have_value("month")
        await expect(seller.locator("#terms-recurrence-starts")).to_have_value(today.isoformat())
        for field, value in {
            "#material-code": "030105",
            "#material-description": "pine offcuts and shavings",
            "#terms-quantity-amount": "6",
            "#terms-price-amount": "10",
            "#terms-available-start": today.isoformat(),
            "#terms-available-end": until,
            "#location-lat": f"{lat}",
            "#location-lon": f"{lon}",
        }.items():
            await seller.locator(field).fill(value)
        await no_violations(seller, "new-offer")
        await post(seller)

        await buyer.goto(f"{base}/agreements")
        async with buyer.expect_navigation():
            await buyer.get_by_role("link", name="Ask for a steady flow").click()
        for field, value in {
            "#material-code": "030105",
            "#material-description": "wood shavings for pellets",
            "#terms-quantity-amount": "6",
            "#terms-max_price-amount": "90",
            "#terms-wanted-start": today.isoformat(),
            "#terms-wanted-end": until,
            "#location-lat": f"{lat + 0.1}",
            "#location-lon": f"{lon}",
            "#terms-max_distance_km": "150",
        }.items():
            await buyer.locator(field).fill(value)
        await post(buyer)

        # The standing agreement is proposed to both; both accept it.
        await seller.goto(f"{base}/proposals")
        await buyer.goto(f"{base}/proposals")
        card = seller.locator("[id^=proposal-]").first
        await expect(card).to_contain_text("030105", timeout=60_000)
        match_id = (await card.get_attribute("id") or "").removeprefix("proposal-")
        await expect(card).to_contain_text("t every month · a standing agreement")
        other = buyer.locator(f"#proposal-{match_id}")
        await expect(other).to_contain_text("You buy")
        async with seller.expect_navigation():
            await card.get_by_role("button", name="Accept").click()
        async with buyer.expect_navigation():
            await other.get_by_role("button", name="Accept").click()

        # The mill sees the agreement and, once the month's delivery is scheduled, its period.
        await buyer.goto(f"{base}/agreements")
        entry = buyer.locator(f"#agreement-{match_id}")
        await until_shown(buyer, entry.filter(has_text="1 period scheduled"))
        await expect(entry).to_contain_text("6 t every month")
        await no_violations(buyer, "list")
        async with buyer.expect_navigation():
            await entry.get_by_role("link", name="Deliveries and feedback").click()
        await expect(buyer.locator("#delivery-1")).to_contain_text("not yet confirmed")
        await no_violations(buyer, "to-confirm")

        # The material arrived: the mill confirms it, then rates the delivery.
        await buyer.locator("#note-1").fill("all of it, dry")
        async with buyer.expect_navigation():
            await buyer.locator("#confirm-1").click()
        await expect(buyer.locator("p.notice")).to_contain_text("The delivery is confirmed")
        await until_shown(buyer, buyer.locator("#rate-1"))
        await expect(buyer.locator("#delivery-1 .delivered")).to_contain_text("by the buyer")
        await no_violations(buyer, "to-rate")
        # Sent without a reason first: the refusal stands next to the field.
        await buyer.locator("#rating-1-5").check()
        await buyer.locator("#comment-1").fill("dry shavings, on the day agreed")
        async with buyer.expect_navigation():
            await buyer.locator("#rate-1").click()
        await expect(buyer.locator("#reason-1-error")).to_be_visible()
        await expect(buyer.locator("#reason-1")).to_have_attribute("aria-invalid", "true")
        await no_violations(buyer, "refused")
        await buyer.locator("#reason-1").select_option("timeliness")
        async with buyer.expect_navigation():
            await buyer.locator("#rate-1").click()
        await expect(buyer.locator("p.notice")).to_contain_text("your feedback is recorded")
        answer = buyer.locator("#delivery-1 .feedback")
        await until_shown(buyer, answer)
        await expect(answer).to_contain_text("5 of 5, mostly for timeliness")
        await expect(buyer.locator("#rate-1")).to_have_count(0)
        await no_violations(buyer, "rated")

        # The joinery (the seller) sees the delivery confirmed and may rate it too.
        await seller.goto(f"{base}/agreements/{match_id}")
        await expect(seller.locator("#delivery-1 .delivered")).to_contain_text("by the buyer")
        await expect(seller.locator("#confirm-1")).to_have_count(0)
        await expect(seller.locator("#rate-1")).to_be_visible()

        # The mill keeps a search of the market, runs it again and deletes it.
        await buyer.goto(f"{base}/market?q=030105&kind=offer")
        await buyer.locator("#search-name").fill("Shavings, offered")
        async with buyer.expect_navigation():
            await buyer.get_by_role("button", name="Save this search").click()
        await expect(buyer.locator("p.notice")).to_contain_text("The search is saved.")
        saved = buyer.locator("#saved-searches tbody tr").first
        await expect(saved).to_contain_text("Shavings, offered")
        await no_violations(buyer, "saved-searches")
        async with buyer.expect_navigation():
            await saved.get_by_role("link", name="Run").click()
        await expect(buyer.locator("#q")).to_have_value("030105")
        await expect(buyer.locator("#kind")).to_have_value("offer")
        await no_violations(buyer, "market-saveable")

        # At a phone's width nothing of these pages scrolls sideways.
        await buyer.set_viewport_size(PHONE)
        for path in ("/agreements", f"/agreements/{match_id}", "/market/searches"):
            await buyer.goto(f"{base}{path}")
            width = await buyer.evaluate("document.documentElement.scrollWidth")
            assert width <= PHONE["width"], f"{path} is {width}px wide on a phone"
        await no_violations(buyer, "saved-searches-phone")
        async with buyer.expect_navigation():
            await buyer.get_by_role("button", name="Delete").first.click()
        await expect(buyer.locator("p.notice")).to_contain_text("The search is deleted.")
        await expect(buyer.locator("#saved-searches")).to_have_count(0)
