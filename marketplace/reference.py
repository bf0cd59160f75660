"""Reference data shipped with the project, loaded once: the List of Waste."""

from __future__ import annotations

import csv
from functools import cache
from pathlib import Path

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
