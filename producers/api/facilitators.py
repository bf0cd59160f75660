"""Facilitators (#11): staff of the association who post and look after listings for SMEs that
have consented.

An SME grants and revokes consent (`POST`/`DELETE /v1/consents/{facilitator_id}`); each is an
event on partners.registry under the SME's key, and the projector keeps the `consents` read model
that every facilitator request is authorised by. A facilitator then writes listings with
`on_behalf_of` (the events carry the SME as owner and the facilitator as actor), lists the SMEs it
supports with their listings' staleness, and nudges an SME about a listing (an event the notifier
turns into a notification to the SME)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import asyncpg
import msgspec
import orjson
from aiohttp import web

from producers.api.auth import require_role
from producers.api.context import POOL, principal
from producers.api.problems import Problem
from producers.api.writes import Ids, Write, idempotent, publish, read_body
from schemas.common import LongText, ShortText
from schemas.facilitators import ConsentGranted, ConsentRevoked, ListingNudged

# A listing nudged less than this long ago is not nudged again (the SME is not pestered).
NUDGE_PAUSE = timedelta(hours=24)
# How long a consent's grant or revocation waits for the projector to put it in force, so that
# the SME's answer can say whether it is (normally in well under a second).
IN_EFFECT_WAIT_S = 5.0


class ConsentIn(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    note: ShortText = ""


class RevokeIn(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    reason: ShortText = ""


class NudgeIn(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    message: LongText = ""


async def has_consent(request: web.Request, sme_id: str, facilitator_id: str) -> bool:
    status = await request.app[POOL].fetchval(
        "SELECT status FROM consents WHERE partner_id = $1 AND facilitator_id = $2",
        sme_id,
        facilitator_id,
    )
    return bool(status == "granted")


def no_consent(sme_id: str, facilitator_id: str, field: str | None = None) -> Problem:
    """A facilitator names an SME (`on_behalf_of`) that has not consented to it: 404, worded so
    that an SME that does not exist and one that has not consented look the same."""
    return Problem(
        404,
        f"no SME {sme_id} has given you (facilitator {facilitator_id}) a current consent to act"
        f" for it; an SME grants it with POST /v1/consents/{facilitator_id}",
        field=field,
        kind="no-consent",
    )


async def require_consent(request: web.Request, sme_id: str, field: str | None = None) -> None:
    me = principal(request).partner_id
    if not await has_consent(request, sme_id, me):
        raise no_consent(sme_id, me, field)


async def owner_for(request: web.Request, on_behalf_of: str | None, missing: int = 422) -> str:
    """For whom the caller acts (whose listing a write makes, whose match it answers): its own
    organisation, or, for a facilitator, the SME named by `on_behalf_of`, which must have
    consented. A facilitator that leaves it out is refused with `missing` (422 for a body)."""
    who = principal(request)
    if who.role == "facilitator":
        if on_behalf_of is None:
            raise Problem(
                missing,
                "a facilitator names the SME it acts for in on_behalf_of",
                field="on_behalf_of",
                kind="on-behalf-of-required",
            )
        await require_consent(request, on_behalf_of, "on_behalf_of")
        return on_behalf_of
    if on_behalf_of not in (None, who.partner_id):
        raise Problem(
            403,
            "only a facilitator acts on behalf of another partner",
            field="on_behalf_of",
        )
    return who.partner_id


# --- the SME's side: consents --------------------------------------------------------------


async def in_effect(request: web.Request, sme_id: str, facilitator_id: str, granted: bool) -> bool:
    """Waits until the consents read model, which every facilitator request is checked against,
    shows the grant or the revocation (at most IN_EFFECT_WAIT_S)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + IN_EFFECT_WAIT_S
    while True:
        if await has_consent(request, sme_id, facilitator_id) == granted:
            return True
        if loop.time() >= deadline:
            return False
        await asyncio.sleep(0.05)


async def _facilitator(request: web.Request) -> str:
    facilitator_id = request.match_info["facilitator_id"]
    # The keys table, not the partners read model: a facilitator just registered counts at once.
    known = await request.app[POOL].fetchval(
        "SELECT EXISTS (SELECT 1 FROM api_keys WHERE partner_id = $1 AND role = 'facilitator')",
        facilitator_id,
    )
    if not known:
        raise Problem(404, f"no facilitator {facilitator_id}")
    return facilitator_id


async def grant_consent(request: web.Request) -> web.StreamResponse:
    require_role(request, "sme")
    facilitator_id = await _facilitator(request)
    body = await read_body(request, ConsentIn, optional=True)
    me = principal(request).partner_id
    if await has_consent(request, me, facilitator_id):
        raise Problem(
            409, f"facilitator {facilitator_id} already has your consent", kind="already-granted"
        )

    event = ConsentGranted(
        partner_id=me,
        facilitator_id=facilitator_id,
        actor_id=me,
        person_id=principal(request).person_id,
        note=body.note,
    )
    return await _consent_change(request, event, granted=True)


async def _consent_change(
    request: web.Request, event: ConsentGranted | ConsentRevoked, granted: bool
) -> web.StreamResponse:
    """Publishes a grant or a revocation and answers once the read model has it in force (or
    says it is not yet)."""

    async def write(ids: Ids) -> tuple[int, dict[str, Any], dict[str, str]]:
        event_id = ids.make("event")
        await publish(request, event, event_id=event_id, subject=event.partner_id)
        answer: dict[str, Any] = {
            "status": "accepted",
            "event_id": event_id,
            "facilitator_id": event.facilitator_id,
            "in_effect": await in_effect(
                request, event.partner_id, event.facilitator_id, granted=granted
            ),
        }
        return 202, answer, {"Location": "/v1/consents"} if granted else {}

    return await idempotent(request, write)


async def revoke_consent(request: web.Request) -> web.StreamResponse:
    require_role(request, "sme")
    facilitator_id = request.match_info["facilitator_id"]
    me = principal(request).partner_id
    if not await has_consent(request, me, facilitator_id):
        raise Problem(404, f"facilitator {facilitator_id} has no current consent of yours")
    body = await read_body(request, RevokeIn, optional=True)

    event = ConsentRevoked(
        partner_id=me,
        facilitator_id=facilitator_id,
        actor_id=me,
        person_id=principal(request).person_id,
        reason=body.reason,
    )
    return await _consent_change(request, event, granted=False)


async def list_consents(request: web.Request) -> web.StreamResponse:
    require_role(request, "sme")
    rows = await request.app[POOL].fetch(
        "SELECT c.facilitator_id, p.name, c.status, c.note, c.granted_at, c.revoked_at"
        " FROM consents c LEFT JOIN partners p ON p.partner_id = c.facilitator_id"
        " WHERE c.partner_id = $1 ORDER BY c.granted_at DESC, c.facilitator_id",
        principal(request).partner_id,
    )
    return web.json_response(
        {
            "items": [
                {
                    "facilitator_id": r["facilitator_id"],
                    "name": r["name"],
                    "status": r["status"],
                    "note": r["note"],
                    "granted_at": r["granted_at"].isoformat(),
                    "revoked_at": r["revoked_at"].isoformat() if r["revoked_at"] else None,
                }
                for r in rows
            ]
        }
    )


# --- the facilitator's side ----------------------------------------------------------------


def _stale_days(request: web.Request) -> int:
    raw = request.query.get("stale_days", "30")
    try:
        days = int(raw)
    except ValueError:
        raise Problem(
            422, "stale_days must be a whole number of days", field="stale_days", kind="validation"
        ) from None
    if not 1 <= days <= 3650:
        raise Problem(422, "stale_days is 1 to 3650", field="stale_days", kind="validation")
    return days


async def supported_smes(request: web.Request) -> web.StreamResponse:
    """The SMEs that consented to the caller, each with its open listings and how stale they are
    (days since the last change; stale at `stale_days`, default 30), the last nudge included."""
    require_role(request, "facilitator")
    stale_days = _stale_days(request)
    items = await supported(request.app[POOL], principal(request).partner_id, stale_days)
    return web.json_response(
        {"stale_days": stale_days, "items": items}, dumps=lambda o: orjson.dumps(o).decode()
    )


async def supported(pool: asyncpg.Pool, me: str, stale_days: int) -> list[dict[str, Any]]:
    """The SMEs with a current consent to facilitator `me`, each with its open listings (for
    the API and the facilitator's pages alike)."""
    now = datetime.now(UTC)
    smes = await pool.fetch(
        "SELECT c.partner_id, p.name, p.region, p.sector, c.granted_at, c.note FROM consents c"
        " LEFT JOIN partners p ON p.partner_id = c.partner_id"
        " WHERE c.facilitator_id = $1 AND c.status = 'granted'"
        " ORDER BY p.name NULLS LAST, c.partner_id",
        me,
    )
    ids = [r["partner_id"] for r in smes]
    listings = await pool.fetch(
        "SELECT l.listing_id, l.kind, l.owner_id, l.material_code,"
        " l.body->'material'->>'description' AS description, l.posted_at, l.updated_at,"
        " (SELECT max(n.nudged_at) FROM nudges n WHERE n.listing_id = l.listing_id)"
        " AS last_nudged_at"
        " FROM listings l WHERE l.owner_id = ANY($1::text[]) AND l.status = 'open'"
        " ORDER BY l.updated_at, l.listing_id",
        ids,
    )
    by_owner: dict[str, list[dict[str, Any]]] = {i: [] for i in ids}
    for r in listings:
        days = (now - r["updated_at"]).days
        by_owner[r["owner_id"]].append(
            {
                "id": r["listing_id"],
                "kind": r["kind"],
                "material_code": r["material_code"],
                "description": r["description"],
                "posted_at": r["posted_at"].isoformat(),
                "updated_at": r["updated_at"].isoformat(),
                "days_unchanged": days,
                "stale": days >= stale_days,
                "last_nudged_at": r["last_nudged_at"].isoformat() if r["last_nudged_at"] else None,
            }
        )
    return [
        {
            "partner_id": r["partner_id"],
            "name": r["name"],
            "region": r["region"],
            "sector": r["sector"],
            "consent_granted_at": r["granted_at"].isoformat(),
            "consent_note": r["note"],
            "open_listings": len(by_owner[r["partner_id"]]),
            "stale_listings": sum(1 for x in by_owner[r["partner_id"]] if x["stale"]),
            "listings": by_owner[r["partner_id"]],
        }
        for r in smes
    ]


async def _nudge(request: web.Request, kind: Literal["offer", "request"]) -> web.StreamResponse:
    row = await nudge_target(request, kind, request.match_info["id"])
    body = await read_body(request, NudgeIn, optional=True)
    return await idempotent(request, nudge_command(request, row, kind, body.message))


async def nudge_target(
    request: web.Request, kind: Literal["offer", "request"], listing_id: str
) -> asyncpg.Record:
    """The open listing a facilitator may nudge now (a Problem otherwise), for the API and the
    pages alike."""
    require_role(request, "facilitator")
    row: asyncpg.Record | None = await request.app[POOL].fetchrow(
        "SELECT listing_id, owner_id, material_code, status, updated_at,"
        " (SELECT max(n.nudged_at) FROM nudges n WHERE n.listing_id = l.listing_id)"
        " AS last_nudged_at FROM listings l WHERE listing_id = $1 AND kind = $2",
        listing_id,
        kind,
    )
    # A listing of an SME that has not consented to the caller is not found, exactly like one
    # that does not exist: the answer does not tell that it exists, nor whose it is.
    me = principal(request).partner_id
    if row is None or not await has_consent(request, row["owner_id"], me):
        raise Problem(404, f"no {kind} {listing_id} of an SME that consented to you")
    if row["status"] != "open":
        raise Problem(409, f"{kind} {listing_id} is {row['status']}", kind="not-open")
    now = datetime.now(UTC)
    if row["last_nudged_at"] is not None and now - row["last_nudged_at"] < NUDGE_PAUSE:
        raise Problem(
            409,
            f"{kind} {listing_id} was nudged at {row['last_nudged_at'].isoformat()};"
            " nudge it again after a day",
            kind="recently-nudged",
        )
    return row


def nudge_command(
    request: web.Request, row: asyncpg.Record, kind: Literal["offer", "request"], message: str
) -> Write:
    """The write of a nudge about `row` (from nudge_target)."""
    me = principal(request).partner_id
    listing_id = row["listing_id"]
    now = datetime.now(UTC)

    async def write(ids: Ids) -> tuple[int, dict[str, Any], dict[str, str]]:
        event_id = ids.make("event")
        event = ListingNudged(
            partner_id=row["owner_id"],
            facilitator_id=me,
            actor_id=me,
            person_id=principal(request).person_id,
            listing_id=listing_id,
            kind=kind,
            material_code=row["material_code"],
            days_unchanged=max(0, (now - row["updated_at"]).days),
            message=message,
        )
        await publish(request, event, event_id=event_id, subject=listing_id)
        return 202, {"status": "accepted", "event_id": event_id, f"{kind}_id": listing_id}, {}

    return write


async def nudge_offer(request: web.Request) -> web.StreamResponse:
    return await _nudge(request, "offer")


async def nudge_request(request: web.Request) -> web.StreamResponse:
    return await _nudge(request, "request")


def add_routes(app: web.Application) -> None:
    app.router.add_get("/v1/consents", list_consents)
    app.router.add_post("/v1/consents/{facilitator_id}", grant_consent)
    app.router.add_delete("/v1/consents/{facilitator_id}", revoke_consent)
    app.router.add_get("/v1/facilitator/smes", supported_smes)
    app.router.add_post("/v1/offers/{id}/nudge", nudge_offer)
    app.router.add_post("/v1/requests/{id}/nudge", nudge_request)
