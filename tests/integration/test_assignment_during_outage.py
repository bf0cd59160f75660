"""A rebalance step that fails: the runner's assignment reads the group's offsets from
PostgreSQL, and a failure there once left partitions assigned in Kafka but unknown to the
runner (aiokafka logs a listener's error and goes on), so they were never applied. The fault
suite saw a consumer stall so after PostgreSQL's restart. Here the offsets' read fails while
the consumer joins the real broker's group: three times as a refused connection would (the
assignment waits for PostgreSQL), or once with an error that waiting would not mend (the
Kafka consumer is replaced and its assignment runs again). Without either, 0 of 300 records
are applied."""

from __future__ import annotations

from typing import Any

import asyncpg
import pytest

from marketplace.runtime.consumer import CONSUMERS_RENEWED, ExactlyOnceConsumer
from marketplace.settings import Settings
from tests.integration.kafka_helpers import make_topics, produce_numbers, unique, until_count
from tests.integration.test_runtime_failures import (
    Flaky,
    assert_applied_once,
    counted,
    counts_table,
    flaky_running,
)

pytestmark = pytest.mark.integration


def _refused() -> Exception:
    return ConnectionRefusedError(111, "Connection refused")


def _denied() -> Exception:
    return asyncpg.InsufficientPrivilegeError("permission denied for table consumer_offsets")


# How the read fails, how many times, and how many Kafka consumers replace the first.
CASES = {"postgres-away": (_refused, 3, 0), "other-error": (_denied, 1, 1)}


@pytest.mark.parametrize("case", sorted(CASES))
async def test_an_assignment_that_fails_is_run_again_and_loses_nothing(
    case: str,
    settings: Settings,
    pool: asyncpg.Pool,
    owner: asyncpg.Connection,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    error, times, renewals = CASES[case]
    source, group = unique(f"assign-{case}-in"), unique(f"assign-{case}-group")
    table = await counts_table(owner, group)
    await make_topics(settings, source, partitions=2)
    sent = await produce_numbers(settings, source, 300)
    real_read = ExactlyOnceConsumer._read_offsets
    refused = [times]

    async def read_offsets(self: ExactlyOnceConsumer[Any]) -> list[asyncpg.Record]:
        if refused[0] > 0:
            refused[0] -= 1
            raise error()
        return await real_read(self)

    monkeypatch.setattr(ExactlyOnceConsumer, "_read_offsets", read_offsets)
    flaky = Flaky(table, fail_on=None)
    async with flaky_running(settings, group, source, flaky, session_timeout_ms=10000) as task:
        await until_count(pool, counted(table), len(sent), task)
    assert refused == [0]  # the assignment really met the refusals
    assert CONSUMERS_RENEWED.labels(group=group)._value.get() == renewals
    await assert_applied_once(pool, table, sent, flaky)
    await owner.execute(f"DROP TABLE {table}")
