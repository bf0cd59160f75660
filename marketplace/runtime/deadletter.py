"""Records a consumer cannot process go to `ops.deadletters` with the reason, in the same
transaction as the consumer's other effects, so nothing is lost and nothing blocks the partition."""

from __future__ import annotations

import base64
from typing import Any

from marketplace.runtime.outbox import OutboxMessage
from schemas import topics

TOPIC = topics.DEADLETTERS


def dead_letter(group_id: str, record: Any, reason: str) -> OutboxMessage:
    headers: list[tuple[str, bytes]] = []
    for key, value in record.headers or ():
        # Keep the original attributes readable even if a producer sent bytes that are not UTF-8.
        text = value.decode("utf-8", errors="replace") if isinstance(value, bytes) else str(value)
        headers.append((key, text.encode()))
    original_key = getattr(record, "key", None)
    if original_key is not None:
        # The original key, so that a replay lands on the same partition.
        headers.append(("dl_key", base64.b64encode(original_key)))
    headers += [
        ("dl_reason", reason[:1000].encode()),
        ("dl_group", group_id.encode()),
        ("dl_topic", str(record.topic).encode()),
        ("dl_partition", str(record.partition).encode()),
        ("dl_offset", str(record.offset).encode()),
    ]
    return OutboxMessage(
        topic=TOPIC, key=group_id.encode(), value=record.value or b"", headers=tuple(headers)
    )
