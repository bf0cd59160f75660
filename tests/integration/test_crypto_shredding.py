"""Crypto-shredding against the real services (#21 item 8, marketplace/translate/shredding.py):
an organisation whose name is a person's registers, declares its legal data, posts listings with
texts, withdraws one with a reason and gives a facilitator consent with a note. None of it is on
the topics or in the audit log in clear, while the read models, the API and the export show it.
After `marketplace partners erase` it cannot be read anywhere (topics, audit log, every table,
the API, the export), its open listing is withdrawn and the matcher proposes only the other
seller's offer, the records from before still decode (their sealed fields read "[erased]"), and
`marketplace audit verify` passes. A key rotation re-seals the data keys, and the keys' restore
check finds a data key the ring does not open."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest

from consumers.auditor import GROUP, TOPICS
from consumers.projector import project
from consumers.webhooks import WebhookInbox
from loadtests.scratch import scratch_database
from marketplace import webhooks
from marketplace.app.keys import Restored, check_stored_secrets
from marketplace.app.privacy import erase_organisation
from marketplace.db import connect
from marketplace.events import Decoded, EventDecodeError, decode
from marketplace.kafka import make_producer
from marketplace.partners import register_partner
from marketplace.secretbox import SecretKeyError, create_ring, key_file, load_ring
from marketplace.settings import Settings
from marketplace.translate import shredding
from producers.web.app import create_service
from schemas import topics
from schemas.facilitators import ListingNudged
from schemas.listings import OfferPosted
from schemas.partners import LegalDataDeclared, NotificationIssued, PartnerRegistered
from tests.integration.api_helpers import (
    Partner,
    consumer_running,
    eventually,
    projected,
    register,
    running_api,
)
from tests.integration.kafka_helpers import caught_up, end_offsets, read_since
from tests.integration.mail_helpers import Sink, mail_settings, mailer_running, person
from tests.integration.notify_helpers import notifier_running, publish
from tests.integration.test_audit import auditor_running
from tests.integration.test_erasure import marketplace_cli, tables_holding
from tests.integration.test_matcher import matcher_running, matches_about, near, offer, request
from tests.integration.test_pages_accounts import plain
from tests.integration.test_pages_matrix import person as session_of
from tests.integration.test_webhook_secrets import cli

pytestmark = pytest.mark.integration


async def sealed_registration(settings: Settings, name: str) -> Partner:
    """An SME registered as `marketplace partners add` registers one: its name sealed."""
    conn = await connect(settings)
    producer = make_producer(settings)
    await producer.start()
    try:
        partner_id, key = await register_partner(
            conn,
            producer,
            name=name,
            role="sme",
            country="BG",
            region="BG411",
            sector="38",
            registered_by="tests",
            source="/tests",
            ring=key_file(settings.webhook_keys_path).ring(),
        )
    finally:
        await producer.stop()
        await conn.close()
    return Partner(partner_id, key)


async def decoded_since(settings: Settings, topic: str, since: dict[int, int]) -> list[Decoded]:
    """The records of the topic since the offsets that decode (other tests put junk there)."""
    out = []
    for record in await read_since(settings, topic, since):
        try:
            out.append(decode(topic, record.value, record.headers))
        except EventDecodeError:
            continue
    return out


async def opened_by_the_projector(settings: Settings, partner_id: str, name: str) -> None:
    """The projector's own function, given the organisation's registration as read from Kafka,
    opens the name with the data key from PostgreSQL (in a transaction rolled back, so that it
    does not matter which projector of the shared stack stored the row first)."""
    ends = await end_offsets(settings, topics.REGISTRY)
    back = {p: max(0, o - 200) for p, o in ends.items()}
    found = [
        d
        for d in await decoded_since(settings, topics.REGISTRY, back)
        if isinstance(d.event, PartnerRegistered) and d.event.partner_id == partner_id
    ]
    assert len(found) == 1
    registered = found[0].event
    assert isinstance(registered, PartnerRegistered)
    assert registered.name == ""
    conn = await connect(settings)
    try:
        async with conn.transaction():
            await conn.execute("DELETE FROM partners WHERE partner_id = $1", partner_id)
            await project(conn, found)
            shown = await conn.fetchval(
                "SELECT name FROM partners WHERE partner_id = $1", partner_id
            )
            assert shown == name
            raise _RollBack
    except _RollBack:
        pass
    finally:
        await conn.close()


class _RollBack(Exception):
    pass


async def test_an_erased_organisation_cannot_be_read_anywhere_and_the_log_verifies(
    settings: Settings,
) -> None:
    started = datetime.now(UTC) - timedelta(seconds=5)
    since = {t.name: await end_offsets(settings, t.name) for t in topics.TOPICS}
    mark = uuid.uuid4().hex[:12]
    name = f"Ivana Petrova ET {mark}"
    seller = await sealed_registration(settings, name)
    keeper = await register(settings, "sme", "Keeps Trading AB")
    buyer = await register(settings, "sme", "Buys Film AB")
    facilitator = await register(settings, "facilitator", "Circular Association")
    operator = await register(settings, "operator", "Exchange Operator")
    spot = {"lat": 42.14 + (int(mark[:4], 16) % 500) / 1000, "lon": 24.74}
    texts = [f"bales from the shop of {mark}", f"call {mark} after six", f"sold to {mark[::-1]}"]
    consent_note = f"ok from {mark}"

    async with (
        running_api(plain(settings), create_service) as client,
        matcher_running(settings) as matcher,
        notifier_running(settings),
    ):
        staff = await session_of(settings, None, "operator")
        staff_legal = f"/app/staff/organisations/{seller.partner_id}/legal"
        await projected(settings, seller, keeper, buyer, facilitator, operator)
        await opened_by_the_projector(settings, seller.partner_id, name)

        legal = {
            "legal_name": name,
            "street": f"ul. {mark} 7",
            "postcode": "4000",
            "city": "Plovdiv",
            "country": "BG",
        }
        r = await client.put(
            f"/v1/partners/{seller.partner_id}/legal", json=legal, headers=seller.auth
        )
        assert r.status == 202, await r.text()
        r = await client.post(
            f"/v1/consents/{facilitator.partner_id}",
            json={"note": consent_note},
            headers=seller.auth,
        )
        assert r.status == 202, await r.text()
        body = offer(near(spot, 0.02), 5, 10)
        body["material"] |= {"description": texts[0], "quality_notes": texts[1]}
        r = await client.post("/v1/offers", json=body, headers=seller.auth)
        assert r.status == 202, await r.text()
        erased_offer = (await r.json())["offer_id"]
        r = await client.post("/v1/offers", json=offer(near(spot, 0.5), 2, 10), headers=seller.auth)
        assert r.status == 202, await r.text()
        withdrawn = (await r.json())["offer_id"]
        r = await client.post(
            "/v1/offers", json=offer(near(spot, 0.03), 5, 12), headers=keeper.auth
        )
        assert r.status == 202, await r.text()
        kept_offer = (await r.json())["offer_id"]

        async def listed() -> bool:
            r = await client.get(f"/v1/offers/{withdrawn}", headers=seller.auth)
            return r.status == 200

        await eventually(listed, 60)
        r = await client.request(
            "DELETE", f"/v1/offers/{withdrawn}", json={"reason": texts[2]}, headers=seller.auth
        )
        assert r.status == 202, await r.text()

        async def all_shown() -> bool:
            got = await client.get(f"/v1/offers/{erased_offer}", headers=seller.auth)
            gone = await client.get(f"/v1/offers/{withdrawn}", headers=seller.auth)
            legal_now = await client.get(
                f"/v1/partners/{seller.partner_id}/legal", headers=seller.auth
            )
            told = await client.get("/v1/notifications", headers=facilitator.auth)
            kinds = [i["kind"] for i in (await told.json())["items"]]
            # The legal data only a projector of this version can project (v2), so it shows
            # what this one opened; the other read models may meet a projector of an older
            # version on the shared test stack, which stores "" for a sealed field.
            return (
                got.status == 200
                and gone.status == 200
                and (await gone.json())["status"] == "withdrawn"
                and legal_now.status == 200
                and (await legal_now.json())["street"] == legal["street"]
                and "consent.granted" in kinds
            )

        await eventually(all_shown, 60)
        # The staff's page of the organisation's legal data shows it.
        client.session.cookie_jar.update_cookies({"session": staff})
        page = await client.get(staff_legal)
        assert page.status == 200
        assert legal["street"] in await page.text()

        # Nothing of it is on the topics in clear.
        for topic, offsets in since.items():
            for record in await read_since(settings, topic, offsets):
                assert mark.encode() not in (record.value or b""), topic
                assert mark[::-1].encode() not in (record.value or b""), topic

        # The export (right of access) opens the organisation's events in the audit log.
        async with auditor_running(settings):
            await caught_up(settings, GROUP, TOPICS, limit_s=300)
        exported = marketplace_cli("partners", "export", seller.partner_id)
        assert exported.returncode == 0, exported.stderr
        events = orjson.loads(exported.stdout)["events"]
        registered = [e["data"] for e in events if e["ce_type"].startswith("partners.partner.reg")]
        assert [d["name"] for d in registered] == [name]
        assert texts[0] in exported.stdout
        assert legal["street"] in exported.stdout

        erased = marketplace_cli("partners", "erase", seller.partner_id, "--yes")
        assert erased.returncode == 0, erased.stderr
        assert "data keys 1" in erased.stdout
        assert "1 open listing(s) withdrawn" in erased.stdout
        assert "1 consent(s) revoked" in erased.stdout
        assert f"{seller.partner_id}: deactivated" in erased.stdout

        async def withdrawn_at_erasure() -> bool:
            conn = await connect(settings)
            try:
                status = await conn.fetchval(
                    "SELECT status FROM listings WHERE listing_id = $1", erased_offer
                )
                consent = await conn.fetchval(
                    "SELECT status FROM consents WHERE partner_id = $1", seller.partner_id
                )
                active = await conn.fetchval(
                    "SELECT active FROM partners WHERE partner_id = $1", seller.partner_id
                )
            finally:
                await conn.close()
            return (status, consent, active) == ("withdrawn", "revoked", False)

        await eventually(withdrawn_at_erasure, 60)
        # Again, once the projector has the withdrawal, the revocation and the deactivation:
        # nothing left to publish.
        again = marketplace_cli("partners", "erase", seller.partner_id, "--yes")
        assert again.returncode == 0, again.stderr
        assert "0 open listing(s) withdrawn" in again.stdout
        assert "0 consent(s) revoked" in again.stdout
        assert "deactivated" not in again.stdout

        # The pages: the staff's page of the organisation shows its legal data erased.
        page = await client.get(staff_legal)
        assert page.status == 200
        html = await page.text()
        assert mark not in html
        assert shredding.ERASED in html
        # The API: the operator sees the legal data erased, the facilitator the consent's note.
        r = await client.get(f"/v1/partners/{seller.partner_id}/legal", headers=operator.auth)
        assert r.status == 200, await r.text()
        seen = await r.json()
        assert (seen["legal_name"], seen["street"]) == (shredding.ERASED, shredding.ERASED)
        told = await (await client.get("/v1/notifications", headers=facilitator.auth)).json()
        notes = [i["data"]["note"] for i in told["items"] if i["kind"] == "consent.granted"]
        assert len(notes) == 1
        assert notes[0] in (shredding.ERASED, "")  # "": projected by an older version
        assert mark not in orjson.dumps(told).decode()

        # The matcher: a buyer's request near both offers is proposed the kept seller's only.
        matches_since = await end_offsets(settings, topics.MATCHES)
        r = await client.post("/v1/requests", json=request(spot, 20, 80), headers=buyer.auth)
        assert r.status == 202, await r.text()
        request_id = (await r.json())["request_id"]
        proposals = await matches_about(
            settings, matches_since, {request_id}, {"market.match.proposed.v1"}, 1, matcher
        )
        await caught_up(settings, matcher, [topics.LISTINGS], limit_s=120)
        later = await read_since(settings, topics.MATCHES, matches_since)
        assert [b["offer_id"] for _, b in proposals] == [kept_offer]
        assert not [r for r in later if erased_offer.encode() in (r.value or b"")]

    async with auditor_running(settings):
        await caught_up(settings, GROUP, TOPICS, limit_s=300)
    conn = await connect(settings)
    try:
        # Every table of PostgreSQL and the audit log's records of the test: no trace.
        assert await tables_holding(conn, [mark, mark[::-1]], started) == []
        assert (
            await conn.fetchval(
                "SELECT name FROM partners WHERE partner_id = $1", seller.partner_id
            )
            == shredding.ERASED
        )
        # The records from before still decode; their sealed fields read as erased.
        ring = key_file(settings.webhook_keys_path).ring()
        opened = []
        for topic in (topics.REGISTRY, topics.LISTINGS):
            for d in await decoded_since(settings, topic, since[topic]):
                event = d.event
                subjects = shredding.sealed_subjects([event])
                if subjects == {f"partner:{seller.partner_id}"}:
                    keys = await shredding.keys_for(conn, ring, subjects)
                    opened.append(shredding.open_event(event, keys))
        names = [e.name for e in opened if isinstance(e, PartnerRegistered)]
        assert names == [shredding.ERASED]
        streets = [e.street for e in opened if isinstance(e, LegalDataDeclared)]
        assert streets == [shredding.ERASED]
        descriptions = {e.material.description for e in opened if isinstance(e, OfferPosted)}
        assert descriptions == {shredding.ERASED}
    finally:
        await conn.close()
    exported = marketplace_cli("partners", "export", seller.partner_id)
    assert exported.returncode == 0, exported.stderr
    assert mark not in exported.stdout
    assert orjson.loads(exported.stdout)["tables"]["partners"][0]["name"] == shredding.ERASED
    for topic, offsets in since.items():
        for record in await read_since(settings, topic, offsets):
            assert mark.encode() not in (record.value or b""), topic
    verified = marketplace_cli("audit", "verify", "--from", started.isoformat())
    assert verified.returncode == 0, verified.stdout[-2000:] + verified.stderr[-2000:]
    assert "intact" in verified.stdout


@pytest.fixture
async def scratch(settings: Settings, tmp_path: Path) -> AsyncIterator[Settings]:
    async with scratch_database(settings, "shredding") as db:
        yield dataclasses.replace(db, webhook_secret_keys=str(tmp_path / "secret-keys"))


async def test_a_key_rotation_re_seals_the_data_keys(scratch: Settings) -> None:
    old = create_ring(scratch.webhook_keys_path)
    conn = await connect(scratch)
    try:
        key = await shredding.data_key(conn, old, "partner:p-rot")
        # Made once: the second call finds the same key.
        assert await shredding.data_key(conn, old, "partner:p-rot") == key
        stored = await conn.fetchval("SELECT sealed_key FROM data_keys")
        assert stored.startswith(f"fernet:{old.current_id}:")
        assert key.decode() not in stored
        event = PartnerRegistered(
            partner_id="p-rot", name="Petar Ivanov ET", role="sme", country="BG", registered_by="t"
        )
        sealed = shredding.seal(event, key)

        code, out = await cli(scratch, "webhooks", "rotate-key", "--grace-s", "0")
        assert code == 0, out
        new = load_ring(scratch.webhook_keys_path)
        assert new.current_id != old.current_id
        assert new.ids == (new.current_id,)
        row = await conn.fetchrow("SELECT sealed_key, resealed_at FROM data_keys")
        assert row is not None
        assert row["sealed_key"].startswith(f"fernet:{new.current_id}:")
        assert row["resealed_at"] is not None
        with pytest.raises(SecretKeyError):
            old.decrypt(row["sealed_key"])
        keys = await shredding.keys_for(conn, new, ["partner:p-rot"])
        assert shredding.open_event(sealed, keys) == event
        # The restore check opens the data keys with the ring it restored, and names those
        # that it cannot open (a backup from before the rotation).
        done = Restored()
        await check_stored_secrets(conn, new, done)
        assert (done.opened, done.unreadable) == (1, [])
        stale = Restored()
        await check_stored_secrets(conn, old, stale)
        assert stale.unreadable == ["data key of partner:p-rot"]
        # Erasure: the key goes, and the event reads as erased.
        assert await shredding.destroy(conn, ["partner:p-rot"]) == 1
        keys = await shredding.keys_for(conn, new, ["partner:p-rot"])
        gone = shredding.open_event(sealed, keys)
        assert isinstance(gone, PartnerRegistered)
        assert gone.name == shredding.ERASED
    finally:
        await conn.close()


async def test_the_api_refuses_to_publish_personal_data_without_the_key_ring(
    settings: Settings, tmp_path: Path
) -> None:
    sme = await register(settings, "sme", "No Ring AB")
    ringless = dataclasses.replace(settings, webhook_secret_keys=str(tmp_path / "absent"))
    async with running_api(ringless) as client:
        r = await client.post(
            "/v1/offers", json=offer(near({"lat": 45.0, "lon": 25.0}, 0), 1, 5), headers=sme.auth
        )
        assert r.status == 503
        assert "seal personal data" in (await r.json())["detail"]


async def test_mail_and_webhooks_get_a_sealed_text_opened_and_lose_it_at_erasure(
    settings: Settings, tmp_path: Path
) -> None:
    """A facilitator's nudge reaches the SME's digest and webhook opened with the facilitator's
    data key; erasing the facilitator leaves neither copy readable."""
    started = datetime.now(UTC) - timedelta(seconds=5)
    with Sink() as sink:
        s = mail_settings(settings, tmp_path, sink.port)
        sme = await register(s, "sme", "Nudged AB")
        helper = await register(s, "facilitator", "Helping Association")
        await person(s, sme.partner_id, name="Sam")
        mark = uuid.uuid4().hex[:12]
        message = f"Is the sawdust still there? Ask for {mark}"
        ring = key_file(s.webhook_keys_path).ring()
        conn = await connect(s)
        try:
            key = await shredding.data_key(conn, ring, f"partner:{helper.partner_id}")
            endpoint_id = f"shred-{uuid.uuid4().hex[:12]}"
            await conn.execute(
                "INSERT INTO webhook_endpoints (endpoint_id, partner_id, url, secret)"
                " VALUES ($1, $2, 'https://example.com/hook', $3)",
                endpoint_id,
                sme.partner_id,
                ring.encrypt(webhooks.new_secret()),
            )
        finally:
            await conn.close()
        nudge = shredding.seal(
            ListingNudged(
                partner_id=sme.partner_id,
                facilitator_id=helper.partner_id,
                actor_id=helper.partner_id,
                listing_id="o-shred",
                kind="offer",
                material_code="030105",
                days_unchanged=40,
                message=message,
            ),
            key,
        )
        assert isinstance(nudge, ListingNudged)
        notification_id = str(uuid.uuid4())
        note = NotificationIssued(
            notification_id=notification_id,
            partner_id=sme.partner_id,
            kind="listing.nudged",
            subject_id="o-shred",
            cause_event_id=str(uuid.uuid4()),
            summary="Your offer of 030105 has not changed for 40 days: is it still current?",
            data={"listing_id": "o-shred", "facilitator_id": helper.partner_id, "message": ""},
            sealed=shredding.notification_sealed(nudge),
        )
        async with (
            mailer_running(s),
            consumer_running(
                s,
                "webhooks",
                [topics.NOTIFICATIONS],
                lambda group: WebhookInbox(group, s.webhook_keys_path),
            ),
        ):
            await publish(s, note)

            async def both_opened() -> bool:
                conn = await connect(s)
                try:
                    item = await conn.fetchval(
                        "SELECT data ->> 'message' FROM mail_digest_items"
                        " WHERE notification_id = $1",
                        notification_id,
                    )
                    hook = await conn.fetchval(
                        "SELECT body FROM webhook_deliveries WHERE notification_id = $1",
                        notification_id,
                    )
                finally:
                    await conn.close()
                return item == message and hook is not None and mark.encode() in bytes(hook)

            await eventually(both_opened, 60)
        conn = await connect(s)
        try:
            erased = await erase_organisation(conn, helper.partner_id)
            assert erased is not None
            assert erased.counts["data keys"] == 1
            assert erased.counts["webhook_deliveries scrubbed"] == 1
            item = await conn.fetchval(
                "SELECT data ->> 'message' FROM mail_digest_items WHERE notification_id = $1",
                notification_id,
            )
            assert item == shredding.ERASED
            assert await tables_holding(conn, [mark], started) == []
        finally:
            await conn.execute("DELETE FROM webhook_endpoints WHERE endpoint_id = $1", endpoint_id)
            await conn.close()
