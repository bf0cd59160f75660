"""A local SMTP sink for a laptop (`make run`): an SMTP server on loopback that accepts every
message and writes it to a folder as an .eml file an operator can open or read with `less`.

It is on when `MARKETPLACE_MAIL_SINK` says so (`make run` sets it; the default is off) and then
listens where the mailer sends (`MARKETPLACE_MAIL_SMTP_HOST`/`PORT`, loopback only: the settings
refuse another host). It is built on aiosmtpd, one of the development tools, imported only when
the sink starts, so a production install without it never needs it."""

from __future__ import annotations

import asyncio
import itertools
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from marketplace.logs import get_logger
from marketplace.settings import Settings, is_loopback

log = get_logger(__name__)


class SinkUnavailable(RuntimeError):
    """The sink cannot start (aiosmtpd missing); the text says what to do."""


def file_name(at: datetime, n: int) -> str:
    """Names sort in arrival order: `20261130T082430.123456Z-0001.eml`."""
    return f"{at.astimezone(UTC):%Y%m%dT%H%M%S.%fZ}-{n:04d}.eml"


class Inbox:
    """aiosmtpd's handler: each message to a file of its own (the envelope's sender and
    recipients first, as X-Envelope-* lines, then the message as it arrived)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.count = itertools.count(1)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: ARG002
        head = (
            f"X-Envelope-From: {envelope.mail_from}\r\n"
            f"X-Envelope-To: {', '.join(envelope.rcpt_tos)}\r\n"
        ).encode()
        content = envelope.original_content or b""
        path = self.folder / file_name(datetime.now(UTC), next(self.count))
        await asyncio.to_thread(path.write_bytes, head + bytes(content))
        log.info("mail_sink_received", file=str(path), recipients=len(envelope.rcpt_tos))
        return "250 Message accepted for delivery"


async def run_sink(settings: Settings, stop: asyncio.Event) -> None:
    """Listens until `stop`; every message lands in `settings.mail_sink_path`."""
    try:
        from aiosmtpd.smtp import SMTP
    except ImportError:
        raise SinkUnavailable(
            "the local mail sink (MARKETPLACE_MAIL_SINK) needs aiosmtpd, installed with the"
            " development tools (make setup); install it, or set MARKETPLACE_MAIL_SINK=false"
            " and point MARKETPLACE_MAIL_SMTP_HOST at a relay"
        ) from None
    if not is_loopback(settings.mail_smtp_host):
        raise SinkUnavailable(
            f"the local mail sink listens on loopback only, not {settings.mail_smtp_host!r}"
            " (MARKETPLACE_MAIL_SMTP_HOST)"
        )
    folder = settings.mail_sink_path
    folder.mkdir(parents=True, exist_ok=True)
    handler = Inbox(folder)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SMTP(handler, hostname="exchange-sink.localhost"),
        settings.mail_smtp_host,
        settings.mail_smtp_port,
    )
    log.info(
        "mail_sink_listening",
        address=f"{settings.mail_smtp_host}:{settings.mail_smtp_port}",
        folder=str(folder),
    )
    try:
        await stop.wait()
    finally:
        server.close()
        await server.wait_closed()
