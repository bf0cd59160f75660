"""The invoices of a deal (#22 item 2), from its documents: the material invoice once the buyer
has approved the delivery report, and the carrier's transport invoice once it has confirmed the
delivery. Pure: the deal (marketplace/core/documents.py), the parties' legal data, the weight
the approved delivery report names, the VAT rates and currencies come in; who issues to whom
and a builder of the UBL XML for a number and an issue date go out
(marketplace/core/invoice.py does the invoice itself).

- The material is billed at the price per unit of the confirmed match, which the order states
  (the delivered price: the material with the transport), for the quantity actually delivered:
  the weight the carrier measured at delivery, as the approved delivery report gives it (in the
  order's unit: tonnes as they are, kilograms times 1000, cubic metres and pieces in proportion
  to the planned weight). The party that is paid issues it (`material_billing`).
- The transport is billed by the carrier to the seller, for the price it won. The seller sells
  at a delivered price, so it is the one that ships the material and pays for its carriage; the
  order says so (its price includes the transport).

Whatever is refused is an `InvoiceError` whose field names the deal's party at fault
(`seller.peppol_id`, `carrier.vat_number`, ...) rather than the invoice's (`supplier.`,
`customer.`), so the pages can tell who has to complete what."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from typing import Literal

from marketplace.core.documents import Deal, Party
from marketplace.core.invoice import (
    UNIT_CODES,
    Billing,
    Invoice,
    InvoiceError,
    Line,
    Supply,
    VatTreatment,
    build_invoice,
    invoice_number,
    material_billing,
    transport_billing,
    vat_treatment,
)
from marketplace.core.legal import LegalData

InvoiceKind = Literal["material", "transport"]
INVOICE_KINDS: tuple[InvoiceKind, ...] = ("material", "transport")
Role = Literal["seller", "buyer", "carrier"]
MILLI = Decimal("0.001")


@dataclass(frozen=True, slots=True)
class Plan:
    """Who invoices whom for a deal, and how to build the invoice once it has its number."""

    kind: InvoiceKind
    issuer: Role
    issuer_id: str
    customer: Role
    customer_id: str
    billing: Billing
    vat: VatTreatment
    line: Line
    currency: str
    delivery_date: date
    delivery_country: str

    def invoice(self, number: int, issue_date: date, buyer_reference: str) -> Invoice:
        return Invoice(
            number=invoice_number(number),
            issue_date=issue_date,
            currency=self.currency,
            supplier=self.billing.supplier,
            customer=self.billing.customer,
            lines=[self.line],
            vat=self.vat,
            buyer_reference=buyer_reference,
            delivery_date=self.delivery_date,
            delivery_country=self.delivery_country,
        )


def issuer_of_material(deal: Deal) -> Role | None:
    """Who issues the material invoice: the seller for a price above zero, the buyer (which is
    paid to take the material) for one below; None at a price of zero."""
    c = deal.confirmed
    if c is None or c.unit_price == 0:
        return None
    return "seller" if c.unit_price > 0 else "buyer"


def delivered_quantity(deal: Deal, delivered_t: float) -> Decimal:
    """The quantity delivered in the order's unit, from the weight delivered (to 0.001)."""
    c = deal.confirmed
    if c is None:
        raise InvoiceError("match", "the match is not confirmed")
    weight = Decimal(str(delivered_t))
    if c.unit == "t":
        quantity = weight
    elif c.unit == "kg":
        quantity = weight * 1000
    else:
        quantity = Decimal(str(c.quantity)) * weight / Decimal(str(c.weight_t))
    return quantity.quantize(MILLI, rounding=ROUND_HALF_UP)


def _legal(role: Role, parties: Mapping[str, Party], partner_id: str) -> LegalData:
    party = parties.get(partner_id)
    if party is None or party.legal is None:
        raise InvoiceError(f"{role}.legal_data", "has not declared its legal data")
    return party.legal


def _renamed(error: InvoiceError, supplier: Role, customer: Role) -> InvoiceError:
    """The error with the invoice's party (supplier, customer) replaced by the deal's role."""
    head, dot, rest = error.field.partition(".")
    role = {"supplier": supplier, "customer": customer}.get(head)
    if role is None or not dot:
        return error
    return InvoiceError(f"{role}.{rest}", error.reason)


def _country(deal: Deal, receiver: LegalData | Party | None) -> str:
    """Where the material went: the delivery place's country, else the receiver's address's."""
    c = deal.confirmed
    assert c is not None
    legal = receiver.legal if isinstance(receiver, Party) else receiver
    country = c.delivery.country or (legal.country if legal is not None else None)
    if country is None:
        raise InvoiceError("delivery.country", "the delivery's country is not known")
    return country


def material_plan(
    deal: Deal,
    parties: Mapping[str, Party],
    *,
    delivered_t: float,
    delivered_on: date,
    rates: Mapping[str, Decimal],
    currencies: Mapping[str, str],
) -> Plan:
    c, delivery = deal.confirmed, deal.delivery
    if c is None:
        raise InvoiceError("match", "the match is not confirmed")
    if delivery is None:
        raise InvoiceError("delivery", "the carrier has not confirmed the delivery")
    if c.unit not in UNIT_CODES:
        raise InvoiceError("unit", f"{c.unit} is not a unit an invoice can carry")
    seller = _legal("seller", parties, c.seller_id)
    buyer = _legal("buyer", parties, c.buyer_id)
    billing = material_billing(holder=seller, receiver=buyer, unit_price=Decimal(str(c.unit_price)))
    issuer: Role = "seller" if billing.issuer == "holder" else "buyer"
    customer: Role = "buyer" if issuer == "seller" else "seller"
    country = _country(deal, buyer)
    try:
        vat = vat_treatment(
            supply=billing.supply,
            supplier_country=billing.supplier.country,
            customer_country=billing.customer.country,
            customer_vat=billing.customer.vat_number,
            dispatched_to=country,
            rates=rates,
            invoice_currency=c.currency,
            currencies=currencies,
        )
    except InvoiceError as error:
        raise _renamed(error, issuer, customer) from None
    title = c.material.title or f"List of Waste {c.material.display}"
    name = title if billing.supply is Supply.GOODS else f"Taking back: {title}"
    line = Line(
        name=name[:200],
        quantity=delivered_quantity(deal, delivered_t),
        unit=c.unit,
        unit_price=billing.unit_price,
        waste_code=c.material.display,
    )
    return Plan(
        kind="material",
        issuer=issuer,
        issuer_id=c.seller_id if issuer == "seller" else c.buyer_id,
        customer=customer,
        customer_id=c.buyer_id if customer == "buyer" else c.seller_id,
        billing=billing,
        vat=vat,
        line=line,
        currency=c.currency,
        delivery_date=delivered_on,
        delivery_country=country,
    )


def transport_plan(
    deal: Deal,
    parties: Mapping[str, Party],
    *,
    rates: Mapping[str, Decimal],
    currencies: Mapping[str, str],
) -> Plan:
    c, a, delivery = deal.confirmed, deal.awarded, deal.delivery
    if c is None:
        raise InvoiceError("match", "the match is not confirmed")
    if a is None:
        raise InvoiceError("transport", "the transport is not awarded")
    if delivery is None:
        raise InvoiceError("delivery", "the carrier has not confirmed the delivery")
    carrier = _legal("carrier", parties, a.carrier_id)
    seller = _legal("seller", parties, c.seller_id)
    billing = transport_billing(carrier=carrier, customer=seller, price=Decimal(str(a.price)))
    country = _country(deal, parties.get(c.buyer_id))
    try:
        vat = vat_treatment(
            supply=billing.supply,
            supplier_country=billing.supplier.country,
            customer_country=billing.customer.country,
            customer_vat=billing.customer.vat_number,
            dispatched_to=country,
            rates=rates,
            invoice_currency=a.currency,
            currencies=currencies,
        )
    except InvoiceError as error:
        raise _renamed(error, "carrier", "seller") from None
    title = c.material.title or f"List of Waste {c.material.display}"
    line = Line(
        name=f"Road transport: {title}"[:200],
        quantity=Decimal(1),
        unit="job",
        unit_price=billing.unit_price,
        waste_code=c.material.display,
        description=f"Transport job {a.job_id}, {delivery.weight_t:g} t delivered",
    )
    return Plan(
        kind="transport",
        issuer="carrier",
        issuer_id=a.carrier_id,
        customer="seller",
        customer_id=c.seller_id,
        billing=billing,
        vat=vat,
        line=line,
        currency=a.currency,
        delivery_date=delivery.at.date(),
        delivery_country=country,
    )


def build_checked(plan: Plan, number: int, issue_date: date, buyer_reference: str) -> bytes:
    """The invoice's XML, with a refusal naming the deal's party rather than the invoice's."""
    try:
        return build_invoice(plan.invoice(number, issue_date, buyer_reference))
    except InvoiceError as error:
        raise _renamed(error, plan.issuer, plan.customer) from None
