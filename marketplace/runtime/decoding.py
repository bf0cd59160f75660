"""Decoding a consumer's records, with the ones that are not valid events dead-lettered. Kept
apart from deadletter.py, which the runtime itself imports, so that the runtime does not depend
on the contracts.

A consumer may decode its records as the runtime fetches them, ahead of their transaction
(`prepare = staticmethod(decode_records)` on the processor, see `Processor` in consumer.py):
`process` then gets `DecodedRecord`s, which `decode_or_dead_letter` takes as it takes records."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar, cast

import msgspec

from marketplace.events import Decoded, EventDecodeError, decode
from marketplace.logs import get_logger
from marketplace.runtime.consumer import Transaction
from marketplace.runtime.deadletter import dead_letter

log = get_logger(__name__)
T = TypeVar("T")


class _Underived:
    """`DecodedRecord.derived` when nothing was derived ahead (no `derive`, or it raised)."""

    def __repr__(self) -> str:
        return "UNDERIVED"


UNDERIVED: Any = _Underived()


class DecodedRecord(msgspec.Struct, frozen=True):
    """A record and what decoding it gave: the event, or the reason it is not one (`refused`),
    and what the processor derived from the event ahead (`derived`, see `decode_records`).
    Carries the record's offset and timestamp, which the runtime reads."""

    record: Any
    offset: int
    timestamp: int
    decoded: Decoded | None
    refused: str | None = None
    derived: Any = UNDERIVED


def decode_records(
    records: list[Any], derive: Callable[[Decoded], Any] | None = None
) -> list[DecodedRecord]:
    """Each record decoded, in order; pure (no I/O, nothing emitted), so the runtime may do it
    before the batch's transaction. Refusals are sent to the dead letters by
    `decode_or_dead_letter` inside the transaction. `derive`, a pure function of an event
    (analytics' `fact`), is applied to each event here too (`derived_of` takes its result); if
    it raises, nothing is kept, and `derived_of` calls it again inside the transaction, where
    the error fails the batch as it would have without this."""
    out: list[DecodedRecord] = []
    append = out.append
    for record in records:
        try:
            decoded = decode(record.topic, record.value, record.headers)
        except EventDecodeError as exc:
            append(DecodedRecord(record, record.offset, record.timestamp, None, str(exc)))
            continue
        derived = UNDERIVED
        if derive is not None:
            try:
                derived = derive(decoded)
            except Exception:  # noqa: BLE001 - raised again in the transaction (`derived_of`)
                derived = UNDERIVED
        append(DecodedRecord(record, record.offset, record.timestamp, decoded, None, derived))
    return out


def derived_of(item: Any, decoded: Decoded, derive: Callable[[Decoded], T]) -> T:
    """What `derive` makes of `decoded`, the event of `item` (a record, or a `DecodedRecord`):
    taken from the item if `decode_records` derived it ahead, else made now."""
    if isinstance(item, DecodedRecord) and item.derived is not UNDERIVED:
        return cast(T, item.derived)
    return derive(decoded)


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
