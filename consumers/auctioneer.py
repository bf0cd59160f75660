"""Transport auctions: the job creator turns confirmed matches into transport jobs, and the
auctioneer decides each job's auction with the pure core (marketplace/core/auction.py).

`marketplace run job-creator` reads market.matches and, for each one-off MatchConfirmed and each
DeliveryScheduled of a standing agreement, emits a TransportJobRequested onto logistics.jobs (its
id derived from the match id or the delivery id, its bidding deadline
`MARKETPLACE_AUCTION_BIDDING_PERIOD_S` after the confirmation). `marketplace run auctioneer`
reads logistics.jobs, whose key (the job id) keeps a job, its quotes, reserves and deadline timers
on one partition, keeps each job's auction in PostgreSQL (`auctioneer_jobs`) and emits awards,
failures and refusals onto logistics.awards, all in the runtime's one transaction per batch."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import msgspec

from marketplace.core import auction as core
from marketplace.core.ids import derived_id
from marketplace.db import Conn
from marketplace.events import Decoded, to_message
from marketplace.logs import get_logger
from marketplace.runtime import Transaction
from marketplace.runtime.decoding import decode_or_dead_letter
from marketplace.runtime.outbox import OutboxMessage
from marketplace.settings import Settings
from marketplace.timers import schedule_many
from marketplace.translate.auction import (
    deadline_timer,
    decide,
    job_for,
    job_id_of,
    source_of,
    to_command,
)
from marketplace.translate.matching import market_config
from schemas import topics
from schemas.matches import DeliveryScheduled, MatchConfirmed

GROUP = "auctioneer"
TOPIC = topics.JOBS
CREATOR_GROUP = "job-creator"
CREATOR_TOPIC = topics.MATCHES
CREATOR_SOURCE = "/consumers/job-creator"
log = get_logger(__name__)
_json = msgspec.json.Encoder()
_auction = msgspec.json.Decoder(core.Auction)


# The job creator -------------------------------------------------------------------------------


class JobCreator:
    """Stateless: each one-off MatchConfirmed, and each DeliveryScheduled of a standing
    agreement, gives one job, whose event id derives from its cause, so a repeat publishes the
    very same event."""

    def __init__(self, settings: Settings, group_id: str = CREATOR_GROUP) -> None:
        self.group_id = group_id
        self.bidding_period = timedelta(seconds=settings.auction_bidding_period_s)
        self.model = market_config(settings).transport
        self.source = f"{CREATOR_SOURCE}/{group_id}"

    async def load(self, conn: Conn, topic: str, partition: int) -> None:  # noqa: ARG002
        return None

    async def process(self, tx: Transaction, state: None, records: Sequence[Any]) -> None:
        for record in records:
            decoded = decode_or_dead_letter(tx, self.group_id, record)
            if decoded is None:
                continue
            event = decoded.event
            # A standing agreement's confirmation carries no job: each period's delivery does.
            if not isinstance(event, MatchConfirmed | DeliveryScheduled) or (
                isinstance(event, MatchConfirmed) and event.agreement is not None
            ):
                continue
            job = job_for(event, decoded.envelope.time, self.bidding_period, self.model)
            tx.emit(
                to_message(
                    job,
                    event_id=derived_id(f"{decoded.envelope.id}/job-creator"),
                    source=self.source,
                    time=decoded.envelope.time,
                    subject=job.job_id,
                )
            )
        return state


class Auctioneer:
    """State: the partition's open auctions by job id. Decided auctions stay in PostgreSQL and
    are read back only when a late event about them arrives."""

    def __init__(self, config: core.AuctionConfig, group_id: str = GROUP) -> None:
        self.config = config
        self.group_id = group_id
        self.source = source_of(group_id)

    async def load(self, conn: Conn, topic: str, partition: int) -> dict[str, core.Auction]:
        rows = await conn.fetch(
            "SELECT job_id, body FROM auctioneer_jobs WHERE group_id = $1 AND topic = $2"
            " AND partition = $3 AND status = 'open'",
            self.group_id,
            topic,
            partition,
        )
        return {r["job_id"]: _auction.decode(r["body"]) for r in rows}

    async def process(
        self, tx: Transaction, state: dict[str, core.Auction], records: Sequence[Any]
    ) -> dict[str, core.Auction]:
        decoded: list[tuple[Decoded, core.Command]] = []
        for record in records:
            d = decode_or_dead_letter(tx, self.group_id, record)
            if d is None:
                continue
            command = to_command(d)
            if command is not None:
                decoded.append((d, command))
        await self._fetch_decided(tx, state, {job_id_of(c) for _, c in decoded})
        dirty: set[str] = set()
        # The batch's deadline timers in one statement (one round trip per timer before).
        timers: list[tuple[str, OutboxMessage, datetime]] = []
        for d, command in decoded:
            job_id = job_id_of(command)
            before = state.get(job_id)
            after, messages, asked_timers = decide(before, command, d, self.config, self.source)
            for message in messages:
                tx.emit(message)
            timers.extend(
                (*deadline_timer(asked.job_id, asked.due), asked.due) for asked in asked_timers
            )
            if after is not None and after is not before:
                state[job_id] = after
                dirty.add(job_id)
        await schedule_many(tx.conn, timers)
        await self._save(tx, state, dirty)
        for job_id in [j for j, a in state.items() if a.status != "open"]:
            del state[job_id]
        return state

    async def _fetch_decided(
        self, tx: Transaction, state: dict[str, core.Auction], job_ids: set[str]
    ) -> None:
        missing = sorted(job_ids - state.keys())
        if not missing:
            return
        rows = await tx.conn.fetch(
            "SELECT job_id, body FROM auctioneer_jobs WHERE group_id = $1 AND topic = $2"
            " AND partition = $3 AND job_id = ANY($4::text[])",
            self.group_id,
            tx.topic,
            tx.partition,
            missing,
        )
        for r in rows:
            state[r["job_id"]] = _auction.decode(r["body"])

    async def _save(self, tx: Transaction, state: dict[str, core.Auction], dirty: set[str]) -> None:
        if not dirty:
            return
        ids = sorted(dirty)
        await tx.conn.execute(
            "INSERT INTO auctioneer_jobs (group_id, topic, partition, job_id, status, body)"
            " SELECT $1, $2, $3, u.id, u.status, u.body::jsonb"
            " FROM unnest($4::text[], $5::text[], $6::text[]) AS u(id, status, body)"
            " ON CONFLICT (group_id, topic, partition, job_id)"
            " DO UPDATE SET status = EXCLUDED.status, body = EXCLUDED.body",
            self.group_id,
            tx.topic,
            tx.partition,
            ids,
            [state[i].status for i in ids],
            [_json.encode(state[i]).decode() for i in ids],
        )
