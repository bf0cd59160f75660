"""`marketplace rebuild split [--dry-run]`: move the material families MARKETPLACE_SPLIT_FAMILIES
names, with their open listings, proposals and agreements, from the matcher's book into their
geographic cells (#17 item 2; docs/operators/running.md).

With the API, the scheduler, the matcher and the cells consumer stopped and the matcher's lag 0,
in one transaction: the matcher's books are read; each split family that still has items there
is taken out (marketplace/core/split.py) and written as the cells consumer's state, one row per
cell and wide key in the partition of market.cells its key falls on; the matcher's books are
written back without it. Nothing is decided and nothing is published: every listing keeps what
it has, and what comes next (answers, updates, the answer periods' timers) the matcher forwards
to the cells. `--dry-run` does it all and rolls it back."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from consumers.cells import GROUP as CELLS_GROUP
from consumers.matcher import GROUP, TOPIC, Matcher
from marketplace.app.rekey import FOLLOWERS, Refused, Say, _check, _say, end_offsets, live_members
from marketplace.app.services import split_plan
from marketplace.core.book import Book
from marketplace.core.families import family_of
from marketplace.core.split import SplitError, split_family
from marketplace.db import Conn, create_pool
from marketplace.settings import Settings
from marketplace.translate.cells import dump_cell, dump_wide
from marketplace.translate.matching import market_config
from marketplace.translate.rekey import partition_of
from schemas import topics


@dataclass(slots=True)
class Family:
    name: str
    offers: int = 0
    local_requests: int = 0
    wide_requests: int = 0
    ghosts: int = 0
    proposals: int = 0
    agreements: int = 0
    keys: list[str] = field(default_factory=list)


@dataclass(slots=True)
class SplitOutcome:
    at: datetime
    families: list[Family] = field(default_factory=list)
    dry_run: bool = False


class _DryRun(Exception):
    def __init__(self, outcome: SplitOutcome) -> None:
        super().__init__("dry run")
        self.outcome = outcome


async def _already(conn: Conn, cells_group: str, cells_topic: str, family: str) -> bool:
    return bool(
        await conn.fetchval(
            "SELECT EXISTS (SELECT FROM cells_state WHERE group_id = $1 AND topic = $2"
            " AND key LIKE $3)",
            cells_group,
            cells_topic,
            f"{family}@%",
        )
    )


async def run_split(
    settings: Settings,
    *,
    group_id: str = GROUP,
    cells_group: str = CELLS_GROUP,
    followers: Sequence[str] = FOLLOWERS,
    topic: str = TOPIC,
    cells_topic: str = topics.CELLS,
    dry_run: bool = False,
    say: Say = _say,
) -> SplitOutcome:
    """The move; raises Refused (nothing changed) when a precondition does not hold."""
    plan = split_plan(settings)
    if not plan.families:
        raise Refused("MARKETPLACE_SPLIT_FAMILIES names no family: nothing to split")
    config = market_config(settings)
    matcher = Matcher(config, group_id)
    ends = await end_offsets(settings, topic)
    cells_partitions = len(await end_offsets(settings, cells_topic))
    members = await live_members(settings, cells_group)
    if members:
        raise Refused(f"{members} cells consumer(s) of group {cells_group} are running: stop them")
    outcome = SplitOutcome(datetime.now(UTC), dry_run=dry_run)
    pool = await create_pool(settings)
    try:
        async with pool.acquire() as conn, conn.transaction():
            await _check(settings, conn, group_id, followers, ends, say, topic)
            changed: dict[int, Book] = {}
            for name in sorted(plan.families):
                # The family is its own key on market.listings (schemas.registry.market_key).
                p = partition_of(name, len(ends))
                book = changed.get(p) or await matcher.load(conn, topic, p)
                if not any(family_of(x.code) == name for x in book.listings.values()):
                    say(f"{name}: nothing in the matcher's book (new, or moved already)")
                    continue
                if await _already(conn, cells_group, cells_topic, name):
                    raise Refused(
                        f"{name}: the cells group {cells_group} holds state for it already while"
                        " the matcher's book holds it too: restore one or the other"
                    )
                try:
                    moved = split_family(book, name, plan, config, family_of)
                except SplitError as exc:
                    raise Refused(f"{name} cannot be moved: {exc}") from exc
                changed[p] = book
                family = Family(
                    name,
                    moved.offers,
                    moved.local_requests,
                    moved.wide_requests,
                    moved.ghosts,
                    moved.proposals,
                    moved.agreements,
                )
                rows = [(f"{name}@{c}", dump_cell(s)) for c, s in sorted(moved.cells.items())]
                rows.append((f"{name}@wide", dump_wide(moved.wide)))
                for key, body in rows:
                    await conn.execute(
                        "INSERT INTO cells_state (group_id, topic, partition, key, body)"
                        " VALUES ($1, $2, $3, $4, $5)",
                        cells_group,
                        cells_topic,
                        partition_of(key, cells_partitions),
                        key,
                        body,
                    )
                    family.keys.append(key)
                outcome.families.append(family)
                say(
                    f"{name}: {family.offers} offers and {family.local_requests} requests into"
                    f" {len(moved.cells)} cells, {family.wide_requests} requests to the wide key"
                    f" ({family.ghosts} lent where they trade), {family.proposals} open"
                    f" proposals and {family.agreements} agreements with their offers"
                )
            for p, book in sorted(changed.items()):
                await matcher.replace_book(conn, topic, p, book)
            if dry_run:
                raise _DryRun(outcome)
    except _DryRun as dry:
        return dry.outcome
    finally:
        await pool.close()
    return outcome


def command(settings: Settings, args: argparse.Namespace) -> int:
    followers = tuple(args.follower) if args.follower else FOLLOWERS
    try:
        outcome = asyncio.run(
            run_split(
                settings,
                group_id=args.group,
                cells_group=args.cells_group,
                followers=followers,
                dry_run=args.dry_run,
            )
        )
    except Refused as exc:
        print(f"marketplace rebuild split: refused: {exc}", file=sys.stderr)
        return 1
    moved = ", ".join(f.name for f in outcome.families) or "nothing"
    verb = "would move" if outcome.dry_run else "moved"
    print(f"marketplace rebuild split: {verb} {moved} at {outcome.at.isoformat()}")
    return 0
