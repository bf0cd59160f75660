"""Partners' API keys: issued once, stored as a hash, rotated and revoked by an operator.

A key reads `mk_<key id>_<secret>`. The key id finds the row; the secret is compared by its
SHA-256 in constant time. Secrets are 32 random bytes, so a plain hash is enough (no password
stretching is needed for keys nobody chose)."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from aiokafka import AIOKafkaProducer

from marketplace.db import Conn
from marketplace.events import to_message
from marketplace.kafka import publish
from marketplace.secretbox import KeyRing
from marketplace.translate import shredding
from schemas.base import Event
from schemas.common import Role
from schemas.partners import PartnerRegistered

KEY_PREFIX = "mk"


@dataclass(frozen=True, slots=True)
class Principal:
    partner_id: str
    role: str
    key_id: str
    # The person acting through the pages (pseudonymous id, #19); None for an API key.
    person_id: str | None = None


def _hash(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


def parse_key(presented: str) -> tuple[str, str] | None:
    parts = presented.split("_", 2)
    if len(parts) != 3 or parts[0] != KEY_PREFIX or not parts[1] or not parts[2]:
        return None
    return parts[1], parts[2]


async def issue_key(conn: Conn, partner_id: str, role: Role) -> str:
    key_id = secrets.token_hex(8)
    secret = secrets.token_urlsafe(32)
    await conn.execute(
        "INSERT INTO api_keys (key_id, partner_id, role, secret_hash) VALUES ($1, $2, $3, $4)",
        key_id,
        partner_id,
        role,
        _hash(secret),
    )
    return f"{KEY_PREFIX}_{key_id}_{secret}"


async def authenticate(conn: Conn, presented: str) -> Principal | None:
    parsed = parse_key(presented)
    if parsed is None:
        return None
    key_id, secret = parsed
    row = await conn.fetchrow(
        "SELECT partner_id, role, secret_hash FROM api_keys"
        " WHERE key_id = $1 AND revoked_at IS NULL",
        key_id,
    )
    if row is None or not hmac.compare_digest(bytes(row["secret_hash"]), _hash(secret)):
        return None
    return Principal(partner_id=row["partner_id"], role=row["role"], key_id=key_id)


async def revoke_keys(conn: Conn, partner_id: str, key_id: str | None = None) -> int:
    status = await conn.execute(
        "UPDATE api_keys SET revoked_at = now()"
        " WHERE partner_id = $1 AND revoked_at IS NULL AND ($2::text IS NULL OR key_id = $2)",
        partner_id,
        key_id,
    )
    return int(status.split()[-1])


async def rotate_key(conn: Conn, partner_id: str) -> str:
    """Issues a new key and revokes the partner's others, in one transaction."""
    async with conn.transaction():
        role = await conn.fetchval(
            "SELECT role FROM api_keys WHERE partner_id = $1 ORDER BY created_at DESC LIMIT 1",
            partner_id,
        )
        if role is None:
            raise LookupError(f"no partner {partner_id} has ever had a key")
        await revoke_keys(conn, partner_id)
        return await issue_key(conn, partner_id, role)


def registration(
    *,
    name: str,
    role: Role,
    country: str,
    region: str | None,
    sector: str | None,
    registered_by: str,
) -> PartnerRegistered:
    return PartnerRegistered(
        partner_id=str(uuid.uuid4()),
        name=name,
        role=role,
        country=country,
        region=region,
        sector=sector,
        registered_by=registered_by,
    )


async def register_partner(
    conn: Conn,
    producer: AIOKafkaProducer,
    *,
    name: str,
    role: Role,
    country: str,
    region: str | None,
    sector: str | None,
    registered_by: str,
    source: str,
    ring: KeyRing | None,
) -> tuple[str, str]:
    """Publishes the partner's registration and issues its first key: (partner id, API key).
    The key is returned once and stored only as a hash. The name is sealed with the new
    organisation's data key under `ring` (#21 item 8); None publishes it in clear (tests and
    the simulator's scratch stacks only)."""
    event = registration(
        name=name,
        role=role,
        country=country,
        region=region,
        sector=sector,
        registered_by=registered_by,
    )
    published: Event = event
    if ring is not None:
        published = await shredding.seal_event(conn, ring, event)
    message = to_message(
        published,
        event_id=str(uuid.uuid4()),
        source=source,
        time=datetime.now(UTC),
        subject=event.partner_id,
    )
    await publish(producer, message.topic, message.value, key=message.key, headers=message.headers)
    return event.partner_id, await issue_key(conn, event.partner_id, event.role)


@dataclass(frozen=True, slots=True)
class IssuedInvoice:
    number: int
    xml: bytes
    sha256: str
    new: bool  # False: the deal's invoice of this kind was issued before and is returned as it was


async def issue_invoice(
    conn: Conn,
    *,
    issuer_id: str,
    customer_id: str,
    match_id: str,
    kind: str,
    build: Callable[[int], bytes],
) -> IssuedInvoice:
    """Numbers and records a deal's invoice in one transaction, without gaps in the issuer's
    numbers (migration 0024): `build` gets the number and returns the UBL XML. Issuing a deal's
    invoice of a kind again returns the recorded one and takes no number.

    The issuer's row in invoice_numbers is locked first and stays locked until the invoice is
    committed: a concurrent invoice of the same issuer waits for it and takes the next number, and
    an invoice that fails (in `build` or on insert) rolls its number back. Needs PostgreSQL's
    default isolation, READ COMMITTED: under REPEATABLE READ the waiting one would fail instead."""
    async with conn.transaction():
        # A transaction nested in the caller's joins it (a savepoint): the number then commits
        # with the caller's other writes. The issuer's row is locked before anything is read, so
        # the look for an earlier invoice below cannot race with another issuing the same one.
        await conn.execute(
            "INSERT INTO invoice_numbers (issuer_id, last_number) VALUES ($1, 0)"
            " ON CONFLICT (issuer_id) DO NOTHING",
            issuer_id,
        )
        last: int = await conn.fetchval(
            "SELECT last_number FROM invoice_numbers WHERE issuer_id = $1 FOR UPDATE", issuer_id
        )
        existing = await conn.fetchrow(
            "SELECT number, xml, sha256 FROM invoices WHERE match_id = $1 AND kind = $2",
            match_id,
            kind,
        )
        if existing is not None:
            return IssuedInvoice(existing["number"], existing["xml"], existing["sha256"], False)
        number = last + 1
        xml = build(number)
        digest = hashlib.sha256(xml).hexdigest()
        await conn.execute(
            "UPDATE invoice_numbers SET last_number = $2, updated_at = now() WHERE issuer_id = $1",
            issuer_id,
            number,
        )
        inserted = await conn.fetchval(
            "INSERT INTO invoices (issuer_id, number, match_id, kind, customer_id, xml, sha256)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7)"
            " ON CONFLICT (match_id, kind) DO NOTHING RETURNING number",
            issuer_id,
            number,
            match_id,
            kind,
            customer_id,
            xml,
            digest,
        )
        if inserted is None:
            # The deal's invoice was recorded under another issuer meanwhile (the caller named a
            # different one): fail, which gives this number back, rather than leave a gap.
            raise InvoiceRace(match_id, kind)
        return IssuedInvoice(number, xml, digest, True)


class InvoiceRace(RuntimeError):
    """The deal's invoice of this kind was recorded concurrently under another issuer."""

    def __init__(self, match_id: str, kind: str) -> None:
        super().__init__(f"the {kind} invoice of match {match_id} was issued concurrently; retry")


class InvoiceSeriesInUse(RuntimeError):
    """The issuer has invoices on the exchange already: its series can no longer move."""


async def start_invoice_series(conn: Conn, issuer_id: str, first_number: int) -> None:
    """Makes the issuer's invoices on the exchange start at `first_number`: a series of their own,
    apart from the numbers the firm's own system gives (Bulgaria's VAT Act allows a firm several
    series of ten-digit numbers, never the same number twice). Allowed until its first invoice
    here; after that the series only runs on, or it would have a gap or a repeat."""
    if not 1 <= first_number < 10**10:
        raise ValueError("an invoice series starts between 1 and 9,999,999,999")
    async with conn.transaction():
        await conn.execute(
            "INSERT INTO invoice_numbers (issuer_id, last_number) VALUES ($1, 0)"
            " ON CONFLICT (issuer_id) DO NOTHING",
            issuer_id,
        )
        await conn.execute(
            "SELECT 1 FROM invoice_numbers WHERE issuer_id = $1 FOR UPDATE", issuer_id
        )
        if await conn.fetchval(
            "SELECT EXISTS (SELECT 1 FROM invoices WHERE issuer_id = $1)", issuer_id
        ):
            raise InvoiceSeriesInUse(issuer_id)
        await conn.execute(
            "UPDATE invoice_numbers SET last_number = $2, updated_at = now() WHERE issuer_id = $1",
            issuer_id,
            first_number - 1,
        )
