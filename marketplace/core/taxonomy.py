"""The European List of Waste (Commission Decision 2000/532/EC as amended): lookup and validation.

Pure: the rows come in as data (marketplace/reference.py reads them from
marketplace/core/data/list_of_waste.tsv); nothing here touches a file."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from types import MappingProxyType
from typing import Literal

Level = Literal["chapter", "subchapter", "entry"]
_LENGTH: dict[Level, int] = {"chapter": 2, "subchapter": 4, "entry": 6}


class UnknownCode(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class WasteEntry:
    code: str
    level: Level
    description: str
    hazardous: bool = False

    @property
    def chapter(self) -> str:
        return self.code[:2]

    @property
    def subchapter(self) -> str:
        return self.code[:4]

    def display(self) -> str:
        """The code as the official list prints it: "15 01 02", with "*" when hazardous."""
        spaced = " ".join(self.code[i : i + 2] for i in range(0, len(self.code), 2))
        return spaced + ("*" if self.hazardous else "")


class Taxonomy:
    def __init__(self, entries: Iterable[WasteEntry]) -> None:
        by_code: dict[str, WasteEntry] = {}
        for e in entries:
            if len(e.code) != _LENGTH[e.level] or not e.code.isdigit():
                raise ValueError(f"{e.code!r} is not a {e.level} code")
            if e.code in by_code:
                raise ValueError(f"duplicate code {e.code}")
            if e.level != "chapter" and e.code[: _LENGTH[e.level] - 2] not in by_code:
                raise ValueError(f"{e.code} has no parent in the list before it")
            by_code[e.code] = e
        self._by_code = MappingProxyType(by_code)
        # Asked for on every listing the API checks (marketplace/translate/matching.py
        # `findings_of`): made once, as the list never changes.
        self._hazardous = frozenset(
            e.code for e in by_code.values() if e.level == "entry" and e.hazardous
        )

    def __len__(self) -> int:
        return len(self._by_code)

    def get(self, code: str) -> WasteEntry | None:
        return self._by_code.get(code.replace(" ", "").rstrip("*"))

    def entry(self, code: str) -> WasteEntry:
        """The six-digit entry for `code` ("150102", "15 01 02" or "15 01 02*"), or UnknownCode."""
        found = self.get(code)
        if found is None or found.level != "entry":
            raise UnknownCode(f"{code!r} is not an entry of the European List of Waste")
        return found

    def is_hazardous(self, code: str) -> bool:
        return self.entry(code).hazardous

    def hazardous_codes(self) -> frozenset[str]:
        return self._hazardous

    def entries(self, level: Level = "entry") -> list[WasteEntry]:
        return [e for e in self._by_code.values() if e.level == level]

    def children(self, code: str) -> list[WasteEntry]:
        n = len(code) + 2
        return [e for c, e in self._by_code.items() if len(c) == n and c.startswith(code)]
