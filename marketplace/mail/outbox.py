"""Messages waiting for the mailer (mail_deliveries): what the mailer's inbox writes for a
notification, and what the pages and the CLI write for an account e-mail (an invitation, a
password reset, a verification link), so that both go out through the same sending, retries and
dead letters."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

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


class ResendRefused(Exception):
    """A dead message that is not sent again, and why."""


async def dead_mail(conn: Conn, limit: int = 200, group_id: str = GROUP) -> list[dict[str, Any]]:
    """Messages given up on, newest first: ids, kind, person (not the address), attempts and the
    last error."""
    rows = await conn.fetch(
        "SELECT message_id, person_id, kind, attempts, last_error, created_at, dead_at"
        " FROM mail_deliveries WHERE group_id = $1 AND status = 'dead'"
        " ORDER BY dead_at DESC, message_id LIMIT $2",
        group_id,
        limit,
    )
    return [
        {
            "message_id": r["message_id"],
            "person_id": str(r["person_id"]),
            "kind": r["kind"],
            "attempts": r["attempts"],
            "last_error": r["last_error"],
            "created_at": r["created_at"].isoformat(),
            "dead_at": r["dead_at"].isoformat() if r["dead_at"] else None,
        }
        for r in rows
    ]


# An account e-mail carries a one-time link that expires; sending a dead one late would hand out
# a link that no longer works (or, for an invitation, one the person should ask for afresh).
_NOT_RESENT = "account."


async def resend(conn: Conn, message_id: str, group_id: str = GROUP) -> None:
    """A dead message goes out again: the same stored bytes and Message-ID (a mail system that
    has it already drops the copy), attempts from zero, due now. Raises ResendRefused for a
    message that is not dead or is an account e-mail."""
    message_id = message_id.strip().strip("<>")
    row = await conn.fetchrow(
        "SELECT kind, status FROM mail_deliveries WHERE group_id = $1 AND message_id = $2",
        group_id,
        message_id,
    )
    if row is None:
        raise ResendRefused(f"no message {message_id} (see `marketplace mail dead-letters`)")
    if row["status"] != "dead":
        raise ResendRefused(f"message {message_id} is {row['status']}, not dead")
    if row["kind"].startswith(_NOT_RESENT):
        raise ResendRefused(
            f"message {message_id} is an account e-mail ({row['kind']}): its link may have "
            "expired; the person asks for a new one (the password-reset page), or an admin "
            "invites them again"
        )
    await _revive(conn, group_id, [message_id])


async def resend_all(conn: Conn, group_id: str = GROUP) -> int:
    """Every dead message but account e-mails goes out again (after a relay's long outage, say);
    returns how many."""
    ids = [
        r["message_id"]
        for r in await conn.fetch(
            "SELECT message_id FROM mail_deliveries WHERE group_id = $1 AND status = 'dead'"
            " AND kind NOT LIKE $2 ORDER BY dead_at, message_id",
            group_id,
            f"{_NOT_RESENT}%",
        )
    ]
    if ids:
        await _revive(conn, group_id, ids)
    return len(ids)


async def _revive(conn: Conn, group_id: str, ids: list[str]) -> None:
    async with conn.transaction():
        await conn.execute(
            "UPDATE mail_deliveries SET status = 'pending', attempts = 0, next_attempt_at = now(),"
            " dead_at = NULL, lease_until = NULL"
            " WHERE group_id = $1 AND message_id = ANY($2::text[]) AND status = 'dead'",
            group_id,
            ids,
        )
        await conn.execute("SELECT pg_notify($1, $2)", CHANNEL, group_id)
