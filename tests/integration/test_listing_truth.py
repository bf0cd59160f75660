"""Issue #17 item 4: a listing tells the truth. Its 202 and its read model say whether it can be
matched now and, if not, why, with codes a page can translate; Bulgarian prices are in euro; and
the preview of a draft request agrees with what a running matcher then proposes."""

from __future__ import annotations

from typing import Any

import pytest

from marketplace.settings import Settings
from tests.integration.api_helpers import eventually, register, running_api
from tests.integration.kafka_helpers import end_offsets
from tests.integration.test_matcher import (
    matcher_running,
    matches_about,
    near,
    offer,
    place,
    post,
    request,
)

pytestmark = pytest.mark.integration


def in_m3(body: dict[str, Any]) -> dict[str, Any]:
    terms = body["terms"] | {"quantity": {"amount": 30, "unit": "m3"}}
    return body | {"terms": terms}


async def test_answers_and_read_models_say_whether_a_listing_can_be_matched(
    settings: Settings,
) -> None:
    seller = await register(settings, "sme", "Agro Plovdiv OOD")
    spot = place()
    async with running_api(settings) as client:
        plain = await client.post("/v1/offers", json=offer(spot, 5, 10), headers=seller.auth)
        m3 = await client.post("/v1/offers", json=in_m3(offer(spot, 5, 10)), headers=seller.auth)
        food = await client.post(
            "/v1/offers", json=offer(spot, 5, 10, code="020304"), headers=seller.auth
        )
        answers = [await r.json() for r in (plain, m3, food)]
        assert [r.status for r in (plain, m3, food)] == [202, 202, 202]
        assert [a["matchable"] for a in answers] == [True, False, True]
        assert answers[0]["findings"] == []
        assert [f["code"] for f in answers[1]["findings"]] == ["unit-not-convertible"]
        assert answers[1]["findings"][0]["blocking"] is True
        food_codes = {f["code"]: f["blocking"] for f in answers[2]["findings"]}
        assert food_codes.get("co2e-unknown", False) is False  # never blocking

        m3_id = answers[1]["offer_id"]

        async def read() -> bool:
            return (await client.get(f"/v1/offers/{m3_id}", headers=seller.auth)).status == 200

        await eventually(read)
        shown = await (await client.get(f"/v1/offers/{m3_id}", headers=seller.auth)).json()
        assert shown["matchable"] is False
        assert [f["code"] for f in shown["findings"]] == ["unit-not-convertible"]

        lev = offer(spot, 5, 10)
        lev["terms"]["price"]["currency"] = "BGN"
        refused = await client.post("/v1/offers", json=lev, headers=seller.auth)
        assert refused.status == 422
        problem = await refused.json()
        assert problem["type"].endswith("/retired-currency")
        assert problem["errors"][0]["field"] == "terms.price.currency"


async def test_the_preview_says_what_the_running_matcher_then_proposes(
    settings: Settings,
) -> None:
    sellers = [await register(settings, "sme", f"Folie {i} AB") for i in range(5)]
    buyer = await register(settings, "sme", "Granulat Kiruna AB")
    spot = place()
    since = await end_offsets(settings, "market.matches")
    async with running_api(settings) as client, matcher_running(settings) as group:
        bodies = [
            offer(near(spot, 0.02), 5, 10),  # eligible
            offer(near(spot, 0.04), 5, 20),  # eligible
            offer(near(spot, 0.03), 5, 95),  # dearer than the buyer's maximum
            in_m3(offer(near(spot, 0.05), 5, 10)),  # no conversion to tonnes
            offer(near(spot, 3.0), 5, 10),  # 330 km: beyond the buyer's 100 km
        ]
        ids = [await post(client, s, "/v1/offers", b) for s, b in zip(sellers, bodies, strict=True)]

        async def listed() -> bool:
            for s, oid in zip(sellers, ids, strict=True):
                if (await client.get(f"/v1/offers/{oid}", headers=s.auth)).status != 200:
                    return False
            return True

        await eventually(listed)
        draft = request(spot, 20, 80)
        r = await client.post("/v1/requests/preview", json=draft, headers=buyer.auth)
        assert r.status == 200, await r.text()
        rows = {i["offer_id"]: i for i in (await r.json())["items"] if i["offer_id"] in ids}
        eligible = {oid for oid, row in rows.items() if row["eligible"]}
        assert eligible == set(ids[:2])
        assert set(rows) == set(ids[:4])  # the far one is counted as beyond the distance

        request_id = await post(client, buyer, "/v1/requests", draft)
        proposals = await matches_about(
            settings, since, {request_id}, {"market.match.proposed.v1"}, len(eligible), group
        )
    proposed = {b["offer_id"] for _, b in proposals if b["request_id"] == request_id}
    assert proposed == eligible
