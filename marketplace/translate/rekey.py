"""The move of the matcher's books to the material-family key (#17 item 2), between the pure
core (marketplace/core/rekey.py), the contracts and PostgreSQL: where Kafka puts a key, the
messages the move decides, and the record of the cut-over that `marketplace rebuild rekey`
writes and `marketplace audit replay` reads, so that both make the same move at the same
offsets.

The cut-over is a row of `matcher_cutovers` (migration 0027): the group, the topic, the time,
the group's next offset on each partition then, and the move's figures. It is written once, in
the move's transaction; the services' role may not change it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson
from aiokafka.partitioner import DefaultPartitioner

from marketplace.core.ids import derived_id
from marketplace.core.matching import Event
from marketplace.db import Conn
from marketplace.events import to_message
from marketplace.runtime.outbox import OutboxMessage
from marketplace.translate.matching import to_contract
from schemas import matches as ms

_PARTITIONER = DefaultPartitioner()


@dataclass(frozen=True, slots=True)
class CutOver:
    """Where a group's books moved to the family key: its next offset per partition then."""

    group_id: str
    topic: str
    at: datetime
    offsets: dict[int, int]
    # What the move did, as recorded (None: not recorded, as for a cut-over made before the
    # figures were kept). Not part of the move: replay makes it from the rest.
    summary: dict[str, Any] | None = field(default=None, compare=False)

    @property
    def partitions(self) -> int:
        return len(self.offsets)

    @property
    def cause_id(self) -> str:
        """What the ids of the move's decisions derive from."""
        return f"rekey/{self.group_id}/{self.topic}/{self.at.isoformat()}"

    def before(self, partition: int, offset: int) -> bool:
        """Whether a record of the topic was decided under the old key."""
        return offset < self.offsets.get(partition, 0)


def partition_of(key: str, partitions: int) -> int:
    """The partition Kafka's default partitioner gives a keyed record (murmur2 of the key)."""
    every = list(range(partitions))
    return int(_PARTITIONER(key.encode(), every, every))


def messages_of(events: list[Event], cut: CutOver, source: str) -> list[OutboxMessage]:
    """The move's decisions as the matcher publishes them (ids derived from the cut-over)."""
    out = []
    for k, event in enumerate(events):
        contract = to_contract(event)
        out.append(
            to_message(
                contract,
                event_id=derived_id(f"{cut.cause_id}/matcher", k),
                source=source,
                time=cut.at,
                subject=contract.delivery_id
                if isinstance(contract, ms.DeliveryScheduled)
                else contract.match_id,
            )
        )
    return out


async def read_cut_over(conn: Conn, group_id: str, topic: str) -> CutOver | None:
    """The recorded cut-over of a group on a topic, or None when its books never moved."""
    row = await conn.fetchrow(
        "SELECT at, offsets::text AS offsets, summary::text AS summary FROM matcher_cutovers"
        " WHERE group_id = $1 AND topic = $2",
        group_id,
        topic,
    )
    if row is None:
        return None
    offsets = {int(p): int(n) for p, n in orjson.loads(row["offsets"]).items()}
    summary = orjson.loads(row["summary"]) if row["summary"] is not None else None
    return CutOver(group_id, topic, row["at"], offsets, summary)


async def write_cut_over(
    conn: Conn, cut: CutOver, summary: Mapping[str, Any] | None = None
) -> None:
    """Records the cut-over (once: a second one for the same group and topic is refused by the
    table's key) with the move's figures."""
    offsets = {str(p): n for p, n in sorted(cut.offsets.items())}
    await conn.execute(
        "INSERT INTO matcher_cutovers (group_id, topic, at, offsets, summary)"
        " VALUES ($1, $2, $3, $4::jsonb, $5::jsonb)",
        cut.group_id,
        cut.topic,
        cut.at,
        orjson.dumps(offsets).decode(),
        None if summary is None else orjson.dumps(summary, option=orjson.OPT_NON_STR_KEYS).decode(),
    )
