"""The operator's keys backed up and restored (`marketplace keys backup|restore`, #21 item 8).

The exchange keeps four keys outside its database, each a file its settings name: the webhook
secret key ring (which also seals people's second factors and the organisations' data keys of
crypto-shredding), the audit log's signing key, the key of the unsubscribe links, and the DKIM key
when one is set. Without the ring, every stored webhook secret and second factor is lost, and
every name and text sealed in the events reads as erased; without the signing key, new
checkpoints are signed by a key auditors do not know.

A backup is one tar archive (mode 0600) with the files as they are and a manifest: each file's
SHA-256, the setting it restores to, the ring's key ids and the signing key's public key. It
holds the keys in clear: keep it encrypted and apart from the database's backups (see
docs/operators/security.md). A restore checks every file against the manifest, writes each
where the current settings name it (mode 0600; an existing different file is not replaced), then
proves the keys work: the ring parses and opens the secrets stored in the database, and the
signing key is the one whose public key the manifest names."""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from marketplace.audit.signing import load_key, public_bytes
from marketplace.db import Conn
from marketplace.secretbox import KeyRing, SecretKeyError, load_ring
from marketplace.settings import Settings

MANIFEST = "MANIFEST.json"


class KeyBackupError(RuntimeError):
    pass


def key_files(settings: Settings) -> dict[str, tuple[Path, str]]:
    """The operator's key files: name in the archive -> (path, the setting that names it)."""
    files = {
        "webhook-secret-keys": (settings.webhook_keys_path, "MARKETPLACE_WEBHOOK_SECRET_KEYS"),
        "audit-signing-key.pem": (settings.audit_key_path, "MARKETPLACE_AUDIT_SIGNING_KEY"),
        "mail-link-key": (settings.mail_link_key_path, "MARKETPLACE_MAIL_LINK_KEY"),
    }
    if settings.mail_dkim_key:
        files["dkim-key.pem"] = (Path(settings.mail_dkim_key), "MARKETPLACE_MAIL_DKIM_KEY")
    return files


def _describe(name: str, content: bytes) -> dict[str, Any]:
    """What a restore checks a file against: its SHA-256, and its key ids or public key."""
    out: dict[str, Any] = {"sha256": hashlib.sha256(content).hexdigest()}
    if name == "webhook-secret-keys":
        out["key_ids"] = list(KeyRing.parse(content.decode(), name).ids)
    elif name == "audit-signing-key.pem":
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        key = serialization.load_pem_private_key(content, password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise KeyBackupError(f"{name} is not an Ed25519 key")
        out["public_key"] = public_bytes(key).hex()
    return out


def backup(settings: Settings, target: Path) -> dict[str, Any]:
    """Writes the archive at `target` (refusing to overwrite) and returns its manifest. A key
    file that does not exist is named in the manifest as missing."""
    members: dict[str, bytes] = {}
    manifest: dict[str, Any] = {"made_at": datetime.now(UTC).isoformat(), "files": {}}
    for name, (path, setting) in key_files(settings).items():
        try:
            content = path.read_bytes()
        except FileNotFoundError:
            manifest["files"][name] = {"missing": True, "setting": setting}
            continue
        members[name] = content
        manifest["files"][name] = {"setting": setting, **_describe(name, content)}
    if not members:
        raise KeyBackupError("none of the operator's key files exists: nothing to back up")
    members[MANIFEST] = orjson.dumps(manifest, option=orjson.OPT_INDENT_2)
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as raw, tarfile.open(fileobj=raw, mode="w:gz") as archive:
        for name, content in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            info.mode = 0o600
            archive.addfile(info, io.BytesIO(content))
    return manifest


@dataclass
class Restored:
    written: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    key_ids: list[str] = field(default_factory=list)
    audit_public_key: str | None = None
    # Secrets stored in the database (webhook secrets, second factors) the restored ring opens,
    # and those it does not.
    opened: int = 0
    unreadable: list[str] = field(default_factory=list)


def _read(source: Path) -> tuple[dict[str, Any], dict[str, bytes]]:
    members: dict[str, bytes] = {}
    with tarfile.open(source, mode="r:gz") as archive:
        for info in archive.getmembers():
            if not info.isfile() or "/" in info.name or info.name.startswith("."):
                raise KeyBackupError(f"{source}: unexpected member {info.name!r}")
            handle = archive.extractfile(info)
            if handle is None:
                raise KeyBackupError(f"{source}: {info.name} cannot be read")
            members[info.name] = handle.read()
    if MANIFEST not in members:
        raise KeyBackupError(f"{source} has no {MANIFEST}: not a key backup")
    manifest: dict[str, Any] = orjson.loads(members.pop(MANIFEST))
    for name, content in members.items():
        expected = manifest["files"].get(name, {}).get("sha256")
        if expected != hashlib.sha256(content).hexdigest():
            raise KeyBackupError(f"{source}: {name} does not match its manifest (damaged?)")
    return manifest, members


def restore_files(settings: Settings, source: Path) -> Restored:
    """Writes the archive's files where the settings name them, after checking them all."""
    manifest, members = _read(source)
    done = Restored()
    targets = key_files(settings)
    for name in members:
        if name not in targets:
            raise KeyBackupError(
                f"{name} is in the backup but no setting names its place here (for the DKIM"
                " key: set MARKETPLACE_MAIL_DKIM_KEY first)"
            )
        path = targets[name][0]
        if path.exists() and path.read_bytes() != members[name]:
            raise KeyBackupError(
                f"{path} exists and differs from the backup's {name}: move it away first"
            )
    for name, content in members.items():
        path = targets[name][0]
        if path.exists():
            done.unchanged.append(name)
            continue
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(content)
            f.flush()
            os.fsync(f.fileno())
        done.written.append(name)
    if "webhook-secret-keys" in members:
        ring = load_ring(targets["webhook-secret-keys"][0])
        done.key_ids = list(ring.ids)
    if "audit-signing-key.pem" in members:
        public = public_bytes(load_key(targets["audit-signing-key.pem"][0])).hex()
        if public != manifest["files"]["audit-signing-key.pem"]["public_key"]:
            raise KeyBackupError("the restored audit signing key is not the one backed up")
        done.audit_public_key = public
    return done


async def check_stored_secrets(conn: Conn, ring: KeyRing, done: Restored) -> None:
    """Opens every secret the database stores under the ring: webhook signing secrets (current
    and previous), people's second factors and the organisations' data keys (crypto-shredding);
    names what does not open."""
    rows = await conn.fetch(
        "SELECT 'endpoint ' || endpoint_id AS what, secret FROM webhook_endpoints"
        " WHERE deleted_at IS NULL"
        " UNION ALL SELECT 'endpoint ' || endpoint_id || ' (previous)', previous_secret"
        " FROM webhook_endpoints WHERE deleted_at IS NULL AND previous_secret IS NOT NULL"
        " UNION ALL SELECT 'person ' || person_id::text || ' (second factor)', totp_sealed"
        " FROM people WHERE totp_sealed IS NOT NULL"
        " UNION ALL SELECT 'data key of ' || subject, sealed_key FROM data_keys"
    )
    for r in rows:
        try:
            ring.decrypt(r["secret"])
            done.opened += 1
        except SecretKeyError:
            done.unreadable.append(r["what"])
