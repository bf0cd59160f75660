"""The top statements from `pg_stat_statements`, for the benchmarks' reports (issue #18, target 5).

The extension needs `shared_preload_libraries` (infra/postgres.sh sets it; a server that was
running before loads it at its next restart). A benchmark calls `reset()` before its runs and
`top()` after them: with the library loaded, `top` gives the statements that took the most
execution time over the run, cluster-wide and summed over databases (the benchmarks' scratch
databases are dropped by then, so the extension lives in the cluster's `postgres` database,
from which the view shows every database's statements; utility statements such as the
migrations' DDL are not tracked: `pg_stat_statements.track_utility = off`); without the
library, `{"loaded": False, "note": "pg_stat_statements not loaded", ...}`, so the report says
why the list is missing. On the shared server the list holds
other runs' statements too: give a benchmark a private server (loadtests/postgres.sh)."""

from __future__ import annotations

import json
from typing import Any

from loadtests.scratch import superuser_sql

NOT_LOADED = "pg_stat_statements not loaded"
DATABASE = "postgres"


def _value(statement: str) -> str:
    """One value from one statement, as the local cluster's superuser."""
    done = superuser_sql(DATABASE, statement, psql_args=("-At",))
    if done.returncode != 0:
        raise RuntimeError(f"pg_stat_statements: {done.stderr.strip()}")
    return done.stdout.strip()


def loaded() -> bool:
    preload = _value("SELECT current_setting('shared_preload_libraries')")
    return "pg_stat_statements" in [p.strip() for p in preload.split(",")]


def _absent() -> dict[str, Any]:
    return {
        "loaded": False,
        "note": NOT_LOADED,
        "fix": "infra/postgres.sh adds it to shared_preload_libraries; restart the server",
        "statements": [],
    }


def reset() -> dict[str, Any]:
    """Makes the extension if needed and zeroes its counters; says whether it is loaded."""
    if not loaded():
        return _absent()
    _value("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
    _value("SELECT pg_stat_statements_reset() IS NOT NULL")
    return {"loaded": True, "note": "counters reset"}


def top(limit: int = 15) -> dict[str, Any]:
    """The `limit` statements with the most execution time since `reset()`, all databases."""
    if not 0 < limit <= 100:
        raise ValueError(f"limit: {limit} is not within 1..100")
    if not loaded():
        return _absent()
    _value("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
    # One line per statement text, summed over the databases it ran in (each scratch database
    # has its own entries).
    rows = _value(
        "SELECT coalesce(json_agg(t), '[]') FROM (SELECT"
        " count(DISTINCT s.dbid) AS databases,"
        " string_agg(DISTINCT coalesce(r.rolname, '?'), ',') AS role,"
        " sum(s.calls) AS calls, sum(s.rows) AS rows,"
        " round(sum(s.total_exec_time)::numeric, 1) AS total_ms,"
        " round((sum(s.total_exec_time) / greatest(sum(s.calls), 1))::numeric, 3) AS mean_ms,"
        " sum(s.shared_blks_hit) AS shared_blks_hit, sum(s.shared_blks_read) AS shared_blks_read,"
        " sum(s.wal_bytes) AS wal_bytes,"
        " left(regexp_replace(s.query, '\\s+', ' ', 'g'), 400) AS query"
        " FROM pg_stat_statements s LEFT JOIN pg_roles r ON r.oid = s.userid"
        " GROUP BY left(regexp_replace(s.query, '\\s+', ' ', 'g'), 400)"
        " ORDER BY sum(s.total_exec_time) DESC LIMIT 100) t"
    )
    statements: list[dict[str, Any]] = json.loads(rows or "[]")[:limit]
    return {"loaded": True, "note": "since the benchmark's reset", "statements": statements}
