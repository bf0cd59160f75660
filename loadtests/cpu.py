"""CPU seconds per process, read from /proc, for the benchmarks' reports (Linux only).

A benchmark takes `snapshot()` before and after a run and reports the difference per role: the
Kafka broker, PostgreSQL (every backend, plus what the postmaster collected from backends that
ended), the workers it started, and itself (the load generator). Only the broker and the
PostgreSQL server the benchmark's settings point at count (found by their ports: the broker's
`listeners`, the postmaster's `postmaster.pid`), so a benchmark on private servers
(loadtests/broker.sh, loadtests/postgres.sh) sees its own; on the shared ones the figures
include whatever else runs there, and with servers given by URL every broker and PostgreSQL
on the machine counts."""

from __future__ import annotations

import os
import re
import resource
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from marketplace.settings import Settings

TICK = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces: split after its closing parenthesis.
    return raw[raw.rindex(")") + 2 :].split()


def process_seconds(pid: int, *, with_children: bool = False) -> float:
    """User + system CPU seconds of a live process (0.0 when it is gone)."""
    fields = _stat(pid)
    if fields is None:
        return 0.0
    # After the name: state(0) ppid(1) ... utime(11) stime(12) cutime(13) cstime(14).
    ticks = int(fields[11]) + int(fields[12])
    if with_children:
        ticks += int(fields[13]) + int(fields[14])
    return ticks / TICK


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _pids() -> list[int]:
    return [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit()]


@dataclass(frozen=True, slots=True)
class Snapshot:
    broker_s: float
    postgres_s: float
    self_s: float


def _ports(settings: Settings) -> tuple[int | None, int | None]:
    """The broker's and PostgreSQL's ports the settings use (None: given by URL, unknown)."""
    kafka = None if settings.kafka_bootstrap else settings.kafka_port
    postgres: int | None = settings.pg_port
    if settings.database_url:
        postgres = urlsplit(settings.database_url).port
    return kafka, postgres


def _broker_port(cmdline: str) -> int | None:
    """The PLAINTEXT port in the broker's server.properties (its last argument)."""
    try:
        text = Path(cmdline.split()[-1]).read_text()
    except (OSError, IndexError):
        return None
    found = re.search(r"^listeners=.*?PLAINTEXT://[^:,]*:(\d+)", text, re.MULTILINE)
    return int(found.group(1)) if found else None


def _postmaster_port(cmdline: str) -> int | None:
    """The port in the data directory's postmaster.pid (its fourth line)."""
    found = re.search(r"-D\s+(\S+)", cmdline)
    try:
        lines = (Path(found.group(1)) / "postmaster.pid").read_text().splitlines() if found else []
    except OSError:
        return None
    return int(lines[3]) if len(lines) > 3 and lines[3].isdigit() else None


def snapshot(settings: Settings | None = None) -> Snapshot:
    """CPU seconds so far of the broker and PostgreSQL that `settings` (default: the
    environment's) point at, and of this process."""
    kafka_port, pg_port = _ports(settings or Settings.from_env())
    broker = postgres = 0.0
    postmasters: set[int] = set()
    others: list[tuple[int, int]] = []  # (pid, parent) of PostgreSQL processes
    for pid in _pids():
        line = _cmdline(pid)
        if "java" in line and "kafka.Kafka" in line:
            if kafka_port is None or _broker_port(line) == kafka_port:
                broker += process_seconds(pid)
        elif line.startswith(("postgres", "/usr/lib/postgresql")) or "/postgres " in line:
            parent = _stat(pid)
            if parent is None:
                continue
            if "postgres" not in _cmdline(int(parent[1])):  # a postmaster
                if pg_port is None or _postmaster_port(line) == pg_port:
                    postmasters.add(pid)
                    # Its children's time counts the backends that ended meanwhile.
                    postgres += process_seconds(pid, with_children=True)
            else:
                others.append((pid, int(parent[1])))
    postgres += sum(process_seconds(pid) for pid, parent in others if parent in postmasters)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return Snapshot(broker, postgres, usage.ru_utime + usage.ru_stime)


def between(before: Snapshot, after: Snapshot) -> dict[str, float]:
    return {
        "broker_cpu_s": round(after.broker_s - before.broker_s, 3),
        "postgres_cpu_s": round(after.postgres_s - before.postgres_s, 3),
        "load_generator_cpu_s": round(after.self_s - before.self_s, 3),
    }
