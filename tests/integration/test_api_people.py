"""People and their e-mail preferences through the API (#20 item 1), on the real stack: an
organisation's key lists its own people without names or addresses, reads and replaces a
person's preferences (stored where the preferences page reads them), every refused field is
named and changes nothing, another organisation's person is 404 alike, the auditor reads but does
not change, the operator's key has no people."""

from __future__ import annotations

import uuid
from typing import Any

from aiohttp.test_utils import TestClient

from marketplace import accounts
from marketplace.db import connect
from marketplace.mail import prefs
from marketplace.settings import Settings
from tests.integration.api_helpers import eventually, register, running_api

Client = TestClient[Any, Any]


async def new_person(settings: Settings, partner_id: str, role: str) -> accounts.Person:
    conn = await connect(settings)
    try:
        return await accounts.create_person(
            conn,
            partner_id=partner_id,
            email=f"p-{uuid.uuid4().hex[:10]}@example.org",
            display_name=f"Person {role}",
            role=role,  # type: ignore[arg-type]
        )
    finally:
        await conn.close()


async def stored(settings: Settings, person_id: str) -> tuple[prefs.Preferences, str, list[str]]:
    """What the preferences page would show: the stored choices, the language, the history."""
    conn = await connect(settings)
    try:
        chosen = await prefs.preferences_of(conn, person_id)
        person = await accounts.person_by_id(conn, person_id)
        assert person is not None
        history = [
            r["what"]
            for r in await conn.fetch(
                "SELECT what FROM account_events WHERE person_id = $1 ORDER BY at",
                uuid.UUID(person_id),
            )
        ]
        return chosen, person.locale, history
    finally:
        await conn.close()


async def problem_of(client: Client, path: str, body: Any, auth: dict[str, str]) -> Any:
    r = await client.put(path, json=body, headers=auth)
    assert r.status == 422, await r.text()
    assert r.content_type == "application/problem+json"
    return await r.json()


async def test_people_and_their_mail_preferences_over_the_api(settings: Settings) -> None:
    firm = await register(settings, "sme", "Plast Uppsala")
    other = await register(settings, "sme", "Other AB")
    auditor = await register(settings, "auditor", "Revisor AB")
    operator = await register(settings, "operator", "Association")
    admin = await new_person(settings, firm.partner_id, "admin")
    reader = await new_person(settings, firm.partner_id, "read-only")
    outsider = await new_person(settings, other.partner_id, "member")
    checker = await new_person(settings, auditor.partner_id, "member")
    async with running_api(settings) as client:
        # The organisation's people: ids, roles, languages; no names, no addresses.
        r = await client.get("/v1/people", headers=firm.auth)
        assert r.status == 200, await r.text()
        text = await r.text()
        people = (await r.json())["people"]
        assert {p["person_id"]: p["role"] for p in people} == {
            admin.person_id: "admin",
            reader.person_id: "read-only",
        }
        assert all(set(p) == {"person_id", "role", "language", "mail_preferences"} for p in people)
        for who in (admin, reader, outsider):
            assert who.email not in text
            assert who.display_name not in text
        path = f"/v1/people/{reader.person_id}/mail-preferences"

        # The defaults, with the time zone of the organisation's country once it is projected.
        async def defaults_shown() -> bool:
            answer = await client.get(path, headers=firm.auth)
            assert answer.status == 200, await answer.text()
            got = await answer.json()
            return bool(got["time_zone_in_effect"] == "Europe/Stockholm")

        await eventually(defaults_shown, 30)
        got = await (await client.get(path, headers=firm.auth)).json()
        choices = {k["kind"]: k["choice"] for k in got["kinds"]}
        assert choices["match.proposed"] == "immediate"
        assert choices["match.confirmed"] == "digest"
        assert len(choices) == len(got["kinds"]) > 10
        assert (got["digest_hour"], got["time_zone"], got["language"]) == (8, None, "en")
        assert got["address_verified"] is False
        assert got["role"] == "read-only"

        # Replaced by the organisation's system, even for a read-only member.
        wanted = {
            "kinds": [
                {"kind": "match.proposed", "choice": "none"},
                {"kind": "award.lost", "choice": "immediate"},
            ],
            "digest_hour": 6,
            "time_zone": "Europe/Sofia",
            "language": "sv",
        }
        r = await client.put(path, json=wanted, headers=firm.auth)
        assert r.status == 200, await r.text()
        answer = await r.json()
        choices = {k["kind"]: k["choice"] for k in answer["kinds"]}
        assert (choices["match.proposed"], choices["award.lost"]) == ("none", "immediate")
        assert choices["match.confirmed"] == "digest"
        assert (answer["digest_hour"], answer["time_zone"], answer["language"]) == (
            6,
            "Europe/Sofia",
            "sv",
        )
        assert answer["time_zone_in_effect"] == "Europe/Sofia"
        chosen, locale, history = await stored(settings, reader.person_id)
        assert chosen == prefs.Preferences(
            kinds={"match.proposed": "none", "award.lost": "immediate"},
            digest_hour=6,
            time_zone="Europe/Sofia",
        )
        assert locale == "sv"
        assert history == ["mail-preferences-set-by-api-key"]
        assert await (await client.get(path, headers=firm.auth)).json() == answer

        # Every refused field is named, and nothing changes.
        refused = [
            ({**wanted, "colour": "blue"}, "colour", "validation"),
            ({"kinds": [{"kind": "match.proposed", "choice": "none", "x": 1}]}, "kinds[0].x", None),
            ({"kinds": [{"kind": "match.nope", "choice": "none"}]}, "kinds[0].kind", None),
            ({"kinds": [{"kind": "match.proposed", "choice": "weekly"}]}, "kinds[0].choice", None),
            ({"digest_hour": 24}, "digest_hour", None),
            ({"digest_hour": "six"}, "digest_hour", None),
            ({"time_zone": "Mars/Olympus_Mons"}, "time_zone", None),
            ({"language": "de"}, "language", None),
            (
                {
                    "kinds": [
                        {"kind": "award.won", "choice": "none"},
                        {"kind": "award.won", "choice": "digest"},
                    ]
                },
                "kinds[1].kind",
                "unprocessable-content",
            ),
        ]
        for body, field, kind in refused:
            problem = await problem_of(client, path, body, firm.auth)
            assert [e["field"] for e in problem["errors"]] == [field], problem
            assert problem["type"].endswith("/" + (kind or "validation")), problem
        assert await stored(settings, reader.person_id) == (chosen, locale, history)

        # Left out: defaults, and the language as it was.
        r = await client.put(path, json={}, headers=firm.auth)
        assert r.status == 200, await r.text()
        chosen, locale, history = await stored(settings, reader.person_id)
        assert chosen == prefs.Preferences()
        assert locale == "sv"
        assert len(history) == 2

        # Another organisation's person, a person of nobody, a malformed id: 404 alike.
        theirs = f"/v1/people/{outsider.person_id}/mail-preferences"
        for target in (
            theirs,
            f"/v1/people/{uuid.uuid4()}/mail-preferences",
            "/v1/people/not-a-person/mail-preferences",
        ):
            r = await client.get(target, headers=firm.auth)
            assert r.status == 404, await r.text()
            assert (await r.json())["type"].endswith("/not-found")
            r = await client.put(target, json=wanted, headers=firm.auth)
            assert r.status == 404, await r.text()
        r = await client.get(path, headers=other.auth)
        assert r.status == 404
        r = await client.put(path, json=wanted, headers=other.auth)
        assert r.status == 404
        assert await stored(settings, reader.person_id) == (chosen, locale, history)
        assert (await stored(settings, outsider.person_id))[0] == prefs.Preferences()

        # The auditor (a read-only role) reads its own people's and changes nothing.
        r = await client.get("/v1/people", headers=auditor.auth)
        assert [p["person_id"] for p in (await r.json())["people"]] == [checker.person_id]
        mine = f"/v1/people/{checker.person_id}/mail-preferences"
        assert (await client.get(mine, headers=auditor.auth)).status == 200
        r = await client.put(mine, json=wanted, headers=auditor.auth)
        assert r.status == 403, await r.text()
        assert (await r.json())["type"].endswith("/forbidden")
        assert (await stored(settings, checker.person_id))[0] == prefs.Preferences()

        # The operator's key has no people (the association's staff use the pages); no key: 401.
        assert (await client.get("/v1/people", headers=operator.auth)).status == 403
        assert (await client.get("/v1/people")).status == 401
        assert (await client.put(path, json=wanted)).status == 401
