"""Reference data shipped with the project, loaded once: the List of Waste, the emission
factors, the substitution policy and the member states' VAT rates."""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation
from functools import cache
from pathlib import Path
from typing import Literal

from marketplace.core.economics import MaterialFactor
from marketplace.core.taxonomy import Level, Taxonomy, WasteEntry

DATA = Path(__file__).resolve().parent / "core" / "data"
LIST_OF_WASTE = DATA / "list_of_waste.tsv"
_LEVELS: tuple[Level, ...] = ("chapter", "subchapter", "entry")
Displaces = Literal["virgin_material", "animal_feed", "fertiliser", "energy"]


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


DISPLACES: tuple[Displaces, ...] = ("virgin_material", "animal_feed", "fertiliser", "energy")
_DISPLACES: dict[str, Displaces] = {d: d for d in DISPLACES}


@dataclass(frozen=True, slots=True)
class Material:
    """A row of material_factors.tsv: the product a tonne reused displaces, and its factor."""

    name: str
    displaces: Displaces
    factor: MaterialFactor
    source_id: str


@dataclass(frozen=True, slots=True)
class Coverage:
    """How code_factors.tsv classifies one List of Waste entry: a material with a factor,
    or no factor and the reason why."""

    code: str
    material: str | None
    displaces: Displaces | None
    reason: str | None
    note: str

    @property
    def known(self) -> bool:
        return self.material is not None


@cache
def materials() -> dict[str, Material]:
    """material_factors.tsv by material name (kg CO2e per tonne; sources in factors.SOURCE.md)."""
    name = "material_factors.tsv"
    out: dict[str, Material] = {}
    for i, row in enumerate(_rows(name), start=2):
        material, displaces = row["material"], _DISPLACES.get(row["displaces"])
        if not material:
            raise ValueError(f"{name}:{i}: material is empty")
        if material in out:
            raise ValueError(f"{name}:{i}: material {material!r} is listed twice")
        if displaces is None:
            raise ValueError(
                f"{name}:{i}: displaces must be one of {', '.join(DISPLACES)},"
                f" not {row['displaces']!r}"
            )
        if not row["source_id"]:
            raise ValueError(f"{name}:{i}: source_id is empty")
        try:
            factor = MaterialFactor(
                virgin=float(row["virgin_kgco2e_per_t"]),
                reuse=float(row["reuse_kgco2e_per_t"]),
                disposal=float(row["disposal_kgco2e_per_t"]),
            )
        except ValueError as exc:
            raise ValueError(f"{name}:{i}: {exc}") from None
        out[material] = Material(material, displaces, factor, row["source_id"])
    return out


@cache
def factor_coverage() -> dict[str, Coverage]:
    """Every List of Waste entry, in the list's order, as code_factors.tsv classifies it:
    the material whose factor applies, or the reason no factor does."""
    name = "code_factors.tsv"
    known = materials()
    entries = [e.code for e in list_of_waste().entries("entry")]
    listed = set(entries)
    seen: dict[str, Coverage] = {}
    for i, row in enumerate(_rows(name), start=2):
        code, material, reason = row["code"], row["material"], row["reason"]
        if code not in listed:
            raise ValueError(f"{name}:{i}: {code!r} is not an entry of the List of Waste")
        if code in seen:
            raise ValueError(f"{name}:{i}: code {code} is listed twice")
        if bool(material) == bool(reason):
            raise ValueError(f"{name}:{i}: code {code} needs either a material or a reason")
        if material and material not in known:
            raise ValueError(f"{name}:{i}: material {material!r} is not in material_factors.tsv")
        seen[code] = Coverage(
            code=code,
            material=material or None,
            displaces=known[material].displaces if material else None,
            reason=reason or None,
            note=row["note"],
        )
    missing = [code for code in entries if code not in seen]
    if missing:
        raise ValueError(f"{name}: {len(missing)} entries are not classified, first {missing[0]}")
    if list(seen) != entries:
        raise ValueError(f"{name}: codes are not in the order of list_of_waste.tsv")
    return {code: seen[code] for code in entries}


@cache
def material_factors() -> dict[str, MaterialFactor]:
    """kg CO2e per tonne by List of Waste code: code_factors.tsv joined with
    material_factors.tsv (sources in factors.SOURCE.md). Codes classified unknown have no
    factor and are not in the dict."""
    known = materials()
    return {
        code: known[c.material].factor
        for code, c in factor_coverage().items()
        if c.material is not None
    }


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


@cache
def vat_rates() -> dict[str, Decimal]:
    """The standard VAT rate in per cent of each EU member state by ISO country code, from
    vat_rates.tsv (sources in vat_rates.SOURCE.md)."""
    name = "vat_rates.tsv"
    out: dict[str, Decimal] = {}
    for i, row in enumerate(_rows(name), start=2):
        country = row["country"]
        if re.fullmatch(r"[A-Z]{2}", country) is None or country in out:
            raise ValueError(f"{name}:{i}: {country!r} is no country code, or is listed twice")
        try:
            rate = Decimal(row["standard_rate"])
            date.fromisoformat(row["since"])
        except (InvalidOperation, ValueError):
            raise ValueError(
                f"{name}:{i}: a rate in per cent and a date (since) are needed"
            ) from None
        if not 0 < rate < 100:
            raise ValueError(f"{name}:{i}: the rate of {country} is not between 0 and 100")
        out[country] = rate
    return out


@cache
def national_currencies() -> dict[str, str]:
    """The currency of each EU member state by ISO country code (ISO 4217), from vat_rates.tsv:
    the currency its VAT is accounted in."""
    out: dict[str, str] = {}
    for i, row in enumerate(_rows("vat_rates.tsv"), start=2):
        if re.fullmatch(r"[A-Z]{3}", row["currency"]) is None:
            raise ValueError(f"vat_rates.tsv:{i}: {row['currency']!r} is no ISO 4217 code")
        out[row["country"]] = row["currency"]
    return out
