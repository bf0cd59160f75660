"""CloudEvents 1.0 in Kafka binary mode (decision 5): ce_* headers, the payload as value."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

SPECVERSION = "1.0"
CONTENT_TYPE = "application/json"
Headers = tuple[tuple[str, bytes], ...]


class EnvelopeError(ValueError):
    """A Kafka record's headers are not a valid binary-mode CloudEvent."""


@dataclass(frozen=True, slots=True)
class Envelope:
    id: str
    type: str
    source: str
    time: datetime
    subject: str | None = None

    def headers(self) -> Headers:
        if self.time.tzinfo is None:
            raise EnvelopeError("CloudEvent time must be timezone-aware")
        out = [
            ("ce_specversion", SPECVERSION.encode()),
            ("ce_id", self.id.encode()),
            ("ce_type", self.type.encode()),
            ("ce_source", self.source.encode()),
            ("ce_time", self.time.isoformat().encode()),
            ("content-type", CONTENT_TYPE.encode()),
        ]
        if self.subject is not None:
            out.append(("ce_subject", self.subject.encode()))
        return tuple(out)

    @classmethod
    def from_headers(cls, headers: Iterable[tuple[str, bytes]] | None) -> Envelope:
        found: dict[str, str] = {}
        for key, value in headers or ():
            try:
                found[key] = value.decode()
            except UnicodeDecodeError:
                raise EnvelopeError(f"header {key} is not UTF-8") from None
        if found.get("ce_specversion") != SPECVERSION:
            raise EnvelopeError(
                f"ce_specversion must be {SPECVERSION}, got {found.get('ce_specversion')!r}"
            )
        for required in ("ce_id", "ce_type", "ce_source", "ce_time"):
            if not found.get(required):
                raise EnvelopeError(f"missing header {required}")
        try:
            time = datetime.fromisoformat(found["ce_time"])
        except ValueError:
            raise EnvelopeError(f"ce_time {found['ce_time']!r} is not RFC 3339") from None
        if time.tzinfo is None:
            raise EnvelopeError("ce_time has no time zone")
        return cls(
            id=found["ce_id"],
            type=found["ce_type"],
            source=found["ce_source"],
            time=time,
            subject=found.get("ce_subject"),
        )
