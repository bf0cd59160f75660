from __future__ import annotations

import os
from pathlib import Path

import pytest

from marketplace.core.webhooks import secret_from_bytes
from marketplace.secretbox import (
    KeyFile,
    KeyRing,
    SecretKeyError,
    create_ring,
    key_id,
    load_ring,
    new_key,
    write_ring,
)

SECRET = secret_from_bytes(b"k" * 32)


def test_a_secret_is_stored_encrypted_under_the_current_key_and_reads_back() -> None:
    ring = KeyRing((new_key(),))
    stored = ring.encrypt(SECRET)
    assert stored.startswith(f"fernet:{ring.current_id}:")
    assert SECRET not in stored
    assert SECRET.removeprefix("whsec_") not in stored
    assert ring.encrypt(SECRET) != stored  # a random IV each time
    assert ring.decrypt(stored) == SECRET
    assert ring.is_current(stored)


def test_older_keys_read_and_only_the_first_encrypts() -> None:
    old = KeyRing((new_key(),))
    stored = old.encrypt(SECRET)
    both = KeyRing((new_key(), *old.keys))
    assert both.decrypt(stored) == SECRET
    assert not both.is_current(stored)
    assert both.is_current(both.encrypt(SECRET))
    newer_only = KeyRing(both.keys[:1])
    with pytest.raises(SecretKeyError, match=f"encrypted with key {old.current_id}, not in"):
        newer_only.decrypt(stored)


def test_clear_text_from_before_encryption_still_reads() -> None:
    ring = KeyRing((new_key(),))
    assert ring.decrypt(SECRET) == SECRET
    assert not ring.is_current(SECRET)
    with pytest.raises(SecretKeyError, match="neither encrypted nor a secret"):
        ring.decrypt("garbage")


def test_a_tampered_ciphertext_is_refused_without_showing_it() -> None:
    ring = KeyRing((new_key(),))
    stored = ring.encrypt(SECRET)
    bad = stored[:-6] + ("A" if stored[-6] != "A" else "B") + stored[-5:]
    with pytest.raises(SecretKeyError) as err:
        ring.decrypt(bad)
    assert bad not in str(err.value)
    assert SECRET not in str(err.value)


def test_key_files(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "secret-keys"
    with pytest.raises(SecretKeyError, match="marketplace webhooks keygen"):
        load_ring(path)
    ring = create_ring(path)
    assert os.stat(path).st_mode & 0o777 == 0o600
    assert load_ring(path) == ring
    with pytest.raises(SecretKeyError, match="exists already"):
        create_ring(path)
    assert ring.current_id == key_id(ring.keys[0])
    path.write_text("# comment\n\nnot-a-key\n")
    with pytest.raises(SecretKeyError, match="line 3: not a Fernet key"):
        load_ring(path)
    path.write_text("# only a comment\n")
    with pytest.raises(SecretKeyError, match="holds no key"):
        load_ring(path)


def test_a_key_file_is_read_again_when_it_changes(tmp_path: Path) -> None:
    path = tmp_path / "secret-keys"
    first = create_ring(path)
    watched = KeyFile(path)
    assert watched.ring() == first
    second = KeyRing((new_key(), *first.keys))
    write_ring(path, second)
    assert watched.ring() == second
    assert watched.ring() is watched.ring()  # not read again while unchanged
