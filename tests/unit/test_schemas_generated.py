from __future__ import annotations

import orjson

from marketplace.app.generate import (
    PROSE_KEYS,
    expected_files,
    normalise_prose,
    stale_files,
)
from schemas.files import ASYNCAPI, JSON_DIR
from schemas.registry import EVENT_TYPES, TOPIC_EVENTS


def test_generated_schema_files_are_current() -> None:
    stale = stale_files()
    assert stale == [], f"run `python -m marketplace.app.generate` and commit: {stale}"


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


def test_docstring_prose_is_the_same_however_it_was_dedented() -> None:
    indented = "First line of a summary,\n    continued here.\n\n    A second paragraph.\n    "
    dedented = "First line of a summary,\ncontinued here.\n\nA second paragraph."
    flat = "First line of a summary, continued here.\n\nA second paragraph."
    assert normalise_prose(indented) == normalise_prose(dedented) == flat


def test_generated_documents_hold_only_normalised_prose() -> None:
    def walk(obj: object) -> list[str]:
        if isinstance(obj, dict):
            found = [v for k, v in obj.items() if k in PROSE_KEYS and isinstance(v, str)]
            return found + [s for v in obj.values() for s in walk(v)]
        if isinstance(obj, list):
            return [s for v in obj for s in walk(v)]
        return []

    texts = [s for body in expected_files().values() for s in walk(orjson.loads(body))]
    assert len(texts) > 100
    assert [s for s in texts if s != normalise_prose(s)] == []
