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
# Events whose notifications go to the match's two parties, looked up by match id.
_NEEDS_PARTIES = (
    MatchExpired,
    MatchCancelled,
    AgreementEnded,
    lg.TransportAwarded,
    lg.AuctionFailed,
)


class Notifier:
    """Stateless between batches: what it keeps beyond an event lives in its group's tables,
    written and read in the batch's transaction."""

    def __init__(self, group_id: str = GROUP) -> None:
        self.group_id = group_id
        self.source = source_of(group_id)

    async def load(self, conn: Conn, topic: str, partition: int) -> None:  # noqa: ARG002
        return None

    async def process(self, tx: Transaction, state: None, records: Sequence[Any]) -> None:
        batch = [d for r in records if (d := decode_or_dead_letter(tx, self.group_id, r))]
        # What the batch looks up, read in one statement each; what it remembers, written in
        # one statement each at the end (first writer wins, as ON CONFLICT DO NOTHING).
        parties = await self._parties(
            tx.conn, {d.event.match_id for d in batch if isinstance(d.event, _NEEDS_PARTIES)}
        )
        jobs = await self._jobs(
            tx.conn,
            {
                d.event.job_id
                for d in batch
                if isinstance(d.event, lg.AuctionFailed) and d.event.reopened_until is not None
            },
        )
        new_parties: dict[str, tuple[str, str]] = {}
        new_jobs: dict[str, lg.TransportJobRequested] = {}

        def remember(match_id: str, seller: str, buyer: str) -> None:
            if match_id not in parties:
                parties[match_id] = new_parties[match_id] = (seller, buyer)

        carriers: Carriers | None = None  # read once per batch, again after a change
        for decoded in batch:
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
                    remember(event.match_id, event.seller_id, event.buyer_id)
                case lg.TransportJobRequested():
                    if event.seller_id and event.buyer_id:
                        remember(event.match_id, event.seller_id, event.buyer_id)
                    if event.job_id not in jobs:
                        jobs[event.job_id] = new_jobs[event.job_id] = event
                    carriers = carriers if carriers is not None else await self._carriers(tx.conn)
                    known = Known(fitting=fitting_carriers(event, carriers))
                case MatchExpired() | MatchCancelled() | AgreementEnded() | lg.TransportAwarded():
                    known = Known(parties=parties.get(event.match_id))
                case lg.AuctionFailed():
                    fitting: tuple[str, ...] = ()
                    if event.reopened_until is not None:
                        job = jobs.get(event.job_id)
                        if job is not None:
                            if carriers is None:
                                carriers = await self._carriers(tx.conn)
                            fitting = fitting_carriers(job, carriers)
                    known = Known(parties.get(event.match_id), fitting)
                case _:
                    pass
            for message in messages(decoded, plan(event, known), self.source):
                tx.emit(message)
        await self._remember(tx.conn, new_parties)
        await self._keep_jobs(tx.conn, new_jobs)
        return state

    async def _remember(self, conn: Conn, parties: dict[str, tuple[str, str]]) -> None:
        if not parties:
            return
        await conn.execute(
            "INSERT INTO notifier_parties (group_id, match_id, seller_id, buyer_id)"
            " SELECT $1, u.m, u.s, u.b FROM unnest($2::text[], $3::text[], $4::text[])"
            " AS u(m, s, b) ON CONFLICT DO NOTHING",
            self.group_id,
            list(parties),
            [p[0] for p in parties.values()],
            [p[1] for p in parties.values()],
        )

    async def _parties(self, conn: Conn, match_ids: set[str]) -> dict[str, tuple[str, str]]:
        if not match_ids:
            return {}
        rows = await conn.fetch(
            "SELECT match_id, seller_id, buyer_id FROM notifier_parties WHERE group_id = $1"
            " AND match_id = ANY($2::text[])",
            self.group_id,
            sorted(match_ids),
        )
        return {r["match_id"]: (r["seller_id"], r["buyer_id"]) for r in rows}

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

    async def _keep_jobs(self, conn: Conn, jobs: dict[str, lg.TransportJobRequested]) -> None:
        if not jobs:
            return
        await conn.execute(
            "INSERT INTO notifier_jobs (group_id, job_id, body)"
            " SELECT $1, u.j, u.b::jsonb FROM unnest($2::text[], $3::text[]) AS u(j, b)"
            " ON CONFLICT DO NOTHING",
            self.group_id,
            list(jobs),
            [_json.encode(j).decode() for j in jobs.values()],
        )

    async def _jobs(self, conn: Conn, job_ids: set[str]) -> dict[str, lg.TransportJobRequested]:
        if not job_ids:
            return {}
        rows = await conn.fetch(
            "SELECT job_id, body FROM notifier_jobs WHERE group_id = $1"
            " AND job_id = ANY($2::text[])",
            self.group_id,
            sorted(job_ids),
        )
        out: dict[str, lg.TransportJobRequested] = {}
        for r in rows:
            try:
                out[r["job_id"]] = _job.decode(r["body"])
            except msgspec.ValidationError:
                continue  # unreadable: as if unknown, no carrier is re-invited
        return out
