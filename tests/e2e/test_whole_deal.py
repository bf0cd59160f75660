"""A whole deal through the pages only (#19 item 4), in Debian's headless Chromium against the
real stack (API with the pages, projector, matcher, notifier, job creator, auctioneer,
scheduler): a bakery in Plovdiv posts an offer in Bulgarian, a firm in Sweden posts a matching
request in Swedish, both see the proposal appear without reloading and accept it, a haulier
declares its coverage, sees the transport job arrive, quotes and wins, and both SMEs see the
award. Three people, three browser contexts, no API call."""

from __future__ import annotations

import dataclasses
import re
import uuid

import pytest
from playwright.async_api import Browser, Page, expect

from marketplace import accounts
from marketplace.db import connect
from marketplace.settings import Settings
from producers.web.app import create_service
from tests.e2e.pages import checked_page, loopback_page
from tests.integration.api_helpers import Partner, register, running_api
from tests.integration.notify_helpers import notifier_running
from tests.integration.test_auction import auction_running
from tests.integration.test_matcher import matcher_running

pytestmark = pytest.mark.integration

PASSWORD = "bread, film and gravel"  # noqa: S105 - a test account's


async def invitation(settings: Settings, partner: Partner, name: str, locale: str) -> str:
    conn = await connect(settings)
    try:
        person = await accounts.create_person(
            conn,
            partner_id=partner.partner_id,
            email=f"{uuid.uuid4().hex[:10]}@deal.example",
            display_name=name,
            role="admin",
            locale=locale,
        )
        return await accounts.issue_link(conn, person.person_id, "invite")
    finally:
        await conn.close()


async def join(page: Page, base: str, token: str) -> None:
    await page.goto(f"{base}/invite/{token}")
    await page.locator("#password").fill(PASSWORD)
    await page.locator("#repeat").fill(PASSWORD)
    async with page.expect_navigation():
        await page.locator("#repeat").press("Enter")


async def no_violations(page: Page, name: str) -> None:
    """axe-core on the page as it is, its width, a screenshot and the counts (checked_page)."""
    await checked_page(page, f"deal-{name}")


async def test_two_smes_and_a_haulier_make_a_whole_deal_on_the_pages(
    settings: Settings, browser: Browser
) -> None:
    quick = dataclasses.replace(settings, auction_bidding_period_s=45.0, scheduler_interval_s=0.2)
    bakery = await register(settings, "sme", "Хлебозавод Пловдив ООД")
    buyer = await register(settings, "sme", "Biogas Rättvik AB")
    haulier = await register(settings, "logistics", "Åkeri Mora AB")
    seller_token = await invitation(settings, bakery, "Мария Иванова", "bg")
    buyer_token = await invitation(settings, buyer, "Karin Lind", "sv")
    haulier_token = await invitation(settings, haulier, "Lars Öberg", "sv")
    # A spot of its own (Dalarna, by uuid), away from other tests' listings and jobs.
    n = uuid.uuid4().int
    lat, lon = 60.5 + n % 1000 / 2000, 14.0 + n // 1000 % 1000 / 500
    async with (
        running_api(quick, create_service) as client,
        matcher_running(quick),
        notifier_running(quick),
        auction_running(quick),
        loopback_page(browser, locale="bg-BG", bypass_csp=True) as seller,
        loopback_page(browser, locale="sv-SE", bypass_csp=True) as buyer_page,
        loopback_page(browser, locale="sv-SE", bypass_csp=True) as carrier,
    ):
        base = str(client.make_url("/app"))
        await join(seller, base, seller_token)
        await join(buyer_page, base, buyer_token)
        await join(carrier, base, haulier_token)

        # The haulier declares where it drives (on its coverage page).
        await carrier.goto(f"{base}/logistics/coverage")
        await carrier.locator("#depots-0-location-lat").fill(f"{lat}")
        await carrier.locator("#depots-0-location-lon").fill(f"{lon}")
        await carrier.locator("#depots-0-radius_km").fill("80")
        await carrier.locator("#capacity_t").fill("24")
        await carrier.locator("#vehicle-rigid_truck").check()
        async with carrier.expect_navigation():
            await carrier.locator("#save-coverage").click()
        await expect(carrier.locator("p.notice")).to_be_visible()
        await carrier.goto(f"{base}/logistics/jobs")

        # The bakery offers, in Bulgarian; the firm in Sweden asks, in Swedish.
        await seller.goto(f"{base}/offers/new")
        await expect(seller.locator("h1")).to_have_text("Публикувайте оферта")
        for field, value in {
            "#material-code": "150102",
            "#material-description": "стреч фолио, балирано",
            "#terms-quantity-amount": "5",
            "#terms-price-amount": "10",
            "#terms-available-start": "2026-12-01",
            "#terms-available-end": "2027-03-31",
            "#location-lat": f"{lat}",
            "#location-lon": f"{lon}",
        }.items():
            await seller.locator(field).fill(value)

        async def post(page: Page) -> None:
            # Until the projector has the organisation, the page refuses (403) and says so:
            # back to the filled form, and again.
            for _ in range(60):
                async with page.expect_navigation():
                    await page.locator("form.stack button[type=submit]").click()
                if "posted=" in page.url:
                    return
                assert not await page.locator("#form-errors").count(), await page.content()
                await page.wait_for_timeout(500)
                await page.go_back()
            raise AssertionError("the form was never accepted")

        await post(seller)
        await buyer_page.goto(f"{base}/requests/new")
        await expect(buyer_page.locator("h1")).to_have_text("Lägg upp en förfrågan")
        for field, value in {
            "#material-code": "150102",
            "#material-description": "plastfilm till rötning",
            "#terms-quantity-amount": "5",
            "#terms-max_price-amount": "90",
            "#terms-wanted-start": "2026-12-15",
            "#terms-wanted-end": "2027-03-01",
            "#location-lat": f"{lat + 0.1}",
            "#location-lon": f"{lon}",
            "#terms-max_distance_km": "150",
        }.items():
            await buyer_page.locator(field).fill(value)
        await post(buyer_page)

        # Both watch their proposals: the proposal arrives without a reload.
        await seller.goto(f"{base}/proposals")
        await buyer_page.goto(f"{base}/proposals")
        card = seller.locator("[id^=proposal-]").first
        await expect(card).to_contain_text("150102", timeout=60_000)
        match_id = (await card.get_attribute("id") or "").removeprefix("proposal-")
        other = buyer_page.locator(f"#proposal-{match_id}")
        await expect(other).to_contain_text("Du köper")
        # Each sees on a map where the other side is: until both accept, only an area (the
        # other's coordinates are not in the page); the buyer looks at a phone's width.
        for page in (seller, buyer_page):
            figure = page.locator(f"#map-{match_id}")
            await expect(figure).to_have_attribute("data-exact", "no")
            await expect(figure.locator("svg[role=img] > title")).to_have_count(1)
            await expect(figure.locator("svg circle.area")).to_have_count(1)
            await expect(figure.locator("svg circle.them")).to_have_count(0)
            # The distance is rounded too (the exact figure would narrow the circle to a ring).
            distance = page.locator(f"#proposal-{match_id} dd.distance")
            await expect(distance).to_have_attribute("data-exact", "no")
        assert f"{lat:.4f}" not in await buyer_page.content()
        await expect(buyer_page.locator(f"#map-{match_id} figcaption")).to_contain_text("km")
        await buyer_page.set_viewport_size({"width": 360, "height": 740})
        box = await buyer_page.locator(f"#map-{match_id} svg").bounding_box()
        assert box is not None
        assert box["width"] >= 200
        assert box["x"] + box["width"] <= 360
        assert await buyer_page.evaluate("document.documentElement.scrollWidth") <= 360
        await no_violations(seller, "proposal-bg")
        await no_violations(buyer_page, "proposal-sv")
        async with seller.expect_navigation():
            await card.get_by_role("button", name="Приемане").click()
        async with buyer_page.expect_navigation():
            await other.get_by_role("button", name="Acceptera").click()

        # The haulier sees the transport job arrive, quotes, and wins at the deadline.
        job = carrier.locator("[id^=job-]").first
        await expect(job).to_contain_text("150102", timeout=60_000)
        async with carrier.expect_navigation():
            await job.locator("a").first.click()
        await carrier.locator("#price-amount").fill("700")
        await carrier.locator("#co2e_kg").fill("30")
        async with carrier.expect_navigation():
            await carrier.locator("#price-amount").press("Enter")
        await carrier.goto(f"{base}/logistics/awards")
        await expect(carrier.locator("[id^=award-]").first).to_contain_text(
            "700.00 EUR", timeout=120_000
        )
        await no_violations(carrier, "award-sv")

        # Both SMEs see the award on their proposal, in their language.
        await expect(seller.locator(f"#transport-{match_id}")).to_contain_text(
            "Åkeri Mora AB", timeout=60_000
        )
        await expect(buyer_page.locator(f"#transport-{match_id}")).to_contain_text(
            "Åkeri Mora AB", timeout=60_000
        )
        await expect(seller.locator(f"#transport-{match_id}")).to_contain_text("700.00 EUR")
        # Confirmed: the map shows the other side's exact place, in the drawing and in words.
        exact = buyer_page.locator(f"#map-{match_id}")
        await expect(exact).to_have_attribute("data-exact", "yes")
        await expect(exact.locator("svg circle.them")).to_have_count(1)
        await expect(exact.locator("svg circle.area")).to_have_count(0)
        await expect(exact.locator("figcaption")).to_contain_text(f"{lat:.4f}")
        distance = buyer_page.locator(f"#proposal-{match_id} dd.distance")
        await expect(distance).to_have_attribute("data-exact", "yes")
        await expect(distance).to_have_text(re.compile(r"^\d+ km$"))
        await no_violations(buyer_page, "confirmed-map-sv")
        await no_violations(seller, "awarded-bg")
