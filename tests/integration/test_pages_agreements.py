"""Standing agreements, their deliveries and the feedback after them on the pages (#19), against
the real stack (API with the pages, projector): a buyer's member sees the agreement and its
scheduled period, confirms the period's delivery and rates it, through the API's own commands
(the API sees the delivery and the answer); refusals land next to the field, in the person's
language; a read-only member sees and cannot act; another organisation's agreement is 404."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestClient

from marketplace.core import periods
from marketplace.settings import Settings
from producers.web.app import create_service
from schemas.common import Agreement, Quantity
from tests.integration.api_helpers import eventually, projected, register, running_api
from tests.integration.test_feedback import NOW, confirmed_match_with_carrier
from tests.integration.test_pages_accounts import csrf_of, plain
from tests.integration.test_pages_matrix import person

pytestmark = pytest.mark.integration
Client = TestClient[Any, Any]


async def as_person(client: Client, token: str) -> str:
    """Signs the client in with the session `token`; the CSRF token of its pages."""
    client.session.cookie_jar.clear()
    client.session.cookie_jar.update_cookies({"session": token})
    page = await client.get("/app/account")
    assert page.status == 200
    return csrf_of(await page.text())


async def test_a_buyer_confirms_a_period_and_rates_it_on_the_pages(settings: Settings) -> None:
    settings = plain(settings)
    seller = await register(settings, "sme", "Bryggeri Falun AB")
    buyer = await register(settings, "sme", "Foder Borlänge AB")
    stranger = await register(settings, "sme", "Nosy Neighbour AB")
    today = datetime.now(UTC).date()
    agreement = Agreement(period="month", quantity=Quantity(amount=8, unit="t"), starts=today)
    delivery_id = str(uuid.uuid4())
    buyer_member = await person(settings, buyer.partner_id, "member")
    seller_reader = await person(settings, seller.partner_id, "read-only")
    outsider = await person(settings, stranger.partner_id, "admin")
    async with running_api(settings, create_service) as client:
        match_id = await confirmed_match_with_carrier(
            settings, seller, buyer, None, agreement=agreement, delivery_id=delivery_id
        )
        await projected(settings, seller, buyer, stranger)
        page_of = f"/app/agreements/{match_id}"
        csrf = await as_person(client, buyer_member)

        async def scheduled() -> bool:
            listed = await (await client.get("/app/agreements")).text()
            return f'id="agreement-{match_id}"' in listed and "1 period scheduled" in listed

        await eventually(scheduled, 30)
        shown = await client.get(page_of)
        html = await shown.text()
        assert shown.status == 200
        # The period's name is the calendar month its pickup window opens in (tomorrow, in
        # test_feedback's match).
        this_month = periods.key_of("month", (NOW + timedelta(days=1)).date())
        assert f"Period {this_month}" in html
        assert "8 t every month" in html
        assert f'action="{page_of}/delivered"' in html
        assert f'action="{page_of}/feedback"' not in html  # nothing to rate before delivery

        # Feedback before the delivery is the API's refusal, in the page's words.
        early = await client.post(
            f"{page_of}/feedback",
            data={"csrf": csrf, "delivery_id": delivery_id, "rating": "4", "reason": "quantity"},
        )
        assert early.status == 409
        assert "it has not been confirmed yet" in await early.text()

        # A note longer than the API takes is refused next to the note field.
        long = await client.post(
            f"{page_of}/delivered",
            data={"csrf": csrf, "delivery_id": delivery_id, "note": "x" * 2001},
        )
        assert long.status == 422
        text = await long.text()
        assert 'id="note-1-error"' in text
        assert "This is too long." in text

        confirmed = await client.post(
            f"{page_of}/delivered",
            data={"csrf": csrf, "key": str(uuid.uuid4()), "delivery_id": delivery_id},
            allow_redirects=False,
        )
        assert confirmed.status == 303, await confirmed.text()
        assert confirmed.headers["Location"] == f"{page_of}?delivered={delivery_id}"

        async def delivered() -> bool:
            answer = await client.get(f"/v1/matches/{match_id}/feedback", headers=buyer.auth)
            body = orjson.loads(await answer.read())
            return [d["delivery_id"] for d in body["deliveries"]] == [delivery_id]

        await eventually(delivered, 30)
        html = await (await client.get(page_of)).text()
        assert "confirmed on" in html
        assert f'action="{page_of}/delivered"' not in html
        assert f'action="{page_of}/feedback"' in html

        again = await client.post(
            f"{page_of}/delivered", data={"csrf": csrf, "delivery_id": delivery_id}
        )
        assert again.status == 409
        assert "This delivery was confirmed already." in await again.text()

        # A rating missing, then a reason not on the list: each named next to its field.
        wrong = await client.post(
            f"{page_of}/feedback",
            data={
                "csrf": csrf,
                "delivery_id": delivery_id,
                "reason": "timeliness",
                "comment": "ok",
            },
        )
        assert wrong.status == 422
        text = await wrong.text()
        assert 'id="rating-1-error"' in text
        assert "Fill this in." in text
        assert ">ok</textarea>" in text  # what was typed stays
        assert re.search(r'<option value="timeliness"\s+selected>', text)
        wrong = await client.post(
            f"{page_of}/feedback",
            data={"csrf": csrf, "delivery_id": delivery_id, "rating": "3", "reason": "vibes"},
        )
        assert wrong.status == 422
        text = await wrong.text()
        assert re.search(r'id="reason-1-error">Choose one of the options.<', text)
        assert 'id="rating-1-error"' not in text
        assert re.search(r'id="rating-1-3" name="rating" value="3" checked', text)

        rated = await client.post(
            f"{page_of}/feedback",
            data={
                "csrf": csrf,
                "key": str(uuid.uuid4()),
                "delivery_id": delivery_id,
                "rating": "4",
                "reason": "material_quality",
                "comment": "clean grain, on time",
            },
            allow_redirects=False,
        )
        assert rated.status == 303, await rated.text()

        async def answered() -> list[Any]:
            answer = await client.get(f"/v1/matches/{match_id}/feedback", headers=buyer.auth)
            return list(orjson.loads(await answer.read())["your_feedback"])

        async def some() -> bool:
            return bool(await answered())

        await eventually(some, 30)
        (mine,) = await answered()
        assert (mine["rating"], mine["reason"], mine["side"]) == (4, "material_quality", "buyer")
        assert mine["comment"] == "clean grain, on time"
        html = await (await client.get(page_of)).text()
        assert "4 of 5, mostly for quality of the material" in html
        assert f'action="{page_of}/feedback"' not in html
        twice = await client.post(
            f"{page_of}/feedback",
            data={"csrf": csrf, "delivery_id": delivery_id, "rating": "1", "reason": "other"},
        )
        assert twice.status == 409
        assert "it counts once" in await twice.text()

        # The seller's read-only member sees the delivery, and no form; a post is refused.
        csrf = await as_person(client, seller_reader)
        seen = await client.get(page_of)
        html = await seen.text()
        assert seen.status == 200
        assert "confirmed on" in html
        assert "You sell" in html
        assert '<form method="post" action="/app/agreements' not in html
        refused = await client.post(
            f"{page_of}/feedback",
            data={"csrf": csrf, "delivery_id": delivery_id, "rating": "5", "reason": "price"},
        )
        assert refused.status == 403
        listed = await (await client.get("/app/agreements")).text()
        assert f'id="agreement-{match_id}"' in listed
        assert "/app/agreements/new" not in listed

        # Another organisation: the agreement does not exist for it, on any of its pages.
        csrf = await as_person(client, outsider)
        assert (await client.get(page_of)).status == 404
        for action in ("delivered", "feedback"):
            answer = await client.post(
                f"{page_of}/{action}",
                data={"csrf": csrf, "delivery_id": delivery_id, "rating": "1", "reason": "other"},
            )
            assert answer.status == 404, action
        listed = await (await client.get("/app/agreements")).text()
        assert match_id not in listed

        # Setting up a steady flow: the request form, set to a monthly flow from today.
        form = await (await client.get("/app/agreements/new?kind=request")).text()
        assert re.search(r'<option value="month"\s+selected>', form)
        assert f'value="{today.isoformat()}"' in form
        assert 'action="/app/requests"' in form
