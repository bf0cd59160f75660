"""#22 item 4: killing the services mid-conversation loses no message and duplicates none.

The real services, each a process of its own: the API (`marketplace run api`) and the deals
consumer, with a projector behind the API. Two SMEs post a stream of messages into their deal
room at the same time, each message with its own Idempotency-Key, as a client that retries until
it is answered (a refused connection or a 5xx is retried with the same key). In the middle of
the conversation the deals consumer is SIGKILLed, then the API, the moment a message in flight
has its text stored (the API then publishes its event and answers: the process dies before the
answer), both are started again, and the conversation goes on. The key derives the message's
ids, so the retry of a cut request stores nothing new and publishes the same event (same id).
Then:

- every message answered 202 is in the room (`GET /v1/matches/{id}/messages`) exactly once, its
  text intact, each party's messages in the order it posted them, and a message answered before
  another was posted comes before it;
- the audit log holds each of them as one event (one CloudEvents id): a message whose answer
  was never received may have been published before the API died and again by its retry, under
  the same event id; a message answered at its first attempt is in the log exactly once."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import uuid
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import asyncpg
import pytest

from consumers.auditor import GROUP as AUDITOR
from consumers.auditor import TOPICS as AUDITED
from consumers.deals import TOPICS
from consumers.projector import TOPICS as PROJECTED
from consumers.projector import Projector
from marketplace.settings import ROOT, Settings
from tests.integration.api_helpers import Partner, consumer_running, eventually, register
from tests.integration.kafka_helpers import caught_up, start_at_session_start
from tests.integration.test_api_rate_limit import free_port
from tests.integration.test_audit import auditor_running
from tests.integration.test_deal_room import Worker, confirmed_match

pytestmark = pytest.mark.integration
# Messages each party posts, and the pause between two of its messages (a conversation, not a
# burst: the kills below land while it goes on).
PER_PARTY = 40
PAUSE_S = 0.2
# Retried answers: the API is down (connection refused) or not ready yet (5xx).
RETRIED = {500, 502, 503, 504}


class Api:
    """`marketplace run api` in a process of its own, on a fixed port, that SIGKILL ends."""

    def __init__(self) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = os.environ | {
            "MARKETPLACE_HTTP_PORT": str(self.port),
            "MARKETPLACE_METRICS_PORT": str(free_port()),
            # Two parties posting as fast as they are answered: no rate limit in the way.
            "MARKETPLACE_API_RATE_PER_S": "1000",
            "MARKETPLACE_API_RATE_BURST": "1000",
            "MARKETPLACE_LOG_LEVEL": "warning",
        }
        cmd = [sys.executable, "-m", "marketplace.app.cli", "run", "api"]
        self.proc = subprocess.Popen(cmd, cwd=ROOT, env=env)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    async def ready(self, http: aiohttp.ClientSession) -> None:
        async def up() -> bool:
            assert self.proc is not None
            assert self.proc.poll() is None, "the API process exited"
            try:
                async with http.get(self.base + "/readyz") as r:
                    return r.status == 200
            except aiohttp.ClientError:
                return False

        await eventually(up, 60)


@dataclass
class Sent:
    tag: str
    text: str
    started: float  # monotonic, when its first attempt began
    answered: float = 0.0  # monotonic, when the 202 came
    message_id: str = ""
    attempts: int = 0
    answers: list[int] = field(default_factory=list)


@dataclass
class Conversation:
    api: Api
    http: aiohttp.ClientSession
    match_id: str
    sent: list[Sent] = field(default_factory=list)
    # The texts of the requests sent and not answered yet.
    in_flight: set[str] = field(default_factory=set)

    def answered(self) -> int:
        return sum(1 for s in self.sent if s.message_id)

    async def post(self, who: Partner, tag: str, i: int) -> None:
        loop = asyncio.get_running_loop()
        item = Sent(tag, f"{tag} says {i}: the bales are dry", loop.time())
        self.sent.append(item)
        headers = who.auth | {"Idempotency-Key": f"{self.match_id}/{tag}/{i}"}
        url = f"{self.api.base}/v1/matches/{self.match_id}/messages"
        while True:
            item.attempts += 1
            self.in_flight.add(item.text)
            try:
                async with self.http.post(url, json={"text": item.text}, headers=headers) as r:
                    body: Any = await r.json(content_type=None)
                    item.answers.append(r.status)
                    if r.status == 202:
                        item.message_id = body["message_id"]
                        item.answered = loop.time()
                        return
                    assert r.status in RETRIED, (r.status, body)
            except (aiohttp.ClientError, TimeoutError):
                item.answers.append(0)  # no answer: the process died under the request
            finally:
                self.in_flight.discard(item.text)
            await asyncio.sleep(0.3)

    async def party(self, who: Partner, tag: str) -> None:
        for i in range(1 if tag == "buyer" else 0, PER_PARTY):
            await self.post(who, tag, i)
            await asyncio.sleep(PAUSE_S)


async def test_killing_the_api_and_the_deals_consumer_mid_conversation(
    settings: Settings,
) -> None:
    seller = await register(settings, "sme", "Crash Textiles OOD")
    buyer = await register(settings, "sme", "Crash Insulation OOD")
    group = f"test.deals.crash.{uuid.uuid4().hex[:8]}"
    await start_at_session_start(settings, group, TOPICS)
    api = Api()
    worker: Worker | None = None
    conn = await asyncpg.connect(settings.dsn)
    timeout = aiohttp.ClientTimeout(total=40)
    try:
        async with (
            consumer_running(settings, "projector", list(PROJECTED), Projector),
            aiohttp.ClientSession(timeout=timeout) as http,
        ):
            api.start()
            await api.ready(http)
            match_id, _job = await confirmed_match(settings, seller, buyer)

            async def room_known() -> bool:
                url = f"{api.base}/v1/matches/{match_id}/messages"
                async with http.get(url, headers=seller.auth) as r:
                    return r.status == 200

            await eventually(room_known, 60)
            worker = Worker(group)

            async def applied() -> int:
                return int(
                    await conn.fetchval(
                        "SELECT count(*) FROM deal_messages WHERE match_id = $1", match_id
                    )
                )

            talk = Conversation(api, http, match_id)
            # The buyer opens; the stream starts once the consumer has applied that message.
            await talk.post(buyer, "buyer", 0)
            await eventually(lambda: _positive(applied), 120)
            parties = asyncio.gather(talk.party(seller, "seller"), talk.party(buyer, "buyer"))

            async def answered(n: int) -> bool:
                return talk.answered() >= n

            # The consumer dies while it works through the first messages.
            await eventually(lambda: answered(8), 120)
            worker.kill()
            # The API dies with both parties' requests in flight, and comes back on its port.
            await eventually(lambda: answered(20), 120)
            # While a request is on its way: once its text is stored, the API publishes its
            # event and then answers; the process dies in between (or, if the answer was
            # quicker than this look, between two requests). Its client retries with its key.
            cut: list[str] = []
            for _ in range(5000):
                waiting = sorted(talk.in_flight)
                if waiting and await conn.fetchval(
                    "SELECT count(*) FROM deal_texts WHERE match_id = $1 AND body = ANY($2)",
                    match_id,
                    waiting,
                ):
                    cut = waiting
                    break
            api.kill()
            # Those still unanswered at the kill (an answer may have come during the look).
            cut = [t for t in cut if t in talk.in_flight]
            await asyncio.sleep(1)
            api.start()
            await api.ready(http)
            # The consumer comes back while the conversation goes on.
            await eventually(lambda: answered(44), 180)
            worker = Worker(group)
            await asyncio.wait_for(parties, 300)

            total = 2 * PER_PARTY
            await eventually(lambda: _equal(applied, total), 120)
            url = f"{api.base}/v1/matches/{match_id}/messages"
            async with http.get(url, headers=buyer.auth) as r:
                assert r.status == 200
                room = (await r.json())["messages"]
    finally:
        if worker is not None:
            worker.kill()
        api.kill()

    try:
        by_id = {s.message_id: s for s in talk.sent}
        in_room = [m["message_id"] for m in room]
        # Exactly once each: none lost, none twice, nothing else.
        assert sorted(in_room) == sorted(by_id), (len(in_room), len(by_id))
        assert len(set(in_room)) == len(in_room) == total
        for m in room:
            assert m["text_status"] == "ok"
            assert m["text"] == by_id[m["message_id"]].text
            author = seller if by_id[m["message_id"]].tag == "seller" else buyer
            assert m["author_id"] == author.partner_id
        # In order: each party's as it posted them, and answered-before-posted across parties.
        position = {message_id: n for n, message_id in enumerate(in_room)}
        for tag in ("seller", "buyer"):
            mine = [s.message_id for s in talk.sent if s.tag == tag]
            assert sorted(mine, key=position.__getitem__) == mine
        for a in talk.sent:
            for b in talk.sent:
                if a.answered < b.started:
                    assert position[a.message_id] < position[b.message_id], (a, b)
        # The kills really cut requests: some had no answer or waited for a cut one's key.
        retried = [s for s in talk.sent if s.attempts > 1]
        assert retried, [s.answers for s in talk.sent]

        # The audit log: each message one event; one record when its first attempt was answered.
        async with auditor_running(settings):
            await caught_up(settings, AUDITOR, AUDITED, limit_s=300)
        rows = await conn.fetch(
            "SELECT data->>'message_id' AS message_id, count(*) AS records,"
            " count(DISTINCT ce_id) AS events FROM audit_log"
            " WHERE topic = 'market.deals' AND ce_type = 'market.deal.message_posted.v1'"
            " AND refs @> ARRAY[$1]::text[] AND data->>'match_id' = $1 GROUP BY 1",
            match_id,
        )
        logged = {r["message_id"]: r for r in rows}
        assert set(logged) == set(by_id)
        assert all(r["events"] == 1 for r in rows)
        for s in talk.sent:
            if s.attempts == 1:
                assert logged[s.message_id]["records"] == 1, s
        # What the run went through (shown with pytest -s).
        print(
            f"messages {total}, unanswered with the text stored at the API's kill {cut},"
            f" retried {len(retried)} (answers {[s.answers for s in retried]}),"
            f" records in the log {sum(r['records'] for r in rows)}, answer times (ms)"
            f" {sorted(round(1000 * (s.answered - s.started)) for s in talk.sent)[::8]}"
        )
    finally:
        await conn.close()


async def _positive(count: Any) -> bool:
    return int(await count()) > 0


async def _equal(count: Any, n: int) -> bool:
    return int(await count()) == n
