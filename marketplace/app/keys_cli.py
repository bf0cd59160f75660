"""`marketplace keys backup|restore`: the operator's key files in one archive, and back
(marketplace/app/keys.py; docs/operators/security.md says where to keep the archive)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

from marketplace.settings import Settings


def add_parser(sub: Any) -> None:
    keys = sub.add_parser(
        "keys", help="back up and restore the operator's keys (webhook secrets, audit, mail)"
    )
    actions = keys.add_subparsers(dest="action", required=True)
    backup = actions.add_parser("backup", help="write the key files and a manifest to an archive")
    backup.add_argument("archive", type=Path, help="a new file (tar.gz, mode 0600)")
    restore = actions.add_parser(
        "restore",
        help="put the archive's key files where the settings name them, then check that they"
        " open the secrets stored in the database",
    )
    restore.add_argument("archive", type=Path)


def command(settings: Settings, args: argparse.Namespace) -> int:
    from marketplace.app.keys import KeyBackupError
    from marketplace.audit.signing import SigningKeyError
    from marketplace.secretbox import SecretKeyError

    try:
        return asyncio.run(_run(settings, args))
    except (KeyBackupError, SecretKeyError, SigningKeyError, FileExistsError, OSError) as exc:
        print(f"marketplace keys {args.action}: {exc}", file=sys.stderr)
        return 1


async def _run(settings: Settings, args: argparse.Namespace) -> int:
    from marketplace.app import keys
    from marketplace.db import connect
    from marketplace.secretbox import load_ring

    if args.action == "backup":
        manifest = keys.backup(settings, args.archive)
        for name, about in manifest["files"].items():
            if about.get("missing"):
                print(f"{name}: missing ({about['setting']} names no file), not in the backup")
            else:
                print(f"{name}: {about['sha256'][:16]}")
        print(f"wrote {args.archive} (mode 0600): encrypt it before it leaves this machine")
        return 0
    done = keys.restore_files(settings, args.archive)
    for name in done.written:
        print(f"{name}: restored")
    for name in done.unchanged:
        print(f"{name}: already in place, identical")
    if done.audit_public_key:
        print(f"audit signing key: public key {done.audit_public_key}")
    if done.key_ids:
        conn = await connect(settings)
        try:
            await keys.check_stored_secrets(conn, load_ring(settings.webhook_keys_path), done)
        finally:
            await conn.close()
        print(f"webhook secret keys {', '.join(done.key_ids)}: open {done.opened} stored secrets")
        if done.unreadable:
            print(
                f"{len(done.unreadable)} stored secrets do not open with these keys (a key"
                f" made after this backup?): {', '.join(done.unreadable[:20])}",
                file=sys.stderr,
            )
            return 1
    return 0
