"""Who invoices whom for a deal, at what quantity and price, and which party a refusal names
(marketplace/core/deal_invoices.py)."""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from marketplace.core.deal_invoices import (
    build_checked,
    delivered_quantity,
    issuer_of_material,
    material_plan,
    transport_plan,
)
from marketplace.core.documents import (
    Awarded,
    Confirmation,
    Confirmed,
    Deal,
    Material,
    Party,
    Place,
)
from marketplace.core.invoice import Category, InvoiceError, Supply
from marketplace.core.legal import LegalData
from marketplace.reference import national_currencies, vat_rates

AT = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
RATES, CURRENCIES = vat_rates(), national_currencies()
SELLER = Party(
    "s",
    "Plast",
    LegalData(
        "Пласт Плевен ООД",
        "ул. Васил Левски 12",
        "5800",
        "Плевен",
        "BG",
        "BG175074752",
        "iso6523-actorid-upis::9926:BG175074752",
    ),
)
BUYER = Party(
    "b",
    "Mill",
    LegalData(
        "Återvinning Uppsala AB",
        "Kungsgatan 1",
        "753 21",
        "Uppsala",
        "SE",
        "SE556732170701",
        "iso6523-actorid-upis::0007:5567321707",
    ),
)
CARRIER = Party(
    "c",
    "Åkeri",
    LegalData(
        "Åkeri Väst AB",
        "Lastgatan 9",
        "417 05",
        "Göteborg",
        "SE",
        "SE556677889901",
        "iso6523-actorid-upis::0007:5566778899",
    ),
)
PARTIES = {p.partner_id: p for p in (SELLER, BUYER, CARRIER)}


def changed(party: Party, *, peppol_id: str | None = "", vat_number: str | None = "") -> Party:
    """The party with its Peppol id or VAT number changed ("" leaves it as it is)."""
    legal = party.legal
    assert legal is not None
    legal = dataclasses.replace(
        legal,
        peppol_id=legal.peppol_id if peppol_id == "" else peppol_id,
        vat_number=legal.vat_number if vat_number == "" else vat_number,
    )
    return dataclasses.replace(party, legal=legal)


def deal(
    price: float = 35.0, unit: str = "t", quantity: float = 4.0, region: str = "SE313"
) -> Deal:
    confirmed = Confirmed(
        event_id="e-confirmed",
        match_id="m-1",
        seller_id="s",
        buyer_id="b",
        material=Material("150102", "15 01 02", "plastic packaging", False),
        quantity=quantity,
        unit=unit,
        weight_t=4.0,
        pickup=Place(42.7, 24.6, "BG314"),
        delivery=Place(60.67, 17.14, region),
        pickup_window=(AT, AT),
        delivery_window=(AT, AT),
        unit_price=price,
        currency="EUR",
        confirmed_at=AT,
    )
    awarded = Awarded("e-award", "j-1", "c", 180.0, "EUR", None, None, AT)
    delivered = Confirmation("e-delivered", "delivery", 3.95, AT)
    return Deal(confirmed=confirmed, awarded=awarded, delivery=delivered)


def test_the_party_that_is_paid_issues_the_material_invoice() -> None:
    assert issuer_of_material(deal(35.0)) == "seller"
    assert issuer_of_material(deal(-12.5)) == "buyer"
    assert issuer_of_material(deal(0.0)) is None

    sale = material_plan(
        deal(35.0),
        PARTIES,
        delivered_t=3.95,
        delivered_on=date(2026, 11, 20),
        rates=RATES,
        currencies=CURRENCIES,
    )
    assert (sale.issuer, sale.issuer_id, sale.customer, sale.customer_id) == (
        "seller",
        "s",
        "buyer",
        "b",
    )
    assert sale.billing.supply is Supply.GOODS
    assert sale.vat.category is Category.INTRA_COMMUNITY  # goods to a Swedish VAT number
    assert (sale.line.quantity, sale.line.unit_price) == (Decimal("3.950"), Decimal("35.0"))
    assert sale.line.waste_code == "15 01 02"

    take_back = material_plan(
        deal(-12.5),
        PARTIES,
        delivered_t=3.95,
        delivered_on=date(2026, 11, 20),
        rates=RATES,
        currencies=CURRENCIES,
    )
    assert (take_back.issuer_id, take_back.customer_id) == ("b", "s")
    assert take_back.billing.supply is Supply.SERVICE
    assert take_back.line.unit_price == Decimal("12.5")
    assert take_back.line.name.startswith("Taking back")
    assert take_back.vat.category is Category.REVERSE_CHARGE


def test_the_delivered_quantity_is_billed_in_the_orders_unit() -> None:
    assert delivered_quantity(deal(unit="t"), 3.95) == Decimal("3.950")
    assert delivered_quantity(deal(unit="kg", quantity=4000), 3.95) == Decimal("3950.000")
    # 10 m3 planned at 4 t: 3.95 t delivered is 9.875 m3.
    assert delivered_quantity(deal(unit="m3", quantity=10), 3.95) == Decimal("9.875")


def test_the_carrier_invoices_the_seller_for_the_price_it_won() -> None:
    plan = transport_plan(deal(), PARTIES, rates=RATES, currencies=CURRENCIES)
    assert (plan.issuer_id, plan.customer, plan.customer_id) == ("c", "seller", "s")
    assert (plan.line.quantity, plan.line.unit, plan.line.unit_price) == (
        Decimal(1),
        "job",
        Decimal("180.0"),
    )
    # A Swedish carrier's service to a Bulgarian business: reverse charge.
    assert plan.vat.category is Category.REVERSE_CHARGE
    xml = build_checked(plan, 7, date(2026, 11, 21), "m-1")
    assert b"<cbc:ID>0000000007</cbc:ID>" in xml
    assert b"<cbc:IssueDate>2026-11-21</cbc:IssueDate>" in xml


def test_a_refusal_names_the_deals_party_not_the_invoices() -> None:
    no_peppol = changed(SELLER, peppol_id=None)
    plan = material_plan(
        deal(),
        PARTIES | {"s": no_peppol},
        delivered_t=3.95,
        delivered_on=date(2026, 11, 20),
        rates=RATES,
        currencies=CURRENCIES,
    )
    with pytest.raises(InvoiceError) as raised:
        build_checked(plan, 1, date(2026, 11, 21), "m-1")
    assert raised.value.field == "seller.peppol_id"

    # The take-back's supplier is the buyer: its missing Peppol id is the buyer's.
    no_peppol_buyer = changed(BUYER, peppol_id=None)
    plan = material_plan(
        deal(-5.0),
        PARTIES | {"b": no_peppol_buyer},
        delivered_t=3.95,
        delivered_on=date(2026, 11, 20),
        rates=RATES,
        currencies=CURRENCIES,
    )
    with pytest.raises(InvoiceError) as raised:
        build_checked(plan, 1, date(2026, 11, 21), "m-1")
    assert raised.value.field == "buyer.peppol_id"

    with pytest.raises(InvoiceError) as raised:
        transport_plan(
            deal(), PARTIES | {"c": Party("c", "Åkeri", None)}, rates=RATES, currencies=CURRENCIES
        )
    assert raised.value.field == "carrier.legal_data"

    # A seller without a VAT number, billed by a Swedish carrier: the seller's VAT number.
    no_vat = changed(SELLER, vat_number=None)
    with pytest.raises(InvoiceError) as raised:
        transport_plan(deal(), PARTIES | {"s": no_vat}, rates=RATES, currencies=CURRENCIES)
    assert raised.value.field == "seller.vat_number"
