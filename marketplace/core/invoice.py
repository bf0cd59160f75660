"""The invoice of a deal as an EN 16931 electronic invoice: UBL 2.1 following Peppol BIS Billing
3.0. Pure: the parties, the lines, the number and the dates come in; the XML bytes go out.

Three decisions sit here, each a small function with its reasons (docs/developers/invoices.md):
- who invoices whom (`material_billing`, `transport_billing`): the party that is paid. A positive
  price is a sale of the material, invoiced by its holder; a negative price means the holder pays
  the receiver to take it, so the receiver invoices the holder for that service at the price's
  absolute value (EN 16931 allows no negative item price, BR-27). The carrier invoices its
  customer for the transport.
- the VAT category (`vat_treatment`): S at the supplier's standard rate within one member state;
  K (intra-community supply, exempt) for goods dispatched to a business in another member state;
  AE (reverse charge) for a service to a business in another member state.
- the amounts (`build_invoice`): each line rounded to the cent, the VAT per category computed on
  the category's total and rounded to the cent, as the CEN rules BR-CO-10 to BR-CO-17 expect."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from enum import StrEnum
from typing import Literal, Protocol

CUSTOMIZATION_ID = "urn:cen.eu:en16931:2017#compliant#urn:fdc:peppol.eu:2017:poacc:billing:3.0"
PROFILE_ID = "urn:fdc:peppol.eu:2017:poacc:billing:01:1.0"
# UNTDID 1001: a commercial invoice.
INVOICE_TYPE = "380"

NS_INVOICE = "urn:oasis:names:specification:ubl:schema:xsd:Invoice-2"
NS_CAC = "urn:oasis:names:specification:ubl:schema:xsd:CommonAggregateComponents-2"
NS_CBC = "urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2"

# The project's units (marketplace.core.units) as UN/ECE Recommendation 20 codes, and C62 ("one")
# for a service counted as a whole, like a transport job.
UNIT_CODES: Mapping[str, str] = {
    "t": "TNE",
    "kg": "KGM",
    "m3": "MTQ",
    "pieces": "H87",
    "job": "C62",
}

# The prefixes UBL's own examples use, so a person reading the file finds the usual names
# (tostring's default_namespace refuses the unqualified attributes UBL has, like currencyID).
ET.register_namespace("", NS_INVOICE)
ET.register_namespace("cac", NS_CAC)
ET.register_namespace("cbc", NS_CBC)

CENT = Decimal("0.01")
_PEPPOL_ID = re.compile(r"^(?:iso6523-actorid-upis::)?(?P<scheme>\d{4}):(?P<value>[^\s:]+)$")
_COUNTRY = re.compile(r"^[A-Z]{2}$")
# VAT number prefixes that differ from the ISO country code.
_VAT_PREFIX_COUNTRY = {"EL": "GR", "XI": "GB"}


class InvoiceError(ValueError):
    """An invoice that cannot be built, naming the input field at fault."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


class Party(Protocol):
    """A party's legal data as the invoice needs it; marketplace.core.legal's LegalData fits."""

    @property
    def legal_name(self) -> str: ...
    @property
    def street(self) -> str: ...
    @property
    def postcode(self) -> str: ...
    @property
    def city(self) -> str: ...
    @property
    def country(self) -> str: ...
    @property
    def vat_number(self) -> str | None: ...
    @property
    def peppol_id(self) -> str | None: ...


@dataclass(frozen=True, slots=True)
class LegalParty:
    legal_name: str
    street: str
    postcode: str
    city: str
    country: str  # ISO 3166-1 alpha-2 of the registered address (GR for Greece)
    vat_number: str | None = None  # with its prefix (EL for Greece)
    peppol_id: str | None = None  # iso6523-actorid-upis::<ICD>:<identifier>, or <ICD>:<identifier>


class Supply(StrEnum):
    GOODS = "goods"  # the material itself
    SERVICE = "service"  # taking the material back, or transporting it


class Category(StrEnum):
    """UNCL 5305 VAT category codes used here."""

    STANDARD = "S"
    REVERSE_CHARGE = "AE"
    INTRA_COMMUNITY = "K"


@dataclass(frozen=True, slots=True)
class VatTreatment:
    category: Category
    rate: Decimal  # per cent
    # Required for the exempt categories (BR-AE-10, BR-IC-10): the VATEX code and its text.
    exemption_code: str | None = None
    exemption_reason: str | None = None
    # The supplier's national currency, when VAT is charged on an invoice written in another
    # one: the VAT due must be stated in it too (Article 230 of Directive 2006/112/EC).
    accounting_currency: str | None = None


REVERSE_CHARGE = VatTreatment(
    Category.REVERSE_CHARGE,
    Decimal(0),
    "VATEX-EU-AE",
    "Reverse charge: the customer accounts for the VAT (Article 196 of Directive 2006/112/EC)",
)
INTRA_COMMUNITY = VatTreatment(
    Category.INTRA_COMMUNITY,
    Decimal(0),
    "VATEX-EU-IC",
    "Intra-community supply of goods, exempt under Article 138 of Directive 2006/112/EC",
)


@dataclass(frozen=True, slots=True)
class Billing:
    """Who invoices whom, for what, and the price per unit on the invoice (never negative)."""

    supplier: Party
    customer: Party
    supply: Supply
    unit_price: Decimal
    # Which party of the deal issues it, to find its partner id: the material's holder (the
    # match's seller), its receiver (the buyer) or the carrier.
    issuer: Literal["holder", "receiver", "carrier"]


def material_billing(*, holder: Party, receiver: Party, unit_price: Decimal) -> Billing:
    """The invoice for the material of a deal: the holder sells it (price above zero) or pays the
    receiver to take it (price below zero). A price of zero is not invoiced."""
    if unit_price > 0:
        return Billing(holder, receiver, Supply.GOODS, unit_price, "holder")
    if unit_price < 0:
        return Billing(receiver, holder, Supply.SERVICE, -unit_price, "receiver")
    raise InvoiceError("unit_price", "a price of zero has nothing to invoice")


def transport_billing(*, carrier: Party, customer: Party, price: Decimal) -> Billing:
    """The carrier invoices the party that awarded it the transport, for the price it won."""
    if price <= 0:
        raise InvoiceError("price", "a transport is invoiced at a price above zero")
    return Billing(carrier, customer, Supply.SERVICE, price, "carrier")


def vat_country(vat_number: str) -> str:
    """The member state a VAT number belongs to, from its prefix."""
    prefix = vat_number[:2].upper()
    return _VAT_PREFIX_COUNTRY.get(prefix, prefix)


def vat_treatment(
    *,
    supply: Supply,
    supplier_country: str,
    customer_country: str,
    customer_vat: str | None,
    dispatched_to: str,
    rates: Mapping[str, Decimal],
    invoice_currency: str,
    currencies: Mapping[str, str],
) -> VatTreatment:
    """The VAT category of a business-to-business supply by a supplier in an EU member state.

    - Goods dispatched from the supplier's member state to another one, for a customer with a VAT
      number of a member state other than the supplier's: K, exempt (Article 138(1) of Directive
      2006/112/EC). Goods that stay in the supplier's member state: S, whoever buys them.
    - A service to a customer with a VAT number of another member state takes place where the
      customer is established (Article 44), and the customer accounts for the VAT: AE (Article
      196). Transport of goods and taking waste back both follow this general rule. A service to a
      customer identified in the supplier's member state: S.
    - S is charged at the standard rate of the supplier's member state (`rates`); on an invoice
      written in another currency than that state's (`currencies`), the VAT due is stated in the
      national currency too (Article 230), which needs the exchange rate.

    Refused rather than guessed: a supplier or customer outside the EU (exports, imports), and a
    cross-border supply to a customer without a VAT number (the place of supply and who pays the
    VAT then depend on facts the exchange does not hold). Domestic reverse-charge schemes for
    waste and scrap (Article 199) are not applied: such a supply is invoiced with S."""
    if supplier_country not in rates:
        raise InvoiceError(
            "supplier.country", f"{supplier_country} is not an EU member state with a VAT rate"
        )
    if customer_country not in rates:
        raise InvoiceError(
            "customer.country",
            f"{customer_country} is outside the EU: exports are not invoiced by the exchange yet",
        )
    if dispatched_to not in rates:
        raise InvoiceError("dispatched_to", f"{dispatched_to} is outside the EU")
    customer_state = vat_country(customer_vat) if customer_vat else None
    crosses = (
        dispatched_to != supplier_country
        if supply is Supply.GOODS
        else customer_country != supplier_country
    )
    if customer_state is None and crosses:
        raise InvoiceError(
            "customer.vat_number",
            "a supply to a business in another member state needs the customer's VAT number",
        )
    if customer_state is not None and customer_state != supplier_country:
        if supply is Supply.SERVICE:
            return REVERSE_CHARGE
        if crosses:
            return INTRA_COMMUNITY
    national = currencies.get(supplier_country)
    return VatTreatment(
        Category.STANDARD,
        rates[supplier_country],
        accounting_currency=national if national != invoice_currency else None,
    )


def invoice_number(sequence: int) -> str:
    """The invoice number as printed: ten digits, zero-padded. Bulgaria's VAT Act asks for a
    number of exactly ten Arabic digits, and the other member states accept any unique one."""
    if not 1 <= sequence < 10**10:
        raise InvoiceError("number", "an invoice number runs from 1 to 9,999,999,999")
    return f"{sequence:010d}"


@dataclass(frozen=True, slots=True)
class Line:
    name: str  # the material, or the service ("Taking back ...", "Road transport of ...")
    quantity: Decimal
    unit: str  # a key of UNIT_CODES
    unit_price: Decimal  # in the invoice's currency, per unit, never negative
    waste_code: str | None = None  # List of Waste code, e.g. "15 01 02"
    description: str | None = None


@dataclass(frozen=True, slots=True)
class Contact:
    """Whom the customer asks about the invoice: a desk of the issuer, not a person's own data."""

    name: str
    telephone: str
    email: str


@dataclass(frozen=True, slots=True)
class Invoice:
    number: str
    issue_date: date
    currency: str  # ISO 4217
    supplier: Party
    customer: Party
    lines: Sequence[Line]
    vat: VatTreatment
    buyer_reference: str  # what the customer knows the deal by (Peppol requires it or an order)
    due_date: date | None = None
    delivery_date: date | None = None
    delivery_country: str | None = None  # where the goods went (required for K)
    delivery_city: str | None = None
    delivery_postcode: str | None = None
    payee_iban: str | None = None
    supplier_contact: Contact | None = None
    # Units of the VAT's accounting currency for one unit of the invoice's currency (the rate the
    # supplier's tax authority accepts for the issue date), when vat.accounting_currency is set.
    accounting_rate: Decimal | None = None
    note: str | None = None


@dataclass(frozen=True, slots=True)
class Totals:
    line_amounts: tuple[Decimal, ...]
    line_total: Decimal
    tax: Decimal
    payable: Decimal
    tax_in_accounting_currency: Decimal | None


def cents(amount: Decimal) -> Decimal:
    return amount.quantize(CENT, rounding=ROUND_HALF_UP)


def totals(invoice: Invoice) -> Totals:
    """The amounts, rounded as EN 16931 expects: each line to the cent (BR-DEC-23), the VAT on
    the category's taxable amount (BR-CO-17), and the payable sum of both (BR-CO-15)."""
    line_amounts = tuple(cents(line.quantity * line.unit_price) for line in invoice.lines)
    line_total = sum(line_amounts, Decimal(0))
    tax = cents(line_total * invoice.vat.rate / 100)
    accounting = None
    if invoice.vat.accounting_currency is not None and invoice.accounting_rate is not None:
        accounting = cents(tax * invoice.accounting_rate)
    return Totals(line_amounts, line_total, tax, line_total + tax, accounting)


_XML_ILLEGAL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def _text(field: str, value: str) -> None:
    if not value.strip():
        raise InvoiceError(field, "must not be empty")
    if _XML_ILLEGAL.search(value):
        raise InvoiceError(field, "contains a control character that XML cannot carry")


def _check(invoice: Invoice) -> None:
    if not invoice.number.strip():
        raise InvoiceError("number", "an invoice needs its number")
    if re.fullmatch(r"[A-Z]{3}", invoice.currency) is None:
        raise InvoiceError("currency", "write the currency as its ISO 4217 code, e.g. EUR")
    if not invoice.lines:
        raise InvoiceError("lines", "an invoice needs at least one line")
    if not invoice.buyer_reference.strip():
        raise InvoiceError("buyer_reference", "Peppol requires the buyer's reference")
    _text("buyer_reference", invoice.buyer_reference)
    for name in ("note", "payee_iban", "delivery_city", "delivery_postcode"):
        value = getattr(invoice, name)
        if value is not None:
            _text(name, value)
    if invoice.due_date is not None and invoice.due_date < invoice.issue_date:
        raise InvoiceError("due_date", "the due date is before the issue date")
    for side, party in (("supplier", invoice.supplier), ("customer", invoice.customer)):
        for name in ("legal_name", "street", "postcode", "city"):
            # Peppol refuses empty elements (PEPPOL-EN16931-R008); XML cannot carry controls.
            _text(f"{side}.{name}", getattr(party, name))
        if _COUNTRY.match(party.country) is None:
            raise InvoiceError(f"{side}.country", "a country is two capital letters")
        if not party.peppol_id or _PEPPOL_ID.match(party.peppol_id) is None:
            raise InvoiceError(
                f"{side}.peppol_id",
                "Peppol requires an electronic address: a participant id like 0088:5798000000001",
            )
    if not invoice.supplier.vat_number:
        raise InvoiceError("supplier.vat_number", "the supplier's VAT number is required")
    if invoice.vat.category is not Category.STANDARD and not invoice.customer.vat_number:
        raise InvoiceError(
            "customer.vat_number",
            "reverse charge and intra-community supply need the customer's VAT number",
        )
    _check_national(invoice)
    if invoice.vat.accounting_currency is not None and (
        invoice.accounting_rate is None or invoice.accounting_rate <= 0
    ):
        raise InvoiceError(
            "accounting_rate",
            f"VAT on an invoice in {invoice.currency} is stated in"
            f" {invoice.vat.accounting_currency} too: give the exchange rate",
        )
    if invoice.vat.category is Category.INTRA_COMMUNITY and (
        invoice.delivery_date is None or invoice.delivery_country is None
    ):
        raise InvoiceError(
            "delivery_date", "an intra-community supply names the delivery's date and country"
        )
    for i, line in enumerate(invoice.lines):
        _text(f"lines[{i}].name", line.name)
        if line.unit not in UNIT_CODES:
            raise InvoiceError(f"lines[{i}].unit", f"one of {', '.join(UNIT_CODES)}")
        if line.quantity <= 0:
            raise InvoiceError(f"lines[{i}].quantity", "must be above zero")
        if line.unit_price < 0:
            raise InvoiceError(f"lines[{i}].unit_price", "an item price is never negative")


def _check_national(invoice: Invoice) -> None:
    """What the Peppol rules of the supplier's member state add, refused here by field rather
    than left for the recipient's access point to reject."""
    supplier, customer = invoice.supplier, invoice.customer
    if supplier.country == "GR":
        # GR-R-001 and GR-R-004: an invoice id of six segments and a MARK from the Greek tax
        # authority's myDATA, which only the supplier's own system registered there can give.
        raise InvoiceError(
            "supplier.country",
            "Greek suppliers invoice through myDATA (a MARK number and its invoice id), which"
            " the exchange does not do",
        )
    if supplier.country == "NL" and not invoice.payee_iban:
        # NL-R-007: Dutch suppliers always say how to pay.
        raise InvoiceError("payee_iban", "a Dutch supplier's invoice says how to pay")
    if supplier.country == "DE" and customer.country == "DE":
        # DE-R-001 to DE-R-011: payment instructions, a seller contact with telephone and
        # e-mail, and a city and post code for a delivery address.
        if invoice.supplier_contact is None:
            raise InvoiceError(
                "supplier_contact", "an invoice between German firms names a seller contact"
            )
        if not invoice.payee_iban:
            raise InvoiceError("payee_iban", "an invoice between German firms says how to pay")
        if invoice.delivery_country is not None and not (
            invoice.delivery_city and invoice.delivery_postcode
        ):
            raise InvoiceError(
                "delivery_city",
                "an invoice between German firms gives the delivery's city and post code",
            )


def _legal_id(party: Party) -> tuple[str, str] | None:
    """The company registration number and its ICD, where it follows from the VAT number: the
    Danish CVR (DK-R-002 requires it of Danish suppliers) and the Swedish organisation number."""
    vat = party.vat_number or ""
    if party.country == "DK" and re.fullmatch(r"DK\d{8}", vat):
        return vat[2:], "0184"
    if party.country == "SE" and re.fullmatch(r"SE\d{10}01", vat):
        return vat[2:12], "0007"
    return None


def _el(parent: ET.Element, ns: str, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
    element = ET.SubElement(parent, f"{{{ns}}}{tag}", attrs)
    if text is not None:
        element.text = text
    return element


def _cbc(parent: ET.Element, tag: str, text: str, **attrs: str) -> ET.Element:
    return _el(parent, NS_CBC, tag, text, **attrs)


def _cac(parent: ET.Element, tag: str) -> ET.Element:
    return _el(parent, NS_CAC, tag)


def _amount(parent: ET.Element, tag: str, value: Decimal, currency: str) -> None:
    _cbc(parent, tag, f"{cents(value):f}", currencyID=currency)


def _number(value: Decimal) -> str:
    # Plain notation, never an exponent; trailing zeros dropped (1.500 -> 1.5, 20.0 -> 20).
    return f"{value.normalize():f}"


def _party(parent: ET.Element, tag: str, party: Party, contact: Contact | None = None) -> None:
    outer = _cac(parent, tag)
    node = _cac(outer, "Party")
    found = _PEPPOL_ID.match(party.peppol_id or "")
    assert found is not None  # checked by _check
    _cbc(node, "EndpointID", found["value"], schemeID=found["scheme"])
    _cbc(_cac(node, "PartyName"), "Name", party.legal_name)
    address = _cac(node, "PostalAddress")
    _cbc(address, "StreetName", party.street)
    _cbc(address, "CityName", party.city)
    _cbc(address, "PostalZone", party.postcode)
    _cbc(_cac(address, "Country"), "IdentificationCode", party.country)
    if party.vat_number:
        tax_scheme = _cac(node, "PartyTaxScheme")
        _cbc(tax_scheme, "CompanyID", party.vat_number)
        _cbc(_cac(tax_scheme, "TaxScheme"), "ID", "VAT")
    legal = _cac(node, "PartyLegalEntity")
    _cbc(legal, "RegistrationName", party.legal_name)
    legal_id = _legal_id(party)
    if legal_id is not None:
        _cbc(legal, "CompanyID", legal_id[0], schemeID=legal_id[1])
    if contact is not None:
        person = _cac(node, "Contact")
        _cbc(person, "Name", contact.name)
        _cbc(person, "Telephone", contact.telephone)
        _cbc(person, "ElectronicMail", contact.email)


def _tax_category(parent: ET.Element, tag: str, vat: VatTreatment, *, reason: bool) -> None:
    node = _cac(parent, tag)
    _cbc(node, "ID", vat.category.value)
    _cbc(node, "Percent", _number(vat.rate))
    if reason and vat.exemption_code is not None and vat.exemption_reason is not None:
        _cbc(node, "TaxExemptionReasonCode", vat.exemption_code)
        _cbc(node, "TaxExemptionReason", vat.exemption_reason)
    _cbc(_cac(node, "TaxScheme"), "ID", "VAT")


def build_invoice(invoice: Invoice) -> bytes:
    """The invoice as UBL 2.1 XML (UTF-8), in the element order the UBL schema requires."""
    _check(invoice)
    amounts = totals(invoice)
    cur = invoice.currency
    root = ET.Element(f"{{{NS_INVOICE}}}Invoice")
    _cbc(root, "CustomizationID", CUSTOMIZATION_ID)
    _cbc(root, "ProfileID", PROFILE_ID)
    _cbc(root, "ID", invoice.number)
    _cbc(root, "IssueDate", invoice.issue_date.isoformat())
    if invoice.due_date is not None:
        _cbc(root, "DueDate", invoice.due_date.isoformat())
    _cbc(root, "InvoiceTypeCode", INVOICE_TYPE)
    if invoice.note:
        _cbc(root, "Note", invoice.note)
    _cbc(root, "DocumentCurrencyCode", cur)
    if amounts.tax_in_accounting_currency is not None:
        assert invoice.vat.accounting_currency is not None  # set with the amount
        _cbc(root, "TaxCurrencyCode", invoice.vat.accounting_currency)
    _cbc(root, "BuyerReference", invoice.buyer_reference)
    _party(root, "AccountingSupplierParty", invoice.supplier, invoice.supplier_contact)
    _party(root, "AccountingCustomerParty", invoice.customer)
    if invoice.delivery_date is not None or invoice.delivery_country is not None:
        delivery = _cac(root, "Delivery")
        if invoice.delivery_date is not None:
            _cbc(delivery, "ActualDeliveryDate", invoice.delivery_date.isoformat())
        if invoice.delivery_country is not None:
            address = _cac(_cac(delivery, "DeliveryLocation"), "Address")
            if invoice.delivery_city:
                _cbc(address, "CityName", invoice.delivery_city)
            if invoice.delivery_postcode:
                _cbc(address, "PostalZone", invoice.delivery_postcode)
            _cbc(_cac(address, "Country"), "IdentificationCode", invoice.delivery_country)
    if invoice.payee_iban:
        means = _cac(root, "PaymentMeans")
        # UNCL 4461 58: SEPA credit transfer; 30, credit transfer, between Swedish firms
        # (SE-R-012). The invoice number is the payment's reference.
        domestic_se = invoice.supplier.country == invoice.customer.country == "SE"
        _cbc(means, "PaymentMeansCode", "30" if domestic_se else "58")
        _cbc(means, "PaymentID", invoice.number)
        _cbc(_cac(means, "PayeeFinancialAccount"), "ID", invoice.payee_iban)
    tax_total = _cac(root, "TaxTotal")
    _amount(tax_total, "TaxAmount", amounts.tax, cur)
    subtotal = _cac(tax_total, "TaxSubtotal")
    _amount(subtotal, "TaxableAmount", amounts.line_total, cur)
    _amount(subtotal, "TaxAmount", amounts.tax, cur)
    _tax_category(subtotal, "TaxCategory", invoice.vat, reason=True)
    if amounts.tax_in_accounting_currency is not None:
        assert invoice.vat.accounting_currency is not None
        # The VAT in the accounting currency: a second total without a breakdown (BR-53).
        _amount(
            _cac(root, "TaxTotal"),
            "TaxAmount",
            amounts.tax_in_accounting_currency,
            invoice.vat.accounting_currency,
        )
    monetary = _cac(root, "LegalMonetaryTotal")
    _amount(monetary, "LineExtensionAmount", amounts.line_total, cur)
    _amount(monetary, "TaxExclusiveAmount", amounts.line_total, cur)
    _amount(monetary, "TaxInclusiveAmount", amounts.payable, cur)
    _amount(monetary, "PayableAmount", amounts.payable, cur)
    for i, (line, amount) in enumerate(zip(invoice.lines, amounts.line_amounts, strict=True)):
        node = _cac(root, "InvoiceLine")
        _cbc(node, "ID", str(i + 1))
        _cbc(node, "InvoicedQuantity", _number(line.quantity), unitCode=UNIT_CODES[line.unit])
        _amount(node, "LineExtensionAmount", amount, cur)
        item = _cac(node, "Item")
        description = line.description or (
            f"List of Waste code {line.waste_code}" if line.waste_code else None
        )
        if description:
            _cbc(item, "Description", description)
        _cbc(item, "Name", line.name)
        if line.waste_code:
            # The List of Waste is no UNTDID 7143 list: ZZZ marks a scheme agreed between the
            # parties (the rules warn against a name attribute; the line's description names it).
            _cbc(
                _cac(item, "CommodityClassification"),
                "ItemClassificationCode",
                line.waste_code,
                listID="ZZZ",
            )
        _tax_category(item, "ClassifiedTaxCategory", invoice.vat, reason=False)
        _cbc(_cac(node, "Price"), "PriceAmount", _number(line.unit_price), currencyID=cur)
    xml: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return xml
