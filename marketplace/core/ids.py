"""Ids of derived events come from their causes (decision 3): same input, same id on replay."""

from __future__ import annotations

import hashlib
import uuid

DERIVED_NAMESPACE = uuid.UUID("5b0c7c7e-3f57-4f0e-9a49-1c6c1e7f2a10")
_NAMESPACE = DERIVED_NAMESPACE.bytes


def derived_id(cause_id: str, index: int = 0) -> str:
    """The id of the index-th event derived from the event `cause_id`: the name-based (SHA-1)
    UUID of "cause_id/index" in DERIVED_NAMESPACE, as `uuid.uuid5` makes it (RFC 9562, section
    5.5), written out so that no UUID object is made on the matcher's hot path."""
    name = _NAMESPACE + f"{cause_id}/{index}".encode()
    digest = bytearray(hashlib.sha1(name, usedforsecurity=False).digest()[:16])
    digest[6] = (digest[6] & 0x0F) | 0x50  # version 5
    digest[8] = (digest[8] & 0x3F) | 0x80  # the RFC's variant
    x = digest.hex()
    return f"{x[:8]}-{x[8:12]}-{x[12:16]}-{x[16:20]}-{x[20:]}"
