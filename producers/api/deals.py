"""The deal room of a match (#22): messages with attachments between the seller, the buyer, the
carrier once awarded, and the facilitators of a consenting SME; everyone else gets 404.

    POST /v1/matches/{id}/messages                        text (+ attachments): 202
    GET  /v1/matches/{id}/messages                        the room: messages, receipts
    GET  /v1/matches/{id}/messages/{message_id}/attachments/{attachment_id}
    POST /v1/matches/{id}/messages/{message_id}/read      a read receipt: 202

A message's text and its attachments are personal data (decision 12): they are stored here, in
`deal_texts` and `deal_files`, in the request that posts them and before the event is published;
the event (`market.deal.message_posted.v1` on `market.deals`) carries only their SHA-256 and the
attachments' name, media type and size. Reads list what the log says was posted (the deals
consumer's read model) and check the stored content against the event's SHA-256: a text that no
longer matches is shown as altered, an attachment that no longer matches is refused (409).

Attachments: at most `MAX_FILES` of at most `MAX_FILE_BYTES` each, JPEG, PNG or PDF as their
first bytes say (the name and the declared type are not trusted), each passed to the `Scanner`
(`NoScanner` by default: nothing is scanned)."""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from typing import Annotated, Any, Protocol
from urllib.parse import quote

import msgspec
import orjson
from aiohttp import BodyPartReader, web
from aiohttp.http_exceptions import HttpProcessingError

from producers.api.auth import require_role
from producers.api.context import POOL, principal
from producers.api.facilitators import has_consent
from producers.api.problems import Problem
from producers.api.writes import Ids, publish, read_body
from schemas.deals import Attachment, MediaType, MessagePosted, MessageRead, Side

MAX_TEXT = 4000
MAX_FILES = 3
MAX_FILE_BYTES = 5 * 1024 * 1024
# A whole upload: the attachments, the text and the multipart framing.
MAX_BODY_BYTES = MAX_FILES * MAX_FILE_BYTES + 256 * 1024
MEDIA_TYPES: tuple[MediaType, ...] = ("image/jpeg", "image/png", "application/pdf")
# The roles that may have a place in a room (the rest: 403, as on every route of other roles).
ROLES = ("sme", "logistics", "facilitator")
_RECEIPT = uuid.UUID("5b7c1e7e-2f55-4d1b-a0f4-3f0e6f0b9d21")


class Scanner(Protocol):
    """A virus scanner behind one method. `scan` answers None when the file is clean, else the
    reason it is refused (shown to the sender next to the attachment)."""

    async def scan(self, name: str, media_type: str, content: bytes) -> str | None: ...


class NoScanner:
    """The default: scans nothing and lets every file through. An operator that has a scanner
    whose signatures are kept current plugs it in with `SCANNER` (see docs/smes/deals.md)."""

    async def scan(self, name: str, media_type: str, content: bytes) -> str | None:  # noqa: ARG002
        return None


SCANNER = web.AppKey("deal_scanner", Scanner)


def sniff(content: bytes) -> MediaType | None:
    """The media type the first bytes say, among the accepted ones; None for anything else."""
    if content.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if content.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if content.startswith(b"%PDF-"):
        return "application/pdf"
    return None


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True, slots=True)
class Upload:
    name: str
    # The file's first bytes (all of them, when it is within the limit).
    content: bytes
    size: int


@dataclass(frozen=True, slots=True)
class Room:
    match_id: str
    seller_id: str
    buyer_id: str
    carrier_id: str | None
    side: Side
    # A facilitator's: the consenting SME it acts for.
    on_behalf_of: str | None
    # One delivery period of a standing agreement, whose documents and invoices these are
    # (producers/api/periods.py); None for the match's own.
    delivery_id: str | None = None

    @property
    def subject(self) -> str:
        """What the documents and invoices belong to: the match or one period's delivery."""
        return self.delivery_id or self.match_id


async def room_of(request: web.Request, match_id: str) -> Room:
    """The caller's place in the room of match `match_id`, or 404 (as for no match at all)."""
    who = principal(request)
    pool = request.app[POOL]
    row = await pool.fetchrow(
        "SELECT match_id, seller_id, buyer_id FROM matches WHERE match_id = $1", match_id
    )
    missing = Problem(404, f"no deal room of match {match_id} of yours", kind="not-found")
    if row is None:
        raise missing
    carriers = [
        r["winner_id"]
        for r in await pool.fetch(
            "SELECT winner_id FROM jobs WHERE match_id = $1 AND status = 'awarded'"
            " AND winner_id IS NOT NULL ORDER BY created_at DESC",
            match_id,
        )
    ]
    carrier = carriers[0] if carriers else None
    seller, buyer = row["seller_id"], row["buyer_id"]
    side: Side | None = None
    behalf: str | None = None
    if who.role == "sme" and who.partner_id == seller:
        side = "seller"
    elif who.role == "sme" and who.partner_id == buyer:
        side = "buyer"
    elif who.role == "logistics" and who.partner_id in carriers:
        side = "carrier"
        carrier = who.partner_id
    elif who.role == "facilitator":
        for sme in (seller, buyer):
            if await has_consent(request, sme, who.partner_id):
                side, behalf = "facilitator", sme
                break
    if side is None:
        raise missing
    return Room(match_id, seller, buyer, carrier, side, behalf)


async def uploads(request: web.Request) -> tuple[str, list[Upload], dict[str, str]]:
    """The text, the files and the other fields of a posted message: multipart/form-data (field
    `text`, files `attachment`) or application/json (`{"text": ...}`, no files)."""
    if request.content_type == "application/json":
        return (await read_body(request, MessageIn)).text, [], {}
    if request.content_type != "multipart/form-data":
        raise Problem(415, "send the message as multipart/form-data or application/json")
    # Read part by part, as it arrives: nothing is spooled to disk, a file is kept up to one
    # byte past its limit (to say it is too large), and the whole body is bounded.
    too_large = Problem(
        413,
        f"the message is larger than {MAX_FILES} attachments of"
        f" {MAX_FILE_BYTES // (1024 * 1024)} MB each",
        field="attachments",
    )
    try:
        return await _parts(request, too_large)
    except (ValueError, AssertionError, KeyError, HttpProcessingError) as exc:
        # aiohttp's reader on a body that is not multipart as its header says (no boundary, a
        # part without headers or with control characters in them, a truncated body).
        reason = exc.message if isinstance(exc, HttpProcessingError) else str(exc)
        raise Problem(
            400,
            f"the body is not valid multipart/form-data: {reason[:200]!r}",
            kind="malformed-body",
        ) from None


async def _parts(
    request: web.Request, too_large: Problem
) -> tuple[str, list[Upload], dict[str, str]]:
    text = ""
    fields: dict[str, str] = {}
    files: list[Upload] = []
    total = 0
    reader = await request.multipart()
    while (part := await reader.next()) is not None:
        if not isinstance(part, BodyPartReader):
            raise Problem(422, "a nested multipart body is not accepted", field="body")
        kept = bytearray()
        size = 0
        # A part named `attachment` is a file even without a filename (the document's array of
        # binary strings): its content is judged as a file's, never ignored as another field.
        is_file = part.filename is not None or part.name == "attachment"
        limit = MAX_FILE_BYTES + 1 if is_file else _FIELD_BYTES
        while chunk := await part.read_chunk(65536):
            size += len(chunk)
            total += len(chunk)
            if total > MAX_BODY_BYTES:
                raise too_large
            if len(kept) < limit:
                kept.extend(chunk[: limit - len(kept)])
        if is_file:
            if part.name == "attachment" and (size or part.filename):
                files.append(Upload(part.filename or "attachment", bytes(kept), size))
            continue
        value = kept.decode(part.get_charset("utf-8"), errors="replace")
        if part.name == "text":
            # A field over its limit is counted as longer than any text may be.
            text = value if size <= _FIELD_BYTES else value + "x" * MAX_TEXT
        elif part.name:
            fields[part.name] = value
    return text, files, fields


# A form field other than a file: the text (at most MAX_TEXT characters of up to 4 bytes), a token.
_FIELD_BYTES = 4 * MAX_TEXT + 1024


# The API document's example of a message (the fuzzer posts it to a room it was given).
TEXT_EXAMPLE = "Can you load on Tuesday at 8:00?"


class MessageIn(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    text: Annotated[str, msgspec.Meta(max_length=MAX_TEXT, examples=[TEXT_EXAMPLE])] = ""


async def checked(
    request: web.Request, text: str, uploads: list[Upload]
) -> list[tuple[Upload, MediaType]]:
    """The uploads with their media types, or a 422 naming every field that is refused. The
    problem's type is its first error's: `validation` for what the API document's schema says
    (the text's length, the number of files), `attachment-refused` for a file refused by its
    content, `unprocessable-content` for the rest (no text and no file, a NUL character)."""
    errors: list[tuple[str, str]] = []
    kinds: list[str] = []

    def refuse(field: str, reason: str, kind: str) -> None:
        errors.append((field, reason))
        kinds.append(kind)

    if "\x00" in text:
        refuse("text", "text may not contain the NUL character (U+0000)", "unprocessable-content")
    if len(text) > MAX_TEXT:
        refuse("text", f"the text is longer than {MAX_TEXT} characters ({len(text)})", "validation")
    if not text.strip() and not uploads:
        refuse("text", "write a message or attach a file", "unprocessable-content")
    if len(uploads) > MAX_FILES:
        refuse("attachments", f"at most {MAX_FILES} attachments per message", "validation")
    scanner = request.app.get(SCANNER) or NoScanner()
    typed: list[tuple[Upload, MediaType]] = []
    for i, upload in enumerate(uploads[:MAX_FILES]):
        field = f"attachments[{i}]"
        kind = sniff(upload.content)
        refused = "attachment-refused"
        if not upload.size:
            refuse(field, f"{upload.name} is empty", refused)
        elif upload.size > MAX_FILE_BYTES:
            refuse(
                field, f"{upload.name} is larger than {MAX_FILE_BYTES // (1024 * 1024)} MB", refused
            )
        elif kind is None:
            refuse(field, f"{upload.name} is not a JPEG, PNG or PDF file (by its content)", refused)
        elif len(upload.name) > 200 or "\x00" in upload.name:
            refuse(field, "the file name is longer than 200 characters", refused)
        else:
            reason = await scanner.scan(upload.name, kind, upload.content)
            if reason is not None:
                refuse(field, f"{upload.name} was refused by the virus scanner: {reason}", refused)
            else:
                typed.append((upload, kind))
    if errors:
        raise Problem(422, errors[0][1], errors=errors, kind=kinds[0])
    return typed


async def post_command(
    request: web.Request, room: Room, text: str, uploads: list[Upload], key: str | None
) -> dict[str, Any]:
    """Stores a message's content and publishes its event, for the API and the pages alike.
    With an Idempotency-Key a retry publishes the same event (same ids) once more; the consumer
    keeps one message per id. A key used for another message is refused."""
    who = principal(request)
    typed = await checked(request, text, uploads)
    if key is not None and not 1 <= len(key) <= 200:
        raise Problem(400, "Idempotency-Key must be 1 to 200 characters", field="Idempotency-Key")
    ids = Ids(who.partner_id, key)
    message_id, event_id = ids.make("message"), ids.make("event")
    text_sha = sha256(text.encode())
    attachments = tuple(
        Attachment(
            attachment_id=ids.make(f"attachment/{i}"),
            name=upload.name,
            media_type=kind,
            size=len(upload.content),
            sha256=sha256(upload.content),
        )
        for i, (upload, kind) in enumerate(typed)
    )
    pool = request.app[POOL]
    async with pool.acquire() as conn, conn.transaction():
        stored = await conn.fetchval(
            "SELECT sha256 FROM deal_texts WHERE message_id = $1", message_id
        )
        if stored is not None and stored != text_sha:
            raise Problem(
                422,
                "this Idempotency-Key was used for a different message",
                field="Idempotency-Key",
                kind="idempotency-key-reused",
            )
        await conn.execute(
            "INSERT INTO deal_texts (message_id, match_id, author_id, person_id, body, sha256)"
            " VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (message_id) DO NOTHING",
            message_id,
            room.match_id,
            who.partner_id,
            who.person_id,
            text,
            text_sha,
        )
        for i, ((upload, _kind), meta) in enumerate(zip(typed, attachments, strict=True)):
            await conn.execute(
                "INSERT INTO deal_files (attachment_id, message_id, match_id, position, name,"
                " media_type, size, sha256, content) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
                " ON CONFLICT (attachment_id) DO NOTHING",
                meta.attachment_id,
                message_id,
                room.match_id,
                i,
                meta.name,
                meta.media_type,
                meta.size,
                meta.sha256,
                upload.content,
            )
    event = MessagePosted(
        message_id=message_id,
        match_id=room.match_id,
        author_id=who.partner_id,
        side=room.side,
        on_behalf_of=room.on_behalf_of,
        person_id=who.person_id,
        text_sha256=text_sha,
        text_length=len(text),
        attachments=attachments,
        seller_id=room.seller_id,
        buyer_id=room.buyer_id,
        carrier_id=room.carrier_id,
    )
    await publish(request, event, event_id=event_id, subject=room.match_id)
    return {
        "status": "accepted",
        "event_id": event_id,
        "message_id": message_id,
        "match_id": room.match_id,
        "attachment_ids": [a.attachment_id for a in attachments],
    }


async def room_json(request: web.Request, room: Room) -> dict[str, Any]:
    """The room as the log says: every message with its text checked against its SHA-256 (None
    when erased or altered, with `text_status` saying which), its attachments, and who has
    read it."""
    pool = request.app[POOL]
    rows = await pool.fetch(
        "SELECT m.seq, m.message_id, m.author_id, m.side, m.on_behalf_of, m.person_id,"
        " m.text_sha256, m.attachments, m.posted_at, t.body,"
        " coalesce((SELECT jsonb_object_agg(r.partner_id, r.read_at) FROM deal_receipts r"
        "  WHERE r.message_id = m.message_id), '{}'::jsonb) AS receipts"
        " FROM deal_messages m LEFT JOIN deal_texts t ON t.message_id = m.message_id"
        " WHERE m.match_id = $1 ORDER BY m.seq",
        room.match_id,
    )
    base = f"/v1/matches/{room.match_id}/messages"
    messages = []
    for r in rows:
        body: str | None = r["body"]
        if body is None:
            status = "erased"
        elif sha256(body.encode()) != r["text_sha256"]:
            status, body = "altered", None
        else:
            status = "ok"
        files = orjson.loads(r["attachments"])
        for f in files:
            f["href"] = f"{base}/{r['message_id']}/attachments/{f['attachment_id']}"
        messages.append(
            {
                "message_id": r["message_id"],
                "author_id": r["author_id"],
                "side": r["side"],
                "on_behalf_of": r["on_behalf_of"],
                "person_id": r["person_id"],
                "text": body,
                "text_status": status,
                "text_sha256": r["text_sha256"],
                "attachments": files,
                "posted_at": r["posted_at"].isoformat(),
                "read_by": orjson.loads(r["receipts"]),
            }
        )
    return {
        "match_id": room.match_id,
        "your_side": room.side,
        "parties": {"seller": room.seller_id, "buyer": room.buyer_id, "carrier": room.carrier_id},
        "messages": messages,
    }


async def attachment_of(
    request: web.Request, room: Room, message_id: str, attachment_id: str
) -> tuple[dict[str, Any], bytes]:
    """An attachment's metadata (from the event) and bytes, once they match its SHA-256."""
    pool = request.app[POOL]
    files = await pool.fetchval(
        "SELECT attachments FROM deal_messages WHERE match_id = $1 AND message_id = $2",
        room.match_id,
        message_id,
    )
    meta = next(
        (f for f in orjson.loads(files or "[]") if f["attachment_id"] == attachment_id), None
    )
    if meta is None:
        raise Problem(404, f"no attachment {attachment_id} in this deal room", kind="not-found")
    content = await pool.fetchval(
        "SELECT content FROM deal_files WHERE attachment_id = $1 AND message_id = $2",
        attachment_id,
        message_id,
    )
    if content is None:
        raise Problem(404, f"attachment {attachment_id} was erased", kind="erased")
    data = bytes(content)
    if sha256(data) != meta["sha256"] or sniff(data) != meta["media_type"]:
        raise Problem(
            409,
            f"attachment {attachment_id} does not match the SHA-256 its event recorded: the"
            " stored copy was altered, so the exchange will not hand it out",
            kind="attachment-altered",
        )
    return meta, data


async def read_command(request: web.Request, room: Room, message_id: str) -> dict[str, Any]:
    """A read receipt for `message_id` (and every earlier message); a repeat changes nothing."""
    who = principal(request)
    pool = request.app[POOL]
    row = await pool.fetchrow(
        "SELECT author_id, (SELECT read_at FROM deal_receipts r WHERE r.message_id = m.message_id"
        " AND r.partner_id = $3) AS read_at FROM deal_messages m"
        " WHERE m.match_id = $1 AND m.message_id = $2",
        room.match_id,
        message_id,
        who.partner_id,
    )
    if row is None:
        raise Problem(404, f"no message {message_id} in this deal room", kind="not-found")
    if row["author_id"] == who.partner_id or row["read_at"] is not None:
        return {"status": "already-read", "message_id": message_id}
    event_id = str(uuid.uuid5(_RECEIPT, f"{message_id}/{who.partner_id}"))
    event = MessageRead(
        match_id=room.match_id,
        message_id=message_id,
        partner_id=who.partner_id,
        person_id=who.person_id,
        seller_id=room.seller_id,
        buyer_id=room.buyer_id,
        carrier_id=room.carrier_id,
    )
    await publish(request, event, event_id=event_id, subject=room.match_id)
    return {"status": "accepted", "event_id": event_id, "message_id": message_id}


# The routes ------------------------------------------------------------------------------------


async def post_message(request: web.Request) -> web.StreamResponse:
    require_role(request, *ROLES)
    room = await room_of(request, request.match_info["id"])
    text, files, _fields = await uploads(request)
    answer = await post_command(request, room, text, files, request.headers.get("Idempotency-Key"))
    return web.json_response(answer, status=202)


async def list_messages(request: web.Request) -> web.StreamResponse:
    require_role(request, *ROLES)
    room = await room_of(request, request.match_info["id"])
    return web.json_response(await room_json(request, room))


async def download(request: web.Request) -> web.StreamResponse:
    require_role(request, *ROLES)
    room = await room_of(request, request.match_info["id"])
    meta, data = await attachment_of(
        request, room, request.match_info["message_id"], request.match_info["attachment_id"]
    )
    return attachment_response(meta, data)


def attachment_response(meta: dict[str, Any], data: bytes) -> web.Response:
    disposition = "inline" if meta["media_type"].startswith("image/") else "attachment"
    return web.Response(
        body=data,
        content_type=meta["media_type"],
        headers={
            "Content-Disposition": f"{disposition}; filename*=UTF-8''{quote(meta['name'])}",
            "X-Content-Type-Options": "nosniff",
            "Cache-Control": "private, no-store",
            "ETag": f'"{meta["sha256"]}"',
        },
    )


async def mark_read(request: web.Request) -> web.StreamResponse:
    require_role(request, *ROLES)
    key = request.headers.get("Idempotency-Key")
    if key is not None and not 1 <= len(key) <= 200:
        # Accepted for symmetry with every write, and not needed: a receipt is once per message
        # and partner whatever is sent.
        raise Problem(400, "Idempotency-Key must be 1 to 200 characters", field="Idempotency-Key")
    room = await room_of(request, request.match_info["id"])
    answer = await read_command(request, room, request.match_info["message_id"])
    return web.json_response(answer, status=202 if answer["status"] == "accepted" else 200)


def add_routes(app: web.Application) -> None:
    app.router.add_post("/v1/matches/{id}/messages", post_message)
    app.router.add_get("/v1/matches/{id}/messages", list_messages)
    app.router.add_get(
        "/v1/matches/{id}/messages/{message_id}/attachments/{attachment_id}", download
    )
    app.router.add_post("/v1/matches/{id}/messages/{message_id}/read", mark_read)
