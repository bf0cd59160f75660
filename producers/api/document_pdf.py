"""The PDF of a deal's document (#22 item 2), for people: the content that
marketplace/core/documents.py built, laid out with marketplace/pdf.py (fpdf2, DejaVu Sans
embedded, so a Bulgarian party's name and address print in Cyrillic). The JSON file for systems
is the content itself; this is the same content in sections of labelled lines, with the version,
whether and when its issuer approved it, and the SHA-256 that identifies it. The same content,
approval and date give the same bytes."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from marketplace.pdf import MARGIN, WIDTH, Document

TITLES = {"order": "Order", "transport": "Transport document", "delivery": "Delivery report"}
# Sections in the order they are printed (the rest follow in the content's order); fields that
# say what the document is, not what it holds, are printed in the heading or not at all.
ORDER = (
    "buyer",
    "seller",
    "carrier",
    "material",
    "quantity",
    "price",
    "pickup",
    "delivery",
    "planned",
    "picked_up",
    "delivered",
    "cmr",
    "movement_document",
    "annex_vii",
    "confirmations",
)
SKIP = {"document", "format", "issued_by", "sources", "missing"}
SECTION_NAMES = {
    "cmr": "Consignment note (CMR)",
    "movement_document": "Movement document (hazardous waste)",
    "annex_vii": "Annex VII information (Regulation on shipments of waste)",
    "picked_up": "Picked up (carrier's confirmation)",
    "delivered": "Delivered (carrier's confirmation)",
}
LABEL_WIDTH = 190.0
_ISO_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}")


class Sheet(Document):
    """A document of labelled lines: the label on the left, its value beside it."""

    def pair(self, label: str, value: str, size: float = 9) -> None:
        self._header = None
        self.need(size * 1.5)
        self.y += size * 1.5
        self._font(size, False)
        self.pdf.set_text_color(90)
        self._text(MARGIN, self.y, self._fit(label, LABEL_WIDTH - 6))
        self.pdf.set_text_color(0)
        x = MARGIN + LABEL_WIDTH
        self._text(x, self.y, self._fit(value, WIDTH - MARGIN - x))


def _label(key: str) -> str:
    """'1_sender' -> '1 Sender', 'vat_number' -> 'Vat number' (CMR boxes keep their number)."""
    words = key.split("_")
    if words[0].isdigit():
        return f"{words[0]} " + " ".join(words[1:]).capitalize()
    return " ".join(words).capitalize()


def _value(value: Any) -> str:
    if value is None:
        return "\u2014"  # to be completed on the paper, or not known
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:,.3f}".rstrip("0").rstrip(".")
    if isinstance(value, str) and _ISO_TIME.match(value):
        return datetime.fromisoformat(value).astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return str(value)


def _party(value: dict[str, Any]) -> list[str]:
    """A party as lines: legal name (else the name it registered under), address, VAT, Peppol."""
    lines = [value.get("legal_name") or f"{value.get('name')} (legal data not declared)"]
    address = value.get("address")
    if isinstance(address, dict):
        lines.append(address["street"])
        lines.append(f"{address['postcode']} {address['city']}, {address['country']}")
    if value.get("vat_number"):
        lines.append(f"VAT {value['vat_number']}")
    if value.get("peppol_id"):
        lines.append(f"Peppol {value['peppol_id']}")
    if value.get("site"):
        site = value["site"]
        lines.append(f"site {site['lat']:.4f}, {site['lon']:.4f} {site.get('region') or ''}")
    return lines


def _is_party(value: Any) -> bool:
    return isinstance(value, dict) and "partner_id" in value and "legal_name" in value


def _rows(doc: Sheet, prefix: str, value: Any) -> None:
    """Labelled lines for a value: a party as its block, a dict field by field, a list item by
    item."""
    if _is_party(value):
        for i, line in enumerate(_party(value)):
            doc.pair(prefix if i == 0 else "", line)
    elif isinstance(value, dict):
        for key, inner in value.items():
            if key in ("partner_id", "event_id"):
                continue
            _rows(doc, f"{prefix} \u203a {_label(key)}" if prefix else _label(key), inner)
    elif isinstance(value, list):
        if all(not isinstance(v, dict | list) for v in value):
            doc.pair(prefix, ", ".join(_value(v) for v in value) or "\u2014")
        else:
            for i, inner in enumerate(value, 1):
                _rows(doc, f"{prefix} {i}", inner)
    else:
        doc.pair(prefix, _value(value))


def render(
    kind: str,
    version: int,
    sha256: str,
    content: dict[str, Any],
    approval: dict[str, Any] | None,
    *,
    created: datetime,
    font_dir: Path | None = None,
) -> bytes:
    title = TITLES.get(kind, kind)
    match_id = content.get("match_id", "")
    doc = Sheet(created=created, title=f"{title} {match_id}", font_dir=font_dir)
    doc.line(f"{title} \u2014 version {version}", size=16, bold=True)
    doc.line(f"Deal (match) {match_id}", size=9)
    if approval is not None:
        doc.line(
            f"Issued and approved by the {content.get('issued_by', 'issuer')} on"
            f" {approval['approved_at'][:16].replace('T', ' ')} UTC",
            size=9,
            bold=True,
        )
    else:
        doc.line(
            f"DRAFT: not yet approved by the {content.get('issued_by', 'issuer')}",
            size=9,
            bold=True,
        )
    if content.get("missing"):
        doc.paragraph("Legal data not declared: " + ", ".join(content["missing"]), grey=True)
    doc.paragraph(f"SHA-256 of the content (the JSON file): {sha256}", size=7, grey=True)
    keys = [k for k in ORDER if k in content] + [
        k for k in content if k not in ORDER and k not in SKIP
    ]
    for key in keys:
        value = content[key]
        doc.gap(6)
        if isinstance(value, dict) and not _is_party(value):
            doc.line(SECTION_NAMES.get(key, _label(key)), size=11, bold=True)
            _rows(doc, "", value)
        else:
            _rows(doc, SECTION_NAMES.get(key, _label(key)), value)
    doc.gap(10)
    doc.paragraph(
        "Built by the exchange from the deal's events: " + ", ".join(content.get("sources", [])),
        size=7,
        grey=True,
    )
    return doc.render()
