"""Generates the JSON Schema of every payload, the AsyncAPI 3 document of every topic and the
OpenAPI 3.1 document of the partner API.

    python -m marketplace.app.generate          # rewrite json/*.json, asyncapi.json, openapi.json
    python -m marketplace.app.generate --check  # exit 1 if the files on disk are stale

The files are checked in; tests/unit/test_schemas_generated.py fails when they are stale."""

from __future__ import annotations

import argparse
import inspect
import re
import sys
from pathlib import Path
from typing import Any

import msgspec
import orjson

from producers.api.openapi import document
from schemas.files import ASYNCAPI, HERE, JSON_DIR, OPENAPI
from schemas.registry import TOPIC_EVENTS, members, type_name
from schemas.topics import by_name

DRAFT = "https://json-schema.org/draft/2020-12/schema"
KAFKA_BINDING = "0.5.0"

CLOUDEVENT_HEADERS: dict[str, Any] = {
    "type": "object",
    "description": "CloudEvents 1.0 attributes in Kafka binary mode.",
    "required": ["ce_specversion", "ce_id", "ce_type", "ce_source", "ce_time", "content-type"],
    "properties": {
        "ce_specversion": {"const": "1.0"},
        "ce_id": {"type": "string", "description": "unique per event; the deduplication key"},
        "ce_type": {"type": "string", "description": "equals the payload's `type`"},
        "ce_source": {"type": "string", "description": "the producing service"},
        "ce_time": {"type": "string", "format": "date-time"},
        "ce_subject": {"type": "string", "description": "the id of the item concerned"},
        "content-type": {"const": "application/json"},
    },
}


PROSE_KEYS = frozenset({"description", "summary"})


def normalise_prose(text: str) -> str:
    """The text of a docstring, independent of how it was dedented: msgspec releases and Python
    versions (3.13 dedents at compile time) hand over the same docstring with different leading
    whitespace. Paragraphs are kept; the lines within one are joined by single spaces."""
    paragraphs = re.split(r"\n\s*\n", inspect.cleandoc(text))
    return "\n\n".join(" ".join(p.split()) for p in paragraphs if p.strip())


def normalised(obj: Any) -> Any:
    """`obj` with every description and summary passed through `normalise_prose`."""
    if isinstance(obj, dict):
        return {
            k: normalise_prose(v) if k in PROSE_KEYS and isinstance(v, str) else normalised(v)
            for k, v in obj.items()
        }
    if isinstance(obj, list):
        return [normalised(v) for v in obj]
    return obj


def _dump(obj: Any) -> bytes:
    return orjson.dumps(normalised(obj), option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n"


def payload_schemas() -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    for union in TOPIC_EVENTS.values():
        for cls in members(union):
            schema = msgspec.json.schema(cls)
            schema["$schema"] = DRAFT
            schema["title"] = type_name(cls)
            out[f"{type_name(cls)}.json"] = _dump(schema)
    return out


def asyncapi() -> bytes:
    classes = [cls for union in TOPIC_EVENTS.values() for cls in members(union)]
    _, components = msgspec.json.schema_components(
        classes, ref_template="#/components/schemas/{name}"
    )
    components["CloudEventHeaders"] = CLOUDEVENT_HEADERS
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    for topic, union in TOPIC_EVENTS.items():
        spec = by_name(topic)
        channel_id = topic.replace(".", "_")
        channel_messages = {}
        for cls in members(union):
            messages[cls.__name__] = {
                "name": type_name(cls),
                "title": cls.__name__,
                "summary": normalise_prose(cls.__doc__ or "").split("\n\n")[0] or type_name(cls),
                "contentType": "application/json",
                "headers": {"$ref": "#/components/schemas/CloudEventHeaders"},
                "payload": {"$ref": f"#/components/schemas/{cls.__name__}"},
                "bindings": {
                    "kafka": {
                        "key": {"type": "string", "description": spec.key},
                        "bindingVersion": KAFKA_BINDING,
                    }
                },
            }
            channel_messages[cls.__name__] = {"$ref": f"#/components/messages/{cls.__name__}"}
        channels[channel_id] = {
            "address": topic,
            "description": f"{spec.purpose}. Key: {spec.key}.",
            "messages": channel_messages,
            "bindings": {"kafka": {"topic": topic, "bindingVersion": KAFKA_BINDING}},
        }
        operations[f"consume_{channel_id}"] = {
            "action": "receive",
            "channel": {"$ref": f"#/channels/{channel_id}"},
            "messages": [
                {"$ref": f"#/channels/{channel_id}/messages/{n}"} for n in channel_messages
            ],
        }
    doc = {
        "asyncapi": "3.0.0",
        "info": {
            "title": "Circular materials exchange events",
            "version": "1",
            "description": "Every event of the exchange: CloudEvents 1.0 in Kafka binary mode, "
            "JSON payloads. Generated by `python -m marketplace.app.generate`; do not edit.",
        },
        "defaultContentType": "application/json",
        "servers": {
            "local": {
                "host": "127.0.0.1:19092",
                "protocol": "kafka",
                "description": "the broker `marketplace up` starts",
            }
        },
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages, "schemas": components},
    }
    return _dump(doc)


def expected_files() -> dict[Path, bytes]:
    files = {JSON_DIR / name: body for name, body in payload_schemas().items()}
    files[ASYNCAPI] = asyncapi()
    files[OPENAPI] = _dump(document())
    return files


def stale_files() -> list[str]:
    expected = expected_files()
    stale = [
        str(p.relative_to(HERE))
        for p, body in expected.items()
        if not p.exists() or p.read_bytes() != body
    ]
    extra = (
        [str(p.relative_to(HERE)) for p in JSON_DIR.glob("*.json") if p not in expected]
        if JSON_DIR.exists()
        else []
    )
    return sorted(stale + extra)


def write() -> None:
    JSON_DIR.mkdir(exist_ok=True)
    expected = expected_files()
    for p in JSON_DIR.glob("*.json"):
        if p not in expected:
            p.unlink()
    for p, body in expected.items():
        p.write_bytes(body)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="fail if the files are stale")
    args = parser.parse_args()
    if args.check:
        stale = stale_files()
        if stale:
            print("stale: " + ", ".join(stale) + " (run python -m marketplace.app.generate)")
            return 1
        return 0
    write()
    print(f"wrote {len(expected_files())} files under {HERE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
