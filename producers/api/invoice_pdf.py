"""The PDF of a deal's invoice (#22 item 2), for people: the UBL XML the exchange issued, read
back and laid out with the deal documents' sheet (producers/api/document_pdf.py: fpdf2, DejaVu
Sans embedded, so Cyrillic prints). The XML is the invoice; the PDF is a rendering of it, naming
the XML's SHA-256. The same XML and date give the same bytes."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from marketplace.core.invoice import NS_CAC, NS_CBC, UNIT_CODES
from producers.api.document_pdf import Sheet

_NS = {"cac": NS_CAC, "cbc": NS_CBC}
# The UN/ECE unit codes as the exchange's units ("TNE" -> "t").
UNITS = {code: unit for unit, code in UNIT_CODES.items()}


@dataclass(frozen=True, slots=True)
class PartyLines:
    name: str
    lines: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class InvoiceLine:
    name: str
    description: str
    quantity: str
    unit: str
    price: str
    amount: str


@dataclass(frozen=True, slots=True)
class Summary:
    """What a person reads on an invoice, from its UBL XML."""

    number: str
    issue_date: str
    currency: str
    buyer_reference: str
    supplier: PartyLines
    customer: PartyLines
    delivery_date: str | None
    delivery_country: str | None
    lines: tuple[InvoiceLine, ...]
    vat_category: str
    vat_rate: str
    vat_reason: str | None
    taxable: str
    tax: str
    payable: str


def _text(node: ET.Element | None, path: str) -> str | None:
    found = node.find(path, _NS) if node is not None else None
    return found.text if found is not None and found.text is not None else None


def _must(node: ET.Element | None, path: str) -> str:
    value = _text(node, path)
    if value is None:
        raise ValueError(f"the invoice has no {path}")
    return value


def _party(root: ET.Element, tag: str) -> PartyLines:
    party = root.find(f"cac:{tag}/cac:Party", _NS)
    name = _must(party, "cac:PartyLegalEntity/cbc:RegistrationName")
    lines = [
        _must(party, "cac:PostalAddress/cbc:StreetName"),
        f"{_must(party, 'cac:PostalAddress/cbc:PostalZone')}"
        f" {_must(party, 'cac:PostalAddress/cbc:CityName')},"
        f" {_must(party, 'cac:PostalAddress/cac:Country/cbc:IdentificationCode')}",
    ]
    vat = _text(party, "cac:PartyTaxScheme/cbc:CompanyID")
    if vat:
        lines.append(f"VAT {vat}")
    endpoint = party.find("cbc:EndpointID", _NS) if party is not None else None
    if endpoint is not None and endpoint.text:
        lines.append(f"Peppol {endpoint.get('schemeID')}:{endpoint.text}")
    return PartyLines(name, tuple(lines))


def _unit(line: ET.Element) -> str:
    quantity = line.find("cbc:InvoicedQuantity", _NS)
    return quantity.get("unitCode", "") if quantity is not None else ""


def summary(xml: bytes) -> Summary:
    """The invoice's parts a person reads, from the XML the exchange built."""
    root = ET.fromstring(xml)  # noqa: S314 - the exchange's own XML, read back from its store
    subtotal = root.find("cac:TaxTotal/cac:TaxSubtotal", _NS)
    category = subtotal.find("cac:TaxCategory", _NS) if subtotal is not None else None
    lines = tuple(
        InvoiceLine(
            name=_must(line, "cac:Item/cbc:Name"),
            description=_text(line, "cac:Item/cbc:Description") or "",
            quantity=_must(line, "cbc:InvoicedQuantity"),
            unit=_unit(line),
            price=_must(line, "cac:Price/cbc:PriceAmount"),
            amount=_must(line, "cbc:LineExtensionAmount"),
        )
        for line in root.findall("cac:InvoiceLine", _NS)
    )
    return Summary(
        number=_must(root, "cbc:ID"),
        issue_date=_must(root, "cbc:IssueDate"),
        currency=_must(root, "cbc:DocumentCurrencyCode"),
        buyer_reference=_must(root, "cbc:BuyerReference"),
        supplier=_party(root, "AccountingSupplierParty"),
        customer=_party(root, "AccountingCustomerParty"),
        delivery_date=_text(root, "cac:Delivery/cbc:ActualDeliveryDate"),
        delivery_country=_text(
            root, "cac:Delivery/cac:DeliveryLocation/cac:Address/cac:Country/cbc:IdentificationCode"
        ),
        lines=lines,
        vat_category=_must(category, "cbc:ID"),
        vat_rate=_must(category, "cbc:Percent"),
        vat_reason=_text(category, "cbc:TaxExemptionReason"),
        taxable=_must(subtotal, "cbc:TaxableAmount"),
        tax=_must(subtotal, "cbc:TaxAmount"),
        payable=_must(root, "cac:LegalMonetaryTotal/cbc:PayableAmount"),
    )


CATEGORIES = {
    "S": "standard rate",
    "AE": "reverse charge",
    "K": "intra-community supply",
}


def render(
    kind: str,
    xml: bytes,
    sha256: str,
    *,
    created: datetime,
    font_dir: Path | None = None,
) -> bytes:
    """The invoice as a PDF: its number and date, the two parties, the lines, the VAT and the
    amount due, and the SHA-256 of the XML it renders."""
    s = summary(xml)
    what = "material" if kind == "material" else "transport"
    doc = Sheet(created=created, title=f"Invoice {s.number}", font_dir=font_dir)
    doc.line(f"Invoice {s.number}", size=16, bold=True)
    doc.line(f"Issued {s.issue_date} \u2014 {what} of deal (match) {s.buyer_reference}", size=9)
    doc.paragraph(
        "EN 16931 electronic invoice (UBL 2.1, Peppol BIS Billing 3.0); this PDF shows it for"
        f" people. SHA-256 of the XML: {sha256}",
        size=7,
        grey=True,
    )
    for label, party in (("Supplier", s.supplier), ("Customer", s.customer)):
        doc.gap(6)
        doc.pair(label, party.name)
        for text in party.lines:
            doc.pair("", text)
    doc.gap(6)
    if s.delivery_date or s.delivery_country:
        doc.pair("Delivery", " ".join(x for x in (s.delivery_date, s.delivery_country) if x))
    for i, line in enumerate(s.lines, 1):
        doc.gap(6)
        doc.pair(f"Line {i}", line.name)
        if line.description:
            doc.pair("", line.description)
        unit = UNITS.get(line.unit, line.unit)
        doc.pair("", f"{line.quantity} {unit} \u00d7 {line.price} {s.currency}")
        doc.pair("", f"{line.amount} {s.currency}")
    doc.gap(6)
    category = CATEGORIES.get(s.vat_category, s.vat_category)
    doc.pair("Net amount", f"{s.taxable} {s.currency}")
    doc.pair("VAT", f"{s.tax} {s.currency} ({category}, {s.vat_rate} %)")
    if s.vat_reason:
        doc.paragraph(s.vat_reason, size=8)
    doc.line(f"Amount due: {s.payable} {s.currency}", size=11, bold=True)
    return doc.render()
