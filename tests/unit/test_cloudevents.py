from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from marketplace.cloudevents import Envelope, EnvelopeError
from marketplace.core.ids import derived_id

text = st.text(alphabet=st.characters(codec="utf-8"), min_size=1, max_size=40)
# hypothesis takes naive bounds and attaches the time zone itself.
aware_times = st.datetimes(
    min_value=datetime(2000, 1, 1),  # noqa: DTZ001
    max_value=datetime(2100, 1, 1),  # noqa: DTZ001
    timezones=st.just(UTC),
)


@given(id_=text, type_=text, source=text, time=aware_times, subject=st.none() | text)
def test_headers_round_trip(
    id_: str, type_: str, source: str, time: datetime, subject: str | None
) -> None:
    env = Envelope(id=id_, type=type_, source=source, time=time, subject=subject)
    assert Envelope.from_headers(env.headers()) == env


def test_binary_mode_headers_are_the_cloudevents_ones() -> None:
    env = Envelope(
        id="e-1",
        type="market.offer.posted.v1",
        source="/api",
        subject="offer-9",
        time=datetime(2026, 11, 23, 9, 30, tzinfo=timezone(timedelta(hours=2))),
    )
    headers = dict(env.headers())
    assert headers == {
        "ce_specversion": b"1.0",
        "ce_id": b"e-1",
        "ce_type": b"market.offer.posted.v1",
        "ce_source": b"/api",
        "ce_time": b"2026-11-23T09:30:00+02:00",
        "ce_subject": b"offer-9",
        "content-type": b"application/json",
    }


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ([], "ce_specversion must be 1.0"),
        ([("ce_specversion", b"0.3")], "ce_specversion must be 1.0"),
        ([("ce_specversion", b"1.0"), ("ce_id", b"x")], "missing header ce_type"),
        (
            [
                ("ce_specversion", b"1.0"),
                ("ce_id", b"x"),
                ("ce_type", b"t"),
                ("ce_source", b"s"),
                ("ce_time", b"yesterday"),
            ],
            "is not RFC 3339",
        ),
        (
            [
                ("ce_specversion", b"1.0"),
                ("ce_id", b"x"),
                ("ce_type", b"t"),
                ("ce_source", b"s"),
                ("ce_time", b"2026-01-01T00:00:00"),
            ],
            "no time zone",
        ),
        ([("ce_specversion", b"\xff")], "not UTF-8"),
    ],
)
def test_malformed_headers_are_refused_with_the_reason(
    headers: list[tuple[str, bytes]], reason: str
) -> None:
    with pytest.raises(EnvelopeError, match=reason):
        Envelope.from_headers(headers)


def test_naive_time_cannot_be_sent() -> None:
    env = Envelope(id="x", type="t", source="s", time=datetime(2026, 1, 1))  # noqa: DTZ001
    with pytest.raises(EnvelopeError):
        env.headers()


@given(cause=st.uuids().map(str), index=st.integers(min_value=0, max_value=10_000))
def test_derived_ids_are_deterministic_version_5_uuids(cause: str, index: int) -> None:
    first = derived_id(cause, index)
    assert first == derived_id(cause, index)
    assert uuid.UUID(first).version == 5
    assert first != derived_id(cause, index + 1)
