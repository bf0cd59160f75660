"""The password-reset page in Debian's headless Chromium against the real stack (API with the
pages, PostgreSQL): asking for a reset link is throttled like signing in. The same answer comes
whether or not the address has an account; after RESETS_PER_EMAIL asks for one address within
the window the next waits (429, said on the page, no link issued), while another address from
the same browser still gets its answer. axe-core finds no WCAG 2.1 A/AA violation in any state,
at a desktop's and a phone's width."""

from __future__ import annotations

import uuid

import pytest
from playwright.async_api import Browser, Page, expect

from marketplace import accounts
from marketplace.db import connect
from marketplace.settings import Settings
from producers.web.app import create_service
from tests.e2e.pages import checked_page, loopback_page
from tests.e2e.test_people_pages import PHONE
from tests.integration.api_helpers import register, running_api

pytestmark = pytest.mark.integration


async def ask(page: Page, base: str, email: str) -> int:
    """Sends the reset form for `email` with the keyboard; the answer's HTTP status."""
    await page.goto(f"{base}/reset/")
    await page.locator("#email").fill(email)
    async with page.expect_navigation() as sent:
        await page.locator("#email").press("Enter")
    response = await sent.value
    assert response is not None
    return response.status


async def test_asking_for_reset_links_is_throttled_per_address(
    settings: Settings, browser: Browser
) -> None:
    sme = await register(settings, "sme", "Bageri Plovdiv OOD")
    email = f"reset-{uuid.uuid4().hex[:10]}@bakery.example"
    conn = await connect(settings)
    try:
        person = await accounts.create_person(
            conn, partner_id=sme.partner_id, email=email, display_name="Ana", role="admin"
        )
    finally:
        await conn.close()
    async with (
        running_api(settings, create_service) as client,
        loopback_page(browser, locale="en-GB", bypass_csp=True) as page,
    ):
        base = str(client.make_url("/app"))
        await page.goto(f"{base}/reset/")
        await expect(page.locator("h1")).to_have_text("Forgot your password?")
        await checked_page(page, "reset")
        for _ in range(accounts.RESETS_PER_EMAIL):
            assert await ask(page, base, email) == 200
            await expect(page.locator("[role=status]")).to_contain_text("If an account has")
        await checked_page(page, "reset-sent")
        # One more for the same address (written otherwise: the count is per address): waits.
        assert await ask(page, base, f"  {email.upper()} ") == 429
        await expect(page.locator("#reset-error")).to_have_text(
            "Too many requests for a link. Wait 15 minutes and try again."
        )
        await expect(page.locator("#email")).to_be_visible()  # the form stays
        await checked_page(page, "reset-throttled")
        # An address without an account is counted the same way, apart: it gets its answer.
        assert await ask(page, base, f"nobody-{uuid.uuid4().hex[:8]}@example.org") == 200
    async with (
        running_api(settings, create_service) as client,
        loopback_page(browser, locale="sv-SE", viewport=PHONE, bypass_csp=True) as phone,
    ):
        base = str(client.make_url("/app"))
        assert await ask(phone, base, email) == 429
        await checked_page(phone, "reset-throttled-phone-sv")

    conn = await connect(settings)
    try:
        issued = await conn.fetchval(
            "SELECT count(*) FROM one_time_links WHERE person_id = $1 AND purpose = 'reset'",
            uuid.UUID(person.person_id),
        )
    finally:
        await conn.close()
    assert issued == accounts.RESETS_PER_EMAIL  # the throttled asks issued no link
