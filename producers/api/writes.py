"""The write path: decode and validate a body, publish its event, answer 202; requests with the
same Idempotency-Key, one after the other or all at once, publish once and all get that answer."""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

import msgspec
import orjson
from aiohttp import web
from aiokafka.errors import KafkaError

from marketplace import kafka, metrics
from marketplace.events import to_message
from marketplace.kafka import BROKEN_PRODUCER
from marketplace.logs import get_logger
from marketplace.secretbox import SecretKeyError, key_file
from marketplace.translate import shredding
from producers.api.bodies import unknown_fields
from producers.api.context import POOL, PRINCIPAL, PRODUCER, SETTINGS, principal
from producers.api.problems import Handler, Problem, from_validation
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
        document = msgspec.json.decode(raw)
    except msgspec.DecodeError as exc:
        raise Problem(400, f"the body is not valid JSON: {exc}", kind="malformed-json") from None
    nul = _nul_at(document, "")
    if nul is not None:
        # PostgreSQL's text and jsonb cannot hold U+0000: refused here, not by a read model later.
        raise Problem(422, "text may not contain the NUL character (U+0000)", field=nul or "body")
    unknown = unknown_fields(document, kind)
    whole = _whole_numbers(document)
    if whole is not document:
        # JSON does not tell 3 from 3.0 (nor does the document's `integer`): a number without a
        # fraction is taken where an integer is wanted, as the typed decode would not.
        raw = msgspec.json.encode(whole)
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


def _whole_numbers(value: Any) -> Any:
    """`value` with every float that has no fraction as an int; the same object when it holds
    none (a float field takes an int as it is)."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**63:
        return int(value)
    if isinstance(value, dict):
        items = {k: _whole_numbers(v) for k, v in value.items()}
        changed = any(items[k] is not v for k, v in value.items())
        return items if changed else value
    if isinstance(value, list):
        members = [_whole_numbers(v) for v in value]
        changed = any(m is not v for m, v in zip(members, value, strict=True))
        return members if changed else value
    return value


def _nul_at(value: Any, path: str) -> str | None:
    """The path of the first string (key or value) holding U+0000, or None."""
    if isinstance(value, str):
        return path if "\x00" in value else None
    if isinstance(value, dict):
        for key, item in value.items():
            inner = f"{path}.{key}" if path else str(key)
            if "\x00" in key:
                return inner
            found = _nul_at(item, inner)
            if found is not None:
                return found
    if isinstance(value, list):
        for i, item in enumerate(value):
            found = _nul_at(item, f"{path}[{i}]")
            if found is not None:
                return found
    return None


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


async def sealed(request: web.Request, event: Event) -> Event:
    """The event with its personal fields sealed with their organisation's data key (#21 item 8,
    marketplace/translate/shredding.py); 503 when the operator's key ring cannot be read, since
    they are never published in clear."""
    if not shredding.needs_sealing(event):
        return event
    try:
        ring = key_file(request.app[SETTINGS].webhook_keys_path).ring()
        async with request.app[POOL].acquire() as conn:
            return await shredding.seal_event(conn, ring, event)
    except (SecretKeyError, shredding.ShreddingError) as exc:
        log.error("data_keys_unusable", error=str(exc))
        raise Problem(
            503, "the exchange cannot seal personal data right now; retry later"
        ) from None


async def publish(request: web.Request, event: Event, *, event_id: str, subject: str) -> None:
    event = await sealed(request, event)
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
        await kafka.publish(
            producer, message.topic, message.value, key=message.key, headers=message.headers
        )
        PUBLISHED.labels(topic=message.topic).inc()
    except KafkaError as exc:
        log.error("publish_failed", topic=message.topic, error=repr(exc))
        if isinstance(exc, BROKEN_PRODUCER):
            request.app[PRODUCER].replace(producer)
        raise Problem(
            503,
            "the exchange cannot store writes right now (Kafka does not answer); retry later",
            headers={"Retry-After": "5"},
        ) from None


Write = Callable[[Ids], Awaitable[tuple[int, dict[str, Any], dict[str, str]]]]

# A reservation older than this is taken to be its holder's that died (a write takes at most
# ~15 s: 10 s for Kafka, 5 s for a consent to take effect), and the next request takes it over.
LEASE_S = 60.0
# How long a request waits for the answer of a simultaneous one with the same key, then 409.
WAIT_S = 30.0

_RESERVE = (
    "INSERT INTO idempotency_reservations AS r (partner_id, key, request_hash, holder, held_until)"
    " VALUES ($1, $2, $3, $4, now() + make_interval(secs => $5))"
    " ON CONFLICT (partner_id, key) DO UPDATE"
    " SET holder = excluded.holder, held_until = excluded.held_until"
    # Taken over only when its holder died mid-write, for the same request.
    " WHERE r.held_until < now() AND r.request_hash = excluded.request_hash"
    " RETURNING r.holder"
)
_ANSWER = (
    "SELECT request_hash, status, body, headers, held_until < now() AS expired"
    " FROM idempotency_keys WHERE partner_id = $1 AND key = $2"
)
# The headers of an answer that its replays carry too (where a 202's write will be readable).
REPLAYED_HEADERS = ("Location",)


async def idempotent(request: web.Request, write: Write) -> web.Response:
    """Runs `write` once per (partner, Idempotency-Key), however many requests carry the key at
    once; the others get its answer, with its `Location` (Idempotent-Replayed: true).

    The key is reserved in PostgreSQL before `write` runs (`idempotency_reservations`,
    infra/migrations/0025): one INSERT ... ON CONFLICT, so one request of any number holds it;
    the others poll for its answer in `idempotency_keys`, up to WAIT_S, then answer 409
    idempotency-key-in-progress. A different request with a key already used is refused 422
    idempotency-key-reused. When `write` fails, the reservation is deleted, and a retry (or a
    waiting request) runs it again. `idempotency_keys` holds finished answers only, so an API
    process of an older version (which replays any row it finds there) never reads a request
    still in progress."""
    status, body, headers = await idempotent_answer(
        request, write, request.headers.get("Idempotency-Key")
    )
    return _answer(status, body, headers)


@web.middleware
async def replay_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """A retried write whose first answer is stored gets that answer before any check runs: a
    command's checks see the state its first run changed (an answer already given, a document
    already approved) and would refuse the retry 409 instead of replaying its 202. Only a
    finished answer to the same request (method, path and body) is replayed here; anything else
    (no answer yet, another request with the key, no such route) goes on to the handler, whose
    `idempotent` does the rest for the routes that keep answers. A multipart upload is always
    left to its handler, which reads it as a stream (its answer is keyed without the body's
    bytes, which only the handler has read)."""
    key = request.headers.get("Idempotency-Key")
    if (
        key is None
        or not 1 <= len(key) <= 200
        or request.method not in ("POST", "PUT", "PATCH", "DELETE")
        or PRINCIPAL not in request
        or request.match_info.http_exception is not None
        or request.content_type.startswith("multipart/")
    ):
        return await handler(request)
    partner_id = principal(request).partner_id
    row = await request.app[POOL].fetchrow(_ANSWER, partner_id, key)
    if row is None or row["status"] is None:
        # `idempotent_answer` starts from this read instead of making it again.
        request[_FIRST_READ] = (partner_id, key, row)
        return await handler(request)
    fingerprint = await _fingerprint(request)
    if bytes(row["request_hash"]) != fingerprint:
        return await handler(request)
    return _answer(*_replay(row, fingerprint))


# What `replay_middleware` read of a request's key: (partner, key, the row or None).
_FIRST_READ = web.RequestKey("idempotency_first_read", tuple)


async def _fingerprint(request: web.Request) -> bytes:
    """What tells requests with one key apart: the method, the path and the body."""
    body = await request.read()
    parts = [request.method.encode(), request.path.encode(), body]
    return hashlib.sha256(b"\n".join(parts)).digest()


def _reused() -> Problem:
    return Problem(
        422,
        "this Idempotency-Key was used for a different request",
        field="Idempotency-Key",
        kind="idempotency-key-reused",
    )


def _replay(row: Any, fingerprint: bytes) -> tuple[int, bytes, dict[str, str]]:
    """A stored answer as its replay, or 422 when it answered a different request."""
    if bytes(row["request_hash"]) != fingerprint:
        raise _reused()
    headers: dict[str, str] = {"Idempotent-Replayed": "true"}
    if row["headers"] is not None:
        kept = orjson.loads(row["headers"])
        headers |= {k: str(kept[k]) for k in REPLAYED_HEADERS if k in kept}
    return row["status"], bytes(row["body"]), headers


async def idempotent_answer(
    request: web.Request, write: Write, key: str | None
) -> tuple[int, bytes, dict[str, str]]:
    """`idempotent`'s answer as (status, JSON body, headers): the pages use it with the key
    their form carries (a double-submitted form posts once)."""
    who = principal(request)
    if key is not None and not 1 <= len(key) <= 200:
        raise Problem(400, "Idempotency-Key must be 1 to 200 characters", field="Idempotency-Key")
    if key is None:
        status, answer, headers = await write(Ids(who.partner_id, None))
        return status, orjson.dumps(answer), headers
    fingerprint = await _fingerprint(request)
    pool = request.app[POOL]
    holder = uuid.uuid4()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT_S
    pause = 0.02
    first = request.pop(_FIRST_READ, None)
    while True:
        if first is not None and first[:2] == (who.partner_id, key):
            row = first[2]
        else:
            row = await pool.fetchrow(_ANSWER, who.partner_id, key)
        first = None
        if row is not None and row["status"] is not None:
            return _replay(row, fingerprint)
        if row is not None:
            # A reservation as versions 0016 to 0024 made it, in this table, during a rolling
            # upgrade: its holder is at work (wait for it), or died (let it go, then reserve).
            if bytes(row["request_hash"]) != fingerprint:
                raise _reused()
            if row["expired"]:
                await pool.execute(
                    "DELETE FROM idempotency_keys WHERE partner_id = $1 AND key = $2"
                    " AND status IS NULL AND held_until < now()",
                    who.partner_id,
                    key,
                )
                continue
        elif await pool.fetchval(_RESERVE, who.partner_id, key, fingerprint, holder, LEASE_S):
            # The holder before may have stored its answer between the read above and this
            # reservation: then that answer stands, and nothing runs again.
            row = await pool.fetchrow(_ANSWER, who.partner_id, key)
            if row is None or row["status"] is None:
                break
            await _release(pool, who.partner_id, key, holder)
            return _replay(row, fingerprint)
        else:
            held = await pool.fetchval(
                "SELECT request_hash FROM idempotency_reservations"
                " WHERE partner_id = $1 AND key = $2",
                who.partner_id,
                key,
            )
            if held is None:
                continue  # its holder finished or failed just now: read or reserve again
            if bytes(held) != fingerprint:
                raise _reused()
        if loop.time() >= deadline:
            raise Problem(
                409,
                "a request with this Idempotency-Key is still being answered; retry shortly",
                field="Idempotency-Key",
                headers={"Retry-After": "1"},
                kind="idempotency-key-in-progress",
            )
        await asyncio.sleep(pause)
        pause = min(pause * 2, 0.2)

    try:
        status, answer, headers = await write(Ids(who.partner_id, key))
    except BaseException:
        # Nothing to replay: let the key go, so that a retry runs the write again.
        try:
            await _release(pool, who.partner_id, key, holder)
        except Exception as exc:  # noqa: BLE001 - the write's failure is the one to report
            log.warning("idempotency_release_failed", error=repr(exc))
        raise
    encoded = orjson.dumps(answer)
    replayed = {k: headers[k] for k in REPLAYED_HEADERS if k in headers}
    async with pool.acquire() as conn, conn.transaction():
        # Over a dead 0016-era reservation of this request, if one is still there.
        await conn.execute(
            "INSERT INTO idempotency_keys AS k (partner_id, key, request_hash, status, body,"
            " headers) VALUES ($1, $2, $3, $4, $5, $6::jsonb)"
            " ON CONFLICT (partner_id, key) DO UPDATE SET status = excluded.status,"
            " body = excluded.body, headers = excluded.headers, holder = NULL, held_until = NULL"
            " WHERE k.status IS NULL AND k.request_hash = excluded.request_hash",
            who.partner_id,
            key,
            fingerprint,
            status,
            encoded,
            orjson.dumps(replayed).decode(),
        )
        released = await _release(conn, who.partner_id, key, holder)
    if released != "DELETE 1":
        log.warning("idempotency_lease_lost", partner_id=who.partner_id, lease_s=LEASE_S)
    return status, encoded, headers


async def _release(conn: Any, partner_id: str, key: str, holder: uuid.UUID) -> str:
    """Deletes the reservation `holder` holds; the status tag says whether it still held it."""
    done: str = await conn.execute(
        "DELETE FROM idempotency_reservations WHERE partner_id = $1 AND key = $2 AND holder = $3",
        partner_id,
        key,
        holder,
    )
    return done


def _answer(status: int, body: bytes, headers: dict[str, str]) -> web.Response:
    return web.Response(status=status, body=body, content_type="application/json", headers=headers)
