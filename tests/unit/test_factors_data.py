"""Every List of Waste entry is classified by code_factors.tsv: a sourced material factor
from material_factors.tsv, or no factor and the reason why."""

from __future__ import annotations

import csv
import re
import shutil
from collections import Counter
from pathlib import Path

import pytest

from marketplace import reference
from marketplace.core.economics import MaterialFactor
from marketplace.reference import (
    DATA,
    DISPLACES,
    factor_coverage,
    list_of_waste,
    material_factors,
    materials,
)

# Entries with a factor per chapter on 2026-11-30; raise these when coverage grows.
CHAPTER_FLOOR = {"02": 3, "04": 4, "15": 6, "17": 14, "19": 9, "20": 7}

# The 44 codes that had a factor before code_factors.tsv, with their figures then, less 040210
# (grease and wax, which carried the clothing factor: withdrawn on 2026-11-30, see
# factors.SOURCE.md).
_BEFORE: dict[tuple[float, float, float], str] = {
    (22310, 152.25, 496.68303): "040209,040215,040221,040222,150109,191208,200110,200111",
    (3164.78049, 1566.38638, 8.88386): "020104,070213,120105,150102,160119,170203,191204,200139",
    (1282.74402, 1063.01519, 1164.39015): "150101,191201,200101",
    (269.50416, 38.54288, 925.24423): "030101,030105,150103,170201,191207,200138",
    (1402.76667, 823.18954, 8.88386): "101112,150107,160120,170202,191205,200102",
    (2854.91851, 1726.72731, 8.88386): "120101,120102,150104,170405,191202,200140",
    (9106.91851, 990.4781, 8.88386): "120103,120104,170402",
    (7.75127, 2.21, 1.23393): "170101,170102,170107",
}


def rows(name: str) -> list[dict[str, str]]:
    with (DATA / name).open(encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))


def test_every_entry_is_classified_once_in_list_order() -> None:
    entries = [e.code for e in list_of_waste().entries("entry")]
    table = rows("code_factors.tsv")
    assert [r["code"] for r in table] == entries
    assert len(entries) == 842
    coverage = factor_coverage()
    assert list(coverage) == entries
    for row in table:
        assert bool(row["material"]) != bool(row["reason"]), row["code"]
        assert set(row) == {"code", "material", "reason", "note"}
    known = sum(c.known for c in coverage.values())
    assert known + sum(c.reason is not None for c in coverage.values()) == 842


def test_materials_are_sourced_and_named_materials_exist() -> None:
    table = rows("material_factors.tsv")
    assert list(table[0]) == [
        "material",
        "displaces",
        "virgin_kgco2e_per_t",
        "reuse_kgco2e_per_t",
        "disposal_route",
        "disposal_kgco2e_per_t",
        "source_id",
    ]
    sources = (DATA / "factors.SOURCE.md").read_text(encoding="utf-8")
    for row in table:
        assert row["displaces"] in DISPLACES, row["material"]
        for column in ("virgin_kgco2e_per_t", "reuse_kgco2e_per_t", "disposal_kgco2e_per_t"):
            assert float(row[column]) > 0, (row["material"], column)
        assert f"## {row['source_id']}\n" in sources, row["source_id"]
    known = materials()
    assert len(known) == len(table)
    used = {c.material for c in factor_coverage().values() if c.material is not None}
    assert used <= set(known)
    for c in factor_coverage().values():
        if c.material is not None:
            assert c.displaces == known[c.material].displaces
            assert c.reason is None
        else:
            assert c.reason is not None, c.code
            assert len(c.reason) > 20, c.code
            assert c.displaces is None


def test_hazardous_entries_have_no_factor() -> None:
    low = list_of_waste()
    for code, c in factor_coverage().items():
        if low.is_hazardous(code):
            assert not c.known, code
            assert c.reason is not None, code
            assert c.reason.startswith("hazardous"), code


def test_seed_chapters_keep_their_coverage() -> None:
    per_chapter = Counter(code[:2] for code, c in factor_coverage().items() if c.known)
    for chapter, floor in CHAPTER_FLOOR.items():
        assert per_chapter[chapter] >= floor, (chapter, per_chapter[chapter], floor)
    # Food and farm residues: bakery surplus to animal feed is sourced.
    assert factor_coverage()["020601"].displaces == "animal_feed"


def test_codes_that_had_factors_keep_their_figures() -> None:
    factors = material_factors()
    before = {
        code: MaterialFactor(*figures)
        for figures, codes in _BEFORE.items()
        for code in codes.split(",")
    }
    assert len(before) == 43
    assert not factor_coverage()["040210"].known
    for code, factor in before.items():
        assert factors[code] == factor, code


def test_material_factors_is_the_join() -> None:
    factors = material_factors()
    coverage = factor_coverage()
    assert set(factors) == {code for code, c in coverage.items() if c.known}
    for code, factor in factors.items():
        material = coverage[code].material
        assert material is not None
        assert factor is materials()[material].factor
        assert factor.saved_per_t > 0


@pytest.mark.parametrize(
    ("name", "old", "new", "message"),
    [
        (
            "material_factors.tsv",
            "\tanimal_feed\t",
            "\tcompost\t",
            "material_factors.tsv:18: displaces",
        ),
        (
            "code_factors.tsv",
            "020601\tformer_foodstuffs_feed",
            "020601\tbread",
            "code_factors.tsv:",
        ),
        (
            "code_factors.tsv",
            "150102\tplastics\t",
            "150102\t\t",
            "needs either a material or a reason",
        ),
        ("code_factors.tsv", "200399\t", "200398\t", "'200398' is not an entry"),
    ],
)
def test_broken_files_are_named_with_their_line(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    name: str,
    old: str,
    new: str,
    message: str,
) -> None:
    for f in ("material_factors.tsv", "code_factors.tsv"):
        shutil.copy(DATA / f, tmp_path / f)
    path = tmp_path / name
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    monkeypatch.setattr(reference, "DATA", tmp_path)
    for loader in (materials, factor_coverage, material_factors):
        loader.cache_clear()
    try:
        with pytest.raises(ValueError, match=re.escape(message)):
            material_factors()
    finally:
        for loader in (materials, factor_coverage, material_factors):
            loader.cache_clear()
