"""Integrity of the translated List of Waste titles (core/data/list_of_waste.<lang>.tsv).

Only official wording may be carried over, so a language may have no file or a partial one; the
picker falls back to the English title. These tests keep the files and
list_of_waste.translations.SOURCE.md in agreement and check every file present against the
English list.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

import pytest

from marketplace.reference import DATA, read_list_of_waste

SOURCE = DATA / "list_of_waste.translations.SOURCE.md"
LANGUAGES = ("bg", "sv")
_CYRILLIC = re.compile(r"[\u0400-\u04FF]")
_LATIN_LETTER = re.compile(r"[A-Za-zÅÄÖåäöÉé]")
_DECLARED = re.compile(r"^\| (?P<lang>[a-z]{2}) \| list_of_waste\.(?P=lang)\.tsv \| (?P<n>\d+) \|")


def _english() -> dict[str, tuple[str, bool]]:
    """Code -> (level, hazardous) from the English list."""
    return {e.code: (e.level, e.hazardous) for e in read_list_of_waste()}


def _declared_counts() -> dict[str, int]:
    out: dict[str, int] = {}
    for line in SOURCE.read_text(encoding="utf-8").splitlines():
        m = _DECLARED.match(line)
        if m:
            out[m["lang"]] = int(m["n"])
    return out


def _read(path: Path) -> list[tuple[str, str]]:
    with path.open(encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        assert reader.fieldnames == ["code", "title"], f"{path.name}: columns must be code, title"
        return [(row["code"], row["title"]) for row in reader]


def problems(
    lang: str, rows: list[tuple[str, str]], english: dict[str, tuple[str, bool]]
) -> list[str]:
    """Everything wrong with a translated table; empty when it is sound."""
    out: list[str] = []
    seen: set[str] = set()
    for n, (raw_code, title) in enumerate(rows, start=2):
        starred = raw_code.endswith("*")
        code = raw_code[:-1] if starred else raw_code
        if not re.fullmatch(r"\d{2}|\d{4}|\d{6}", code):
            out.append(f"line {n}: code {raw_code!r} is not formatted like list_of_waste.tsv")
            continue
        if code not in english:
            out.append(f"line {n}: code {code} is not in the English list")
            continue
        if code in seen:
            out.append(f"line {n}: code {code} appears twice")
        seen.add(code)
        level, hazardous = english[code]
        if starred and (level != "entry" or not hazardous):
            out.append(f"line {n}: {code} carries an asterisk but is not a hazardous entry")
        if not title.strip() or title != title.strip():
            out.append(f"line {n}: title of {code} is empty or has stray whitespace")
        elif lang == "bg" and not _CYRILLIC.search(title):
            out.append(f"line {n}: Bulgarian title of {code} has no Cyrillic letter")
        elif lang != "bg" and (_CYRILLIC.search(title) or not _LATIN_LETTER.search(title)):
            out.append(f"line {n}: title of {code} is not in Latin script")
    if any(code.endswith("*") for code, _ in rows):
        # A file that marks hazardous entries must mark all of those it carries.
        for n, (raw_code, _) in enumerate(rows, start=2):
            base = raw_code.rstrip("*")
            if base in english and english[base] == ("entry", True) and not raw_code.endswith("*"):
                out.append(f"line {n}: hazardous entry {base} lacks its asterisk")
    return out


def test_source_declares_every_language() -> None:
    assert set(_declared_counts()) == set(LANGUAGES)


@pytest.mark.parametrize("lang", LANGUAGES)
def test_files_agree_with_the_source(lang: str) -> None:
    path = DATA / f"list_of_waste.{lang}.tsv"
    declared = _declared_counts()[lang]
    if not path.exists():
        assert declared == 0, f"SOURCE.md declares {declared} {lang} rows but {path.name} is absent"
        return
    rows = _read(path)
    assert problems(lang, rows, _english()) == []
    assert len(rows) == declared


# The checker itself, on made-up rows (placeholders, not list wording).


def test_checker_accepts_a_sound_table() -> None:
    english = _english()
    rows = [
        ("15", "заглавие"),
        ("1501", "заглавие"),
        ("150102", "заглавие"),
        ("150110*", "заглавие"),
    ]
    assert problems("bg", rows, english) == []
    assert problems("sv", [("150102", "titel"), ("20", "titel")], english) == []


@pytest.mark.parametrize(
    ("lang", "rows", "fragment"),
    [
        ("bg", [("999999", "заглавие")], "not in the English list"),
        ("bg", [("15 01 02", "заглавие")], "not formatted"),
        ("bg", [("150102", "заглавие"), ("150102", "заглавие")], "twice"),
        ("bg", [("150102", "title")], "no Cyrillic"),
        ("sv", [("150102", "заглавие")], "not in Latin script"),
        ("sv", [("150102", "")], "empty"),
        ("sv", [("150102*", "titel")], "not a hazardous entry"),
        ("sv", [("150110*", "titel"), ("150111", "titel")], "lacks its asterisk"),
    ],
)
def test_checker_rejects(lang: str, rows: list[tuple[str, str]], fragment: str) -> None:
    found = problems(lang, rows, _english())
    assert any(fragment in p for p in found), found
