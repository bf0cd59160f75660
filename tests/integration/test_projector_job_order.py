"""An auction's outcome projected before its job (consumers/projector.py `_outcome_waits`): the
job travels on logistics.jobs and its award or failure on logistics.awards, with no order
between the two topics. The outcome waits in `job_outcomes_waiting` until the job comes, and the
job's row then reads as if the two had come in order; the awarded carrier gets its place in the
deal room. Real Kafka and PostgreSQL, the projector of the running API."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import pytest

from marketplace.db import connect
from marketplace.settings import Settings
from producers.web.app import create_service
from schemas.logistics import AuctionFailed
from tests.integration.api_helpers import eventually, register, running_api
from tests.integration.test_deal_room import NOW, award, deal_events, send

pytestmark = pytest.mark.integration


async def test_an_outcome_before_its_job_is_applied_when_the_job_comes(
    settings: Settings,
) -> None:
    seller = await register(settings, "sme", "Order Seller")
    buyer = await register(settings, "sme", "Order Buyer")
    carrier = await register(settings, "logistics", "Order Carrier")
    won, failed = [(str(uuid.uuid4()), str(uuid.uuid4())) for _ in range(2)]
    reopened = (NOW + timedelta(days=2)).replace(microsecond=0)
    conn = await connect(settings)
    async with running_api(settings, create_service) as client:
        try:
            # The outcomes first: an award of one job, a failure (bidding reopened) of another.
            await award(settings, *won, carrier)
            await send(
                settings,
                [
                    AuctionFailed(
                        job_id=failed[1],
                        match_id=failed[0],
                        reason="no quote within the reserve",
                        reopened_until=reopened,
                    )
                ],
            )

            async def waiting() -> list[Any]:
                return list(
                    await conn.fetch(
                        "SELECT job_id, status, winner_id, outcome_reason, bidding_deadline"
                        " FROM job_outcomes_waiting WHERE job_id = ANY($1::text[])"
                        " ORDER BY status",
                        [won[1], failed[1]],
                    )
                )

            async def both_wait() -> bool:
                return len(await waiting()) == 2

            await eventually(both_wait, 30)
            rows = {r["job_id"]: dict(r) for r in await waiting()}
            assert rows[won[1]]["status"] == "awarded"
            assert rows[won[1]]["winner_id"] == carrier.partner_id
            assert rows[failed[1]]["status"] == "open"
            assert rows[failed[1]]["bidding_deadline"] == reopened
            # No job row is made without its job.
            assert not await conn.fetchval(
                "SELECT count(*) FROM jobs WHERE job_id = ANY($1::text[])", [won[1], failed[1]]
            )

            # Then the matches, and once they are stored (a match and its job travel on two
            # topics as well), their jobs.
            made = [
                deal_events(seller, buyer, match_id, job_id) for match_id, job_id in (won, failed)
            ]
            await send(
                settings, [e for proposed, confirmed, _ in made for e in (proposed, confirmed)]
            )

            async def matched() -> bool:
                n = await conn.fetchval(
                    "SELECT count(*) FROM matches WHERE match_id = ANY($1::text[])"
                    " AND status = 'confirmed'",
                    [won[0], failed[0]],
                )
                return bool(n == 2)

            await eventually(matched, 30)
            await send(settings, [job for *_, job in made])

            async def applied() -> bool:
                n = await conn.fetchval(
                    "SELECT count(*) FROM jobs WHERE job_id = ANY($1::text[])",
                    [won[1], failed[1]],
                )
                return n == 2 and not await waiting()

            await eventually(applied, 30)
            jobs = {
                r["job_id"]: dict(r)
                for r in await conn.fetch(
                    "SELECT job_id, status, winner_id, outcome_reason, bidding_deadline,"
                    " body->>'match_id' AS match_id FROM jobs WHERE job_id = ANY($1::text[])",
                    [won[1], failed[1]],
                )
            }
            assert jobs[won[1]]["status"] == "awarded"
            assert jobs[won[1]]["winner_id"] == carrier.partner_id
            assert jobs[won[1]]["match_id"] == won[0]  # the job's own body
            assert jobs[failed[1]]["status"] == "open"
            assert jobs[failed[1]]["outcome_reason"] == "no quote within the reserve"
            assert jobs[failed[1]]["bidding_deadline"] == reopened
            # The failed job's match shows the reopened bidding over the job's opening fields.
            transport = await conn.fetchval(
                "SELECT transport->>'status' || ' ' || (transport->>'reason')"
                " FROM matches WHERE match_id = $1",
                failed[0],
            )
            assert transport == "open no quote within the reserve"

            # The carrier has its place in the room of the match it won, and none in the other.
            async def room_open() -> bool:
                r = await client.get(f"/v1/matches/{won[0]}/messages", headers=carrier.auth)
                return r.status == 200

            await eventually(room_open, 30)
            r = await client.get(f"/v1/matches/{failed[0]}/messages", headers=carrier.auth)
            assert r.status == 404
        finally:
            await conn.close()
