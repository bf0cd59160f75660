"""The format checks of a partner's legal data (#22): VAT numbers per member state, Peppol
participant ids with an ICD of the code list, every refused field named."""

from __future__ import annotations

import pytest

from marketplace.core import legal

GOOD = {
    "legal_name": "Пласт Плевен ООД",
    "street": "ул. Васил Левски 12",
    "postcode": "5800",
    "city": "Плевен",
    "country": "bg",
}


def test_good_data_comes_back_in_normal_form() -> None:
    data, errors = legal.checked(**GOOD, vat_number="bg 123.456-789", peppol_id="9926:BG123456789")
    assert errors == []
    assert data is not None
    assert data.country == "BG"
    assert data.vat_number == "BG123456789"
    assert data.peppol_id == "iso6523-actorid-upis::9926:BG123456789"
    assert data.legal_name == "Пласт Плевен ООД"


@pytest.mark.parametrize(
    "vat",
    [
        "BG123456789",
        "BG1234567890",
        "SE556732170701",
        "DE123456789",
        "ATU12345678",
        "EL123456789",
        "NL123456789B01",
        "FRXX123456789",
        "IE1234567WA",
        "XI123456789",
    ],
)
def test_member_states_vat_numbers_pass(vat: str) -> None:
    assert legal.vat_problem(vat) is None


@pytest.mark.parametrize(
    ("vat", "said"),
    [
        ("BG12345678", "form used in BG"),
        ("SE5567321707", "form used in SE"),  # lacks the 01 suffix
        ("GR123456789", "prefix of an EU member state"),  # Greece is EL
        ("US123456789", "prefix of an EU member state"),
        ("ATX2345678", "form used in AT"),
        ("NL123456789001", "form used in NL"),
    ],
)
def test_wrong_vat_numbers_say_why(vat: str, said: str) -> None:
    problem = legal.vat_problem(vat)
    assert problem is not None
    assert said in problem


@pytest.mark.parametrize(
    "peppol",
    [
        "iso6523-actorid-upis::0007:5567321707",
        "0007:5567321707",
        "0192:987654321",
        "0088:7315458756328",
        "9930:DE123456789",
        "0208:0123456789",
    ],
)
def test_peppol_ids_with_a_listed_icd_pass(peppol: str) -> None:
    assert legal.peppol_problem(peppol) is None


@pytest.mark.parametrize(
    ("peppol", "said"),
    [
        ("5567321707", "scheme::ICD:identifier"),
        ("iso6523-actorid-upis:0007:5567321707", "scheme::ICD:identifier"),
        ("other-scheme::0007:5567321707", "must be iso6523-actorid-upis"),
        ("1234:5567321707", "not an ICD"),
        ("0007:55673217", "10 digits"),
        ("0088:7315458756329", "check digit"),
        ("9926:BG12", "VAT number of BG"),
    ],
)
def test_wrong_peppol_ids_say_why(peppol: str, said: str) -> None:
    problem = legal.peppol_problem(peppol)
    assert problem is not None
    assert said in problem


def test_every_refused_field_is_named() -> None:
    data, errors = legal.checked(
        legal_name=" ",
        street="",
        postcode="!",
        city="",
        country="Bulgaria",
        vat_number="BG1",
        peppol_id="nope",
    )
    assert data is None
    assert [field for field, _ in errors] == [
        "legal_name",
        "street",
        "postcode",
        "city",
        "country",
        "vat_number",
        "peppol_id",
    ]


def test_gln_check_digit() -> None:
    assert legal.gtin_check_digit_ok("7315458756328")
    assert not legal.gtin_check_digit_ok("7315458756321")
    assert legal.vat_country("EL123456789") == "GR"
    assert legal.vat_country("BG123456789") == "BG"
