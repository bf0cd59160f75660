from __future__ import annotations

import pytest
from aiokafka.errors import UnknownTopicOrPartitionError

from marketplace.kafka import ensure_topics, make_admin, make_producer
from marketplace.settings import Settings
from schemas.topics import TOPICS, TopicSpec
from tests.integration.kafka_helpers import partition_count, unique

pytestmark = pytest.mark.integration


async def test_project_topics_exist_with_configured_partitions(settings: Settings) -> None:
    states = await ensure_topics(settings)
    assert [s.name for s in states] == [t.name for t in TOPICS]
    assert all(s.partitions == settings.topic_partitions for s in states)
    assert not any(s.created for s in states), "`marketplace up` should have created them"


async def test_ensure_topics_is_idempotent(settings: Settings) -> None:
    spec = TopicSpec(unique("idem"), key="test", purpose="test")
    first = await ensure_topics(settings, [spec], partitions=2)
    second = await ensure_topics(settings, [spec], partitions=2)
    assert [(s.created, s.partitions) for s in first] == [(True, 2)]
    assert [(s.created, s.partitions) for s in second] == [(False, 2)]
    assert await partition_count(settings, spec.name) == 2


async def test_broker_does_not_create_topics_on_first_use(settings: Settings) -> None:
    name = unique("never-created")
    producer = make_producer(settings, request_timeout_ms=3000)
    await producer.start()
    try:
        with pytest.raises(UnknownTopicOrPartitionError):
            await producer.send_and_wait(name, b"{}")
    finally:
        await producer.stop()
    admin = make_admin(settings)
    await admin.start()
    try:
        assert name not in await admin.list_topics()
    finally:
        await admin.close()
