"""Events to and from Kafka records: CloudEvents binary mode around the schemas/ payloads."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec

from marketplace.cloudevents import Envelope, EnvelopeError
from marketplace.runtime.outbox import OutboxMessage
from schemas.base import Event
from schemas.registry import TOPIC_EVENTS, key_of, members, topic_of, type_name
from schemas.topics import contract_of

_ENCODER = msgspec.json.Encoder()
_DECODERS: dict[str, msgspec.json.Decoder[Any]] = {
    topic: msgspec.json.Decoder(union) for topic, union in TOPIC_EVENTS.items()
}
_TYPES: dict[str, frozenset[str]] = {
    topic: frozenset(type_name(cls) for cls in members(union))
    for topic, union in TOPIC_EVENTS.items()
}
# Each event class's CloudEvent type (its tag), looked up once per record.
_TYPE_OF: dict[type, str] = {
    cls: type_name(cls) for union in TOPIC_EVENTS.values() for cls in members(union)
}
# Topic name (or a copy's, "market.listings--p12") -> its contract's topic, its decoder and
# its types; filled on first sight of each name.
_CONTRACTS: dict[str, tuple[str, msgspec.json.Decoder[Any], frozenset[str]]] = {}
# The largest record a consumer will decode. The API takes bodies of at most 64 KiB
# (MARKETPLACE_API_MAX_BODY_BYTES), and every event the exchange emits is far smaller than this;
# anything larger did not come from the exchange and is dead-lettered unread.
MAX_EVENT_BYTES = 256 * 1024


class EventDecodeError(ValueError):
    """A record is not a valid event for its topic; the message says why."""


class Decoded(msgspec.Struct, frozen=True):
    """A record's envelope and event (a struct: one is made per record, issue #18)."""

    envelope: Envelope
    event: Event


def to_message(
    event: Event, *, event_id: str, source: str, time: datetime, subject: str | None = None
) -> OutboxMessage:
    envelope = Envelope(
        id=event_id, type=type_name(type(event)), source=source, time=time, subject=subject
    )
    return OutboxMessage(
        topic=topic_of(event),
        key=key_of(event).encode(),
        value=_ENCODER.encode(event),
        headers=envelope.headers(),
    )


def decode(topic: str, value: bytes | None, headers: Any) -> Decoded:
    try:
        envelope = Envelope.from_headers(headers)
    except EnvelopeError as exc:
        raise EventDecodeError(f"not a CloudEvent: {exc}") from None
    contract = _CONTRACTS.get(topic)
    if contract is None:
        contract = _contract(topic)
    topic, decoder, types = contract
    if value is None:
        raise EventDecodeError("empty record value")
    if len(value) > MAX_EVENT_BYTES:
        raise EventDecodeError(
            f"{envelope.type}: oversized record of {len(value)} bytes, over the limit of "
            f"{MAX_EVENT_BYTES} for an event"
        )
    if envelope.type not in types:
        raise EventDecodeError(_unknown_type(topic, envelope.type))
    try:
        event = decoder.decode(value)
    except msgspec.ValidationError as exc:
        raise EventDecodeError(f"{envelope.type}: {exc}") from None
    except msgspec.DecodeError as exc:
        raise EventDecodeError(f"{envelope.type}: invalid JSON: {exc}") from None
    if _TYPE_OF[type(event)] != envelope.type:
        raise EventDecodeError(
            f"ce_type {envelope.type} does not match payload type {_TYPE_OF[type(event)]}"
        )
    return Decoded(envelope, event)


def _contract(name: str) -> tuple[str, msgspec.json.Decoder[Any], frozenset[str]]:
    """The contract of topic `name`: a copy of a topic ("market.listings--p12") carries the
    copied topic's. Remembered per name (only names with a contract: the others are refused
    every time, and do not fill the table)."""
    topic = contract_of(name)
    decoder = _DECODERS.get(topic)
    if decoder is None:
        raise EventDecodeError(f"no contract for topic {topic}")
    found = _CONTRACTS[name] = (topic, decoder, _TYPES[topic])
    return found


def _unknown_type(topic: str, ce_type: str) -> str:
    stem, dot_v, _ = ce_type.rpartition(".v")
    known = sorted(t for t in _TYPES[topic] if dot_v and t.rpartition(".v")[0] == stem)
    if known:
        carried = ", ".join(known)
        return f"{ce_type}: schema version not supported on {topic} (it carries {carried})"
    return f"{ce_type}: unknown event type on {topic}"
