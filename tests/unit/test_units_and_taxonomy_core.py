from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from marketplace.core.taxonomy import Taxonomy, UnknownCode, WasteEntry
from marketplace.core.units import IncompatibleUnits, convert, to_tonnes

SMALL = [
    WasteEntry("15", "chapter", "waste packaging"),
    WasteEntry("1501", "subchapter", "packaging"),
    WasteEntry("150102", "entry", "plastic packaging"),
    WasteEntry("150110", "entry", "packaging containing residues of hazardous substances", True),
]


def test_lookup_accepts_the_printed_forms() -> None:
    tax = Taxonomy(SMALL)
    assert tax.entry("150102").description == "plastic packaging"
    assert tax.entry("15 01 02").code == "150102"
    assert tax.entry("15 01 10*").hazardous
    assert tax.entry("150110").display() == "15 01 10*"
    assert [e.code for e in tax.children("1501")] == ["150102", "150110"]


@pytest.mark.parametrize("code", ["150199", "1501", "15", "abc", ""])
def test_only_listed_six_digit_entries_are_valid(code: str) -> None:
    with pytest.raises(UnknownCode):
        Taxonomy(SMALL).entry(code)


@pytest.mark.parametrize(
    ("rows", "reason"),
    [
        ([WasteEntry("1501", "subchapter", "orphan")], "no parent"),
        ([*SMALL, WasteEntry("150102", "entry", "again")], "duplicate"),
        ([WasteEntry("150", "chapter", "bad")], "not a chapter code"),
    ],
)
def test_inconsistent_lists_are_refused(rows: list[WasteEntry], reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        Taxonomy(rows)


def test_mass_units_convert_both_ways() -> None:
    assert to_tonnes(2500, "kg") == 2.5
    assert convert(3, "t", "kg") == 3000
    assert convert(10, "m3", "t", density_t_per_m3=0.2) == pytest.approx(2.0)
    assert convert(2, "t", "m3", density_t_per_m3=0.5) == pytest.approx(4.0)


@pytest.mark.parametrize(
    ("unit", "to", "density"),
    [("m3", "t", None), ("t", "m3", None), ("pieces", "t", 1.0), ("kg", "pieces", None)],
)
def test_conversions_without_the_needed_facts_are_refused(
    unit: str, to: str, density: float | None
) -> None:
    with pytest.raises(IncompatibleUnits):
        convert(1.0, unit, to, density)  # type: ignore[arg-type]


@given(
    amount=st.floats(0.001, 1e6),
    unit=st.sampled_from(["t", "kg", "m3"]),
    to=st.sampled_from(["t", "kg", "m3"]),
    density=st.floats(0.01, 20),
)
def test_conversion_round_trips(amount: float, unit: str, to: str, density: float) -> None:
    there = convert(amount, unit, to, density)  # type: ignore[arg-type]
    back = convert(there, to, unit, density)  # type: ignore[arg-type]
    assert back == pytest.approx(amount, rel=1e-9)
