"""The API's cost per listing post, old code against new, interleaved (issue #18, target 3).

    python -m loadtests.bench_api --base-tree /tmp/api-base [--head-tree /tmp/api-head]
                                  [--rounds 3] [--posts 600] [--rate 80] [--smes 60]
                                  [--profile-head FILE]

Starts two API processes on one scratch database (`loadtests/scratch.py`) of the PostgreSQL and
broker the environment points at: "base", run from `--base-tree` (a `git worktree` of the commit
to compare with, whose own modules it imports), and "head", run from `--head-tree` (default this
tree, with whatever is uncommitted in it: the report says so). Then, round by
round, in turn (the order alternating, so that neither always goes first on a warmer machine),
each gets the same open-loop stream of the market simulator's offers and requests
(`producers/simulator/market.py`) at `--rate` posts per second, once without and once with an
`Idempotency-Key` (a fresh one per post). Per run it records, per post: the API process's CPU
(from /proc), the CPU of the PostgreSQL backends serving that database (the pool's connections,
by their pids in `pg_stat_activity`), the whole server's CPU (`loadtests/cpu.py`: on a server
shared with another run that includes theirs), the statements (`pg_stat_statements` calls in the
scratch database, read before and after, never reset: another run may be reading them too) and
the transactions (`pg_stat_database`), the latency of the 202 and the load average. The report
goes to loadtests/reports/api-post-<time>.json. With `--profile-head FILE` only this tree's API
runs, under cProfile, and its statistics are written to FILE when it stops (no report)."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import socket
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from loadtests import cpu
from loadtests.hdr import Histogram
from loadtests.loadgen import LoadGenerator
from loadtests.scratch import scratch_database, superuser_sql
from marketplace.settings import ROOT, Settings

REPORTS = ROOT / "loadtests" / "reports"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _superuser_value(database: str, statement: str) -> str:
    done = superuser_sql(database, statement, psql_args=("-At",))
    if done.returncode != 0:
        raise RuntimeError(done.stderr.strip())
    return done.stdout.strip()


def _rows(statement: str) -> list[dict[str, Any]]:
    """The rows of a statement (every database's: the caller picks its own), as dicts."""
    wrapped = f"SELECT coalesce(json_agg(t), '[]') FROM ({statement}) t"  # noqa: S608 - ours
    raw = _superuser_value("postgres", wrapped)
    rows: list[dict[str, Any]] = orjson.loads(raw or "[]")
    return rows


def statements(database: str) -> dict[str, int]:
    """pg_stat_statements calls per statement text in `database` (empty when not loaded)."""
    if "pg_stat_statements" not in _superuser_value(
        "postgres", "SELECT current_setting('shared_preload_libraries')"
    ):
        return {}
    _superuser_value("postgres", "CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
    rows = _rows(
        "SELECT d.datname, left(regexp_replace(s.query, '\\s+', ' ', 'g'), 160) AS q,"
        " sum(s.calls) AS c FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid"
        " GROUP BY 1, 2"
    )
    return {r["q"]: int(r["c"]) for r in rows if r["datname"] == database}


def transactions(database: str) -> int:
    rows = _rows("SELECT datname, xact_commit + xact_rollback AS n FROM pg_stat_database")
    return sum(int(r["n"]) for r in rows if r["datname"] == database)


def backends(database: str) -> list[int]:
    """The pids of the client backends connected to `database` (the APIs' pools)."""
    rows = _rows(
        "SELECT datname, pid FROM pg_stat_activity WHERE backend_type = 'client backend'"
        " AND pid <> pg_backend_pid()"
    )
    return [int(r["pid"]) for r in rows if r["datname"] == database]


@dataclasses.dataclass
class Api:
    name: str
    tree: Path
    url: str
    proc: asyncio.subprocess.Process


async def start_api(name: str, tree: Path, env: dict[str, str], profile: Path | None = None) -> Api:
    port = free_port()
    profiler = ("-m", "cProfile", "-o", str(profile)) if profile is not None else ()
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        *profiler,
        "-m",
        "loadtests.stack",
        f"bench-api.{name}.{uuid.uuid4().hex[:6]}",
        "--services",
        "api",
        cwd=tree,
        # The tree's own modules first (`-m` puts the working directory first on the path).
        env=env
        | {
            "MARKETPLACE_HTTP_PORT": str(port),
            "MARKETPLACE_METRICS_PORT": str(free_port()),
            "PYTHONPATH": str(tree),
        },
        stdout=asyncio.subprocess.DEVNULL,
    )
    api = Api(name, tree, f"http://127.0.0.1:{port}", proc)
    async with aiohttp.ClientSession() as http:
        deadline = time.monotonic() + 90
        while True:
            if proc.returncode is not None:
                raise RuntimeError(f"the {name} API exited ({proc.returncode})")
            try:
                async with http.get(api.url + "/readyz") as r:
                    if r.status == 200:
                        return api
            except aiohttp.ClientError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"the {name} API did not get ready")
            await asyncio.sleep(0.3)


def _cpu_of(pids: list[int]) -> dict[int, float]:
    return {pid: cpu.process_seconds(pid) for pid in pids}


async def one_run(
    api: Api,
    gen: LoadGenerator,
    bodies: list[tuple[str, int, dict[str, Any]]],
    rate: float,
    keyed: bool,
    settings: Settings,
    database: str,
) -> dict[str, Any]:
    latency = Histogram(lowest=1e-5)
    statuses: dict[str, int] = {}
    # The pool's connections: warmed by a few posts before the measured ones.
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=200)) as http:

        async def post(kind: str, firm: int, body: dict[str, Any], measure: bool) -> None:
            headers = {"Authorization": f"Bearer {gen.keys[firm]}"}
            if keyed:
                headers["Idempotency-Key"] = str(uuid.uuid4())
            t = time.perf_counter()
            async with http.post(f"{api.url}/v1/{kind}s", json=body, headers=headers) as r:
                await r.read()
                status = r.status
            if measure:
                latency.record(time.perf_counter() - t)
                statuses[str(status)] = statuses.get(str(status), 0) + 1

        await asyncio.gather(*(post(k, f, b, False) for k, f, b in bodies[:20]))
        pids = backends(database)
        before_pg = _cpu_of(pids)
        before_api = cpu.process_seconds(api.proc.pid)
        before_all = cpu.snapshot(settings)
        before_stmts = statements(database)
        before_xacts = transactions(database)
        load_before = os.getloadavg()
        t0 = time.perf_counter()
        tasks = []
        for n, (kind, firm, body) in enumerate(bodies):
            delay = t0 + n / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(post(kind, firm, body, True)))
        await asyncio.gather(*tasks)
        seconds = time.perf_counter() - t0
    after_api = cpu.process_seconds(api.proc.pid)
    after_all = cpu.snapshot(settings)
    after_pg = _cpu_of(pids)
    after_stmts = statements(database)
    after_xacts = transactions(database)
    n = len(bodies)
    calls = {q: c - before_stmts.get(q, 0) for q, c in after_stmts.items()}
    calls = {q: c for q, c in calls.items() if c > 0}
    # Statements of the measuring itself are not the API's (the superuser's reads go to the
    # postgres database, so none land here).
    pg_backends = sum(after_pg[p] - before_pg[p] for p in pids if after_pg.get(p, 0) > 0)
    return {
        "api": api.name,
        "keyed": keyed,
        "posts": n,
        "statuses": statuses,
        "seconds": round(seconds, 2),
        "posts_per_s": round(n / seconds, 1),
        "load_average_before_after": [round(load_before[0], 2), round(os.getloadavg()[0], 2)],
        "api_cpu_ms_per_post": round((after_api - before_api) / n * 1000, 3),
        "postgres_backends_cpu_ms_per_post": round(pg_backends / n * 1000, 3),
        "postgres_server_cpu_ms_per_post": round(
            (after_all.postgres_s - before_all.postgres_s) / n * 1000, 3
        ),
        "broker_cpu_ms_per_post": round((after_all.broker_s - before_all.broker_s) / n * 1000, 3),
        "statements_per_post": round(sum(calls.values()) / n, 2) if calls else None,
        "transactions_per_post": round((after_xacts - before_xacts) / n, 2),
        "statements": dict(sorted(calls.items(), key=lambda kv: -kv[1])[:12]),
        "latency_ms": {k: (v * 1000 if k != "count" else v) for k, v in latency.summary().items()},
    }


async def measure(args: argparse.Namespace) -> dict[str, Any]:
    base = Settings.from_env()
    result: dict[str, Any] = {
        "benchmark": "api-post",
        "started_at": datetime.now(UTC).isoformat(),
        "arguments": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "base_commit": _commit(args.base_tree),
        "head_tree": str(args.head_tree),
        "head_commit": _commit(args.head_tree)
        + (" (+ uncommitted)" if _dirty(args.head_tree) else ""),
        "cpus": os.cpu_count(),
        "runs": [],
    }
    async with scratch_database(base, "bench_api") as scratch:
        database = scratch.dsn.rsplit("/", 1)[1]
        settings = dataclasses.replace(scratch, log_level="warning")
        env = {
            **os.environ,
            "MARKETPLACE_DATABASE_URL": scratch.dsn,
            "MARKETPLACE_API_RATE_PER_S": "100000",
            "MARKETPLACE_API_RATE_BURST": "100000",
            "MARKETPLACE_LOG_LEVEL": "warning",
            # One key ring for both trees (the default path is under each tree).
            "MARKETPLACE_WEBHOOK_SECRET_KEYS": str(settings.webhook_keys_path.resolve()),
        }
        gen = LoadGenerator(settings, mode="kafka", seed=args.seed, smes=args.smes)
        await gen.register()
        bodies: list[tuple[str, int, dict[str, Any]]] = []
        for action in gen.market.actions(args.rate, datetime.now(UTC)):
            if action.kind != "withdraw":
                bodies.append((action.kind, action.firm, action.body))
            if len(bodies) >= args.posts:
                break
        if args.profile_head is not None:
            # Only this tree's API, under cProfile (its statistics written when it stops).
            apis = [await start_api("head", args.head_tree, env, args.profile_head)]
        else:
            apis = [
                await start_api("base", args.base_tree, env),
                await start_api("head", args.head_tree, env),
            ]
        try:
            for round_ in range(args.rounds):
                order = apis if round_ % 2 == 0 else apis[::-1]
                for keyed in (False, True):
                    for api in order:
                        run = await one_run(api, gen, bodies, args.rate, keyed, settings, database)
                        run["round"] = round_
                        result["runs"].append(run)
                        print(
                            f"round {round_} {api.name:4} keyed={keyed!s:5}"
                            f" api {run['api_cpu_ms_per_post']:.2f} ms"
                            f" pg {run['postgres_backends_cpu_ms_per_post']:.2f} ms"
                            f" statements {run['statements_per_post']}"
                            f" xacts {run['transactions_per_post']}"
                            f" p50 {run['latency_ms'].get('p50', 0):.1f} ms"
                            f" load {run['load_average_before_after']}",
                            flush=True,
                        )
        finally:
            for api in apis:
                if api.proc.returncode is None:
                    api.proc.terminate()
            for api in apis:
                try:
                    await asyncio.wait_for(api.proc.wait(), 30)
                except TimeoutError:
                    api.proc.kill()
    result["summary"] = summary(result["runs"])
    result["finished_at"] = datetime.now(UTC).isoformat()
    return result


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians over the rounds, per API and per way of posting."""
    out: dict[str, Any] = {}
    fields = (
        "api_cpu_ms_per_post",
        "postgres_backends_cpu_ms_per_post",
        "postgres_server_cpu_ms_per_post",
        "statements_per_post",
        "transactions_per_post",
    )
    for api in ("base", "head"):
        for keyed in (False, True):
            mine = [r for r in runs if r["api"] == api and r["keyed"] == keyed]
            if not mine:
                continue
            name = f"{api} {'keyed' if keyed else 'plain'}"
            out[name] = {
                f: round(_median([r[f] for r in mine if r[f] is not None] or [0.0]), 3)
                for f in fields
            }
            out[name]["latency_p50_ms"] = round(
                _median([r["latency_ms"].get("p50", 0.0) for r in mine]), 2
            )
    return out


def _commit(tree: Path) -> str:
    head = Path(tree) / ".git"
    if head.is_file():  # a worktree: .git names its git directory
        gitdir = Path(head.read_text().split(":", 1)[1].strip())
        return (gitdir / "HEAD").read_text().strip()
    ref = (head / "HEAD").read_text().strip()
    if ref.startswith("ref: "):
        return (head / ref[5:]).read_text().strip()
    return ref


def _dirty(tree: Path) -> bool:
    """Whether the tree's tracked files differ from its commit (others' work in progress)."""
    done = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=no"],
        cwd=tree,
        capture_output=True,
        text=True,
        check=False,
    )
    return bool(done.stdout.strip())


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--base-tree", type=Path, required=True)
    parser.add_argument(
        "--head-tree",
        type=Path,
        default=ROOT,
        help="the tree to compare (default this one; a worktree of a commit keeps others'"
        " uncommitted changes out)",
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--posts", type=int, default=600)
    parser.add_argument("--rate", type=float, default=80.0)
    parser.add_argument("--smes", type=int, default=60)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--profile-head", type=Path, help="run only this tree's API, under cProfile, to FILE"
    )
    args = parser.parse_args()
    if not (
        1 <= args.rounds <= 20
        and 50 <= args.posts <= 20_000
        and 0 < args.rate <= 2000
        and 2 <= args.smes <= 10_000
    ):
        parser.error("keep it bounded: rounds 1..20, posts 50..20000, rate 0..2000/s")
    for tree in (args.base_tree, args.head_tree):
        if not (tree / "producers" / "api" / "app.py").is_file():
            parser.error(f"{tree}: not a tree of this repository")
    result = asyncio.run(measure(args))
    if args.profile_head is not None:
        print(orjson.dumps(result["summary"], option=orjson.OPT_INDENT_2).decode())
        print(f"profile: {args.profile_head}")
        return
    REPORTS.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = REPORTS / f"api-post-{stamp}.json"
    path.write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2))
    print(orjson.dumps(result["summary"], option=orjson.OPT_INDENT_2).decode())
    print(f"report: {path}")


if __name__ == "__main__":
    main()
