"""Dead letters for operators: a poison record refused by a consumer is listed with its reason and
origin, shown byte for byte, and can be replayed to its topic with its key and headers."""

from __future__ import annotations

import asyncio
import os
import uuid

import pytest

from consumers.projector import TOPICS, Projector
from marketplace.kafka import make_producer
from marketplace.runtime.service import run_consumer
from marketplace.settings import Settings
from tests.integration.api_helpers import eventually
from tests.integration.kafka_helpers import end_offsets, read_since, start_at_session_start
from tests.integration.test_audit import run_cli

pytestmark = pytest.mark.integration


async def test_a_poison_record_can_be_listed_shown_and_replayed(settings: Settings) -> None:
    group = f"test.dlq.{uuid.uuid4().hex[:8]}"
    await start_at_session_start(settings, group, TOPICS)
    marker = uuid.uuid4().hex
    poison = f'{{"not json at all {marker}'.encode()
    key = f"p-{marker}".encode()
    headers = [("ce_id", marker.encode()), ("ce_type", b"partners.partner.registered.v1")]
    producer = make_producer(settings)
    await producer.start()
    try:
        sent = await producer.send_and_wait("partners.registry", poison, key=key, headers=headers)
    finally:
        await producer.stop()
    stop = asyncio.Event()
    consumer = asyncio.create_task(
        run_consumer(settings, group_id=group, topics=TOPICS, processor=Projector(group), stop=stop)
    )
    env = dict(os.environ)
    # A new group reads the topic from its start, poison left by earlier runs included.
    origin = f"partners.registry/{sent.partition}@{sent.offset} "
    try:

        async def listed() -> bool:
            out = await asyncio.to_thread(run_cli, ["dlq", "list", "--group", group], env)
            return origin in out.stdout

        await eventually(listed, 90)
    finally:
        stop.set()
        await asyncio.wait_for(consumer, 30)

    out = await asyncio.to_thread(run_cli, ["dlq", "list", "--group", group], env)
    (line,) = [x for x in out.stdout.splitlines() if origin in x]
    letter_id = line.split()[0]
    assert group in line
    assert "not a CloudEvent" in line  # its headers lack the required attributes

    shown = await asyncio.to_thread(run_cli, ["dlq", "show", letter_id], env)
    assert shown.returncode == 0
    assert f"value:   {poison.decode()}" in shown.stdout
    assert f"key:     p-{marker}" in shown.stdout
    assert f"header:  ce_id={marker}" in shown.stdout

    before = await end_offsets(settings, "partners.registry")
    replayed = await asyncio.to_thread(run_cli, ["dlq", "replay", letter_id], env)
    assert replayed.returncode == 0, replayed.stderr
    again = [r for r in await read_since(settings, "partners.registry", before) if r.key == key]
    assert len(again) == 1
    assert again[0].value == poison
    assert ("ce_id", marker.encode()) in list(again[0].headers)

    missing = await asyncio.to_thread(run_cli, ["dlq", "show", "0:999999999"], env)
    assert missing.returncode == 1
    bad = await asyncio.to_thread(run_cli, ["dlq", "show", "nonsense"], env)
    assert bad.returncode == 2
    assert "PARTITION:OFFSET" in bad.stderr
