"""The producers' partitioner: aiokafka's default choice for every key, its hash remembered."""

from __future__ import annotations

import random

from aiokafka.partitioner import DefaultPartitioner

from marketplace.kafka import partition_for


def test_every_key_lands_where_the_default_partitioner_puts_it() -> None:
    draw = random.Random(18)
    default = DefaultPartitioner()
    keys = [draw.randbytes(draw.randint(0, 40)) for _ in range(2000)]
    keys += [b"plastics", b"organics", "partner-\u00e9".encode(), b""]
    for count in (1, 3, 6, 12, 24):
        parts = list(range(count))
        for key in keys + keys:  # the second time from the remembered hash
            assert partition_for(key, parts, parts) == default(key, parts, parts), (key, count)


def test_a_keyless_record_goes_to_an_available_partition() -> None:
    seen = {partition_for(None, [0, 1, 2, 3], [1, 3]) for _ in range(200)}
    assert seen == {1, 3}
    assert partition_for(None, [0, 1], []) in {0, 1}
