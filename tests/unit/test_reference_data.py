"""Integrity of the reference data shipped in marketplace/core/data (counts, formats, sources)."""

from __future__ import annotations

import csv
import re
from typing import get_args

from marketplace.reference import DATA, material_factors, substitutions, transport_factors
from schemas.common import VehicleType


def rows(name: str) -> list[dict[str, str]]:
    with (DATA / name).open(encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))


def test_material_factors_are_complete_and_sourced() -> None:
    table = rows("material_factors.tsv")
    assert len(table) == 17
    factors = material_factors()
    assert len(factors) == 59  # 040210 withdrawn on 2026-11-30 (factors.SOURCE.md)
    assert all(re.fullmatch(r"[0-9]{6}", code) for code in factors)
    for row in table:
        for column in ("virgin_kgco2e_per_t", "reuse_kgco2e_per_t", "disposal_kgco2e_per_t"):
            assert float(row[column]) > 0, (row["material"], column)
        assert row["disposal_route"] in ("landfill", "combustion")
    # Reuse saves CO2e for every material the exchange trades.
    assert all(f.saved_per_t > 0 for f in factors.values())
    sources = (DATA / "factors.SOURCE.md").read_text(encoding="utf-8")
    for source_id in {r["source_id"] for r in table} | {
        r["source_id"] for r in rows("transport_factors.tsv")
    }:
        assert f"## {source_id}" in sources


def test_transport_factors_cover_every_vehicle_type() -> None:
    factors = transport_factors()
    assert set(factors) == set(get_args(VehicleType))
    assert all(0 < v < 2 for v in factors.values())
    # Heavier, fuller vehicles emit less per tonne-km than vans.
    assert factors["articulated_truck"] < factors["rigid_truck"] < factors["van"]


def test_substitutions_are_symmetric_six_digit_codes() -> None:
    subs = substitutions()
    assert subs["150102"] == ("200139",)
    for code, others in subs.items():
        assert re.fullmatch(r"[0-9]{6}", code)
        for other in others:
            assert code in subs[other]
