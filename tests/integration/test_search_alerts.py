"""Alerts of saved searches (#19) against real Kafka, PostgreSQL and an SMTP server on loopback:
the alerts consumer reads new and changed listings on market.listings, and the mailer (groups of
their own) mails the one person whose marked search the listing fits, once, without naming the
listing's owner; an unmarked search, the owner's own organisation and the person's colleagues
get nothing; a posting read again and a change that still fits send nothing twice; a change that
makes a listing fit is alerted then; a listing that confirmed deals have fully taken is no longer
alerted, one partly taken still is."""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from consumers.alerts import TOPICS, Alerts
from marketplace import accounts
from marketplace.db import connect
from marketplace.mail import prefs
from marketplace.runtime.service import run_consumer
from marketplace.settings import Settings
from producers.web.app import create_service
from schemas import listings as ls
from schemas.common import Location, Material, Money, Quantity, Window
from schemas.matches import MatchConfirmed
from tests.integration.api_helpers import Partner, eventually, register, running_api
from tests.integration.mail_helpers import Sink, mail_settings, mailer_running, person
from tests.integration.notify_helpers import publish, start_at_end
from tests.integration.test_mail import text_of
from tests.integration.test_pages_accounts import plain
from tests.integration.test_pages_agreements import as_person
from tests.integration.test_pages_searches import account as page_account

pytestmark = pytest.mark.integration


@asynccontextmanager
async def alerts_running(settings: Settings) -> AsyncIterator[str]:
    stop = asyncio.Event()
    group = f"test.alerts.{uuid.uuid4().hex[:8]}"
    await start_at_end(settings, group, TOPICS)
    task = asyncio.create_task(
        run_consumer(settings, group_id=group, topics=TOPICS, processor=Alerts(group), stop=stop)
    )
    try:
        yield group
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


async def saved(
    settings: Settings, who: accounts.Person, *, alerts: bool, q: str = "", region: str = ""
) -> None:
    conn = await connect(settings)
    try:
        await conn.execute(
            "INSERT INTO saved_searches (search_id, person_id, name, q, region, alerts_since)"
            " VALUES ($1, $2, $3, $4, $5, CASE WHEN $6::bool THEN now() END)",
            uuid.uuid4(),
            uuid.UUID(who.person_id),
            f"search {uuid.uuid4().hex[:6]}",
            q,
            region,
            alerts,
        )
    finally:
        await conn.close()


def window() -> Window:
    start = datetime.now(UTC) + timedelta(days=3)
    return Window(start=start, end=start + timedelta(days=60))


def offer(owner: Partner, region: str) -> ls.OfferPosted:
    return ls.OfferPosted(
        offer_id=str(uuid.uuid4()),
        owner_id=owner.partner_id,
        actor_id=owner.partner_id,
        material=Material(code="150102", description="PE film bales"),
        location=Location(lat=60.67, lon=17.14, region=region),
        terms=ls.OfferTerms(
            quantity=Quantity(amount=7, unit="t"),
            price=Money(amount=40, currency="EUR"),
            available=window(),
        ),
    )


def request_terms(amount: float) -> ls.RequestTerms:
    return ls.RequestTerms(
        quantity=Quantity(amount=amount, unit="t"),
        max_price=Money(amount=90, currency="EUR"),
        wanted=window(),
        max_distance_km=200,
    )


async def test_a_fitting_listing_is_mailed_once_to_the_person_of_the_marked_search(
    settings: Settings, tmp_path: Path
) -> None:
    # A region of this test's own, so no other test's listing or search plays a part.
    region = "Z" + "".join(chr(65 + b % 26) for b in uuid.uuid4().bytes[:4])
    with Sink() as sink:
        s = mail_settings(settings, tmp_path, sink.port)
        owner = await register(s, "sme", "Ägaren Hemlig AB")
        buyer = await register(s, "sme", "Köparen AB")
        ana = await person(s, buyer.partner_id, name="Ana")  # marked, wants it at once
        dora = await person(s, buyer.partner_id, name="Dora")  # marked, default: the digest
        emil = await person(s, buyer.partner_id, name="Emil")  # a search, not marked
        fred = await person(s, buyer.partner_id, name="Fred")  # no search: a colleague
        olle = await person(s, owner.partner_id, name="Olle")  # the owner's own organisation
        conn = await connect(s)
        try:
            await prefs.save_preferences(
                conn,
                ana.person_id,
                prefs.Preferences(kinds={"search.new_listing": "immediate"}),
            )
            await prefs.save_preferences(
                conn, olle.person_id, prefs.Preferences(kinds={"search.new_listing": "immediate"})
            )
            await prefs.save_preferences(
                conn, emil.person_id, prefs.Preferences(kinds={"search.new_listing": "immediate"})
            )
        finally:
            await conn.close()
        await saved(s, ana, alerts=True, q="1501", region=region[:3])
        await saved(s, ana, alerts=True, q="plastic", region=region)  # the same person twice
        await saved(s, dora, alerts=True, region=region)
        await saved(s, emil, alerts=False, region=region)
        await saved(s, olle, alerts=True, region=region)

        async with alerts_running(s) as group, mailer_running(s) as mail_group:
            posted = offer(owner, region)
            [posted_id] = await publish(s, posted)

            async def mailed() -> bool:
                return len(sink.to(ana.email)) == 1

            await eventually(mailed, 60)
            # Read again (the same event) and changed, still fitting: nothing more.
            await publish(s, posted, ids=[posted_id])
            await publish(
                s,
                ls.OfferUpdated(
                    offer_id=posted.offer_id,
                    owner_id=owner.partner_id,
                    actor_id=owner.partner_id,
                    material_code="150102",
                    terms=ls.OfferTerms(
                        quantity=Quantity(amount=9, unit="t"),
                        price=Money(amount=40, currency="EUR"),
                        available=window(),
                    ),
                ),
            )
            # A request for wood in the region: Ana's searches (1501..., plastic) do not fit it,
            # Dora's (the region alone) does. Changed to plastic packaging, it fits Ana's.
            wood = ls.RequestPosted(
                request_id=str(uuid.uuid4()),
                owner_id=owner.partner_id,
                actor_id=owner.partner_id,
                material=Material(code="030105", description="sawdust"),
                location=Location(lat=60.67, lon=17.14, region=region),
                terms=request_terms(3),
            )
            await publish(s, wood)

            async def dora_told_twice() -> bool:
                conn = await connect(s)
                try:
                    n = await conn.fetchval(
                        "SELECT count(*) FROM search_alerts_sent WHERE group_id = $1"
                        " AND person_id = $2",
                        group,
                        uuid.UUID(dora.person_id),
                    )
                finally:
                    await conn.close()
                return bool(n == 2)

            await eventually(dora_told_twice, 60)
            assert len(sink.to(ana.email)) == 1, "the wood request does not fit Ana's searches"
            await publish(
                s,
                ls.RequestUpdated(
                    request_id=wood.request_id,
                    owner_id=owner.partner_id,
                    actor_id=owner.partner_id,
                    material_code="150102",
                    terms=request_terms(3),
                ),
            )

            async def mailed_again() -> bool:
                return len(sink.to(ana.email)) == 2

            await eventually(mailed_again, 60)
            await asyncio.sleep(2.0)  # nothing more comes

            first, second = sink.to(ana.email)
            assert first.msg["Subject"] == "A new listing fits your saved search: 150102"
            assert first.message_id != second.message_id
            body = text_of(first)
            assert "7 t" in body
            assert region in body
            for m in (first, second):
                assert "Ägaren" not in text_of(m)
                assert owner.partner_id not in text_of(m)
            for nobody in (emil, fred, olle):
                assert sink.to(nobody.email) == [], "unmarked, no search, or the owner's own"
            assert sink.to(dora.email) == []  # hers wait for the digest

            conn = await connect(s)
            try:
                sent = await conn.fetch(
                    "SELECT listing_id, person_id FROM search_alerts_sent WHERE group_id = $1",
                    group,
                )
                assert sorted((r["listing_id"], str(r["person_id"])) for r in sent) == sorted(
                    [
                        (posted.offer_id, ana.person_id),
                        (posted.offer_id, dora.person_id),
                        (wood.request_id, dora.person_id),
                        (wood.request_id, ana.person_id),
                    ]
                )
                items = await conn.fetch(
                    "SELECT person_id, kind, summary FROM mail_digest_items WHERE group_id = $1",
                    mail_group,
                )
                assert sorted((str(r["person_id"]), r["kind"]) for r in items) == [
                    (dora.person_id, "search.new_listing"),
                    (dora.person_id, "search.new_listing"),
                ]
                assert all("Ägaren" not in r["summary"] for r in items)
                sessions = {
                    who.person_id: await accounts.open_session(conn, who)
                    for who in (ana, dora, fred)
                }
            finally:
                await conn.close()

        # The pages show each person the alerts that name them, and nobody else's.
        async with running_api(s, create_service) as client:

            async def page_of(who: accounts.Person) -> str:
                await as_person(client, sessions[who.person_id])
                return await (await client.get("/app/market/searches")).text()

            def alerts_of(page: str) -> str:
                """The page's part with the alerts (after the saved searches' table)."""
                return page.partition("New listings for your searches")[2]

            async def shown() -> bool:
                return alerts_of(await page_of(ana)).count(f"<td>{region}</td>") == 2

            await eventually(shown, 60)
            page = await page_of(ana)
            assert 'id="search-alerts"' in page
            assert "150102 Plastic packaging" in page
            assert "Ägaren" not in page
            assert alerts_of(await page_of(dora)).count(f"<td>{region}</td>") == 2
            fred_page = await page_of(fred)
            assert region not in fred_page
            assert 'id="search-alerts"' not in fred_page
            assert "None yet." in alerts_of(fred_page)


def confirmed_taking(posted: ls.OfferPosted, buyer: Partner, weight_t: float) -> MatchConfirmed:
    """A confirmed one-off match taking `weight_t` of the offer (for a request of its own)."""
    w = window()
    return MatchConfirmed(
        match_id=str(uuid.uuid4()),
        offer_id=posted.offer_id,
        request_id=str(uuid.uuid4()),
        seller_id=posted.owner_id,
        buyer_id=buyer.partner_id,
        material_code=posted.material.code,
        hazardous=False,
        quantity=Quantity(amount=weight_t, unit="t"),
        weight_t=weight_t,
        pickup=posted.location,
        delivery=Location(lat=60.61, lon=16.54, region="SE312"),
        pickup_window=w,
        delivery_window=w,
        delivered_price=Money(amount=45, currency="EUR"),
    )


async def test_a_listing_fully_taken_by_a_confirmed_match_is_no_longer_alerted(
    settings: Settings,
) -> None:
    region = "Y" + "".join(chr(65 + b % 26) for b in uuid.uuid4().bytes[:4])
    owner = await register(settings, "sme", "Säljaren AB")
    buyer = await register(settings, "sme", "Köparen Två AB")
    ana = await person(settings, buyer.partner_id, name="Ana")
    whole, part = offer(owner, region), offer(owner, region)  # 7 t each

    async def count(sql: str, group: str) -> int:
        conn = await connect(settings)
        try:
            return int(await conn.fetchval(sql, group, [whole.offer_id, part.offer_id]))
        finally:
            await conn.close()

    async with alerts_running(settings) as group:
        await publish(settings, whole, part)

        async def kept() -> bool:
            sql = (
                "SELECT count(*) FROM search_alert_listings WHERE group_id = $1"
                " AND listing_id = ANY($2::text[]) AND base_quantity = 7"
            )
            return await count(sql, group) == 2

        await eventually(kept, 60)
        # Marked after the postings: only a later change of either could be news to Ana.
        await saved(settings, ana, alerts=True, region=region)
        # A confirmed deal takes all 7 t of one offer, another 3 t of the other (and a replay
        # of that confirmation counts once).
        partly = confirmed_taking(part, buyer, 3.0)
        [partly_id] = await publish(settings, partly)
        await publish(settings, confirmed_taking(whole, buyer, 7.0))
        await publish(settings, partly, ids=[partly_id])

        async def took() -> bool:
            sql = (
                "SELECT count(*) FROM search_alert_taken WHERE group_id = $1"
                " AND listing_id = ANY($2::text[])"
            )
            return await count(sql, group) == 2

        await eventually(took, 60)
        # Both owners change the price; the taken one first, on the same partition (one code).
        for changed in (whole, part):
            await publish(
                settings,
                ls.OfferUpdated(
                    offer_id=changed.offer_id,
                    owner_id=owner.partner_id,
                    actor_id=owner.partner_id,
                    material_code="150102",
                    terms=ls.OfferTerms(
                        quantity=Quantity(amount=7, unit="t"),
                        price=Money(amount=35, currency="EUR"),
                        available=window(),
                    ),
                ),
            )

        async def told() -> bool:
            sql = (
                "SELECT count(*) FROM search_alerts_sent WHERE group_id = $1"
                " AND listing_id = ANY($2::text[])"
            )
            return await count(sql, group) >= 1

        await eventually(told, 60)
        conn = await connect(settings)
        try:
            sent = await conn.fetch(
                "SELECT listing_id, person_id FROM search_alerts_sent WHERE group_id = $1",
                group,
            )
            taken = await conn.fetch(
                "SELECT listing_id, sum(taken) AS t FROM search_alert_taken WHERE group_id = $1"
                " AND listing_id = ANY($2::text[]) GROUP BY listing_id",
                group,
                [whole.offer_id, part.offer_id],
            )
        finally:
            await conn.close()
        # (Another test's person may have a search that fits too: only Ana's rows count.)
        assert [r["listing_id"] for r in sent if str(r["person_id"]) == ana.person_id] == [
            part.offer_id
        ]
        assert {r["listing_id"]: r["t"] for r in taken} == {
            whole.offer_id: 7.0,
            part.offer_id: 3.0,
        }


async def test_a_person_marks_and_unmarks_a_saved_search_on_the_page(settings: Settings) -> None:
    settings = plain(settings)
    sme = await register(settings, "sme", "Markerar AB")
    _, mine = await page_account(settings, sme.partner_id, "read-only")
    _, colleague = await page_account(settings, sme.partner_id, "admin")

    async def since(name: str) -> datetime | None:
        conn = await connect(settings)
        try:
            value: datetime | None = await conn.fetchval(
                "SELECT alerts_since FROM saved_searches WHERE name = $1",
                name,
            )
            return value
        finally:
            await conn.close()

    async with running_api(settings, create_service) as client:
        csrf = await as_person(client, mine)
        name = f"film {uuid.uuid4().hex[:6]}"
        saved_page = await client.post(
            "/app/market/searches",
            data={"csrf": csrf, "name": name, "q": "150102", "alerts": "on"},
            allow_redirects=False,
        )
        assert saved_page.status == 303
        page = await (await client.get("/app/market/searches")).text()
        found = re.search(r'<tr id="search-([0-9a-f-]{36})">', page)
        assert found is not None
        search_id = found.group(1)
        assert re.search(rf'id="alerts-{search_id}" name="alerts" checked', page)
        marked = await since(name)
        assert marked is not None

        # Saved again ticked: the mark keeps its moment. Unticked: no alerts.
        again = await client.post(
            f"/app/market/searches/{search_id}/alerts",
            data={"csrf": csrf, "alerts": "on"},
            allow_redirects=False,
        )
        assert again.status == 303
        assert await since(name) == marked
        off = await client.post(
            f"/app/market/searches/{search_id}/alerts", data={"csrf": csrf}, allow_redirects=False
        )
        assert off.status == 303
        assert off.headers["Location"].startswith("/app/market/searches?alerts=1")
        page = await (await client.get("/app/market/searches?alerts=1")).text()
        assert "Your choice of messages is saved." in page
        assert not re.search(rf'id="alerts-{search_id}" name="alerts" checked', page)
        assert await since(name) is None
        # Without the form's token, or as anyone else: refused.
        assert (await client.post(f"/app/market/searches/{search_id}/alerts")).status == 403
        csrf_colleague = await as_person(client, colleague)
        other = await client.post(
            f"/app/market/searches/{search_id}/alerts",
            data={"csrf": csrf_colleague, "alerts": "on"},
        )
        assert other.status == 404
        assert await since(name) is None
