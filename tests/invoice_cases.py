"""Invoices of the deals the exchange makes, built by the pure builder, for the unit tests and
for the official rules' validation (tests/integration/test_invoice_validation.py)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from marketplace.core.invoice import (
    Billing,
    Invoice,
    LegalParty,
    Line,
    build_invoice,
    material_billing,
    transport_billing,
    vat_treatment,
)
from marketplace.reference import vat_rates

BAKERY_BG = LegalParty(
    legal_name="Пекарна Добруджа ЕООД",
    street="ул. Шипка 12",
    postcode="9300",
    city="Добрич",
    country="BG",
    vat_number="BG175074752",
    peppol_id="iso6523-actorid-upis::9926:BG175074752",
)
RECYCLER_BG = LegalParty(
    legal_name="Рециклиране Юг ООД",
    street="бул. България 51",
    postcode="4000",
    city="Пловдив",
    country="BG",
    vat_number="BG831650349",
    peppol_id="9926:BG831650349",
)
HAULIER_BG = LegalParty(
    legal_name="Транс Логистик АД",
    street="ул. Индустриална 3",
    postcode="9000",
    city="Варна",
    country="BG",
    vat_number="BG203456789",
    peppol_id="iso6523-actorid-upis::9926:BG203456789",
)
MILL_SE = LegalParty(
    legal_name="Återvinning Norr AB",
    street="Hamngatan 4",
    postcode="41106",
    city="Göteborg",
    country="SE",
    vat_number="SE556732170701",
    peppol_id="iso6523-actorid-upis::0007:5567321707",
)
HAULIER_SE = LegalParty(
    legal_name="Åkeri Väst AB",
    street="Lastgatan 9",
    postcode="41705",
    city="Göteborg",
    country="SE",
    vat_number="SE556677889901",
    peppol_id="0007:5566778899",
)

ISSUED = date(2026, 11, 30)
DELIVERED = date(2026, 11, 27)


def invoice_for(
    billing: Billing,
    line: Line,
    *,
    dispatched_to: str,
    number: str = "0000000001",
    currency: str = "EUR",
) -> Invoice:
    vat = vat_treatment(
        supply=billing.supply,
        supplier_country=billing.supplier.country,
        customer_country=billing.customer.country,
        customer_vat=billing.customer.vat_number,
        dispatched_to=dispatched_to,
        rates=vat_rates(),
    )
    return Invoice(
        number=number,
        issue_date=ISSUED,
        currency=currency,
        supplier=billing.supplier,
        customer=billing.customer,
        lines=[line],
        vat=vat,
        buyer_reference="match 7f3c2a",
        due_date=date(2026, 12, 30),
        delivery_date=DELIVERED,
        delivery_country=dispatched_to,
        payee_iban="BG80BNBG96611020345678" if billing.supplier.country == "BG" else None,
    )


def domestic_sale() -> Invoice:
    """A Bulgarian bakery sells its bread surplus to a Bulgarian recycler: S at 20 %."""
    billing = material_billing(holder=BAKERY_BG, receiver=RECYCLER_BG, unit_price=Decimal("35.5"))
    line = Line(
        "Bread surplus for animal feed",
        Decimal("12.345"),
        "t",
        billing.unit_price,
        waste_code="02 06 01",
    )
    return invoice_for(billing, line, dispatched_to="BG")


def intra_community_supply() -> Invoice:
    """The bakery sells to a Swedish mill, the material going to Sweden: K, exempt."""
    billing = material_billing(holder=BAKERY_BG, receiver=MILL_SE, unit_price=Decimal("48"))
    line = Line(
        "Bread surplus for animal feed",
        Decimal("20"),
        "t",
        billing.unit_price,
        waste_code="02 06 01",
    )
    return invoice_for(billing, line, dispatched_to="SE", number="0000000002")


def take_back() -> Invoice:
    """Mixed packaging with a negative price: the Bulgarian recycler invoices the bakery for
    taking it, S at 20 %."""
    billing = material_billing(holder=BAKERY_BG, receiver=RECYCLER_BG, unit_price=Decimal("-18.25"))
    line = Line(
        "Taking back mixed packaging",
        Decimal("3.2"),
        "t",
        billing.unit_price,
        waste_code="15 01 06",
    )
    return invoice_for(billing, line, dispatched_to="BG")


def reverse_charge() -> Invoice:
    """Negative price across the border: the Swedish mill invoices the Bulgarian bakery for
    taking its packaging, a service to a business in another member state: AE."""
    billing = material_billing(holder=BAKERY_BG, receiver=MILL_SE, unit_price=Decimal("-9.9"))
    line = Line(
        "Taking back paper and cardboard packaging",
        Decimal("7.75"),
        "t",
        billing.unit_price,
        waste_code="15 01 01",
    )
    return invoice_for(billing, line, dispatched_to="SE", currency="SEK")


def transport_domestic() -> Invoice:
    """A Swedish haulier invoices the Swedish mill for the transport it won: S at 25 %."""
    billing = transport_billing(carrier=HAULIER_SE, customer=MILL_SE, price=Decimal("14250"))
    line = Line(
        "Road transport of bread surplus, Dobrich to Göteborg",
        Decimal(1),
        "job",
        billing.unit_price,
        waste_code="02 06 01",
    )
    return invoice_for(billing, line, dispatched_to="SE", currency="SEK")


def transport_cross_border() -> Invoice:
    """A Bulgarian haulier invoices the Swedish mill: a service across the border, AE."""
    billing = transport_billing(carrier=HAULIER_BG, customer=MILL_SE, price=Decimal("1320.40"))
    line = Line(
        "Road transport of bread surplus, Dobrich to Göteborg",
        Decimal(1),
        "job",
        billing.unit_price,
        waste_code="02 06 01",
    )
    return invoice_for(billing, line, dispatched_to="SE")


CASES = {
    "domestic_sale": domestic_sale,
    "intra_community_supply": intra_community_supply,
    "take_back": take_back,
    "reverse_charge": reverse_charge,
    "transport_domestic": transport_domestic,
    "transport_cross_border": transport_cross_border,
}


def built(name: str) -> bytes:
    return build_invoice(CASES[name]())
