"""Webhook endpoints and dead letters in PostgreSQL: what the API and the operator's CLI share.

Endpoints are credentials-like (a signing secret), so, like API keys, they are written straight
to PostgreSQL rather than projected from an event: a new endpoint or secret counts at once.
Secrets are stored encrypted with the operator's key ring (marketplace/secretbox.py), shown to the
partner once, and never logged."""

from __future__ import annotations

import asyncio
import ipaddress
import secrets
import socket
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from marketplace.core import webhooks as core
from marketplace.db import Conn
from marketplace.logs import get_logger
from marketplace.secretbox import (
    PREFIX,
    KeyRing,
    Sealed,
    SecretKeyError,
    load_ring,
    new_key,
    write_ring,
)

log = get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Endpoint:
    endpoint_id: str
    partner_id: str
    url: str
    kinds: tuple[str, ...]
    description: str
    created_at: datetime
    rotated_at: datetime | None
    previous_until: datetime | None

    def public(self) -> dict[str, Any]:
        return {
            "endpoint_id": self.endpoint_id,
            "url": self.url,
            "kinds": list(self.kinds),
            "description": self.description,
            "created_at": self.created_at.isoformat(),
            "rotated_at": self.rotated_at.isoformat() if self.rotated_at else None,
            "previous_secret_valid_until": (
                self.previous_until.isoformat() if self.previous_until else None
            ),
        }


class TargetRefused(ValueError):
    """The URL cannot receive webhooks; the message says why."""


def new_secret() -> str:
    return core.secret_from_bytes(secrets.token_bytes(32))


async def resolve(host: str, port: int) -> list[core.Address]:
    literal = core.literal_address(host)
    if literal is not None:
        return [literal]
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError:
        return []
    return [ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]) for info in infos]


async def check_target(url: str, allowed: Sequence[core.Network]) -> None:
    """Raises TargetRefused unless `url` is http(s) and every address its host resolves to is
    public or allow-listed by the operator."""
    target, problem = core.target_problem(url)
    if target is None:
        raise TargetRefused(problem)
    problem = core.addresses_problem(await resolve(target.host, target.port), allowed)
    if problem is not None:
        raise TargetRefused(f"{target.host}: {problem}")


_COLUMNS = (
    "endpoint_id, partner_id, url, kinds, description, created_at, rotated_at, previous_until"
)


def _endpoint(row: Any) -> Endpoint:
    return Endpoint(
        endpoint_id=row["endpoint_id"],
        partner_id=row["partner_id"],
        url=row["url"],
        kinds=tuple(row["kinds"]),
        description=row["description"],
        created_at=row["created_at"],
        rotated_at=row["rotated_at"],
        previous_until=row["previous_until"],
    )


async def register(
    conn: Conn,
    ring: KeyRing,
    partner_id: str,
    url: str,
    kinds: Sequence[str],
    description: str,
) -> tuple[Endpoint, str]:
    """The new endpoint and its signing secret (shown to the partner this once; stored
    encrypted with the ring's current key)."""
    secret = new_secret()
    row = await conn.fetchrow(
        "INSERT INTO webhook_endpoints"  # noqa: S608 - constant columns
        " (endpoint_id, partner_id, url, kinds, description, secret)"
        f" VALUES ($1, $2, $3, $4, $5, $6) RETURNING {_COLUMNS}",
        str(uuid.uuid4()),
        partner_id,
        url,
        sorted(set(kinds)),
        description,
        ring.encrypt(secret),
    )
    return _endpoint(row), secret


async def endpoints(conn: Conn, partner_id: str) -> list[Endpoint]:
    rows = await conn.fetch(
        f"SELECT {_COLUMNS} FROM webhook_endpoints"  # noqa: S608 - constant columns
        " WHERE partner_id = $1 AND deleted_at IS NULL ORDER BY created_at, endpoint_id",
        partner_id,
    )
    return [_endpoint(r) for r in rows]


async def endpoint(conn: Conn, partner_id: str, endpoint_id: str) -> Endpoint | None:
    row = await conn.fetchrow(
        f"SELECT {_COLUMNS} FROM webhook_endpoints"  # noqa: S608 - constant columns
        " WHERE partner_id = $1 AND endpoint_id = $2 AND deleted_at IS NULL",
        partner_id,
        endpoint_id,
    )
    return _endpoint(row) if row is not None else None


async def rotate(
    conn: Conn, ring: KeyRing, partner_id: str, endpoint_id: str, overlap: timedelta
) -> tuple[Endpoint, str] | None:
    """A new secret; the current one keeps signing beside it for `overlap`."""
    secret = new_secret()
    row = await conn.fetchrow(
        "UPDATE webhook_endpoints SET previous_secret = secret, secret = $3,"  # noqa: S608
        " previous_until = now() + $4::interval, rotated_at = now()"
        " WHERE partner_id = $1 AND endpoint_id = $2 AND deleted_at IS NULL"
        f" RETURNING {_COLUMNS}",
        partner_id,
        endpoint_id,
        ring.encrypt(secret),
        overlap,
    )
    return (_endpoint(row), secret) if row is not None else None


async def seal_secrets(conn: Conn, ring: KeyRing, batch: int = 500) -> Sealed:
    """Encrypts with the ring's current key every stored secret that is not yet: clear text
    from before encryption came in, or under an older key. Each row is changed only if it still
    holds what was read (a partner rotating its secret meanwhile wins)."""
    done = Sealed()
    current = f"{PREFIX}{ring.current_id}:%"
    while True:
        rows = await conn.fetch(
            "SELECT endpoint_id, secret, previous_secret FROM webhook_endpoints"
            " WHERE ((secret <> '' AND secret NOT LIKE $1)"
            "    OR (COALESCE(previous_secret, '') <> '' AND previous_secret NOT LIKE $1))"
            "   AND NOT endpoint_id = ANY($2::text[])"
            " ORDER BY endpoint_id LIMIT $3",
            current,
            done.unreadable,
            batch,
        )
        if not rows:
            return done
        ids, old_s, old_p, new_s, new_p = [], [], [], [], []
        for r in rows:
            try:
                sealed = [
                    v if not v or ring.is_current(v) else ring.encrypt(ring.decrypt(v))
                    for v in (r["secret"], r["previous_secret"])
                ]
            except SecretKeyError as exc:
                log.error("webhook_secret_unreadable", endpoint_id=r["endpoint_id"], error=str(exc))
                done.unreadable.append(r["endpoint_id"])
                continue
            ids.append(r["endpoint_id"])
            old_s.append(r["secret"])
            old_p.append(r["previous_secret"])
            new_s.append(sealed[0])
            new_p.append(sealed[1])
        status = await conn.execute(
            "UPDATE webhook_endpoints e SET secret = u.new_s, previous_secret = u.new_p"
            " FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[])"
            "   AS u(endpoint_id, old_s, old_p, new_s, new_p)"
            " WHERE e.endpoint_id = u.endpoint_id AND e.secret = u.old_s"
            "   AND e.previous_secret IS NOT DISTINCT FROM u.old_p",
            ids,
            old_s,
            old_p,
            new_s,
            new_p,
        )
        done.sealed += int(status.split()[-1])


async def count_unsealed(conn: Conn) -> int:
    """How many endpoints still hold a secret in clear."""
    return int(
        await conn.fetchval(
            "SELECT count(*) FROM webhook_endpoints"
            " WHERE (secret <> '' AND secret NOT LIKE $1)"
            "    OR (COALESCE(previous_secret, '') <> '' AND previous_secret NOT LIKE $1)",
            f"{PREFIX}%",
        )
    )


@dataclass(frozen=True, slots=True)
class Rotation:
    old_ids: tuple[str, ...]
    new_id: str
    sealed: int
    unreadable: tuple[str, ...]


Sealer = Callable[[Conn, KeyRing], Awaitable[Sealed]]


async def rotate_key(
    conn: Conn,
    path: Path,
    grace_s: float = 5.0,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    others: tuple[Sealer, ...] = (),
) -> Rotation:
    """Replaces the key that encrypts webhook secrets and re-encrypts every stored secret.

    1. The key file gets a new key first, the old ones after it: from now on every process
       (they re-read the file when it changes) encrypts with the new key and still reads all.
    2. Every stored secret is re-encrypted with the new key; after `grace_s` (for a process
       that encrypted with the old key just before the file changed) once more.
    3. The file keeps the new key only; a last pass, with the old keys still in this process's
       memory, seals whatever a process wrote with an old key meanwhile.
    If it stops half-way, the file still holds every key: nothing is unreadable; run it again.
    `others` re-encrypt other secrets sealed with the same keys (people's TOTP secrets)."""

    async def seal(conn: Conn, ring: KeyRing) -> Sealed:
        done = await seal_secrets(conn, ring)
        for other in others:
            more = await other(conn, ring)
            done.sealed += more.sealed
            done.unreadable.extend(more.unreadable)
        return done

    old = load_ring(path)
    both = KeyRing((new_key(), *old.keys))
    write_ring(path, both)
    first = await seal(conn, both)
    await sleep(grace_s)
    second = await seal(conn, both)
    if second.unreadable:
        # Keep every key: something no key reads is not fixed by dropping keys.
        return Rotation(
            old.ids, both.current_id, first.sealed + second.sealed, tuple(second.unreadable)
        )
    write_ring(path, KeyRing(both.keys[:1]))
    last = await seal(conn, both)
    return Rotation(
        old.ids,
        both.current_id,
        first.sealed + second.sealed + last.sealed,
        tuple(last.unreadable),
    )


async def delete(conn: Conn, partner_id: str, endpoint_id: str) -> bool:
    """Soft delete (deliveries refer to it); what was still pending for it is cancelled."""
    async with conn.transaction():
        status = await conn.execute(
            "UPDATE webhook_endpoints SET deleted_at = now(), secret = '', previous_secret = NULL"
            " WHERE partner_id = $1 AND endpoint_id = $2 AND deleted_at IS NULL",
            partner_id,
            endpoint_id,
        )
        if status.split()[-1] == "0":
            return False
        await conn.execute(
            "UPDATE webhook_deliveries SET status = 'cancelled', lease_until = NULL"
            " WHERE endpoint_id = $1 AND status IN ('pending', 'sending')",
            endpoint_id,
        )
    return True


def _delivery(row: Any) -> dict[str, Any]:
    return {
        "delivery_id": row["delivery_id"],
        "notification_id": row["notification_id"],
        "endpoint_id": row["endpoint_id"],
        "partner_id": row["partner_id"],
        "kind": row["kind"],
        "status": row["status"],
        "attempts": row["attempts"],
        "last_status": row["last_status"],
        "last_error": row["last_error"],
        "created_at": row["created_at"].isoformat(),
        "dead_at": row["dead_at"].isoformat() if row["dead_at"] else None,
    }


async def dead_letters(
    conn: Conn, partner_id: str | None = None, limit: int = 200
) -> list[dict[str, Any]]:
    """Deliveries that failed their last attempt, newest first (one partner's, or all)."""
    rows = await conn.fetch(
        "SELECT delivery_id, notification_id, endpoint_id, partner_id, kind, status, attempts,"
        " last_status, last_error, created_at, dead_at FROM webhook_deliveries"
        " WHERE status = 'dead' AND ($1::text IS NULL OR partner_id = $1)"
        " ORDER BY dead_at DESC, delivery_id LIMIT $2",
        partner_id,
        limit,
    )
    return [_delivery(r) for r in rows]


async def redeliver(conn: Conn, delivery_id: str, partner_id: str | None = None) -> bool:
    """A dead delivery starts over (attempts from zero, due now), to the same endpoint unless
    the partner deleted it. Same webhook-id, so a receiver that already has it can tell."""
    status = await conn.execute(
        "UPDATE webhook_deliveries d SET status = 'pending', attempts = 0,"
        " next_attempt_at = now(), dead_at = NULL, lease_until = NULL"
        " FROM webhook_endpoints e WHERE d.delivery_id = $1 AND d.status = 'dead'"
        " AND e.endpoint_id = d.endpoint_id AND e.deleted_at IS NULL"
        " AND ($2::text IS NULL OR d.partner_id = $2)",
        delivery_id,
        partner_id,
    )
    redelivered = status.split()[-1] != "0"
    if redelivered:
        await conn.execute("SELECT pg_notify('webhook_deliveries', '')")
    return redelivered
