"""The deal room on the pages (#22), in Debian's headless Chromium against the real stack (API
with the pages, projector, deals consumer): the seller writes, the buyer sees it arrive without
reloading, answers with a photo, a text file named .pdf is refused next to the file field, the
buyer marks the message read and the seller sees the receipt live; the order appears in the
room, the buyer approves it, the seller's room shows it approved without a reload and the seller
downloads its PDF (the Bulgarian legal name read back from it); an outsider's browser gets 404
for the room and the order; axe-core finds no violation on the room."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path

import pytest
from playwright.async_api import Browser, expect
from pypdf import PdfReader

from consumers.deals import TOPICS, DealRooms
from marketplace.settings import Settings
from producers.web.app import create_service
from tests.e2e.pages import loopback_page
from tests.e2e.test_whole_deal import invitation, join, no_violations
from tests.integration.api_helpers import consumer_running, eventually, register, running_api
from tests.integration.test_deal_documents import BUYER_LEGAL, SELLER_LEGAL, declare
from tests.integration.test_deal_room import PNG, confirmed_match

pytestmark = pytest.mark.integration


async def test_two_smes_talk_in_their_deal_room(settings: Settings, browser: Browser) -> None:
    seller = await register(settings, "sme", "Textil Uppsala AB")
    buyer = await register(settings, "sme", "Isolering Gävle AB")
    outsider = await register(settings, "sme", "Nosy Neighbour AB")
    seller_token = await invitation(settings, seller, "Anna Berg", "en")
    buyer_token = await invitation(settings, buyer, "Erik Dahl", "en")
    outsider_token = await invitation(settings, outsider, "Olle Ek", "en")
    async with (
        running_api(settings, create_service) as client,
        consumer_running(settings, "deals", TOPICS, DealRooms),
    ):
        match_id, _job = await confirmed_match(settings, seller, buyer)

        async def known() -> bool:
            r = await client.get(f"/v1/matches/{match_id}/messages", headers=seller.auth)
            return r.status == 200

        await eventually(known, 30)
        base = str(client.make_url("/app"))
        room = f"{base}/deals/{match_id}"
        async with (
            loopback_page(browser, bypass_csp=True) as seller_page,
            loopback_page(browser, bypass_csp=True) as buyer_page,
            loopback_page(browser, bypass_csp=True) as outsider_page,
        ):
            await join(seller_page, base, seller_token)
            await join(buyer_page, base, buyer_token)
            await join(outsider_page, base, outsider_token)

            # Someone else's room is not found.
            answer = await outsider_page.goto(room)
            assert answer is not None
            assert answer.status == 404

            await buyer_page.goto(room)
            await expect(buyer_page.locator("h1")).to_have_text("Deal room")
            await expect(buyer_page.locator("#messages")).to_contain_text("No messages yet.")

            # The seller writes; the buyer's page shows it without a reload.
            await seller_page.goto(room)
            await seller_page.locator("#text").fill("Is the moisture below 12 %?")
            async with seller_page.expect_navigation():
                await seller_page.locator("#message-form button[type=submit]").click()
            await expect(seller_page.locator("p.notice")).to_have_text("Your message is sent.")
            await expect(buyer_page.locator("#messages")).to_contain_text(
                "Is the moisture below 12 %?"
            )

            # A text file named .pdf is refused, next to the file field.
            await buyer_page.locator("#text").fill("The analysis")
            await buyer_page.locator("#attachments").set_input_files(
                {"name": "analysis.pdf", "mimeType": "application/pdf", "buffer": b"plain text\n"}
            )
            async with buyer_page.expect_navigation():
                await buyer_page.locator("#message-form button[type=submit]").click()
            await expect(buyer_page.locator("#attachments-error")).to_contain_text(
                "not a JPEG, PNG or PDF"
            )
            await expect(buyer_page.locator("#attachments")).to_have_attribute(
                "aria-invalid", "true"
            )
            await expect(buyer_page.locator("#text")).to_have_value("The analysis")

            # The buyer answers with a photo; the seller sees it arrive.
            await buyer_page.locator("#text").fill("Yes, 9 %. Here are the bales.")
            await buyer_page.locator("#attachments").set_input_files(
                {"name": "bales.png", "mimeType": "image/png", "buffer": PNG}
            )
            async with buyer_page.expect_navigation():
                await buyer_page.locator("#message-form button[type=submit]").click()
            await expect(seller_page.locator("#messages")).to_contain_text("Here are the bales.")
            await expect(seller_page.locator("#messages img[alt='bales.png']")).to_have_count(1)

            # The buyer marks the seller's message read; the seller sees the receipt live.
            await buyer_page.goto(room)
            async with buyer_page.expect_navigation():
                await buyer_page.locator("#mark-read").click()
            await expect(seller_page.locator("#messages .receipt").first).to_contain_text(
                "Read by Buyer (Isolering Gävle AB)"
            )
            # The order: listed in the room, approved by the buyer once both firms' legal data
            # are declared, downloaded by the seller; not found for anyone else.
            await declare(client, seller, SELLER_LEGAL)
            await declare(client, buyer, BUYER_LEGAL)

            async def complete() -> bool:
                r = await client.get(f"/v1/matches/{match_id}/documents", headers=buyer.auth)
                order = (await r.json())["documents"][0]
                return r.status == 200 and order["available"] and order["missing"] == []

            await eventually(complete, 30)
            await seller_page.goto(room)
            await expect(seller_page.locator("#document-order")).to_contain_text(
                "draft, awaiting approval"
            )
            await buyer_page.goto(room)
            order_row = buyer_page.locator("#document-order")
            await expect(order_row).to_contain_text("draft, awaiting approval")
            approve = order_row.get_by_role("button", name="Approve version")
            async with buyer_page.expect_navigation():
                await approve.click()
            await expect(buyer_page.locator("#documents p.notice")).to_contain_text(
                "The document is approved."
            )
            # The seller's room shows it approved without a reload.
            await expect(seller_page.locator("#document-order")).not_to_contain_text("draft")
            await expect(seller_page.locator("#document-order")).to_contain_text("approved")
            await expect(seller_page.locator("#document-order button")).to_have_count(0)
            link = seller_page.get_by_role("link", name="Order, PDF")
            async with seller_page.expect_download() as info:
                await link.click()
            download = await info.value
            data = await asyncio.to_thread(Path(await download.path()).read_bytes)
            text = "".join(p.extract_text() for p in PdfReader(io.BytesIO(data)).pages)
            assert "Пласт Плевен ООД" in text
            assert "approved by the buyer" in text
            href = await link.get_attribute("href")
            assert href is not None
            answer = await outsider_page.goto(str(client.make_url(href)))
            assert answer is not None
            assert answer.status == 404

            await no_violations(seller_page, "deal-room")
            await no_violations(buyer_page, "deal-room-buyer")
