"""A standing agreement's documents per delivery period on the pages (#22 item 3), in Debian's
headless Chromium against the real stack (API with the pages, projector, deals consumer): a
monthly agreement with two scheduled periods, each awarded to its own carrier. The first
period's carrier confirms its pickup and delivery from the agreement's deal room, where it sees
its own period only; the buyer finds both periods' documents on the agreement's page and
approves the first period's delivery report there; the seller issues that period's material
invoice there and downloads it as UBL XML; the carrier issues its transport invoice from the
deal room. axe-core finds no WCAG 2.1 A/AA violation on the agreement's page with its periods'
documents (at a desktop's width and at a phone's, without sideways scrolling) nor on the
carrier's room."""

from __future__ import annotations

import pytest
from playwright.async_api import Browser, expect

from consumers.deals import TOPICS, DealRooms
from marketplace.settings import Settings
from producers.web.app import create_service
from tests.e2e.pages import checked_page, loopback_page
from tests.e2e.test_deal_invoice_pages import download
from tests.e2e.test_whole_deal import invitation, join
from tests.integration.api_helpers import consumer_running, eventually, register, running_api
from tests.integration.test_agreement_documents import events
from tests.integration.test_deal_documents import BUYER_LEGAL, declare
from tests.integration.test_deal_invoices import CARRIER_LEGAL, SELLER_LEGAL
from tests.integration.test_deal_room import send

pytestmark = pytest.mark.integration


async def test_each_period_s_documents_on_the_pages(settings: Settings, browser: Browser) -> None:
    seller = await register(settings, "sme", "Pekarna Periods Pages")
    buyer = await register(settings, "sme", "Biogas Periods Pages")
    carrier = await register(settings, "logistics", "Trans Periods Pages")
    other_carrier = await register(settings, "logistics", "Other Periods Pages")
    tokens = [
        await invitation(settings, seller, "Мария Иванова", "en"),
        await invitation(settings, buyer, "Erik Dahl", "en"),
        await invitation(settings, carrier, "Lars Öberg", "en"),
    ]
    async with (
        running_api(settings, create_service) as client,
        consumer_running(settings, "deals", TOPICS, DealRooms),
    ):
        for who, legal in ((seller, SELLER_LEGAL), (buyer, BUYER_LEGAL), (carrier, CARRIER_LEGAL)):
            await declare(client, who, legal)
        match_id, _deliveries, story = events(seller, buyer, (carrier, other_carrier))
        await send(settings, story)

        async def in_place() -> bool:
            for who in (seller, carrier):
                r = await client.get(f"/v1/matches/{match_id}/deliveries", headers=who.auth)
                if r.status != 200 or not (await r.json())["periods"]:
                    return False
            return True

        await eventually(in_place, 60)
        base = str(client.make_url("/app"))
        agreement = f"{base}/agreements/{match_id}"
        room = f"{base}/deals/{match_id}"
        async with (
            loopback_page(browser, bypass_csp=True) as seller_page,
            loopback_page(browser, bypass_csp=True) as buyer_page,
            loopback_page(browser, bypass_csp=True) as carrier_page,
        ):
            pages = (seller_page, buyer_page, carrier_page)
            for page, token in zip(pages, tokens, strict=True):
                await join(page, base, token)

            # The carrier's room lists the period it carries, with its confirmation form.
            await carrier_page.goto(room)
            periods = carrier_page.locator("#periods")
            await expect(periods).to_contain_text("Period 2026-12")
            await expect(periods).not_to_contain_text("Period 2027-01")
            for stage, weight in (("pickup", "4.02"), ("delivery", "3.95")):
                await carrier_page.locator("#period-1-weight_t").fill(weight)
                async with carrier_page.expect_navigation():
                    await periods.get_by_role("button", name=f"Confirm the {stage}").click()
                await expect(periods).to_contain_text(f"{weight} t on")
            await checked_page(carrier_page, "agreement-periods-carrier-room")

            # The seller has the agreement's page open while the buyer approves.
            await seller_page.goto(agreement)
            await expect(seller_page.locator("#period-1-document-delivery")).to_contain_text(
                "draft, awaiting approval"
            )

            # The buyer: both periods' documents on the agreement's page; it approves the
            # first period's delivery report.
            await buyer_page.goto(agreement)
            first = buyer_page.locator("#delivery-1")
            await expect(first).to_contain_text("Documents of period 2026-12")
            await expect(buyer_page.locator("#delivery-2")).to_contain_text(
                "Documents of period 2027-01"
            )
            report = buyer_page.locator("#period-1-document-delivery")
            await expect(report).to_contain_text("draft, awaiting approval")
            async with buyer_page.expect_navigation():
                await report.get_by_role("button", name="Approve version").click()
            await expect(buyer_page.locator("p.notice")).to_contain_text(
                "The document is approved."
            )
            await expect(report).to_contain_text("approved")
            await checked_page(buyer_page, "agreement-periods-buyer")
            await buyer_page.set_viewport_size({"width": 360, "height": 780})
            await checked_page(buyer_page, "agreement-periods-buyer-phone")

            # The seller's open page shows the approval without a reload (one live connection
            # for the periods), and the invoice it may now issue.
            seller_report = seller_page.locator("#period-1-document-delivery")
            await expect(seller_report).to_contain_text("approved")
            await expect(seller_report).not_to_contain_text("draft")
            row = seller_page.locator("#period-1-invoice-material")
            await expect(row).to_contain_text("ready to be issued")
            async with seller_page.expect_navigation():
                await row.get_by_role("button", name="Issue the invoice for the material").click()
            await expect(seller_page.locator("p.notice")).to_contain_text("The invoice is issued.")
            # 3.95 t delivered at 35 EUR, an intra-community supply to Sweden: no VAT.
            await expect(row).to_contain_text("138.25 EUR due")
            xml = await download(seller_page, "Invoice for the material, XML (UBL)")
            assert f"<cbc:BuyerReference>{match_id} 2026-12</cbc:BuyerReference>".encode() in xml
            await checked_page(seller_page, "agreement-periods-seller")

            # The carrier issues its transport invoice from the room.
            await carrier_page.goto(room)
            transport = carrier_page.locator("#period-1-invoice-transport")
            async with carrier_page.expect_navigation():
                await transport.get_by_role(
                    "button", name="Issue the invoice for the transport"
                ).click()
            # A Bulgarian carrier to a Bulgarian seller: 20 % VAT on 180 EUR.
            await expect(transport).to_contain_text("216.00 EUR due")
            await checked_page(carrier_page, "agreement-periods-carrier-invoiced")
