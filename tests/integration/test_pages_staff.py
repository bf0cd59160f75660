"""The association's pages (#19) against the real PostgreSQL and Kafka: its staff register an
organisation with its first admin, who accepts the invitation and signs in; the impact figures
and the period report's PDF; an auditor's verification and export of the audit log; a
facilitator posting an offer and nudging for an SME that consented, refused for one that did
not; and each page refused (403) to every other role."""

from __future__ import annotations

import re
import tempfile
import uuid
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from marketplace import accounts
from marketplace.audit.bundle import verify_bundle
from marketplace.db import connect
from marketplace.settings import Settings
from producers.web.app import create_service
from tests.integration.api_helpers import (
    Partner,
    eventually,
    offer_body,
    projected,
    register,
    running_api,
)
from tests.integration.test_pages_accounts import PASSWORD, accept, csrf_of, email, plain

pytestmark = pytest.mark.integration

Client = TestClient[Any, Any]
OFFER_FORM = {
    "material.code": "040222",
    "material.description": "offcuts posted by the facilitator",
    "material.form": "bales",
    "terms.quantity.amount": "3",
    "terms.quantity.unit": "t",
    "terms.price.amount": "0",
    "terms.price.currency": "EUR",
    "terms.available.start": "2026-12-01",
    "terms.available.end": "2027-01-31",
    "location.lat": "61.30",
    "location.lon": "17.06",
    "location.region": "SE313",
}


async def new_person(
    settings: Settings, client: Client, partner_id: str | None, role: str = "admin"
) -> str:
    """A person who accepted their invitation: signed in on `client` (any earlier session is
    dropped first). Returns the e-mail."""
    conn = await connect(settings)
    try:
        person = await accounts.create_person(
            conn,
            partner_id=partner_id,
            email=email(),
            display_name="Staff Person" if partner_id is None else "Org Person",
            role=role,  # type: ignore[arg-type]
        )
        token = await accounts.issue_link(conn, person.person_id, "invite")
    finally:
        await conn.close()
    client.session.cookie_jar.clear()
    await accept(client, f"http://x/app/invite/{token}")
    return person.email


async def sign_in(client: Client, address: str) -> None:
    client.session.cookie_jar.clear()
    page = await client.get("/app/login")
    sent = await client.post(
        "/app/login",
        data={"csrf": csrf_of(await page.text()), "email": address, "password": PASSWORD},
        allow_redirects=False,
    )
    assert sent.status == 303, await sent.text()


async def csrf(client: Client, path: str = "/app/account") -> str:
    return csrf_of(await (await client.get(path)).text())


async def test_staff_register_an_organisation_whose_admin_then_signs_in(
    settings: Settings,
) -> None:
    settings = plain(settings)
    name = f"Väveri Söderhamn {uuid.uuid4().hex[:6]} AB"
    async with running_api(settings, create_service) as client:
        await new_person(settings, client, None, "operator")
        page = await client.get("/app/staff/organisations")
        assert page.status == 200
        token = csrf_of(await page.text())

        # Refused with the reasons next to their fields, nothing registered.
        refused = await client.post(
            "/app/staff/organisations",
            data={
                "csrf": token,
                "name": name,
                "role": "sme",
                "country": "Sweden",
                "admin_name": "Eva",
                "admin_email": "not an address",
            },
        )
        assert refused.status == 422
        html = await refused.text()
        assert 'id="country-error"' in html
        assert 'id="admin_email-error"' in html

        admin_email = email()
        sent = await client.post(
            "/app/staff/organisations",
            data={
                "csrf": token,
                "name": name,
                "role": "sme",
                "country": "se",
                "region": "SE313",
                "sector": "13.92",
                "admin_name": "Eva Lind",
                "admin_email": admin_email,
                "admin_locale": "sv",
            },
        )
        assert sent.status == 200
        html = await sent.text()
        link = re.search(r'<code id="invite-link">([^<]+)</code>', html)
        key = re.search(r'<code id="api-key">(mk_[^<]+)</code>', html)
        partner = re.search(r'<code id="partner-id">([^<]+)</code>', html)
        assert link, html
        assert key, html
        assert partner, html

        # The same form again: the e-mail now has an account, nothing is registered twice.
        again = await client.post(
            "/app/staff/organisations",
            data={
                "csrf": token,
                "name": name,
                "role": "sme",
                "country": "SE",
                "admin_name": "Eva Lind",
                "admin_email": admin_email,
            },
        )
        assert again.status == 422
        assert "already has an account" in await again.text()

        # The registration went through the registry (the projector's read model has it) and
        # its API key works.
        await projected(settings, partner.group(1))
        listed = await client.get("/app/staff/organisations", params={"q": name[:20]})
        assert name in await listed.text()
        me = await client.get("/v1/me", headers={"Authorization": f"Bearer {key.group(1)}"})
        assert (await me.json())["partner_id"] == partner.group(1)

        # The admin accepts the invitation, signs out and in again, and manages members.
        client.session.cookie_jar.clear()
        await accept(client, link.group(1))
        await sign_in(client, admin_email)
        members = await client.get("/app/members")
        assert members.status == 200
        assert admin_email in await members.text()
        conn = await connect(settings)
        try:
            row = await conn.fetchrow(
                "SELECT partner_id, role, locale FROM people WHERE email = $1", admin_email
            )
        finally:
            await conn.close()
        assert row is not None
        assert dict(row) == {"partner_id": partner.group(1), "role": "admin", "locale": "sv"}


async def test_staff_invite_an_admin_to_an_existing_organisation(settings: Settings) -> None:
    settings = plain(settings)
    firm = await register(settings, "logistics", "Åkeri Rättvik AB")
    async with running_api(settings, create_service) as client:
        await projected(settings, firm)
        await new_person(settings, client, None, "operator")
        page = f"/app/staff/organisations/{firm.partner_id}/admins"
        listed = await client.get("/app/staff/organisations", params={"q": "Åkeri Rättvik"})
        assert f'href="{page}"' in await listed.text()
        shown = await client.get(page)
        assert shown.status == 200
        html = await shown.text()
        assert "Invite an admin to Åkeri Rättvik AB" in html
        token = csrf_of(html)
        assert (await client.get("/app/staff/organisations/no-such-org/admins")).status == 404

        refused = await client.post(
            page,
            data={
                "csrf": token,
                "display_name": "Karin",
                "email": "not an address",
                "admin_locale": "sv",
            },
        )
        assert refused.status == 422
        assert 'id="email-error"' in await refused.text()
        unnamed = await client.post(
            page,
            data={"csrf": token, "display_name": " ", "email": email(), "admin_locale": "sv"},
        )
        assert unnamed.status == 422
        assert 'id="display_name-error"' in await unnamed.text()
        admin_email = email()
        sent = await client.post(
            page,
            data={
                "csrf": token,
                "display_name": "Karin Ek",
                "email": admin_email,
                "admin_locale": "sv",
            },
        )
        assert sent.status == 200, await sent.text()
        html = await sent.text()
        link = re.search(r'<code id="invite-link">([^<]+)</code>', html)
        assert link, html
        assert "<td>Karin Ek</td><td>admin</td>" in html
        twice = await client.post(
            page,
            data={"csrf": token, "display_name": "Karin Ek", "email": admin_email},
        )
        assert twice.status == 422
        assert "already has an account" in await twice.text()

        # The invitation went to the mailer too, and the new admin manages the members.
        conn = await connect(settings)
        try:
            row = await conn.fetchrow(
                "SELECT person_id, partner_id, role, locale FROM people WHERE email = $1",
                admin_email,
            )
            assert row is not None
            mailed = await conn.fetchval(
                "SELECT count(*) FROM mail_deliveries WHERE person_id = $1"
                " AND kind = 'account.invite'",
                row["person_id"],
            )
        finally:
            await conn.close()
        assert (row["partner_id"], row["role"], row["locale"]) == (firm.partner_id, "admin", "sv")
        assert mailed == 1
        client.session.cookie_jar.clear()
        await accept(client, link.group(1))
        await sign_in(client, admin_email)
        members = await client.get("/app/members")
        assert members.status == 200
        assert admin_email in await members.text()
        # Not for anyone but the association's staff.
        assert (await client.get(page)).status == 403


async def test_staff_see_the_impact_and_download_the_period_report(settings: Settings) -> None:
    settings = plain(settings)
    sme = await register(settings, "sme")
    secret = f"private description {uuid.uuid4().hex}"
    async with running_api(settings, create_service) as client:
        body = offer_body()
        body["material"]["description"] = secret
        posted = await client.post(
            "/v1/offers", json=body, headers={"Authorization": f"Bearer {sme.key}"}
        )
        assert posted.status == 202, await posted.text()
        await new_person(settings, client, None, "operator")
        page = await client.get("/app/staff/impact", params={"slice": "chapter"})
        assert page.status == 200
        html = await page.text()
        assert "Offers posted" in html
        assert "Tonnes exchanged" in html
        assert 'id="consumers"' in html
        bad = await client.get("/app/staff/impact", params={"from": "yesterday"})
        assert bad.status == 422
        pdf = await client.get("/app/staff/report.pdf")
        assert pdf.status == 200
        assert pdf.headers["Content-Type"] == "application/pdf"
        assert "attachment" in pdf.headers["Content-Disposition"]
        assert (await pdf.read()).startswith(b"%PDF-")
        # An operator sees figures and the registry, never an SME's listing.
        for path in ("/app/staff/impact", "/app/staff/organisations", "/app/"):
            assert secret not in await (await client.get(path)).text()


async def _finished(client: Client, location: str) -> str:
    found = ""

    async def done() -> bool:
        nonlocal found
        found = await (await client.get(location + "/status")).text()
        return "hx-trigger" not in found

    await eventually(done, 120)
    return found


async def test_an_auditor_verifies_and_exports_the_log_from_the_browser(
    settings: Settings,
) -> None:
    settings = plain(settings)
    auditor = await register(settings, "auditor", "Revisionsbyrå AB")
    async with running_api(settings, create_service) as client:
        await projected(settings, auditor.partner_id)
        await new_person(settings, client, auditor.partner_id, "read-only")
        page = await client.get("/app/audit")
        assert page.status == 200
        token = csrf_of(await page.text())
        sent = await client.post(
            "/app/audit/verify",
            data={"csrf": token, "from": "2020-01-01", "to": "2099-12-31"},
            allow_redirects=False,
        )
        assert sent.status == 303
        location = sent.headers["Location"]
        status = await _finished(client, location)
        assert 'id="verdict"' in status
        assert "Intact" in status or "problem" in status
        assert 'id="records"' in status
        job = await (await client.get(location)).text()
        assert "Verification of the audit log" in job

        backwards = await client.post(
            "/app/audit/export", data={"csrf": token, "from": "2027-01-02", "to": "2027-01-01"}
        )
        assert backwards.status == 422
        sent = await client.post(
            "/app/audit/export",
            data={"csrf": token, "from": "2026-01-01"},
            allow_redirects=False,
        )
        assert sent.status == 303
        location = sent.headers["Location"]
        status = await _finished(client, location)
        assert "The export is ready" in status, status
        download = await client.get(location + "/bundle")
        assert download.status == 200
        assert "attachment" in download.headers["Content-Disposition"]
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "bundle.jsonl"
            path.write_bytes(await download.read())
            checked = verify_bundle(path, progress=False)
        assert checked.ok, checked.findings[:5]

        # Another auditor organisation cannot see this job.
        other = await register(settings, "auditor", "Andra Revisorer AB")
        await projected(settings, other.partner_id)
        await new_person(settings, client, other.partner_id)
        assert (await client.get(location)).status == 404
        assert (await client.get(location + "/bundle")).status == 404


async def _grant(client: Client, sme: Partner, facilitator: Partner) -> None:
    granted = await client.post(
        f"/v1/consents/{facilitator.partner_id}",
        json={"note": "help us post"},
        headers={"Authorization": f"Bearer {sme.key}"},
    )
    assert granted.status == 202, await granted.text()
    assert (await granted.json())["in_effect"] is True


async def test_a_facilitator_acts_for_a_consenting_sme_only(settings: Settings) -> None:
    settings = plain(settings)
    facilitator = await register(settings, "facilitator", "Företagsfrämjarna")
    consenting = await register(settings, "sme", f"Samtyckande AB {uuid.uuid4().hex[:6]}")
    other = await register(settings, "sme", f"Annan AB {uuid.uuid4().hex[:6]}")
    async with running_api(settings, create_service) as client:
        for p in (facilitator, consenting, other):
            await projected(settings, p.partner_id)
        await _grant(client, consenting, facilitator)
        await new_person(settings, client, facilitator.partner_id, "member")
        page = await client.get("/app/facilitation")
        assert page.status == 200
        html = await page.text()
        assert f'id="sme-{consenting.partner_id}"' in html
        assert other.partner_id not in html

        form = await client.get(f"/app/facilitation/{consenting.partner_id}/offers/new")
        assert form.status == 200
        form_html = await form.text()
        key = re.search(r'name="key" value="([^"]+)"', form_html)
        assert key
        fields = OFFER_FORM | {"csrf": csrf_of(form_html), "key": key.group(1)}
        refused = await client.post(
            f"/app/facilitation/{consenting.partner_id}/offers",
            data=fields | {"terms.quantity.amount": "a lot"},
        )
        assert refused.status == 422
        assert 'id="terms-quantity-amount-error"' in await refused.text()
        sent = await client.post(
            f"/app/facilitation/{consenting.partner_id}/offers", data=fields, allow_redirects=False
        )
        assert sent.status == 303, await sent.text()
        offer_id = sent.headers["Location"].split("posted=")[1]
        # Sent twice (the same form): posted once.
        twice = await client.post(
            f"/app/facilitation/{consenting.partner_id}/offers", data=fields, allow_redirects=False
        )
        assert twice.headers["Location"].split("posted=")[1] == offer_id

        # The SME sees the offer as its own through the API.
        async def owned() -> bool:
            got = await client.get(
                f"/v1/offers/{offer_id}", headers={"Authorization": f"Bearer {consenting.key}"}
            )
            return got.status == 200

        await eventually(owned, 30)

        # Not for an SME that did not consent: not found, and nothing posted.
        assert (await client.get(f"/app/facilitation/{other.partner_id}/offers/new")).status == 404
        not_for = await client.post(
            f"/app/facilitation/{other.partner_id}/offers",
            data=OFFER_FORM | {"csrf": fields["csrf"], "key": str(uuid.uuid4())},
            allow_redirects=False,
        )
        assert not_for.status == 404

        # A nudge about the SME's offer, once a day.
        async def listed() -> bool:
            return (
                f'id="listing-{offer_id}"' in await (await client.get("/app/facilitation")).text()
            )

        await eventually(listed, 30)
        nudged = await client.post(
            f"/app/facilitation/offers/{offer_id}/nudge",
            data={"csrf": fields["csrf"], "key": str(uuid.uuid4()), "message": "still there?"},
            allow_redirects=False,
        )
        assert nudged.status == 303, await nudged.text()

        async def sent_list() -> bool:
            html = await (await client.get("/app/facilitation")).text()
            return "still there?" in html

        await eventually(sent_list, 30)
        again = await client.post(
            f"/app/facilitation/offers/{offer_id}/nudge",
            data={"csrf": fields["csrf"], "key": str(uuid.uuid4())},
        )
        assert again.status == 409
        assert "less than a day ago" in await again.text()

        # A read-only person of the facilitator sees, and changes nothing.
        await new_person(settings, client, facilitator.partner_id, "read-only")
        assert (await client.get("/app/facilitation")).status == 200
        readonly = await client.post(
            f"/app/facilitation/{consenting.partner_id}/offers",
            data=OFFER_FORM | {"csrf": await csrf(client), "key": str(uuid.uuid4())},
        )
        assert readonly.status == 403


PAGES = (
    ("operator", "/app/staff/organisations"),
    ("operator", "/app/staff/impact"),
    ("operator", "/app/staff/report.pdf"),
    ("auditor", "/app/audit"),
    ("facilitator", "/app/facilitation"),
)
POSTS = (
    ("operator", "/app/staff/organisations"),
    ("auditor", "/app/audit/verify"),
    ("auditor", "/app/audit/export"),
    ("operator", "/app/staff/organisations/{sme}/admins"),
    ("facilitator", "/app/facilitation/{sme}/offers"),
    ("facilitator", "/app/facilitation/offers/{listing}/nudge"),
    ("facilitator", "/app/facilitation/{sme}/proposals/{listing}/accept"),
    ("facilitator", "/app/facilitation/{sme}/matches/{listing}/feedback"),
)


async def test_each_page_is_for_its_role_only(settings: Settings) -> None:
    settings = plain(settings)
    orgs = {
        role: await register(settings, role, f"{role} org")
        for role in ("sme", "logistics", "auditor", "facilitator")
    }
    async with running_api(settings, create_service) as client:
        for p in orgs.values():
            await projected(settings, p.partner_id)
        await _grant(client, orgs["sme"], orgs["facilitator"])
        people = {"operator": await new_person(settings, client, None, "operator")}
        for role, partner in orgs.items():
            people[role] = await new_person(settings, client, partner.partner_id)
        checked = 0
        for who, address in people.items():
            await sign_in(client, address)
            token = await csrf(client)
            for role, path in PAGES:
                got = await client.get(path, allow_redirects=False)
                expected = 200 if who == role else 403
                assert got.status == expected, (who, path, got.status)
                checked += 1
            for role, path in POSTS:
                if who == role:
                    continue
                target = path.format(sme=orgs["sme"].partner_id, listing="o-" + uuid.uuid4().hex)
                got = await client.post(target, data={"csrf": token}, allow_redirects=False)
                assert got.status == 403, (who, target, got.status)
                assert "Not allowed" in await got.text()
                checked += 1
        assert checked == len(people) * len(PAGES) + len(people) * len(POSTS) - len(POSTS)
        client.session.cookie_jar.clear()
        for _role, path in PAGES:
            got = await client.get(path, allow_redirects=False)
            assert got.status == 303
            assert got.headers["Location"].startswith("/app/login")
