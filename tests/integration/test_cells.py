"""A material family split into geographic cells (#17), end to end on Kafka and PostgreSQL: the
API, the matcher forwarding the split family to market.cells, the cells consumer, the scheduler
and the projector. A request reaching across a cell's edge is matched with offers of two cells
(lent to one, then the other); a request inside its cell meets its cell's offers; a decline hands
the freed tonnes on within the cell; a confirmation goes through like any other."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from consumers.auditor import GROUP as AUDIT_GROUP
from consumers.auditor import TOPICS as AUDIT_TOPICS
from consumers.auditor import run_auditor
from consumers.cells import CellsMatcher
from consumers.matcher import Matcher
from marketplace.audit.replay import replay, stages
from marketplace.cloudevents import Envelope
from marketplace.core.geo import Place
from marketplace.db import connect
from marketplace.runtime.service import run_consumer
from marketplace.settings import Settings
from marketplace.translate.matching import market_config
from producers.scheduler import run_scheduler
from schemas import topics
from tests.integration.api_helpers import Partner, eventually, register, running_api
from tests.integration.kafka_helpers import caught_up, end_offsets, read_since, start_at_end
from tests.integration.test_matcher import matches_about, offer, post, request

pytestmark = pytest.mark.integration


def split(settings: Settings) -> Settings:
    """Plastics split at 67 N and 19 E (Arctic Sweden, where the matcher tests put their
    listings)."""
    return dataclasses.replace(
        settings, split_families="plastics", split_lat_cuts="67", split_lon_cuts="19"
    )


@asynccontextmanager
async def split_matching(settings: Settings) -> AsyncIterator[tuple[str, str]]:
    """A matcher and a cells consumer with groups of their own, from the topics' current ends,
    and the scheduler; yields the two groups (the cells group is the source of the
    decisions)."""
    from marketplace.app.services import split_plan

    stop = asyncio.Event()
    suffix = uuid.uuid4().hex[:8]
    matcher_group, cells_group = f"test.matcher.{suffix}", f"test.cells.{suffix}"
    await start_at_end(settings, matcher_group, topics.LISTINGS)
    await start_at_end(settings, cells_group, topics.CELLS)
    config, plan = market_config(settings), split_plan(settings)
    tasks = [
        asyncio.create_task(
            run_consumer(
                settings,
                group_id=matcher_group,
                topics=[topics.LISTINGS],
                processor=Matcher(config, matcher_group, plan),
                stop=stop,
            )
        ),
        asyncio.create_task(
            run_consumer(
                settings,
                group_id=cells_group,
                topics=[topics.CELLS],
                processor=CellsMatcher(config, plan, cells_group),
                stop=stop,
            )
        ),
        asyncio.create_task(run_scheduler(settings, stop)),
    ]
    try:
        yield matcher_group, cells_group
    finally:
        stop.set()
        await asyncio.wait_for(asyncio.gather(*tasks), 30)


async def answer(client: Any, who: Partner, match_id: str, verb: str) -> None:
    async def visible() -> bool:
        return bool((await client.get(f"/v1/matches/{match_id}", headers=who.auth)).status == 200)

    await eventually(visible)
    body = {"reason": "not this one"} if verb == "decline" else None
    r = await client.post(f"/v1/matches/{match_id}/{verb}", json=body, headers=who.auth)
    assert r.status == 202, await r.text()


async def test_a_request_across_a_cell_edge_meets_offers_of_both_cells(
    settings: Settings,
) -> None:
    s = split(settings)
    seller_a = await register(s, "sme", "Folie Väst AB")
    seller_b = await register(s, "sme", "Folie Öst AB")
    wide_buyer = await register(s, "sme", "Granulat Gränsen AB")
    local_buyer = await register(s, "sme", "Plastverket Väst AB")
    a, b = {"lat": 66.35, "lon": 18.3}, {"lat": 66.5, "lon": 19.5}
    w, near_a = {"lat": 66.5, "lon": 19.0}, {"lat": 66.3, "lon": 18.2}
    from marketplace.app.services import split_plan

    plan = split_plan(s)
    # Where each listing belongs: its cell, or the wide key for a reach across the 19th meridian.
    assert plan.key("plastics", "offer", Place(a["lat"], a["lon"]), None) == "plastics@n0e0"
    assert plan.key("plastics", "offer", Place(b["lat"], b["lon"]), None) == "plastics@n0e1"
    assert plan.key("plastics", "request", Place(w["lat"], w["lon"]), 100) == "plastics@wide"
    assert (
        plan.key("plastics", "request", Place(near_a["lat"], near_a["lon"]), 25) == "plastics@n0e0"
    )
    since = await end_offsets(s, topics.MATCHES)
    cells_since = await end_offsets(s, topics.CELLS)
    window_from = datetime.now(UTC)
    async with running_api(s) as client, split_matching(s) as (matcher_group, group):
        oa = await post(client, seller_a, "/v1/offers", offer(a, 10, 20))
        ob = await post(client, seller_b, "/v1/offers", offer(b, 10, 25))
        rw = await post(client, wide_buyer, "/v1/requests", request(w, 15, 200))
        ids = {oa, ob, rw}
        to_wide: dict[str, dict[str, Any]] = {}

        async def wide_served() -> bool:
            nonlocal to_wide
            found = await matches_about(s, since, ids, {"market.match.proposed.v1"}, 1, group)
            to_wide = {b["offer_id"]: b for _, b in found if b["request_id"] == rw}
            return bool(sum(b["quantity"]["amount"] for b in to_wide.values()) >= 15)

        await eventually(wide_served, 60)
        # The wide request got its 15 t from the offers of both cells (which cell's first
        # depends on which offer the wide key saw first), neither over-allocated.
        assert set(to_wide) == {oa, ob}
        assert sorted(b["quantity"]["amount"] for b in to_wide.values()) == [5, 10]
        local = request(near_a, 5, 200)
        local["terms"]["max_distance_km"] = 25
        rl = await post(client, local_buyer, "/v1/requests", local)
        ids.add(rl)

        # The wide buyer declines the offer of the western cell: its tonnes stay in that cell,
        # where the local buyer, whose reach covers that offer only, gets its 5 t.
        await answer(client, wide_buyer, to_wide[oa]["match_id"], "decline")
        await matches_about(
            s, since, {to_wide[oa]["match_id"]}, {"market.match.cancelled.v1"}, 1, group
        )
        proposed = await matches_about(s, since, ids, {"market.match.proposed.v1"}, 3, group)
        [to_local] = [b for _, b in proposed if b["request_id"] == rl]
        assert to_local["offer_id"] == oa
        assert to_local["quantity"]["amount"] == 5
        # Never more than an offer holds: what is open or confirmed on each.
        cancelled = {
            b["match_id"]
            for _, b in await matches_about(
                s, since, ids | {to_wide[oa]["match_id"]}, {"market.match.cancelled.v1"}, 1, group
            )
        }
        for o in (oa, ob):
            held = sum(
                b["quantity"]["amount"]
                for _, b in proposed
                if b["offer_id"] == o and b["match_id"] not in cancelled
            )
            assert held <= 10, (o, held)

        # The other proposal confirms like any.
        deal = to_wide[ob]["match_id"]
        await answer(client, seller_b, deal, "accept")
        await answer(client, wide_buyer, deal, "accept")
        [(_, confirmed)] = await matches_about(
            s, since, {deal}, {"market.match.confirmed.v1"}, 1, group
        )
        assert confirmed["weight_t"] == to_wide[ob]["quantity"]["amount"]
        assert confirmed["seller_id"] == seller_b.partner_id

        # The records went where the plan says, through market.cells, and the wide request was
        # lent to both cells.
        records = await read_since(s, topics.CELLS, cells_since)
        where: dict[str, str] = {}
        lent_to: set[str] = set()
        for r in records:
            kind = Envelope.from_headers(r.headers).type
            if kind in ("market.offer.posted.v1", "market.request.posted.v1"):
                body = orjson.loads(r.value)
                where[body.get("offer_id") or body["request_id"]] = r.key.decode()
            elif kind == "market.cell.lend.v1":
                lent_to.add(r.key.decode())
        assert where == {
            oa: "plastics@n0e0",
            ob: "plastics@n0e1",
            rw: "plastics@wide",
            rl: "plastics@n0e0",
        }
        assert lent_to == {"plastics@n0e0", "plastics@n0e1"}

    # The audit log replays the cells' decisions from market.cells: the same events, the same
    # ids and bytes (`marketplace audit replay`).
    window_to = datetime.now(UTC)
    stop = asyncio.Event()
    auditor = asyncio.create_task(run_auditor(s, stop))
    try:
        await caught_up(s, AUDIT_GROUP, AUDIT_TOPICS)
    finally:
        stop.set()
        await asyncio.wait_for(auditor, 30)
    conn = await connect(s)
    try:
        groups = {"matching": matcher_group, "cells": group}
        report = await replay(
            conn, stages(s, groups), since=window_from, until=window_to, progress=False
        )
        assert report.identical, report.differences
        assert report.by_stage["cells"] == 5  # 3 proposals, a cancellation, a confirmation
        # Replayed without the split, the matcher's stage decides what the cells decided, under
        # its own ids: nothing of it was recorded, and replay says so.
        whole = dataclasses.replace(s, split_families="")
        other = await replay(
            conn, stages(whole, groups), since=window_from, until=window_to, progress=False
        )
        assert not other.identical
    finally:
        await conn.close()
