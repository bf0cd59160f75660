"""The pipeline benchmark counts each service's CPU over a round only: a latency round's figures
once ran from each process's start and so included the overload round before it."""

from __future__ import annotations

import asyncio
import sys

from loadtests.bench_pipeline import Services

# Busy for 0.6 s of CPU, then says so and waits for its standard input to close.
BURN = (
    "import sys, time\n"
    "end = time.process_time() + 0.6\n"
    "while time.process_time() < end: pass\n"
    "print('spent', flush=True)\n"
    "sys.stdin.read()"
)


async def _burning(services: Services, name: str) -> asyncio.subprocess.Process:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", BURN, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE
    )
    services.procs.append(proc)
    services.names[proc.pid] = name
    return proc


async def _spent(proc: asyncio.subprocess.Process) -> None:
    assert proc.stdout is not None
    assert await asyncio.wait_for(proc.stdout.readline(), 30) == b"spent\n"


async def test_a_round_counts_only_the_cpu_spent_since_its_mark() -> None:
    services = Services(env={})
    early = await _burning(services, "matcher")
    try:
        await _spent(early)
        mark = services.cpu_by_pid()
        late = await _burning(services, "notifier")
        await _spent(late)
        since_start = services.cpu_seconds()
        in_round = services.cpu_seconds(since=mark)
    finally:
        for proc in (early, late):
            assert proc.stdin is not None
            proc.stdin.close()
            await proc.wait()
    # The process busy before the mark spent almost nothing after it; the one started after the
    # mark counts whole.
    assert since_start["matcher"][0] >= 0.55
    assert in_round["matcher"][0] < 0.2
    assert in_round["notifier"][0] >= 0.55
    assert in_round["notifier"] == since_start["notifier"]
