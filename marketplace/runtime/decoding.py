"""Decoding a consumer's records, with the ones that are not valid events dead-lettered. Kept
apart from deadletter.py, which the runtime itself imports, so that the runtime does not depend
on the contracts.

A consumer may decode its records as the runtime fetches them, ahead of their transaction
(`prepare = staticmethod(decode_records)` on the processor, see `Processor` in consumer.py):
`process` then gets `DecodedRecord`s, which `decode_or_dead_letter` takes as it takes records."""

from __future__ import annotations

from typing import Any

import msgspec

from marketplace.events import Decoded, EventDecodeError, decode
from marketplace.logs import get_logger
from marketplace.runtime.consumer import Transaction
from marketplace.runtime.deadletter import dead_letter

log = get_logger(__name__)


class DecodedRecord(msgspec.Struct, frozen=True):
    """A record and what decoding it gave: the event, or the reason it is not one (`refused`).
    Carries the record's offset and timestamp, which the runtime reads."""

    record: Any
    offset: int
    timestamp: int
    decoded: Decoded | None
    refused: str | None = None


def decode_records(records: list[Any]) -> list[DecodedRecord]:
    """Each record decoded, in order; pure (no I/O, nothing emitted), so the runtime may do it
    before the batch's transaction. Refusals are sent to the dead letters by
    `decode_or_dead_letter` inside the transaction."""
    out: list[DecodedRecord] = []
    append = out.append
    for record in records:
        try:
            decoded = decode(record.topic, record.value, record.headers)
        except EventDecodeError as exc:
            append(DecodedRecord(record, record.offset, record.timestamp, None, str(exc)))
        else:
            append(DecodedRecord(record, record.offset, record.timestamp, decoded))
    return out


def decode_or_dead_letter(tx: Transaction, group_id: str, record: Any) -> Decoded | None:
    """The record (or a `DecodedRecord`) as a contract event, or None after sending it to the
    dead letters with the reason (a record that is not a valid CloudEvent of its topic)."""
    if isinstance(record, DecodedRecord):
        if record.decoded is not None:
            return record.decoded
        reason, record = record.refused or "not decoded", record.record
    else:
        try:
            return decode(record.topic, record.value, record.headers)
        except EventDecodeError as exc:
            reason = str(exc)
    log.warning("dead_letter", group=group_id, offset=record.offset, reason=reason)
    tx.emit(dead_letter(group_id, record, reason))
    return None
