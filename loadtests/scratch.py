"""A throw-away, migrated database on the local cluster, for benchmarks and tests that must not
touch the shared one (the audit log is append-only: nothing written there can be taken back)."""

from __future__ import annotations

import dataclasses
import subprocess
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from marketplace.db import migrate_database
from marketplace.settings import ROOT, Settings


def superuser_sql(
    database: str, *statements: str, psql_args: tuple[str, ...] = ()
) -> subprocess.CompletedProcess[str]:
    """SQL as the local cluster's superuser, through the project's own script (the cluster of
    MARKETPLACE_PG_LOCAL_DIR / MARKETPLACE_PG_PORT when set: a benchmark's private server)."""
    args = [str(ROOT / "infra" / "postgres.sh"), "psql", database, *psql_args]
    for s in statements:
        args += ["-c", s]
    # The project's own script with fixed arguments; the SQL comes from this code base.
    return subprocess.run(args, capture_output=True, text=True, check=False, timeout=60)


@asynccontextmanager
async def scratch_database(settings: Settings, prefix: str = "scratch") -> AsyncIterator[Settings]:
    """Settings pointing at a new database (migrated), dropped again on exit. As on the shared
    database, the owner role migrates it and the services' role (`dsn`) owns nothing there."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    made = superuser_sql("postgres", f"CREATE DATABASE {name} OWNER {settings.db_user}")
    if made.returncode != 0:
        raise RuntimeError(f"cannot create database {name}: {made.stderr.strip()}")
    at = f"@127.0.0.1:{settings.pg_port}/{name}"
    scratch = dataclasses.replace(
        settings,
        database_url=f"postgresql://{settings.db_app_user}:{settings.db_app_password}{at}",
        migrate_database_url=f"postgresql://{settings.db_user}:{settings.db_password}{at}",
    )
    try:
        await migrate_database(scratch)
        yield scratch
    finally:
        superuser_sql("postgres", f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
