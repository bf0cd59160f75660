"""Sending through the operator's relay: DKIM-signed by dkimpy (RFC 6376, relaxed/simple,
rsa-sha256) when a key is configured, then handed over by aiosmtplib (plain, STARTTLS or TLS,
with a login when credentials are set)."""

from __future__ import annotations

import functools
from pathlib import Path

import aiosmtplib
import dkim  # type: ignore[import-untyped]  # dkimpy ships no type information

from marketplace.mail.render import domain_of, sender_of
from marketplace.settings import Settings

SIGNED = (
    b"from",
    b"to",
    b"subject",
    b"date",
    b"message-id",
    b"mime-version",
    b"content-type",
    b"list-unsubscribe",
    b"list-unsubscribe-post",
)


class RelayError(Exception):
    """The relay did not take the message; the text says why (never a credential)."""


@functools.cache
def _key(path: str) -> bytes:
    return Path(path).read_bytes()


def _names(message: bytes) -> set[bytes]:
    """The names of the message's headers, lower case."""
    head = message.split(b"\r\n\r\n", 1)[0]
    return {
        line.split(b":", 1)[0].strip().lower()
        for line in head.split(b"\r\n")
        if line and line[:1] not in (b" ", b"\t")
    }


def sign(settings: Settings, message: bytes) -> bytes:
    """The message with a DKIM-Signature header on top (unchanged when no key is set)."""
    if not settings.mail_dkim_key:
        return message
    domain = settings.mail_dkim_domain or domain_of(settings)
    header = dkim.sign(
        message,
        settings.mail_dkim_selector.encode(),
        domain.encode(),
        _key(settings.mail_dkim_key),
        include_headers=[h for h in SIGNED if h in _names(message)],
    )
    return bytes(header) + message


async def send(settings: Settings, message: bytes, recipient: str) -> None:
    """Hands the message to the relay, or raises RelayError."""
    security = settings.mail_smtp_security
    try:
        await aiosmtplib.send(
            sign(settings, message),
            sender=sender_of(settings),
            recipients=[recipient],
            hostname=settings.mail_smtp_host,
            port=settings.mail_smtp_port,
            username=settings.mail_smtp_username or None,
            password=settings.mail_smtp_password or None,
            use_tls=security == "tls",
            start_tls=security == "starttls",
            timeout=settings.mail_smtp_timeout_s,
        )
    except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
        raise RelayError(f"{type(exc).__name__}: {exc}"[:500]) from None
