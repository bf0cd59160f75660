"""Messages waiting for the mailer (mail_deliveries): what the mailer's inbox writes for a
notification, and what the pages and the CLI write for an account e-mail (an invitation, a
password reset, a verification link), so that both go out through the same sending, retries and
dead letters."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from marketplace.db import Conn
from marketplace.mail import render
from marketplace.mail.prefs import record_sent_link, zone_of_country
from marketplace.settings import Settings

GROUP = "mailer"  # the mailer service's consumer group, which sends what is queued under it
CHANNEL = "mail_deliveries"


async def queue_account_mail(
    conn: Conn,
    settings: Settings,
    *,
    person_id: str,
    purpose: str,
    token: str,
    group_id: str = GROUP,
) -> str:
    """Queues an account e-mail carrying the link of `token` to the person's address; returns
    its Message-ID. An invitation or reset link sent this way proves the address once used."""
    row = await conn.fetchrow(
        "SELECT p.email, p.display_name, p.locale, pa.country FROM people p"
        " LEFT JOIN partners pa ON pa.partner_id = p.partner_id WHERE p.person_id = $1",
        uuid.UUID(person_id),
    )
    if row is None:
        raise ValueError(f"no person {person_id}")
    path = {"account.invite": "invite", "account.reset": "reset", "account.verify": "mail/verify"}
    link = f"{settings.web_base_url.rstrip('/')}/app/{path[purpose]}/{token}"
    to = render.Recipient(
        person_id, row["email"], row["display_name"], row["locale"], zone_of_country(row["country"])
    )
    # The token never leaves this function but in the message; its hash makes the id.
    cause = uuid.uuid5(uuid.NAMESPACE_URL, token).hex
    mid, message = render.account(
        settings, to, purpose=purpose, link=link, cause=cause, at=datetime.now(UTC)
    )
    async with conn.transaction():
        await conn.execute(
            "INSERT INTO mail_deliveries (group_id, message_id, person_id, kind, recipient,"
            " message) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
            group_id,
            mid,
            uuid.UUID(person_id),
            purpose,
            row["email"],
            message,
        )
        if purpose in ("account.invite", "account.reset"):
            await record_sent_link(conn, token, person_id, row["email"])
        await conn.execute("SELECT pg_notify($1, $2)", CHANNEL, group_id)
    return mid
