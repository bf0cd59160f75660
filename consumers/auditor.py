"""The auditor: every record of every topic into `audit_log`, exactly once, hash-chained per
topic partition (decision 8), and signed checkpoints of the chain heads at intervals.

It runs on the exactly-once runtime like every other consumer: one partition's batch is chained
and written by COPY, in the same transaction as the partition's next offset, so a crash can
neither skip a record nor write one twice. Several instances share the partitions; each chain
belongs to one partition, so they never write to the same chain at once."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg

from marketplace.audit import store
from marketplace.audit.signing import Head, load_key
from marketplace.db import UNREACHABLE, Conn, connect
from marketplace.logs import get_logger
from marketplace.runtime import Transaction
from marketplace.runtime.consumer import STOP_STEP_S, bounded
from marketplace.runtime.service import run_consumer
from marketplace.settings import Settings
from schemas.topics import TOPICS as SPECS

GROUP = "auditor"
TOPICS = [spec.name for spec in SPECS]
log = get_logger(__name__)


@dataclass(slots=True)
class ChainState:
    last_offset: int | None
    head: bytes


class Auditor:
    async def load(self, conn: Conn, topic: str, partition: int) -> ChainState:
        offset, head = await store.chain_head(conn, topic, partition)
        return ChainState(offset, head)

    async def process(
        self, tx: Transaction, state: ChainState, records: Sequence[Any]
    ) -> ChainState:
        if not records:
            return state
        head = await store.append(tx.conn, state.head, records)
        return ChainState(records[-1].offset, head)


async def checkpoint_forever(
    settings: Settings, stop: asyncio.Event, group_id: str = GROUP
) -> None:
    """Signs the chain heads every `audit_checkpoint_interval_s`, when they moved."""
    key = load_key(settings.audit_key_path)
    last: list[Head] | None = None
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), settings.audit_checkpoint_interval_s)
        try:
            conn = await connect(settings)
            try:
                heads = await store.current_heads(conn, group_id)
                if heads and heads != last:
                    made = await store.write_checkpoint(conn, key, group_id, datetime.now(UTC))
                    if made is not None:
                        last = made[1]
                        log.info("audit_checkpoint", checkpoint_id=made[0], chains=len(made[1]))
            finally:
                await conn.close()
        except (*UNREACHABLE, asyncpg.PostgresError) as exc:
            # PostgreSQL away (restarting, connections dropped): the next interval signs what
            # the chains hold then; checkpoints must not stop for good (found by the fault suite).
            log.warning("audit_checkpoint_deferred", error=repr(exc))


async def run_auditor(settings: Settings, stop: asyncio.Event, group_id: str = GROUP) -> None:
    load_key(settings.audit_key_path)  # fail at start, not at the first checkpoint
    checkpoints = asyncio.create_task(checkpoint_forever(settings, stop, group_id))
    try:
        await run_consumer(
            settings, group_id=group_id, topics=TOPICS, processor=Auditor(), stop=stop
        )
    finally:
        stop.set()
        # The last checkpoint, if PostgreSQL answers soon (the next start signs what it missed).
        await bounded(checkpoints, STOP_STEP_S, log, "audit_checkpoint_abandoned_on_stop")
