"""An organisation's people and their e-mail preferences, for the organisation's systems (#20
item 1): the same choices a person makes on /app/preferences, stored by the same functions
(marketplace/mail/prefs.py, marketplace/accounts.py `set_locale`).

    GET /v1/people                                  the organisation's people: id, role, language
    GET /v1/people/{person_id}/mail-preferences     one person's choices
    PUT /v1/people/{person_id}/mail-preferences     replace them: 200 with what is now stored

A key reaches only its own organisation's people (enabled ones): anyone else's, or an id that
names nobody, is 404 alike. No name or e-mail address is ever answered: a system addresses a
person by their pseudonymous id. Auditors read and change nothing (403 on the PUT, as on every
write); the association's staff belong to no organisation and set theirs on the pages."""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal

import msgspec
from aiohttp import web

from marketplace import accounts
from marketplace.core.notifications import KINDS
from marketplace.db import Conn
from marketplace.mail import prefs
from producers.api.auth import require_role
from producers.api.context import POOL, principal
from producers.api.problems import Problem
from producers.api.writes import read_body

# Organisations' keys: they read; all but the auditor (a read-only role) change.
READERS = ("sme", "logistics", "facilitator", "auditor")
WRITERS = ("sme", "logistics", "facilitator")
Language = Literal["en", "bg", "sv"]
# The time zones the preferences page offers (the digest's hour is in one of them).
TimeZone = Annotated[str, msgspec.Meta(extra_json_schema={"enum": list(prefs.ZONES)})]
NotificationKind = Annotated[
    str, msgspec.Meta(max_length=64, extra_json_schema={"enum": list(KINDS)})
]


class KindChoiceIn(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """What a person wants for one kind of notification."""

    kind: NotificationKind
    choice: prefs.Choice


class MailPreferencesIn(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """A person's e-mail preferences, replaced whole: a kind left out of `kinds` gets its default
    (proposals, awards and an expiring proposal at once, the rest in the digest), `digest_hour`
    8, `time_zone` null (the organisation's country's). `language` left out stays as it is."""

    kinds: Annotated[tuple[KindChoiceIn, ...], msgspec.Meta(max_length=len(KINDS))] = ()
    digest_hour: Annotated[int, msgspec.Meta(ge=0, le=23)] = prefs.DEFAULT_HOUR
    time_zone: TimeZone | None = None
    language: Language | None = None


def _checked(body: MailPreferencesIn) -> prefs.Preferences:
    """The preferences, or 422 naming each refused field (the schema's enums, which the typed
    decode does not check, and a kind named twice)."""
    errors: list[tuple[str, str]] = []
    kinds: dict[str, prefs.Choice] = {}
    twice: list[tuple[str, str]] = []
    for i, entry in enumerate(body.kinds):
        if entry.kind not in KINDS:
            errors.append((f"kinds[{i}].kind", f"no notification kind {entry.kind!r}"))
        elif entry.kind in kinds:
            twice.append((f"kinds[{i}].kind", f"{entry.kind} is named twice"))
        kinds[entry.kind] = entry.choice
    if body.time_zone is not None and body.time_zone not in prefs.ZONES:
        errors.append(("time_zone", f"no time zone {body.time_zone!r} among those offered"))
    if errors:
        detail = "; ".join(f"{f}: {r}" for f, r in errors)
        raise Problem(422, detail, errors=errors, kind="validation")
    if twice:
        # The schema cannot say "each kind once": a rule, not a schema violation.
        detail = "; ".join(f"{f}: {r}" for f, r in twice)
        raise Problem(422, detail, errors=twice, kind="unprocessable-content")
    return prefs.Preferences(kinds=kinds, digest_hour=body.digest_hour, time_zone=body.time_zone)


async def _person(conn: Conn | Any, request: web.Request, raw: str) -> dict[str, Any]:
    """The enabled person `raw` of the caller's organisation, or 404 (as for nobody)."""
    missing = Problem(404, f"no person {raw} in your organisation", kind="not-found")
    try:
        person_id = uuid.UUID(raw)
    except ValueError:
        raise missing from None
    row = await conn.fetchrow(
        "SELECT person_id::text AS person_id, role, locale FROM people"
        " WHERE person_id = $1 AND partner_id = $2 AND disabled_at IS NULL",
        person_id,
        principal(request).partner_id,
    )
    if row is None:
        raise missing
    return dict(row)


async def _preferences_json(conn: Conn | Any, person: dict[str, Any]) -> dict[str, Any]:
    person_id = person["person_id"]
    chosen = await prefs.preferences_of(conn, person_id)
    return {
        "person_id": person_id,
        "role": person["role"],
        "language": person["locale"],
        "kinds": [
            {"kind": kind, "choice": choice, "default": prefs.default_choice(kind)}
            for kind, choice in chosen.every_kind().items()
        ],
        "digest_hour": chosen.digest_hour,
        "time_zone": chosen.time_zone,
        "time_zone_in_effect": await prefs.zone_of(conn, person_id, chosen),
        "address_verified": await prefs.is_verified(conn, person_id),
    }


async def list_people(request: web.Request) -> web.StreamResponse:
    require_role(request, *READERS)
    rows = await request.app[POOL].fetch(
        "SELECT person_id::text AS person_id, role, locale FROM people"
        " WHERE partner_id = $1 AND disabled_at IS NULL ORDER BY created_at, person_id",
        principal(request).partner_id,
    )
    people = [
        {
            "person_id": r["person_id"],
            "role": r["role"],
            "language": r["locale"],
            "mail_preferences": f"/v1/people/{r['person_id']}/mail-preferences",
        }
        for r in rows
    ]
    return web.json_response({"people": people})


async def get_preferences(request: web.Request) -> web.StreamResponse:
    require_role(request, *READERS)
    async with request.app[POOL].acquire() as conn:
        person = await _person(conn, request, request.match_info["person_id"])
        return web.json_response(await _preferences_json(conn, person))


async def put_preferences(request: web.Request) -> web.StreamResponse:
    require_role(request, *WRITERS)
    async with request.app[POOL].acquire() as conn:
        person = await _person(conn, request, request.match_info["person_id"])
        body = await read_body(request, MailPreferencesIn)
        chosen = _checked(body)
        async with conn.transaction():
            await prefs.save_preferences(conn, person["person_id"], chosen)
            if body.language is not None and body.language != person["locale"]:
                await accounts.set_locale(conn, person["person_id"], body.language)
                person["locale"] = body.language
            # The person's own account history says their choices were changed by a system.
            await accounts.record(conn, person["person_id"], "mail-preferences-set-by-api-key")
        return web.json_response(await _preferences_json(conn, person))


def add_routes(app: web.Application) -> None:
    r = app.router
    r.add_get("/v1/people", list_people)
    r.add_get("/v1/people/{person_id}/mail-preferences", get_preferences)
    r.add_put("/v1/people/{person_id}/mail-preferences", put_preferences)
