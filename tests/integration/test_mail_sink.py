"""The local SMTP sink of `make run` (docs/operators/mail.md) against the real mailer, Kafka and
PostgreSQL: `marketplace run all` starts it only when MARKETPLACE_MAIL_SINK is on, it listens
where the mailer sends, and every message lands in its folder as a file an operator can read."""

from __future__ import annotations

import asyncio
import dataclasses
import sys
from email import message_from_bytes, policy
from pathlib import Path

import pytest

from marketplace.app.services import SERVICES, local_extras, run_mail_sink
from marketplace.mail.sink import SinkUnavailable, run_sink
from marketplace.settings import Settings, SettingsError
from tests.integration.api_helpers import eventually, register
from tests.integration.mail_helpers import free_port, mail_settings, mailer_running, person
from tests.integration.notify_helpers import publish
from tests.integration.test_mail import notes

pytestmark = pytest.mark.integration


def test_run_all_starts_the_sink_only_when_the_setting_says_so() -> None:
    off = Settings.from_env({})
    assert off.mail_sink is False, "off unless asked for (production)"
    assert local_extras(off) == {}
    assert {"mailer", "reminders", "scheduler"} <= set(SERVICES)
    on = Settings.from_env({"MARKETPLACE_MAIL_SINK": "true"})
    assert local_extras(on) == {"mail-sink": run_mail_sink}
    assert on.mail_sink_path == on.local_dir / "mail" / "inbox"
    with pytest.raises(SettingsError, match="MAIL_SINK listens on loopback only"):
        Settings.from_env({"MARKETPLACE_MAIL_SINK": "1", "MARKETPLACE_MAIL_SMTP_HOST": "10.1.2.3"})


async def test_without_aiosmtpd_the_sink_says_what_to_do(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "aiosmtpd.smtp", None)  # as if it were not installed
    with pytest.raises(SinkUnavailable, match="needs aiosmtpd"):
        await run_sink(settings, asyncio.Event())


async def test_the_mailer_delivers_into_the_sink_folder(settings: Settings, tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    s = dataclasses.replace(
        mail_settings(settings, tmp_path, free_port()), mail_sink=True, mail_sink_dir=str(inbox)
    )
    stop = asyncio.Event()
    sink = asyncio.create_task(run_sink(s, stop))
    try:
        partner = await register(s, "sme")
        eva = await person(s, partner.partner_id, name="Eva")
        async with mailer_running(s):
            await publish(s, *notes(partner, 1))

            async def landed() -> bool:
                return any(inbox.glob("*.eml"))

            await eventually(landed, 60)
        [file] = sorted(inbox.glob("*.eml"))
        raw = file.read_bytes()
        assert raw.startswith(b"X-Envelope-From: noreply@mail.example.org\r\n")
        assert f"X-Envelope-To: {eva.email}".encode() in raw
        msg = message_from_bytes(raw, policy=policy.default)
        assert msg["Subject"] == "A new proposal for your organisation: 150102"
        assert msg["To"].addresses[0].addr_spec == eva.email
    finally:
        stop.set()
        await asyncio.wait_for(sink, 10)
