"""How a field an invoice lacks reads on the pages (#22 item 2): `seller.peppol_id` as "the
seller: Peppol participant id", in the person's language. Used by the deal room's list of
invoices and by the refusal of an invoice (producers/web/invoices.py)."""

from __future__ import annotations

from aiohttp import web

from producers.web.common import gettext_of


def field_label(request: web.Request, field: str) -> str:
    """`seller.peppol_id` as a person reads it: "the seller: Peppol participant id"."""
    _ = gettext_of(request)
    role, _dot, what = field.partition(".")
    roles = {"seller": _("the seller"), "buyer": _("the buyer"), "carrier": _("the carrier")}
    names = {
        "legal_data": _("legal data (legal name and address)"),
        "peppol_id": _("Peppol participant id"),
        "vat_number": _("VAT number"),
        "country": _("country"),
        "payee_iban": _("bank account (IBAN)"),
        "supplier_contact": _("contact desk (name, telephone, e-mail)"),
        "legal_name": _("legal name"),
        "street": _("street"),
        "postcode": _("post code"),
        "city": _("city"),
    }
    if role in roles:
        return f"{roles[role]}: {names.get(what, what)}"
    return str(names.get(field, field))
