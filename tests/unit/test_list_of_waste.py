"""Integrity of the shipped European List of Waste (marketplace/core/data/list_of_waste.tsv)."""

from __future__ import annotations

from collections import Counter

from marketplace.reference import DATA, list_of_waste, material_factors, substitutions

COUNTS = {"chapter": 20, "subchapter": 111, "entry": 842}


def test_the_list_is_complete() -> None:
    tax = list_of_waste()
    levels = Counter(
        e.level
        for e in [*tax.entries("chapter"), *tax.entries("subchapter"), *tax.entries("entry")]
    )
    assert dict(levels) == COUNTS
    assert [e.code for e in tax.entries("chapter")] == [f"{n:02d}" for n in range(1, 21)]
    assert sum(e.hazardous for e in tax.entries("entry")) == 408
    hazardous = tax.hazardous_codes()
    assert len(hazardous) == 408
    assert all(tax.is_hazardous(code) for code in hazardous)
    assert (DATA / "list_of_waste.SOURCE.md").exists()


def test_well_known_entries() -> None:
    tax = list_of_waste()
    assert tax.entry("150102").description == "Plastic packaging"
    assert not tax.is_hazardous("150102")
    assert tax.is_hazardous("150110")  # packaging containing residues of hazardous substances
    assert tax.entry("20 01 39").code == "200139"
    assert tax.entry("040222").chapter == "04"


def test_every_code_the_exchange_relies_on_is_listed() -> None:
    tax = list_of_waste()
    for code in material_factors():
        tax.entry(code)
    for code, others in substitutions().items():
        for c in (code, *others):
            tax.entry(c)
