"""Export bundles: one self-contained JSON-lines file an auditor can verify offline.

Lines, in order (each a JSON object with a `kind`):
- `manifest`: format, range, when and from where it was exported, the public keys of its
  checkpoints, and per chain the first and last offset and the number of records;
- `event`: one record (topic, partition, offset, timestamp_ms, key, headers, value in base64)
  with its `prev_hash` and `hash` (hex), chains one after another, each in offset order;
- `checkpoint`: id, the signed `body` (base64), `signature` and `public_key` (hex);
- `end`: the sha256 of every byte before this line, and, when the exporter holds the operator's
  key, an Ed25519 signature of that digest.
A changed byte anywhere fails the check of the line it is in, or of the digest."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

import orjson
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from marketplace.audit.chain import ChainCheck, Finding, b64, entry_from_json
from marketplace.audit.progress import Progress
from marketplace.audit.progress import bar_of as _bar
from marketplace.audit.signing import (
    fingerprint,
    heads_of,
    public_bytes,
    sign,
    signature_valid,
)
from marketplace.audit.verify import entry_of, rows_of, spans
from marketplace.db import Conn

FORMAT = "marketplace-audit-bundle/1"


class _Writer:
    def __init__(self, out: BinaryIO) -> None:
        self.out = out
        self.digest = hashlib.sha256()

    def line(self, doc: dict[str, Any]) -> None:
        data = orjson.dumps(doc) + b"\n"
        self.digest.update(data)
        self.out.write(data)


async def export_bundle(
    conn: Conn,
    path: Path,
    *,
    since: datetime | None,
    until: datetime | None,
    key: Ed25519PrivateKey | None,
    progress: bool | Progress = True,
) -> dict[str, int]:
    """Writes the bundle; returns the number of events and checkpoints written."""
    counts = {"events": 0, "checkpoints": 0}
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        chain_spans = await spans(conn, since, until)
        checkpoints = await conn.fetch(
            "SELECT checkpoint_id, created_at, public_key, body, signature"
            " FROM audit_checkpoints WHERE ($1::timestamptz IS NULL OR created_at >= $1)"
            " AND ($2::timestamptz IS NULL OR created_at <= $2) ORDER BY checkpoint_id",
            since,
            until,
        )
        total = sum(s.last - s.first + 1 for s in chain_spans)
        bar = _bar(progress, "export", total)
        tmp = path.with_name(path.name + ".partial")
        with tmp.open("wb") as out:
            w = _Writer(out)
            w.line(
                {
                    "kind": "manifest",
                    "format": FORMAT,
                    "from": since.isoformat() if since else None,
                    "to": until.isoformat() if until else None,
                    "exported_at": datetime.now(UTC).isoformat(),
                    "whole_chains": since is None and until is None,
                    "public_keys": sorted({bytes(c["public_key"]).hex() for c in checkpoints}),
                    "chains": [
                        {
                            "topic": s.topic,
                            "partition": s.partition,
                            "first": s.first,
                            "last": s.last,
                        }
                        for s in chain_spans
                    ],
                }
            )
            for span in chain_spans:
                async for r in rows_of(conn, span):
                    e = entry_of(r)
                    w.line(
                        {
                            "kind": "event",
                            "topic": e.topic,
                            "partition": e.partition,
                            "offset": e.offset,
                            "timestamp_ms": e.timestamp_ms,
                            "key": b64(e.key),
                            "headers": e.headers_json(),
                            "value": b64(e.value),
                            "prev_hash": bytes(r["prev_hash"]).hex(),
                            "hash": bytes(r["hash"]).hex(),
                        }
                    )
                    counts["events"] += 1
                    if bar:
                        bar.advance()
            for c in checkpoints:
                w.line(
                    {
                        "kind": "checkpoint",
                        "id": c["checkpoint_id"],
                        "body": base64.b64encode(bytes(c["body"])).decode(),
                        "signature": bytes(c["signature"]).hex(),
                        "public_key": bytes(c["public_key"]).hex(),
                    }
                )
                counts["checkpoints"] += 1
            digest = w.digest.digest()
            end: dict[str, Any] = {"kind": "end", "sha256": digest.hex()}
            if key is not None:
                end["public_key"] = public_bytes(key).hex()
                end["signature"] = sign(key, digest).hex()
            out.write(orjson.dumps(end) + b"\n")
        tmp.replace(path)
        if bar:
            bar.close()
    return counts


@dataclass(slots=True)
class BundleReport:
    events: int = 0
    chains: int = 0
    checkpoints: int = 0
    signed_by: str | None = None
    findings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.findings


def verify_bundle(
    path: Path, *, trusted_keys: Collection[bytes] = (), progress: bool = True
) -> BundleReport:
    """Checks a bundle with nothing but the file: every line, every chain link and hash, every
    checkpoint signature and the heads it signed, and the digest at the end."""
    report = BundleReport()
    digest = hashlib.sha256()
    manifest: dict[str, Any] | None = None
    checks: dict[tuple[str, int], ChainCheck] = {}
    hashes: dict[tuple[str, int, int], bytes] = {}
    ended = False
    bar = Progress("verify-export", None) if progress else None
    with path.open("rb") as f:
        for number, raw in enumerate(f, start=1):
            if ended:
                report.findings.append(f"line {number}: data after the end line")
                break
            try:
                doc = orjson.loads(raw)
                kind = doc["kind"]
                if kind == "end":
                    ended = True
                    _check_end(report, doc, digest.digest(), trusted_keys)
                    continue
                digest.update(raw)
                if kind == "manifest" and manifest is None and number == 1:
                    manifest = doc
                    if doc.get("format") != FORMAT:
                        report.findings.append(f"line 1: unknown format {doc.get('format')!r}")
                elif manifest is None:
                    report.findings.append(f"line {number}: the bundle must start with a manifest")
                    break
                elif kind == "event":
                    _check_event(report, doc, number, manifest, checks, hashes)
                    if bar:
                        bar.advance()
                elif kind == "checkpoint":
                    _check_checkpoint(report, doc, number, trusted_keys, hashes, checks)
                else:
                    report.findings.append(f"line {number}: unknown kind {kind!r}")
            except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
                report.findings.append(f"line {number}: unreadable ({type(exc).__name__}: {exc})")
    if bar:
        bar.close()
    if not ended:
        report.findings.append("the end line is missing: the bundle was cut short")
    if manifest is not None:
        _check_manifest(report, manifest, checks)
    report.chains = len(checks)
    return report


def _check_event(
    report: BundleReport,
    doc: dict[str, Any],
    number: int,
    manifest: dict[str, Any],
    checks: dict[tuple[str, int], ChainCheck],
    hashes: dict[tuple[str, int, int], bytes],
) -> None:
    entry = entry_from_json(
        doc["topic"],
        int(doc["partition"]),
        int(doc["offset"]),
        int(doc["timestamp_ms"]),
        doc["key"],
        doc["headers"],
        doc["value"],
    )
    chain = (entry.topic, entry.partition)
    check = checks.get(chain)
    if check is None:
        check = checks[chain] = ChainCheck(
            entry.topic, entry.partition, anchored=not manifest.get("whole_chains")
        )
    stored = bytes.fromhex(doc["hash"])
    finding = check.feed(entry, bytes.fromhex(doc["prev_hash"]), stored)
    if finding is not None:
        report.findings.append(f"line {number}: {finding}")
    hashes[(entry.topic, entry.partition, entry.offset)] = stored
    report.events += 1


def _check_checkpoint(
    report: BundleReport,
    doc: dict[str, Any],
    number: int,
    trusted_keys: Collection[bytes],
    hashes: dict[tuple[str, int, int], bytes],
    checks: dict[tuple[str, int], ChainCheck],
) -> None:
    key = bytes.fromhex(doc["public_key"])
    body = base64.b64decode(doc["body"], validate=True)
    label = f"line {number}: checkpoint #{doc['id']}"
    report.checkpoints += 1
    if trusted_keys and key not in trusted_keys:
        report.findings.append(f"{label} is signed by key {fingerprint(key)}, which is not trusted")
        return
    if not signature_valid(key, body, bytes.fromhex(doc["signature"])):
        report.findings.append(f"{label}: the signature does not match its contents")
        return
    for head in heads_of(body):
        check = checks.get((head.topic, head.partition))
        if check is None or check.last_offset is None or head.offset > check.last_offset:
            continue  # that head lies outside the exported range
        stored = hashes.get((head.topic, head.partition, head.offset))
        if stored is None:
            report.findings.append(
                f"{label}: {head.topic}/{head.partition}@{head.offset} was signed but is missing"
            )
        elif stored != head.hash:
            report.findings.append(
                f"{label}: {head.topic}/{head.partition}@{head.offset} differs from what was signed"
            )


def _check_end(
    report: BundleReport,
    doc: dict[str, Any],
    digest: bytes,
    trusted_keys: Collection[bytes],
) -> None:
    if doc.get("sha256") != digest.hex():
        report.findings.append("end line: the digest does not match the bundle's contents")
        return
    if "signature" in doc:
        key = bytes.fromhex(doc["public_key"])
        if trusted_keys and key not in trusted_keys:
            report.findings.append(f"end line: signed by untrusted key {fingerprint(key)}")
        elif not signature_valid(key, digest, bytes.fromhex(doc["signature"])):
            report.findings.append("end line: the signature does not match the digest")
        else:
            report.signed_by = fingerprint(key)


def _check_manifest(
    report: BundleReport, manifest: dict[str, Any], checks: dict[tuple[str, int], ChainCheck]
) -> None:
    for chain in manifest.get("chains", []):
        check = checks.get((chain["topic"], chain["partition"]))
        name = f"{chain['topic']}/{chain['partition']}"
        if check is None:
            report.findings.append(f"manifest: chain {name} has no events in the bundle")
        elif check.last_offset != chain["last"]:
            report.findings.append(
                f"manifest: chain {name} should end at offset {chain['last']}, "
                f"the bundle's ends at {check.last_offset}"
            )
    if len(manifest.get("chains", [])) != len(checks):
        report.findings.append("manifest: the bundle holds chains the manifest does not list")


__all__ = ["BundleReport", "Finding", "export_bundle", "verify_bundle"]
