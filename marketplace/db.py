"""The PostgreSQL adapter: connection pool and the migration runner.

Migrations are plain SQL files in infra/migrations named NNNN_description.sql, applied in order,
each in its own transaction, and recorded in schema_migrations with a checksum. An applied
migration is never edited: a changed checksum stops the runner with an error.

Two roles (docs/operators/security.md): migrations run as the role that owns the tables
(``Settings.migrate_dsn``); the services connect as an application role (``Settings.dsn``) that
owns nothing. After the migrations, `grant_app_role` gives the application role the rights in
APP_PRIVILEGES and nothing else, and sets default privileges so that a table a later migration
creates is readable and writable by it at once.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TypeAlias
from urllib.parse import parse_qs, urlsplit

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


# What the application role may do on each table: every table gets APP_DEFAULT (also through the
# default privileges, for tables later migrations create) unless it is listed here with less.
# A partition of a partitioned table gets nothing: its rows are reached through the parent, whose
# privileges are the ones checked. Never TRUNCATE, REFERENCES or TRIGGER, never a grant option.
APP_DEFAULT = frozenset({"SELECT", "INSERT", "UPDATE", "DELETE"})
APP_PRIVILEGES: dict[str, frozenset[str]] = {
    # Append-only (decision 8): the auditor appends and the verifier reads, nothing more.
    "audit_log": frozenset({"SELECT", "INSERT"}),
    "audit_checkpoints": frozenset({"SELECT", "INSERT"}),
    # An issued invoice is a legal record (numbered without gaps): written once, never changed.
    "invoices": frozenset({"SELECT", "INSERT"}),
    # Where a matcher group's books moved to another key (`marketplace rebuild rekey`): recorded
    # once, in the move's transaction; replay depends on it never changing.
    "matcher_cutovers": frozenset({"SELECT", "INSERT"}),
    # The migration ledger is the owner's business (`marketplace status` reads it as the owner).
    "schema_migrations": frozenset(),
}
# Functions the application role may call although they are not PUBLIC's: they run with their
# owner's rights (SECURITY DEFINER), for the one thing the application role cannot do itself.
APP_FUNCTIONS = ("audit_ensure_partition(timestamptz)",)


def dsn_user(dsn: str) -> str | None:
    """The role a postgresql:// URL logs in as (None: libpq's default, not known here)."""
    parts = urlsplit(dsn)
    if parts.username:
        return parts.username
    users = parse_qs(parts.query).get("user")
    return users[0] if users else None


async def connect(
    settings: Settings, timeout_s: float = 30.0, *, dsn: str | None = None
) -> asyncpg.Connection:
    """One connection (as the application role unless `dsn` says otherwise), retried while the
    server is still starting."""
    target = dsn or settings.dsn
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        try:
            conn: asyncpg.Connection = await asyncpg.connect(target, timeout=5)
            return conn
        except (OSError, asyncpg.CannotConnectNowError, asyncpg.TooManyConnectionsError) as exc:
            if loop.time() > deadline:
                raise TimeoutError(
                    f"PostgreSQL at {redact_url(target)} not reachable: {exc}"
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


async def _keep_session(_conn: asyncpg.Connection) -> None:
    """A pool reset without a round trip (asyncpg still rolls back an open transaction)."""


async def create_pool(
    settings: Settings,
    *,
    min_size: int = 1,
    reset_sessions: bool = True,
    synchronous_commit: bool = True,
    custom_plans: bool = False,
) -> asyncpg.Pool:
    """The application's pool. `reset_sessions=False` skips asyncpg's reset query (RESET ALL,
    UNLISTEN *, ...) on every release: for code that never changes session state, such as the
    consumers' runtime, whose batches run as transactions only; it saves a round trip a batch.
    `synchronous_commit=False`: the pool's commits return before their WAL is on disk (only for
    work that a lost commit merely repeats, such as webhook delivery; see the setting).
    `custom_plans=True`: every execution of a prepared statement is planned for its parameters
    (`plan_cache_mode = force_custom_plan`), never from a generic plan cached when the tables
    looked otherwise: the consumers' runtime, whose outbox churns (a generic plan made while
    the outbox was empty scanned it whole, dead rows and all, to delete a batch's published
    rows by id; issue #18)."""
    server_settings: dict[str, str] = {}
    if not synchronous_commit:
        server_settings["synchronous_commit"] = "off"
    if custom_plans:
        server_settings["plan_cache_mode"] = "force_custom_plan"
    pool = await asyncpg.create_pool(
        settings.dsn,
        min_size=min_size,
        max_size=settings.db_pool_max,
        command_timeout=60,
        reset=None if reset_sessions else _keep_session,
        server_settings=server_settings,
    )
    assert pool is not None
    return pool


async def grant_app_role(conn: Conn, app_role: str) -> int:
    """Gives `app_role` exactly APP_PRIVILEGES on the tables the connected (owner) role owns in
    schema public, USAGE on the schema and its sequences, EXECUTE on APP_FUNCTIONS, and default
    privileges for what this role creates later. Idempotent; changes only what differs. Returns
    how many tables' grants it changed."""
    owner = await conn.fetchval("SELECT current_user")
    if app_role == owner:
        return 0  # one role for both (a single MARKETPLACE_DATABASE_URL): nothing to split
    if not await conn.fetchval("SELECT EXISTS (SELECT FROM pg_roles WHERE rolname = $1)", app_role):
        raise MigrationError(
            f"the application role {app_role!r} does not exist: create it (LOGIN, nothing else; "
            "see docs/operators/security.md) or point MARKETPLACE_DATABASE_URL at another role"
        )
    if await conn.fetchval("SELECT pg_has_role($1, $2, 'USAGE')", app_role, owner):
        raise MigrationError(
            f"the application role {app_role!r} is a member of the owner role {owner!r}: it "
            "would own the tables too; revoke that membership"
        )
    role = await conn.fetchval("SELECT quote_ident($1)", app_role)
    changed = 0
    async with conn.transaction():
        if not await conn.fetchval("SELECT has_schema_privilege($1, 'public', 'USAGE')", app_role):
            await conn.execute(f"GRANT USAGE ON SCHEMA public TO {role}")
        if await conn.fetchval("SELECT has_schema_privilege($1, 'public', 'CREATE')", app_role):
            # PostgreSQL before 15 let PUBLIC create in schema public.
            await conn.execute(f"REVOKE CREATE ON SCHEMA public FROM PUBLIC, {role}")
            if await conn.fetchval("SELECT has_schema_privilege($1, 'public', 'CREATE')", app_role):
                raise MigrationError(
                    f"the application role {app_role!r} may create tables in schema public and "
                    f"{owner!r} cannot revoke that: REVOKE CREATE ON SCHEMA public FROM PUBLIC"
                )
        default = ", ".join(sorted(APP_DEFAULT))
        await conn.execute(
            f"ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT {default} ON TABLES TO {role}"
        )
        await conn.execute(
            f"ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES TO {role}"
        )
        rows = await conn.fetch(
            "SELECT c.relname, c.relispartition,"
            " COALESCE(array_agg(a.privilege_type) FILTER (WHERE a.privilege_type IS NOT NULL),"
            "   '{}') AS held"
            " FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
            " LEFT JOIN LATERAL aclexplode(c.relacl) a"
            "   ON a.grantee = (SELECT oid FROM pg_roles WHERE rolname = $1)"
            " WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p')"
            "   AND c.relowner = (SELECT oid FROM pg_roles WHERE rolname = current_user)"
            " GROUP BY c.relname, c.relispartition",
            app_role,
        )
        for r in rows:
            want = (
                frozenset()
                if r["relispartition"]
                else APP_PRIVILEGES.get(r["relname"], APP_DEFAULT)
            )
            if frozenset(r["held"]) == want:
                continue
            table = await conn.fetchval("SELECT quote_ident($1)", r["relname"])
            await conn.execute(f"REVOKE ALL ON public.{table} FROM {role}")
            if want:
                await conn.execute(f"GRANT {', '.join(sorted(want))} ON public.{table} TO {role}")
            changed += 1
        await conn.execute(f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {role}")
        for function in APP_FUNCTIONS:
            if await conn.fetchval("SELECT to_regprocedure($1) IS NOT NULL", function):
                await conn.execute(f"GRANT EXECUTE ON FUNCTION public.{function} TO {role}")
    if changed:
        log.info("app_role_granted", role=app_role, tables=changed)
    return changed


async def migrate_database(settings: Settings) -> list[Migration]:
    """Applies pending migrations as the owner role, then grants the application role its rights
    (when the two differ)."""
    conn = await connect(settings, dsn=settings.migrate_dsn)
    try:
        applied = await migrate(conn, load_migrations(settings.migrations_dir))
        app_role = dsn_user(settings.dsn)
        if app_role is not None:
            await grant_app_role(conn, app_role)
        return applied
    finally:
        await conn.close()
