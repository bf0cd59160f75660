"""The period report's PDF (marketplace/pdf.py over fpdf2, DejaVu Sans embedded): a Bulgarian or
Swedish firm's name reads back letter for letter, the same content gives the same bytes, and a
machine without the font is told how to get it."""

from __future__ import annotations

import io
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from pypdf import PdfReader

from marketplace.app.report import REPORT_SLICES, PeriodReport, to_pdf
from marketplace.kpis import HEADLINES
from marketplace.pdf import Document, FontMissing, font_files

BULGARIAN = "Пловдивска пекарна ООД"
SWEDISH = "Söderhamns Textil AB"
SINCE = datetime(2026, 11, 1, tzinfo=UTC)
UNTIL = datetime(2026, 12, 1, tzinfo=UTC)


def figures(label: str, tonnes: float) -> dict[str, Any]:
    return {
        "slice": label,
        "offers": 3,
        "requests": 2,
        "proposals": 4,
        "confirmed": 1,
        "tonnes_exchanged": tonnes,
        "co2e_saved_kg": tonnes * 410.5,
        "jobs": 1,
        "deliveries": 1,
        "feedback_answers": 2,
        "mean_rating": 4.5,
        "low_ratings": 0,
    }


def sample_report() -> PeriodReport:
    """A report whose slices are named after two firms, as a per-SME or per-region report in
    Bulgarian or Swedish names them."""
    report = PeriodReport(SINCE, UNTIL, events=1234)
    report.headline = {key: 0.5 if key.endswith("rate") else 7.0 for key in HEADLINES}
    names = {
        "day": ["2026-11-02", "2026-11-03"],
        "region": [BULGARIAN, SWEDISH],
        "chapter": ["02", "15"],
        "sector": [BULGARIAN, SWEDISH],
    }
    for kind in REPORT_SLICES:
        report.slices[kind] = {
            "matches": [figures(label, 12.5 * (i + 1)) for i, label in enumerate(names[kind])]
        }
    report.reasons = [{"reason": "quality", "answers": 2, "mean_rating": 4.5, "low_ratings": 0}]
    return report


def pdf_text(data: bytes) -> str:
    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(data)).pages)


def test_cyrillic_and_swedish_names_read_back_exactly() -> None:
    data = to_pdf(sample_report())
    text = pdf_text(data)
    # In the region and sector tables, their bar charts and the partner feedback by region and
    # sector: six times each, letter for letter.
    assert text.count(BULGARIAN) == 6
    assert text.count(SWEDISH) == 6
    words = " ".join(text.split())
    assert "Circular materials exchange: report for 2026-11-01 to 2026-12-01" in words
    assert "Key figures" in text
    assert "Tonnes exchanged by sector" in text
    assert "Partner feedback" in text
    # Embedded subsets (named TAG+font), regular and bold: no standard font that lacks Cyrillic.
    fonts = {name.split(b"+")[-1] for name in re.findall(rb"/BaseFont\s*/([^\s/>]+)", data)}
    assert fonts == {b"DejaVuSansBook", b"DejaVuSansBold"}
    reader = PdfReader(io.BytesIO(data))
    assert reader.metadata is not None
    assert reader.metadata.creation_date == UNTIL  # the period's end, not the clock


def fill(doc: Document) -> None:
    doc.line(BULGARIAN, 14, bold=True)
    doc.paragraph(f"{SWEDISH} " * 40, 8, grey=True)
    doc.header(["name", "tonnes"], [200, 80])
    for i in range(90):  # past the first page: the header repeats there
        doc.row([f"{BULGARIAN} {i}", f"{i * 1.5:,.1f}"], [200, 80], 8)
    doc.bars([(SWEDISH, 3.0), (BULGARIAN, 1.5), ("none", 0.0)], "t")


def test_the_same_content_gives_the_same_bytes() -> None:
    first, second = Document(created=UNTIL), Document(created=UNTIL)
    fill(first)
    fill(second)
    data = first.render()
    assert data == second.render()
    pages = PdfReader(io.BytesIO(data)).pages
    assert len(pages) == 2
    assert pages[1].extract_text().startswith("name tonnes\n")
    assert pages[1].extract_text().rstrip().endswith("2 / 2")


def test_a_missing_font_names_the_fix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(FontMissing, match=r"infra/fonts\.sh install"):
        font_files(tmp_path)
    monkeypatch.setenv("MARKETPLACE_PDF_FONT_DIR", str(tmp_path))
    with pytest.raises(FontMissing, match="fonts-dejavu-core"):
        Document()
