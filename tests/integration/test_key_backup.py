"""The operator's keys backed up and restored with `marketplace keys backup|restore`, against
a database of its own: after the key files are lost, the restored ring opens the secrets stored
in PostgreSQL and the audit signing key is the same key; a backup older than a key rotation is
found out (the secrets it cannot open are named, exit 1)."""

from __future__ import annotations

import dataclasses
import os
import stat
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from loadtests.scratch import scratch_database
from marketplace.audit.signing import load_key, public_bytes
from marketplace.db import connect
from marketplace.mail.links import link_key
from marketplace.secretbox import KeyRing, SecretKeyError, load_ring, new_key
from marketplace.settings import ROOT, Settings

pytestmark = pytest.mark.integration


@pytest.fixture
async def scratch(settings: Settings, tmp_path: Path) -> AsyncIterator[Settings]:
    keys = tmp_path / "keys"
    async with scratch_database(settings, "keys") as db:
        yield dataclasses.replace(
            db,
            webhook_secret_keys=str(keys / "secret-keys"),
            audit_signing_key=str(keys / "audit" / "signing-key.pem"),
            mail_link_key=str(keys / "link-key"),
        )


def cli(s: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ) | {
        "MARKETPLACE_DATABASE_URL": s.dsn,
        "MARKETPLACE_MIGRATE_DATABASE_URL": s.migrate_dsn,
        "MARKETPLACE_WEBHOOK_SECRET_KEYS": s.webhook_secret_keys,
        "MARKETPLACE_AUDIT_SIGNING_KEY": s.audit_signing_key,
        "MARKETPLACE_MAIL_LINK_KEY": s.mail_link_key,
    }
    return subprocess.run(
        [sys.executable, "-m", "marketplace.app.cli", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


def ok(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


async def test_restored_keys_open_the_stored_secrets(scratch: Settings, tmp_path: Path) -> None:
    ok(cli(scratch, "webhooks", "keygen"))
    ok(cli(scratch, "audit", "keygen"))
    link_key(scratch.mail_link_key_path)
    ring = load_ring(scratch.webhook_keys_path)
    secrets = {"ep-1": "whsec_" + "a" * 32, "ep-2": "whsec_" + "b" * 32}
    conn = await connect(scratch)
    try:
        for endpoint, secret in secrets.items():
            await conn.execute(
                "INSERT INTO webhook_endpoints (endpoint_id, partner_id, url, secret)"
                " VALUES ($1, 'p', 'https://example.com/hook', $2)",
                endpoint,
                ring.encrypt(secret),
            )
        originals = {
            p: p.read_bytes()
            for p in (
                scratch.webhook_keys_path,
                scratch.audit_key_path,
                scratch.mail_link_key_path,
            )
        }
        audit_public = public_bytes(load_key(scratch.audit_key_path)).hex()

        archive = tmp_path / "keys-backup.tar.gz"
        out = ok(cli(scratch, "keys", "backup", str(archive)))
        assert "webhook-secret-keys" in out
        assert stat.S_IMODE(archive.stat().st_mode) == 0o600
        # A second backup never overwrites the first.
        assert cli(scratch, "keys", "backup", str(archive)).returncode == 1

        # The keys are lost; the database is not.
        keys_dir = Path(scratch.webhook_secret_keys).parent
        keys_dir.rename(tmp_path / "lost")
        assert not scratch.webhook_keys_path.exists()
        out = ok(cli(scratch, "keys", "restore", str(archive)))
        assert "open 2 stored secrets" in out
        assert audit_public in out
        for path, content in originals.items():
            assert path.read_bytes() == content
            assert stat.S_IMODE(path.stat().st_mode) == 0o600
        restored = load_ring(scratch.webhook_keys_path)
        for endpoint, secret in secrets.items():
            stored = await conn.fetchval(
                "SELECT secret FROM webhook_endpoints WHERE endpoint_id = $1", endpoint
            )
            assert restored.decrypt(stored) == secret
            # Another key would not do: the check is worth something.
            with pytest.raises(SecretKeyError):
                KeyRing((new_key(),)).decrypt(stored)
        assert public_bytes(load_key(scratch.audit_key_path)).hex() == audit_public
        # Restoring over the same files changes nothing and still checks.
        assert "already in place, identical" in ok(cli(scratch, "keys", "restore", str(archive)))

        # After a rotation the old backup no longer opens the secrets, and says so.
        ok(cli(scratch, "webhooks", "rotate-key", "--grace-s", "0"))
        scratch.webhook_keys_path.rename(tmp_path / "rotated-keys")
        stale = cli(scratch, "keys", "restore", str(archive))
        assert stale.returncode == 1
        assert "endpoint ep-1" in stale.stderr
        assert "endpoint ep-2" in stale.stderr
    finally:
        await conn.close()
