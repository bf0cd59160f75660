"""The documents of a deal (#22 items 2 and 3): the pure builders (order, transport document with
its CMR, movement-document and Annex VII parts, delivery report), per match and per delivery
period of a standing agreement, their versions by content, and the PDF, whose Bulgarian party
names print and read back."""

from __future__ import annotations

import io
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from pypdf import PdfReader

from marketplace.core import documents as core
from marketplace.core.legal import LegalData
from producers.api import document_pdf as rendering

T0 = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
SELLER = core.Party(
    "seller-1",
    "Plast Pleven",
    LegalData("Пласт Плевен ООД", "ул. Васил Левски 12", "5800", "Плевен", "BG", "BG123456789"),
)
BUYER = core.Party(
    "buyer-1",
    "Recikl Sofia",
    LegalData("Рецикъл София ЕООД", "бул. България 1", "1000", "София", "BG", "BG987654321"),
)
CARRIER = core.Party(
    "carrier-1",
    "Frakt AB",
    LegalData("Frakt AB", "Hamngatan 3", "111 47", "Stockholm", "SE", "SE556732170701"),
)
PARTIES = {p.partner_id: p for p in (SELLER, BUYER, CARRIER)}
PLASTIC = core.Material("150102", "15 01 02", "plastic packaging", hazardous=False)
SOLVENTS = core.Material("070104", "07 01 04*", "other organic solvents", hazardous=True)


def confirmed(
    material: core.Material = PLASTIC, delivery_region: str = "BG411", price: float = 35.0
) -> core.Confirmed:
    return core.Confirmed(
        event_id="ev-confirmed",
        match_id="match-1",
        seller_id="seller-1",
        buyer_id="buyer-1",
        material=material,
        quantity=4.0,
        unit="t",
        weight_t=4.0,
        pickup=core.Place(43.41, 24.61, "BG314"),
        delivery=core.Place(42.69, 23.32, delivery_region),
        pickup_window=(T0, T0 + timedelta(days=2)),
        delivery_window=(T0, T0 + timedelta(days=4)),
        unit_price=price,
        currency="EUR",
        confirmed_at=T0 - timedelta(days=1),
    )


AWARD = core.Awarded(
    "ev-award", "job-1", "carrier-1", 180.0, "EUR", "rigid_truck", T0, T0 - timedelta(hours=2)
)
PICKUP = core.Confirmation("ev-pickup", "pickup", 4.02, T0 + timedelta(hours=3))
DELIVERY = core.Confirmation("ev-delivery", "delivery", 3.95, T0 + timedelta(hours=9), "wet")


def test_the_order_names_parties_material_quantity_price_and_windows() -> None:
    built = core.order(core.Deal(confirmed()), SELLER, BUYER)
    assert isinstance(built, core.Built)
    assert built.issuer_id == "buyer-1"
    c = built.content
    assert c["buyer"]["legal_name"] == "Рецикъл София ЕООД"
    assert c["seller"]["vat_number"] == "BG123456789"
    assert c["material"] == {
        "list_of_waste_code": "150102",
        "display": "15 01 02",
        "title": "plastic packaging",
        "hazardous": False,
    }
    assert c["quantity"] == {"amount": 4.0, "unit": "t", "weight_t": 4.0}
    assert c["price"]["total"] == 140.0
    assert c["price"]["payer"] == "buyer"
    assert c["delivery"]["window"]["end"] == (T0 + timedelta(days=4)).isoformat()
    assert c["sources"] == ["ev-confirmed"]
    assert built.missing == ()


def test_a_gate_fee_is_paid_by_the_seller_and_missing_legal_data_is_said() -> None:
    unknown = core.Party("buyer-1", "Recikl Sofia", None)
    built = core.order(core.Deal(confirmed(price=-12.5)), SELLER, unknown)
    assert isinstance(built, core.Built)
    assert built.content["price"]["payer"] == "seller"
    assert built.content["price"]["total"] == -50.0
    assert built.missing == ("buyer: legal data",)
    assert built.content["buyer"]["name"] == "Recikl Sofia"


def test_no_document_before_its_events() -> None:
    outcomes = core.build_all(core.Deal(None), PARTIES)
    assert [o.kind for o in outcomes] == ["order", "transport", "delivery"]
    assert all(isinstance(o, core.NotYet) for o in outcomes)
    order, transport, delivery = core.build_all(core.Deal(confirmed()), PARTIES)
    assert isinstance(order, core.Built)
    assert isinstance(transport, core.NotYet)
    assert isinstance(delivery, core.NotYet)
    assert transport.reason == "the transport is not awarded yet"
    awarded = core.build_all(core.Deal(confirmed(), AWARD, PICKUP), PARTIES)
    assert isinstance(awarded[1], core.Built)
    assert isinstance(awarded[2], core.NotYet)
    assert "delivery" in awarded[2].reason


def test_a_domestic_transport_document_is_the_cmr_alone() -> None:
    built = core.transport(core.Deal(confirmed(), AWARD), SELLER, BUYER, CARRIER)
    assert isinstance(built, core.Built)
    c = built.content
    assert built.issuer_id == "carrier-1"
    assert c["regimes"] == ["cmr"]
    assert c["cross_border"] is False
    cmr = c["cmr"]
    assert cmr["1_sender"]["legal_name"] == "Пласт Плевен ООД"
    assert cmr["2_consignee"]["legal_name"] == "Рецикъл София ЕООД"
    assert cmr["16_carrier"]["vat_number"] == "SE556732170701"
    assert cmr["11_gross_weight_kg"] == 4000.0
    assert cmr["9_nature_of_goods"] == "Waste, List of Waste 15 01 02: plastic packaging"
    assert cmr["charges"] == {"carriage": 180.0, "currency": "EUR"}
    assert cmr["4_taking_over"]["date"] == T0.isoformat()
    assert c["confirmations"] == {"pickup": None, "delivery": None}
    assert "annex_vii" not in c
    assert "movement_document" not in c


def test_cross_border_non_hazardous_waste_carries_annex_vii() -> None:
    deal = core.Deal(confirmed(delivery_region="SE121"), AWARD, PICKUP)
    built = core.transport(deal, SELLER, BUYER, CARRIER)
    assert isinstance(built, core.Built)
    c = built.content
    assert c["regimes"] == ["cmr", "annex_vii"]
    assert c["countries"] == {"dispatch": "BG", "destination": "SE"}
    annex = c["annex_vii"]
    assert annex["3_actual_quantity_t"] == 4.02
    assert annex["4_actual_date_of_shipment"] == PICKUP.at.isoformat()
    assert annex["10_waste_identification"]["ec_list_of_wastes"] == "15 01 02"
    assert annex["11_countries_concerned"] == ["BG", "SE"]
    assert annex["8_recovery_operation"] is None  # to be completed by the consignee


def test_hazardous_waste_carries_the_movement_document() -> None:
    deal = core.Deal(confirmed(material=SOLVENTS, delivery_region="SE121"), AWARD)
    built = core.transport(deal, SELLER, BUYER, CARRIER)
    assert isinstance(built, core.Built)
    c = built.content
    assert c["regimes"] == ["cmr", "movement_document"]
    assert c["movement_document"]["waste_code"] == "07 01 04*"
    assert c["movement_document"]["actual_quantity_t"] is None
    assert "annex_vii" not in c


def test_a_confirmation_makes_a_new_version_and_the_same_events_the_same_one() -> None:
    before = core.transport(core.Deal(confirmed(), AWARD), SELLER, BUYER, CARRIER)
    again = core.transport(core.Deal(confirmed(), AWARD), SELLER, BUYER, CARRIER)
    after = core.transport(core.Deal(confirmed(), AWARD, PICKUP), SELLER, BUYER, CARRIER)
    assert isinstance(before, core.Built)
    assert isinstance(again, core.Built)
    assert isinstance(after, core.Built)
    assert core.digest(before.content) == core.digest(again.content)
    assert core.digest(before.content) != core.digest(after.content)
    assert after.sources == ("ev-confirmed", "ev-award", "ev-pickup")
    # A party's new legal data is a new version too.
    assert SELLER.legal is not None
    moved = replace(SELLER, legal=replace(SELLER.legal, street="ул. Друга 1"))
    changed = core.transport(core.Deal(confirmed(), AWARD), moved, BUYER, CARRIER)
    assert isinstance(changed, core.Built)
    assert core.digest(changed.content) != core.digest(before.content)


def test_the_latest_confirmation_of_a_stage_counts() -> None:
    fixed = core.Confirmation("ev-pickup-2", "pickup", 4.1, PICKUP.at + timedelta(minutes=5))
    assert core.latest([PICKUP, fixed, DELIVERY], "pickup") == fixed
    assert core.latest([PICKUP], "delivery") is None


def test_the_delivery_report_has_the_quantities_actually_carried() -> None:
    received = core.Received("ev-received", "buyer", T0 + timedelta(hours=10), "ok")
    deal = core.Deal(confirmed(), AWARD, PICKUP, DELIVERY, received)
    built = core.delivery_report(deal, SELLER, BUYER, CARRIER)
    assert isinstance(built, core.Built)
    c = built.content
    assert built.issuer_id == "buyer-1"
    assert c["planned"]["weight_t"] == 4.0
    assert c["delivered_weight_t"] == 3.95
    assert c["difference_t"] == -0.05
    assert c["difference_pct"] == -1.25
    assert c["loss_in_transit_t"] == 0.07
    assert c["received"]["confirmed_as"] == "buyer"
    assert c["sources"] == ["ev-confirmed", "ev-award", "ev-pickup", "ev-delivery", "ev-received"]


def test_the_pdf_prints_bulgarian_and_reads_back() -> None:
    deal = core.Deal(confirmed(delivery_region="SE121"), AWARD, PICKUP)
    built = core.transport(deal, SELLER, BUYER, CARRIER)
    assert isinstance(built, core.Built)
    sha = core.digest(built.content)
    pdf = rendering.render("transport", 2, sha, built.content, None, created=T0)
    assert pdf.startswith(b"%PDF-")
    text = "".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages)
    assert "Пласт Плевен ООД" in text
    assert "ул. Васил Левски 12" in text
    assert "Transport document" in text
    assert "version 2" in text
    assert "DRAFT" in text
    assert "Annex VII" in text
    assert "15 01 02" in text
    # The same content and date give the same bytes; an approval is printed.
    assert rendering.render("transport", 2, sha, built.content, None, created=T0) == pdf
    approval = {"approved_at": "2026-12-01T09:30:00+00:00", "issuer_id": "carrier-1"}
    approved = rendering.render("transport", 2, sha, built.content, approval, created=T0)
    text = "".join(page.extract_text() for page in PdfReader(io.BytesIO(approved)).pages)
    assert "approved by the carrier on 2026-12-01 09:30" in text
    assert "DRAFT" not in text


def test_a_standing_agreements_order_is_per_period_and_its_transport_waits() -> None:
    standing = replace(confirmed(), period="month")
    order, transport, delivery = core.build_all(core.Deal(standing, AWARD), PARTIES)
    assert isinstance(order, core.Built)
    assert order.content["quantity"]["per"] == "month"
    assert isinstance(transport, core.NotYet)
    assert isinstance(delivery, core.NotYet)
    assert "its periods'" in transport.reason
    assert "agreement_period" not in order.content


def test_a_delivery_period_has_the_whole_document_set_naming_it() -> None:
    """#22 item 3: one period's scheduled delivery, with its job's award and carrier's
    confirmations, gets an order, a transport document and a delivery report of its own."""
    period = replace(
        confirmed(),
        event_id="ev-scheduled",
        period="month",
        delivery_id="delivery-7",
        period_key="2026-12",
        quantity=3.0,
        weight_t=3.0,
    )
    assert period.subject == "delivery-7"
    assert confirmed().subject == "match-1"
    deal = core.Deal(period, AWARD, PICKUP, DELIVERY)
    order, transport, delivery = core.build_all(deal, PARTIES)
    named = {"delivery_id": "delivery-7", "period": "month", "key": "2026-12"}
    for built in (order, transport, delivery):
        assert isinstance(built, core.Built)
        assert built.content["agreement_period"] == named
        assert built.sources[0] == "ev-scheduled"
    assert isinstance(order, core.Built)
    # The period's own quantity, not "per month", and its own price total.
    assert order.content["quantity"] == {"amount": 3.0, "unit": "t", "weight_t": 3.0}
    assert order.content["price"]["total"] == 105.0
    assert isinstance(transport, core.Built)
    assert transport.issuer_id == "carrier-1"
    assert transport.content["cmr"]["5_documents_attached"] == [
        "order of match match-1, delivery period 2026-12"
    ]
    assert isinstance(delivery, core.Built)
    assert delivery.content["delivered_weight_t"] == 3.95
    assert delivery.content["difference_t"] == 0.95
    # Another period's content differs, so its versions and hashes are its own.
    other = replace(period, delivery_id="delivery-8", period_key="2027-01")
    again = core.order(core.Deal(other), SELLER, BUYER)
    assert isinstance(again, core.Built)
    assert core.digest(again.content) != core.digest(order.content)
