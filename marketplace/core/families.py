"""Material families: which List of Waste entries can meet in one trade, and so the partition key
of the market topics (ARCHITECTURE.md decision 2).

A family is a material that several sub-chapters share (plastics: 02 01 04, 07 02 13, 15 01 02,
17 02 03, 19 12 04, 20 01 39 ...); an entry that belongs to no shared family is its own
sub-chapter's family ("0601"). Every substitute (substitutions.tsv) and every code a request
accepts lies in the family of the request's own code, so one partition holds every pair that can
match. The table and its rule: data/material_families.tsv and material_families.SOURCE.md.

Pure: nothing here touches a file at import. `family_of` reads the project's own table once, on
first use (the package's data, like the List of Waste); `Families` can be built from any rows."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from functools import cache
from pathlib import Path
from types import MappingProxyType
from typing import Literal

TABLE = Path(__file__).resolve().parent / "data" / "material_families.tsv"
# The families shared by several sub-chapters; every other family is a 4-digit sub-chapter.
SHARED: tuple[str, ...] = (
    "plastics",
    "paper",
    "wood",
    "glass",
    "metals",
    "textiles",
    "organics",
    "aggregates",
)
# Why an entry is in its family: named one by one, with its whole sub-chapter, or on its own.
Basis = Literal["entry", "subchapter", "own"]
_BASES: tuple[Basis, ...] = ("entry", "subchapter", "own")
HEADER = ("code", "family", "basis")


class Families:
    """The family of each List of Waste entry. A code it does not hold (not an entry of the
    list: the API refuses those, a record from elsewhere still needs a key) is its own
    sub-chapter's family."""

    def __init__(self, rows: Iterable[tuple[str, str, Basis]]) -> None:
        by_code: dict[str, str] = {}
        for code, family, basis in rows:
            if len(code) != 6 or not code.isdigit():
                raise ValueError(f"{code!r} is not a six-digit List of Waste entry")
            if code in by_code:
                raise ValueError(f"code {code} is listed twice")
            if basis not in _BASES:
                raise ValueError(f"{code}: basis {basis!r} is not one of {', '.join(_BASES)}")
            if basis == "own":
                if family != code[:4]:
                    raise ValueError(f"{code}: on its own, its family is {code[:4]}, not {family}")
            elif family not in SHARED:
                raise ValueError(f"{code}: {family!r} is not a shared family")
            by_code[code] = family
        self._by_code = MappingProxyType(by_code)

    def __len__(self) -> int:
        return len(self._by_code)

    def __iter__(self) -> Iterator[str]:
        return iter(self._by_code)

    def of(self, code: str) -> str:
        code = code.replace(" ", "").rstrip("*")
        return self._by_code.get(code) or code[:4]

    def members(self, family: str) -> tuple[str, ...]:
        return tuple(c for c, f in self._by_code.items() if f == family)

    def foreign(self, code: str, others: Iterable[str]) -> tuple[str, ...]:
        """The codes of `others` outside `code`'s family, in their order, each once."""
        own = self.of(code)
        return tuple(dict.fromkeys(c for c in others if self.of(c) != own))


def parse(text: str) -> Families:
    """The table as material_families.tsv writes it: a header, then code, family, basis."""
    lines = text.splitlines()
    if not lines or tuple(lines[0].split("\t")) != HEADER:
        raise ValueError(f"the header must be {' '.join(HEADER)}")
    rows: list[tuple[str, str, Basis]] = []
    for i, line in enumerate(lines[1:], start=2):
        cells = line.split("\t")
        if len(cells) != len(HEADER):
            raise ValueError(f"line {i}: {len(cells)} cells, not {len(HEADER)}")
        code, family, basis = cells
        if basis not in _BASES:
            raise ValueError(f"line {i}: basis {basis!r} is not one of {', '.join(_BASES)}")
        rows.append((code, family, _BASES[_BASES.index(basis)]))
    return Families(rows)


@cache
def table() -> Families:
    """The project's table (data/material_families.tsv), read on first use."""
    return parse(TABLE.read_text(encoding="utf-8"))


def family_of(code: str) -> str:
    """The material family of a List of Waste code, e.g. "plastics" for 150102 and 200139,
    "0601" for 060101 (no shared family): the key of the market topics."""
    return table().of(code)


def foreign_codes(code: str, accepts: Iterable[str]) -> tuple[str, ...]:
    """The accepted codes a request for `code` cannot be matched with: those of another
    family, which another partition may own."""
    return table().foreign(code, accepts)
