"""The notifier: decides who must be told what, and publishes one NotificationIssued per
recipient on partners.notifications (key: the partner), for webhooks and the live push.

The decision is the pure planner's (marketplace/core/notifications.py: the table of who is told
what about which event); marketplace/translate/notifications.py reads the contracts for it. This
module keeps, per consumer group, what the planner needs beyond an event, from the topics it
reads: the two SMEs of each match (from proposals, confirmations and jobs), each logistics
firm's declared coverage and whether it is active (partners.registry), and the transport jobs
(logistics.jobs). So a replay of the log decides the same notifications.

A notification's id derives from its cause's event id, its kind and its recipient, so a replay or
a republished event gives the very same notification and never a second one with another id."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgspec

from marketplace.core.notifications import Known
from marketplace.db import Conn
from marketplace.logs import get_logger
from marketplace.runtime import Transaction
from marketplace.runtime.decoding import decode_or_dead_letter
from marketplace.translate.notifications import fitting_carriers, messages, plan, source_of
from schemas import logistics as lg
from schemas import topics
from schemas.matches import (
    AgreementEnded,
    MatchCancelled,
    MatchConfirmed,
    MatchExpired,
    MatchProposed,
)
from schemas.partners import CarrierCapabilitiesDeclared, PartnerUpdated

GROUP = "notifier"
TOPICS = (topics.MATCHES, topics.JOBS, topics.AWARDS, topics.REGISTRY)
log = get_logger(__name__)
_json = msgspec.json.Encoder()
_coverage = msgspec.json.Decoder(lg.CarrierCoverage)
_job = msgspec.json.Decoder(lg.TransportJobRequested)

Carriers = list[tuple[str, lg.CarrierCoverage]]


class Notifier:
    """Stateless between batches: what it keeps beyond an event lives in its group's tables,
    written and read in the batch's transaction."""

    def __init__(self, group_id: str = GROUP) -> None:
        self.group_id = group_id
        self.source = source_of(group_id)

    async def load(self, conn: Conn, topic: str, partition: int) -> None:  # noqa: ARG002
        return None

    async def process(self, tx: Transaction, state: None, records: Sequence[Any]) -> None:
        carriers: Carriers | None = None  # read once per batch, again after a change
        for record in records:
            decoded = decode_or_dead_letter(tx, self.group_id, record)
            if decoded is None:
                continue
            event = decoded.event
            known = Known()
            match event:
                case CarrierCapabilitiesDeclared():
                    await self._declared(tx.conn, event)
                    carriers = None
                case PartnerUpdated():
                    await self._active(tx.conn, event.partner_id, event.active)
                    carriers = None
                case MatchProposed() | MatchConfirmed():
                    await self._remember(tx.conn, event.match_id, event.seller_id, event.buyer_id)
                case lg.TransportJobRequested():
                    if event.seller_id and event.buyer_id:
                        await self._remember(
                            tx.conn, event.match_id, event.seller_id, event.buyer_id
                        )
                    await self._keep_job(tx.conn, event)
                    carriers = carriers if carriers is not None else await self._carriers(tx.conn)
                    known = Known(fitting=fitting_carriers(event, carriers))
                case MatchExpired() | MatchCancelled() | AgreementEnded() | lg.TransportAwarded():
                    known = Known(parties=await self._parties(tx.conn, event.match_id))
                case lg.AuctionFailed():
                    fitting: tuple[str, ...] = ()
                    if event.reopened_until is not None:
                        job = await self._job(tx.conn, event.job_id)
                        if job is not None:
                            if carriers is None:
                                carriers = await self._carriers(tx.conn)
                            fitting = fitting_carriers(job, carriers)
                    known = Known(await self._parties(tx.conn, event.match_id), fitting)
                case _:
                    pass
            for message in messages(decoded, plan(event, known), self.source):
                tx.emit(message)
        return state

    async def _remember(self, conn: Conn, match_id: str, seller: str, buyer: str) -> None:
        await conn.execute(
            "INSERT INTO notifier_parties (group_id, match_id, seller_id, buyer_id)"
            " VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
            self.group_id,
            match_id,
            seller,
            buyer,
        )

    async def _parties(self, conn: Conn, match_id: str) -> tuple[str, str] | None:
        row = await conn.fetchrow(
            "SELECT seller_id, buyer_id FROM notifier_parties WHERE group_id = $1"
            " AND match_id = $2",
            self.group_id,
            match_id,
        )
        return (row["seller_id"], row["buyer_id"]) if row is not None else None

    async def _declared(self, conn: Conn, event: CarrierCapabilitiesDeclared) -> None:
        coverage = lg.CarrierCoverage(
            depots=event.depots,
            regions=event.regions,
            capacity_t=event.capacity_t,
            hazardous_permit=event.hazardous_permit,
            vehicle_types=event.vehicle_types,
        )
        await conn.execute(
            "INSERT INTO notifier_carriers (group_id, partner_id, coverage)"
            " VALUES ($1, $2, $3::jsonb)"
            " ON CONFLICT (group_id, partner_id) DO UPDATE SET coverage = EXCLUDED.coverage",
            self.group_id,
            event.partner_id,
            _json.encode(coverage).decode(),
        )

    async def _active(self, conn: Conn, partner_id: str, active: bool) -> None:
        await conn.execute(
            "INSERT INTO notifier_carriers (group_id, partner_id, active) VALUES ($1, $2, $3)"
            " ON CONFLICT (group_id, partner_id) DO UPDATE SET active = EXCLUDED.active",
            self.group_id,
            partner_id,
            active,
        )

    async def _carriers(self, conn: Conn) -> Carriers:
        rows = await conn.fetch(
            "SELECT partner_id, coverage FROM notifier_carriers WHERE group_id = $1"
            " AND coverage IS NOT NULL AND active ORDER BY partner_id",
            self.group_id,
        )
        out = []
        for r in rows:
            try:
                out.append((r["partner_id"], _coverage.decode(r["coverage"])))
            except msgspec.ValidationError as exc:
                log.warning(
                    "carrier_coverage_unreadable", partner_id=r["partner_id"], error=str(exc)
                )
        return out

    async def _keep_job(self, conn: Conn, job: lg.TransportJobRequested) -> None:
        await conn.execute(
            "INSERT INTO notifier_jobs (group_id, job_id, body) VALUES ($1, $2, $3::jsonb)"
            " ON CONFLICT DO NOTHING",
            self.group_id,
            job.job_id,
            _json.encode(job).decode(),
        )

    async def _job(self, conn: Conn, job_id: str) -> lg.TransportJobRequested | None:
        body = await conn.fetchval(
            "SELECT body FROM notifier_jobs WHERE group_id = $1 AND job_id = $2",
            self.group_id,
            job_id,
        )
        if body is None:
            return None
        try:
            return _job.decode(body)
        except msgspec.ValidationError:
            return None
