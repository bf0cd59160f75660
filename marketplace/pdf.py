"""A small PDF writer for the period report: A4 pages of text lines and filled rectangles in
the standard Helvetica fonts. No dependency, and the same input gives the same bytes."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

WIDTH, HEIGHT = 595.0, 842.0  # A4 in points
MARGIN = 50.0


def _text(value: str) -> str:
    raw = value.encode("cp1252", errors="replace").decode("latin-1")
    return raw.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")


@dataclass
class Page:
    ops: list[str] = field(default_factory=list)

    def text(self, x: float, y: float, value: str, size: float = 10, bold: bool = False) -> None:
        font = "F2" if bold else "F1"
        self.ops.append(f"BT /{font} {size:g} Tf {x:.1f} {y:.1f} Td ({_text(value)}) Tj ET")

    def rect(self, x: float, y: float, w: float, h: float, rgb: tuple[float, float, float]) -> None:
        r, g, b = rgb
        self.ops.append(f"{r:.3f} {g:.3f} {b:.3f} rg {x:.1f} {y:.1f} {w:.1f} {h:.1f} re f 0 g")


class Document:
    """Pages filled top to bottom; `line` moves down and starts a new page when full."""

    def __init__(self) -> None:
        self.pages: list[Page] = [Page()]
        self.y = HEIGHT - MARGIN

    @property
    def page(self) -> Page:
        return self.pages[-1]

    def need(self, height: float) -> None:
        if self.y - height < MARGIN:
            self.pages.append(Page())
            self.y = HEIGHT - MARGIN

    def line(self, value: str, size: float = 10, bold: bool = False, x: float = MARGIN) -> None:
        self.need(size * 1.5)
        self.y -= size * 1.5
        self.page.text(x, self.y, value, size, bold)

    def row(
        self, cells: Sequence[str], widths: Sequence[float], size: float = 9, bold: bool = False
    ) -> None:
        self.need(size * 1.5)
        self.y -= size * 1.5
        x = MARGIN
        for cell, w in zip(cells, widths, strict=False):
            self.page.text(x, self.y, cell, size, bold)
            x += w

    def bars(self, items: list[tuple[str, float]], unit: str, width: float = 300) -> None:
        top = max((v for _, v in items), default=0.0) or 1.0
        for label, value in items:
            self.need(16)
            self.y -= 16
            self.page.text(MARGIN, self.y + 2, label[:28], 9)
            w = max(0.0, value) / top * width
            self.page.rect(MARGIN + 150, self.y, w, 11, (0.16, 0.6, 0.45))
            self.page.text(MARGIN + 156 + w, self.y + 2, f"{value:,.1f} {unit}", 8)

    def gap(self, height: float = 8) -> None:
        self.y -= height

    def render(self) -> bytes:
        objects: list[bytes] = []

        def add(body: bytes) -> int:
            objects.append(body)
            return len(objects)

        catalog = add(b"")  # filled in below
        pages = add(b"")
        font = "<< /Type /Font /Subtype /Type1 /BaseFont /%s /Encoding /WinAnsiEncoding >>"
        regular = add((font % "Helvetica").encode())
        bold = add((font % "Helvetica-Bold").encode())
        kids = []
        for page in self.pages:
            stream = "\n".join(page.ops).encode("latin-1")
            content = add(b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream")
            kids.append(
                add(
                    (
                        f"<< /Type /Page /Parent {pages} 0 R /MediaBox [0 0 {WIDTH:g} {HEIGHT:g}]"
                        f" /Resources << /Font << /F1 {regular} 0 R /F2 {bold} 0 R >> >>"
                        f" /Contents {content} 0 R >>"
                    ).encode()
                )
            )
        objects[catalog - 1] = f"<< /Type /Catalog /Pages {pages} 0 R >>".encode()
        objects[pages - 1] = (
            f"<< /Type /Pages /Kids [{' '.join(f'{k} 0 R' for k in kids)}] /Count {len(kids)} >>"
        ).encode()
        out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
        offsets = []
        for number, body in enumerate(objects, start=1):
            offsets.append(len(out))
            out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
        xref = len(out)
        out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
        for offset in offsets:
            out += b"%010d 00000 n \n" % offset
        out += b"trailer\n<< /Size %d /Root %d 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
            len(objects) + 1,
            catalog,
            xref,
        )
        return bytes(out)
