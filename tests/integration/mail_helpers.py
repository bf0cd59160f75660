"""A real SMTP server on loopback (aiosmtpd) that keeps what arrives, a DKIM key pair with the
DNS answer that publishes it, people with verified addresses, and a mailer with a group of its
own, for the e-mail tests."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import socket
import threading
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from consumers.mailer import TOPIC, run_mailer
from marketplace import accounts
from marketplace.db import connect
from marketplace.mail import prefs
from marketplace.settings import Settings
from tests.integration.notify_helpers import start_at_end

SELECTOR = "t1"
DOMAIN = "mail.example.org"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclasses.dataclass
class Arrived:
    rcpt: list[str]
    raw: bytes

    @property
    def msg(self) -> EmailMessage:
        parsed = message_from_bytes(self.raw, policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        return parsed

    @property
    def message_id(self) -> str:
        return str(self.msg["Message-ID"])


class Sink:
    """An SMTP server (aiosmtpd's Controller, in a thread of its own) keeping every message."""

    def __init__(self, port: int | None = None, delay_s: float = 0.0) -> None:
        self.port = port or free_port()
        self.delay_s = delay_s
        self.arrived: list[Arrived] = []
        self.lock = threading.Lock()
        self.controller = Controller(self, hostname="127.0.0.1", port=self.port)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        with self.lock:
            self.arrived.append(Arrived(list(envelope.rcpt_tos), bytes(envelope.original_content)))
        return "250 Message accepted for delivery"

    def __enter__(self) -> Sink:
        self.controller.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.controller.stop()

    def to(self, address: str) -> list[Arrived]:
        with self.lock:
            return [a for a in self.arrived if address in a.rcpt]


def dkim_key(tmp: Path) -> tuple[Path, bytes]:
    """A private key file and the TXT record that publishes its public half."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    path = tmp / "dkim.pem"
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return path, b"v=DKIM1; k=rsa; p=" + base64.b64encode(public)


def mail_settings(settings: Settings, tmp: Path, port: int, **changes: Any) -> Settings:
    key, _ = dkim_key(tmp) if not (tmp / "dkim.pem").exists() else (tmp / "dkim.pem", b"")
    base: dict[str, Any] = {
        "mail_smtp_port": port,
        "mail_from": f"Exchange <noreply@{DOMAIN}>",
        "mail_dkim_key": str(key),
        "mail_dkim_selector": SELECTOR,
        "mail_link_key": str(tmp / "link-key"),
        "mail_retry_base_s": 0.2,
        "mail_retry_cap_s": 0.8,
        "mail_max_attempts": 4,
        "mail_smtp_timeout_s": 2.0,
        "web_secure_cookies": False,
    }
    return dataclasses.replace(settings, **(base | changes))


def env_of(s: Settings) -> dict[str, str]:
    """The MARKETPLACE_* variables of the mail settings, for a worker process."""
    names = (
        "mail_smtp_port",
        "mail_from",
        "mail_dkim_key",
        "mail_dkim_selector",
        "mail_link_key",
        "mail_retry_base_s",
        "mail_retry_cap_s",
        "mail_max_attempts",
        "mail_smtp_timeout_s",
        "mail_max_in_flight",
    )
    return {f"MARKETPLACE_{n.upper()}": str(getattr(s, n)) for n in names}


async def person(
    settings: Settings,
    partner_id: str,
    *,
    locale: str = "en",
    role: accounts.PersonRole = "member",
    verified: bool = True,
    name: str = "Test Person",
) -> accounts.Person:
    """A person of the organisation; verified through a verification link, as on the page."""
    conn = await connect(settings)
    try:
        p = await accounts.create_person(
            conn,
            partner_id=partner_id,
            email=f"p-{uuid.uuid4().hex[:10]}@example.org",
            display_name=name,
            role=role,
            locale=locale,
        )
        if verified:
            token = await prefs.issue_verify_link(conn, p.person_id, p.email)
            assert await prefs.use_verify_link(conn, token) == p.person_id
        return p
    finally:
        await conn.close()


@asynccontextmanager
async def mailer_running(
    settings: Settings, group: str | None = None, **options: Any
) -> AsyncIterator[str]:
    stop = asyncio.Event()
    if group is None:
        group = f"test.mailer.{uuid.uuid4().hex[:8]}"
        await start_at_end(settings, group, [TOPIC])
    task = asyncio.create_task(run_mailer(settings, stop, group, poll_s=0.2, **options))
    try:
        yield group
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


def now() -> datetime:
    return datetime.now(UTC)
