"""People's accounts: members of an organisation (partner) and the association's operators, each
with their own login (#19, decisions 10 and 12).

Passwords are hashed with Argon2id by argon2-cffi (its RFC 9106 low-memory profile) and rehashed
on sign-in when those parameters change. Browser sessions, invitation and reset links are random
tokens of 32 bytes; the database keeps only their SHA-256, so a copy of it opens nothing. Failed
sign-ins are throttled per account and per client address in a sliding window. Everything
personal stays in these tables (infra/migrations/0018); events carry the person_id only."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Literal

import asyncpg
import pyotp
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from marketplace.db import Conn
from marketplace.secretbox import KeyRing, Sealed, SecretKeyError

PersonRole = Literal["admin", "member", "read-only", "operator"]
ORG_ROLES: tuple[PersonRole, ...] = ("admin", "member", "read-only")
LOCALES = ("en", "bg", "sv")

SESSION_TTL = timedelta(hours=12)
INVITE_TTL = timedelta(days=7)
RESET_TTL = timedelta(hours=1)
# Failed sign-ins allowed in WINDOW before the next try must wait: per account, and per client
# address (one address trying many accounts).
WINDOW = timedelta(minutes=15)
PER_ACCOUNT = 5
PER_ADDRESS = 50
# Reset links asked for in WINDOW before the next ask must wait: per e-mail address asked for
# (whether or not it has an account, so the wait tells nobody which do), and per client address.
RESETS_PER_EMAIL = 3
RESETS_PER_ADDRESS = 30
MIN_PASSWORD = 12
MAX_PASSWORD = 1024

_hasher = PasswordHasher()
# Verified against when the account does not exist, so that a sign-in takes as long either way.
_DUMMY = _hasher.hash(secrets.token_urlsafe(16))


class AccountError(ValueError):
    """A request about an account that cannot be done; `field` names the form field concerned
    and `code` is a stable reason a page translates."""

    def __init__(self, code: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.field = field


@dataclass(frozen=True, slots=True)
class Person:
    person_id: str
    partner_id: str | None
    email: str
    display_name: str
    role: PersonRole
    locale: str


@dataclass(frozen=True, slots=True)
class Session:
    person: Person
    csrf_token: str
    # The organisation's role on the exchange (sme, logistics, auditor, facilitator, ...) from
    # the partner registry, for the pages' menu; None for staff or a partner not yet projected.
    organisation_role: str | None = None


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def normal_email(email: str) -> str:
    email = email.strip()
    local, at, domain = email.rpartition("@")
    if (
        not at
        or not local
        or "." not in domain
        or len(email) > 254
        or any(c.isspace() for c in email)
    ):
        raise AccountError("email-invalid", "this is not an e-mail address", "email")
    return f"{local}@{domain.lower()}"


def check_password(password: str, email: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise AccountError(
            "password-short", f"the password needs at least {MIN_PASSWORD} characters", "password"
        )
    if len(password) > MAX_PASSWORD:
        raise AccountError(
            "password-long", f"the password may have at most {MAX_PASSWORD} characters", "password"
        )
    if password.strip().lower() == email.strip().lower():
        raise AccountError("password-is-email", "the password must not be the e-mail", "password")


def _person(row: asyncpg.Record) -> Person:
    return Person(
        person_id=str(row["person_id"]),
        partner_id=row["partner_id"],
        email=row["email"],
        display_name=row["display_name"],
        role=row["role"],
        locale=row["locale"],
    )


async def create_person(
    conn: Conn,
    *,
    partner_id: str | None,
    email: str,
    display_name: str,
    role: PersonRole,
    locale: str = "en",
) -> Person:
    """A person without a password yet: they choose one through their invitation link."""
    if role not in (*ORG_ROLES, "operator"):
        raise AccountError("role-invalid", f"no role {role!r}", "role")
    if (role == "operator") != (partner_id is None):
        raise AccountError(
            "role-invalid", "operators belong to no organisation; members to one", "role"
        )
    if locale not in LOCALES:
        raise AccountError("locale-invalid", f"no language {locale!r}", "locale")
    name = display_name.strip()
    if not 1 <= len(name) <= 200:
        raise AccountError("name-invalid", "the name needs 1 to 200 characters", "display_name")
    address = normal_email(email)
    row = await conn.fetchrow(
        "INSERT INTO people (person_id, partner_id, email, display_name, role, locale)"
        " VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING"
        " RETURNING person_id, partner_id, email, display_name, role, locale",
        uuid.uuid4(),
        partner_id,
        address,
        name,
        role,
        locale,
    )
    if row is None:
        raise AccountError("email-taken", "a person with this e-mail already exists", "email")
    return _person(row)


async def person_by_id(conn: Conn, person_id: str) -> Person | None:
    row = await conn.fetchrow(
        "SELECT person_id, partner_id, email, display_name, role, locale FROM people"
        " WHERE person_id = $1 AND disabled_at IS NULL",
        uuid.UUID(person_id),
    )
    return None if row is None else _person(row)


async def members(conn: Conn, partner_id: str) -> list[Person]:
    rows = await conn.fetch(
        "SELECT person_id, partner_id, email, display_name, role, locale FROM people"
        " WHERE partner_id = $1 AND disabled_at IS NULL"
        " ORDER BY lower(email)",
        partner_id,
    )
    return [_person(r) for r in rows]


async def record(conn: Conn, person_id: str, what: str) -> None:
    await conn.execute(
        "INSERT INTO account_events (person_id, what) VALUES ($1, $2)", uuid.UUID(person_id), what
    )


async def issue_link(conn: Conn, person_id: str, purpose: Literal["invite", "reset"]) -> str:
    """A one-time token for the person's invitation or password reset; earlier unused links of
    the same purpose stop working."""
    token = secrets.token_urlsafe(32)
    ttl = INVITE_TTL if purpose == "invite" else RESET_TTL
    async with conn.transaction():
        await conn.execute(
            "UPDATE one_time_links SET used_at = now()"
            " WHERE person_id = $1 AND purpose = $2 AND used_at IS NULL",
            uuid.UUID(person_id),
            purpose,
        )
        await conn.execute(
            "INSERT INTO one_time_links (token_hash, person_id, purpose, expires_at)"
            " VALUES ($1, $2, $3, now() + $4)",
            _digest(token),
            uuid.UUID(person_id),
            purpose,
            ttl,
        )
    return token


async def link_person(conn: Conn, token: str, purpose: str) -> Person | None:
    """Whose valid, unused link this is (None when unknown, used or expired)."""
    row = await conn.fetchrow(
        "SELECT p.person_id, p.partner_id, p.email, p.display_name, p.role, p.locale"
        " FROM one_time_links l"
        " JOIN people p USING (person_id)"
        " WHERE l.token_hash = $1 AND l.purpose = $2 AND l.used_at IS NULL"
        "   AND l.expires_at > now() AND p.disabled_at IS NULL",
        _digest(token),
        purpose,
    )
    return None if row is None else _person(row)


async def count_reset_ask(conn: Conn, email: str, address: str) -> None:
    """Counts one ask for a reset link (the password-reset page), throttled like sign-ins: the
    asks of the last WINDOW per e-mail address asked for and per client address, in the same
    table as failed sign-ins under subjects of their own. AccountError `throttled` when either
    has asked too often (that ask is not counted)."""
    subjects = {
        f"reset:email:{email.strip().lower()[:254]}": RESETS_PER_EMAIL,
        f"reset:address:{address}": RESETS_PER_ADDRESS,
    }
    if await _throttled(conn, subjects):
        raise AccountError(
            "throttled",
            f"too many asks for a reset link; wait {int(WINDOW.total_seconds() // 60)} minutes",
            None,
        )
    await conn.executemany(
        "INSERT INTO login_failures (subject) VALUES ($1)", [(s,) for s in subjects]
    )


async def reset_request(conn: Conn, email: str) -> tuple[Person, str] | None:
    """A reset link for the account with this e-mail, or None when there is none (the page says
    the same either way, so it tells nobody which addresses have accounts)."""
    try:
        address = normal_email(email)
    except AccountError:
        return None
    row = await conn.fetchrow(
        "SELECT person_id, partner_id, email, display_name, role, locale FROM people"
        " WHERE lower(email) = lower($1) AND disabled_at IS NULL",
        address,
    )
    if row is None:
        return None
    person = _person(row)
    return person, await issue_link(conn, person.person_id, "reset")


async def use_link(conn: Conn, token: str, purpose: str, password: str) -> Person:
    """Sets the password through an invitation or reset link, once; every session of the person
    ends (a reset is what someone does who fears another has their password)."""
    async with conn.transaction():
        person = await link_person(conn, token, purpose)
        if person is None:
            raise AccountError(
                "link-invalid", "this link is not valid any more: ask for a new one", None
            )
        check_password(password, person.email)
        used = await conn.execute(
            "UPDATE one_time_links SET used_at = now() WHERE token_hash = $1 AND used_at IS NULL",
            _digest(token),
        )
        if used != "UPDATE 1":
            raise AccountError("link-invalid", "this link was used a moment ago", None)
        await conn.execute(
            "UPDATE people SET password_hash = $2 WHERE person_id = $1",
            uuid.UUID(person.person_id),
            _hasher.hash(password),
        )
        await end_all_sessions(conn, person.person_id)
        await record(conn, person.person_id, f"password-set-by-{purpose}")
    return person


async def _throttled(conn: Conn, subjects: dict[str, int]) -> bool:
    rows = await conn.fetch(
        "SELECT subject, count(*) AS n FROM login_failures"
        " WHERE subject = ANY($1::text[]) AND failed_at > now() - $2::interval GROUP BY subject",
        list(subjects),
        WINDOW,
    )
    return any(r["n"] >= subjects[r["subject"]] for r in rows)


async def sign_in(
    conn: Conn,
    email: str,
    password: str,
    address: str,
    *,
    code: str = "",
    ring: Callable[[], KeyRing] | None = None,
    at: float = 0.0,
) -> Person:
    """The person whose e-mail and password these are, or AccountError: `credentials` (the same
    for an unknown e-mail and a wrong password), `code` (a second factor is on and the code
    from the app is missing or wrong: a failure too) or `throttled` (too many failures)."""
    key = f"account:{email.strip().lower()}"
    subjects = {key: PER_ACCOUNT, f"address:{address}": PER_ADDRESS}
    if await _throttled(conn, subjects):
        raise AccountError(
            "throttled",
            f"too many failed sign-ins; wait {int(WINDOW.total_seconds() // 60)} minutes",
            None,
        )
    row = await conn.fetchrow(
        "SELECT person_id, partner_id, email, display_name, role, locale, password_hash,"
        " totp_sealed FROM people"
        " WHERE lower(email) = lower($1) AND disabled_at IS NULL",
        email.strip(),
    )
    stored = row["password_hash"] if row is not None else None
    ok = False
    try:
        ok = _hasher.verify(stored or _DUMMY, password[:MAX_PASSWORD])
    except (VerificationError, InvalidHashError):
        ok = False
    if row is None or stored is None or not ok:
        await conn.executemany(
            "INSERT INTO login_failures (subject) VALUES ($1)", [(s,) for s in subjects]
        )
        raise AccountError("credentials", "the e-mail or the password is not right", None)
    person = _person(row)
    if row["totp_sealed"] is not None and (
        ring is None or not await check_totp(conn, ring(), person.person_id, code, at)
    ):
        await conn.executemany(
            "INSERT INTO login_failures (subject) VALUES ($1)", [(s,) for s in subjects]
        )
        raise AccountError("code", "enter the current code from your authenticator app", "code")
    if _hasher.check_needs_rehash(stored):
        await conn.execute(
            "UPDATE people SET password_hash = $2 WHERE person_id = $1",
            uuid.UUID(person.person_id),
            _hasher.hash(password),
        )
    await conn.execute("DELETE FROM login_failures WHERE subject = $1", key)
    await record(conn, person.person_id, "signed-in")
    return person


async def open_session(conn: Conn, person: Person) -> str:
    token = secrets.token_urlsafe(32)
    await conn.execute(
        "INSERT INTO web_sessions (token_hash, person_id, csrf_token, expires_at)"
        " VALUES ($1, $2, $3, now() + $4)",
        _digest(token),
        uuid.UUID(person.person_id),
        secrets.token_urlsafe(32),
        SESSION_TTL,
    )
    return token


async def session_of(conn: Conn, token: str) -> Session | None:
    row = await conn.fetchrow(
        "SELECT p.person_id, p.partner_id, p.email, p.display_name, p.role, p.locale,"
        " s.csrf_token, o.role AS organisation_role"
        " FROM web_sessions s JOIN people p USING (person_id)"
        " LEFT JOIN partners o ON o.partner_id = p.partner_id AND o.active"
        " WHERE s.token_hash = $1 AND s.revoked_at IS NULL AND s.expires_at > now()"
        "   AND p.disabled_at IS NULL",
        _digest(token),
    )
    if row is None:
        return None
    return Session(
        person=_person(row),
        csrf_token=row["csrf_token"],
        organisation_role=row["organisation_role"],
    )


async def end_session(conn: Conn, token: str) -> None:
    await conn.execute(
        "UPDATE web_sessions SET revoked_at = now() WHERE token_hash = $1 AND revoked_at IS NULL",
        _digest(token),
    )


async def end_all_sessions(conn: Conn, person_id: str) -> int:
    status = await conn.execute(
        "UPDATE web_sessions SET revoked_at = now() WHERE person_id = $1 AND revoked_at IS NULL",
        uuid.UUID(person_id),
    )
    return int(status.split()[-1])


async def set_locale(conn: Conn, person_id: str, locale: str) -> None:
    if locale not in LOCALES:
        raise AccountError("locale-invalid", f"no language {locale!r}", "locale")
    await conn.execute(
        "UPDATE people SET locale = $2 WHERE person_id = $1", uuid.UUID(person_id), locale
    )


async def disable(conn: Conn, email: str) -> int | None:
    """Stops the person signing in and ends their sessions (None: no such account). The row
    stays (it may be named by history as a pseudonymous id); erasure is a separate step."""
    async with conn.transaction():
        person_id = await conn.fetchval(
            "UPDATE people SET disabled_at = now()"
            " WHERE lower(email) = lower($1) AND disabled_at IS NULL RETURNING person_id",
            email.strip(),
        )
        if person_id is None:
            return None
        await record(conn, str(person_id), "disabled")
        return await end_all_sessions(conn, str(person_id))


# --- a second factor: TOTP (RFC 6238, by pyotp), optional per person --------------------------

TOTP_ISSUER = "Circular materials exchange"


def new_totp_secret() -> str:
    return pyotp.random_base32()


def totp_uri(secret: str, email: str) -> str:
    """What an authenticator app takes (typed in, or as a QR code)."""
    return pyotp.TOTP(secret).provisioning_uri(name=email, issuer_name=TOTP_ISSUER)


def totp_step(secret: str, code: str, at: float, last_step: int | None) -> int | None:
    """The time step the code is valid for (the current one or its neighbours, for clocks a
    little apart), or None; a step at or before `last_step` was used already."""
    code = code.strip().replace(" ", "")
    if not (len(code) == 6 and code.isdigit()):
        return None
    totp = pyotp.TOTP(secret)
    now = int(at // totp.interval)
    for step in (now, now - 1, now + 1):
        if last_step is not None and step <= last_step:
            continue
        if hmac.compare_digest(totp.generate_otp(step), code):
            return step
    return None


async def enable_totp(
    conn: Conn, ring: KeyRing, person_id: str, secret: str, code: str, at: float
) -> None:
    """Turns the second factor on, once a code from the person's app proves they hold it."""
    if not re.fullmatch(r"[A-Z2-7]{32}", secret):
        raise AccountError("totp-secret", "the key is not one the exchange made: start again", None)
    step = totp_step(secret, code, at, None)
    if step is None:
        raise AccountError("totp-wrong", "the code does not match: try the next one", "code")
    await conn.execute(
        "UPDATE people SET totp_sealed = $2, totp_last_step = $3 WHERE person_id = $1",
        uuid.UUID(person_id),
        ring.encrypt(secret),
        step,
    )
    await record(conn, person_id, "second-factor-on")


async def disable_totp(conn: Conn, ring: KeyRing, person_id: str, code: str, at: float) -> None:
    """Turns it off, with a current code (a stolen session alone cannot)."""
    if not await check_totp(conn, ring, person_id, code, at):
        raise AccountError("totp-wrong", "the code does not match: try the next one", "code")
    await conn.execute(
        "UPDATE people SET totp_sealed = NULL, totp_last_step = NULL WHERE person_id = $1",
        uuid.UUID(person_id),
    )
    await record(conn, person_id, "second-factor-off")


async def has_totp(conn: Conn, person_id: str) -> bool:
    return bool(
        await conn.fetchval(
            "SELECT totp_sealed IS NOT NULL FROM people WHERE person_id = $1",
            uuid.UUID(person_id),
        )
    )


async def check_totp(conn: Conn, ring: KeyRing, person_id: str, code: str, at: float) -> bool:
    """Whether the code is right and unused; a right one is used up (its step recorded)."""
    row = await conn.fetchrow(
        "SELECT totp_sealed, totp_last_step FROM people WHERE person_id = $1",
        uuid.UUID(person_id),
    )
    if row is None or row["totp_sealed"] is None:
        return False
    step = totp_step(ring.decrypt(row["totp_sealed"]), code, at, row["totp_last_step"])
    if step is None:
        return False
    used = await conn.execute(
        "UPDATE people SET totp_last_step = $2 WHERE person_id = $1"
        " AND (totp_last_step IS NULL OR totp_last_step < $2)",
        uuid.UUID(person_id),
        step,
    )
    return used == "UPDATE 1"


async def seal_totp(conn: Conn, ring: KeyRing) -> Sealed:
    """Re-encrypts with the ring's current key every TOTP secret under an older one (called by
    `marketplace webhooks rotate-key`, which rotates the keys both kinds of secret share)."""
    done = Sealed()
    rows = await conn.fetch(
        "SELECT person_id, totp_sealed FROM people WHERE totp_sealed IS NOT NULL"
        " AND totp_sealed NOT LIKE $1",
        f"fernet:{ring.current_id}:%",
    )
    for r in rows:
        try:
            sealed = ring.encrypt(ring.decrypt(r["totp_sealed"]))
        except SecretKeyError:
            done.unreadable.append(f"person {r['person_id']}")
            continue
        status = await conn.execute(
            "UPDATE people SET totp_sealed = $3 WHERE person_id = $1 AND totp_sealed = $2",
            r["person_id"],
            r["totp_sealed"],
            sealed,
        )
        done.sealed += int(status.split()[-1])
    return done


# --- a person's data: export and erasure (decision 12) ------------------------------------------


async def export(conn: Conn, email: str) -> dict[str, object] | None:
    """Everything the exchange holds about the person (their right of access): the account,
    its security events and its sessions (when, not the tokens), what the mailer holds (their
    preferences, addresses, links sent, every message as sent, digest items), their saved
    searches of the market and the deal-room messages they wrote with their attachments
    (base64). Events on the log name the person only by `person_id`, which this export gives
    so they can be found there."""
    row = await conn.fetchrow(
        "SELECT person_id, partner_id, email, display_name, role, locale, created_at,"
        " disabled_at, password_hash IS NOT NULL AS has_password,"
        " totp_sealed IS NOT NULL AS has_second_factor"
        " FROM people WHERE lower(email) = lower($1)",
        email.strip(),
    )
    if row is None:
        return None
    pid = row["person_id"]
    out: dict[str, object] = {
        "account": {k: (str(v) if k == "person_id" else v) for k, v in dict(row).items()}
    }
    for name, sql in _PERSON_EXPORT:
        out[name] = [_plain(dict(r)) for r in await conn.fetch(sql, pid)]
    texts = await conn.fetch(
        "SELECT message_id, match_id, author_id, body AS text, stored_at FROM deal_texts"
        " WHERE person_id = $1 ORDER BY stored_at",
        str(pid),
    )
    messages = []
    for t in texts:
        files = await conn.fetch(
            "SELECT attachment_id, name, media_type, size, sha256, content FROM deal_files"
            " WHERE message_id = $1 ORDER BY position",
            t["message_id"],
        )
        messages.append(dict(t) | {"attachments": [_plain(dict(f)) for f in files]})
    out["deal_messages"] = messages
    return out


# What the export gives of each table about a person (the SQL takes the person_id); never a
# token or its hash.
_PERSON_EXPORT: tuple[tuple[str, str], ...] = (
    ("account_events", "SELECT at, what FROM account_events WHERE person_id = $1 ORDER BY at"),
    (
        "sessions",
        "SELECT created_at, seen_at, expires_at, revoked_at FROM web_sessions"
        " WHERE person_id = $1 ORDER BY created_at",
    ),
    (
        "mail_preferences",
        "SELECT kinds, digest_hour, time_zone, updated_at FROM mail_preferences"
        " WHERE person_id = $1",
    ),
    (
        "mail_addresses_verified",
        "SELECT email, how, verified_at FROM mail_verified WHERE person_id = $1"
        " ORDER BY verified_at",
    ),
    (
        "mail_verification_links",
        "SELECT email, created_at, expires_at, used_at FROM mail_verify_links"
        " WHERE person_id = $1 ORDER BY created_at",
    ),
    (
        "mail_links_sent",
        "SELECT email, sent_at FROM mail_sent_links WHERE person_id = $1 ORDER BY sent_at",
    ),
    (
        "mail_messages",
        "SELECT message_id, kind, notification_id, recipient, status, attempts, last_error,"
        " created_at, sent_at, dead_at, message FROM mail_deliveries WHERE person_id = $1"
        " ORDER BY created_at",
    ),
    (
        "mail_digest_items",
        "SELECT notification_id, kind, summary, data, issued_at, digest_id FROM"
        " mail_digest_items WHERE person_id = $1 ORDER BY issued_at",
    ),
    (
        "saved_searches",
        "SELECT name, kind, q, region, alerts_since, created_at FROM saved_searches"
        " WHERE person_id = $1"
        " ORDER BY created_at",
    ),
)


def _plain(row: dict[str, object]) -> dict[str, object]:
    """A row as JSON takes it: bytes as base64, except an e-mail message (text); JSON as JSON."""
    out: dict[str, object] = {}
    for key, value in row.items():
        if isinstance(value, bytes) and key == "message":
            out[key] = value.decode("utf-8", errors="replace")
        elif isinstance(value, bytes):
            out[key] = base64.b64encode(value).decode()
        elif key in ("kinds", "data") and isinstance(value, str):
            out[key] = json.loads(value)
        else:
            out[key] = value
    return out


async def erase(conn: Conn, email: str) -> str | None:
    """Erases the person (their right to erasure): the account row and, with it, sessions,
    links, security events and everything the mailer holds about them (their addresses,
    preferences, the messages as sent, digest items) and their saved searches (ON DELETE
    CASCADE); failed sign-ins and asks for reset links recorded under the address; the
    deal-room messages they wrote
    and those messages' attachments. What remains is the pseudonymous `person_id` in events
    already on the log (which carry only SHA-256s of the texts and files), and nothing links
    it to anyone any more. Returns that id, or None when there is no such account."""
    address = email.strip()
    async with conn.transaction():
        person_id = await conn.fetchval(
            "SELECT person_id FROM people WHERE lower(email) = lower($1) FOR UPDATE", address
        )
        await conn.execute(
            "DELETE FROM login_failures WHERE subject = ANY($1::text[])",
            [f"account:{address.lower()}", f"reset:email:{address.lower()}"],
        )
        if person_id is None:
            return None
        await erase_person_rows(conn, person_id)
    return str(person_id)


async def erase_person_rows(conn: Conn, person_id: uuid.UUID) -> None:
    """Deletes every row about the person (inside the caller's transaction)."""
    await conn.execute(
        "DELETE FROM deal_files WHERE message_id IN"
        " (SELECT message_id FROM deal_texts WHERE person_id = $1)",
        str(person_id),
    )
    await conn.execute("DELETE FROM deal_texts WHERE person_id = $1", str(person_id))
    # The mail tables go with the account (ON DELETE CASCADE); named here all the same, so that
    # the erasure does not hang on a foreign key someone may change.
    for table in _MAIL_TABLES:
        await conn.execute(f"DELETE FROM {table} WHERE person_id = $1", person_id)  # noqa: S608
    await conn.execute("DELETE FROM people WHERE person_id = $1", person_id)


_MAIL_TABLES = (
    "mail_digest_items",
    "mail_deliveries",
    "mail_sent_links",
    "mail_verify_links",
    "mail_verified",
    "mail_preferences",
)
