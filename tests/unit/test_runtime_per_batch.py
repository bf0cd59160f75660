"""Work the runtime and the decoding path do per batch instead of per record (issue #18) gives
what the per-record way gave: the end-to-end lag histogram observed for a batch at once has the
buckets, count and sum of observing each record, and records decoded ahead of their transaction
(`decode_records`) come out of `decode_or_dead_letter` as decoding them there would, refusals
dead-lettered with the same reason."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from aiokafka.structs import ConsumerRecord
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Histogram, generate_latest

from marketplace.events import decode, to_message
from marketplace.runtime.consumer import Transaction, observe_each
from marketplace.runtime.deadletter import TOPIC as DEAD_LETTERS
from marketplace.runtime.decoding import DecodedRecord, decode_or_dead_letter, decode_records
from schemas.partners import PartnerRegistered

BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)
lags = st.lists(
    st.one_of(
        st.sampled_from([0.0, *BUCKETS]),  # exactly on a bound: counted in that bucket
        st.floats(min_value=0, max_value=1000, allow_nan=False),
    ),
    max_size=60,
)


def exposition(values: list[float], *, at_once: bool) -> dict[str, float]:
    registry = CollectorRegistry()
    histogram = Histogram("lag_seconds", "lag", ("group",), registry=registry, buckets=BUCKETS)
    child = histogram.labels(group="g")
    if at_once:
        observe_each(child, values)
    else:
        for value in values:
            child.observe(value)
    out: dict[str, float] = {}
    for line in generate_latest(registry).decode().splitlines():
        if not line.startswith("#"):
            name, _, number = line.rpartition(" ")
            out[name] = float(number)
    return out


@given(values=lags)
def test_a_batch_observed_at_once_is_each_record_observed(values: list[float]) -> None:
    one_by_one = exposition(values, at_once=False)
    at_once = exposition(values, at_once=True)
    assert at_once.keys() == one_by_one.keys()
    for name, value in one_by_one.items():
        if name.endswith("_sum"):  # added in another order: equal up to rounding
            assert at_once[name] == pytest.approx(value, rel=1e-9, abs=1e-9)
        else:
            assert at_once[name] == value, name


def record(offset: int, value: bytes, headers: Any, topic: str = "partners.registry") -> Any:
    return ConsumerRecord(
        topic, 2, offset, 1_700_000_000_000 + offset, 0, b"k", value, None, len(value), 0, headers
    )


def test_records_decoded_ahead_are_what_decoding_in_the_transaction_gives() -> None:
    event = PartnerRegistered(
        partner_id="p-1", name="Acme", role="sme", country="SE", region="SE312", registered_by="p-0"
    )
    good = to_message(event, event_id="e-1", source="/t", time=datetime(2026, 1, 1, tzinfo=UTC))
    records = [
        record(7, good.value, list(good.headers)),
        record(8, b"{}", [("ce_specversion", b"1.0")]),  # not a CloudEvent
        record(9, good.value, list(good.headers), topic="partners.registry--p12"),  # a copy
    ]
    items = decode_records(records)
    assert [(i.offset, i.timestamp) for i in items] == [(r.offset, r.timestamp) for r in records]
    assert all(isinstance(i, DecodedRecord) for i in items)

    # Dead-lettering only emits: no statement goes through the connection.
    ahead = Transaction(None, "partners.registry", 2)  # type: ignore[arg-type]
    now = Transaction(None, "partners.registry", 2)  # type: ignore[arg-type]
    from_items = [decode_or_dead_letter(ahead, "g", i) for i in items]
    from_records = [decode_or_dead_letter(now, "g", r) for r in records]
    assert from_items == from_records
    assert from_items[0] == decode("partners.registry", good.value, good.headers)
    assert from_items[0] is not None
    assert from_items[0].event == event
    assert from_items[1] is None
    # The refusal goes to the dead letters inside the transaction, with the same reason.
    assert [m.topic for m in ahead.emitted] == [DEAD_LETTERS]
    assert ahead.emitted == now.emitted
    reason = dict(ahead.emitted[0].headers)["dl_reason"].decode()
    assert reason == "not a CloudEvent: missing header ce_id"
