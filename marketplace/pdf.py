"""The period report's PDF: A4 pages of text lines, table rows and bar charts, written with fpdf2
and DejaVu Sans embedded (only the glyphs used), so a Bulgarian firm's name prints in Cyrillic
and a Swedish one with its å, ä and ö. The font comes from Debian's fonts-dejavu-core (installed
by `infra/fonts.sh install`, which `make setup` runs), or from MARKETPLACE_PDF_FONT_DIR; the font
files are never part of the repository. The same content and creation date give the same bytes.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from fpdf import FPDF

from marketplace.settings import Settings

WIDTH, HEIGHT = 595.0, 842.0  # A4 in points
MARGIN = 50.0
FAMILY = "DejaVuSans"
FONT_FILES = {"": "DejaVuSans.ttf", "B": "DejaVuSans-Bold.ttf"}  # fpdf2 style -> file
# Without a date of its own a document says it was made at this fixed time, never "now".
FIXED_DATE = datetime(2000, 1, 1, tzinfo=UTC)
BAR_RGB = (41, 153, 115)
RULE_GREY = 160
NOTE_GREY = 110
ELLIPSIS = "\u2026"
PAD = 4.0  # between a right-aligned cell and the next column


class FontMissing(RuntimeError):
    """The Unicode font the PDF reports embed is not installed."""


def font_files(folder: Path | None = None) -> dict[str, Path]:
    """The regular and bold DejaVu Sans files, from `folder` or the pdf_font_dir setting."""
    where = Settings.from_env().pdf_font_dir if folder is None else folder
    files = {style: where / name for style, name in FONT_FILES.items()}
    missing = [str(path) for path in files.values() if not path.is_file()]
    if missing:
        raise FontMissing(
            f"PDF reports embed DejaVu Sans, which is missing ({', '.join(missing)}): run "
            "`infra/fonts.sh install` as root (`make setup` does; it installs Debian's "
            "fonts-dejavu-core), or set MARKETPLACE_PDF_FONT_DIR to a folder holding "
            f"{' and '.join(FONT_FILES.values())}"
        )
    return files


class Document:
    """Pages filled top to bottom: `line`, `paragraph`, `header` + `row` and `bars` move down and
    start a new page when the current one is full (a table's header is repeated there)."""

    def __init__(
        self, *, created: datetime | None = None, title: str = "", font_dir: Path | None = None
    ) -> None:
        pdf = FPDF(orientation="portrait", unit="pt", format="A4")
        pdf.set_auto_page_break(False)
        pdf.set_margins(MARGIN, MARGIN, MARGIN)
        date = created or FIXED_DATE
        pdf.set_creation_date(date if date.tzinfo else date.replace(tzinfo=UTC))
        pdf.set_creator("marketplace report")
        if title:
            pdf.set_title(title)
        for style, path in font_files(font_dir).items():
            pdf.add_font(FAMILY, style, path)
        self.pdf = pdf
        self.y = 0.0  # distance of the cursor from the top of the page
        self._header: tuple[list[str], list[float], float] | None = None
        self._new_page()

    def _new_page(self) -> None:
        self.pdf.add_page()
        self.y = MARGIN

    def need(self, height: float) -> bool:
        """Start a new page unless `height` more fits on this one; True when it started one."""
        if self.y + height <= HEIGHT - MARGIN:
            return False
        self._new_page()
        return True

    def _font(self, size: float, bold: bool) -> None:
        self.pdf.set_font(FAMILY, "B" if bold else "", size)

    def _fit(self, value: str, width: float) -> str:
        """`value`, cut with an ellipsis if it is wider than `width` in the current font."""
        if self.pdf.get_string_width(value) <= width:
            return value
        while value and self.pdf.get_string_width(value + ELLIPSIS) > width:
            value = value[:-1]
        return value.rstrip() + ELLIPSIS

    def _text(self, x: float, baseline: float, value: str) -> None:
        if value:
            self.pdf.text(x, baseline, value)

    def line(self, value: str, size: float = 10, bold: bool = False, x: float = MARGIN) -> None:
        self._header = None
        self.need(size * 1.5)
        self.y += size * 1.5
        self._font(size, bold)
        self._text(x, self.y, self._fit(value, WIDTH - MARGIN - x))

    def paragraph(
        self, value: str, size: float = 9, bold: bool = False, grey: bool = False
    ) -> None:
        """`value` wrapped at word boundaries to the width between the margins."""
        self._font(size, bold)
        lines: list[str] = []
        for word in value.split():
            if lines and self.pdf.get_string_width(f"{lines[-1]} {word}") <= WIDTH - 2 * MARGIN:
                lines[-1] = f"{lines[-1]} {word}"
            else:
                lines.append(word)
        if grey:
            self.pdf.set_text_color(NOTE_GREY)
        for text in lines:
            self.line(text, size, bold)
        self.pdf.set_text_color(0)

    def header(self, cells: Sequence[str], widths: Sequence[float], size: float = 8) -> None:
        """A table's column names in bold over a thin rule, repeated after a page break."""
        self.need(size * 3.5)  # never alone at the foot of a page
        self._draw_header(list(cells), list(widths), size)
        self._header = (list(cells), list(widths), size)

    def _draw_header(self, cells: list[str], widths: list[float], size: float) -> None:
        self._cells(cells, widths, size, bold=True)
        self.pdf.set_draw_color(RULE_GREY)
        self.pdf.set_line_width(0.5)
        self.pdf.line(MARGIN, self.y + size * 0.45, MARGIN + sum(widths), self.y + size * 0.45)
        self.pdf.set_draw_color(0)
        self.y += size * 0.3

    def row(
        self, cells: Sequence[str], widths: Sequence[float], size: float = 9, bold: bool = False
    ) -> None:
        """One table row: the first cell left-aligned, the others (figures) right-aligned."""
        if self.need(size * 1.5) and self._header:
            self._draw_header(*self._header)
        self._cells(list(cells), list(widths), size, bold)

    def _cells(self, cells: list[str], widths: list[float], size: float, bold: bool) -> None:
        self.y += size * 1.5
        self._font(size, bold)
        x = MARGIN
        for i, (cell, w) in enumerate(zip(cells, widths, strict=False)):
            text = self._fit(cell, w - PAD)
            if i == 0:
                self._text(x, self.y, text)
            else:
                self._text(x + w - PAD - self.pdf.get_string_width(text), self.y, text)
            x += w

    def bars(self, items: list[tuple[str, float]], unit: str, width: float = 290) -> None:
        """A horizontal bar per item, scaled to the largest, its label left and value right."""
        self._header = None
        top = max((v for _, v in items), default=0.0) or 1.0
        label_width = 150.0
        for label, value in items:
            self.need(16)
            self.y += 16
            self._font(8, False)
            self._text(MARGIN, self.y - 2, self._fit(label, label_width - PAD))
            w = max(0.0, value) / top * width
            if w > 0:
                self.pdf.set_fill_color(*BAR_RGB)
                self.pdf.rect(MARGIN + label_width, self.y - 11, w, 11, style="F")
            self._text(MARGIN + label_width + w + 5, self.y - 2, f"{value:,.1f} {unit}")

    def gap(self, height: float = 8) -> None:
        self._header = None
        self.y += height

    def render(self) -> bytes:
        """The finished PDF, with "page n of N" at the foot of every page."""
        pdf = self.pdf
        last = pdf.page
        pdf.set_text_color(NOTE_GREY)
        for number in range(1, pdf.pages_count + 1):
            pdf.page = number
            self._font(7, False)
            note = f"{number} / {pdf.pages_count}"
            pdf.text(WIDTH - MARGIN - pdf.get_string_width(note), HEIGHT - MARGIN / 2, note)
        pdf.page = last
        pdf.set_text_color(0)
        return bytes(pdf.output())
