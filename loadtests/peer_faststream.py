"""The projector's job as a plain FastStream subscriber: the peer that issue #18 (target 4) measures
our exactly-once runtime against, side by side in `loadtests.bench_consumers --peer`.

    python -m loadtests.peer_faststream GROUP [--mode message|batch|default]

What a Python team would write with FastStream (faststream[kafka], on aiokafka): one subscriber
on the projector's six topics in consumer group GROUP, FastStream's at-least-once mode
(`AckPolicy.ACK`: the offsets are committed to Kafka after the handler returns, none before),
and the read-model rows written to PostgreSQL in one transaction:
- per message (the default, FastStream's plain handler): a transaction and an offset commit for
  every record;
- per batch (`--mode batch`, FastStream's batch subscriber): a transaction and an offset commit
  for up to `MARKETPLACE_CONSUMER_MAX_BATCH` records;
- FastStream's default (`--mode default`, `AckPolicy.ACK_FIRST`): a transaction per message and
  the offsets committed by aiokafka's timer every 5 s, whatever the handlers did (not
  at-least-once: a crash may lose the message in hand; measured because it is what a team gets
  without choosing).

The rows are the projector's own (`consumers.projector.project`, the same statements), so both
write the same read model by construction and the benchmark compares the rows they leave. What
differs is the runtime: no offset table, no outbox, no fence against a zombie instance; after a
crash the records since the last commit are applied again (harmless for these idempotent upserts,
not for effects in general, which is why the exchange does not run this way). The Kafka client
settings are the consumers' (fetch wait, batch size, isolation level, session timeout), so the
comparison is of the runtimes, not of the fetch settings.

Settings come from the environment (the benchmark points it at a scratch database); the group's
starting offsets are committed to Kafka by the benchmark before it starts. On SIGTERM it stops
and prints one JSON line: records applied, transactions, its settings."""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
from typing import Any

import asyncpg
from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from faststream.message import StreamMessage

from consumers.projector import TOPICS, project
from marketplace.events import Decoded, EventDecodeError, decode
from marketplace.logs import configure_logging, get_logger
from marketplace.runtime import loop as event_loop
from marketplace.settings import Settings

log = get_logger(__name__)


MODES = ("message", "batch", "default")


def subscriber_options(settings: Settings, mode: str) -> dict[str, Any]:
    """The subscriber's Kafka settings: the exchange's consumers' own, in FastStream's names."""
    if mode not in MODES:
        raise ValueError(f"mode: {mode!r} is not one of {', '.join(MODES)}")
    options: dict[str, Any] = {
        "ack_policy": AckPolicy.ACK_FIRST if mode == "default" else AckPolicy.ACK,
        "auto_offset_reset": "earliest",
        "fetch_max_wait_ms": settings.consumer_fetch_max_wait_ms,
        "fetch_min_bytes": settings.consumer_fetch_min_bytes,
        "max_poll_records": settings.consumer_max_batch,
        "session_timeout_ms": settings.consumer_session_timeout_ms,
        "heartbeat_interval_ms": max(1000, settings.consumer_session_timeout_ms // 5),
        "isolation_level": "read_committed",
    }
    if mode == "batch":
        options |= {
            "batch": True,
            "max_records": settings.consumer_max_batch,
            "batch_timeout_ms": settings.consumer_poll_ms,
        }
    return options


def _decoded(records: tuple[Any, ...]) -> list[Decoded]:
    out = []
    for record in records:
        try:
            out.append(decode(record.topic, record.value, record.headers))
        except EventDecodeError as exc:  # the peer has no dead-letter topic: it logs and goes on
            log.warning("undecodable", topic=record.topic, offset=record.offset, reason=str(exc))
    return out


async def _decode_one(message: StreamMessage[Any]) -> list[Decoded]:
    return _decoded((message.raw_message,))


async def _decode_batch(message: StreamMessage[Any]) -> list[Decoded]:
    return _decoded(tuple(message.raw_message))


async def serve(settings: Settings, group: str, mode: str) -> dict[str, Any]:
    broker = KafkaBroker(settings.kafka_servers, apply_types=False, logger=None)
    conn: asyncpg.Connection = await asyncpg.connect(settings.dsn)
    counts = {"records": 0, "transactions": 0}
    options = subscriber_options(settings, mode)

    async def handle(events: list[Decoded]) -> None:
        async with conn.transaction():
            await project(conn, events)
        counts["records"] += len(events)
        counts["transactions"] += 1

    broker.subscriber(
        *TOPICS,
        group_id=group,
        decoder=_decode_batch if mode == "batch" else _decode_one,
        **options,
    )(handle)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await broker.start()
        await stop.wait()
    finally:
        await broker.stop()
        await conn.close()
    shown = {k: (v.value if isinstance(v, AckPolicy) else v) for k, v in options.items()}
    return {**counts, "mode": mode, "settings": shown}


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("group")
    parser.add_argument("--mode", choices=MODES, default="message")
    args = parser.parse_args()
    settings = Settings.from_env()
    configure_logging(settings)
    said = event_loop.run(serve(settings, args.group, args.mode), settings)
    print(json.dumps(said), flush=True)


if __name__ == "__main__":
    main()
