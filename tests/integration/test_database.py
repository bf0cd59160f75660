from __future__ import annotations

import uuid
from pathlib import Path

import asyncpg
import pytest

from marketplace.db import MigrationError, load_migrations, migrate
from marketplace.settings import Settings

pytestmark = pytest.mark.integration


async def test_project_migrations_are_recorded(
    pool: asyncpg.Pool, owner: asyncpg.Connection, settings: Settings
) -> None:
    rows = await owner.fetch("SELECT version, checksum FROM schema_migrations ORDER BY version")
    files = load_migrations(settings.migrations_dir)
    assert [(r["version"], r["checksum"]) for r in rows] == [(m.version, m.checksum) for m in files]
    tables = await pool.fetch(
        "SELECT tablename FROM pg_tables WHERE tablename IN ('consumer_offsets', 'outbox')"
    )
    assert {r["tablename"] for r in tables} == {"consumer_offsets", "outbox"}


async def test_migrate_applies_once_in_order_and_refuses_edits(
    owner: asyncpg.Connection, tmp_path: Path
) -> None:
    suffix = uuid.uuid4().hex[:10]
    ledger = f"test_migrations_{suffix}"
    table = f"test_things_{suffix}"
    (tmp_path / "0001_create.sql").write_text(f"CREATE TABLE {table} (n integer);")
    (tmp_path / "0002_fill.sql").write_text(f"INSERT INTO {table} VALUES (1), (2);")
    conn = owner
    first = await migrate(conn, load_migrations(tmp_path), table=ledger)
    second = await migrate(conn, load_migrations(tmp_path), table=ledger)
    assert [m.version for m in first] == [1, 2]
    assert second == []
    assert await conn.fetchval(f"SELECT count(*) FROM {table}") == 2

    (tmp_path / "0002_fill.sql").write_text(f"INSERT INTO {table} VALUES (3);")
    with pytest.raises(MigrationError, match="0002_fill was changed after it was applied"):
        await migrate(conn, load_migrations(tmp_path), table=ledger)

    # A failing migration leaves nothing half-applied and is not recorded.
    (tmp_path / "0002_fill.sql").write_text(f"INSERT INTO {table} VALUES (1), (2);")
    (tmp_path / "0003_broken.sql").write_text(
        f"INSERT INTO {table} VALUES (9); SELECT no_such_function();"
    )
    with pytest.raises(asyncpg.UndefinedFunctionError):
        await migrate(conn, load_migrations(tmp_path), table=ledger)
    assert await conn.fetchval(f"SELECT count(*) FROM {table}") == 2
    assert await conn.fetchval(f"SELECT max(version) FROM {ledger}") == 2
    await conn.execute(f"DROP TABLE {table}; DROP TABLE {ledger}")
