"""The documents of a deal (#22 item 2): the order, the transport document and the delivery
report, built by marketplace/core/documents.py from the deal's events (kept by the deals
consumer in `deal_events`) and the parties' legal data, each as a PDF for people and a JSON file
for systems; and the carrier's pickup and delivery confirmations they are built from.

    GET  /v1/matches/{id}/documents                              the documents and their versions
                                                                 (and the invoices: invoices.py)
    GET  /v1/matches/{id}/documents/{kind}/{version}.pdf|.json   one version
    POST /v1/matches/{id}/documents/{kind}/{version}/approve     the issuer approves it: 202
    POST /v1/matches/{id}/transport/{stage}                      the carrier: pickup or delivery

Only the deal room's participants reach them (producers/api/deals.py `room_of`: anyone else gets
404). A document's content is built whenever it is listed; a content not seen before is stored
as the next version (so a new version exists exactly when a source event changed). Its issuer
(the buyer for the order and the delivery report, the carrier for the transport document)
approves a version by an event, `market.deal.document_approved.v1` on `market.deals`, naming
its SHA-256; every download checks the stored content against it."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, cast, get_args

import msgspec
import orjson
from aiohttp import web

from marketplace.core import documents as core
from marketplace.core.legal import LegalData
from marketplace.db import Conn
from marketplace.reference import list_of_waste
from marketplace.translate import shredding
from marketplace.translate.auction import job_id_for
from producers.api import document_pdf as rendering
from producers.api.auth import require_role
from producers.api.context import POOL, principal
from producers.api.deals import ROLES, Room, room_of
from producers.api.problems import Problem
from producers.api.writes import Ids, Write, idempotent, publish, read_body
from schemas.deals import DocumentApproved, Stage, TransportConfirmed
from schemas.feedback import MatchDelivered
from schemas.logistics import TransportAwarded
from schemas.matches import DeliveryScheduled, MatchConfirmed

_APPROVAL = uuid.UUID("0c3f7d52-8a61-4f0e-9d55-2b7f1e94c6a3")
Source = MatchConfirmed | TransportAwarded | MatchDelivered | TransportConfirmed | DeliveryScheduled
_source = msgspec.json.Decoder(Source)


class TransportIn(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A carrier's confirmation: the weight it measured, when (now if left out), a note."""

    weight_t: Annotated[float, msgspec.Meta(gt=0, le=100_000)]
    at: Annotated[datetime, msgspec.Meta(tz=True)] | None = None
    note: Annotated[str, msgspec.Meta(max_length=2000)] = ""


# Reading the deal ------------------------------------------------------------------------------


def _place(p: Any) -> core.Place:
    return core.Place(p.lat, p.lon, p.region)


def _material(code: str, hazardous: bool) -> core.Material:
    entry = list_of_waste().get(code)
    if entry is None:
        spaced = " ".join(code[i : i + 2] for i in range(0, 6, 2))
        return core.Material(code, spaced + ("*" if hazardous else ""), "", hazardous)
    return core.Material(code, entry.display(), entry.description, hazardous or entry.hazardous)


def _confirmed(
    event: MatchConfirmed | DeliveryScheduled, event_id: str, at: datetime, period: str | None
) -> core.Confirmed:
    """The confirmed match, or one period's scheduled delivery of a standing agreement (its
    quantity, price and windows), as the documents take it."""
    scheduled = event if isinstance(event, DeliveryScheduled) else None
    return core.Confirmed(
        event_id=event_id,
        match_id=event.match_id,
        seller_id=event.seller_id,
        buyer_id=event.buyer_id,
        material=_material(event.material_code, event.hazardous),
        quantity=event.quantity.amount,
        unit=event.quantity.unit,
        weight_t=event.weight_t,
        pickup=_place(event.pickup),
        delivery=_place(event.delivery),
        pickup_window=(event.pickup_window.start, event.pickup_window.end),
        delivery_window=(event.delivery_window.start, event.delivery_window.end),
        unit_price=event.delivered_price.amount,
        currency=event.delivered_price.currency,
        confirmed_at=at,
        period=period,
        delivery_id=scheduled.delivery_id if scheduled else None,
        period_key=scheduled.period_key if scheduled else None,
    )


async def deal_of(conn: Conn | Any, match_id: str, delivery_id: str | None = None) -> core.Deal:
    """The deal as its events say (`deal_events`, in the order the deals consumer met them):
    the match's own, or with `delivery_id` one delivery period of a standing agreement (its
    scheduled delivery, the award of its transport job, the carrier's confirmations of that
    job and the confirmation that it arrived)."""
    rows = await conn.fetch(
        "SELECT event_id, body, at FROM deal_events WHERE match_id = $1 ORDER BY seq", match_id
    )
    job = job_id_for(delivery_id) if delivery_id is not None else None
    agreement: MatchConfirmed | None = None
    scheduled: tuple[DeliveryScheduled, str, datetime] | None = None
    confirmed: core.Confirmed | None = None
    awarded: core.Awarded | None = None
    received: core.Received | None = None
    stages: list[tuple[str, core.Confirmation]] = []
    decoded = [(_source.decode(row["body"].encode()), row["event_id"], row["at"]) for row in rows]
    # The notes of the buyer (on a delivery) and of the carrier (on a confirmation) are personal
    # data, sealed with their organisation's data key (#21 item 8): the keys are looked up in
    # one query, and a note reads "[erased]" once its key is destroyed.
    keys = await shredding.keys_for(
        conn,
        shredding.operator_ring(),
        shredding.sealed_subjects(
            e for e, _, _ in decoded if isinstance(e, MatchDelivered | TransportConfirmed)
        ),
    )
    for event, event_id, at in decoded:
        match event:
            case MatchConfirmed() if agreement is None:
                agreement = event
                if delivery_id is None:
                    period = event.agreement.period if event.agreement else None
                    confirmed = _confirmed(event, event_id, at, period)
            case DeliveryScheduled() if event.delivery_id == delivery_id and scheduled is None:
                scheduled = (event, event_id, at)
            case TransportAwarded() if job is None or event.job_id == job:
                # A job awarded again (after a failed pickup) names the carrier that carries it.
                awarded = core.Awarded(
                    event_id=event_id,
                    job_id=event.job_id,
                    carrier_id=event.carrier_id,
                    price=event.price.amount,
                    currency=event.price.currency,
                    vehicle=event.vehicle,
                    pickup_at=event.pickup_at,
                    awarded_at=at,
                )
            case MatchDelivered() if event.delivery_id == delivery_id and received is None:
                if event.sealed is not None:
                    event = cast(MatchDelivered, shredding.open_event(event, keys))
                received = core.Received(event_id, event.confirmed_as, at, event.note)
            case TransportConfirmed() if job is None or event.job_id == job:
                if event.sealed is not None:
                    event = cast(TransportConfirmed, shredding.open_event(event, keys))
                confirmation = core.Confirmation(
                    event_id, event.stage, event.weight_t, event.at, event.note
                )
                stages.append((event.carrier_id, confirmation))
            case _:
                pass
    if scheduled is not None:
        # A period's delivery counts once its agreement is confirmed (as the matcher has it).
        period = agreement.agreement.period if agreement and agreement.agreement else None
        confirmed = _confirmed(*scheduled, period) if agreement is not None else None
    # Only the confirmations of the carrier the transport is awarded to count.
    carried = [c for carrier, c in stages if awarded is not None and carrier == awarded.carrier_id]
    return core.Deal(
        confirmed=confirmed,
        awarded=awarded,
        pickup=core.latest(carried, "pickup"),
        delivery=core.latest(carried, "delivery"),
        received=received,
    )


async def parties_of(conn: Conn | Any, ids: list[str]) -> dict[str, core.Party]:
    rows = await conn.fetch(
        "SELECT p.partner_id, p.name, l.legal_name, l.street, l.postcode, l.city, l.country,"
        " l.vat_number, l.peppol_id FROM partners p"
        " LEFT JOIN partner_legal l ON l.partner_id = p.partner_id"
        " WHERE p.partner_id = ANY($1::text[])",
        ids,
    )
    found: dict[str, core.Party] = {}
    for r in rows:
        legal = None
        if r["legal_name"] is not None:
            legal = LegalData(
                r["legal_name"],
                r["street"],
                r["postcode"],
                r["city"],
                r["country"],
                r["vat_number"],
                r["peppol_id"],
            )
        found[r["partner_id"]] = core.Party(r["partner_id"], r["name"], legal)
    return found


async def _stored_version(conn: Any, match_id: str, built: core.Built) -> int:
    """The version number of this content, stored as the next version if it is new."""
    sha = core.digest(built.content)
    async with conn.transaction():
        # One writer per document at a time, so versions are numbered without gaps.
        await conn.execute(
            "SELECT pg_advisory_xact_lock(hashtext('deal-document'), hashtext($1))",
            f"{match_id}/{built.kind}",
        )
        version: int | None = await conn.fetchval(
            "SELECT version FROM deal_documents WHERE match_id = $1 AND kind = $2 AND sha256 = $3",
            match_id,
            built.kind,
            sha,
        )
        if version is None:
            version = await conn.fetchval(
                "INSERT INTO deal_documents (match_id, kind, version, sha256, content)"
                " SELECT $1, $2, coalesce(max(version), 0) + 1, $3, $4::jsonb"
                " FROM deal_documents WHERE match_id = $1 AND kind = $2 RETURNING version",
                match_id,
                built.kind,
                sha,
                orjson.dumps(built.content).decode(),
            )
    return cast(int, version)


async def documents_json(request: web.Request, room: Room) -> dict[str, Any]:
    """The deal's documents: for each kind, its current version (built now from the events),
    whether it is approved, who issues it, what legal data it lacks, and its earlier versions;
    or why it does not exist yet."""
    pool = request.app[POOL]
    base = f"{base_of(room)}/documents"
    async with pool.acquire() as conn:
        deal = await deal_of(conn, room.match_id, room.delivery_id)
        ids = [room.seller_id, room.buyer_id] + ([deal.awarded.carrier_id] if deal.awarded else [])
        parties = await parties_of(conn, ids)
        documents: list[dict[str, Any]] = []
        for built in core.build_all(deal, parties):
            if isinstance(built, core.NotYet):
                documents.append(
                    {
                        "kind": built.kind,
                        "title": core.TITLES[built.kind],
                        "issuer": core.ISSUER[built.kind],
                        "you_issue": _may_issue(room, built.kind),
                        "available": False,
                        "reason": built.reason,
                    }
                )
                continue
            current = await _stored_version(conn, room.subject, built)
            rows = await conn.fetch(
                "SELECT d.version, d.sha256, d.built_at, a.approved_at, a.issuer_id,"
                " a.sha256 AS approved_sha FROM deal_documents d LEFT JOIN deal_approvals a"
                " ON a.match_id = d.match_id AND a.kind = d.kind AND a.version = d.version"
                " WHERE d.match_id = $1 AND d.kind = $2 ORDER BY d.version DESC",
                room.subject,
                built.kind,
            )
            versions = [
                {
                    "version": r["version"],
                    "sha256": r["sha256"],
                    "approved": r["approved_at"] is not None,
                    "approved_at": r["approved_at"].isoformat() if r["approved_at"] else None,
                    "current": r["version"] == current,
                    "pdf": f"{base}/{built.kind}/{r['version']}.pdf",
                    "json": f"{base}/{built.kind}/{r['version']}.json",
                }
                for r in rows
            ]
            now = next(v for v in versions if v["current"])
            documents.append(
                {
                    "kind": built.kind,
                    "title": core.TITLES[built.kind],
                    "issuer": core.ISSUER[built.kind],
                    "issuer_id": built.issuer_id,
                    "you_issue": _may_issue(room, built.kind),
                    "available": True,
                    "version": current,
                    "sha256": now["sha256"],
                    "approved": now["approved"],
                    "approved_at": now["approved_at"],
                    "missing": list(built.missing),
                    "sources": list(built.sources),
                    "pdf": now["pdf"],
                    "json": now["json"],
                    "approve": f"{base}/{built.kind}/{current}/approve",
                    "versions": versions,
                }
            )
    transport = {
        "pickup": _confirmation_json(deal.pickup),
        "delivery": _confirmation_json(deal.delivery),
        "carrier_id": deal.awarded.carrier_id if deal.awarded else None,
    }
    return {
        "match_id": room.match_id,
        "delivery_id": room.delivery_id,
        "your_side": room.side,
        "documents": documents,
        "transport": transport,
    }


def base_of(room: Room) -> str:
    """The API path of the room's documents and invoices: the match's, or one delivery
    period's of a standing agreement."""
    base = f"/v1/matches/{room.match_id}"
    return base + (f"/deliveries/{room.delivery_id}" if room.delivery_id else "")


def _confirmation_json(c: core.Confirmation | None) -> dict[str, Any] | None:
    if c is None:
        return None
    return {"at": c.at.isoformat(), "weight_t": c.weight_t, "note": c.note, "event_id": c.event_id}


# One version, as a file -------------------------------------------------------------------------


def _kind(raw: str) -> core.Kind:
    for kind in core.KINDS:
        if raw == kind:
            return kind
    raise Problem(404, f"no document {raw!r} (order, transport, delivery)", kind="not-found")


async def document_file(
    request: web.Request, room: Room, kind_raw: str, version: int, fmt: str
) -> tuple[bytes, str, str]:
    """(bytes, media type, file name) of one version: the JSON file for systems or the PDF. Its
    stored content must still match the SHA-256 it was stored under and, once approved, the one
    the approval event names (409 otherwise: nobody downloads a document other than the one
    that was issued)."""
    kind = _kind(kind_raw)
    pool = request.app[POOL]
    row = await pool.fetchrow(
        "SELECT d.sha256, d.content, d.built_at, a.sha256 AS approved_sha, a.approved_at,"
        " a.issuer_id, a.person_id, a.event_id AS approval_event"
        " FROM deal_documents d LEFT JOIN deal_approvals a ON a.match_id = d.match_id"
        " AND a.kind = d.kind AND a.version = d.version"
        " WHERE d.match_id = $1 AND d.kind = $2 AND d.version = $3",
        room.subject,
        kind,
        version,
    )
    if row is None:
        raise Problem(404, f"no version {version} of the {kind} of this deal", kind="not-found")
    content = orjson.loads(row["content"])
    sha = core.digest(content)
    if sha != row["sha256"] or (row["approved_sha"] is not None and sha != row["approved_sha"]):
        raise Problem(
            409,
            f"version {version} of the {kind} does not match the SHA-256 it was issued with: the"
            " stored copy was altered, so the exchange will not hand it out",
            kind="document-altered",
        )
    approval = None
    if row["approved_at"] is not None:
        approval = {
            "approved_at": row["approved_at"].isoformat(),
            "issuer_id": row["issuer_id"],
            "event_id": row["approval_event"],
        }
    name = f"{kind}-{room.subject[:8]}-v{version}"
    if fmt == "json":
        body = {
            "kind": kind,
            "version": version,
            "sha256": sha,
            "approval": approval,
            "content": content,
        }
        return orjson.dumps(body, option=orjson.OPT_INDENT_2), "application/json", name + ".json"
    created = row["approved_at"] or row["built_at"]
    pdf = rendering.render(kind, version, sha, content, approval, created=created.astimezone(UTC))
    return pdf, "application/pdf", name + ".pdf"


def file_response(data: bytes, media_type: str, name: str) -> web.Response:
    return web.Response(
        body=data,
        content_type=media_type,
        headers={
            "Content-Disposition": f'attachment; filename="{name}"',
            "X-Content-Type-Options": "nosniff",
            "Cache-Control": "private, no-store",
        },
    )


# Approving and confirming ----------------------------------------------------------------------


def _may_issue(room: Room, kind: core.Kind) -> bool:
    side = core.ISSUER[kind]
    if room.side == side:
        return True
    # A facilitator acting for the buyer may approve what the buyer issues.
    return side == "buyer" and room.side == "facilitator" and room.on_behalf_of == room.buyer_id


async def approve_command(
    request: web.Request, room: Room, kind_raw: str, version: int
) -> dict[str, Any]:
    """The issuer approves `version` of a document, which must be its current version and name
    every party's legal data. A version approved already answers so (and publishes nothing)."""
    kind = _kind(kind_raw)
    issuer = core.ISSUER[kind]
    if not _may_issue(room, kind):
        raise Problem(403, f"the {issuer} issues and approves the {kind}", kind="not-issuer")
    listed = await documents_json(request, room)
    document = next(d for d in listed["documents"] if d["kind"] == kind)
    if not document["available"]:
        raise Problem(409, f"no {kind} yet: {document['reason']}", kind="not-yet")
    known = {v["version"] for v in document["versions"]}
    if version not in known:
        raise Problem(404, f"no version {version} of the {kind} of this deal", kind="not-found")
    if version != document["version"]:
        raise Problem(
            409,
            f"version {version} of the {kind} was superseded by version {document['version']}"
            " (its sources changed): approve that one",
            kind="superseded",
        )
    if document["approved"]:
        return {"status": "already-approved", "kind": kind, "version": version}
    if document["missing"]:
        raise Problem(
            409,
            "the document lacks legal data: " + ", ".join(document["missing"]) + " (each"
            " organisation declares its own under PUT /v1/partners/{id}/legal or on its page)",
            kind="legal-data-missing",
        )
    who = principal(request)
    event_id = str(uuid.uuid5(_APPROVAL, f"{room.subject}/{kind}/{version}"))
    event = DocumentApproved(
        match_id=room.match_id,
        delivery_id=room.delivery_id,
        kind=kind,
        version=version,
        sha256=document["sha256"],
        issuer_id=document["issuer_id"],
        side=issuer,
        actor_id=who.partner_id,
        person_id=who.person_id,
        sources=tuple(document["sources"]),
        seller_id=room.seller_id,
        buyer_id=room.buyer_id,
        carrier_id=listed["transport"]["carrier_id"],
    )
    await publish(request, event, event_id=event_id, subject=room.match_id)
    return {"status": "accepted", "event_id": event_id, "kind": kind, "version": version}


def _stage(raw: str) -> Stage:
    if raw not in get_args(Stage):
        raise Problem(404, f"no transport stage {raw!r} (pickup, delivery)", kind="not-found")
    return cast(Stage, raw)


async def transport_command(
    request: web.Request, room: Room, stage_raw: str, body: TransportIn
) -> Write:
    """The awarded carrier confirms the pickup or the delivery with the weight it measured. A
    delivery needs a pickup before it; a second confirmation of a stage corrects the first."""
    stage = _stage(stage_raw)
    if room.side != "carrier":
        raise Problem(403, "the carrier that won the transport confirms it", kind="not-carrier")
    deal = await deal_of(request.app[POOL], room.match_id, room.delivery_id)
    c = deal.confirmed
    if c is not None and c.period is not None and c.delivery_id is None:
        raise Problem(
            409,
            "a standing agreement's transport is confirmed per delivery period: POST"
            f" /v1/matches/{room.match_id}/deliveries/{{delivery_id}}/transport/{stage}",
            kind="per-period",
        )
    if deal.awarded is None or deal.awarded.carrier_id != room.carrier_id:
        raise Problem(409, "the transport of this match is not awarded to you", kind="not-awarded")
    if stage == "delivery" and deal.pickup is None:
        raise Problem(
            409, "confirm the pickup before the delivery", field="stage", kind="not-picked-up"
        )
    at = body.at or datetime.now(UTC)
    if deal.pickup is not None and stage == "delivery" and at < deal.pickup.at:
        raise Problem(422, "the delivery cannot be before the pickup", field="at")
    who = principal(request)
    awarded = deal.awarded

    async def write(ids: Ids) -> tuple[int, dict[str, Any], dict[str, str]]:
        event_id = ids.make("event")
        event = TransportConfirmed(
            match_id=room.match_id,
            job_id=awarded.job_id,
            carrier_id=who.partner_id,
            person_id=who.person_id,
            stage=stage,
            weight_t=body.weight_t,
            at=at,
            note=body.note,
            seller_id=room.seller_id,
            buyer_id=room.buyer_id,
        )
        await publish(request, event, event_id=event_id, subject=room.match_id)
        return 202, {"status": "accepted", "event_id": event_id, "stage": stage}, {}

    return write


# The routes ------------------------------------------------------------------------------------


async def download(request: web.Request) -> web.StreamResponse:
    require_role(request, *ROLES)
    room = await room_of(request, request.match_info["id"])
    data, media_type, name = await document_file(
        request,
        room,
        request.match_info["kind"],
        int(request.match_info["version"]),
        request.match_info["fmt"],
    )
    return file_response(data, media_type, name)


async def approve(request: web.Request) -> web.StreamResponse:
    require_role(request, *ROLES)
    key = request.headers.get("Idempotency-Key")
    if key is not None and not 1 <= len(key) <= 200:
        # Taken for symmetry with every write, and not needed: an approval is once per version.
        raise Problem(400, "Idempotency-Key must be 1 to 200 characters", field="Idempotency-Key")
    room = await room_of(request, request.match_info["id"])
    answer = await approve_command(
        request, room, request.match_info["kind"], int(request.match_info["version"])
    )
    return web.json_response(answer, status=202 if answer["status"] == "accepted" else 200)


async def confirm_transport(request: web.Request) -> web.StreamResponse:
    require_role(request, *ROLES)
    room = await room_of(request, request.match_info["id"])
    body = await read_body(request, TransportIn)
    write = await transport_command(request, room, request.match_info["stage"], body)
    return await idempotent(request, write)


def add_routes(app: web.Application) -> None:
    r = app.router
    # GET /v1/matches/{id}/documents lists the invoices too: producers/api/invoices.py.
    r.add_get("/v1/matches/{id}/documents/{kind}/{version:\\d{1,6}}.{fmt:pdf|json}", download)
    r.add_post("/v1/matches/{id}/documents/{kind}/{version:\\d{1,6}}/approve", approve)
    r.add_post("/v1/matches/{id}/transport/{stage}", confirm_transport)
