"""The base of every event payload.

An event's type name (its msgspec tag) is `<topic-ish noun>.<verb>.v<N>`; it travels both in the
payload's `type` field and in the CloudEvent `ce_type` header. See schemas/README.md."""

from __future__ import annotations

import msgspec


class Event(msgspec.Struct, frozen=True, kw_only=True, tag_field="type"):
    pass
