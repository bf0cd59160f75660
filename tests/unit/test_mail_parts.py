"""The e-mails' parts without servers: the mail catalogue complete and current, a message in the
person's language as valid MIME with the headers a mailbox needs, a DKIM signature that
verifies, signed unsubscribe links, the digest's hour in a time zone, the preference defaults."""

from __future__ import annotations

import dataclasses
import re
import subprocess
import sys
from datetime import UTC, datetime
from email import message_from_bytes, policy
from pathlib import Path

import dkim  # type: ignore[import-untyped]
import pytest
from babel.messages.pofile import read_po
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from consumers.mailer import last_cutoff
from marketplace.mail import i18n, render, smtp
from marketplace.mail.links import read_unsubscribe, unsubscribe_token
from marketplace.mail.prefs import Preferences, default_choice, zone_of_country
from marketplace.settings import Settings

LOCALE = i18n.LOCALE_DIR
ROOT = LOCALE.parents[2]
PLACEHOLDER = re.compile(r"%\([a-z_]+\)[sd]")
PERSON = "0b9c5f8e-6a55-4a4e-9d7e-3f0c1e2d4a11"
KEY = b"k" * 32


def ids(path: Path) -> dict[str, str]:
    with path.open("rb") as f:
        return {str(m.id): str(m.string) for m in read_po(f) if m.id}


def test_the_mail_template_holds_every_message(tmp_path: Path) -> None:
    fresh = tmp_path / "mail.pot"
    subprocess.run(
        [
            str(Path(sys.executable).parent / "pybabel"),
            "extract",
            "-F",
            "marketplace/mail/babel.cfg",
            "-k",
            "t",
            "-k",
            "M",
            "--no-default-keywords",
            "-o",
            str(fresh),
            "--no-location",
            "--omit-header",
            "--sort-output",
            ".",
        ],
        check=True,
        capture_output=True,
        cwd=ROOT,
    )
    assert set(ids(fresh)) == set(ids(LOCALE / "mail.pot")), "re-extract (docs/operators/mail.md)"


@pytest.mark.parametrize("locale", ["bg", "sv"])
def test_every_mail_message_is_translated_with_its_placeholders(locale: str) -> None:
    wanted = ids(LOCALE / "mail.pot")
    have = ids(LOCALE / locale / "LC_MESSAGES" / "mail.po")
    assert set(have) == set(wanted)
    for msgid, text in have.items():
        assert text, f"{locale}: no translation of {msgid!r}"
        assert sorted(PLACEHOLDER.findall(text)) == sorted(PLACEHOLDER.findall(msgid))


def settings_with_dkim(tmp_path: Path) -> tuple[Settings, bytes]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    (tmp_path / "dkim.pem").write_bytes(pem)
    public = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    settings = dataclasses.replace(
        Settings(),
        mail_from="Exchange <noreply@mail.example.org>",
        mail_dkim_key=str(tmp_path / "dkim.pem"),
        mail_dkim_selector="s1",
        web_base_url="https://exchange.example.org",
    )
    return settings, public


def test_a_notification_in_bulgarian_is_valid_mime_and_its_dkim_signature_verifies(
    tmp_path: Path,
) -> None:
    settings, public = settings_with_dkim(tmp_path)
    to = render.Recipient(PERSON, "ana@example.bg", "Ана Петрова", "bg", "Europe/Sofia")
    at = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)
    data = {
        "material_code": "150102",
        "quantity": {"amount": 4, "unit": "t"},
        "delivered_price": {"amount": 35, "currency": "EUR"},
        "expires_at": "2026-12-03T10:00:00+00:00",
    }
    mid, raw = render.notification(
        settings, KEY, to, notification_id="n-1", kind="match.proposed", data=data, issued_at=at
    )
    again, raw_again = render.notification(
        settings, KEY, to, notification_id="n-1", kind="match.proposed", data=data, issued_at=at
    )
    assert (mid, raw) == (again, raw_again), "a resend carries the same bytes"
    msg = message_from_bytes(raw, policy=policy.default)
    assert msg["Message-ID"] == f"<{mid}>"
    assert mid.endswith("@mail.example.org")
    assert msg["Subject"] == "Ново предложение за вашата организация: 150102"
    assert msg["Content-Language"] == "bg"
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    link = msg["List-Unsubscribe"].strip("<>")
    assert link.startswith("https://exchange.example.org/app/mail/unsubscribe/")
    assert read_unsubscribe(KEY, link.rsplit("/", 1)[1]) == (PERSON, "match.proposed")
    assert msg.get_content_type() == "multipart/alternative"
    text = msg.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    html = msg.get_body(("html",)).get_content()  # type: ignore[union-attr]
    assert "Здравейте, Ана Петрова," in text
    assert "35.00 EUR" in text
    assert "2026-12-03 12:00 EET" in text  # the deadline in the person's time zone
    assert "Количество" in html
    signed = smtp.sign(settings, raw)
    assert signed.startswith(b"DKIM-Signature:")
    record = b"v=DKIM1; k=rsa; p=" + __import__("base64").b64encode(public)

    def dns(name: bytes, timeout: int = 5) -> bytes:
        assert name == b"s1._domainkey.mail.example.org."
        return bytes(record)

    assert dkim.verify(signed, dnsfunc=dns)
    assert not dkim.verify(signed.replace(b"150102", b"150101"), dnsfunc=dns)


def test_unsubscribe_links_are_signed() -> None:
    token = unsubscribe_token(KEY, PERSON, "digest")
    assert read_unsubscribe(KEY, token) == (PERSON, "digest")
    assert read_unsubscribe(b"x" * 32, token) is None
    assert read_unsubscribe(KEY, token.replace("digest", "match.proposed")) is None
    assert read_unsubscribe(KEY, "nonsense") is None


def test_the_digest_hour_is_in_the_persons_time_zone() -> None:
    # 06:30 UTC is 08:30 in Sofia (winter): the 08:00 digest of that day is due.
    now = datetime(2026, 12, 1, 6, 30, tzinfo=UTC)
    assert last_cutoff(now, "Europe/Sofia", 8) == datetime(2026, 12, 1, 6, 0, tzinfo=UTC)
    # In Stockholm it is 07:30: the last due one is the day before's.
    assert last_cutoff(now, "Europe/Stockholm", 8) == datetime(2026, 11, 30, 7, 0, tzinfo=UTC)


def test_defaults_proposals_and_awards_at_once_the_rest_in_the_digest() -> None:
    assert default_choice("match.proposed") == "immediate"
    assert default_choice("award.won") == "immediate"
    assert default_choice("match.expired") == "digest"
    assert Preferences(kinds={"match.proposed": "none"}).choice("match.proposed") == "none"
    assert zone_of_country("bg") == "Europe/Sofia"
    assert zone_of_country("SE") == "Europe/Stockholm"
    assert zone_of_country(None) == "UTC"


def test_a_proposals_rough_distance_is_marked_rough_and_a_confirmed_one_is_not() -> None:
    t = i18n.translator("sv")
    rough = dict(render.details({"distance_km": 40.0, "distance_exact": False}, "UTC", t))
    assert rough == {"Avstånd": "≈ 40 km"}
    exact = dict(render.details({"distance_km": 42.4, "distance_exact": True}, "UTC", t))
    assert exact == {"Avstånd": "42 km"}
    # A notification issued before distances were rounded carries no distance_exact: as it was.
    assert dict(render.details({"distance_km": 42.4}, "UTC", t)) == {"Avstånd": "42 km"}
