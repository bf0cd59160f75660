"""A facilitator reads and answers an SME's matches, and gives its feedback, through the API
(#11), against the real stack (API, projector, Kafka, PostgreSQL): it names the SME in
`on_behalf_of` (the query of a read, the body of a write), sees the SME's matches as the SME does,
and its answer and its feedback are the SME's, with the facilitator as the actor. Without the
SME's consent, or for a match that is not the SME's, it is 404; without `on_behalf_of` the
problem names the field; an SME cannot use `on_behalf_of` for another partner (403)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from marketplace.db import connect
from marketplace.settings import Settings
from schemas.topics import MATCHES
from tests.integration.api_helpers import eventually, projected, register, running_api
from tests.integration.kafka_helpers import end_offsets, read_since
from tests.integration.notify_helpers import publish
from tests.integration.test_facilitators import problem
from tests.integration.test_feedback import confirmed_match_with_carrier
from tests.integration.test_pages_facilitation import event_about, grant, proposal

pytestmark = pytest.mark.integration


def refused_for(body: dict[str, Any], kind: str) -> None:
    """A refusal about `on_behalf_of`: of this problem type, naming the field."""
    assert body["type"].endswith(f"/{kind}"), body
    assert [e["field"] for e in body["errors"]] == ["on_behalf_of"], body


async def test_a_facilitator_reads_and_answers_a_consenting_smes_matches(
    settings: Settings,
) -> None:
    facilitator = await register(settings, "facilitator", "Företagsstöd Dalarna")
    sme = await register(settings, "sme", "Trätrappor Falun AB")
    buyer = await register(settings, "sme", "Pellets Borlänge AB")
    stranger = await register(settings, "sme", "Inget Samtycke AB")
    ours, declined, theirs = proposal(sme, buyer), proposal(buyer, sme), proposal(stranger, buyer)
    since = await end_offsets(settings, "market.listings")
    async with running_api(settings) as client:
        await projected(settings, facilitator, sme, buyer, stranger)
        await grant(client, sme, facilitator)
        await publish(settings, ours, declined, theirs)
        mine = f"?on_behalf_of={sme.partner_id}"

        async def listed() -> list[dict[str, Any]]:
            got = await client.get(f"/v1/matches{mine}", headers=facilitator.auth)
            assert got.status == 200, await got.text()
            items: list[dict[str, Any]] = (await got.json())["items"]
            return items

        async def both() -> bool:
            return {m["match_id"] for m in await listed()} >= {ours.match_id, declined.match_id}

        await eventually(both, 30)
        items = await listed()
        assert theirs.match_id not in {m["match_id"] for m in items}
        # As the SME sees them: the facilitator's list is the SME's own.
        own = await client.get("/v1/matches", headers=sme.auth)
        assert own.status == 200
        assert items == (await own.json())["items"]
        sides = {m["match_id"]: m["your_side"] for m in items}
        assert (sides[ours.match_id], sides[declined.match_id]) == ("seller", "buyer")

        one = await client.get(f"/v1/matches/{ours.match_id}{mine}", headers=facilitator.auth)
        assert one.status == 200, await one.text()
        read = await one.json()
        assert (read["match_id"], read["your_side"], read["status"]) == (
            ours.match_id,
            "seller",
            "proposed",
        )
        assert read["your_answer"] is None

        # Accepted and declined for the SME: the events name the SME as the party that answers
        # and the facilitator as who acted.
        key = {"Idempotency-Key": f"accept-{ours.match_id}"}
        accepted = await client.post(
            f"/v1/matches/{ours.match_id}/accept",
            json={"on_behalf_of": sme.partner_id},
            headers=facilitator.auth | key,
        )
        assert accepted.status == 202, await accepted.text()
        first_answer = await accepted.json()
        assert first_answer["match_id"] == ours.match_id
        # The key is the facilitator's: used again for another request, it is refused.
        reused = await client.post(
            f"/v1/matches/{declined.match_id}/decline",
            json={"on_behalf_of": sme.partner_id},
            headers=facilitator.auth | key,
        )
        assert (await problem(reused, 422))["type"].endswith("/idempotency-key-reused")
        no_thanks = await client.post(
            f"/v1/matches/{declined.match_id}/decline",
            json={"on_behalf_of": sme.partner_id, "reason": "too far"},
            headers=facilitator.auth,
        )
        assert no_thanks.status == 202, await no_thanks.text()
        records = await read_since(settings, "market.listings", since)
        event = event_about(records, "market.match.accepted.v1", ours.match_id)
        assert (event["partner_id"], event["actor_id"]) == (sme.partner_id, facilitator.partner_id)
        event = event_about(records, "market.match.declined.v1", declined.match_id)
        assert (event["partner_id"], event["actor_id"]) == (sme.partner_id, facilitator.partner_id)

        async def answered() -> bool:
            got = await client.get(f"/v1/matches/{ours.match_id}", headers=sme.auth)
            return bool((await got.json())["answers"].get(sme.partner_id) == "accepted")

        await eventually(answered, 30)
        # A retry of the first accept (same key, same body) after its answer is projected gets
        # the first answer again, not the refusal its checks would now give.
        retried = await client.post(
            f"/v1/matches/{ours.match_id}/accept",
            json={"on_behalf_of": sme.partner_id},
            headers=facilitator.auth | key,
        )
        assert retried.status == 202, await retried.text()
        assert retried.headers["Idempotent-Replayed"] == "true"
        assert await retried.json() == first_answer
        again = await client.post(
            f"/v1/matches/{ours.match_id}/accept",
            json={"on_behalf_of": sme.partner_id},
            headers=facilitator.auth,
        )
        assert (await problem(again, 409))["type"].endswith("/already-answered")

        # The refusals: a facilitator names the SME; the SME must have consented and the match
        # be the SME's; an SME acts only for itself.
        refused_for(
            await problem(await client.get("/v1/matches", headers=facilitator.auth), 400),
            "on-behalf-of-required",
        )
        refused_for(
            await problem(
                await client.get(f"/v1/matches/{ours.match_id}", headers=facilitator.auth), 400
            ),
            "on-behalf-of-required",
        )
        refused_for(
            await problem(
                await client.post(
                    f"/v1/matches/{declined.match_id}/accept", headers=facilitator.auth
                ),
                422,
            ),
            "on-behalf-of-required",
        )
        stranger_q = f"?on_behalf_of={stranger.partner_id}"
        for unconsented in (
            await client.get(f"/v1/matches{stranger_q}", headers=facilitator.auth),
            await client.get(
                f"/v1/matches/{theirs.match_id}{stranger_q}", headers=facilitator.auth
            ),
            await client.get("/v1/matches?on_behalf_of=no-such-sme", headers=facilitator.auth),
            await client.post(
                f"/v1/matches/{theirs.match_id}/decline",
                json={"on_behalf_of": stranger.partner_id},
                headers=facilitator.auth,
            ),
        ):
            refused_for(await problem(unconsented, 404), "no-consent")
        not_the_smes = (
            await client.get(f"/v1/matches/{theirs.match_id}{mine}", headers=facilitator.auth),
            await client.post(
                f"/v1/matches/{theirs.match_id}/accept",
                json={"on_behalf_of": sme.partner_id},
                headers=facilitator.auth,
            ),
        )
        for response in not_the_smes:
            body = await problem(response, 404)
            assert sme.partner_id in body["detail"]
        for for_another in (
            await client.get(f"/v1/matches{stranger_q}", headers=sme.auth),
            await client.get(f"/v1/matches/{ours.match_id}{stranger_q}", headers=sme.auth),
            await client.post(
                f"/v1/matches/{declined.match_id}/accept",
                json={"on_behalf_of": stranger.partner_id},
                headers=sme.auth,
            ),
        ):
            refused_for(await problem(for_another, 403), "forbidden")
        # Naming itself changes nothing for an SME.
        itself = await client.get(f"/v1/matches?on_behalf_of={sme.partner_id}", headers=sme.auth)
        assert itself.status == 200
        assert {m["match_id"] for m in (await itself.json())["items"]} >= {ours.match_id}

        # Nothing but the one accept and the one decline was published for the SME's matches.
        records = await read_since(settings, "market.listings", since)
        ids = {ours.match_id, declined.match_id, theirs.match_id}
        answers = [
            orjson.loads(r.value)["match_id"]
            for r in records
            if dict(r.headers).get("ce_type")
            in (b"market.match.accepted.v1", b"market.match.declined.v1")
        ]
        assert sorted(a for a in answers if a in ids) == sorted([ours.match_id, declined.match_id])


async def test_a_facilitator_gives_a_consenting_smes_feedback(settings: Settings) -> None:
    facilitator = await register(settings, "facilitator", "Företagsstöd Jämtland")
    sme = await register(settings, "sme", "Snickeri Östersund AB")
    buyer = await register(settings, "sme", "Byggvaror Sundsvall AB")
    stranger = await register(settings, "sme", "Eget Omdöme AB")
    since = await end_offsets(settings, MATCHES)
    async with running_api(settings) as client:
        await projected(settings, facilitator, sme, buyer, stranger)
        await grant(client, sme, facilitator)
        match_id = await confirmed_match_with_carrier(settings, sme, buyer, None)
        others = await confirmed_match_with_carrier(settings, stranger, buyer, None)

        async def delivered(which: str) -> bool:
            # 409 until the projector has the confirmation; 202 once the buyer confirms.
            sent = await client.post(f"/v1/matches/{which}/delivered", json={}, headers=buyer.auth)
            return sent.status == 202

        await eventually(lambda: delivered(match_id), 30)
        await eventually(lambda: delivered(others), 30)
        rating = {"rating": 2, "reason": "timeliness", "comment": "a day late"}
        url = f"/v1/matches/{match_id}/feedback"

        # The refusals first, while the SME has given no feedback.
        refused_for(
            await problem(await client.post(url, json=rating, headers=facilitator.auth), 422),
            "on-behalf-of-required",
        )
        refused_for(
            await problem(
                await client.post(
                    f"/v1/matches/{others}/feedback",
                    json=rating | {"on_behalf_of": stranger.partner_id},
                    headers=facilitator.auth,
                ),
                404,
            ),
            "no-consent",
        )
        not_the_smes = await client.post(
            f"/v1/matches/{others}/feedback",
            json=rating | {"on_behalf_of": sme.partner_id},
            headers=facilitator.auth,
        )
        assert sme.partner_id in (await problem(not_the_smes, 404))["detail"]
        refused_for(
            await problem(
                await client.post(
                    url, json=rating | {"on_behalf_of": buyer.partner_id}, headers=sme.auth
                ),
                403,
            ),
            "forbidden",
        )

        async def rateable() -> bool:
            # 409 not-delivered until the projector has the delivery.
            sent = await client.post(
                url, json=rating | {"on_behalf_of": sme.partner_id}, headers=facilitator.auth
            )
            assert sent.status in (202, 409), await sent.text()
            return sent.status == 202

        await eventually(rateable, 30)

        async def stored() -> Any:
            conn = await connect(settings)
            try:
                return await conn.fetchrow(
                    "SELECT side, rating, comment FROM feedback WHERE match_id = $1"
                    " AND partner_id = $2",
                    match_id,
                    sme.partner_id,
                )
            finally:
                await conn.close()

        async def there() -> bool:
            return await stored() is not None

        await eventually(there, 30)
        row = await stored()
        assert (row["side"], row["rating"], row["comment"]) == ("seller", 2, "a day late")
        event = event_about(
            await read_since(settings, MATCHES, since), "market.feedback.given.v1", match_id
        )
        assert (event["partner_id"], event["actor_id"]) == (sme.partner_id, facilitator.partner_id)
        twice = await client.post(
            url, json=rating | {"on_behalf_of": sme.partner_id}, headers=facilitator.auth
        )
        assert (await problem(twice, 409))["type"].endswith("/already-given")
        # The SME's own answer is the one the facilitator gave: the SME cannot give a second.
        own = await client.post(url, json=rating, headers=sme.auth)
        assert (await problem(own, 409))["type"].endswith("/already-given")
