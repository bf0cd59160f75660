"""What each person wants by e-mail, and whether their address is proven.

Per notification kind a person chooses immediate mail, the daily digest or nothing; the digest
comes at an hour of their own time zone (by default the one of their organisation's country).
Only a verified address gets mail: proven by a verification link, or by using an invitation or
password-reset link that was sent to it by e-mail (infra/migrations/0020_mail.sql)."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import orjson

from marketplace.core.notifications import KINDS
from marketplace.db import Conn

Choice = Literal["immediate", "digest", "none"]
CHOICES: tuple[Choice, ...] = ("immediate", "digest", "none")
# Proposals and awards at once (they wait for an answer or a truck), and the reminder that a
# proposal expires in a day (a digest could come too late); the rest in the digest.
IMMEDIATE = frozenset(
    {"match.proposed", "award.won", "transport.awarded", "reminder.proposal_expiring"}
)
DEFAULT_HOUR = 8
VERIFY_TTL = timedelta(days=2)

# The time zone of each country the exchange serves (ISO 3166 alpha-2), for the digest's hour
# until the person picks one; elsewhere UTC.
COUNTRY_ZONES = {
    "AT": "Europe/Vienna",
    "BE": "Europe/Brussels",
    "BG": "Europe/Sofia",
    "CY": "Asia/Nicosia",
    "CZ": "Europe/Prague",
    "DE": "Europe/Berlin",
    "DK": "Europe/Copenhagen",
    "EE": "Europe/Tallinn",
    "ES": "Europe/Madrid",
    "FI": "Europe/Helsinki",
    "FR": "Europe/Paris",
    "GB": "Europe/London",
    "GR": "Europe/Athens",
    "HR": "Europe/Zagreb",
    "HU": "Europe/Budapest",
    "IE": "Europe/Dublin",
    "IT": "Europe/Rome",
    "LT": "Europe/Vilnius",
    "LU": "Europe/Luxembourg",
    "LV": "Europe/Riga",
    "MT": "Europe/Malta",
    "NL": "Europe/Amsterdam",
    "NO": "Europe/Oslo",
    "PL": "Europe/Warsaw",
    "PT": "Europe/Lisbon",
    "RO": "Europe/Bucharest",
    "SE": "Europe/Stockholm",
    "SI": "Europe/Ljubljana",
    "SK": "Europe/Bratislava",
}
# The zones offered on the preferences page.
ZONES = tuple(sorted({*COUNTRY_ZONES.values(), "UTC"}))


def default_choice(kind: str) -> Choice:
    return "immediate" if kind in IMMEDIATE else "digest"


def zone_of_country(country: str | None) -> str:
    return COUNTRY_ZONES.get((country or "").upper(), "UTC")


def valid_zone(name: str) -> bool:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


@dataclass(frozen=True, slots=True)
class Preferences:
    kinds: dict[str, Choice] = field(default_factory=dict)  # only what differs from a default
    digest_hour: int = DEFAULT_HOUR
    time_zone: str | None = None  # None: the organisation's country's

    def choice(self, kind: str) -> Choice:
        return self.kinds.get(kind, default_choice(kind))

    def every_kind(self) -> dict[str, Choice]:
        return {k: self.choice(k) for k in KINDS}


def preferences_from_row(row: Any) -> Preferences:
    """From a row with kinds, digest_hour, time_zone (all NULL when the person has none)."""
    if row is None or row["kinds"] is None:
        return Preferences()
    kinds = row["kinds"] if isinstance(row["kinds"], dict) else orjson.loads(row["kinds"])
    return Preferences(
        kinds={k: v for k, v in kinds.items() if v in CHOICES},
        digest_hour=row["digest_hour"],
        time_zone=row["time_zone"],
    )


async def preferences_of(conn: Conn, person_id: str) -> Preferences:
    row = await conn.fetchrow(
        "SELECT kinds::text AS kinds, digest_hour, time_zone FROM mail_preferences"
        " WHERE person_id = $1",
        uuid.UUID(person_id),
    )
    return preferences_from_row(row)


async def zone_of(conn: Conn, person_id: str, prefs: Preferences) -> str:
    """The person's time zone: chosen, or their organisation's country's."""
    if prefs.time_zone:
        return prefs.time_zone
    country = await conn.fetchval(
        "SELECT pa.country FROM people p LEFT JOIN partners pa USING (partner_id)"
        " WHERE p.person_id = $1",
        uuid.UUID(person_id),
    )
    return zone_of_country(country)


class PreferenceError(ValueError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


async def save_preferences(conn: Conn, person_id: str, prefs: Preferences) -> None:
    for kind, choice in prefs.kinds.items():
        if kind not in KINDS:
            raise PreferenceError(f"kind.{kind}", f"no notification kind {kind!r}")
        if choice not in CHOICES:
            raise PreferenceError(f"kind.{kind}", f"choose one of {', '.join(CHOICES)}")
    if not 0 <= prefs.digest_hour <= 23:
        raise PreferenceError("digest_hour", "the hour is 0 to 23")
    if prefs.time_zone is not None and not valid_zone(prefs.time_zone):
        raise PreferenceError("time_zone", f"no time zone {prefs.time_zone!r}")
    kinds = {k: v for k, v in prefs.kinds.items() if v != default_choice(k)}
    await conn.execute(
        "INSERT INTO mail_preferences (person_id, kinds, digest_hour, time_zone)"
        " VALUES ($1, $2::text::jsonb, $3, $4) ON CONFLICT (person_id) DO UPDATE"
        " SET kinds = EXCLUDED.kinds, digest_hour = EXCLUDED.digest_hour,"
        "     time_zone = EXCLUDED.time_zone, updated_at = now()",
        uuid.UUID(person_id),
        orjson.dumps(kinds).decode(),
        prefs.digest_hour,
        prefs.time_zone,
    )


async def stop_kind(conn: Conn, person_id: str, kind: str) -> None:
    """The one-click unsubscribe: no more mail of this kind ('digest': no more digests, every
    kind that went to the digest now goes nowhere)."""
    prefs = await preferences_of(conn, person_id)
    chosen = dict(prefs.kinds)
    if kind == "digest":
        chosen |= {k: "none" for k, c in prefs.every_kind().items() if c == "digest"}
    elif kind in KINDS:
        chosen[kind] = "none"
    else:
        return
    await save_preferences(
        conn,
        person_id,
        Preferences(kinds=chosen, digest_hour=prefs.digest_hour, time_zone=prefs.time_zone),
    )


# --- verified addresses ------------------------------------------------------------------------

# A person's current address is verified when a row of mail_verified names it, or when an
# invitation or reset link sent to it by e-mail was used to set the password (use_link in
# marketplace/accounts.py marks the link used and records 'password-set-by-<purpose>' in one
# transaction, so both carry the same now(); a link merely replaced by a newer one has no such
# account event).
VERIFIED_SQL = """
(EXISTS (SELECT 1 FROM mail_verified v
         WHERE v.person_id = p.person_id AND v.email = lower(p.email))
 OR EXISTS (SELECT 1 FROM mail_sent_links s
            JOIN one_time_links l ON l.token_hash = s.token_hash
            JOIN account_events e ON e.person_id = s.person_id AND e.at = l.used_at
                 AND e.what = 'password-set-by-' || l.purpose
            WHERE s.person_id = p.person_id AND s.email = lower(p.email)))
"""


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


async def is_verified(conn: Conn, person_id: str) -> bool:
    return bool(
        await conn.fetchval(
            f"SELECT {VERIFIED_SQL} FROM people p WHERE p.person_id = $1",  # noqa: S608
            uuid.UUID(person_id),
        )
    )


async def issue_verify_link(conn: Conn, person_id: str, email: str) -> str:
    """A one-time token proving `email` is the person's; earlier unused ones stop working."""
    token = secrets.token_urlsafe(32)
    async with conn.transaction():
        await conn.execute(
            "UPDATE mail_verify_links SET used_at = now() WHERE person_id = $1 AND used_at IS NULL",
            uuid.UUID(person_id),
        )
        await conn.execute(
            "INSERT INTO mail_verify_links (token_hash, person_id, email, expires_at)"
            " VALUES ($1, $2, lower($3), now() + $4)",
            _digest(token),
            uuid.UUID(person_id),
            email,
            VERIFY_TTL,
        )
    return token


async def use_verify_link(conn: Conn, token: str) -> str | None:
    """Marks the address verified; the person_id, or None when the link is unknown, used,
    expired or names an address the person no longer has."""
    async with conn.transaction():
        row = await conn.fetchrow(
            "UPDATE mail_verify_links l SET used_at = now() FROM people p"
            " WHERE l.token_hash = $1 AND l.used_at IS NULL AND l.expires_at > now()"
            "   AND p.person_id = l.person_id AND lower(p.email) = l.email"
            "   AND p.disabled_at IS NULL"
            " RETURNING l.person_id, l.email",
            _digest(token),
        )
        if row is None:
            return None
        await conn.execute(
            "INSERT INTO mail_verified (person_id, email, how) VALUES ($1, $2, 'verify')"
            " ON CONFLICT DO NOTHING",
            row["person_id"],
            row["email"],
        )
        await conn.execute(
            "INSERT INTO account_events (person_id, what) VALUES ($1, 'address-verified')",
            row["person_id"],
        )
    return str(row["person_id"])


async def record_sent_link(conn: Conn, token: str, person_id: str, email: str) -> None:
    """An invitation or reset link went to `email` by mail: using it proves the address."""
    await conn.execute(
        "INSERT INTO mail_sent_links (token_hash, person_id, email) VALUES ($1, $2, lower($3))"
        " ON CONFLICT DO NOTHING",
        _digest(token),
        uuid.UUID(person_id),
        email,
    )
