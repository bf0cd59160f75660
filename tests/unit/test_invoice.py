"""The pure invoice builder: who invoices, the VAT category, the amounts and the UBL it writes.
Whether the UBL passes the official rules: tests/integration/test_invoice_validation.py."""

from __future__ import annotations

import dataclasses
import xml.etree.ElementTree as ET
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from marketplace.core.invoice import (
    CUSTOMIZATION_ID,
    NS_CAC,
    NS_CBC,
    PROFILE_ID,
    Category,
    InvoiceError,
    Line,
    Supply,
    build_invoice,
    invoice_number,
    material_billing,
    totals,
    transport_billing,
    vat_country,
    vat_treatment,
)
from marketplace.reference import national_currencies, vat_rates
from tests.invoice_cases import (
    BAKERY_BG,
    HAULIER_BG,
    MILL_SE,
    RECYCLER_BG,
    domestic_sale,
    domestic_sale_in,
    intra_community_supply,
    reverse_charge,
    sale_in_euro_in_sweden,
    take_back,
    transport_cross_border,
    transport_domestic,
)

NS = {"cac": NS_CAC, "cbc": NS_CBC}
EU = [
    "AT",
    "BE",
    "BG",
    "CY",
    "CZ",
    "DE",
    "DK",
    "EE",
    "ES",
    "FI",
    "FR",
    "GR",
    "HR",
    "HU",
    "IE",
    "IT",
    "LT",
    "LU",
    "LV",
    "MT",
    "NL",
    "PL",
    "PT",
    "RO",
    "SE",
    "SI",
    "SK",
]


def parse(xml: bytes) -> ET.Element:
    return ET.fromstring(xml)  # noqa: S314 (the builder's own output, not untrusted input)


def text(root: ET.Element, path: str) -> str:
    found = root.find(path, NS)
    assert found is not None, path
    return found.text or ""


def test_the_holder_invoices_a_sale_and_the_receiver_a_take_back() -> None:
    sale = material_billing(holder=BAKERY_BG, receiver=MILL_SE, unit_price=Decimal("48"))
    assert (sale.supplier, sale.customer, sale.supply) == (BAKERY_BG, MILL_SE, Supply.GOODS)
    assert (sale.unit_price, sale.issuer) == (Decimal("48"), "holder")
    paid_to_take = material_billing(holder=BAKERY_BG, receiver=MILL_SE, unit_price=Decimal("-9.9"))
    assert (paid_to_take.supplier, paid_to_take.customer) == (MILL_SE, BAKERY_BG)
    assert paid_to_take.supply is Supply.SERVICE
    assert (paid_to_take.unit_price, paid_to_take.issuer) == (Decimal("9.9"), "receiver")
    with pytest.raises(InvoiceError) as zero:
        material_billing(holder=BAKERY_BG, receiver=MILL_SE, unit_price=Decimal(0))
    assert zero.value.field == "unit_price"


def test_the_carrier_invoices_its_customer_for_a_positive_price() -> None:
    billing = transport_billing(carrier=HAULIER_BG, customer=MILL_SE, price=Decimal("1320.40"))
    assert (billing.supplier, billing.customer, billing.supply) == (
        HAULIER_BG,
        MILL_SE,
        Supply.SERVICE,
    )
    assert billing.issuer == "carrier"
    with pytest.raises(InvoiceError, match="price"):
        transport_billing(carrier=HAULIER_BG, customer=MILL_SE, price=Decimal(0))


def treat(supply: Supply, supplier: str, customer: str, vat: str | None, to: str) -> Category:
    return vat_treatment(
        supply=supply,
        supplier_country=supplier,
        customer_country=customer,
        customer_vat=vat,
        dispatched_to=to,
        rates=vat_rates(),
        invoice_currency=national_currencies().get(supplier, "EUR"),
        currencies=national_currencies(),
    ).category


@pytest.mark.parametrize(
    ("supply", "supplier", "customer", "vat", "to", "expected"),
    [
        # Within one member state: standard rate, whatever the supply.
        (Supply.GOODS, "BG", "BG", "BG831650349", "BG", Category.STANDARD),
        (Supply.SERVICE, "BG", "BG", "BG831650349", "BG", Category.STANDARD),
        (Supply.GOODS, "BG", "BG", None, "BG", Category.STANDARD),
        # Goods dispatched to a business in another member state: intra-community supply.
        (Supply.GOODS, "BG", "SE", "SE556732170701", "SE", Category.INTRA_COMMUNITY),
        # A Swedish buyer collecting in Bulgaria: the goods stay, Bulgarian VAT.
        (Supply.GOODS, "BG", "SE", "SE556732170701", "BG", Category.STANDARD),
        # Goods leaving for a buyer identified only in the supplier's member state: not exempt.
        (Supply.GOODS, "BG", "SE", "BG831650349", "SE", Category.STANDARD),
        # A service to a business in another member state: reverse charge.
        (Supply.SERVICE, "SE", "BG", "BG175074752", "SE", Category.REVERSE_CHARGE),
        (Supply.SERVICE, "BG", "SE", "SE556732170701", "SE", Category.REVERSE_CHARGE),
        # Greek VAT numbers start with EL: still another member state than Bulgaria.
        (Supply.SERVICE, "BG", "GR", "EL123456789", "GR", Category.REVERSE_CHARGE),
        # A foreign address but a VAT number of the supplier's state: established there.
        (Supply.SERVICE, "BG", "SE", "BG831650349", "SE", Category.STANDARD),
    ],
)
def test_the_vat_category_follows_the_documented_rules(
    supply: Supply, supplier: str, customer: str, vat: str | None, to: str, expected: Category
) -> None:
    assert treat(supply, supplier, customer, vat, to) is expected


def test_the_standard_rate_is_the_suppliers_and_exemptions_carry_their_reason() -> None:
    rates = vat_rates()
    se = vat_treatment(
        supply=Supply.SERVICE,
        supplier_country="SE",
        customer_country="SE",
        customer_vat="SE556732170701",
        dispatched_to="SE",
        rates=rates,
        invoice_currency="SEK",
        currencies=national_currencies(),
    )
    assert (se.category, se.rate, se.exemption_code) == (Category.STANDARD, Decimal(25), None)
    k = vat_treatment(
        supply=Supply.GOODS,
        supplier_country="BG",
        customer_country="SE",
        customer_vat="SE556732170701",
        dispatched_to="SE",
        rates=rates,
        invoice_currency="EUR",
        currencies=national_currencies(),
    )
    assert (k.rate, k.exemption_code) == (Decimal(0), "VATEX-EU-IC")
    assert "Article 138" in (k.exemption_reason or "")


@pytest.mark.parametrize(
    ("supplier", "customer", "vat", "to", "field"),
    [
        ("US", "BG", "BG831650349", "BG", "supplier.country"),
        ("BG", "NO", None, "NO", "customer.country"),
        ("BG", "SE", None, "SE", "customer.vat_number"),
    ],
)
def test_what_the_rules_do_not_decide_is_refused_naming_the_field(
    supplier: str, customer: str, vat: str | None, to: str, field: str
) -> None:
    with pytest.raises(InvoiceError) as refused:
        treat(Supply.GOODS, supplier, customer, vat, to)
    assert refused.value.field == field


def test_every_member_state_has_a_plausible_standard_rate() -> None:
    rates = vat_rates()
    assert sorted(rates) == sorted(EU)
    assert all(Decimal(15) <= r <= Decimal(30) for r in rates.values())
    assert (rates["BG"], rates["SE"], rates["FI"]) == (Decimal(20), Decimal(25), Decimal("25.5"))
    assert vat_country("EL123456789") == "GR"


def test_a_domestic_sale_is_peppol_bis_ubl_with_amounts_rounded_to_the_cent() -> None:
    invoice = domestic_sale()
    root = parse(build_invoice(invoice))
    assert root.tag == "{urn:oasis:names:specification:ubl:schema:xsd:Invoice-2}Invoice"
    assert text(root, "cbc:CustomizationID") == CUSTOMIZATION_ID
    assert text(root, "cbc:ProfileID") == PROFILE_ID
    assert text(root, "cbc:InvoiceTypeCode") == "380"
    endpoint = root.find("cac:AccountingSupplierParty/cac:Party/cbc:EndpointID", NS)
    assert endpoint is not None
    assert (endpoint.get("schemeID"), endpoint.text) == ("9926", "BG175074752")
    buyer = root.find("cac:AccountingCustomerParty/cac:Party/cbc:EndpointID", NS)
    assert buyer is not None
    assert (buyer.get("schemeID"), buyer.text) == ("9926", "BG831650349")
    # The bakery's Cyrillic name survives as UTF-8.
    assert (
        text(
            root, "cac:AccountingSupplierParty/cac:Party/cac:PartyLegalEntity/cbc:RegistrationName"
        )
        == "Пекарна Добруджа ЕООД"
    )
    # 12.345 t at 35.5 = 438.2475 -> 438.25; VAT 20 % = 87.65; payable 525.90.
    assert text(root, "cac:InvoiceLine/cbc:LineExtensionAmount") == "438.25"
    assert text(root, "cac:TaxTotal/cbc:TaxAmount") == "87.65"
    assert text(root, "cac:TaxTotal/cac:TaxSubtotal/cac:TaxCategory/cbc:ID") == "S"
    assert text(root, "cac:TaxTotal/cac:TaxSubtotal/cac:TaxCategory/cbc:Percent") == "20"
    assert text(root, "cac:LegalMonetaryTotal/cbc:TaxInclusiveAmount") == "525.90"
    assert text(root, "cac:LegalMonetaryTotal/cbc:PayableAmount") == "525.90"
    quantity = root.find("cac:InvoiceLine/cbc:InvoicedQuantity", NS)
    assert quantity is not None
    assert (quantity.get("unitCode"), quantity.text) == ("TNE", "12.345")
    code = root.find(
        "cac:InvoiceLine/cac:Item/cac:CommodityClassification/cbc:ItemClassificationCode", NS
    )
    assert code is not None
    assert (code.get("listID"), code.text) == ("ZZZ", "02 06 01")


def test_exempt_categories_name_their_reason_and_charge_no_vat() -> None:
    for invoice, code in (
        (intra_community_supply(), "VATEX-EU-IC"),
        (reverse_charge(), "VATEX-EU-AE"),
        (transport_cross_border(), "VATEX-EU-AE"),
    ):
        root = parse(build_invoice(invoice))
        category = "cac:TaxTotal/cac:TaxSubtotal/cac:TaxCategory/"
        assert text(root, category + "cbc:TaxExemptionReasonCode") == code
        assert text(root, category + "cbc:TaxExemptionReason")
        assert text(root, "cac:TaxTotal/cbc:TaxAmount") == "0.00"
        assert text(root, "cac:LegalMonetaryTotal/cbc:PayableAmount") == text(
            root, "cac:LegalMonetaryTotal/cbc:TaxExclusiveAmount"
        )
    k = parse(build_invoice(intra_community_supply()))
    assert (
        text(k, "cac:Delivery/cac:DeliveryLocation/cac:Address/cac:Country/cbc:IdentificationCode")
        == "SE"
    )


def test_a_take_back_is_invoiced_by_the_receiver_at_a_positive_price() -> None:
    invoice = take_back()
    assert (invoice.supplier, invoice.customer) == (RECYCLER_BG, BAKERY_BG)
    root = parse(build_invoice(invoice))
    assert text(root, "cac:InvoiceLine/cac:Price/cbc:PriceAmount") == "18.25"
    assert text(root, "cac:InvoiceLine/cbc:LineExtensionAmount") == "58.40"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"customer": dataclasses.replace(MILL_SE, peppol_id=None)}, "customer.peppol_id"),
        ({"supplier": dataclasses.replace(BAKERY_BG, peppol_id="GLN 123")}, "supplier.peppol_id"),
        ({"supplier": dataclasses.replace(BAKERY_BG, vat_number=None)}, "supplier.vat_number"),
        ({"customer": dataclasses.replace(MILL_SE, vat_number=None)}, "customer.vat_number"),
        ({"delivery_country": None}, "delivery_date"),
        ({"lines": []}, "lines"),
        ({"lines": [Line("x", Decimal(1), "barrels", Decimal(1))]}, "lines[0].unit"),
        ({"lines": [Line("x", Decimal(1), "t", Decimal(-1))]}, "lines[0].unit_price"),
        ({"lines": [Line("x", Decimal(0), "t", Decimal(1))]}, "lines[0].quantity"),
        ({"currency": "euro"}, "currency"),
        ({"supplier": dataclasses.replace(BAKERY_BG, street=" ")}, "supplier.street"),
        ({"customer": dataclasses.replace(MILL_SE, legal_name="AB\x07")}, "customer.legal_name"),
        ({"lines": [Line("", Decimal(1), "t", Decimal(1))]}, "lines[0].name"),
        ({"note": ""}, "note"),
        ({"buyer_reference": " "}, "buyer_reference"),
    ],
)
def test_an_invoice_the_rules_would_refuse_is_not_built(
    change: dict[str, object], field: str
) -> None:
    invoice = dataclasses.replace(intra_community_supply(), **change)  # type: ignore[arg-type]
    with pytest.raises(InvoiceError) as refused:
        build_invoice(invoice)
    assert refused.value.field == field


def test_invoice_numbers_are_ten_digits() -> None:
    assert invoice_number(17) == "0000000017"
    with pytest.raises(InvoiceError):
        invoice_number(0)
    with pytest.raises(InvoiceError):
        invoice_number(10**10)


@given(
    quantities=st.lists(
        st.decimals(min_value=Decimal("0.001"), max_value=Decimal(10_000), places=3),
        min_size=1,
        max_size=5,
    ),
    price=st.decimals(min_value=Decimal("0.01"), max_value=Decimal(5_000), places=4),
    country=st.sampled_from(EU),
)
def test_totals_add_up_as_the_cen_rules_check_them(
    quantities: list[Decimal], price: Decimal, country: str
) -> None:
    supplier = dataclasses.replace(BAKERY_BG, country=country)
    invoice = dataclasses.replace(
        domestic_sale(),
        supplier=supplier,
        lines=[Line("material", q, "t", price) for q in quantities],
        vat=vat_treatment(
            supply=Supply.GOODS,
            supplier_country=country,
            customer_country=country,
            customer_vat=None,
            dispatched_to=country,
            rates=vat_rates(),
            invoice_currency=national_currencies()[country],
            currencies=national_currencies(),
        ),
        currency=national_currencies()[country],
    )
    t = totals(invoice)
    cent = Decimal("0.01")
    assert all(a == a.quantize(cent) for a in (*t.line_amounts, t.line_total, t.tax, t.payable))
    assert all(
        abs(a - q * price) <= Decimal("0.005")
        for a, q in zip(t.line_amounts, quantities, strict=True)
    )
    assert t.line_total == sum(t.line_amounts)  # BR-CO-10
    assert abs(t.tax - t.line_total * vat_rates()[country] / 100) <= Decimal("0.005")  # BR-CO-17
    assert t.payable == t.line_total + t.tax  # BR-CO-15, BR-CO-16


def test_what_a_member_states_peppol_rules_add_is_asked_for_by_field() -> None:
    with pytest.raises(InvoiceError) as greek:
        build_invoice(
            dataclasses.replace(
                domestic_sale_in("BG"),
                supplier=dataclasses.replace(BAKERY_BG, country="GR", vat_number="EL123456789"),
            )
        )
    assert greek.value.field == "supplier.country"
    german = domestic_sale_in("DE")
    for change, field in (
        ({"supplier_contact": None}, "supplier_contact"),
        ({"payee_iban": None}, "payee_iban"),
        ({"delivery_city": None}, "delivery_city"),
    ):
        with pytest.raises(InvoiceError) as refused:
            build_invoice(dataclasses.replace(german, **change))  # type: ignore[arg-type]
        assert refused.value.field == field
    root = parse(build_invoice(german))
    assert text(root, "cac:AccountingSupplierParty/cac:Party/cac:Contact/cbc:Telephone")
    assert text(root, "cac:Delivery/cac:DeliveryLocation/cac:Address/cbc:PostalZone") == "10115"
    with pytest.raises(InvoiceError) as dutch:
        build_invoice(dataclasses.replace(domestic_sale_in("NL"), payee_iban=None))
    assert dutch.value.field == "payee_iban"


def test_danish_and_swedish_suppliers_carry_their_registration_number() -> None:
    for country, number, scheme in (("DK", "12345678", "0184"), ("SE", "5567321707", "0007")):
        root = parse(build_invoice(domestic_sale_in(country)))
        company = root.find(
            "cac:AccountingSupplierParty/cac:Party/cac:PartyLegalEntity/cbc:CompanyID", NS
        )
        assert company is not None
        assert (company.text, company.get("schemeID")) == (number, scheme)
    bulgarian = parse(build_invoice(domestic_sale()))
    assert (
        bulgarian.find(
            "cac:AccountingSupplierParty/cac:Party/cac:PartyLegalEntity/cbc:CompanyID", NS
        )
        is None
    )


def test_payment_by_credit_transfer_is_coded_as_sepa_or_as_swedish_domestic() -> None:
    assert (
        text(parse(build_invoice(domestic_sale())), "cac:PaymentMeans/cbc:PaymentMeansCode") == "58"
    )
    swedish = parse(build_invoice(transport_domestic()))
    assert text(swedish, "cac:PaymentMeans/cbc:PaymentMeansCode") == "30"
    assert text(swedish, "cac:PaymentMeans/cbc:PaymentID") == "0000000001"


def test_vat_on_an_invoice_in_another_currency_is_stated_in_the_national_one_too() -> None:
    invoice = sale_in_euro_in_sweden()
    assert invoice.vat.accounting_currency == "SEK"
    root = parse(build_invoice(invoice))
    assert text(root, "cbc:TaxCurrencyCode") == "SEK"
    totals_ = root.findall("cac:TaxTotal", NS)
    assert len(totals_) == 2
    # 1290.50 EUR at 25 % = 322.63 EUR (322.625 rounded half up); x 11.0425 = 3562.64 SEK.
    assert text(totals_[0], "cbc:TaxAmount") == "322.63"
    amount = totals_[1].find("cbc:TaxAmount", NS)
    assert amount is not None
    assert (amount.text, amount.get("currencyID")) == ("3562.64", "SEK")
    assert totals_[1].find("cac:TaxSubtotal", NS) is None
    with pytest.raises(InvoiceError) as no_rate:
        build_invoice(dataclasses.replace(invoice, accounting_rate=None))
    assert no_rate.value.field == "accounting_rate"
    # In the national currency, or with no VAT charged, there is nothing more to state.
    assert parse(build_invoice(transport_domestic())).find("cbc:TaxCurrencyCode", NS) is None
    assert reverse_charge().vat.accounting_currency is None
