"""The association's pages in Debian's headless Chromium against the real stack: a member of
staff registers an organisation, invites an admin to an existing one and sees the impact
figures, an auditor runs a verification and watches it end, a facilitator posts an offer for an
SME that consented and accepts the SME's proposal for it with the keyboard; axe-core finds no
WCAG 2.1 A/AA violation in any state of these pages (tests/e2e/pages.py checked_page: each
state's screenshot and axe-core's counts are kept), and none scrolls sideways on a phone."""

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
from tests.integration.api_helpers import projected, register, running_api
from tests.integration.notify_helpers import publish
from tests.integration.test_pages_facilitation import proposal

pytestmark = pytest.mark.integration

PASSWORD = "a long staff password 2026"  # noqa: S105 - a test account's


async def checked(page: Page, name: str) -> None:
    """axe-core, the width, the screenshot and the counts (tests/e2e/pages.py)."""
    await checked_page(page, f"staff-{name}")


async def invitation(settings: Settings, partner_id: str | None, role: str) -> str:
    conn = await connect(settings)
    try:
        person = await accounts.create_person(
            conn,
            partner_id=partner_id,
            email=f"s-{uuid.uuid4().hex[:10]}@example.org",
            display_name="Maria Nilsson",
            role=role,  # type: ignore[arg-type]
        )
        return await accounts.issue_link(conn, person.person_id, "invite")
    finally:
        await conn.close()


async def signed_in(page: Page, base: str, token: str) -> None:
    await page.context.clear_cookies()
    await page.goto(f"{base}/invite/{token}")
    await page.locator("#password").fill(PASSWORD)
    await page.locator("#repeat").fill(PASSWORD)
    async with page.expect_navigation():
        await page.locator("#repeat").press("Enter")


async def test_staff_auditor_and_facilitator_pages_in_chromium(
    settings: Settings, browser: Browser
) -> None:
    auditor = await register(settings, "auditor", "Revisorerna AB")
    facilitator = await register(settings, "facilitator", "Företagsstöd Gävleborg")
    sme = await register(settings, "sme", "Ljusdals Textil AB")
    buyer = await register(settings, "sme", "Isolering Bollnäs AB")
    tokens = {
        "operator": await invitation(settings, None, "operator"),
        "auditor": await invitation(settings, auditor.partner_id, "admin"),
        "facilitator": await invitation(settings, facilitator.partner_id, "member"),
    }
    async with (
        running_api(settings, create_service) as client,
        loopback_page(browser, locale="en-GB", bypass_csp=True) as page,
    ):
        await projected(settings, auditor, facilitator, sme, buyer)
        granted = await client.post(
            f"/v1/consents/{facilitator.partner_id}",
            headers={"Authorization": f"Bearer {sme.key}"},
        )
        assert granted.status == 202
        base = str(client.make_url("/app"))

        # Staff: register an organisation (refused first), then the impact figures.
        await signed_in(page, base, tokens["operator"])
        await page.goto(f"{base}/staff/organisations")
        await expect(page.locator("h1")).to_have_text("Organisations on the exchange")
        await checked(page, "organisations")
        await page.locator("#name").fill("Återbruk Sandviken AB")
        await page.locator("#country").fill("S")
        await page.locator("#admin_name").fill("Per Olsson")
        per = f"per-{uuid.uuid4().hex[:8]}@example.org"
        await page.locator("#admin_email").fill(per)
        async with page.expect_navigation():
            await page.locator("#admin_email").press("Enter")
        await expect(page.locator("#country-error")).to_be_visible()
        await expect(page.locator("#country")).to_have_attribute("aria-invalid", "true")
        await checked(page, "organisations-refused")
        await page.locator("#country").fill("SE")
        async with page.expect_navigation():
            await page.locator("#country").press("Enter")
        await expect(page.locator("#invite-link")).to_contain_text("/app/invite/")
        await checked(page, "organisations-registered")
        # Staff: an admin for an organisation already on the exchange (here the auditors').
        await page.goto(f"{base}/staff/organisations?q=Revisorerna")
        invite = page.locator(f'a[href="/app/staff/organisations/{auditor.partner_id}/admins"]')
        await expect(invite).to_have_text("Invite an admin Revisorerna AB")
        async with page.expect_navigation():
            await invite.click()
        await expect(page.locator("h1")).to_have_text("Invite an admin to Revisorerna AB")
        await checked(page, "admins")
        await page.locator("#display_name").fill("Olof Berg")
        await page.locator("#email").fill(per)  # Per has an account already: refused
        async with page.expect_navigation():
            await page.locator("#email").press("Enter")
        await expect(page.locator("#email-error")).to_contain_text("already has an account")
        await checked(page, "admins-refused")
        await page.locator("#email").fill(f"olof-{uuid.uuid4().hex[:8]}@example.org")
        async with page.expect_navigation():
            await page.locator("#email").press("Enter")
        await expect(page.locator("#invite-link")).to_contain_text("/app/invite/")
        await expect(page.locator("#people")).to_contain_text("Olof Berg")
        await checked(page, "admins-invited")
        await page.goto(f"{base}/staff/impact")
        await expect(page.locator("#headline")).to_contain_text("Offers posted")
        await checked(page, "impact")

        # An auditor: a verification of the last days, followed until it ends.
        await signed_in(page, base, tokens["auditor"])
        await page.goto(f"{base}/audit")
        await checked(page, "audit")
        await page.locator("#verify-from").fill("2026-01-01")
        async with page.expect_navigation():
            await page.locator("#verify").click()
        await expect(page.locator("#verdict")).to_be_visible(timeout=120_000)
        await checked(page, "audit-verified")

        # A facilitator: the SMEs that consented, and an offer for one of them.
        await signed_in(page, base, tokens["facilitator"])
        await page.goto(f"{base}/facilitation")
        await expect(page.locator(f"#sme-{sme.partner_id}")).to_contain_text("Ljusdals Textil")
        await checked(page, "facilitation")
        await page.goto(f"{base}/facilitation/{sme.partner_id}/offers/new")
        await checked(page, "facilitation-offer")
        await page.locator("#material-code").fill("040222")
        await page.locator("#material-description").fill("linen offcuts")
        await page.locator("#terms-quantity-amount").fill("several")
        await page.locator("#terms-price-amount").fill("0")
        await page.locator("#terms-available-start").fill("2026-12-01")
        await page.locator("#terms-available-end").fill("2027-01-31")
        await page.locator("#location-lat").fill("61.83")
        await page.locator("#location-lon").fill("16.08")
        async with page.expect_navigation():
            await page.locator("#location-lon").press("Enter")
        await expect(page.locator("#terms-quantity-amount-error")).to_be_visible()
        await checked(page, "facilitation-offer-refused")
        await page.locator("#terms-quantity-amount").fill("4")
        async with page.expect_navigation():
            await page.locator("#terms-quantity-amount").press("Enter")
        await expect(page.locator("h1")).to_have_text("SMEs that let you act for them")
        # The SME's proposal, accepted for it with the keyboard alone.
        offered = proposal(sme, buyer)
        await publish(settings, offered)
        deals = f"{base}/facilitation/{sme.partner_id}/deals"
        card = page.locator(f"#proposal-{offered.match_id}")
        for _ in range(60):
            await page.goto(deals)
            if await card.count():
                break
            await page.wait_for_timeout(500)
        await expect(card).to_contain_text("You sell")
        await expect(card.locator("dd.distance")).to_have_attribute("data-exact", "no")
        await checked(page, "facilitation-deals")
        accept = card.get_by_role("button", name="Accept")
        for _ in range(120):
            if await accept.evaluate("b => b === document.activeElement"):
                break
            await page.keyboard.press("Tab")
        assert await accept.evaluate("b => b === document.activeElement"), "Tab never got there"
        async with page.expect_navigation():
            await page.keyboard.press("Enter")
        await expect(page.locator(".notice")).to_have_text(
            "The answer is sent for Ljusdals Textil AB."
        )
        waiting = "you accepted; waiting for the other side"
        for _ in range(60):  # the page is not live: it shows the answer once projected
            if waiting in await card.inner_text():
                break
            await page.wait_for_timeout(500)
            await page.reload()
        await expect(card).to_contain_text(waiting)
        await checked(page, "facilitation-deals-answered")

    # At a phone's width.
    async with (
        running_api(settings, create_service) as client,
        loopback_page(browser, locale="en-GB", viewport=PHONE, bypass_csp=True) as phone,
    ):
        base = str(client.make_url("/app"))
        await signed_in(phone, base, await invitation(settings, None, "operator"))
        for path in ("/staff/organisations", "/staff/impact"):
            await phone.goto(base + path)
            await checked(phone, "phone" + path.replace("/", "-"))
