"""The cells consumer: the matching of material families split into geographic cells (#17,
marketplace/core/shards.py), on market.cells.

The matcher forwards a split family's records here under the key of the cell that holds the
listing (or the family's wide key); each partition of market.cells holds the cells and wide keys
that hash to it, each with a state of its own, which the pure core decides on
(`shards.cell_step`, `shards.wide_step`). A cell's decisions are the matcher's: the same events on
market.matches (ids derived from the cause), the same answer-period and delivery timers. The
loans between the keys travel on market.cells. Everything a batch changes (the events, the loans,
the states of the keys it touched) commits with the batch's offset in one transaction
(decision 4)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from marketplace.core.matching import MarketConfig
from marketplace.core.shards import WIDE, ShardPlan
from marketplace.core.taxonomy import UnknownCode
from marketplace.core.units import IncompatibleUnits
from marketplace.db import Conn
from marketplace.logs import get_logger
from marketplace.runtime import OutboxMessage, Transaction
from marketplace.runtime.deadletter import dead_letter
from marketplace.runtime.decoding import decode_or_dead_letter
from marketplace.timers import schedule_many
from marketplace.translate.cells import (
    Cells,
    CellsDecider,
    dump_cell,
    dump_wide,
    load_cell,
    load_wide,
)
from marketplace.translate.matching import source_of
from schemas import topics

GROUP = "cells"
TOPIC = topics.CELLS
log = get_logger(__name__)


class CellsMatcher:
    def __init__(self, config: MarketConfig, plan: ShardPlan, group_id: str = GROUP) -> None:
        self.config = config
        self.plan = plan
        self.group_id = group_id
        self.source = source_of(group_id)
        self.decider = CellsDecider(config, plan, self.source)

    async def load(self, conn: Conn, topic: str, partition: int) -> Cells:
        state = Cells()
        rows = await conn.fetch(
            "SELECT key, body FROM cells_state WHERE group_id = $1 AND topic = $2"
            " AND partition = $3",
            self.group_id,
            topic,
            partition,
        )
        for row in rows:
            family, _, where = row["key"].partition("@")
            if where == WIDE:
                state.wides[family] = load_wide(row["body"])
            else:
                state.cells[row["key"]] = load_cell(where, row["body"], self.config)
        return state

    async def process(self, tx: Transaction, state: Cells, records: Sequence[Any]) -> Cells:
        timers: list[tuple[str, OutboxMessage, datetime]] = []
        for record in records:
            decoded = decode_or_dead_letter(tx, self.group_id, record)
            if decoded is None or record.key is None:
                continue
            try:
                self.decider.decide(tx, state, decoded, record, timers)
            except (UnknownCode, IncompatibleUnits, ValueError) as exc:
                reason = f"{decoded.envelope.type}: {exc}"
                log.warning("dead_letter", offset=record.offset, reason=reason)
                tx.emit(dead_letter(self.group_id, record, reason))
        await schedule_many(tx.conn, timers)
        await self._save(tx, state)
        return state

    async def _save(self, tx: Transaction, state: Cells) -> None:
        if not state.dirty:
            return
        keys = sorted(state.dirty)
        bodies = []
        for key in keys:
            family, _, where = key.partition("@")
            bodies.append(
                dump_wide(state.wides[family]) if where == WIDE else dump_cell(state.cells[key])
            )
        await tx.conn.execute(
            "INSERT INTO cells_state (group_id, topic, partition, key, body)"
            " SELECT $1, $2, $3, u.key, u.body FROM unnest($4::text[], $5::bytea[]) AS u(key, body)"
            " ON CONFLICT (group_id, topic, partition, key) DO UPDATE SET body = EXCLUDED.body",
            self.group_id,
            tx.topic,
            tx.partition,
            keys,
            bodies,
        )
        state.dirty.clear()
        for cell in state.cells.values():
            cell.book.dirty.clear()
