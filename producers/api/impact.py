"""Impact figures and operations health for the association's dashboard, and each SME's own
figures. SMEs see only their own; operators, auditors and facilitators see everyone's."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from aiohttp import web
from aiokafka import TopicPartition
from aiokafka.errors import KafkaError

from marketplace.audit.signing import SigningKeyError, fingerprint, load_key, public_bytes
from marketplace.db import Conn
from marketplace.kafka import make_consumer, partition_counts
from marketplace.kpis import SLICES, Slice, flows, headline, kpis
from marketplace.settings import Settings
from producers.api.auth import require_role
from producers.api.bodies import DATE_TIME_PATTERN
from producers.api.context import POOL, SETTINGS, principal
from producers.api.problems import Problem

ASSOCIATION = ("operator", "auditor", "facilitator")
STATIC = Path(__file__).resolve().parent / "static"


def _time(request: web.Request, name: str, default: datetime) -> datetime:
    raw = request.query.get(name)
    if raw is None:
        return default
    try:
        if not re.fullmatch(DATE_TIME_PATTERN, raw):
            raise ValueError(raw)
        t = datetime.fromisoformat(raw)
    except ValueError:
        raise Problem(
            422,
            "not an RFC 3339 time with its zone (e.g. 2026-11-01T00:00:00Z)",
            field=name,
            kind="validation",
        ) from None
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def _scope(request: web.Request) -> tuple[datetime, datetime, str | None]:
    """The period asked for (default: the last 30 days) and whose figures the caller may see."""
    require_role(request, "sme", *ASSOCIATION)
    who = principal(request)
    until = _time(request, "to", datetime.now(UTC))
    since = _time(request, "from", until - timedelta(days=30))
    if since >= until:
        raise Problem(422, "must come before `to`", field="from")
    asked = request.query.get("partner")
    if who.role == "sme":
        if asked not in (None, who.partner_id):
            raise Problem(403, "an SME sees its own figures only")
        return since, until, who.partner_id
    return since, until, asked


async def get_impact(request: web.Request) -> web.StreamResponse:
    since, until, partner = _scope(request)
    raw = request.query.get("slice", "total")
    kind: Slice = next((k for k in SLICES if k == raw), "total")
    if kind != raw:
        raise Problem(422, f"one of {', '.join(SLICES)}", field="slice", kind="validation")
    async with request.app[POOL].acquire() as conn:
        figures = await impact_figures(conn, since, until, kind, partner)
    return web.json_response(figures)


async def impact_figures(
    conn: Conn, since: datetime, until: datetime, kind: Slice, partner: str | None
) -> dict[str, Any]:
    """The impact answer (key figures and the tables of one slice) for the API and the pages;
    the caller has checked who may see `partner`'s figures (None: everyone's)."""
    tables = await kpis(conn, since, until, kind, partner)
    figures = headline(await kpis(conn, since, until, "total", partner))
    return {
        "from": since.isoformat(),
        "to": until.isoformat(),
        "partner": partner,
        "slice": kind,
        "headline": figures,
        "tables": tables,
    }


async def get_flows(request: web.Request) -> web.StreamResponse:
    since, until, partner = _scope(request)
    async with request.app[POOL].acquire() as conn:
        rows = await flows(conn, since, until, partner)
    return web.json_response({"flows": rows})


async def get_consumers(request: web.Request) -> web.StreamResponse:
    """Each consumer group's position in PostgreSQL against the topics' ends: its lag."""
    require_role(request, *ASSOCIATION)
    return web.json_response(await consumer_lag(request.app))


async def consumer_lag(app: web.Application) -> dict[str, Any]:
    """Each consumer group's lag and last commit, and whether Kafka answered (the API's
    /v1/ops/consumers and the staff pages)."""
    rows = await app[POOL].fetch(
        "SELECT group_id, topic, partition, next_offset, updated_at FROM consumer_offsets"
        " WHERE group_id NOT LIKE 'test.%' ORDER BY group_id, topic, partition"
    )
    ends: dict[tuple[str, int], int] = {}
    kafka = "ok"
    try:
        ends = await asyncio.wait_for(
            _end_offsets(app[SETTINGS], sorted({r["topic"] for r in rows})), 5
        )
    except (KafkaError, OSError, TimeoutError) as exc:
        kafka = f"unavailable: {type(exc).__name__}"
    groups: dict[str, dict[str, Any]] = {}
    for r in rows:
        g = groups.setdefault(
            r["group_id"], {"group": r["group_id"], "lag": 0, "partitions": 0, "last_commit": None}
        )
        g["partitions"] += 1
        end = ends.get((r["topic"], r["partition"]))
        if end is not None:
            g["lag"] += max(0, end - r["next_offset"])
        stamp = r["updated_at"].isoformat()
        g["last_commit"] = max(g["last_commit"] or stamp, stamp)
    return {"kafka": kafka, "groups": list(groups.values())}


async def _end_offsets(settings: Settings, topics: list[str]) -> dict[tuple[str, int], int]:
    counts = await partition_counts(settings, topics)
    parts = [TopicPartition(t, p) for t, n in counts.items() for p in range(n)]
    if not parts:
        return {}
    reader = make_consumer(settings, None, client_id="marketplace-api-lag")
    await reader.start()
    try:
        found = await reader.end_offsets(parts)
    finally:
        await reader.stop()
    return {(tp.topic, tp.partition): off for tp, off in found.items()}


async def audit_public_key(request: web.Request) -> web.StreamResponse:
    """The public key the auditor signs checkpoints with, so that anyone can check an export."""
    try:
        key = public_bytes(load_key(request.app[SETTINGS].audit_key_path))
    except SigningKeyError:
        raise Problem(404, "this exchange has no audit signing key configured") from None
    return web.json_response(
        {"algorithm": "Ed25519", "public_key": key.hex(), "fingerprint": fingerprint(key)}
    )


async def dashboard(_request: web.Request) -> web.StreamResponse:
    return web.FileResponse(STATIC / "dashboard.html")


def add_routes(app: web.Application) -> None:
    app.router.add_get("/v1/impact", get_impact)
    app.router.add_get("/v1/impact/flows", get_flows)
    app.router.add_get("/v1/ops/consumers", get_consumers)
    app.router.add_get("/dashboard", dashboard)
    app.router.add_get("/audit/public-key", audit_public_key)
