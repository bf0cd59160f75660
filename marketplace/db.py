"""The PostgreSQL adapter: connection pool and the migration runner.

Migrations are plain SQL files in infra/migrations named NNNN_description.sql, applied in order,
each in its own transaction, and recorded in schema_migrations with a checksum. An applied
migration is never edited: a changed checksum stops the runner with an error.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TypeAlias

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from marketplace.logs import get_logger
from marketplace.settings import Settings, redact_url

log = get_logger(__name__)

MIGRATION_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
# Any constant works; it keeps two `migrate` runs from interleaving.
MIGRATION_LOCK = 7_305_117_001
# The channel the projector signals (pg_notify, at commit, payload: the partner id) when it has
# stored a notification, and on which the API's live push listens.
NOTIFY_CHANNEL = "partner_notifications"


# A connection handed out by a pool or opened directly: both run the same queries.
Conn: TypeAlias = "asyncpg.Connection[asyncpg.Record] | PoolConnectionProxy[asyncpg.Record]"


class MigrationError(RuntimeError):
    pass


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def load_migrations(directory: Path) -> list[Migration]:
    if not directory.is_dir():
        raise MigrationError(f"migrations folder {directory} does not exist")
    found: list[Migration] = []
    for path in sorted(directory.iterdir()):
        if path.suffix != ".sql":
            continue
        m = MIGRATION_NAME.match(path.name)
        if not m:
            raise MigrationError(f"{path.name}: migration files are named NNNN_lower_snake.sql")
        found.append(Migration(int(m.group(1)), m.group(2), path.read_text(encoding="utf-8")))
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise MigrationError(f"two migrations share a version number in {directory}")
    return found


async def migrate(
    conn: Conn, migrations: list[Migration], *, table: str = "schema_migrations"
) -> list[Migration]:
    """Applies the migrations not yet recorded; returns those it applied."""
    if not re.fullmatch(r"[a-z_][a-z0-9_]*", table):
        raise MigrationError(f"bad migrations table name {table!r}")
    applied_now: list[Migration] = []
    await conn.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK)
    try:
        # The table name is checked above; identifiers cannot be bound as parameters.
        await conn.execute(
            f"CREATE TABLE IF NOT EXISTS {table} ("
            " version integer PRIMARY KEY, name text NOT NULL, checksum text NOT NULL,"
            " applied_at timestamptz NOT NULL DEFAULT now())"
        )
        rows = await conn.fetch(f"SELECT version, name, checksum FROM {table}")  # noqa: S608
        done = {r["version"]: r for r in rows}
        for m in migrations:
            if m.version in done:
                if done[m.version]["checksum"] != m.checksum:
                    raise MigrationError(
                        f"migration {m.version:04d}_{m.name} was changed after it was applied; "
                        "add a new migration instead"
                    )
                continue
            async with conn.transaction():
                await conn.execute(m.sql)
                await conn.execute(
                    f"INSERT INTO {table} (version, name, checksum) VALUES ($1, $2, $3)",  # noqa: S608
                    m.version,
                    m.name,
                    m.checksum,
                )
            log.info("migration_applied", version=m.version, name=m.name)
            applied_now.append(m)
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK)
    return applied_now


async def connect(settings: Settings, timeout_s: float = 30.0) -> asyncpg.Connection:
    """One connection, retried while the server is still starting."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        try:
            conn: asyncpg.Connection = await asyncpg.connect(settings.dsn, timeout=5)
            return conn
        except (OSError, asyncpg.CannotConnectNowError, asyncpg.TooManyConnectionsError) as exc:
            if loop.time() > deadline:
                raise TimeoutError(
                    f"PostgreSQL at {redact_url(settings.dsn)} not reachable: {exc}"
                ) from exc
            await asyncio.sleep(0.5)


# Errors that mean "PostgreSQL cannot be reached right now", as opposed to a statement that
# fails: consumers pause and retry, the API answers 503 with Retry-After.
UNREACHABLE = (
    OSError,
    TimeoutError,
    asyncpg.CannotConnectNowError,
    asyncpg.ConnectionDoesNotExistError,
    asyncpg.InterfaceError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
    asyncpg.TooManyConnectionsError,
    # A connection lost in the middle of an operation leaves asyncpg's protocol in a state it
    # reports this way ("cannot switch to state ..."); seen when PostgreSQL stopped under load.
    asyncpg.InternalClientError,
)


async def create_pool(settings: Settings, *, min_size: int = 1) -> asyncpg.Pool:
    pool = await asyncpg.create_pool(
        settings.dsn, min_size=min_size, max_size=settings.db_pool_max, command_timeout=60
    )
    assert pool is not None
    return pool


async def migrate_database(settings: Settings) -> list[Migration]:
    conn = await connect(settings)
    try:
        return await migrate(conn, load_migrations(settings.migrations_dir))
    finally:
        await conn.close()
