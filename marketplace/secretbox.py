"""Secrets at rest: the webhook signing secrets, encrypted with the operator's keys.

Standard Webhooks signs with a shared secret, so the dispatcher must read each secret back; it is
stored encrypted (Fernet from the `cryptography` package: AES-128-CBC with HMAC-SHA256, a random
IV per secret) under a key that lives outside the database, in a file the operator keeps
(`MARKETPLACE_WEBHOOK_SECRET_KEYS`, default <local_dir>/webhooks/secret-keys, mode 0600).

The key file holds one Fernet key per line (lines starting with # are comments); the first
encrypts, every one decrypts. A stored secret reads `fernet:<key id>:<token>`, the key id being
the first 12 hex digits of the SHA-256 of the key, so a rotation knows which rows still need the
old key and a reader picks the right key at once. A value that starts with `whsec_` is a secret
stored in clear before encryption came in: readable, and sealed by the next `marketplace
migrate` or key rotation (marketplace/webhooks.py `seal_secrets`).

Processes read the file again whenever it changes (a rotation rewrites it), so a rotation needs
no restart."""

from __future__ import annotations

import hashlib
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken

from marketplace.core.webhooks import SECRET_PREFIX

PREFIX = "fernet:"


class SecretKeyError(ValueError):
    """The key file is missing or unusable, or a stored secret cannot be read with it. The
    message never contains a secret or a key."""


@dataclass(slots=True)
class Sealed:
    """What a pass of re-encryption did: rows re-encrypted (or encrypted for the first time),
    and rows whose secret no key of the ring reads (left as they are)."""

    sealed: int = 0
    unreadable: list[str] = field(default_factory=list)


def key_id(key: bytes) -> str:
    return hashlib.sha256(key.strip()).hexdigest()[:12]


def new_key() -> bytes:
    return Fernet.generate_key()


@dataclass(frozen=True, slots=True)
class KeyRing:
    """Keys newest first: the first encrypts, all decrypt."""

    keys: tuple[bytes, ...]

    def __post_init__(self) -> None:
        if not self.keys:
            raise SecretKeyError("a webhook secret key ring needs at least one key")

    @classmethod
    def parse(cls, text: str, where: str = "key file") -> KeyRing:
        keys: list[bytes] = []
        for n, line in enumerate(text.splitlines(), 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            try:
                Fernet(line.encode())
            except ValueError:
                raise SecretKeyError(f"{where}, line {n}: not a Fernet key") from None
            keys.append(line.encode())
        if not keys:
            raise SecretKeyError(f"{where} holds no key")
        return cls(tuple(keys))

    @property
    def current_id(self) -> str:
        return key_id(self.keys[0])

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(key_id(k) for k in self.keys)

    def encrypt(self, secret: str) -> str:
        token = Fernet(self.keys[0]).encrypt(secret.encode()).decode()
        return f"{PREFIX}{self.current_id}:{token}"

    def decrypt(self, stored: str) -> str:
        if stored.startswith(SECRET_PREFIX):
            return stored  # stored in clear before encryption came in
        if not stored.startswith(PREFIX):
            raise SecretKeyError("a stored webhook secret is neither encrypted nor a secret")
        wanted, _, token = stored.removeprefix(PREFIX).partition(":")
        for key in self.keys:
            if key_id(key) == wanted:
                try:
                    return Fernet(key).decrypt(token.encode()).decode()
                except InvalidToken:
                    raise SecretKeyError(
                        f"a webhook secret does not decrypt with key {wanted}"
                    ) from None
        raise SecretKeyError(f"a webhook secret is encrypted with key {wanted}, not in the ring")

    def is_current(self, stored: str) -> bool:
        return stored.startswith(f"{PREFIX}{self.current_id}:")

    def text(self) -> str:
        return "".join(k.decode() + "\n" for k in self.keys)


def write_ring(path: Path, ring: KeyRing) -> None:
    """Replaces the key file at once (a reader sees the old file or the new, never half)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(
            "# Webhook secret keys (Fernet), newest first: the first encrypts, all decrypt.\n"
            "# Written by `marketplace webhooks keygen` / `rotate-key`; keep it secret.\n"
            + ring.text()
        )
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def create_ring(path: Path) -> KeyRing:
    """A new key file with one key; refuses to overwrite one."""
    if path.exists():
        raise SecretKeyError(f"webhook secret key file {path} exists already")
    ring = KeyRing((new_key(),))
    write_ring(path, ring)
    return ring


def load_ring(path: Path) -> KeyRing:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SecretKeyError(
            f"webhook secret key file {path} not found: create it with "
            "`marketplace webhooks keygen` (or set MARKETPLACE_WEBHOOK_SECRET_KEYS)"
        ) from None
    return KeyRing.parse(text, str(path))


class KeyFile:
    """The key ring of a file, read again whenever the file changes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._seen: tuple[int, int, int] | None = None
        self._ring: KeyRing | None = None

    def ring(self) -> KeyRing:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return load_ring(self.path)  # raises with the operator's instructions
        seen = (st.st_ino, st.st_mtime_ns, st.st_size)
        with self._lock:
            if self._ring is None or seen != self._seen:
                self._ring = load_ring(self.path)
                self._seen = seen
            return self._ring


_FILES: dict[Path, KeyFile] = {}


def key_file(path: Path) -> KeyFile:
    """One KeyFile per path in this process."""
    found = _FILES.get(path)
    if found is None:
        found = _FILES.setdefault(path, KeyFile(path))
    return found
