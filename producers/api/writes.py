"""The write path: decode and validate a body, publish its event, answer 202; retries with the
same Idempotency-Key get the first answer again and publish nothing new."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

import msgspec
import orjson
from aiohttp import web
from aiokafka.errors import KafkaError

from marketplace import metrics
from marketplace.events import to_message
from marketplace.kafka import BROKEN_PRODUCER
from marketplace.logs import get_logger
from producers.api.bodies import unknown_fields
from producers.api.context import POOL, PRODUCER, principal
from producers.api.problems import Problem, from_validation
from schemas.base import Event

log = get_logger(__name__)
T = TypeVar("T")

# Namespace for ids derived from (partner, Idempotency-Key): a retry re-creates the same ids.
_IDEMPOTENT = uuid.UUID("0f1d7e4a-6c0b-4e55-9d0b-8a4b3f1c2e77")


async def read_body(request: web.Request, kind: type[T], *, optional: bool = False) -> T:
    """The body as `kind`, or a problem: 400 for malformed JSON, 422 naming every unknown field
    at any depth (see producers/api/bodies.py) and the first field of a wrong type or value."""
    raw = await request.read()
    if not raw and optional:
        raw = b"{}"
    if request.content_type != "application/json" and raw and not optional:
        raise Problem(415, "send the body as application/json")
    try:
        unknown = unknown_fields(msgspec.json.decode(raw), kind)
    except msgspec.DecodeError as exc:
        raise Problem(400, f"the body is not valid JSON: {exc}", kind="malformed-json") from None
    try:
        value = msgspec.json.decode(raw, type=kind)
    except msgspec.ValidationError as exc:
        invalid = from_validation(exc)
        if not unknown:
            raise invalid from None
        # A top-level unknown field is also the typed decode's complaint: named once.
        wrong = [e for e in invalid.errors if "unknown field" not in e[1]]
        raise _unknown_problem(unknown, wrong) from None
    if unknown:
        raise _unknown_problem(unknown, [])
    return value


def _unknown_problem(unknown: list[tuple[str, str]], wrong: list[tuple[str, str]]) -> Problem:
    names = ", ".join(field for field, _ in unknown)
    return Problem(
        422,
        f"the body has fields the API does not know (misspelt?): {names}",
        errors=[*unknown, *wrong],
        kind="validation",
    )


class Ids:
    """Ids for one write: random, or derived from the Idempotency-Key so a retry repeats them."""

    def __init__(self, partner_id: str, idempotency_key: str | None) -> None:
        self._seed = f"{partner_id}/{idempotency_key}" if idempotency_key else None

    def make(self, purpose: str) -> str:
        if self._seed is None:
            return str(uuid.uuid4())
        return str(uuid.uuid5(_IDEMPOTENT, f"{self._seed}/{purpose}"))


PUBLISHED = metrics.counter(
    "marketplace_api_events_published_total", "events the API published", ("topic",)
)


async def publish(request: web.Request, event: Event, *, event_id: str, subject: str) -> None:
    message = to_message(
        event, event_id=event_id, source="/api", time=datetime.now(UTC), subject=subject
    )
    producer = request.app[PRODUCER].producer
    if producer is None:
        raise Problem(
            503,
            "the exchange is connecting to Kafka and cannot store writes yet; retry shortly",
            headers={"Retry-After": "2"},
        )
    try:
        await producer.send_and_wait(
            message.topic, message.value, key=message.key, headers=list(message.headers)
        )
        PUBLISHED.labels(topic=message.topic).inc()
    except KafkaError as exc:
        log.error("publish_failed", topic=message.topic, error=repr(exc))
        if isinstance(exc, BROKEN_PRODUCER):
            request.app[PRODUCER].replace()
        raise Problem(
            503,
            "the exchange cannot store writes right now (Kafka does not answer); retry later",
            headers={"Retry-After": "5"},
        ) from None


Write = Callable[[Ids], Awaitable[tuple[int, dict[str, Any], dict[str, str]]]]


async def idempotent(request: web.Request, write: Write) -> web.Response:
    """Runs `write` once per (partner, Idempotency-Key); replays the stored answer after that."""
    who = principal(request)
    key = request.headers.get("Idempotency-Key")
    if key is not None and not 1 <= len(key) <= 200:
        raise Problem(400, "Idempotency-Key must be 1 to 200 characters", field="Idempotency-Key")
    body = await request.read()
    fingerprint = hashlib.sha256(
        b"\n".join([request.method.encode(), request.path.encode(), body])
    ).digest()
    pool = request.app[POOL]
    if key is not None:
        row = await pool.fetchrow(
            "SELECT request_hash, status, body FROM idempotency_keys"
            " WHERE partner_id = $1 AND key = $2",
            who.partner_id,
            key,
        )
        if row is not None:
            if bytes(row["request_hash"]) != fingerprint:
                raise Problem(
                    422,
                    "this Idempotency-Key was used for a different request",
                    field="Idempotency-Key",
                    kind="idempotency-key-reused",
                )
            return web.Response(
                status=row["status"],
                body=bytes(row["body"]),
                content_type="application/json",
                headers={"Idempotent-Replayed": "true"},
            )
    status, answer, headers = await write(Ids(who.partner_id, key))
    encoded = orjson.dumps(answer)
    if key is not None:
        await pool.execute(
            "INSERT INTO idempotency_keys (partner_id, key, request_hash, status, body)"
            " VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
            who.partner_id,
            key,
            fingerprint,
            status,
            encoded,
        )
    return web.Response(
        status=status, body=encoded, content_type="application/json", headers=headers
    )
