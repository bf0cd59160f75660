"""Facilitators get the mail of the SMEs that consented to them (#20 item 1), against a real SMTP
server on loopback, Kafka and PostgreSQL: a notification of an SME reaches the SME's people and
the people of the facilitator it consented to (saying for which SME), and not those of a
facilitator whose consent it revoked."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import pytest

from marketplace.db import connect
from marketplace.settings import Settings
from tests.integration.api_helpers import Partner, eventually, register
from tests.integration.mail_helpers import Sink, mail_settings, mailer_running, person
from tests.integration.notify_helpers import publish
from tests.integration.test_mail import notes, text_of

pytestmark = pytest.mark.integration


async def consent(settings: Settings, sme: Partner, facilitator: Partner, status: str) -> None:
    """The consents read model as the projector keeps it from partners.registry (and the SME's
    name in the partners read model)."""
    conn = await connect(settings)
    try:
        now = datetime.now(UTC)
        await conn.execute(
            "INSERT INTO partners (partner_id, name, role, country, registered_at, updated_at)"
            " VALUES ($1, 'Sofia Textiles AD', 'sme', 'BG', $2, $2) ON CONFLICT DO NOTHING",
            sme.partner_id,
            now,
        )
        await conn.execute(
            "INSERT INTO consents (partner_id, facilitator_id, status, granted_at, revoked_at,"
            " updated_at) VALUES ($1, $2, $3, $4, $5, $4)",
            sme.partner_id,
            facilitator.partner_id,
            status,
            now,
            now if status == "revoked" else None,
        )
    finally:
        await conn.close()


async def test_a_consenting_smes_notifications_reach_its_facilitator(
    settings: Settings, tmp_path: Path
) -> None:
    with Sink() as sink:
        s = mail_settings(settings, tmp_path, sink.port)
        sme = await register(s, "sme")
        helping = await register(s, "facilitator")
        former = await register(s, "facilitator")
        await consent(s, sme, helping, "granted")
        await consent(s, sme, former, "revoked")
        sam = await person(s, sme.partner_id, name="Sam")
        fay = await person(s, helping.partner_id, name="Fay")
        fred = await person(s, former.partner_id, name="Fred")
        conn = await connect(s)
        try:
            name = await conn.fetchval(
                "SELECT name FROM partners WHERE partner_id = $1", sme.partner_id
            )
        finally:
            await conn.close()
        async with mailer_running(s):
            await publish(s, *notes(sme, 1))

            async def arrived() -> bool:
                return len(sink.to(sam.email)) == 1 and len(sink.to(fay.email)) == 1

            await eventually(arrived, 60)
            await asyncio.sleep(1.0)  # nothing more comes
        assert sink.to(fred.email) == [], "a revoked consent: no mail"
        [own], [helper] = sink.to(sam.email), sink.to(fay.email)
        assert own.msg["Subject"] == "A new proposal for your organisation: 150102"
        assert helper.msg["Subject"] == f"A new proposal for your organisation: 150102 ({name})"
        assert f"For the SME: {name}" in text_of(helper)
        assert "For the SME" not in text_of(own)
        assert "/app/facilitation" in text_of(helper), "the link leads to the facilitator's page"
        assert "/app/proposals" in text_of(own)
        assert own.message_id != helper.message_id
