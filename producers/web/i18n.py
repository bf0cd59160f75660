"""The pages' languages: gettext catalogues (English, Bulgarian, Swedish) kept as Babel's .po files
under producers/web/locale/<lang>/LC_MESSAGES/messages.po and read at start-up (no compile step:
Babel reads each .po and writes the .mo the standard gettext module loads, in memory).

`pybabel extract -F producers/web/babel.cfg` finds the messages in the templates and the page
code; `pybabel update` merges them into the catalogues (see docs/developers/pages.md). A test
checks that every message has a Bulgarian and a Swedish translation."""

from __future__ import annotations

import functools
import gettext
import io
from pathlib import Path

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

LOCALES = ("en", "bg", "sv")
DEFAULT = "en"
NAMES = {"en": "English", "bg": "Български", "sv": "Svenska"}
LOCALE_DIR = Path(__file__).resolve().parent / "locale"


@functools.cache
def translations(locale: str) -> gettext.NullTranslations:
    """The catalogue of `locale` (English: the messages as written)."""
    if locale not in LOCALES or locale == DEFAULT:
        return gettext.NullTranslations()
    with (LOCALE_DIR / locale / "LC_MESSAGES" / "messages.po").open("rb") as po:
        catalog = read_po(po, locale=locale)
    mo = io.BytesIO()
    write_mo(mo, catalog, use_fuzzy=False)
    mo.seek(0)
    return gettext.GNUTranslations(mo)


def negotiate(accept_language: str | None) -> str:
    """The first supported language in an Accept-Language header, else English."""
    if not accept_language:
        return DEFAULT
    ranked: list[tuple[float, int, str]] = []
    for i, part in enumerate(accept_language.split(",")):
        tag, _, params = part.strip().partition(";")
        q = 1.0
        if params.strip().startswith("q="):
            try:
                q = float(params.strip()[2:])
            except ValueError:
                q = 0.0
        lang = tag.strip().lower().split("-")[0]
        if lang in LOCALES and q > 0:
            ranked.append((-q, i, lang))
    return min(ranked)[2] if ranked else DEFAULT
