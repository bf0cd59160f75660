"""A logistics firm's pages (#19), against the real stack (API with the pages, projector, matcher,
notifier, job creator, auctioneer, scheduler). The firm's side goes through the pages only: its
coverage declared on the page (refusals next to their fields), a confirmed match's transport job
arriving on its live list without a reload, a quote sent, revised, withdrawn and sent again, the
award shown as won; the SMEs and a rival firm use the API. Then who may see what: only
logistics firms reach the pages, read-only members change nothing, a job outside a firm's
coverage is not there for it, and a firm never sees another firm's quotes."""

from __future__ import annotations

import dataclasses
import html as htmlib
import re
import uuid
from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestClient

from marketplace import accounts
from marketplace.db import connect
from marketplace.settings import Settings
from marketplace.translate.auction import job_id_for
from producers.web.app import create_service
from tests.integration.api_helpers import eventually, projected, register, running_api
from tests.integration.kafka_helpers import end_offsets
from tests.integration.notify_helpers import notifier_running
from tests.integration.test_auction import auction_running, declare, get, quote, until
from tests.integration.test_matcher import matcher_running, matches_about, near, offer, request
from tests.integration.test_pages_accounts import PASSWORD, csrf_of, plain
from tests.integration.test_pages_proposals import next_event

pytestmark = pytest.mark.integration
Client = TestClient[Any, Any]


async def sign_in_as(
    settings: Settings, client: Client, partner_id: str | None, role: str = "admin"
) -> None:
    """A new person of the organisation (an operator when `partner_id` is None), invited and
    signed in on this client (whoever was signed in before is forgotten)."""
    client.session.cookie_jar.clear()
    conn = await connect(settings)
    try:
        person = await accounts.create_person(
            conn,
            partner_id=partner_id,
            email=f"p-{uuid.uuid4().hex[:10]}@haulier.example",
            display_name="Lars Öberg",
            role=role,  # type: ignore[arg-type]
        )
        token = await accounts.issue_link(conn, person.person_id, "invite")
    finally:
        await conn.close()
    page = await client.get(f"/app/invite/{token}")
    sent = await client.post(
        f"/app/invite/{token}",
        data={"csrf": csrf_of(await page.text()), "password": PASSWORD, "repeat": PASSWORD},
        allow_redirects=False,
    )
    assert sent.status == 303


async def page_of(client: Client, path: str, status: int = 200) -> str:
    r = await client.get(path)
    text = await r.text()
    assert r.status == status, text
    return text


def value_of(html: str, name: str) -> str:
    found = re.search(rf'name="{re.escape(name)}"[^>]*value="([^"]*)"', html)
    assert found, f"no field {name}"
    return htmlib.unescape(found.group(1))


async def send(client: Client, path: str, form: dict[str, str], page: str) -> Any:
    """Posts the form of `page` (its CSRF token and idempotency key) with `form`'s fields."""
    data = {"csrf": csrf_of(page)} | form
    if 'name="key"' in page and "key" not in form:
        data["key"] = value_of(page, "key")
    return await client.post(path, data=data, allow_redirects=False)


def coverage_form(lat: float, lon: float, **extra: str) -> dict[str, str]:
    return {
        "depots.0.location.lat": f"{lat}",
        "depots.0.location.lon": f"{lon}",
        "depots.0.radius_km": "200",
        "capacity_t": "24",
        "vehicle_types.rigid_truck": "on",
        "vehicle_types.articulated_truck": "on",
    } | extra


async def test_a_firm_declares_coverage_quotes_revises_withdraws_and_wins_on_the_pages(
    settings: Settings,
) -> None:
    quick = dataclasses.replace(
        plain(settings), auction_bidding_period_s=30.0, scheduler_interval_s=0.2
    )
    seller = await register(settings, "sme", "Folie Norr AB")
    buyer = await register(settings, "sme", "Granulat Luleå AB")
    firm = await register(settings, "logistics", "Åkeri Rättvik AB")
    rival = await register(settings, "logistics", "Frakt Kiruna AB")
    far = await register(settings, "logistics", "Транспорт Пловдив ЕООД")
    here = {"lat": 66.0 + uuid.uuid4().int % 1000 / 1000, "lon": 16.0}
    since = await end_offsets(settings, "market.matches")
    async with (
        running_api(quick, create_service) as client,
        matcher_running(quick) as group,
        notifier_running(quick),
        auction_running(quick),
    ):
        await sign_in_as(quick, client, firm.partner_id, "member")
        # /app/logistics leads to the jobs, which ask for the coverage first.
        r = await client.get("/app/logistics", allow_redirects=False)
        assert (r.status, r.headers["Location"]) == (303, "/app/logistics/jobs")
        assert "Declare your coverage first" in await page_of(client, "/app/logistics/jobs")

        # The coverage form refuses what the API refuses, next to the field, and keeps the rest.
        form_page = await page_of(client, "/app/logistics/coverage")
        assert 'aria-current="page"' in form_page
        # (The API names the first wrong field of a body; so does the page.)
        no_capacity = coverage_form(here["lat"], here["lon"], capacity_t="")
        r = await send(client, "/app/logistics/coverage", no_capacity, form_page)
        assert r.status == 422
        refused = await r.text()
        assert 'id="capacity_t-error"' in refused
        assert re.search(r'id="capacity_t"[^>]*aria-invalid="true"', refused, re.S)
        assert f'value="{here["lat"]}"' in refused
        below = coverage_form(here["lat"], here["lon"], **{"depots.0.radius_km": "-5"})
        r = await send(client, "/app/logistics/coverage", below, refused)
        assert r.status == 422
        refused = await r.text()
        assert 'id="depots-0-radius_km-error"' in refused
        assert "Enter more than 0." in refused
        no_vehicle = dict(coverage_form(here["lat"], here["lon"]).items())
        del no_vehicle["vehicle_types.rigid_truck"], no_vehicle["vehicle_types.articulated_truck"]
        r = await send(client, "/app/logistics/coverage", no_vehicle, refused)
        assert r.status == 422
        assert 'id="vehicle_types-error"' in await r.text()

        form_page = await page_of(client, "/app/logistics/coverage")
        r = await send(
            client, "/app/logistics/coverage", coverage_form(here["lat"], here["lon"]), form_page
        )
        assert r.status == 303, await r.text()
        assert r.headers["Location"] == "/app/logistics/coverage?saved"
        # The API's own declaration: the API reads it back.
        caps = await get(client, firm, "/v1/carrier/capabilities")
        assert caps["depots"][0]["radius_km"] == 200
        assert caps["vehicle_types"] == ["rigid_truck", "articulated_truck"]
        shown = await page_of(client, "/app/logistics/coverage?saved")
        assert 'value="24"' in shown
        assert re.search(r'id="vehicle-rigid_truck"[^>]*checked', shown, re.S)

        await declare(client, rival, here["lat"], here["lon"])
        await declare(client, far, 42.15, 24.75)

        stream = await client.get("/app/logistics/live?list=jobs")
        assert stream.status == 200
        assert stream.headers["Content-Type"].startswith("text/event-stream")
        name, _first = await next_event(stream)
        assert name == "jobs"

        # Two SMEs agree through the API; the confirmed match becomes a transport job.
        r = await client.post("/v1/offers", json=offer(here, 5, 10), headers=seller.auth)
        assert r.status == 202, await r.text()
        offer_id = (await r.json())["offer_id"]
        r = await client.post(
            "/v1/requests", json=request(near(here, 0.3), 5, 90), headers=buyer.auth
        )
        assert r.status == 202, await r.text()
        ((_, proposed),) = await matches_about(
            quick, since, {offer_id}, {"market.match.proposed.v1"}, 1, group
        )
        match_id = proposed["match_id"]
        for sme in (seller, buyer):
            await get(client, sme, f"/v1/matches/{match_id}")
            r = await client.post(f"/v1/matches/{match_id}/accept", headers=sme.auth)
            assert r.status == 202, await r.text()
        job_id = job_id_for(match_id)

        # The job arrives on the open stream without asking again.
        listed = ""
        while f'id="job-{job_id}"' not in listed:
            name, listed = await next_event(stream)
            assert name == "jobs"
        stream.close()
        assert "150102" in listed
        assert "5 t" in listed
        assert f'href="/app/logistics/jobs/{job_id}"' in listed

        job_page = await page_of(client, f"/app/logistics/jobs/{job_id}")
        assert "Send a quote" in job_page
        start = value_of(job_page, "pickup_at")
        assert value_of(job_page, "quote_id") == ""

        # A pickup outside the window is refused next to the field.
        r = await send(
            client,
            f"/app/logistics/jobs/{job_id}/quotes",
            {
                "price.amount": "900",
                "vehicle": "rigid_truck",
                "co2e_kg": "40",
                "pickup_at": "2030-01-01T08:00",
            },
            job_page,
        )
        assert r.status == 422
        refused = await r.text()
        assert 'id="pickup_at-error"' in refused
        assert "pickup window" in refused

        # A rival quotes through the API; its quote never shows on this firm's pages.
        rival_quote = await quote(client, rival, job_id, 1234, 50, pickup_at=start + ":00Z")

        quote_form = {"price.amount": "900", "vehicle": "rigid_truck", "co2e_kg": "40"}
        r = await send(
            client,
            f"/app/logistics/jobs/{job_id}/quotes",
            quote_form | {"pickup_at": start},
            job_page,
        )
        assert r.status == 303, await r.text()
        assert r.headers["Location"] == f"/app/logistics/jobs/{job_id}?done=sent"
        job_page = await page_of(client, r.headers["Location"])
        first = value_of(job_page, "quote_id")
        assert first
        assert f'id="quote-{first}"' in job_page
        assert "900.00 EUR" in job_page
        assert "Revise your quote" in job_page

        # Revised: the same quote, a new price.
        r = await send(
            client,
            f"/app/logistics/jobs/{job_id}/quotes",
            quote_form | {"price.amount": "850", "pickup_at": start, "quote_id": first},
            job_page,
        )
        assert r.status == 303, await r.text()
        job_page = await page_of(client, r.headers["Location"])
        assert "850.00 EUR" in job_page
        assert "900.00 EUR" not in job_page
        assert job_page.count('id="quote-') == 1

        # Withdrawn, then a new quote.
        r = await send(
            client, f"/app/logistics/jobs/{job_id}/quotes/{first}/withdraw", {}, job_page
        )
        assert r.status == 303, await r.text()
        job_page = await page_of(client, r.headers["Location"])
        assert re.search(rf'id="quote-{first}".*?withdrawn', job_page, re.S)
        assert value_of(job_page, "quote_id") == ""
        r = await send(
            client,
            f"/app/logistics/jobs/{job_id}/quotes",
            quote_form | {"price.amount": "800", "pickup_at": start},
            job_page,
        )
        assert r.status == 303, await r.text()
        job_page = await page_of(client, r.headers["Location"])
        second = value_of(job_page, "quote_id")
        assert second
        assert second != first
        for seen in (job_page, await page_of(client, "/app/logistics/jobs")):
            assert rival_quote not in seen
            assert "1234.00" not in seen
        assert "Your quote: 800.00 EUR" in await page_of(client, "/app/logistics/jobs")

        # Another firm's quote cannot be withdrawn through this firm's page.
        r = await send(
            client, f"/app/logistics/jobs/{job_id}/quotes/{rival_quote}/withdraw", {}, job_page
        )
        assert r.status == 404

        # The far firm's person: the job is not there for it.
        await sign_in_as(quick, client, far.partner_id)
        assert f"job-{job_id}" not in await page_of(client, "/app/logistics/jobs")
        await page_of(client, f"/app/logistics/jobs/{job_id}", 404)

        # After the deadline the lowest quote wins; the page says so, the rival lost.
        async def decided() -> bool:
            r = await client.get(f"/v1/jobs/{job_id}", headers=firm.auth)
            return bool((await r.json()).get("your_outcome") == "won")

        await eventually(decided, 90)
        await until(client, rival, f"/v1/jobs/{job_id}", "your_outcome", "lost")
        await sign_in_as(quick, client, firm.partner_id, "read-only")
        awards = await page_of(client, "/app/logistics/awards")
        row = re.search(rf'<tr id="award-{job_id}">.*?</tr>', awards, re.S)
        assert row is not None
        assert "won at 800.00 EUR" in row.group(0)
        job_page = await page_of(client, f"/app/logistics/jobs/{job_id}")
        assert "You won this job." in job_page
        assert "Send a quote" not in job_page  # read-only, and bidding is over
        assert rival_quote not in job_page

        # The rival's people see it lost, without the winning price.
        await sign_in_as(quick, client, rival.partner_id)
        awards = await page_of(client, "/app/logistics/awards")
        row = re.search(rf'<tr id="award-{job_id}">.*?</tr>', awards, re.S)
        assert row is not None
        assert "lost" in row.group(0)
        assert "800.00" not in awards


async def test_only_logistics_firms_reach_the_pages_and_read_only_members_change_nothing(
    settings: Settings,
) -> None:
    settings = plain(settings)
    sme = await register(settings, "sme", "Textil Söderhamn AB")
    firm = await register(settings, "logistics", "Åkeri Mora AB")
    pages = (
        "/app/logistics/jobs",
        "/app/logistics/coverage",
        "/app/logistics/awards",
        "/app/logistics/jobs/some-job",
        "/app/logistics/live?list=jobs",
    )
    async with running_api(settings, create_service) as client:
        await projected(settings, sme, firm)
        # An SME's admin and the association's operator: 403 on every page and form.
        for partner_id, role in ((sme.partner_id, "admin"), (None, "operator")):
            await sign_in_as(settings, client, partner_id, role)
            home = await page_of(client, "/app/account")
            for path in pages:
                await page_of(client, path, 403)
            r = await send(client, "/app/logistics/coverage", coverage_form(60.0, 15.0), home)
            assert r.status == 403
            r = await send(client, "/app/logistics/jobs/some-job/quotes", {}, home)
            assert r.status == 403

        # A read-only member of the firm reads the coverage page, and cannot save it.
        await sign_in_as(settings, client, firm.partner_id, "read-only")
        shown = await page_of(client, "/app/logistics/coverage")
        assert 'id="save-coverage"' not in shown
        r = await send(client, "/app/logistics/coverage", coverage_form(60.0, 15.0), shown)
        assert r.status == 403
        assert (await client.get("/v1/carrier/capabilities", headers=firm.auth)).status == 404

        # A member can; before any coverage, a job id is not there (404), after it neither
        # when no such job fits.
        await sign_in_as(settings, client, firm.partner_id, "member")
        await page_of(client, "/app/logistics/jobs/some-job", 404)
        shown = await page_of(client, "/app/logistics/coverage")
        r = await send(client, "/app/logistics/coverage", coverage_form(60.0, 15.0), shown)
        assert r.status == 303, await r.text()
        await page_of(client, "/app/logistics/jobs/some-job", 404)
        r = await client.post(
            "/app/logistics/coverage", data=coverage_form(60.0, 15.0) | {"csrf": "forged"}
        )
        assert r.status == 403
        body = orjson.loads(
            await (await client.get("/v1/carrier/capabilities", headers=firm.auth)).read()
        )
        assert body["capacity_t"] == 24
