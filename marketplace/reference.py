"""Reference data shipped with the project, loaded once: the List of Waste, the emission
factors and the substitution policy."""

from __future__ import annotations

import csv
from functools import cache
from pathlib import Path

from marketplace.core.economics import MaterialFactor
from marketplace.core.taxonomy import Level, Taxonomy, WasteEntry

DATA = Path(__file__).resolve().parent / "core" / "data"
LIST_OF_WASTE = DATA / "list_of_waste.tsv"
_LEVELS: tuple[Level, ...] = ("chapter", "subchapter", "entry")


def read_list_of_waste(path: Path = LIST_OF_WASTE) -> list[WasteEntry]:
    with path.open(encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    out = []
    for i, row in enumerate(rows, start=2):
        level = row["level"]
        if level not in _LEVELS:
            raise ValueError(f"{path.name}:{i}: unknown level {level!r}")
        if level == "entry" and row["hazardous"] not in ("0", "1"):
            raise ValueError(f"{path.name}:{i}: hazardous must be 0 or 1 for an entry")
        out.append(
            WasteEntry(
                code=row["code"],
                level=level,
                description=row["description"],
                hazardous=row["hazardous"] == "1",
            )
        )
    return out


@cache
def list_of_waste() -> Taxonomy:
    return Taxonomy(read_list_of_waste())


def _rows(name: str) -> list[dict[str, str]]:
    with (DATA / name).open(encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))


@cache
def material_factors() -> dict[str, MaterialFactor]:
    """kg CO2e per tonne by List of Waste code, from material_factors.tsv (sources in
    factors.SOURCE.md). Codes the file does not name have no factor and are not matched."""
    out: dict[str, MaterialFactor] = {}
    for i, row in enumerate(_rows("material_factors.tsv"), start=2):
        try:
            factor = MaterialFactor(
                virgin=float(row["virgin_kgco2e_per_t"]),
                reuse=float(row["reuse_kgco2e_per_t"]),
                disposal=float(row["disposal_kgco2e_per_t"]),
            )
        except ValueError as exc:
            raise ValueError(f"material_factors.tsv:{i}: {exc}") from None
        for code in filter(None, row["low_codes"].split(",")):
            if code in out:
                raise ValueError(f"material_factors.tsv:{i}: code {code} has two factors")
            out[code] = factor
    return out


@cache
def transport_factors() -> dict[str, float]:
    """kg CO2e per tonne-km by vehicle type, from transport_factors.tsv."""
    return {r["vehicle"]: float(r["kgco2e_per_tkm"]) for r in _rows("transport_factors.tsv")}


@cache
def substitutions() -> dict[str, tuple[str, ...]]:
    """Codes a buyer of one code also takes: the operator's policy in substitutions.tsv,
    applied both ways."""
    pairs: dict[str, set[str]] = {}
    for row in _rows("substitutions.tsv"):
        a, b = row["code"], row["substitute"]
        pairs.setdefault(a, set()).add(b)
        pairs.setdefault(b, set()).add(a)
    return {code: tuple(sorted(others)) for code, others in sorted(pairs.items())}
