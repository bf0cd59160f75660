"""`marketplace audit ...`: the auditor's commands. Exit status 0 means verified/identical,
1 means a problem was found (each is printed), 2 means the command could not run."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from marketplace.settings import Settings


def when(text: str) -> datetime:
    try:
        t = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r}: write an ISO 8601 time, e.g. 2026-11-01 or 2026-11-01T12:00:00Z"
        ) from None
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def add_parser(sub: Any) -> None:
    audit = sub.add_parser("audit", help="verify, export, replay and query the audit log")
    actions = audit.add_subparsers(dest="action", required=True)

    def ranged(p: argparse.ArgumentParser) -> None:
        p.add_argument("--from", dest="since", type=when, help="start (ISO 8601, UTC if no zone)")
        p.add_argument("--to", dest="until", type=when, help="end (ISO 8601, UTC if no zone)")

    def keys(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--public-key",
            action="append",
            default=[],
            help="a trusted public key (64 hex digits or a key file); repeatable",
        )

    verify = actions.add_parser("verify", help="recompute every chain and checkpoint")
    ranged(verify)
    keys(verify)
    verify.add_argument("--group", default="auditor", help="the auditor's consumer group")
    export = actions.add_parser("export", help="write a self-contained, verifiable bundle")
    ranged(export)
    export.add_argument("--out", type=Path, required=True, help="bundle file to write")
    check = actions.add_parser("verify-export", help="verify a bundle offline")
    check.add_argument("bundle", type=Path)
    keys(check)
    replay = actions.add_parser("replay", help="re-decide recorded inputs with the pure cores")
    ranged(replay)
    replay.add_argument("--matcher-group", default="matcher")
    replay.add_argument(
        "--cells-group", default="cells", help="the cells consumer's group (split families)"
    )
    replay.add_argument("--auctioneer-group", default="auctioneer")
    history = actions.add_parser("history", help="the ordered story of one item")
    history.add_argument("item_id", help="a listing, match, job, quote or partner id")
    history.add_argument("--json", action="store_true", help="one JSON object per line")
    history.add_argument(
        "--on-behalf",
        action="store_true",
        help="only what a partner did for another (a facilitator for an SME)",
    )
    actions.add_parser("checkpoint", help="sign a checkpoint of the chain heads now")
    actions.add_parser("public-key", help="print the public key that signs checkpoints")
    keygen = actions.add_parser("keygen", help="create the signing key if it does not exist")
    keygen.add_argument("--out", type=Path, help="default: MARKETPLACE_AUDIT_SIGNING_KEY")


def _trusted(settings: Settings, given: list[str]) -> set[bytes]:
    from marketplace.audit.signing import SigningKeyError, load_key, parse_public_key, public_bytes

    trusted = {parse_public_key(k) for k in given}
    if not trusted:
        # Without a local key, every signature is checked against its own key only.
        with contextlib.suppress(SigningKeyError):
            trusted.add(public_bytes(load_key(settings.audit_key_path)))
    return trusted


async def _run(settings: Settings, args: argparse.Namespace) -> int:
    from marketplace.db import connect

    conn = await connect(settings)
    try:
        if args.action == "verify":
            from marketplace.audit.verify import verify_database

            report = await verify_database(
                conn,
                since=args.since,
                until=args.until,
                trusted_keys=_trusted(settings, args.public_key),
                group_id=args.group,
            )
            for finding in report.findings:
                print(f"BROKEN {finding}")
            verdict = "intact" if report.ok else f"{len(report.findings)} problem(s)"
            print(
                f"verify: {report.records:,} records in {report.chains} chains, "
                f"{report.checkpoints} checkpoints: {verdict}"
            )
            return 0 if report.ok else 1
        if args.action == "export":
            from marketplace.audit.bundle import export_bundle
            from marketplace.audit.signing import SigningKeyError, load_key

            try:
                key = load_key(settings.audit_key_path)
            except SigningKeyError:
                key = None
            counts = await export_bundle(
                conn, args.out, since=args.since, until=args.until, key=key
            )
            print(
                f"export: {counts['events']:,} events, {counts['checkpoints']} checkpoints"
                f" -> {args.out}"
            )
            return 0
        if args.action == "replay":
            from marketplace.audit.replay import replay, stages

            result = await replay(
                conn,
                stages(
                    settings,
                    {
                        "matching": args.matcher_group,
                        "cells": args.cells_group,
                        "auction": args.auctioneer_group,
                    },
                ),
                since=args.since,
                until=args.until,
            )
            for difference in result.differences:
                print(f"DIFFERENT {difference}")
            for name, move in result.moves.items():
                print(f"replay {name}: made the recorded move of {move}")
            verdict = (
                "identical" if result.identical else f"{len(result.differences)} difference(s)"
            )
            per_stage = ", ".join(f"{k} {v:,}" for k, v in result.by_stage.items())
            print(
                f"replay: {result.inputs:,} inputs, {result.decisions:,} decisions re-made "
                f"({per_stage}), {result.recorded:,} recorded: {verdict}"
            )
            return 0 if result.identical else 1
        if args.action == "history":
            from marketplace.audit.history import history, partners_named

            steps = await history(conn, args.item_id, on_behalf_only=args.on_behalf)
            named = await partners_named(
                conn, [p for s in steps for p in (s.actor, s.on_behalf_of) if p]
            )

            def who(partner: str | None) -> str | None:
                if partner is None or partner not in named:
                    return partner
                role, name = named[partner]
                return f"{partner} ({role} {name})"

            for s in steps:
                if args.json:
                    data = orjson.loads(s.data) if isinstance(s.data, str) else s.data
                    line = {
                        "recorded_at": s.recorded_at.isoformat(),
                        "topic": s.topic,
                        "partition": s.partition,
                        "offset": s.offset,
                        "type": s.type,
                        "source": s.source,
                        "subject": s.subject,
                        "actor": s.actor,
                        "on_behalf_of": s.on_behalf_of,
                        "data": data,
                    }
                    print(orjson.dumps(line).decode())
                else:
                    acted = f"  by {who(s.actor)}" if s.actor else ""
                    if s.on_behalf_of:
                        acted += f" on behalf of {who(s.on_behalf_of)}"
                    print(
                        f"{s.recorded_at.isoformat()}  {s.topic}/{s.partition}@{s.offset}  "
                        f"{s.type or '(not a CloudEvent)'}  from {s.source}{acted}"
                    )
            if not steps:
                print(f"history: nothing in the audit log mentions {args.item_id}", file=sys.stderr)
                return 1
            return 0
        if args.action == "checkpoint":
            from consumers.auditor import GROUP
            from marketplace.audit.signing import load_key
            from marketplace.audit.store import write_checkpoint

            made = await write_checkpoint(
                conn, load_key(settings.audit_key_path), GROUP, datetime.now(UTC)
            )
            if made is None:
                print("checkpoint: the audit log is empty", file=sys.stderr)
                return 1
            print(f"checkpoint #{made[0]}: {len(made[1])} chain heads signed")
            return 0
    finally:
        await conn.close()
    raise AssertionError(args.action)


def command(settings: Settings, args: argparse.Namespace) -> int:
    from marketplace.audit.signing import (
        SigningKeyError,
        create_key,
        fingerprint,
        load_key,
        public_bytes,
    )

    try:
        if args.action == "keygen":
            path = args.out or settings.audit_key_path
            if path.exists():
                key = load_key(path)
                print(f"keygen: {path} exists already (key {fingerprint(public_bytes(key))})")
            else:
                key = create_key(path)
                print(f"keygen: wrote {path} (key {fingerprint(public_bytes(key))})")
            print(public_bytes(key).hex())
            return 0
        if args.action == "public-key":
            print(public_bytes(load_key(settings.audit_key_path)).hex())
            return 0
        if args.action == "verify-export":
            from marketplace.audit.bundle import verify_bundle

            report = verify_bundle(args.bundle, trusted_keys=_trusted(settings, args.public_key))
            for finding in report.findings:
                print(f"BROKEN {finding}")
            signed = f", signed by {report.signed_by}" if report.signed_by else ""
            verdict = "intact" if report.ok else f"{len(report.findings)} problem(s)"
            print(
                f"verify-export: {report.events:,} events in {report.chains} chains, "
                f"{report.checkpoints} checkpoints{signed}: {verdict}"
            )
            return 0 if report.ok else 1
        return asyncio.run(_run(settings, args))
    except (SigningKeyError, OSError) as exc:
        print(f"audit {args.action}: {exc}", file=sys.stderr)
        return 2
