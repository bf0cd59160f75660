"""The move of the matcher's books to the material-family key (#17 item 2), between the pure
core (marketplace/core/rekey.py), the contracts and PostgreSQL: where Kafka puts a key, the
messages the move decides, and the record of the cut-over that `marketplace rebuild rekey`
writes and `marketplace audit replay` reads, so that both make the same move at the same
offsets.

The cut-over is kept in `matcher_partitions`, beside the books it concerns, under the topic
name `<topic>@cut-over`: one row per partition whose `seq` is the group's next offset at the
cut-over, and a row for partition -1 whose `seq` is the cut-over's time in microseconds since
1970 (no table of its own yet)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from aiokafka.partitioner import DefaultPartitioner

from marketplace.core.ids import derived_id
from marketplace.core.matching import Event
from marketplace.db import Conn
from marketplace.events import to_message
from marketplace.runtime.outbox import OutboxMessage
from marketplace.translate.matching import to_contract
from schemas import matches as ms

SUFFIX = "@cut-over"
_TIME_ROW = -1
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_PARTITIONER = DefaultPartitioner()


@dataclass(frozen=True, slots=True)
class CutOver:
    """Where a group's books moved to the family key: its next offset per partition then."""

    group_id: str
    topic: str
    at: datetime
    offsets: dict[int, int]

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
    rows = await conn.fetch(
        "SELECT partition, seq FROM matcher_partitions WHERE group_id = $1 AND topic = $2"
        " ORDER BY partition",
        group_id,
        topic + SUFFIX,
    )
    if not rows:
        return None
    at: datetime | None = None
    offsets: dict[int, int] = {}
    for r in rows:
        if r["partition"] == _TIME_ROW:
            at = _EPOCH + timedelta(microseconds=r["seq"])
        else:
            offsets[r["partition"]] = r["seq"]
    if at is None:
        raise ValueError(f"the cut-over of {group_id} on {topic} has no time")
    return CutOver(group_id, topic, at, offsets)


async def write_cut_over(conn: Conn, cut: CutOver) -> None:
    micros = (cut.at - _EPOCH) // timedelta(microseconds=1)
    rows = [(_TIME_ROW, micros), *sorted(cut.offsets.items())]
    await conn.executemany(
        "INSERT INTO matcher_partitions (group_id, topic, partition, seq) VALUES ($1, $2, $3, $4)",
        [(cut.group_id, cut.topic + SUFFIX, p, s) for p, s in rows],
    )
