"""The pages' pure parts: the gettext catalogues complete and current, the language chosen from
a browser's Accept-Language, and forms turned into the API's bodies and its refusals back into
sentences next to the fields."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from babel.messages.pofile import read_po

from producers.api.bodies import OfferIn
from producers.api.problems import Problem
from producers.web import i18n
from producers.web.forms import decode, document, field_errors, say
from producers.web.sme import MOMENTS, OFFER_FIELDS

LOCALE = Path(i18n.__file__).resolve().parent / "locale"
PLACEHOLDER = re.compile(r"%\(\w+\)s")


def ids(path: Path) -> dict[str, object]:
    with path.open("rb") as f:
        return {
            str(m.id[0] if isinstance(m.id, (tuple, list)) else m.id): m.string
            for m in read_po(f)
            if m.id
        }


def test_the_template_holds_every_message_of_the_pages(tmp_path: Path) -> None:
    fresh = tmp_path / "messages.pot"
    subprocess.run(
        [
            str(Path(sys.executable).parent / "pybabel"),
            "extract",
            "-F",
            "producers/web/babel.cfg",
            "-o",
            str(fresh),
            "--no-location",
            "--omit-header",
            "--sort-output",
            ".",
        ],
        check=True,
        capture_output=True,
        cwd=LOCALE.parents[2],
    )
    assert set(ids(fresh)) == set(ids(LOCALE / "messages.pot")), (
        "re-extract: pybabel extract -F producers/web/babel.cfg -o "
        "producers/web/locale/messages.pot --no-location --omit-header --sort-output ."
    )


@pytest.mark.parametrize("locale", ["bg", "sv"])
def test_every_message_is_translated_with_its_placeholders(locale: str) -> None:
    wanted = ids(LOCALE / "messages.pot")
    have = ids(LOCALE / locale / "LC_MESSAGES" / "messages.po")
    assert set(have) == set(wanted)
    for msgid, text in have.items():
        forms = text if isinstance(text, tuple) else (text,)
        assert all(forms), f"{locale}: no translation of {msgid!r}"
        for form in forms:
            assert sorted(PLACEHOLDER.findall(str(form))) == sorted(PLACEHOLDER.findall(msgid))
    if locale == "bg":
        assert i18n.translations("bg").gettext("Sign in") == "Вход"
    else:
        assert i18n.translations("sv").gettext("Sign in") == "Logga in"


def test_the_language_comes_from_accept_language() -> None:
    assert i18n.negotiate("sv-SE,sv;q=0.9,en;q=0.8") == "sv"
    assert i18n.negotiate("de-DE, bg;q=0.5, en;q=0.4") == "bg"
    assert i18n.negotiate("en;q=0.2, sv;q=0.9") == "sv"
    assert i18n.negotiate("fr, de") == "en"
    assert i18n.negotiate("bg;q=0") == "en"
    assert i18n.negotiate(None) == "en"


FORM = {
    "material.code": "040222",
    "material.description": "cotton offcuts",
    "terms.quantity.amount": "12.5",
    "terms.quantity.unit": "t",
    "terms.price.amount": "-15",
    "terms.price.currency": "EUR",
    "terms.available.start": "2026-12-01",
    "terms.available.end": "2027-01-31",
    "location.lat": "59.86",
    "location.lon": "17.64",
    "location.region": "",
}


def test_a_form_becomes_the_apis_body() -> None:
    body = decode(document(FORM, OFFER_FIELDS, moments=MOMENTS), OfferIn)
    assert body.terms.quantity.amount == 12.5
    assert body.terms.price.amount == -15
    assert body.terms.available.start.isoformat() == "2026-12-01T00:00:00+00:00"
    assert body.terms.available.end.isoformat() == "2027-01-31T23:59:59+00:00"
    assert body.location.region is None  # left empty: the default
    assert body.material.form == "other"


@pytest.mark.parametrize(
    ("field", "value", "english"),
    [
        ("terms.quantity.amount", "a lot", "Enter a number."),
        ("terms.quantity.amount", "-1", "Enter more than 0."),
        ("location.lat", "91", "Enter at most 90."),
        ("terms.quantity.unit", "barrels", "Choose one of the options."),
        ("material.code", "12345", "This is not in the expected format."),
        ("terms.available.end", "2026-11-01", "The end is before the start."),
        ("material.description", "", "Fill this in."),
    ],
)
def test_a_refusal_is_named_at_its_field_in_the_persons_language(
    field: str, value: str, english: str
) -> None:
    with pytest.raises(Problem) as refused:
        decode(document(FORM | {field: value}, OFFER_FIELDS, moments=MOMENTS), OfferIn)
    errors = field_errors(refused.value, i18n.translations("en").gettext)
    named = field if field != "terms.available.end" else "terms.available"
    assert errors.get(named) == english or list(errors.values()) == [english], errors
    swedish = field_errors(refused.value, i18n.translations("sv").gettext)
    assert next(iter(swedish.values())) != english


def test_an_unrecognised_reason_is_shown_under_a_general_sentence() -> None:
    gettext = i18n.translations("bg").gettext
    assert say("something new", gettext) == "Тази стойност не може да се използва: something new"
