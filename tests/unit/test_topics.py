from __future__ import annotations

import re

import pytest

from schemas.topics import TOPICS, by_name


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
