"""Least privilege on the real server (docs/operators/security.md): the services' role owns
nothing, so PostgreSQL itself refuses it every change of schema, privilege or the audit log;
what the services do every day still works. Each test runs in a database of its own, migrated
by `marketplace migrate`'s code as the owner role, exactly as `marketplace up` does."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import asyncpg
import pytest

from loadtests.scratch import scratch_database
from marketplace.db import APP_DEFAULT, APP_PRIVILEGES, connect
from marketplace.settings import Settings

pytestmark = pytest.mark.integration


@pytest.fixture
async def scratch(settings: Settings) -> AsyncIterator[Settings]:
    async with scratch_database(settings, "privileges") as db:
        yield db


@pytest.fixture
async def app(scratch: Settings) -> AsyncIterator[asyncpg.Connection]:
    """A connection as the services use: the application role."""
    conn = await connect(scratch)
    yield conn
    await conn.close()


def month() -> str:
    return datetime.now(UTC).strftime("audit_log_%Y_%m")


# Every statement the application role must be refused, with PostgreSQL's own reason: a missing
# privilege or ownership (SQLSTATE 42501), not the audit log's triggers.
REFUSED = [
    ("ALTER TABLE partners ADD COLUMN sneaky integer", "must be owner of table partners"),
    ("ALTER TABLE audit_log OWNER TO CURRENT_USER", "must be owner of table audit_log"),
    ("DROP TABLE partners", "must be owner of table partners"),
    ("DROP TABLE audit_log", "must be owner of table audit_log"),
    (
        "ALTER TABLE audit_log DISABLE TRIGGER audit_log_append_only",
        "must be owner of table audit_log",
    ),
    ("ALTER TABLE audit_log DISABLE TRIGGER ALL", "must be owner of table audit_log"),
    ("UPDATE audit_log SET value = NULL", "permission denied for table audit_log"),
    ("DELETE FROM audit_log", "permission denied for table audit_log"),
    ("TRUNCATE audit_log", "permission denied for table audit_log"),
    ("UPDATE audit_checkpoints SET body = ''", "permission denied for table audit_checkpoints"),
    ("DELETE FROM audit_checkpoints", "permission denied for table audit_checkpoints"),
    ("TRUNCATE audit_checkpoints", "permission denied for table audit_checkpoints"),
    ("TRUNCATE partners", "permission denied for table partners"),
    ("UPDATE invoices SET sha256 = ''", "permission denied for table invoices"),
    ("DELETE FROM invoices", "permission denied for table invoices"),
    ("UPDATE matcher_cutovers SET at = now()", "permission denied for table matcher_cutovers"),
    ("DELETE FROM matcher_cutovers", "permission denied for table matcher_cutovers"),
    ("CREATE TABLE sneaky (n integer)", "permission denied for schema public"),
    (
        "CREATE FUNCTION sneaky() RETURNS int LANGUAGE sql AS 'SELECT 1'",
        "permission denied for schema public",
    ),
    ("SELECT * FROM schema_migrations", "permission denied for table schema_migrations"),
    (
        "GRANT SELECT ON schema_migrations TO CURRENT_USER",
        "permission denied for table schema_migrations",
    ),
    (
        "ALTER FUNCTION audit_ensure_partition(timestamptz) SECURITY INVOKER",
        "must be owner of function audit_ensure_partition",
    ),
    ("SET ROLE {owner}", "permission denied to set role"),
    ("GRANT {owner} TO CURRENT_USER", "must have admin option on role"),
]


async def test_the_services_role_is_refused(app: asyncpg.Connection, scratch: Settings) -> None:
    assert await app.fetchval("SELECT current_user") == scratch.db_app_user
    await app.execute("SELECT audit_ensure_partition(now())")  # a partition to be refused too
    wrong: list[str] = []
    for template, reason in REFUSED:
        sql = template.format(owner=scratch.db_user)
        try:
            await app.execute(sql)
        except asyncpg.InsufficientPrivilegeError as exc:
            if reason not in str(exc):
                wrong.append(f"{sql}: refused, but {exc}")
        else:
            wrong.append(f"{sql}: allowed")
    assert not wrong, "\n".join(wrong)


async def test_it_cannot_grant_itself_a_right_on_the_audit_log(app: asyncpg.Connection) -> None:
    # PostgreSQL answers a GRANT by a role without the grant option with a warning, not an
    # error (it grants what it may: nothing); the proof is that nothing was granted.
    notices: list[str] = []
    app.add_log_listener(lambda _c, message: notices.append(str(message)))
    await app.execute("GRANT UPDATE, DELETE, TRUNCATE ON audit_log TO CURRENT_USER")
    await app.execute("GRANT ALL ON audit_checkpoints TO CURRENT_USER")
    assert any('no privileges were granted for "audit_log"' in n for n in notices), notices
    assert any('no privileges were granted for "audit_checkpoints"' in n for n in notices)
    for privilege in ("UPDATE", "DELETE", "TRUNCATE"):
        assert not await app.fetchval("SELECT has_table_privilege('audit_log', $1)", privilege), (
            privilege
        )
    with pytest.raises(asyncpg.InsufficientPrivilegeError, match="permission denied for table"):
        await app.execute("UPDATE audit_log SET value = NULL")


async def test_it_owns_nothing_and_holds_only_what_each_table_needs(
    app: asyncpg.Connection,
) -> None:
    owned = await app.fetchval(
        "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE n.nspname = 'public'"
        "   AND c.relowner = (SELECT oid FROM pg_roles WHERE rolname = current_user)"
    )
    assert owned == 0
    role = await app.fetchrow(
        "SELECT rolsuper, rolcreaterole, rolcreatedb, rolbypassrls FROM pg_roles"
        " WHERE rolname = current_user"
    )
    assert role is not None
    assert not any(role.values())
    grants = await app.fetch(
        "SELECT table_name, array_agg(privilege_type::text) AS held,"
        " bool_or(is_grantable = 'YES') AS grantable"
        " FROM information_schema.role_table_grants"
        " WHERE grantee = current_user AND table_schema = 'public' GROUP BY table_name"
    )
    held = {g["table_name"]: frozenset(g["held"]) for g in grants}
    assert not any(g["grantable"] for g in grants)
    assert held["audit_log"] == {"SELECT", "INSERT"}
    assert held["audit_checkpoints"] == {"SELECT", "INSERT"}
    assert "schema_migrations" not in held
    for table, privileges in held.items():
        assert privileges == APP_PRIVILEGES.get(table, APP_DEFAULT), table


async def test_the_auditor_still_appends_through_the_partition_function(
    app: asyncpg.Connection, scratch: Settings
) -> None:
    """The month's partition is created by the SECURITY DEFINER function, owned by the owner
    role, and gives the application role nothing of its own."""
    name = await app.fetchval("SELECT audit_ensure_partition(now())")
    assert name == month()
    owner = await app.fetchval(
        "SELECT pg_get_userbyid(relowner) FROM pg_class WHERE oid = $1::regclass", name
    )
    assert owner == scratch.db_user
    await app.execute(
        "INSERT INTO audit_log (topic, partition, kafka_offset, kafka_ts, recorded_at, headers,"
        " prev_hash, hash) VALUES ('t', 0, 0, 0, now(), '[]', '\\x00', '\\x01')"
    )
    assert await app.fetchval("SELECT count(*) FROM audit_log") == 1
    # A partition reached directly: nothing at all, not even what the parent allows.
    for sql in (f"UPDATE {name} SET value = NULL", f"DELETE FROM {name}", f"SELECT * FROM {name}"):
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match="permission denied"):
            await app.execute(sql)
    with pytest.raises(asyncpg.InsufficientPrivilegeError, match=f"must be owner of table {name}"):
        await app.execute(f"ALTER TABLE {name} DISABLE TRIGGER ALL")
    # PUBLIC may not call the function: only the roles `migrate` granted it to.
    assert not await app.fetchval(
        "SELECT has_function_privilege('public', 'audit_ensure_partition(timestamptz)', 'EXECUTE')"
    )


async def test_a_table_a_later_migration_creates_is_usable_at_once(
    app: asyncpg.Connection, scratch: Settings
) -> None:
    owner = await connect(scratch, dsn=scratch.migrate_dsn)
    try:
        await owner.execute("CREATE TABLE later_things (n bigserial PRIMARY KEY, s text)")
    finally:
        await owner.close()
    await app.execute("INSERT INTO later_things (s) VALUES ('a'), ('b')")
    await app.execute("UPDATE later_things SET s = 'c' WHERE s = 'a'")
    await app.execute("DELETE FROM later_things WHERE s = 'b'")
    assert await app.fetchval("SELECT s FROM later_things") == "c"
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        await app.execute("TRUNCATE later_things")
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        await app.execute("DROP TABLE later_things")
