from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest

from marketplace.events import EventDecodeError, decode, to_message
from schemas.listings import OfferWithdrawn
from schemas.topics import TOPICS, by_name, contract_of, copy_name


def test_topic_names_are_unique_and_kafka_legal() -> None:
    names = [t.name for t in TOPICS]
    assert len(names) == len(set(names))
    assert all(re.fullmatch(r"[a-z]+\.[a-z.]+", n) and len(n) < 250 for n in names)


def test_the_architecture_topics_are_all_defined() -> None:
    for name in (
        "market.listings",
        "market.matches",
        "logistics.jobs",
        "logistics.awards",
        "partners.notifications",
    ):
        spec = by_name(name)
        assert spec.key
        assert spec.config["cleanup.policy"] == "delete"


def test_unknown_topic_is_a_key_error() -> None:
    with pytest.raises(KeyError):
        by_name("market.nothing")


def test_a_copy_of_a_topic_carries_its_contract() -> None:
    copy = copy_name("market.listings", "p12-ab12")
    assert copy == "market.listings--p12-ab12"
    assert re.fullmatch(r"[A-Za-z0-9._-]+", copy)  # a legal Kafka topic name
    assert contract_of(copy) == "market.listings"
    assert contract_of("market.listings") == "market.listings"
    assert contract_of("market.listings--") == "market.listings--"  # no label: not a copy
    with pytest.raises(ValueError, match="cannot name a copy"):
        copy_name(copy, "again")
    with pytest.raises(ValueError, match="cannot name a copy"):
        copy_name("market.listings", "")


def test_a_copy_decodes_as_its_topic_and_an_unknown_topic_does_not() -> None:
    event = OfferWithdrawn(offer_id="l-1", owner_id="o-1", actor_id="o-1", material_code="150102")
    m = to_message(event, event_id="e-1", source="/tests", time=datetime(2026, 1, 1, tzinfo=UTC))
    assert m.topic == "market.listings"
    decoded = decode(copy_name(m.topic, "p1"), m.value, m.headers)
    assert decoded.event == event
    with pytest.raises(EventDecodeError, match="no contract for topic"):
        decode("market.listing--p1", m.value, m.headers)
