"""Webhook signing secrets at rest (docs/operators/security.md): stored encrypted with the
operator's key, never in a log, a metric or an answer other than the one that hands them out;
`marketplace webhooks rotate-key` re-encrypts every stored secret under a new key while the old
one stays readable; `marketplace migrate` encrypts secrets stored in clear before."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import sys
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import structlog
from prometheus_client import generate_latest

from loadtests.scratch import scratch_database
from marketplace import webhooks as store
from marketplace.core.webhooks import secret_from_bytes
from marketplace.db import connect
from marketplace.metrics import REGISTRY
from marketplace.secretbox import KeyRing, create_ring, key_file, load_ring
from marketplace.settings import ROOT, Settings
from schemas.partners import NotificationIssued
from tests.integration.api_helpers import Partner, eventually, register, running_api
from tests.integration.notify_helpers import Receiver, publish, quick, webhooks_running

pytestmark = pytest.mark.integration


def notes(partner_id: str, n: int) -> list[NotificationIssued]:
    return [
        NotificationIssued(
            notification_id=str(uuid.uuid4()),
            partner_id=partner_id,
            kind="match.proposed",
            subject_id=str(uuid.uuid4()),
            cause_event_id=str(uuid.uuid4()),
            summary=f"secret test {i}",
            data={"i": i},
        )
        for i in range(n)
    ]


def forms(secret: str) -> list[str]:
    """A secret as the partner sees it and as its key bytes are written in base64."""
    return [secret, secret.removeprefix("whsec_")]


async def stored(settings: Settings, endpoint_id: str) -> Any:
    conn = await connect(settings)
    try:
        return await conn.fetchrow(
            "SELECT secret, previous_secret FROM webhook_endpoints WHERE endpoint_id = $1",
            endpoint_id,
        )
    finally:
        await conn.close()


async def test_secrets_are_stored_encrypted_and_appear_in_no_log_metric_or_answer(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    s = quick(settings)
    partner: Partner = await register(s, "sme")
    caplog.set_level(logging.DEBUG)
    answers: list[str] = []
    with structlog.testing.capture_logs() as logs:
        async with Receiver() as receiver, running_api(s) as client:
            made = await client.post(
                "/v1/webhooks", json={"url": receiver.url("kept")}, headers=partner.auth
            )
            assert made.status == 201, await made.text()
            body = await made.json()
            first = body["secret"]
            endpoint_id = body["endpoint_id"]
            rotated = await client.post(
                f"/v1/webhooks/{endpoint_id}/rotate-secret",
                json={"overlap_s": 3600},
                headers=partner.auth,
            )
            assert rotated.status == 200, await rotated.text()
            second = (await rotated.json())["secret"]
            receiver.secrets["kept"] = [second, first]
            # Every other answer about the endpoint, a problem among them.
            for path in ("/v1/webhooks", f"/v1/webhooks/{endpoint_id}", "/v1/webhooks/nope"):
                answer = await client.get(path, headers=partner.auth)
                answers.append(await answer.text())
            answers.append(
                await (
                    await client.post(
                        "/v1/webhooks", json={"url": "http://10.0.0.1/x"}, headers=partner.auth
                    )
                ).text()
            )

            # At rest: both encrypted under the operator's current key, neither readable.
            ring = key_file(s.webhook_keys_path).ring()
            row = await stored(s, endpoint_id)
            assert ring.is_current(row["secret"])
            assert ring.is_current(row["previous_secret"])
            assert ring.decrypt(row["secret"]) == second
            assert ring.decrypt(row["previous_secret"]) == first

            # The dispatcher decrypts them and signs with both during the overlap.
            async with webhooks_running(s):
                sent = notes(partner.partner_id, 2)
                await publish(s, *sent)

                async def delivered() -> bool:
                    return len(receiver.ids("kept")) == 2

                await eventually(delivered, 60)
            assert receiver.bad_signatures == []
        metrics = generate_latest(REGISTRY).decode()
    assert any(e.get("event") == "webhooks_dispatching" for e in logs), "nothing was captured"
    seen = "\n".join([repr(logs), caplog.text, metrics, *answers, repr(dict(row))])
    for secret in (first, second):
        for form in forms(secret):
            assert form not in seen


async def test_rotate_key_re_encrypts_every_secret_and_keeps_the_old_key_until_done(
    settings: Settings, tmp_path: Path
) -> None:
    path = tmp_path / "secret-keys"
    old = create_ring(path)
    async with scratch_database(settings, "secrets") as scratch:
        conn = await connect(scratch)
        try:
            partner = f"p-{uuid.uuid4().hex[:8]}"
            secrets: dict[str, list[str]] = {}
            for n in range(3):
                made, secret = await store.register(
                    conn, old, partner, f"https://example.com/{n}", (), ""
                )
                secrets[made.endpoint_id] = [secret]
            rotated_id = next(iter(secrets))
            again = await store.rotate(conn, old, partner, rotated_id, timedelta(hours=1))
            assert again is not None
            secrets[rotated_id].insert(0, again[1])
            # A secret stored in clear before encryption came in.
            clear = secret_from_bytes(os.urandom(32))
            await conn.execute(
                "INSERT INTO webhook_endpoints (endpoint_id, partner_id, url, secret)"
                " VALUES ('clear', $1, 'https://example.com/c', $2)",
                partner,
                clear,
            )
            secrets["clear"] = [clear]
            straggler: dict[str, str] = {}

            async def meanwhile(_s: float) -> None:
                # During the grace period: the file holds both keys, and a process that had
                # read the old file writes one more secret under the old key.
                during = load_ring(path)
                assert during.ids == (during.current_id, old.current_id)
                made, secret = await store.register(conn, old, partner, "https://e.com/x", (), "")
                straggler[made.endpoint_id] = secret

            rotation = await store.rotate_key(conn, path, grace_s=0, sleep=meanwhile)
            after = load_ring(path)
            assert after.ids == (rotation.new_id,)  # the old key is gone from the file
            assert rotation.old_ids == (old.current_id,)
            assert rotation.sealed == 5
            assert rotation.unreadable == ()
            rows = await conn.fetch(
                "SELECT endpoint_id, secret, previous_secret FROM webhook_endpoints"
            )
            assert len(rows) == 5
            expected = secrets | {k: [v] for k, v in straggler.items()}
            for r in rows:
                values = [v for v in (r["secret"], r["previous_secret"]) if v]
                assert all(after.is_current(v) for v in values)
                assert [after.decrypt(v) for v in values] == expected[r["endpoint_id"]]
        finally:
            await conn.close()

        # The dispatcher signs with what the new key reads.
        s = quick(scratch, webhook_secret_keys=str(path))
        async with Receiver() as receiver:
            conn = await connect(s)
            try:
                made, secret = await store.register(
                    conn, after, "p-live", receiver.url("r"), (), ""
                )
            finally:
                await conn.close()
            receiver.secrets["r"] = [secret]
            # And once more, through the operator's command, as a process.
            code, out = await cli(s, "webhooks", "rotate-key", "--grace-s", "0")
            assert code == 0, out
            assert "6 secret(s) re-encrypted" in out
            assert load_ring(path).current_id != after.current_id
            async with webhooks_running(s):
                await publish(s, *notes("p-live", 1))

                async def got() -> bool:
                    return len(receiver.ids("r")) == 1

                await eventually(got, 60)
            assert receiver.bad_signatures == []


async def cli(settings: Settings, *args: str) -> tuple[int, str]:
    """`marketplace ...` as a process, pointed at the settings' database and key file."""
    env = dict(os.environ) | {
        "MARKETPLACE_DATABASE_URL": settings.dsn,
        "MARKETPLACE_MIGRATE_DATABASE_URL": settings.migrate_dsn,
        "MARKETPLACE_WEBHOOK_SECRET_KEYS": str(settings.webhook_keys_path),
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "marketplace.app.cli",
        *args,
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode()


@pytest.fixture
async def scratch(settings: Settings, tmp_path: Path) -> AsyncIterator[Settings]:
    async with scratch_database(settings, "secrets") as db:
        yield dataclasses.replace(db, webhook_secret_keys=str(tmp_path / "secret-keys"))


async def test_migrate_encrypts_the_secrets_stored_in_clear(scratch: Settings) -> None:
    first, second = secret_from_bytes(os.urandom(32)), secret_from_bytes(os.urandom(32))
    conn = await connect(scratch)
    try:
        await conn.execute(
            "INSERT INTO webhook_endpoints (endpoint_id, partner_id, url, secret, previous_secret)"
            " VALUES ('old', 'p', 'https://example.com/', $1, $2)",
            second,
            first,
        )
        # No key yet: migrate stops and changes nothing.
        code, out = await cli(scratch, "migrate")
        assert code != 0
        assert "1 webhook secret(s) stored in clear" in out
        assert "marketplace webhooks keygen" in out
        assert await conn.fetchval("SELECT secret FROM webhook_endpoints") == second

        code, out = await cli(scratch, "webhooks", "keygen")
        assert code == 0, out
        code, out = await cli(scratch, "migrate")
        assert code == 0, out
        assert "encrypted 1 stored secret(s)" in out
        ring: KeyRing = load_ring(scratch.webhook_keys_path)
        row = await conn.fetchrow("SELECT secret, previous_secret FROM webhook_endpoints")
        assert row is not None
        assert ring.is_current(row["secret"])
        assert ring.is_current(row["previous_secret"])
        assert (ring.decrypt(row["secret"]), ring.decrypt(row["previous_secret"])) == (
            second,
            first,
        )
        for form in forms(first) + forms(second):
            assert form not in repr(dict(row))
            assert form not in out
        # Once is enough: the next migrate finds nothing in clear.
        code, out = await cli(scratch, "migrate")
        assert code == 0
        assert "encrypted" not in out
    finally:
        await conn.close()
