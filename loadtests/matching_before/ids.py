"""Ids of derived events come from their causes (decision 3): same input, same id on replay."""

from __future__ import annotations

import uuid

DERIVED_NAMESPACE = uuid.UUID("5b0c7c7e-3f57-4f0e-9a49-1c6c1e7f2a10")


def derived_id(cause_id: str, index: int = 0) -> str:
    """The id of the index-th event derived from the event `cause_id`."""
    return str(uuid.uuid5(DERIVED_NAMESPACE, f"{cause_id}/{index}"))
