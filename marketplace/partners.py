"""Partners' API keys: issued once, stored as a hash, rotated and revoked by an operator.

A key reads `mk_<key id>_<secret>`. The key id finds the row; the secret is compared by its
SHA-256 in constant time. Secrets are 32 random bytes, so a plain hash is enough (no password
stretching is needed for keys nobody chose)."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from aiokafka import AIOKafkaProducer

from marketplace.db import Conn
from marketplace.events import to_message
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
) -> tuple[str, str]:
    """Publishes the partner's registration and issues its first key: (partner id, API key).
    The key is returned once and stored only as a hash."""
    event = registration(
        name=name,
        role=role,
        country=country,
        region=region,
        sector=sector,
        registered_by=registered_by,
    )
    message = to_message(
        event,
        event_id=str(uuid.uuid4()),
        source=source,
        time=datetime.now(UTC),
        subject=event.partner_id,
    )
    await producer.send_and_wait(
        message.topic, message.value, key=message.key, headers=list(message.headers)
    )
    return event.partner_id, await issue_key(conn, event.partner_id, event.role)
