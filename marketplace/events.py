"""Events to and from Kafka records: CloudEvents binary mode around the schemas/ payloads."""

from __future__ import annotations

from dataclasses import dataclass
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
# The largest record a consumer will decode. The API takes bodies of at most 64 KiB
# (MARKETPLACE_API_MAX_BODY_BYTES), and every event the exchange emits is far smaller than this;
# anything larger did not come from the exchange and is dead-lettered unread.
MAX_EVENT_BYTES = 256 * 1024


class EventDecodeError(ValueError):
    """A record is not a valid event for its topic; the message says why."""


@dataclass(frozen=True, slots=True)
class Decoded:
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
    # A copy of a topic ("market.listings--p12") carries the copied topic's contract.
    topic = contract_of(topic)
    decoder = _DECODERS.get(topic)
    if decoder is None:
        raise EventDecodeError(f"no contract for topic {topic}")
    if value is None:
        raise EventDecodeError("empty record value")
    if len(value) > MAX_EVENT_BYTES:
        raise EventDecodeError(
            f"{envelope.type}: oversized record of {len(value)} bytes, over the limit of "
            f"{MAX_EVENT_BYTES} for an event"
        )
    if envelope.type not in _TYPES[topic]:
        raise EventDecodeError(_unknown_type(topic, envelope.type))
    try:
        event = decoder.decode(value)
    except msgspec.ValidationError as exc:
        raise EventDecodeError(f"{envelope.type}: {exc}") from None
    except msgspec.DecodeError as exc:
        raise EventDecodeError(f"{envelope.type}: invalid JSON: {exc}") from None
    if type_name(type(event)) != envelope.type:
        raise EventDecodeError(
            f"ce_type {envelope.type} does not match payload type {type_name(type(event))}"
        )
    return Decoded(envelope, event)


def _unknown_type(topic: str, ce_type: str) -> str:
    stem, dot_v, _ = ce_type.rpartition(".v")
    known = sorted(t for t in _TYPES[topic] if dot_v and t.rpartition(".v")[0] == stem)
    if known:
        carried = ", ".join(known)
        return f"{ce_type}: schema version not supported on {topic} (it carries {carried})"
    return f"{ce_type}: unknown event type on {topic}"
