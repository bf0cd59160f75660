"""Ed25519 keys and signed checkpoints of the chain heads.

The operator configures the private key (`MARKETPLACE_AUDIT_SIGNING_KEY`, a PKCS#8 PEM file such
as `openssl genpkey -algorithm ed25519` writes); the public key is published (`marketplace audit
public-key`, `GET /audit/public-key`) so that anyone holding an export can check it offline."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import orjson
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

CHECKPOINT_FORMAT = 1


class SigningKeyError(ValueError):
    """The signing key file is missing or not an Ed25519 private key."""


def create_key(path: Path) -> Ed25519PrivateKey:
    """Writes a new private key, readable by its owner only; refuses to overwrite one."""
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
    return key


def load_key(path: Path) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except FileNotFoundError as exc:
        raise SigningKeyError(
            f"audit signing key {path} not found: create one with `marketplace audit keygen`"
        ) from exc
    except ValueError as exc:
        raise SigningKeyError(f"audit signing key {path} is not a PEM private key") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise SigningKeyError(f"audit signing key {path} is not an Ed25519 key")
    return key


def public_bytes(key: Ed25519PrivateKey | Ed25519PublicKey) -> bytes:
    pub = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    return pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def fingerprint(public_key: bytes) -> str:
    return hashlib.sha256(public_key).hexdigest()[:16]


def parse_public_key(text: str) -> bytes:
    """A public key given as 64 hex digits, or a file holding that or a PEM public key."""
    candidate = text.strip()
    path = Path(candidate)
    if len(candidate) != 64 and path.is_file():
        raw = path.read_bytes()
        if raw.lstrip().startswith(b"-----BEGIN"):
            pub = serialization.load_pem_public_key(raw)
            if not isinstance(pub, Ed25519PublicKey):
                raise SigningKeyError(f"{path} is not an Ed25519 public key")
            return public_bytes(pub)
        candidate = raw.decode().strip()
    try:
        key = bytes.fromhex(candidate)
    except ValueError as exc:
        raise SigningKeyError(f"public key {text!r}: expected 64 hex digits or a key file") from exc
    if len(key) != 32:
        raise SigningKeyError(f"public key {text!r}: an Ed25519 key is 32 bytes")
    return key


@dataclass(frozen=True, slots=True)
class Head:
    topic: str
    partition: int
    offset: int
    hash: bytes


def checkpoint_body(created_at: datetime, heads: list[Head]) -> bytes:
    """The exact bytes a checkpoint signs: JSON with sorted keys, heads sorted by chain."""
    return orjson.dumps(
        {
            "format": CHECKPOINT_FORMAT,
            "created_at": created_at.isoformat(),
            "heads": [
                {
                    "topic": h.topic,
                    "partition": h.partition,
                    "offset": h.offset,
                    "hash": h.hash.hex(),
                }
                for h in sorted(heads, key=lambda h: (h.topic, h.partition))
            ],
        },
        option=orjson.OPT_SORT_KEYS,
    )


def heads_of(body: bytes) -> list[Head]:
    doc = orjson.loads(body)
    return [
        Head(h["topic"], int(h["partition"]), int(h["offset"]), bytes.fromhex(h["hash"]))
        for h in doc["heads"]
    ]


def sign(key: Ed25519PrivateKey, body: bytes) -> bytes:
    return key.sign(body)


def signature_valid(public_key: bytes, body: bytes, signature: bytes) -> bool:
    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(signature, body)
    except (InvalidSignature, ValueError):
        return False
    return True
