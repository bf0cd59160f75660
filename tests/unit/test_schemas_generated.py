from __future__ import annotations

import orjson

from schemas.generate import ASYNCAPI, JSON_DIR, stale_files
from schemas.registry import EVENT_TYPES, TOPIC_EVENTS


def test_generated_schema_files_are_current() -> None:
    stale = stale_files()
    assert stale == [], f"run `python -m schemas.generate` and commit: {stale}"


def test_every_event_has_a_json_schema_and_an_asyncapi_message() -> None:
    doc = orjson.loads(ASYNCAPI.read_bytes())
    assert doc["asyncapi"].startswith("3.")
    names = {m["name"] for m in doc["components"]["messages"].values()}
    assert names == set(EVENT_TYPES)
    for name in EVENT_TYPES:
        schema = orjson.loads((JSON_DIR / f"{name}.json").read_bytes())
        assert schema["title"] == name
    addresses = {c["address"] for c in doc["channels"].values()}
    assert addresses == set(TOPIC_EVENTS)
