"""A stopping consumer waits a bounded time for each step of its shutdown that needs Kafka or
PostgreSQL (`marketplace.runtime.consumer.bounded`): a step that hangs is cancelled and logged,
one that fails is logged, one that finishes in time is simply awaited."""

from __future__ import annotations

import asyncio
from typing import Any

from marketplace.runtime.consumer import bounded


class Recorded:
    def __init__(self) -> None:
        self.warnings: list[tuple[str, dict[str, Any]]] = []

    def warning(self, event: str, **fields: Any) -> None:
        self.warnings.append((event, fields))


async def test_a_hanging_step_is_cancelled_after_its_bound_and_logged() -> None:
    log = Recorded()
    cancelled = asyncio.Event()

    async def hangs() -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    loop = asyncio.get_running_loop()
    started = loop.time()
    assert await bounded(hangs(), 0.05, log, "step_abandoned") is False
    assert loop.time() - started < 5
    assert cancelled.is_set()
    assert log.warnings == [("step_abandoned", {"waited_s": 0.05})]


async def test_a_failing_step_is_logged_and_a_finished_one_is_not() -> None:
    log = Recorded()

    async def fails() -> None:
        raise ConnectionError("broker away")

    done: list[int] = []

    async def finishes() -> None:
        await asyncio.sleep(0)
        done.append(1)

    assert await bounded(fails(), 1.0, log, "step_failed") is False
    assert await bounded(finishes(), 1.0, log, "step_failed") is True
    assert done == [1]
    assert [e for e, _ in log.warnings] == ["step_failed"]
    assert "broker away" in log.warnings[0][1]["error"]
