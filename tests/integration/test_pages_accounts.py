"""People's accounts and the first pages (#19), against the real PostgreSQL and Kafka: an
invitation printed by the operator's CLI, a password chosen through it, a session, an offer
posted and withdrawn through the pages (the same command as the API: the API sees it), the form's
errors next to their fields in the person's language, CSRF, throttling, sessions ended, and one
organisation never reaching another's data."""

from __future__ import annotations

import dataclasses
import os
import re
import subprocess
import sys
import time
import uuid
from typing import Any

import orjson
import pyotp
import pytest
from aiohttp.test_utils import TestClient

from marketplace import accounts
from marketplace.db import connect
from marketplace.settings import Settings
from producers.web.app import create_service
from tests.integration.api_helpers import (
    Partner,
    eventually,
    offer_body,
    projected,
    register,
    request_body,
    running_api,
)
from tests.integration.kafka_helpers import end_offsets, read_since

PASSWORD = "correct horse battery staple"  # noqa: S105 - a test account's
OFFER_FORM = {
    "material.code": "040222",
    "material.description": "cotton offcuts",
    "material.form": "bales",
    "terms.quantity.amount": "12.5",
    "terms.quantity.unit": "t",
    "terms.price.amount": "-15",
    "terms.price.currency": "EUR",
    "terms.available.start": "2026-12-01",
    "terms.available.end": "2027-01-31",
    "location.lat": "59.86",
    "location.lon": "17.64",
    "location.region": "SE121",
}


def plain(settings: Settings) -> Settings:
    # The test client speaks plain http, where a Secure cookie would not come back; the flags
    # themselves are checked with the default settings in the last test.
    return dataclasses.replace(settings, web_secure_cookies=False)


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, "the page has no CSRF token"
    return found.group(1)


def cli_run(*args: str) -> subprocess.CompletedProcess[str]:
    env = os.environ | {"MARKETPLACE_WEB_BASE_URL": "http://127.0.0.1:1"}
    return subprocess.run(
        [sys.executable, "-m", "marketplace.app.cli", "people", *args],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


def cli(settings: Settings, *args: str) -> str:
    done = cli_run(*args)
    assert done.returncode == 0, done.stderr
    return done.stdout


def email() -> str:
    return f"p-{uuid.uuid4().hex[:10]}@example.org"


async def accept(client: TestClient[Any, Any], link: str, password: str = PASSWORD) -> None:
    path = link[link.index("/app/") :]
    page = await client.get(path)
    assert page.status == 200
    html = await page.text()
    sent = await client.post(
        path,
        data={"csrf": csrf_of(html), "password": password, "repeat": password},
        allow_redirects=False,
    )
    assert sent.status == 303, await sent.text()
    assert sent.headers["Location"] == "/app/"


async def invited(
    settings: Settings, client: TestClient[Any, Any], partner: Partner, role: str = "admin"
) -> str:
    address = email()
    out = cli(
        settings,
        "invite",
        address,
        "--name",
        "Ana Petrova",
        "--partner",
        partner.partner_id,
        "--role",
        role,
    )
    link = out.strip().split(": ", 1)[1]
    assert link.startswith("http://127.0.0.1:1/app/invite/")
    await accept(client, link)
    return address


async def home(client: TestClient[Any, Any]) -> str:
    page = await client.get("/app/")
    assert page.status == 200
    return await page.text()


async def test_an_invited_person_posts_and_withdraws_an_offer_through_the_pages(
    settings: Settings,
) -> None:
    settings = plain(settings)
    sme = await register(settings, "sme", name="Söderhamn Textil AB")
    async with running_api(settings, create_service) as client:
        await invited(settings, client, sme)
        html = await home(client)
        assert "Ana Petrova" in html
        form_page = await client.get("/app/offers/new")
        form_html = await form_page.text()
        key = re.search(r'name="key" value="([^"]+)"', form_html)
        assert key is not None

        async def registered() -> bool:
            sent = await client.post(
                "/app/offers",
                data=OFFER_FORM | {"csrf": csrf_of(form_html), "key": key.group(1)},
                allow_redirects=False,
            )
            return sent.status == 303

        # The partner's registration reaches the read model through the projector first.
        await eventually(registered, 30)

        # The API sees the offer the page posted: the same command, the same event.
        async def listed() -> list[dict[str, Any]]:
            answer = await client.get("/v1/offers", headers=sme.auth)
            return list(orjson.loads(await answer.read())["items"])

        async def one() -> bool:
            return len(await listed()) == 1

        await eventually(one, 30)
        offer = (await listed())[0]
        assert offer["material"]["code"] == "040222"
        assert offer["terms"]["quantity"] == {"amount": 12.5, "unit": "t"}
        assert offer["terms"]["available"]["end"].startswith("2027-01-31T23:59:59")
        # Sending the same form again (a double click) posts nothing more.
        again = await client.post(
            "/app/offers",
            data=OFFER_FORM | {"csrf": csrf_of(form_html), "key": key.group(1)},
            allow_redirects=False,
        )
        assert again.status == 303
        assert len(await listed()) == 1
        html = await home(client)
        assert f'id="listing-{offer["id"]}"' in html
        withdrawn = await client.post(
            f"/app/offers/{offer['id']}/withdraw",
            data={"csrf": csrf_of(html)},
            allow_redirects=False,
        )
        assert withdrawn.status == 303

        async def gone() -> bool:
            return bool((await listed())[0]["status"] == "withdrawn")

        await eventually(gone, 30)


async def test_a_form_error_is_shown_next_to_its_field_in_the_persons_language(
    settings: Settings,
) -> None:
    settings = plain(settings)
    sme = await register(settings, "sme")
    async with running_api(settings, create_service) as client:
        await invited(settings, client, sme)
        html = await home(client)
        switched = await client.post(
            "/app/language",
            data={"csrf": csrf_of(html), "locale": "bg", "next": "/app/offers/new"},
            allow_redirects=False,
        )
        assert switched.status == 303
        form_page = await client.get("/app/offers/new")
        assert form_page.headers["Content-Language"] == "bg"
        form_html = await form_page.text()
        assert '<html lang="bg">' in form_html

        async def refused() -> str:
            sent = await client.post(
                "/app/offers",
                data=OFFER_FORM | {"csrf": csrf_of(form_html), "terms.quantity.amount": "много"},
            )
            assert sent.status in (403, 422), sent.status  # 403 until the partner is projected
            return await sent.text() if sent.status == 422 else ""

        page = ""

        async def got() -> bool:
            nonlocal page
            page = await refused()
            return bool(page)

        await eventually(got, 30)
        assert 'id="terms-quantity-amount"' in page
        assert 'aria-describedby="terms-quantity-amount-error"' in page
        error = re.search(r'<p class="error" id="terms-quantity-amount-error">([^<]+)</p>', page)
        assert error is not None
        assert error.group(1) == "Въведете число."
        # What was typed stays in the form.
        assert 'value="cotton offcuts"' in page
        # An unknown code is refused by the API's own check, named at its field.
        sent = await client.post(
            "/app/offers", data=OFFER_FORM | {"csrf": csrf_of(form_html), "material.code": "999999"}
        )
        assert sent.status == 422
        assert 'id="material-code-error"' in await sent.text()


async def test_forms_need_their_csrf_token_and_this_sites_origin(settings: Settings) -> None:
    settings = plain(settings)
    sme = await register(settings, "sme")
    async with running_api(settings, create_service) as client:
        await invited(settings, client, sme)
        html = await home(client)
        missing = await client.post("/app/offers", data=OFFER_FORM)
        assert missing.status == 403
        wrong = await client.post("/app/offers", data=OFFER_FORM | {"csrf": "x" * 43})
        assert wrong.status == 403
        elsewhere = await client.post(
            "/app/logout",
            data={"csrf": csrf_of(html)},
            headers={"Origin": "https://attacker.example"},
        )
        assert elsewhere.status == 403
        assert "Ana Petrova" in await home(client)  # still signed in


async def test_signing_in_is_throttled_and_says_the_same_for_unknown_accounts(
    settings: Settings,
) -> None:
    settings = plain(settings)
    sme = await register(settings, "sme")
    async with running_api(settings, create_service) as client:
        address = await invited(settings, client, sme)
        client.session.cookie_jar.clear()
        page = await client.get("/app/login")
        token = csrf_of(await page.text())

        async def sign_in(who: str, password: str) -> tuple[int, str]:
            sent = await client.post(
                "/app/login",
                data={"csrf": token, "email": who, "password": password, "next": "/app/"},
                allow_redirects=False,
            )
            return sent.status, await sent.text()

        unknown = await sign_in(email(), "whatever it is")
        wrong = await sign_in(address, "not the password")
        assert unknown[0] == wrong[0] == 401
        assert "The e-mail or the password is not right." in unknown[1]
        assert "The e-mail or the password is not right." in wrong[1]
        for _ in range(accounts.PER_ACCOUNT - 1):
            assert (await sign_in(address, "not the password"))[0] == 401
        status, html = await sign_in(address, PASSWORD)
        assert status == 429
        assert "Wait 15 minutes" in html
        # Another account from the same address is not locked by this one's failures.
        other = await invited(settings, client, sme, role="member")
        client.session.cookie_jar.clear()
        page = await client.get("/app/login")
        token = csrf_of(await page.text())
        status, _html = await sign_in(other, PASSWORD)
        assert status == 303


async def test_signing_out_and_password_resets_end_sessions(settings: Settings) -> None:
    settings = plain(settings)
    sme = await register(settings, "sme")
    async with running_api(settings, create_service) as client:
        address = await invited(settings, client, sme)
        conn = await connect(settings)
        try:
            person_id = await conn.fetchval(
                "SELECT person_id FROM people WHERE email = $1", address
            )
            person = await accounts.person_by_id(conn, str(person_id))
            assert person is not None
            elsewhere = await accounts.open_session(conn, person)  # another browser
            html = await home(client)
            out = await client.post(
                "/app/logout-everywhere", data={"csrf": csrf_of(html)}, allow_redirects=False
            )
            assert out.status == 303
            assert await accounts.session_of(conn, elsewhere) is None
            again = await client.get("/app/", allow_redirects=False)
            assert again.status == 303
            assert again.headers["Location"].startswith("/app/login?next=")
            # A reset link sets a new password once, and ends every session.
            link = cli(settings, "reset-link", address).strip().split(": ", 1)[1]
            kept = await accounts.open_session(conn, person)
            await accept(client, link, "a new and longer passphrase")
            assert await accounts.session_of(conn, kept) is None
            used = await client.get(link[link.index("/app/") :])
            assert used.status == 404
            with pytest.raises(accounts.AccountError) as refused:
                await accounts.sign_in(conn, address, PASSWORD, "test")
            assert refused.value.code == "credentials"
        finally:
            await conn.close()


async def test_one_organisation_never_reaches_anothers_data(settings: Settings) -> None:
    settings = plain(settings)
    mine, theirs = await register(settings, "sme"), await register(settings, "sme")
    async with running_api(settings, create_service) as client:
        # Their offer, through the API.
        async def posted() -> bool:
            sent = await client.post("/v1/offers", json=offer_body(), headers=theirs.auth)
            return sent.status == 202

        await eventually(posted, 30)

        async def visible() -> list[dict[str, Any]]:
            answer = await client.get("/v1/offers", headers=theirs.auth)
            return list(orjson.loads(await answer.read())["items"])

        await eventually(lambda: _nonempty(visible), 30)
        their_offer = (await visible())[0]["id"]
        # The pages act for an organisation once the projector has it (CI met a 403 "not
        # registered yet" on the withdrawal below when it had not).
        await projected(settings, mine)
        await invited(settings, client, mine, role="read-only")
        html = await home(client)
        assert their_offer not in html
        # A read-only member cannot post, and no one withdraws another organisation's offer.
        page = await client.get("/app/offers/new")
        token = csrf_of(await page.text())
        assert (await client.post("/app/offers", data=OFFER_FORM | {"csrf": token})).status == 403
        assert (await client.get("/app/members")).status == 403
        await invited(settings, client, mine, role="admin")
        page = await client.get("/app/")
        token = csrf_of(await page.text())
        stolen = await client.post(f"/app/offers/{their_offer}/withdraw", data={"csrf": token})
        assert stolen.status == 404
        assert (await visible())[0]["status"] == "open"
        members = await (await client.get("/app/members")).text()
        assert "Ana Petrova" in members
        assert theirs.partner_id not in members


async def _nonempty(read: Any) -> bool:
    return bool(await read())


async def test_pages_ask_for_a_session_and_keep_out_of_frames_and_caches(
    settings: Settings,
) -> None:
    async with running_api(settings, create_service) as client:
        answer = await client.get("/app/offers/new", allow_redirects=False)
        assert answer.status == 303
        assert answer.headers["Location"] == "/app/login?next=/app/offers/new"
        login = await client.get("/app/login")
        assert login.status == 200
        assert "frame-ancestors 'none'" in login.headers["Content-Security-Policy"]
        assert login.headers["Cache-Control"] == "no-store"
        assert login.headers["Referrer-Policy"] == "same-origin"
        cookie = login.headers["Set-Cookie"]
        assert cookie.startswith("__Host-csrf=")
        for flag in ("Secure", "HttpOnly", "SameSite=Lax", "Path=/"):
            assert flag in cookie
        # The API's own routes still want an API key, not a session.
        assert (await client.get("/v1/offers")).status == 401
        assert (await client.post("/app/offers", data=OFFER_FORM)).status == 401


REQUEST_FORM = {
    "material.code": "200139",
    "material.description": "plastics for regranulation",
    "accepts_codes": "150102, 020104",
    "terms.quantity.amount": "4",
    "terms.quantity.unit": "t",
    "terms.max_price.amount": "80",
    "terms.max_price.currency": "EUR",
    "terms.wanted.start": "2026-12-15",
    "terms.wanted.end": "2027-03-01",
    "terms.max_distance_km": "150",
    "terms.recurrence.period": "month",
    "terms.recurrence.starts": "2027-01-01",
    "terms.specification.max_contamination_pct": "5",
    "terms.specification.certifications": "EuCertPlast",
    "location.lat": "60.67",
    "location.lon": "17.14",
}


async def test_a_request_with_accepted_codes_a_flow_and_a_specification_through_the_pages(
    settings: Settings,
) -> None:
    settings = plain(settings)
    sme = await register(settings, "sme")
    async with running_api(settings, create_service) as client:
        await invited(settings, client, sme)
        form_page = await client.get("/app/requests/new")
        form_html = await form_page.text()
        token = csrf_of(form_html)
        # A code that is no entry of the List of Waste, among the accepted ones: at its field.
        refused = ""

        async def named() -> bool:
            nonlocal refused
            sent = await client.post(
                "/app/requests",
                data=REQUEST_FORM | {"csrf": token, "accepts_codes": "150102 999999"},
            )
            refused = await sent.text()
            return sent.status == 422

        await eventually(named, 30)
        assert 'id="accepts_codes-error"' in refused
        assert 'value="150102 999999"' in refused
        # Sent right, it is the API's request (the same command), flow and specification too.
        sent = await client.post(
            "/app/requests", data=REQUEST_FORM | {"csrf": token}, allow_redirects=False
        )
        assert sent.status == 303, await sent.text()

        async def listed() -> list[dict[str, Any]]:
            answer = await client.get("/v1/requests", headers=sme.auth)
            return list(orjson.loads(await answer.read())["items"])

        await eventually(lambda: _nonempty(listed), 30)
        request = (await listed())[0]
        assert request["accepts_codes"] == ["150102", "020104"]
        assert request["terms"]["recurrence"] == {
            "period": "month",
            "starts": "2027-01-01",
            "ends": None,
        }
        assert request["terms"]["specification"]["max_contamination_pct"] == 5
        assert request["terms"]["specification"]["certifications"] == ["EuCertPlast"]
        assert request["terms"]["max_distance_km"] == 150
        html = await home(client)
        assert f'action="/app/requests/{request["id"]}/withdraw"' in html


def totp_code(secret: str, offset: int = 0) -> str:
    totp = pyotp.TOTP(secret)
    return totp.generate_otp(int(time.time() // totp.interval) + offset)


async def test_a_second_factor_is_set_up_on_the_page_and_asked_for_at_sign_in(
    settings: Settings,
) -> None:
    settings = plain(settings)
    sme = await register(settings, "sme")
    async with running_api(settings, create_service) as client:
        address = await invited(settings, client, sme)
        page = await (await client.get("/app/account")).text()
        started = await client.post("/app/account/second-factor/new", data={"csrf": csrf_of(page)})
        html = await started.text()
        secret = re.search(r'name="secret" value="([A-Z2-7]+)"', html)
        assert secret is not None
        assert 'src="data:image/svg+xml' in html  # the QR code, inline
        wrong = await client.post(
            "/app/account/second-factor",
            data={"csrf": csrf_of(html), "secret": secret.group(1), "code": "000000"},
        )
        assert wrong.status == 422
        assert 'id="code-error"' in await wrong.text()
        on = await client.post(
            "/app/account/second-factor",
            data={
                "csrf": csrf_of(html),
                "secret": secret.group(1),
                "code": totp_code(secret.group(1)),
            },
            allow_redirects=False,
        )
        assert on.status == 303
        conn = await connect(settings)
        try:
            stored = await conn.fetchval("SELECT totp_sealed FROM people WHERE email = $1", address)
        finally:
            await conn.close()
        assert stored.startswith("fernet:")
        assert secret.group(1) not in stored  # sealed, never in clear

        client.session.cookie_jar.clear()
        login = await client.get("/app/login")
        token = csrf_of(await login.text())

        async def sign_in(code: str) -> int:
            sent = await client.post(
                "/app/login",
                data={"csrf": token, "email": address, "password": PASSWORD, "code": code},
                allow_redirects=False,
            )
            return sent.status

        assert await sign_in("") == 401  # the password alone is not enough
        fresh = totp_code(secret.group(1), 1)
        assert await sign_in(fresh) == 303
        client.session.cookie_jar.clear()
        login = await client.get("/app/login")
        token = csrf_of(await login.text())
        assert await sign_in(fresh) == 401  # a code works once
        assert await sign_in("999999") == 401
        # Signed in (a session opened directly: the app's next code is 30 s away), turning the
        # second factor off takes a current, unused code too.
        conn = await connect(settings)
        try:
            person_id = await conn.fetchval(
                "SELECT person_id FROM people WHERE email = $1", address
            )
            person = await accounts.person_by_id(conn, str(person_id))
            assert person is not None
            session = await accounts.open_session(conn, person)
        finally:
            await conn.close()
        client.session.cookie_jar.update_cookies({"session": session})
        page = await (await client.get("/app/account")).text()
        refused = await client.post(
            "/app/account/second-factor/off", data={"csrf": csrf_of(page), "code": "123456"}
        )
        assert refused.status == 422


async def test_a_key_rotation_reseals_the_second_factors(settings: Settings) -> None:
    from marketplace.secretbox import KeyRing, new_key

    old, new = KeyRing((new_key(),)), KeyRing((new_key(),))
    conn = await connect(settings)
    try:
        person = await accounts.create_person(
            conn, partner_id="p-rotation", email=email(), display_name="R", role="member"
        )
        secret = accounts.new_totp_secret()
        await accounts.enable_totp(
            conn, old, person.person_id, secret, totp_code(secret), time.time()
        )
        both = KeyRing((*new.keys, *old.keys))
        done = await accounts.seal_totp(conn, both)
        assert done.sealed >= 1
        assert done.unreadable == [] or all("person" in u for u in done.unreadable)
        assert await accounts.check_totp(
            conn, new, person.person_id, totp_code(secret, 1), time.time()
        )
    finally:
        await conn.close()


async def test_the_open_market_shows_others_listings_without_their_owner(
    settings: Settings,
) -> None:
    settings = plain(settings)
    mine, theirs = await register(settings, "sme"), await register(settings, "sme", "Secret AB")
    async with running_api(settings, create_service) as client:
        marked = f"hidden-{uuid.uuid4().hex[:8]}"
        body = offer_body("040222")
        body["material"]["description"] = marked
        body["location"]["region"] = "SE121"

        async def posted() -> bool:
            sent = await client.post("/v1/offers", json=body, headers=theirs.auth)
            return sent.status == 202

        await eventually(posted, 30)
        await invited(settings, client, mine)

        async def shown() -> str:
            page = await client.get("/app/market", params={"q": "textile fibres", "region": "SE12"})
            assert page.status == 200
            return await page.text()

        async def listed() -> bool:
            return "040222" in await shown()

        await eventually(listed, 30)
        html = await shown()
        assert "SE121" in html
        for secret in (marked, theirs.partner_id, "Secret AB", "59.86", "17.64"):
            assert secret not in html
        elsewhere = await client.get("/app/market", params={"q": "040222", "region": "BG"})
        assert "SE121" not in await elsewhere.text()
        wrong = await client.get("/app/market", params={"kind": "everything"})
        assert wrong.status == 422


async def test_a_person_is_named_in_events_by_a_pseudonym_exported_and_erased(
    settings: Settings,
) -> None:
    settings = plain(settings)
    sme = await register(settings, "sme")
    since = await end_offsets(settings, "market.listings")
    async with running_api(settings, create_service) as client:
        address = await invited(settings, client, sme)
        form_html = await (await client.get("/app/offers/new")).text()

        async def posted() -> bool:
            sent = await client.post(
                "/app/offers",
                data=OFFER_FORM | {"csrf": csrf_of(form_html)},
                allow_redirects=False,
            )
            return sent.status == 303

        await eventually(posted, 30)
    exported = orjson.loads(cli(settings, "export", address))
    person_id = exported["account"]["person_id"]
    assert exported["account"]["email"] == address
    assert exported["account"]["display_name"] == "Ana Petrova"
    assert [e["what"] for e in exported["account_events"]][:1] == ["password-set-by-invite"]
    assert "password_hash" not in exported["account"]
    # The event names the person by the pseudonymous id only: no name, no e-mail.
    records = [r for r in await read_since(settings, "market.listings", since) if r.value]
    mine = [r for r in records if person_id.encode() in r.value]
    assert len(mine) == 1
    assert orjson.loads(mine[0].value)["person_id"] == person_id
    assert address.encode() not in mine[0].value
    assert b"Ana Petrova" not in mine[0].value
    # Erased: nothing of the person is left but the id in that event.
    assert person_id in cli(settings, "erase", address)
    conn = await connect(settings)
    try:
        assert not await conn.fetchval("SELECT count(*) FROM people WHERE email = $1", address)
        assert not await conn.fetchval(
            "SELECT count(*) FROM account_events WHERE person_id = $1", uuid.UUID(person_id)
        )
        assert not await conn.fetchval(
            "SELECT count(*) FROM web_sessions WHERE person_id = $1", uuid.UUID(person_id)
        )
    finally:
        await conn.close()
    assert cli_run("export", address).returncode == 1


async def test_an_offer_and_a_request_are_changed_on_the_pages(settings: Settings) -> None:
    settings = plain(settings)
    sme, other = await register(settings, "sme"), await register(settings, "sme")
    async with running_api(settings, create_service) as client:
        await invited(settings, client, sme)

        async def post(path: str, body: dict[str, Any], who: Partner) -> str:
            sent: str | None = None

            async def done() -> bool:
                nonlocal sent
                answer = await client.post(path, json=body, headers=who.auth)
                if answer.status == 202:
                    data = await answer.json()
                    sent = str(data.get("offer_id") or data.get("request_id"))
                return sent is not None

            await eventually(done, 30)
            assert sent is not None
            return sent

        offer_id = await post("/v1/offers", offer_body("040222"), sme)
        request_id = await post("/v1/requests", request_body("040222"), sme)
        theirs = await post("/v1/offers", offer_body("040222"), other)

        async def editable(path: str) -> bool:
            return (await client.get(path)).status == 200

        await eventually(lambda: editable(f"/app/offers/{offer_id}/edit"), 30)
        page = await (await client.get(f"/app/offers/{offer_id}/edit")).text()
        assert 'name="terms.quantity.amount" type="text" value="12.5"' in page
        assert 'id="terms-available-start" name="terms.available.start" type="date"' in page
        assert 'value="2026-12-01"' in page
        token = csrf_of(page)
        form = {
            "csrf": token,
            "terms.quantity.amount": "20",
            "terms.quantity.unit": "t",
            "terms.price.amount": "-12",
            "terms.price.currency": "EUR",
            "terms.available.start": "2026-12-01",
            "terms.available.end": "2027-02-28",
            "terms.min_lot.amount": "",
            "terms.min_lot.unit": "",
        }
        refused = await client.post(
            f"/app/offers/{offer_id}", data=form | {"terms.min_lot.amount": "30"}
        )
        assert refused.status == 422
        assert 'id="terms-min_lot-unit-error"' in await refused.text()
        changed = await client.post(
            f"/app/offers/{offer_id}",
            data=form | {"terms.min_lot.amount": "2", "terms.min_lot.unit": "t"},
            allow_redirects=False,
        )
        assert changed.status == 303, await changed.text()

        async def updated() -> bool:
            answer = await client.get(f"/v1/offers/{offer_id}", headers=sme.auth)
            terms = orjson.loads(await answer.read())["terms"]
            return bool(terms["quantity"]["amount"] == 20 and terms["min_lot"]["amount"] == 2)

        await eventually(updated, 30)
        # A request: its distance and its specification's weight.
        page = await (await client.get(f"/app/requests/{request_id}/edit")).text()
        assert 'value="150"' in page
        sent = await client.post(
            f"/app/requests/{request_id}",
            data={
                "csrf": token,
                "terms.quantity.amount": "5",
                "terms.quantity.unit": "t",
                "terms.max_price.amount": "25",
                "terms.max_price.currency": "EUR",
                "terms.wanted.start": "2026-12-15",
                "terms.wanted.end": "2027-03-01",
                "terms.max_distance_km": "300",
                "terms.specification.weight_price": "0.8",
            },
            allow_redirects=False,
        )
        assert sent.status == 303, await sent.text()

        async def request_updated() -> bool:
            answer = await client.get(f"/v1/requests/{request_id}", headers=sme.auth)
            terms = orjson.loads(await answer.read())["terms"]
            return bool(
                terms["max_distance_km"] == 300 and terms["specification"]["weight_price"] == 0.8
            )

        await eventually(request_updated, 30)
        # Another organisation's offer cannot be opened or changed here.
        assert (await client.get(f"/app/offers/{theirs}/edit")).status == 404
        assert (await client.post(f"/app/offers/{theirs}", data=form)).status == 404
