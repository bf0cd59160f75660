"""The pages for people in Debian's headless Chromium, against the real stack (API with the pages,
projector, PostgreSQL, Kafka): an invited person in Bulgarian chooses a password, posts an offer
with the keyboard alone, sees a refusal next to its field in Bulgarian, finds a code by words,
and withdraws the offer; axe-core finds no WCAG 2.1 A/AA violation on any page visited, and no
page scrolls sideways at a phone's width."""

from __future__ import annotations

import pytest
from playwright.async_api import Browser, Page, ViewportSize, expect

from marketplace import accounts
from marketplace.db import connect
from marketplace.settings import Settings
from producers.web.app import create_service
from tests.e2e.pages import checked_page, loopback_page
from tests.integration.api_helpers import eventually, register, running_api

pytestmark = pytest.mark.integration

PASSWORD = "кирпич и вълна 2026"  # noqa: S105 - a test account's
PHONE: ViewportSize = {"width": 360, "height": 780}


async def tab_to(page: Page, element_id: str, limit: int = 80) -> None:
    """Presses Tab until the element with this id has the focus (the keyboard alone)."""
    for _ in range(limit):
        if await page.evaluate("document.activeElement && document.activeElement.id") == element_id:
            return
        await page.keyboard.press("Tab")
    raise AssertionError(f"Tab never reached #{element_id}")


async def type_into(page: Page, element_id: str, text: str) -> None:
    await tab_to(page, element_id)
    await page.keyboard.type(text)


async def checked(page: Page, name: str) -> None:
    """axe-core on the page as it is, its width, a screenshot and the counts (checked_page)."""
    await checked_page(page, f"people-{name}")


async def test_an_sme_in_bulgarian_posts_and_withdraws_an_offer_with_the_keyboard(
    settings: Settings, browser: Browser
) -> None:
    sme = await register(settings, "sme", "Хлебозавод Пловдив ООД")
    conn = await connect(settings)
    try:
        person = await accounts.create_person(
            conn,
            partner_id=sme.partner_id,
            email=f"ana-{sme.partner_id[:8]}@bakery.example",
            display_name="Ана Петрова",
            role="admin",
            locale="bg",
        )
        token = await accounts.issue_link(conn, person.person_id, "invite")
    finally:
        await conn.close()
    async with (
        running_api(settings, create_service) as client,
        loopback_page(browser, locale="bg-BG", bypass_csp=True) as page,
    ):
        base = str(client.make_url("/app"))
        await page.goto(f"{base}/invite/{token}")
        await expect(page.locator("h1")).to_have_text("Добре дошли, Ана Петрова")
        await checked(page, "invitation")
        await type_into(page, "password", PASSWORD)
        await type_into(page, "repeat", PASSWORD)
        await page.keyboard.press("Enter")
        await expect(page.locator("h1")).to_have_text("Вашите обяви")
        await checked(page, "listings-empty")

        # To the form with the keyboard: the link, then Enter.
        await page.locator("body").focus()
        await tab_to_link(page, "/app/offers/new")
        await page.keyboard.press("Enter")
        await expect(page.locator("h1")).to_have_text("Публикувайте оферта")
        await checked(page, "offer-form")

        # A code found by words (the List of Waste's English titles, with the codes).
        await type_into(page, "code-search", "textile fibres")
        await expect(page.locator("#code-results")).to_contain_text("040222")

        await type_into(page, "material-code", "040222")
        await type_into(page, "material-description", "памучни изрезки")
        await type_into(page, "terms-quantity-amount", "много")  # not a number
        await type_into(page, "terms-price-amount", "-15")
        # Chromium's date fields take the digits in its own locale's order (the machine's ICU
        # default, month first, whatever the page's language): checked, not assumed.
        await type_into(page, "terms-available-start", "12012026")
        await type_into(page, "terms-available-end", "01312027")
        await expect(page.locator("#terms-available-start")).to_have_value("2026-12-01")
        await expect(page.locator("#terms-available-end")).to_have_value("2027-01-31")
        await type_into(page, "location-lat", "42.15")
        await type_into(page, "location-lon", "24.75")
        await type_into(page, "location-region", "BG421")
        await page.keyboard.press("Enter")

        # Refused (the partner may not be projected yet: then the page says so and we retry).
        error = page.locator("#terms-quantity-amount-error")
        await expect(error).to_have_text("Въведете число.")
        await expect(page.locator("#terms-quantity-amount")).to_have_attribute(
            "aria-invalid", "true"
        )
        await expect(page.locator("#material-description")).to_have_value("памучни изрезки")
        await checked(page, "offer-form-refused")

        await tab_to(page, "terms-quantity-amount")
        await page.keyboard.press("Control+A")
        await page.keyboard.type("12.5")
        async with page.expect_navigation():
            await page.keyboard.press("Enter")
        errors = await page.locator(".error").all_inner_texts()
        assert not errors, errors
        await expect(page.locator("h1")).to_have_text("Вашите обяви")

        async def listed() -> bool:
            await page.reload()
            return await page.locator("tbody tr").count() == 1

        await eventually(listed, 30)
        row = page.locator("tbody tr")
        await expect(row).to_contain_text("040222")
        await expect(row).to_contain_text("памучни изрезки")
        await expect(row).to_contain_text("отворена")
        await checked(page, "listings")

        await page.locator("tbody tr button").focus()
        async with page.expect_navigation():
            await page.keyboard.press("Enter")

        async def withdrawn() -> bool:
            await page.reload()
            return "оттеглена" in (await page.locator("tbody tr").inner_text())

        await eventually(withdrawn, 30)

        for path, name in (("/account", "account"), ("/members", "members")):
            await page.goto(base + path)
            await checked(page, name)

    # The same pages at a phone's width: nothing scrolls sideways.
    async with (
        running_api(settings, create_service) as client,
        loopback_page(browser, locale="sv-SE", viewport=PHONE, bypass_csp=True) as phone,
    ):
        base = str(client.make_url("/app"))
        await phone.goto(f"{base}/login")
        await expect(phone.locator("h1")).to_have_text("Logga in")
        await checked(phone, "login-phone-sv")
        await phone.locator("#email").fill(person.email)
        await phone.locator("#password").fill(PASSWORD)
        await phone.locator("#password").press("Enter")
        # The account's language (Bulgarian) wins over the browser's once signed in.
        await expect(phone.locator("h1")).to_have_text("Вашите обяви")
        for path in ("/", "/offers/new", "/account", "/members"):
            await phone.goto(base + path)
            await checked(phone, "phone" + (path.rstrip("/").replace("/", "-") or "-listings"))


async def tab_to_link(page: Page, href: str, limit: int = 40) -> None:
    for _ in range(limit):
        await page.keyboard.press("Tab")
        found = await page.evaluate(
            "document.activeElement && document.activeElement.getAttribute('href')"
        )
        if found == href:
            return
    raise AssertionError(f"Tab never reached the link to {href}")
