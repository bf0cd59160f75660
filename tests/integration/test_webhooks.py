"""Webhook delivery on the real stack: endpoints registered through the API, notifications
published on partners.notifications, a receiver that verifies every signature; retries, dead
letters, redelivery, a slow endpoint beside a fast one, secret rotation, target validation, and
a SIGKILLed worker that resumes its pending retries, and new deliveries handed from the inbox to
its dispatcher in-process."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import uuid
from typing import Any

import aiohttp
import asyncpg
import pytest
from aiohttp.test_utils import TestClient

from consumers.webhooks import TOPIC, Dispatcher, WebhookInbox
from marketplace import webhooks as store
from marketplace.db import connect
from marketplace.runtime.service import run_consumer
from marketplace.settings import ROOT, Settings
from schemas.partners import NotificationIssued
from tests.integration.api_helpers import Partner, eventually, register, running_api
from tests.integration.notify_helpers import (
    Receiver,
    publish,
    quick,
    start_at_end,
    webhooks_running,
)

pytestmark = pytest.mark.integration
Client = TestClient[Any, Any]


def notes(partner: Partner, n: int, kind: str = "match.proposed") -> list[NotificationIssued]:
    return [
        NotificationIssued(
            notification_id=str(uuid.uuid4()),
            partner_id=partner.partner_id,
            kind=kind,
            subject_id=str(uuid.uuid4()),
            cause_event_id=str(uuid.uuid4()),
            summary=f"test notification {i}",
            data={"i": i},
        )
        for i in range(n)
    ]


async def endpoint(
    client: Client, receiver: Receiver, partner: Partner, name: str, **extra: Any
) -> dict[str, Any]:
    answer = await client.post(
        "/v1/webhooks", json={"url": receiver.url(name), **extra}, headers=partner.auth
    )
    assert answer.status == 201, await answer.text()
    body: dict[str, Any] = await answer.json()
    assert body["secret"].startswith("whsec_")
    receiver.secrets[name] = [body["secret"]]
    return body


async def deliveries(settings: Settings, endpoint_id: str) -> list[Any]:
    conn = await connect(settings)
    try:
        return list(
            await conn.fetch(
                "SELECT notification_id, status, attempts, last_error FROM webhook_deliveries"
                " WHERE endpoint_id = $1",
                endpoint_id,
            )
        )
    finally:
        await conn.close()


async def cli(*args: str) -> tuple[int, str]:
    """The operator's `marketplace` command, as a process."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "marketplace.app.cli",
        *args,
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    out, _ = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode()


async def test_every_notification_arrives_signed_and_a_flaky_endpoint_gets_everything(
    settings: Settings,
) -> None:
    s = quick(settings)
    steady, flaky = await register(s, "sme"), await register(s, "logistics")
    async with Receiver() as receiver, running_api(s) as client:
        a = await endpoint(client, receiver, steady, "steady")
        b = await endpoint(client, receiver, flaky, "flaky", kinds=["job.requested"])
        # Three failures of three kinds: a 503, a 500, and no answer within the timeout.
        receiver.plans["flaky"] = [503, 500, "hang"]
        for_steady = notes(steady, 6)
        for_flaky = notes(flaky, 4, "job.requested") + notes(flaky, 2, "award.won")
        async with webhooks_running(s):
            await publish(s, *for_steady, *for_flaky)

            async def all_in() -> bool:
                return len(receiver.ids("steady")) == 6 and len(receiver.ids("flaky")) == 4

            await eventually(all_in, 60)
        assert receiver.ids("steady") == {n.notification_id for n in for_steady}
        # Only the kinds the endpoint subscribed to.
        assert receiver.ids("flaky") == {n.notification_id for n in for_flaky[:4]}
        assert receiver.bad_signatures == []
        assert receiver.requests["flaky"] >= 7
        body = dict(receiver.accepted["steady"])[for_steady[0].notification_id]
        assert body["type"] == "match.proposed"
        assert body["data"]["summary"] == "test notification 0"
        assert body["data"]["partner_id"] == steady.partner_id
        rows = await deliveries(s, b["endpoint_id"])
        assert {r["status"] for r in rows} == {"delivered"}
        # Three failures, then one success each (more only if the loaded machine made a success
        # miss the timeout: at least once).
        assert sum(r["attempts"] for r in rows) >= 7
        assert {r["status"] for r in await deliveries(s, a["endpoint_id"])} == {"delivered"}


async def test_a_dead_endpoint_ends_in_the_dead_letters_and_can_be_redelivered(
    settings: Settings,
) -> None:
    s = quick(settings)
    partner, other = await register(s, "sme"), await register(s, "sme")
    async with Receiver() as receiver, running_api(s) as client:
        ep = await endpoint(client, receiver, partner, "down")
        receiver.plans["down"] = [500] * 4
        [note] = notes(partner, 1)
        async with webhooks_running(s):
            await publish(s, note)

            async def dead() -> bool:
                answer = await client.get("/v1/webhooks/dead-letters", headers=partner.auth)
                return len((await answer.json())["items"]) == 1

            await eventually(dead, 60)
            [letter] = (
                await (await client.get("/v1/webhooks/dead-letters", headers=partner.auth)).json()
            )["items"]
            assert letter["notification_id"] == note.notification_id
            assert letter["endpoint_id"] == ep["endpoint_id"]
            assert letter["attempts"] == 4
            assert letter["last_error"] == "HTTP 500"
            assert receiver.requests["down"] == 4
            # The operator sees it too (the CLI's query), and nobody else's list has it.
            conn = await connect(s)
            try:
                assert letter["delivery_id"] in {
                    d["delivery_id"] for d in await store.dead_letters(conn)
                }
            finally:
                await conn.close()
            listed = await cli("webhooks", "dead-letters", "--partner", partner.partner_id)
            assert listed[0] == 0
            assert letter["delivery_id"] in listed[1]
            assert "HTTP 500" in listed[1]
            assert (await cli("webhooks", "redeliver", "no-such-delivery"))[0] == 1
            theirs = await client.get("/v1/webhooks/dead-letters", headers=other.auth)
            assert (await theirs.json())["items"] == []
            refused = await client.post(
                f"/v1/webhooks/dead-letters/{letter['delivery_id']}/redeliver", headers=other.auth
            )
            assert refused.status == 404
            # The endpoint is back: redelivery sends it with the same webhook-id.
            redone = await client.post(
                f"/v1/webhooks/dead-letters/{letter['delivery_id']}/redeliver",
                headers=partner.auth,
            )
            assert redone.status == 200

            async def delivered() -> bool:
                return receiver.ids("down") == {note.notification_id}

            await eventually(delivered, 30)
        answer = await client.get("/v1/webhooks/dead-letters", headers=partner.auth)
        assert (await answer.json())["items"] == []


async def test_a_slow_endpoint_does_not_hold_up_another_partners(settings: Settings) -> None:
    s = quick(settings, webhook_timeout_s=5.0, webhook_max_attempts=2)
    slow, fast = await register(s, "sme"), await register(s, "sme")
    async with Receiver() as receiver, running_api(s) as client:
        await endpoint(client, receiver, slow, "slow")
        await endpoint(client, receiver, fast, "fast")
        receiver.plans["slow"] = ["hang"] * 40
        async with webhooks_running(s):
            # The slow partner's notifications go first, and there are more of them than the
            # endpoint has slots.
            await publish(s, *notes(slow, 10))
            await publish(s, *notes(fast, 10))

            async def fast_done() -> bool:
                return len(receiver.ids("fast")) == 10

            await eventually(fast_done, 30)
            # Every one of the fast partner's arrived while the slow one had none answered.
            assert receiver.ids("slow") == set()
            # It never had more attempts at once than its own slots.
            assert 1 <= receiver.most_active["slow"] <= s.webhook_endpoint_concurrency


async def test_a_rotated_secret_signs_beside_the_old_one_during_the_overlap(
    settings: Settings,
) -> None:
    s = quick(settings)
    partner = await register(s, "sme")
    async with Receiver() as receiver, running_api(s) as client:
        ep = await endpoint(client, receiver, partner, "rotating")
        old = ep["secret"]
        path = f"/v1/webhooks/{ep['endpoint_id']}/rotate-secret"
        rotated = await client.post(path, json={"overlap_s": 3600}, headers=partner.auth)
        assert rotated.status == 200
        new = (await rotated.json())["secret"]
        assert new != old
        assert (await rotated.json())["previous_secret_valid_until"] is not None
        # The receiver insists that both secrets verify.
        receiver.secrets["rotating"] = [old, new]
        async with webhooks_running(s):
            [first] = notes(partner, 1)
            await publish(s, first)

            async def got_first() -> bool:
                return first.notification_id in receiver.ids("rotating")

            await eventually(got_first, 30)
            assert len(receiver.signature_headers["rotating"][-1].split(" ")) == 2
            # Rotating again with no overlap: only the newest secret signs.
            again = await client.post(path, json={"overlap_s": 0}, headers=partner.auth)
            newest = (await again.json())["secret"]
            receiver.secrets["rotating"] = [newest]
            [second] = notes(partner, 1)
            await publish(s, second)

            async def got_second() -> bool:
                return second.notification_id in receiver.ids("rotating")

            await eventually(got_second, 30)
        assert receiver.bad_signatures == []
        assert len(receiver.signature_headers["rotating"][-1].split(" ")) == 1
        listed = await (await client.get("/v1/webhooks", headers=partner.auth)).json()
        assert [e["endpoint_id"] for e in listed["items"]] == [ep["endpoint_id"]]
        assert all("secret" not in e for e in listed["items"])


async def test_targets_are_validated_and_endpoints_are_each_partners_own(
    settings: Settings,
) -> None:
    partner, other = await register(settings, "sme"), await register(settings, "sme")
    # The operator's default: public addresses only.
    async with running_api(settings) as client:
        for url, reason in [
            ("ftp://127.0.0.1/x", "only http and https"),
            ("http://127.0.0.1:9/x", "loopback"),
            ("http://10.1.2.3/x", "private"),
            ("http://169.254.169.254/latest", "link-local"),
            ("http://[::1]:9/x", "loopback"),
            ("http://localhost:9/x", "loopback"),
            ("https://user:pw@example.com/x", "credentials"),
        ]:
            answer = await client.post("/v1/webhooks", json={"url": url}, headers=partner.auth)
            assert answer.status == 422, url
            problem = await answer.json()
            assert problem["errors"][0]["field"] == "url"
            assert reason in problem["detail"], (url, problem["detail"])
        unknown = await client.post(
            "/v1/webhooks",
            json={"url": "https://example.com/x", "kinds": ["match.nonsense"]},
            headers=partner.auth,
        )
        assert unknown.status == 422
        assert (await unknown.json())["errors"][0]["field"] == "kinds"
        assert (await client.post("/v1/webhooks", json={"url": "x"})).status == 401
    # Loopback allowed by the operator (as the tests do).
    async with running_api(quick(settings)) as client:
        made = await client.post(
            "/v1/webhooks", json={"url": "http://127.0.0.1:9/in"}, headers=partner.auth
        )
        assert made.status == 201
        endpoint_id = (await made.json())["endpoint_id"]
        for method, path in [
            ("GET", f"/v1/webhooks/{endpoint_id}"),
            ("POST", f"/v1/webhooks/{endpoint_id}/rotate-secret"),
            ("DELETE", f"/v1/webhooks/{endpoint_id}"),
        ]:
            answer = await client.request(method, path, headers=other.auth)
            assert answer.status == 404, (method, path)
        gone = await client.delete(f"/v1/webhooks/{endpoint_id}", headers=partner.auth)
        assert gone.status == 204
        assert (await client.get(f"/v1/webhooks/{endpoint_id}", headers=partner.auth)).status == 404


async def test_a_killed_worker_resumes_its_retries_after_a_restart(settings: Settings) -> None:
    s = quick(settings, webhook_retry_base_s=3.0, webhook_retry_cap_s=3.0)
    partner = await register(s, "sme")
    group = f"test.webhooks.{uuid.uuid4().hex[:8]}"
    await start_at_end(s, group, [TOPIC])
    async with Receiver() as receiver, running_api(s) as client:
        ep = await endpoint(client, receiver, partner, "later")
        receiver.plans["later"] = [500]
        env = os.environ | {
            "MARKETPLACE_WEBHOOK_ALLOW_NETWORKS": s.webhook_allow_networks,
            "MARKETPLACE_WEBHOOK_RETRY_BASE_S": "3",
            "MARKETPLACE_WEBHOOK_RETRY_CAP_S": "3",
            "MARKETPLACE_WEBHOOK_MAX_ATTEMPTS": "4",
            "MARKETPLACE_LOG_FORMAT": "json",
        }
        worker = subprocess.Popen(  # noqa: ASYNC220 - started, not waited for
            [sys.executable, "-m", "tests.integration.webhook_worker", group], cwd=ROOT, env=env
        )
        try:
            [note] = notes(partner, 1)
            await publish(s, note)

            async def failed_once() -> bool:
                rows = await deliveries(s, ep["endpoint_id"])
                return bool(rows) and rows[0]["attempts"] == 1 and rows[0]["status"] == "pending"

            await eventually(failed_once, 30)
        finally:
            worker.send_signal(signal.SIGKILL)
            await asyncio.to_thread(worker.wait, 10)
        assert receiver.ids("later") == set()
        # A new worker of the same group picks the retry up from PostgreSQL.
        async with webhooks_running(s, group):

            async def delivered() -> bool:
                return receiver.ids("later") == {note.notification_id}

            await eventually(delivered, 30)
        [row] = await deliveries(s, ep["endpoint_id"])
        assert row["status"] == "delivered"
        assert row["attempts"] == 2
        assert receiver.bad_signatures == []


class NoClaims(Dispatcher):
    """A dispatcher that never claims from PostgreSQL: only what its inbox hands over is sent."""

    claims = 0

    async def _fill(self, session: aiohttp.ClientSession) -> bool:
        self.claims += 1
        return False


async def test_the_inbox_hands_new_deliveries_to_its_dispatcher_without_a_claim(
    settings: Settings, pool: asyncpg.Pool
) -> None:
    s = quick(settings, webhook_endpoint_concurrency=8)
    partner = await register(s, "sme")
    group = f"test.webhooks.{uuid.uuid4().hex[:8]}"
    await start_at_end(s, group, [TOPIC])
    async with Receiver() as receiver, running_api(s) as client:
        ep = await endpoint(client, receiver, partner, "handed")
        receiver.plans["handed"] = [503]  # the first attempt fails: a retry is the claim's
        dispatcher = NoClaims(s, pool, group, poll_s=3600)
        stop = asyncio.Event()
        inbox = WebhookInbox(group, s.webhook_keys_path, dispatcher)
        worker = asyncio.gather(
            run_consumer(s, group_id=group, topics=[TOPIC], processor=inbox, stop=stop),
            dispatcher.run(stop),
        )
        try:
            sent = notes(partner, 5)
            await publish(s, *sent)
            # The first one again: the same notification, issued twice.
            await publish(s, sent[0])

            async def settled() -> bool:
                rows = await deliveries(s, ep["endpoint_id"])
                return len(rows) == 5 and all(r["status"] != "sending" for r in rows)

            await eventually(settled, 30)
        finally:
            stop.set()
            await asyncio.wait_for(worker, 30)
        rows = {r["notification_id"]: r for r in await deliveries(s, ep["endpoint_id"])}
        # Four were sent once and delivered; one met the 503 and waits for its retry, which only
        # a claim makes (this dispatcher claims nothing); the repeat was not sent again.
        assert sorted(r["status"] for r in rows.values()) == ["delivered"] * 4 + ["pending"]
        assert all(r["attempts"] == 1 for r in rows.values())
        assert receiver.requests["handed"] == 5
        assert len(receiver.ids("handed")) == 4
        assert receiver.bad_signatures == []
        failed = [r for r in rows.values() if r["status"] == "pending"]
        assert failed[0]["last_error"] == "HTTP 503"
        # Nothing was left reserved.
        assert dispatcher.reserved == 0
        assert not dispatcher.busy
