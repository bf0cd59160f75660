"""The signed links in every message: one-click unsubscribe (RFC 8058) needs no sign-in, so the
link itself carries who and what, with an HMAC-SHA256 of them under the operator's link key
(MARKETPLACE_MAIL_LINK_KEY, a file of random bytes made on first use when missing)."""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import os
import secrets
import uuid
from pathlib import Path

KEY_BYTES = 32


@functools.cache
def _key_at(path: Path) -> bytes:
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        scratch = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(scratch, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, secrets.token_bytes(KEY_BYTES))
        finally:
            os.close(fd)
        try:
            os.link(scratch, path)  # the first process to make it wins; others read its key
        except FileExistsError:
            pass
        finally:
            scratch.unlink()
    key = path.read_bytes()
    if len(key) < 16:
        raise ValueError(f"{path}: the mail link key needs at least 16 bytes")
    return key


def link_key(path: Path) -> bytes:
    return _key_at(path.resolve())


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _mac(key: bytes, person_id: str, kind: str) -> str:
    return _b64(hmac.new(key, f"unsubscribe/{person_id}/{kind}".encode(), hashlib.sha256).digest())


def unsubscribe_token(key: bytes, person_id: str, kind: str) -> str:
    """person (16 bytes), kind and the MAC in one URL-safe path segment, joined by ~."""
    who = _b64(uuid.UUID(person_id).bytes)
    return f"{who}~{kind}~{_mac(key, person_id, kind)}"


def read_unsubscribe(key: bytes, token: str) -> tuple[str, str] | None:
    """(person_id, kind) when the token is one of ours, else None."""
    try:
        who, kind, mac = token.split("~")
        person_id = str(uuid.UUID(bytes=base64.urlsafe_b64decode(who + "=" * (-len(who) % 4))))
    except ValueError:
        return None
    if not hmac.compare_digest(mac, _mac(key, person_id, kind)):
        return None
    return person_id, kind
