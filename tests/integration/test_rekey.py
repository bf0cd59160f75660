"""Moving an exchange with open listings to the material-family key (#17 item 2), against the
real matcher on real Kafka and PostgreSQL: listings, proposals and an answer published under
the old key (the List of Waste sub-chapter), `marketplace rebuild rekey`, then new listings and
answers under the family key. Old listings meet new ones across sub-chapters, a half-accepted
proposal is confirmed, a proposal between two families is cancelled, pairs the old key kept
apart are proposed by the move, pending timers carry the family key, every open listing is held
by one partition, and `marketplace audit replay` re-decides every decision, the move's too."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import random
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import orjson
import pytest

from consumers.auditor import GROUP as AUDITOR
from consumers.auditor import TOPICS as AUDITED
from consumers.auditor import run_auditor
from consumers.matcher import TOPIC, Matcher
from loadtests.one_book import partition_of
from loadtests.scratch import scratch_database
from marketplace.app.rekey import Refused, report_lines, run_rekey
from marketplace.audit.replay import MatchingStage, replay
from marketplace.cloudevents import Envelope
from marketplace.core.families import family_of
from marketplace.core.ids import derived_id
from marketplace.db import Conn, connect, grant_app_role, load_migrations, migrate
from marketplace.events import to_message
from marketplace.kafka import make_producer
from marketplace.runtime.consumer import start_group_at
from marketplace.runtime.service import run_consumer
from marketplace.settings import Settings
from marketplace.translate.matching import market_config, source_of
from marketplace.translate.rekey import read_cut_over
from schemas import listings as ls
from schemas.common import Location, Material, Money, Quantity, Window
from tests.integration.api_helpers import eventually
from tests.integration.kafka_helpers import caught_up, end_offsets, read_since, start_at_end

pytestmark = pytest.mark.integration

PROPOSED = "market.match.proposed.v1"
CONFIRMED = "market.match.confirmed.v1"
CANCELLED = "market.match.cancelled.v1"


class Market:
    """Events of one test, published with the key of the old routing or of the new one."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        rng = random.Random()
        # A spot of the North Atlantic of its own, away from other tests' listings; three
        # places in it, far enough apart (over 200 km) that only their own listings meet.
        lat, lon = rng.uniform(38, 52), rng.uniform(-42, -24)
        self.places = [Location(lat=lat + 2.5 * k, lon=lon) for k in range(3)]
        self.tag = uuid.uuid4().hex[:8]
        self.now = datetime.now(UTC)

    def near(self, k: int) -> Location:
        spot = self.places[k]
        return Location(lat=spot.lat + 0.01, lon=spot.lon + 0.01)

    def window(self) -> Window:
        return Window(start=self.now, end=self.now + timedelta(days=60))

    def offer(self, code: str, tonnes: float, where: Location) -> ls.OfferPosted:
        return ls.OfferPosted(
            offer_id=f"rekey-offer-{self.tag}-{uuid.uuid4().hex[:6]}",
            owner_id=f"seller-{self.tag}",
            actor_id=f"seller-{self.tag}",
            material=Material(code=code, description="rekey test"),
            location=where,
            terms=ls.OfferTerms(
                quantity=Quantity(amount=tonnes, unit="t"),
                price=Money(amount=10, currency="EUR"),
                available=self.window(),
            ),
        )

    def request(
        self, code: str, tonnes: float, where: Location, accepts: tuple[str, ...] = ()
    ) -> ls.RequestPosted:
        return ls.RequestPosted(
            request_id=f"rekey-request-{self.tag}-{uuid.uuid4().hex[:6]}",
            owner_id=f"buyer-{self.tag}",
            actor_id=f"buyer-{self.tag}",
            material=Material(code=code, description="rekey test"),
            accepts_codes=accepts,
            location=where,
            terms=ls.RequestTerms(
                quantity=Quantity(amount=tonnes, unit="t"),
                max_price=Money(amount=90, currency="EUR"),
                wanted=self.window(),
                max_distance_km=50,
            ),
        )

    async def publish(self, events: list[Any], *, old_key: bool) -> None:
        """Onto market.listings; with `old_key`, keyed by the 4-digit sub-chapter as the
        previous version published them."""
        producer = make_producer(self.settings)
        await producer.start()
        try:
            for event in events:
                m = to_message(
                    event, event_id=str(uuid.uuid4()), source="/tests/rekey", time=datetime.now(UTC)
                )
                key = m.key
                if old_key:
                    code = getattr(event, "material_code", None) or event.material.code
                    key = code[:4].encode()
                await producer.send_and_wait(m.topic, m.value, key=key, headers=list(m.headers))
        finally:
            await producer.stop()


@asynccontextmanager
async def matcher(settings: Settings, group: str) -> AsyncIterator[None]:
    stop = asyncio.Event()
    task = asyncio.create_task(
        run_consumer(
            settings,
            group_id=group,
            topics=[TOPIC],
            processor=Matcher(market_config(settings), group),
            stop=stop,
        )
    )
    try:
        yield
    finally:
        stop.set()
        await asyncio.wait_for(task, 60)


async def decisions(
    settings: Settings, since: dict[int, int], group: str
) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for r in await read_since(settings, "market.matches", since):
        envelope = Envelope.from_headers(r.headers)
        if envelope.source == source_of(group):
            out.append((envelope.type, orjson.loads(r.value)))
    return out


def pair(found: list[tuple[str, dict[str, Any]]], kind: str, offer: Any, request: Any) -> Any:
    """The first decision of `kind` between the two listings, or None."""
    for t, body in found:
        if t == kind and (body.get("offer_id"), body.get("request_id")) == (
            offer.offer_id,
            request.request_id,
        ):
            return body
    return None


async def rekey_caught_up(settings: Settings, group: str, **options: Any) -> Any:
    """The rebuild, once the stopped matcher has read everything: other tests on this broker
    may publish to market.listings meanwhile, which the rebuild refuses; run the matcher again
    then (a few times), as the refusal says."""
    for _ in range(4):
        try:
            return await run_rekey(settings, group_id=group, **({"followers": ()} | options))
        except Refused as exc:
            # Behind, or events left in the outbox: the matcher reads and publishes them.
            if "to its end" not in str(exc) and "outbox" not in str(exc):
                raise
        async with matcher(settings, group):
            await caught_up(settings, group, [TOPIC])
    raise AssertionError("market.listings never stood still long enough")


async def items(conn: Conn, group: str) -> list[tuple[str, str, int]]:
    rows = await conn.fetch(
        "SELECT item_id, kind, partition FROM matcher_items WHERE group_id = $1 AND topic = $2"
        " ORDER BY item_id, partition",
        group,
        TOPIC,
    )
    return [(r["item_id"], r["kind"], r["partition"]) for r in rows]


class WithoutCutOver(MatchingStage):
    """Replay as it was before the move existed: no cut-over."""

    async def prepare(self, conn: Conn) -> None:
        self.cut_over = None


@pytest.mark.timeout(420)
async def test_a_market_moves_to_the_family_key_and_replay_follows(settings: Settings) -> None:
    quick = dataclasses.replace(settings, consumer_max_batch=50)
    assert await end_offsets(settings, TOPIC)
    assert len(await end_offsets(settings, TOPIC)) == 6
    # Under the old key 1501 (packaging) and 2001 (municipal fractions) are two partitions.
    assert partition_of(b"1501", 6) != partition_of(b"2001", 6)
    group = f"test.rekey.{uuid.uuid4().hex[:8]}"
    since = datetime.now(UTC)
    await start_at_end(settings, group, TOPIC)
    matches_since = await end_offsets(settings, "market.matches")
    market = Market(settings)

    # Under the old key. A plastic packaging offer and a request for municipal plastics that
    # accepts it: two sub-chapters, so two books, so no proposal.
    o1 = market.offer("150102", 10, market.places[0])
    r1 = market.request("200139", 4, market.near(0), accepts=("150102",))
    # Cardboard offered and wanted in one sub-chapter: proposed, the seller accepts.
    o2 = market.offer("150101", 6, market.places[1])
    r2 = market.request("150101", 6, market.near(1))
    # Mixed packaging (a family of its own) that also took cardboard, as the API allowed then:
    # proposed under the old key, between two families under the new one.
    o3 = market.offer("150101", 8, market.places[2])
    r3 = market.request("150106", 5, market.near(2), accepts=("150101",))
    await market.publish([o1, r1, o2, r2, o3, r3], old_key=True)
    async with matcher(quick, group):
        found: list[tuple[str, dict[str, Any]]] = []

        async def both_proposed() -> bool:
            found[:] = await decisions(settings, matches_since, group)
            return bool(pair(found, PROPOSED, o2, r2) and pair(found, PROPOSED, o3, r3))

        await eventually(both_proposed, 60)
        p2, p3 = pair(found, PROPOSED, o2, r2), pair(found, PROPOSED, o3, r3)
        seller_yes = ls.MatchAccepted(
            match_id=p2["match_id"],
            partner_id=o2.owner_id,
            actor_id=o2.owner_id,
            material_code="150101",
        )
        await market.publish([seller_yes], old_key=True)
        await caught_up(settings, group, [TOPIC])
        # Refused while a matcher of the group runs, by the command as operators run it.
        env = os.environ | {"MARKETPLACE_LOG_LEVEL": "warning"}
        cli = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "marketplace.app.cli", "rebuild", "rekey", "--group", group],
            capture_output=True,
            text=True,
            env=env,
            check=False,
            timeout=120,
        )
        assert cli.returncode == 1, cli.stdout + cli.stderr
        assert "refused" in cli.stderr
        assert "are running: stop them first" in cli.stderr
    assert pair(await decisions(settings, matches_since, group), PROPOSED, o1, r1) is None

    conn = await connect(settings)
    try:
        # The previous version's expiry timer of the open proposal carried the old key.
        timer_id = derived_id(p2["match_id"], 0)
        await conn.execute("UPDATE timers SET key = $2 WHERE timer_id = $1", timer_id, b"1501")
        before = await items(conn, group)
        assert {i for i, _, _ in before} >= {o1.offer_id, r1.request_id, p2["match_id"]}

        # A group that reads the market topics and is behind: refused, naming it.
        laggard = f"test.rekey-follower.{uuid.uuid4().hex[:8]}"
        await start_group_at(conn, laggard, {(TOPIC, p): 0 for p in range(6)})
        with pytest.raises(Refused, match=f"group {laggard} is .* behind"):
            await rekey_caught_up(settings, group, followers=(laggard,))
        # A dry run reports and changes nothing.
        said: list[str] = []
        dry = await rekey_caught_up(settings, group, dry_run=True, say=said.append)
        assert dry.dry_run
        assert dry.summary.cancelled >= 1
        assert dry.summary.proposed >= 1
        assert any("lag 0" in line for line in said)
        assert dry.timers_rekeyed >= 1
        assert await items(conn, group) == before
        assert await read_cut_over(conn, group, TOPIC) is None
        key = await conn.fetchval("SELECT key FROM timers WHERE timer_id = $1", timer_id)
        assert bytes(key) == b"1501"

        done = await rekey_caught_up(settings, group)
        s = done.summary
        assert s.listings >= 6
        assert s.moved >= 1
        assert s.cancelled >= 1
        assert s.accepts_dropped >= 1
        assert s.proposed >= 1
        assert done.published == done.events
        assert done.timers_rekeyed >= 1
        assert done.timers_asked == s.proposed
        cut = await read_cut_over(conn, group, TOPIC)
        assert cut is not None
        assert cut.offsets == done.cut.offsets
        assert cut.at == done.cut.at
        # Its own table, with the move's figures; nothing of it left beside the books.
        assert cut.summary is not None
        assert cut.summary["cancelled"] == s.cancelled
        assert cut.summary["proposed"] == s.proposed
        assert cut.summary["by_partition"] == {str(p): n for p, n in s.by_partition.items()}
        assert (
            await conn.fetchval(
                "SELECT count(*) FROM matcher_partitions WHERE group_id = $1 AND topic <> $2",
                group,
                TOPIC,
            )
            == 0
        )
        # Each open listing and proposal in one partition: the one of its family's key.
        after = await items(conn, group)
        held = [i for i, kind, _ in after if kind == "listing"]
        assert len(held) == len(set(held))
        where = {i: p for i, _, p in after}
        for lid, code in (
            (o1.offer_id, "150102"),
            (r1.request_id, "200139"),
            (o2.offer_id, "150101"),
            (r2.request_id, "150101"),
            (o3.offer_id, "150101"),
            (r3.request_id, "150106"),
        ):
            assert where[lid] == partition_of(family_of(code).encode(), 6), lid
        assert where[p2["match_id"]] == partition_of(b"paper", 6)
        assert p3["match_id"] not in where
        key = await conn.fetchval("SELECT key FROM timers WHERE timer_id = $1", timer_id)
        assert bytes(key) == b"paper"
        shown = "\n".join(report_lines(done))
        assert f"cancelled (two families): {s.cancelled}" in shown
        assert f"new proposals between listings that now meet: {s.proposed}" in shown
        with pytest.raises(Refused, match="already"):
            await run_rekey(settings, group_id=group, followers=())
    finally:
        await conn.close()

    # Under the new key: the buyer's answer, and new requests next to old offers.
    n1 = market.request("200139", 5, market.near(0), accepts=("150102",))
    n2 = market.request("200101", 5, market.near(2))  # 15 01 01 is its substitute
    buyer_yes = ls.MatchAccepted(
        match_id=p2["match_id"],
        partner_id=r2.owner_id,
        actor_id=r2.owner_id,
        material_code="150101",
    )
    async with matcher(quick, group):
        await market.publish([buyer_yes, n1, n2], old_key=False)

        async def all_decided() -> bool:
            found[:] = await decisions(settings, matches_since, group)
            wanted = [
                pair(found, PROPOSED, o1, r1),  # by the move: now in one book
                pair(found, CONFIRMED, o2, r2),  # accepted on both sides of the cut-over
                pair(found, PROPOSED, o1, n1),  # an old offer meets a new request
                pair(found, PROPOSED, o3, n2),  # freed by the cancellation, meets a new one
            ]
            return all(wanted)

        await eventually(all_decided, 90)
    cancelled = [b for t, b in found if t == CANCELLED and b["match_id"] == p3["match_id"]]
    assert [(b["reason"], b["by_partner_id"]) for b in cancelled] == [("request_updated", None)]
    assert pair(found, PROPOSED, o1, r1)["quantity"]["amount"] == 4
    assert pair(found, PROPOSED, o1, n1)["quantity"]["amount"] == 5
    until = datetime.now(UTC)

    stop = asyncio.Event()
    auditor = asyncio.create_task(run_auditor(settings, stop))
    try:
        await caught_up(settings, AUDITOR, AUDITED, limit_s=240)
    finally:
        stop.set()
        await asyncio.wait_for(auditor, 60)
    conn = await connect(settings)
    try:
        report = await replay(
            conn, [MatchingStage(settings, group)], since=since, until=until, progress=False
        )
        assert report.identical, report.differences[:10]
        assert report.moves["matching"].startswith(f"{group} moved to the family key at")
        mine = {b["match_id"] for _, b in found}
        assert report.by_stage["matching"] >= len(mine) >= 5
        # Without the cut-over, replay cannot re-make what was decided after it.
        blind = await replay(
            conn, [WithoutCutOver(settings, group)], since=since, until=until, progress=False
        )
        assert not blind.identical
        assert blind.moves == {}
    finally:
        await conn.close()


async def test_a_cut_over_recorded_beside_the_books_moves_to_its_own_table(
    settings: Settings,
) -> None:
    """Migration 0027: a cut-over recorded before it (in `matcher_partitions`, under the topic
    name `<topic>@cut-over`, the time in microseconds at partition -1) is read as it was."""
    async with scratch_database(settings, "cutover") as db:
        conn = await connect(db, dsn=db.migrate_dsn)
        try:
            # Back to the state before 0027, with an old record and a book's own row.
            await conn.execute("DROP TABLE matcher_cutovers")
            await conn.execute("DELETE FROM schema_migrations WHERE version = 27")
            at = datetime(2026, 12, 1, 6, 10, 4, 512337, tzinfo=UTC)
            micros = (at - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)
            rows = [
                ("matcher", TOPIC + "@cut-over", -1, micros),
                ("matcher", TOPIC + "@cut-over", 0, 40211),
                ("matcher", TOPIC + "@cut-over", 1, 38120),
                ("matcher", TOPIC, 0, 17),
            ]
            await conn.executemany(
                "INSERT INTO matcher_partitions (group_id, topic, partition, seq)"
                " VALUES ($1, $2, $3, $4)",
                rows,
            )
            # As `marketplace migrate` does it: the migration, then the services' role's rights.
            applied = await migrate(conn, load_migrations(db.migrations_dir))
            assert [m.version for m in applied] == [27]
            await grant_app_role(conn, db.db_app_user)
            cut = await read_cut_over(conn, "matcher", TOPIC)
            assert cut is not None
            assert cut.at == at  # to the microsecond
            assert cut.offsets == {0: 40211, 1: 38120}
            assert cut.summary is None  # not recorded then
            left = await conn.fetch(
                "SELECT topic, partition, seq FROM matcher_partitions WHERE group_id = 'matcher'"
            )
            assert [tuple(r) for r in left] == [(TOPIC, 0, 17)]
            assert await read_cut_over(conn, "another", TOPIC) is None
        finally:
            await conn.close()
        # The services' role reads it and may not change it.
        app = await connect(db)
        try:
            assert await read_cut_over(app, "matcher", TOPIC) is not None
            for sql in ("UPDATE matcher_cutovers SET at = now()", "DELETE FROM matcher_cutovers"):
                with pytest.raises(asyncpg.InsufficientPrivilegeError):
                    await app.execute(sql)
        finally:
            await app.close()
