"""The hash chain of the audit log: how one Kafka record is encoded canonically and linked to the
record before it in the same topic partition. Pure functions; the formats are in README.md here,
so that anyone can re-implement the check without this code."""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

FORMAT = 1
GENESIS = bytes(32)  # the `prev_hash` of the first record of every chain


def b64(data: bytes | None) -> str | None:
    # binascii directly: what base64.b64encode does, without its wrapper (a hot path).
    return None if data is None else binascii.b2a_base64(data, newline=False).decode("ascii")


def unb64(text: str | None) -> bytes | None:
    return None if text is None else base64.b64decode(text.encode("ascii"), validate=True)


@dataclass(frozen=True, slots=True)
class Entry:
    """One Kafka record as the audit log keeps it: the fields the hash covers."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    key: bytes | None
    headers: tuple[tuple[str, bytes | None], ...]
    value: bytes | None

    def canonical(self, headers_json: list[list[str | None]] | None = None) -> bytes:
        """Compact JSON of [format, topic, partition, offset, timestamp, key, headers, value]
        with bytes in standard base64 (null when absent) and headers as [name, value] pairs in
        the record's order. `headers_json`, when given, is this entry's `headers_json()`
        already computed (the writer needs it for its own column too)."""
        return orjson.dumps(
            [
                FORMAT,
                self.topic,
                self.partition,
                self.offset,
                self.timestamp_ms,
                b64(self.key),
                self.headers_json() if headers_json is None else headers_json,
                b64(self.value),
            ]
        )

    def headers_json(self) -> list[list[str | None]]:
        return [[name, b64(value)] for name, value in self.headers]


def link(
    prev_hash: bytes, entry: Entry, headers_json: list[list[str | None]] | None = None
) -> bytes:
    """sha256(prev_hash || canonical(entry))."""
    return hashlib.sha256(prev_hash + entry.canonical(headers_json)).digest()


def entry_from_record(record: Any) -> Entry:
    """An aiokafka ConsumerRecord (or anything shaped like one) as an Entry."""
    headers = tuple((str(name), value) for name, value in (record.headers or ()))
    return Entry(
        topic=record.topic,
        partition=record.partition,
        offset=record.offset,
        timestamp_ms=record.timestamp,
        key=record.key,
        headers=headers,
        value=record.value,
    )


def entry_from_json(
    topic: str,
    partition: int,
    offset: int,
    timestamp_ms: int,
    key: str | None,
    headers: Sequence[Sequence[str | None]],
    value: str | None,
) -> Entry:
    """The inverse of the stored/exported form: base64 fields back to bytes."""
    pairs: list[tuple[str, bytes | None]] = []
    for pair in headers:
        if len(pair) != 2 or not isinstance(pair[0], str):
            raise ValueError(f"header {pair!r} is not a [name, base64 value] pair")
        pairs.append((pair[0], unb64(pair[1])))
    return Entry(topic, partition, offset, timestamp_ms, unb64(key), tuple(pairs), unb64(value))


@dataclass(frozen=True, slots=True)
class Finding:
    """One thing wrong with a chain, pinned to the record where it shows."""

    topic: str
    partition: int
    offset: int
    problem: str

    def __str__(self) -> str:
        return f"{self.topic}/{self.partition}@{self.offset}: {self.problem}"


@dataclass(slots=True)
class ChainCheck:
    """Checks one chain record by record, in offset order. Starts at the genesis hash, or, for a
    range that begins mid-chain, at the first record's own `prev_hash` (the anchor)."""

    topic: str
    partition: int
    anchored: bool = False
    last_offset: int | None = None
    last_hash: bytes | None = None
    count: int = 0

    def feed(self, entry: Entry, prev_hash: bytes, stored_hash: bytes) -> Finding | None:
        expected_prev = self.last_hash
        if expected_prev is None:
            expected_prev = prev_hash if self.anchored else GENESIS
        finding: Finding | None = None
        if self.last_offset is not None and entry.offset <= self.last_offset:
            finding = self._finding(
                entry.offset, f"out of order: follows offset {self.last_offset}"
            )
        elif prev_hash != expected_prev:
            after = (
                f"the record at offset {self.last_offset}"
                if self.last_offset is not None
                else "the start of the chain"
            )
            finding = self._finding(
                entry.offset,
                f"broken link: prev_hash {prev_hash.hex()[:16]}… does not match {after} "
                f"({expected_prev.hex()[:16]}…); records between them were removed or altered",
            )
        elif link(prev_hash, entry) != stored_hash:
            finding = self._finding(
                entry.offset, "altered: the record's contents do not match its stored hash"
            )
        # Go on from what is stored, so that later, independent damage is found too.
        self.last_offset = entry.offset
        self.last_hash = stored_hash
        self.count += 1
        return finding

    def _finding(self, offset: int, problem: str) -> Finding:
        return Finding(self.topic, self.partition, offset, problem)


_ID, _IDS, _OTHER = 1, 2, 0
_NAME_KINDS: dict[str, int] = {}  # field name -> what it holds; events reuse few names


def _name_kind(name: str) -> int:
    kind = _NAME_KINDS.get(name)
    if kind is None:
        if name.endswith("_id") or name == "id":
            kind = _ID
        elif name.endswith("_ids") or name == "bidders":
            kind = _IDS
        else:
            kind = _OTHER
        if len(_NAME_KINDS) < 10_000:
            _NAME_KINDS[name] = kind
    return kind


def refs(data: Any, extra: Iterable[str | None] = ()) -> list[str]:
    """The ids an event mentions (fields named *_id, *_ids, bidders, in objects nested at most
    three deep), for `audit history`. The names' meanings are remembered (the auditor calls this
    for every record)."""
    found: set[str] = {x for x in extra if x}
    if not isinstance(data, dict):
        return sorted(found)
    stack: list[tuple[dict[Any, Any], int]] = [(data, 0)]
    while stack:
        node, depth = stack.pop()
        for name, value in node.items():
            if isinstance(value, str):
                if _name_kind(name) == _ID:
                    found.add(value)
            elif isinstance(value, list):
                if _name_kind(name) == _IDS:
                    found.update(v for v in value if isinstance(v, str))
            elif isinstance(value, dict) and depth < 3:
                stack.append((value, depth + 1))
    return sorted(found)
