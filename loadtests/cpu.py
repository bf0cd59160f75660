"""CPU seconds per process, read from /proc, for the benchmarks' reports (Linux only).

A benchmark takes `snapshot()` before and after a run and reports the difference per role: the
Kafka broker(s), PostgreSQL (every backend, plus what the postmaster collected from backends
that ended), the workers it started, and itself (the load generator). The broker and PostgreSQL
are shared with whatever else runs on the machine: their figures include that load."""

from __future__ import annotations

import os
import resource
from dataclasses import dataclass
from pathlib import Path

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


def snapshot() -> Snapshot:
    broker = postgres = 0.0
    for pid in _pids():
        line = _cmdline(pid)
        if "java" in line and "kafka.Kafka" in line:
            broker += process_seconds(pid)
        elif line.startswith(("postgres", "/usr/lib/postgresql")) or "/postgres " in line:
            # The postmaster's children's time counts the backends that ended meanwhile.
            parent = _stat(pid)
            is_postmaster = parent is not None and "postgres" not in _cmdline(int(parent[1]))
            postgres += process_seconds(pid, with_children=is_postmaster)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return Snapshot(broker, postgres, usage.ru_utime + usage.ru_stime)


def between(before: Snapshot, after: Snapshot) -> dict[str, float]:
    return {
        "broker_cpu_s": round(after.broker_s - before.broker_s, 3),
        "postgres_cpu_s": round(after.postgres_s - before.postgres_s, 3),
        "load_generator_cpu_s": round(after.self_s - before.self_s, 3),
    }
