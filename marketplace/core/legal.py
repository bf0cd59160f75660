"""A partner's legal data (#22): the legal name, address, VAT number and Peppol participant id that
the documents of a deal (order, transport document, invoice) name it by. Pure: format checks
that answer every refused field with its reason, and the normal forms that are stored.

The VAT number is checked against the format of the member state its prefix names (the VIES
formats: the prefix is the ISO country code, except EL for Greece and XI for Northern Ireland);
no checksum is computed (python-stdnum would add them; it is not a dependency yet). A Peppol
participant id is `<ICD>:<identifier>` in the `iso6523-actorid-upis` scheme, the ICD being an
entry of Peppol's Electronic Address Scheme code list; `iso6523-actorid-upis::0088:...` and
`0088:...` are the same id, stored in the long form."""

from __future__ import annotations

import re
from dataclasses import dataclass

# The formats of the member states' VAT numbers, prefix included.
VAT_FORMATS: dict[str, str] = {
    "AT": r"ATU\d{8}",
    "BE": r"BE[01]\d{9}",
    "BG": r"BG\d{9,10}",
    "CY": r"CY\d{8}[A-Z]",
    "CZ": r"CZ\d{8,10}",
    "DE": r"DE\d{9}",
    "DK": r"DK\d{8}",
    "EE": r"EE\d{9}",
    "EL": r"EL\d{9}",
    "ES": r"ES[A-Z0-9]\d{7}[A-Z0-9]",
    "FI": r"FI\d{8}",
    "FR": r"FR[A-HJ-NP-Z0-9]{2}\d{9}",
    "HR": r"HR\d{11}",
    "HU": r"HU\d{8}",
    "IE": r"IE(\d{7}[A-W][A-IW]?|\d[A-Z+*]\d{5}[A-W])",
    "IT": r"IT\d{11}",
    "LT": r"LT(\d{9}|\d{12})",
    "LU": r"LU\d{8}",
    "LV": r"LV\d{11}",
    "MT": r"MT\d{8}",
    "NL": r"NL\d{9}B\d{2}",
    "PL": r"PL\d{10}",
    "PT": r"PT\d{9}",
    "RO": r"RO[1-9]\d{1,9}",
    "SE": r"SE\d{10}01",
    "SI": r"SI\d{8}",
    "SK": r"SK\d{10}",
    "XI": r"XI(\d{9}|\d{12}|GD\d{3}|HA\d{3})",
}
# An example per prefix, for the refusal to show what is expected.
VAT_EXAMPLES: dict[str, str] = {
    "AT": "ATU12345678",
    "BE": "BE0123456789",
    "BG": "BG123456789",
    "DE": "DE123456789",
    "EL": "EL123456789",
    "FR": "FRXX123456789",
    "NL": "NL123456789B01",
    "SE": "SE123456789001",
}
# The country a VAT prefix belongs to, where they differ.
VAT_COUNTRY = {"EL": "GR", "XI": "GB"}

PEPPOL_SCHEME = "iso6523-actorid-upis"
# Peppol's Electronic Address Scheme (EAS) code list: the ICDs a participant id may use.
_EAS = (
    "0002 0007 0009 0037 0060 0088 0096 0097 0106 0130 0135 0142 0147 0151 0154 0158 0170"
    " 0177 0183 0184 0188 0190 0191 0192 0193 0194 0195 0196 0198 0199 0200 0201 0202 0203"
    " 0204 0205 0208 0209 0210 0211 0212 0213 0215 0216 0217 0218 0219 0220 0221 0225 0230"
    " 0235 0240 9901 9910 9913 9914 9915 9918 9919 9920 9922 9923 9924 9925 9926 9927 9928"
    " 9929 9930 9931 9932 9933 9934 9935 9936 9937 9938 9939 9940 9941 9942 9943 9944 9945"
    " 9946 9947 9948 9949 9950 9951 9952 9953 9957 9959"
)
PEPPOL_ICDS: frozenset[str] = frozenset(_EAS.split())
# ICDs whose identifier is a member state's VAT number (prefix included).
PEPPOL_VAT_ICDS: dict[str, str] = {
    "9914": "AT",
    "9925": "BE",
    "9926": "BG",
    "9928": "CY",
    "9929": "CZ",
    "9930": "DE",
    "9931": "EE",
    "9933": "EL",
    "9920": "ES",
    "9934": "HR",
    "9910": "HU",
    "9935": "IE",
    "9937": "LT",
    "9938": "LU",
    "9939": "LV",
    "9943": "MT",
    "9944": "NL",
    "9945": "PL",
    "9946": "PT",
    "9947": "RO",
    "9949": "SI",
    "9950": "SK",
    "9957": "FR",
    "0211": "IT",
    "0213": "FI",
}
# ICDs with a fixed shape of identifier: Swedish organisation number, Norwegian organisation
# number, Danish CVR, GS1 Global Location Number.
_PEPPOL_SHAPES: dict[str, tuple[str, str]] = {
    "0007": (r"\d{10}", "a Swedish organisation number of 10 digits"),
    "0192": (r"\d{9}", "a Norwegian organisation number of 9 digits"),
    "0184": (r"(DK)?\d{8}", "a Danish CVR number of 8 digits"),
    "0088": (r"\d{13}", "a GS1 Global Location Number of 13 digits"),
}
_PEPPOL = re.compile(r"^(?:(?P<scheme>[a-z0-9-]+)::)?(?P<icd>\d{4}):(?P<value>[^\s:]{1,50})$")
_POSTCODE = re.compile(r"^[A-Z0-9][A-Z0-9 -]{1,9}$")
_COUNTRY = re.compile(r"^[A-Z]{2}$")


@dataclass(frozen=True, slots=True)
class LegalData:
    legal_name: str
    street: str
    postcode: str
    city: str
    country: str  # ISO 3166-1 alpha-2 of the registered address
    vat_number: str | None = None
    peppol_id: str | None = None


def normal_vat(raw: str) -> str:
    """A VAT number as stored: capitals, without spaces, dots or dashes."""
    return re.sub(r"[\s.\-]", "", raw).upper()


def vat_problem(vat: str) -> str | None:
    """Why `vat` (in normal form) is no VAT number of a member state, or None."""
    prefix = vat[:2]
    pattern = VAT_FORMATS.get(prefix)
    if pattern is None:
        return (
            f"{vat!r} does not start with the prefix of an EU member state (BG, SE, DE, EL for"
            " Greece, ...)"
        )
    if re.fullmatch(pattern, vat) is None:
        example = VAT_EXAMPLES.get(prefix)
        shape = f", e.g. {example}" if example else ""
        return f"{vat!r} is not a VAT number of the form used in {prefix}{shape}"
    return None


def normal_peppol(raw: str) -> str:
    """A Peppol participant id as stored: `iso6523-actorid-upis::<ICD>:<identifier>`."""
    found = _PEPPOL.match(raw.strip())
    if found is None:
        return raw.strip()
    return f"{PEPPOL_SCHEME}::{found['icd']}:{found['value']}"


def peppol_problem(raw: str) -> str | None:
    """Why `raw` is no Peppol participant id, or None."""
    found = _PEPPOL.match(raw.strip())
    if found is None:
        return (
            "write the Peppol participant id as scheme::ICD:identifier, e.g."
            " iso6523-actorid-upis::0007:5567321707 (or 0007:5567321707)"
        )
    scheme, icd, value = found["scheme"], found["icd"], found["value"]
    if scheme is not None and scheme != PEPPOL_SCHEME:
        return f"the scheme must be {PEPPOL_SCHEME}, not {scheme}"
    if icd not in PEPPOL_ICDS:
        return f"{icd} is not an ICD of Peppol's Electronic Address Scheme code list"
    if icd in PEPPOL_VAT_ICDS:
        prefix = PEPPOL_VAT_ICDS[icd]
        vat = normal_vat(value)
        if not vat.startswith(prefix):
            vat = prefix + vat
        problem = vat_problem(vat)
        if problem is not None:
            return f"ICD {icd} takes a VAT number of {prefix}: {problem}"
    if icd in _PEPPOL_SHAPES:
        pattern, what = _PEPPOL_SHAPES[icd]
        if re.fullmatch(pattern, value) is None:
            return f"ICD {icd} takes {what}"
        if icd == "0088" and not gtin_check_digit_ok(value):
            return f"{value} is no Global Location Number: its check digit is wrong"
    return None


def gtin_check_digit_ok(digits: str) -> bool:
    """The GS1 mod-10 check digit (the last digit) of a GLN or GTIN."""
    body, check = digits[:-1], int(digits[-1])
    total = sum(int(d) * (3 if i % 2 == 0 else 1) for i, d in enumerate(reversed(body)))
    return (10 - total % 10) % 10 == check


def checked(
    *,
    legal_name: str,
    street: str,
    postcode: str,
    city: str,
    country: str,
    vat_number: str = "",
    peppol_id: str = "",
) -> tuple[LegalData | None, list[tuple[str, str]]]:
    """The legal data in normal form, or None with every refused field and its reason."""
    errors: list[tuple[str, str]] = []
    name = " ".join(legal_name.split())
    if not 1 <= len(name) <= 200:
        errors.append(("legal_name", "enter the registered legal name (1 to 200 characters)"))
    street_n = " ".join(street.split())
    if not 1 <= len(street_n) <= 200:
        errors.append(("street", "enter the street and number (1 to 200 characters)"))
    postcode_n = " ".join(postcode.split()).upper()
    if _POSTCODE.match(postcode_n) is None:
        errors.append(("postcode", "enter the postal code (2 to 10 letters, digits, spaces)"))
    city_n = " ".join(city.split())
    if not 1 <= len(city_n) <= 100:
        errors.append(("city", "enter the city (1 to 100 characters)"))
    country_n = country.strip().upper()
    if _COUNTRY.match(country_n) is None:
        errors.append(("country", "enter the country as two capital letters, e.g. BG or SE"))
    vat = normal_vat(vat_number) or None
    if vat is not None:
        problem = vat_problem(vat)
        if problem is not None:
            errors.append(("vat_number", problem))
    peppol = peppol_id.strip() or None
    if peppol is not None:
        problem = peppol_problem(peppol)
        if problem is not None:
            errors.append(("peppol_id", problem))
        peppol = normal_peppol(peppol)
    if any("\x00" in v for v in (legal_name, street, postcode, city, vat_number, peppol_id)):
        errors.append(("body", "text may not contain the NUL character (U+0000)"))
    if errors:
        return None, errors
    return LegalData(name, street_n, postcode_n, city_n, country_n, vat, peppol), []


def vat_country(vat: str) -> str:
    """The ISO country of a VAT number's prefix (EL is GR, XI is GB)."""
    return VAT_COUNTRY.get(vat[:2], vat[:2])
