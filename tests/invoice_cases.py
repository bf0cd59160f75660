"""Invoices of the deals the exchange makes, built by the pure builder, for the unit tests and
for the official rules' validation (tests/integration/test_invoice_validation.py)."""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from decimal import Decimal
from random import Random

from marketplace.core.invoice import (
    Billing,
    Contact,
    Invoice,
    LegalParty,
    Line,
    build_invoice,
    material_billing,
    transport_billing,
    vat_treatment,
)
from marketplace.reference import national_currencies, vat_rates

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

IBANS = {"BG": "BG80BNBG96611020345678", "SE": "SE4550000000058398257466"}
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
        invoice_currency=currency,
        currencies=national_currencies(),
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
        payee_iban=IBANS.get(billing.supplier.country),
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


def sale_in_euro_in_sweden() -> Invoice:
    """A Swedish haulier invoices the Swedish mill in euro: S at 25 %, and the VAT due in crowns
    too, at the rate given."""
    billing = transport_billing(carrier=HAULIER_SE, customer=MILL_SE, price=Decimal("1290.50"))
    line = Line(
        "Road transport of bread surplus, Dobrich to Göteborg",
        Decimal(1),
        "job",
        billing.unit_price,
        waste_code="02 06 01",
    )
    invoice = invoice_for(billing, line, dispatched_to="SE", currency="EUR")
    return replace(invoice, accounting_rate=Decimal("11.0425"))


CASES = {
    "domestic_sale": domestic_sale,
    "intra_community_supply": intra_community_supply,
    "take_back": take_back,
    "reverse_charge": reverse_charge,
    "transport_domestic": transport_domestic,
    "transport_cross_border": transport_cross_border,
    "sale_in_euro_in_sweden": sale_in_euro_in_sweden,
}


def built(name: str) -> bytes:
    return build_invoice(CASES[name]())


# A VAT number of the right form for each member state but Greece (whose suppliers invoice
# through myDATA, which the builder refuses).
VAT_NUMBERS = {
    "AT": "ATU12345678",
    "BE": "BE0123456789",
    "BG": "BG175074752",
    "CY": "CY12345678X",
    "CZ": "CZ12345678",
    "DE": "DE123456789",
    "DK": "DK12345678",
    "EE": "EE123456789",
    "ES": "ESX1234567X",
    "FI": "FI12345678",
    "FR": "FRXX123456789",
    "HR": "HR12345678901",
    "HU": "HU12345678",
    "IE": "IE1234567T",
    "IT": "IT12345678901",
    "LT": "LT123456789",
    "LU": "LU12345678",
    "LV": "LV12345678901",
    "MT": "MT12345678",
    "NL": "NL123456789B01",
    "PL": "PL1234567890",
    "PT": "PT123456789",
    "RO": "RO1234567",
    "SE": "SE556732170701",
    "SI": "SI12345678",
    "SK": "SK1234567890",
}


def domestic_sale_in(country: str) -> Invoice:
    """A sale within `country`, the parties reached by a GS1 location number, with what that
    member state's Peppol rules add (a seller contact and delivery place between German firms)."""
    supplier = replace(
        BAKERY_BG, country=country, vat_number=VAT_NUMBERS[country], peppol_id="0088:5790000435951"
    )
    customer = replace(
        RECYCLER_BG, country=country, vat_number=None, peppol_id="0088:5798000000001"
    )
    billing = material_billing(holder=supplier, receiver=customer, unit_price=Decimal("35.5"))
    line = Line(
        "Bread surplus for animal feed",
        Decimal("12.345"),
        "t",
        billing.unit_price,
        waste_code="02 06 01",
    )
    invoice = invoice_for(
        billing, line, dispatched_to=country, currency=national_currencies()[country]
    )
    if country == "NL":
        invoice = replace(invoice, payee_iban="NL91ABNA0417164300")
    if country == "DE":
        invoice = replace(
            invoice,
            supplier_contact=Contact("Buchhaltung", "+49 30 1234567", "rechnung@example.de"),
            payee_iban="DE89370400440532013000",
            delivery_city="Berlin",
            delivery_postcode="10115",
        )
    return invoice


def random_sales(seed: int, count: int) -> list[Invoice]:
    """Invoices of several lines with prices and quantities drawn at random (seeded), to meet the
    official rules' rounding checks on amounts no one chose."""
    rng = Random(seed)
    out = []
    for i in range(count):
        country = rng.choice(sorted(VAT_NUMBERS))
        lines = [
            Line(
                f"Material {n + 1}",
                Decimal(rng.randint(1, 2_000_000)) / 1000,
                rng.choice(["t", "kg", "m3", "pieces"]),
                Decimal(rng.randint(1, 9_999_999)) / 10 ** rng.randint(0, 4),
                waste_code=rng.choice(["02 06 01", "15 01 01", "17 02 03", "20 01 01"]),
            )
            for n in range(rng.randint(1, 4))
        ]
        out.append(replace(domestic_sale_in(country), lines=lines, number=f"{i + 1:010d}"))
    return out
