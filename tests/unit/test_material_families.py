"""Integrity of the material families (marketplace/core/data/material_families.tsv), the key of
the market topics: every entry has one, and every pair that can trade shares one."""

from __future__ import annotations

import pytest

from marketplace.core import families
from marketplace.core.families import SHARED, Families, family_of, foreign_codes, parse
from marketplace.reference import DATA, factor_coverage, list_of_waste, substitutions

# The material of a factor (material_factors.tsv) and the family its entries belong to.
FAMILY_OF_MATERIAL = {
    "plastics": "plastics",
    "plastics_pet": "plastics",
    "plastics_hdpe": "plastics",
    "plastics_ldpe": "plastics",
    "plastics_pp": "plastics",
    "paper_board": "paper",
    "wood": "wood",
    "glass": "glass",
    "steel": "metals",
    "aluminium": "metals",
    "scrap_metal": "metals",
    "textiles": "textiles",
    "aggregates_concrete": "aggregates",
    "asphalt": "aggregates",
    "former_foodstuffs_feed": "organics",
}


def test_every_entry_has_a_family_in_the_list_order() -> None:
    entries = [e.code for e in list_of_waste().entries("entry")]
    assert len(entries) == 842
    assert list(families.table()) == entries
    for code in entries:
        family = family_of(code)
        assert family in SHARED or family == code[:4], code


def test_the_file_format() -> None:
    text = families.TABLE.read_text(encoding="utf-8")
    lines = text.splitlines()
    assert lines[0] == "code\tfamily\tbasis"
    assert len(lines) == 843
    assert text.endswith("\n")
    assert not text.endswith("\n\n")
    for line in lines[1:]:
        code, family, basis = line.split("\t")
        assert basis in ("entry", "subchapter", "own")
        assert (basis == "own") == (family == code[:4]), line
        if basis == "subchapter":
            # A whole sub-chapter: every entry of it has the same family.
            assert {family_of(c) for c in families.table() if c[:4] == code[:4]} == {family}
    assert (DATA / "material_families.SOURCE.md").exists()


def test_every_shared_family_has_members_from_several_subchapters() -> None:
    table = families.table()
    for family in SHARED:
        members = table.members(family)
        assert len({c[:4] for c in members}) >= 2, family


def test_every_substitution_stays_within_one_family() -> None:
    rules = substitutions()
    assert len(rules) >= 12  # six rules, both ways
    for code, others in rules.items():
        for other in others:
            assert family_of(other) == family_of(code), (code, other)


def test_entries_with_a_material_factor_are_in_that_materials_family() -> None:
    for code, coverage in factor_coverage().items():
        if coverage.material is None:
            continue
        family = FAMILY_OF_MATERIAL.get(coverage.material, code[:4])
        assert family_of(code) == family, (code, coverage.material)


def test_the_issues_examples_share_a_family() -> None:
    plastics = ("020104", "070213", "150102", "160119", "170203", "191204", "200139")
    assert {family_of(c) for c in plastics} == {"plastics"}
    assert family_of("15 01 02") == "plastics"
    assert family_of("150106") == "1501"  # mixed packaging: no shared family
    assert family_of("020304") == family_of("020106") == family_of("200108") == "organics"
    assert family_of("999999") == "9999"  # not an entry: its sub-chapter, so it still has a key


def test_foreign_codes_names_those_of_another_family_once() -> None:
    assert foreign_codes("200139", ("150102", "020104")) == ()
    assert foreign_codes("200139", ("150101", "150102", "150101", "170405")) == (
        "150101",
        "170405",
    )


@pytest.mark.parametrize(
    ("rows", "error"),
    [
        ([("15010", "plastics", "entry")], "six-digit"),
        ([("150102", "plastics", "entry"), ("150102", "plastics", "entry")], "twice"),
        ([("150102", "plastic", "entry")], "not a shared family"),
        ([("150106", "1502", "own")], "its family is 1501"),
        ([("150106", "1501", "mine")], "basis"),
    ],
)
def test_a_bad_table_is_refused(rows: list[tuple[str, str, str]], error: str) -> None:
    with pytest.raises(ValueError, match=error):
        Families(rows)  # type: ignore[arg-type]


def test_parse_checks_the_header_and_the_cells() -> None:
    with pytest.raises(ValueError, match="header"):
        parse("code\tfamily\n")
    with pytest.raises(ValueError, match="line 2"):
        parse("code\tfamily\tbasis\n150102\tplastics\n")
    assert len(parse("code\tfamily\tbasis\n150102\tplastics\tentry\n")) == 1
