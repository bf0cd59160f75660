"""Partners' legal data (#22) on the real stack: an organisation declares its own over the API
and on its admin's page, the operator declares another's, every refused field is named (in the
problem and next to the field), another organisation gets 404; the declaration is an event on
partners.registry that the projector keeps."""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp.test_utils import TestClient

from marketplace.settings import Settings
from producers.web.app import create_service
from schemas.topics import REGISTRY
from tests.integration.api_helpers import eventually, projected, register, running_api
from tests.integration.kafka_helpers import end_offsets, read_since
from tests.integration.test_pages_accounts import csrf_of, plain
from tests.integration.test_pages_matrix import person

Client = TestClient[Any, Any]
LEGAL = {
    "legal_name": "Пласт Плевен ООД",
    "street": "ул. Васил Левски 12",
    "postcode": "5800",
    "city": "Плевен",
    "country": "BG",
    "vat_number": "BG 123 456 789",
    "peppol_id": "9926:BG123456789",
}


async def legal_of(client: Client, partner_id: str, auth: dict[str, str]) -> dict[str, Any] | None:
    r = await client.get(f"/v1/partners/{partner_id}/legal", headers=auth)
    if r.status == 404:
        return None
    assert r.status == 200, await r.text()
    body: dict[str, Any] = await r.json()
    return body


async def test_legal_data_over_the_api(settings: Settings) -> None:
    firm = await register(settings, "sme", "Plast Pleven")
    other = await register(settings, "sme", "Other OOD")
    operator = await register(settings, "operator", "Association")
    auditor = await register(settings, "auditor", "Auditor")
    since = await end_offsets(settings, REGISTRY)
    async with running_api(settings, create_service) as client:
        path = f"/v1/partners/{firm.partner_id}/legal"
        r = await client.put(path, json=LEGAL, headers=firm.auth)
        assert r.status == 202, await r.text()
        event_id = (await r.json())["event_id"]

        async def stored() -> bool:
            found = await legal_of(client, firm.partner_id, firm.auth)
            return found is not None and found["event_id"] == event_id

        await eventually(stored, 30)
        found = await legal_of(client, firm.partner_id, firm.auth)
        assert found is not None
        assert found["vat_number"] == "BG123456789"
        assert found["peppol_id"] == "iso6523-actorid-upis::9926:BG123456789"
        assert found["legal_name"] == "Пласт Плевен ООД"

        # Every refused field is named.
        bad = LEGAL | {"vat_number": "BG12", "peppol_id": "1234:x", "postcode": "!"}
        r = await client.put(path, json=bad, headers=firm.auth)
        assert r.status == 422, await r.text()
        fields = [e["field"] for e in (await r.json())["errors"]]
        assert fields == ["postcode", "vat_number", "peppol_id"]
        r = await client.put(path, json=LEGAL | {"fax": "1"}, headers=firm.auth)
        assert r.status == 422
        assert "fax" in await r.text()

        # Another organisation: 404 for reading and writing, as for none at all; auditors 403.
        for method in ("get", "put"):
            r = await client.request(method, path, json=LEGAL, headers=other.auth)
            assert r.status == 404, (method, await r.text())
        r = await client.get(path, headers=auditor.auth)
        assert r.status == 403

        # The operator declares another organisation's data.
        changed = LEGAL | {"street": "бул. България 1", "vat_number": ""}
        r = await client.put(
            f"/v1/partners/{other.partner_id}/legal", json=changed, headers=operator.auth
        )
        assert r.status == 202, await r.text()

        async def other_stored() -> bool:
            found = await legal_of(client, other.partner_id, other.auth)
            return found is not None and found["street"] == "бул. България 1"

        await eventually(other_stored, 30)
        assert (await legal_of(client, other.partner_id, operator.auth) or {})["vat_number"] is None

    # The events: on partners.registry, keyed by the organisation, naming who declared it.
    records = await read_since(settings, REGISTRY, since)
    declared = [
        orjson.loads(r.value)
        for r in records
        if dict(r.headers).get("ce_type") == b"partners.legal.declared.v2"
    ]
    by_partner = {d["partner_id"]: d for d in declared}
    assert by_partner[firm.partner_id]["actor_id"] == firm.partner_id
    assert by_partner[other.partner_id]["actor_id"] == operator.partner_id
    # The legal name and address travel sealed with the organisation's data key (#21 item 8).
    assert by_partner[firm.partner_id]["sealed"]["subject"] == f"partner:{firm.partner_id}"
    for record in records:
        assert "Васил Левски".encode() not in (record.value or b"")


async def test_legal_data_on_the_pages(settings: Settings) -> None:
    firm = await register(settings, "sme", "Plast Pleven")
    async with running_api(plain(settings), create_service) as client:
        # The pages act for an organisation once the projector has it in the registry.
        await projected(settings, firm)
        admin = await person(settings, firm.partner_id, "admin")
        member = await person(settings, firm.partner_id, "member")
        staff = await person(settings, None, "operator")

        client.session.cookie_jar.update_cookies({"session": member})
        assert (await client.get("/app/legal")).status == 403

        client.session.cookie_jar.clear()
        client.session.cookie_jar.update_cookies({"session": admin})
        page = await client.get("/app/legal")
        assert page.status == 200
        csrf = csrf_of(await page.text())
        form = LEGAL | {"vat_number": "SE5567321707", "csrf": csrf}
        r = await client.post("/app/legal", data=form)
        assert r.status == 422
        html = await r.text()
        assert 'id="vat_number-error"' in html
        assert "form used in SE" in html
        assert 'aria-invalid="true" aria-describedby="vat_number-error"' in html
        assert "Пласт Плевен ООД" in html  # what was typed stays in the form

        r = await client.post("/app/legal", data=LEGAL | {"csrf": csrf, "key": "page-1"})
        assert r.status == 200, await r.text()
        assert 'id="notice"' in await r.text()

        async def stored() -> bool:
            found = await legal_of(client, firm.partner_id, firm.auth)
            return found is not None and found["city"] == "Плевен"

        await eventually(stored, 30)

        # The association's staff change it for the organisation.
        client.session.cookie_jar.clear()
        client.session.cookie_jar.update_cookies({"session": staff})
        path = f"/app/staff/organisations/{firm.partner_id}/legal"
        page = await client.get(path)
        assert page.status == 200
        html = await page.text()
        assert "ул. Васил Левски 12" in html  # the declared data, prefilled
        csrf = csrf_of(html)
        r = await client.post(path, data=LEGAL | {"city": "Плевен-град", "csrf": csrf})
        assert r.status == 200, await r.text()

        async def changed() -> bool:
            found = await legal_of(client, firm.partner_id, firm.auth)
            return found is not None and found["city"] == "Плевен-град"

        await eventually(changed, 30)
        assert (await client.get("/app/staff/organisations/no-such/legal")).status == 404
