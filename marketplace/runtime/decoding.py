"""Decoding a consumer's records, with the ones that are not valid events dead-lettered. Kept
apart from deadletter.py, which the runtime itself imports, so that the runtime does not depend
on the contracts."""

from __future__ import annotations

from typing import Any

from marketplace.events import Decoded, EventDecodeError, decode
from marketplace.logs import get_logger
from marketplace.runtime.consumer import Transaction
from marketplace.runtime.deadletter import dead_letter

log = get_logger(__name__)


def decode_or_dead_letter(tx: Transaction, group_id: str, record: Any) -> Decoded | None:
    """The record as a contract event, or None after sending it to the dead letters with the
    reason (a record that is not a valid CloudEvent of its topic)."""
    try:
        return decode(record.topic, record.value, record.headers)
    except EventDecodeError as exc:
        log.warning("dead_letter", group=group_id, offset=record.offset, reason=str(exc))
        tx.emit(dead_letter(group_id, record, str(exc)))
        return None
