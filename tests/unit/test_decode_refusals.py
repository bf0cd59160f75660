"""What a consumer says when it refuses a record (the dead letter's reason): an unknown type, a
schema version the topic does not carry, and a record too large to be an event are named as such,
before any attempt to parse the payload."""

from __future__ import annotations

import orjson
import pytest

from marketplace.events import MAX_EVENT_BYTES, EventDecodeError, decode


def headers(ce_type: str) -> list[tuple[str, bytes]]:
    return [
        ("ce_specversion", b"1.0"),
        ("ce_id", b"e-1"),
        ("ce_source", b"/test"),
        ("ce_type", ce_type.encode()),
        ("ce_time", b"2026-11-23T11:00:00Z"),
        ("content-type", b"application/json"),
    ]


def test_an_unknown_type_is_named() -> None:
    value = orjson.dumps({"type": "market.teleport.happened.v1"})
    with pytest.raises(EventDecodeError) as err:
        decode("market.listings", value, headers("market.teleport.happened.v1"))
    assert str(err.value) == "market.teleport.happened.v1: unknown event type on market.listings"


def test_a_version_the_topic_does_not_carry_is_named_with_the_ones_it_does() -> None:
    value = orjson.dumps({"type": "market.offer.posted.v99"})
    with pytest.raises(EventDecodeError) as err:
        decode("market.listings", value, headers("market.offer.posted.v99"))
    assert "market.offer.posted.v99: schema version not supported on market.listings" in str(
        err.value
    )
    assert "market.offer.posted.v1" in str(err.value)


def test_an_oversized_record_is_refused_unread() -> None:
    # Valid JSON of a real type: only its size is wrong.
    value = orjson.dumps({"type": "market.offer.posted.v1", "pad": "x" * MAX_EVENT_BYTES})
    with pytest.raises(EventDecodeError) as err:
        decode("market.listings", value, headers("market.offer.posted.v1"))
    assert f"oversized record of {len(value)} bytes" in str(err.value)
    assert f"over the limit of {MAX_EVENT_BYTES}" in str(err.value)


def test_invalid_json_of_a_known_type_is_malformed() -> None:
    with pytest.raises(EventDecodeError, match=r"market\.offer\.posted\.v1: invalid JSON"):
        decode(
            "market.listings",
            b'{"type": "market.offer.posted.v1", ',
            headers("market.offer.posted.v1"),
        )
