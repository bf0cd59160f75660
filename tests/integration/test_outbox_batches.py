"""The outbox publishes keyed messages as one record batch per topic and partition
(`marketplace.runtime.outbox.send_batched`): each key lands on the partition the producer's own
`send` picks for it, in order, with its headers, also when a partition's messages fill more
than one batch; keyless messages still go through `send`."""

from __future__ import annotations

import pytest

from marketplace.kafka import make_producer
from marketplace.runtime.outbox import OutboxMessage, send_batched
from marketplace.settings import Settings
from tests.integration.kafka_helpers import make_topics, read_all, unique

pytestmark = pytest.mark.integration


def messages(topic: str) -> list[OutboxMessage]:
    out = []
    for n in range(60):
        key = f"key-{n % 7}".encode()
        # Every fifth message is 6 kB, so some partitions' messages fill several batches.
        value = f'{{"n": {n}}}'.encode() + (b" " * 6000 if n % 5 == 0 else b"")
        out.append(OutboxMessage(topic, key, value, (("ce_id", f"id-{n}".encode()),)))
    out.append(OutboxMessage(topic, None, b'{"n": "keyless-1"}', ()))
    out.append(OutboxMessage(topic, None, b'{"n": "keyless-2"}', ()))
    return out


async def test_batched_publishing_lands_where_send_would_in_order(settings: Settings) -> None:
    batched, plain = unique("outbox-batched"), unique("outbox-plain")
    await make_topics(settings, batched, plain, partitions=6)
    producer = make_producer(settings)
    await producer.start()
    try:
        futures = await send_batched(producer, messages(batched))
        # Fewer acknowledgements than messages: batches, not one future each.
        assert 2 + 6 <= len(futures) < 62
        for future in futures:
            await future
        for m in messages(plain):
            await (await producer.send(plain, m.value, key=m.key, headers=list(m.headers)))
    finally:
        await producer.stop()
    got, expected = await read_all(settings, batched), await read_all(settings, plain)
    assert len(got) == len(expected) == 62
    keyed = [r for r in got if r.key is not None]
    # Each key on the partition `send` chose for it.
    assert {(r.key, r.partition) for r in keyed} == {
        (r.key, r.partition) for r in expected if r.key is not None
    }
    # Each key's messages in the order given, with their headers.
    for k in range(7):
        key = f"key-{k}".encode()
        mine = sorted((r for r in keyed if r.key == key), key=lambda r: r.offset)
        numbers = [int(r.value[: r.value.index(b"}")].split(b":")[1]) for r in mine]
        assert numbers == [n for n in range(60) if n % 7 == k]
        assert [dict(r.headers)["ce_id"] for r in mine] == [f"id-{n}".encode() for n in numbers]
    assert sorted(r.value for r in got if r.key is None) == [
        b'{"n": "keyless-1"}',
        b'{"n": "keyless-2"}',
    ]
