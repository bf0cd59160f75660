"""The e-mails' and the mail pages' languages: a gettext catalogue of their own (domain `mail`,
marketplace/mail/locale/<lang>/LC_MESSAGES/mail.po), read with Babel at start-up like the pages'
(producers/web/i18n.py). Messages are marked `t("...")` in templates and page code and `M("...")`
where a table of them is built; marketplace/mail/babel.cfg tells `pybabel extract` where (see
docs/developers/pages.md and tests/unit/test_mail_parts.py)."""

from __future__ import annotations

import functools
import gettext
import io
from collections.abc import Callable
from pathlib import Path

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

LOCALES = ("en", "bg", "sv")
DEFAULT = "en"
LOCALE_DIR = Path(__file__).resolve().parent / "locale"
DOMAIN = "mail"


def M(message: str) -> str:
    """Marks a message for the catalogue; it is translated where it is shown."""
    return message


@functools.cache
def translations(locale: str) -> gettext.NullTranslations:
    if locale not in LOCALES or locale == DEFAULT:
        return gettext.NullTranslations()
    with (LOCALE_DIR / locale / "LC_MESSAGES" / f"{DOMAIN}.po").open("rb") as po:
        catalog = read_po(po, locale=locale)
    mo = io.BytesIO()
    write_mo(mo, catalog, use_fuzzy=False)
    mo.seek(0)
    return gettext.GNUTranslations(mo)


def translator(locale: str) -> Callable[[str], str]:
    return translations(locale).gettext
