"""The end of a deal on the pages (#22 item 4), in Debian's headless Chromium against the real
stack (API with the pages, projector, deals consumer): the carrier confirms the pickup and the
delivery in the deal room, the buyer approves the delivery report, the seller (paid: the price
is above zero) is told which legal data its invoice lacks, declares it, issues the material
invoice and downloads it as UBL XML and PDF; the carrier issues its transport invoice to the
seller; both downloaded invoices pass the official CEN and Peppol rules
(infra/einvoice-validator.sh); the buyer has no button to issue them; an outsider's browser
gets 404 for both invoices' files; each invoice is an event on market.deals; axe-core finds no
violation on the rooms with their invoices."""

from __future__ import annotations

import asyncio
import io
import subprocess
from pathlib import Path

import orjson
import pytest
from playwright.async_api import Browser, Page, expect
from pypdf import PdfReader

from consumers.deals import TOPICS, DealRooms
from marketplace.settings import ROOT, Settings
from producers.web.app import create_service
from schemas.topics import DEALS
from tests.e2e.pages import loopback_page
from tests.e2e.test_whole_deal import invitation, join, no_violations
from tests.integration.api_helpers import consumer_running, eventually, register, running_api
from tests.integration.kafka_helpers import end_offsets, read_since
from tests.integration.test_deal_documents import BUYER_LEGAL, declare
from tests.integration.test_deal_room import award, confirmed_match

pytestmark = pytest.mark.integration

VALIDATOR = ROOT / "infra" / "einvoice-validator.sh"
# A Bulgarian seller (its Peppol id declared only when the invoice asks for it), the Swedish
# buyer of the documents' tests, and a Swedish carrier.
SELLER_LEGAL = {
    "legal_name": "Пласт Плевен ООД",
    "street": "ул. Васил Левски 12",
    "postcode": "5800",
    "city": "Плевен",
    "country": "BG",
    "vat_number": "BG175074752",
}
SELLER_PEPPOL = "9926:BG175074752"
CARRIER_LEGAL = {
    "legal_name": "Åkeri Väst AB",
    "street": "Lastgatan 9",
    "postcode": "417 05",
    "city": "Göteborg",
    "country": "SE",
    "vat_number": "SE556677889901",
    "peppol_id": "0007:5566778899",
}


async def confirm_stage(page: Page, room: str, stage: str, weight: str) -> None:
    """The carrier's confirmation of a stage from its room, as a person types it."""
    await page.goto(room)
    button = page.get_by_role("button", name=f"Confirm the {stage}")
    await expect(button).to_be_visible()
    await page.locator("#weight_t").fill(weight)
    async with page.expect_navigation():
        await button.click()
    await expect(page.locator("#documents p.notice")).to_contain_text("Your confirmation is sent")


async def download(page: Page, name: str) -> bytes:
    link = page.get_by_role("link", name=name)
    async with page.expect_download() as info:
        await link.click()
    found = await info.value
    return await asyncio.to_thread(Path(await found.path()).read_bytes)


def validate(paths: list[Path]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(VALIDATOR), "validate", *map(str, paths)],
        capture_output=True,
        text=True,
        timeout=280,
        check=False,
    )


async def test_the_invoices_of_a_deal_on_the_pages(
    settings: Settings, browser: Browser, tmp_path: Path
) -> None:
    seller = await register(settings, "sme", "Plast Pleven")
    buyer = await register(settings, "sme", "Återvinning Uppsala")
    carrier = await register(settings, "logistics", "Åkeri Väst")
    outsider = await register(settings, "sme", "Nosy Neighbour AB")
    tokens = [
        await invitation(settings, seller, "Мария Иванова", "en"),
        await invitation(settings, buyer, "Erik Dahl", "en"),
        await invitation(settings, carrier, "Lars Öberg", "en"),
        await invitation(settings, outsider, "Olle Ek", "en"),
    ]
    since = await end_offsets(settings, DEALS)
    async with (
        running_api(settings, create_service) as client,
        consumer_running(settings, "deals", TOPICS, DealRooms),
    ):
        await declare(client, seller, SELLER_LEGAL)
        await declare(client, buyer, BUYER_LEGAL)
        await declare(client, carrier, CARRIER_LEGAL)
        match_id, job_id = await confirmed_match(settings, seller, buyer)
        await award(settings, match_id, job_id, carrier)

        async def carrier_in_room() -> bool:
            r = await client.get(f"/v1/matches/{match_id}/documents", headers=carrier.auth)
            return r.status == 200

        await eventually(carrier_in_room, 30)
        base = str(client.make_url("/app"))
        room = f"{base}/deals/{match_id}"
        async with (
            loopback_page(browser, bypass_csp=True) as seller_page,
            loopback_page(browser, bypass_csp=True) as buyer_page,
            loopback_page(browser, bypass_csp=True) as carrier_page,
            loopback_page(browser, bypass_csp=True) as outsider_page,
        ):
            pages = (seller_page, buyer_page, carrier_page, outsider_page)
            for page, token in zip(pages, tokens, strict=True):
                await join(page, base, token)

            # The carrier confirms the pickup, then (the room showing it) the delivery.
            await confirm_stage(carrier_page, room, "pickup", "4.02")
            await expect(carrier_page.locator("#document-list")).to_contain_text("4.02 t on")
            await confirm_stage(carrier_page, room, "delivery", "3.95")
            await expect(carrier_page.locator("#document-list")).to_contain_text("3.95 t on")

            # The material invoice waits for the delivery report, which the buyer approves.
            await buyer_page.goto(room)
            await expect(buyer_page.locator("#invoice-material")).to_contain_text(
                "Not yet: the delivery report is not approved."
            )
            report = buyer_page.locator("#document-delivery")
            await expect(report).to_contain_text("draft, awaiting approval")
            async with buyer_page.expect_navigation():
                await report.get_by_role("button", name="Approve version").click()
            await expect(buyer_page.locator("#documents p.notice")).to_contain_text(
                "The document is approved."
            )

            # The seller is paid, so it issues the material invoice; its Peppol id is missing,
            # and the room says so, before and after it tries.
            await seller_page.goto(room)
            row = seller_page.locator("#invoice-material")
            await expect(row).to_contain_text("Legal data missing: the seller: Peppol")
            issue = row.get_by_role("button", name="Issue the invoice for the material")
            async with seller_page.expect_navigation():
                await issue.click()
            await expect(seller_page.locator("#invoices-error")).to_contain_text(
                "the seller: Peppol participant id"
            )
            # Nobody else has the button: not the buyer, which is billed.
            await buyer_page.goto(room)
            await expect(buyer_page.locator("#invoice-material")).to_contain_text(
                "Legal data missing"
            )
            await expect(buyer_page.locator("#invoice-material button")).to_have_count(0)

            await declare(client, seller, SELLER_LEGAL | {"peppol_id": SELLER_PEPPOL})
            await seller_page.goto(room)
            await expect(row).to_contain_text("ready to be issued")
            async with seller_page.expect_navigation():
                await issue.click()
            await expect(seller_page.locator("#documents p.notice")).to_contain_text(
                "The invoice is issued."
            )
            # 3.95 t delivered at 35 EUR, an intra-community supply to Sweden: no VAT.
            await expect(row).to_contain_text("issued: no. 0000000001")
            await expect(row).to_contain_text("138.25 EUR due")
            # The buyer's room shows it issued without a reload.
            await expect(buyer_page.locator("#invoice-material")).to_contain_text(
                "issued: no. 0000000001"
            )
            material_xml = await download(seller_page, "Invoice for the material, XML (UBL)")
            assert b"<cbc:ID>0000000001</cbc:ID>" in material_xml
            assert b">3.95</cbc:InvoicedQuantity>" in material_xml
            assert b"<cbc:ID>K</cbc:ID>" in material_xml
            material_pdf = await download(buyer_page, "Invoice for the material, PDF")
            text = "".join(p.extract_text() for p in PdfReader(io.BytesIO(material_pdf)).pages)
            assert "Invoice 0000000001" in text
            assert "Пласт Плевен ООД" in text
            assert "Amount due: 138.25 EUR" in text

            # The carrier invoices the seller for the transport, at the price it won.
            await carrier_page.goto(room)
            transport_row = carrier_page.locator("#invoice-transport")
            async with carrier_page.expect_navigation():
                await transport_row.get_by_role(
                    "button", name="Issue the invoice for the transport"
                ).click()
            await expect(transport_row).to_contain_text("issued: no. 0000000001")
            await expect(transport_row).to_contain_text("180.00 EUR due")
            await expect(carrier_page.locator("#invoice-material button")).to_have_count(0)
            transport_xml = await download(carrier_page, "Invoice for the transport, XML (UBL)")
            assert b"<cbc:ID>AE</cbc:ID>" in transport_xml  # a Swedish carrier, a Bulgarian seller

            # Both pass the official rules.
            paths = [tmp_path / "material.xml", tmp_path / "transport.xml"]
            paths[0].write_bytes(material_xml)
            paths[1].write_bytes(transport_xml)
            done = await asyncio.to_thread(validate, paths)
            assert done.returncode == 0, done.stdout + done.stderr[-3000:]
            results = [line.split("\t") for line in done.stdout.splitlines()]
            passed = [r for r in results if r[0] == "result" and r[3] == "valid"]
            assert len(passed) == 4, done.stdout  # two files, two rule sets each
            assert not [r for r in results if r[0] == "finding"], done.stdout

            # An outsider gets 404 for every file of either invoice.
            for kind in ("material", "transport"):
                for fmt in ("xml", "pdf"):
                    answer = await outsider_page.goto(f"{room}/invoices/{kind}.{fmt}")
                    assert answer is not None
                    assert answer.status == 404

            await no_violations(seller_page, "invoices-seller")
            await no_violations(carrier_page, "invoices-carrier")

    # Each invoice is an event on market.deals, in the audit log with the documents.
    async def announced() -> bool:
        records = await read_since(settings, DEALS, since)
        events = [orjson.loads(r.value) for r in records if r.key == match_id.encode()]
        issued = [e for e in events if e["type"] == "market.deal.invoice_issued.v1"]
        return sorted((e["kind"], e["number"], e["issuer_id"]) for e in issued) == [
            ("material", "0000000001", seller.partner_id),
            ("transport", "0000000001", carrier.partner_id),
        ]

    await eventually(announced, 30)
