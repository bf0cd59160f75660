"""The partner API against its OpenAPI document, fuzzed by schemathesis with a key of every role.

The exchange's HTTP service runs in-process behind a real loopback port (`running_api` with
`create_service`, so the deal rooms' routes too, with a projector and the deals consumer) and
schemathesis's engine runs every phase (examples, coverage, fuzzing, stateful) and every check:
no server error; no status, content type or response schema the document does not give (each
refusal's problem type is an enum in the document, so a refusal it does not name fails too);
schema-valid requests accepted and schema-breaking ones rejected; authentication not ignored;
the methods a path does not serve answered 405 with an exact `Allow`; resources and deletes
consistent in the stateful phase.

A schema-valid request may still be refused by a rule the document names (an order in time, a
minimum lot, ownership, a used Idempotency-Key, an unknown waste code, a retired currency,
consent): positive data may get those statuses, and `refused_only_by_a_rule` fails any refusal of
schema-valid data that says the data broke the schema (problem type `validation` and the like),
since the document called it valid.

Reads after a 202 are eventually consistent, as the document says: after every 202,
`ReadModels.wait` holds the next call until the projector and the deals consumer have stored
every record that was on their topics when the 202 came (their offsets in PostgreSQL), so a
stateful link from a write to a read meets what the write did.

A withdrawal is not a removal: DELETE on an offer or a request answers 202 with the listing's
`Location`, where it stays readable with status `withdrawn` (the document says so). The generic
`use_after_free` check (a deleted resource must be 404) is therefore off for those two reads and
`withdrawal_keeps_the_listing` checks what the document promises instead: a read that follows
a successful withdrawal in a stateful scenario shows it withdrawn. Every other DELETE keeps
`use_after_free`.

The SME and the logistics firm have a deal room (a confirmed match of the SME's, whose
transport the firm won): its match id is an example of the deal-room routes' `id`, so the
fuzzer posts to a real room, not only to rooms that do not exist. Each organisation has a person
too, whose id is an example of the people routes' `person_id` for its own key.

Bounded: a fixed number of examples per operation and role, a fixed seed, derandomised, one
worker; the rate limit is raised for the run (429 is still documented everywhere)."""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import uuid
from collections import Counter
from typing import Any

import asyncpg
import pytest
import schemathesis
from aiokafka import TopicPartition
from hypothesis.errors import FlakyFailure, HypothesisWarning
from schemathesis.engine import events, from_schema

from consumers import deals, projector
from marketplace import accounts
from marketplace.db import connect, create_pool
from marketplace.kafka import make_consumer
from marketplace.settings import Settings
from producers.api.openapi import PROBLEM_BASE, document
from producers.web.app import create_service
from schemas.common import Role
from tests.integration.api_helpers import Partner, consumer_running, register, running_api
from tests.integration.kafka_helpers import partition_count
from tests.integration.test_deal_room import award, confirmed_match

ROLES: tuple[Role, ...] = ("sme", "logistics", "auditor", "facilitator", "operator")
MAX_EXAMPLES = 20
SEED = 20261130
# Not fuzzed: a stream that never ends (SSE) and a WebSocket upgrade (their own tests cover them).
SKIPPED = ("/v1/notifications/stream", "/v1/notifications/ws")
# Problem types that say a request broke the document: never the answer to schema-valid data.
SCHEMA_BROKEN = frozenset(
    PROBLEM_BASE + k
    for k in ("validation", "malformed-json", "unsupported-media-type", "payload-too-large")
)
# What schema-valid data may get: success, or a refusal the document gives for a rule.
POSITIVE = ["2xx", "400", "401", "403", "404", "409", "422", "429"]
# A listing's DELETE withdraws it: it stays readable (see the module's docstring).
LISTING_READS = ("/v1/offers/{id}", "/v1/requests/{id}")
DEAL_ROUTES = (
    ("post", "/v1/matches/{id}/messages"),
    ("get", "/v1/matches/{id}/messages"),
    ("get", "/v1/matches/{id}/messages/{message_id}/attachments/{attachment_id}"),
    ("post", "/v1/matches/{id}/messages/{message_id}/read"),
    ("get", "/v1/matches/{id}/documents"),
    ("get", "/v1/matches/{id}/documents/{kind}/{version}.{fmt}"),
    ("get", "/v1/matches/{id}/invoices/{kind}.{fmt}"),
    ("post", "/v1/matches/{id}/documents/{kind}/{version}/approve"),
    ("post", "/v1/matches/{id}/transport/{stage}"),
    # A standing agreement's periods (#22 item 3): the room is a one-off match, which has none.
    ("get", "/v1/matches/{id}/deliveries"),
    ("get", "/v1/matches/{id}/deliveries/{delivery_id}/documents"),
    ("get", "/v1/matches/{id}/deliveries/{delivery_id}/documents/{kind}/{version}.{fmt}"),
    ("post", "/v1/matches/{id}/deliveries/{delivery_id}/documents/{kind}/{version}/approve"),
    ("post", "/v1/matches/{id}/deliveries/{delivery_id}/transport/{stage}"),
    ("get", "/v1/matches/{id}/deliveries/{delivery_id}/invoices/{kind}.{fmt}"),
)
PEOPLE_ROUTES = (
    ("get", "/v1/people/{person_id}/mail-preferences"),
    ("put", "/v1/people/{person_id}/mail-preferences"),
)
# How long a call after a 202 waits for the read models at most.
CONSISTENT_WITHIN_S = 30.0


@schemathesis.check
def refused_only_by_a_rule(
    ctx: schemathesis.CheckContext, response: schemathesis.Response, case: schemathesis.Case[Any]
) -> bool | None:
    """Schema-valid data is never refused as breaking the schema."""
    meta = case.meta
    if meta is None or not meta.generation.mode.is_positive or response.status_code < 400:
        return None
    if "problem+json" not in (response.headers.get("content-type") or [""])[0]:
        return None
    kind = response.json().get("type")
    if kind in SCHEMA_BROKEN:
        raise AssertionError(
            f"the document calls this request valid, the API refused it as {kind}:"
            f" {response.json().get('errors') or response.json().get('detail')}"
        )
    return None


@schemathesis.check
def withdrawal_keeps_the_listing(
    ctx: schemathesis.CheckContext, response: schemathesis.Response, case: schemathesis.Case[Any]
) -> bool | None:
    """A listing read after its successful withdrawal in the same scenario is there, withdrawn."""
    if case.method.upper() != "GET" or case.path not in LISTING_READS:
        return None
    if response.status_code != 200:
        return None
    ancestor = ctx.internals.find_parent(case_id=case.id)
    while ancestor is not None:
        answer = ctx.internals.find_response(case_id=ancestor.id)
        if (
            ancestor.method.upper() == "DELETE"
            and ancestor.path == case.path
            and ancestor.path_parameters == case.path_parameters
            and answer is not None
            and answer.status_code == 202
        ):
            status = response.json().get("status")
            if status != "withdrawn":
                raise AssertionError(
                    f"withdrawn with DELETE {ancestor.formatted_path}, read as {status!r}"
                )
            return True
        ancestor = ctx.internals.find_parent(case_id=ancestor.id)
    return None


class ReadModels:
    """Waits until the consumers behind the reads have stored every record that was on their
    topics at the moment of asking: what a 202 published is then readable."""

    def __init__(self, settings: Settings, groups: dict[str, tuple[str, ...]]) -> None:
        self.settings = settings
        self.groups = groups
        self.waits: list[float] = []

    async def __aenter__(self) -> ReadModels:
        self.pool: asyncpg.Pool = await create_pool(self.settings)
        self.consumer = make_consumer(self.settings, group_id=None)
        await self.consumer.start()
        self.parts = {
            group: [
                TopicPartition(t, p)
                for t in topics
                for p in range(await partition_count(self.settings, t))
            ]
            for group, topics in self.groups.items()
        }
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.consumer.stop()
        await self.pool.close()

    async def wait(self) -> None:
        loop = asyncio.get_running_loop()
        started = loop.time()
        wanted = {
            group: await self.consumer.end_offsets(parts) for group, parts in self.parts.items()
        }
        while True:
            behind = 0
            for group, ends in wanted.items():
                rows = await self.pool.fetch(
                    "SELECT topic, partition, next_offset FROM consumer_offsets"
                    " WHERE group_id = $1",
                    group,
                )
                done = {(r["topic"], r["partition"]): r["next_offset"] for r in rows}
                behind += sum(
                    1 for tp, end in ends.items() if done.get((tp.topic, tp.partition), 0) < end
                )
            if not behind:
                self.waits.append(loop.time() - started)
                return
            if loop.time() - started > CONSISTENT_WITHIN_S:
                raise TimeoutError(
                    f"the read models are {behind} partitions behind after {CONSISTENT_WITHIN_S} s"
                )
            await asyncio.sleep(0.02)

    def after_a_write(self, loop: asyncio.AbstractEventLoop) -> Any:
        """A schemathesis `after_call` hook (run in the fuzzer's thread): after a 202, the next
        call waits for the read models."""

        def after_call(_context: Any, _case: schemathesis.Case[Any], response: Any) -> None:
            if response.status_code == 202:
                asyncio.run_coroutine_threadsafe(self.wait(), loop).result()

        return after_call


def with_room(doc: dict[str, Any], match_id: str | None, person_id: str) -> dict[str, Any]:
    """The document with `match_id` as an example of the deal-room routes' `id` and
    `person_id` as one of the people routes'."""
    doc = copy.deepcopy(doc)
    for method, path in PEOPLE_ROUTES:
        for param in doc["paths"][path][method]["parameters"]:
            if param["in"] == "path" and param["name"] == "person_id":
                param["examples"] = {"person": {"value": person_id}}
    if match_id is None:
        return doc
    for method, path in DEAL_ROUTES:
        for param in doc["paths"][path][method]["parameters"]:
            if param["in"] == "path" and param["name"] == "id":
                param["examples"] = {"room": {"value": match_id}}
    return doc


@dataclasses.dataclass
class Outcome:
    role: str
    operations: int = 0
    cases: int = 0
    failures: Counter[tuple[str, str, str]] = dataclasses.field(default_factory=Counter)
    examples: dict[tuple[str, str, str], str] = dataclasses.field(default_factory=dict)
    errors: list[str] = dataclasses.field(default_factory=list)
    # The deal-room routes' answers by status.
    deal_statuses: dict[int, int] = dataclasses.field(default_factory=dict)
    # The deal-room routes' answers by route, phase and status (what the report shows).
    deal_answers: Counter[tuple[str, str, str, int]] = dataclasses.field(default_factory=Counter)
    # The people routes' answers (its own person's id given as an example) by status.
    people_statuses: dict[int, int] = dataclasses.field(default_factory=dict)


def fuzz(
    base_url: str, partner: Partner, role: str, after_call: Any, room: str | None, person: str
) -> Outcome:
    config = schemathesis.Config.from_dict(
        {
            "seed": SEED,
            "workers": 1,
            "continue-on-failure": True,
            "generation": {"max-examples": MAX_EXAMPLES, "deterministic": True},
            "headers": dict(partner.auth),
            "checks": {"positive_data_acceptance": {"expected-statuses": POSITIVE}},
            "operations": [
                *({"include-path": path, "enabled": False} for path in SKIPPED),
                *(
                    {
                        "include-path": path,
                        "include-method": "GET",
                        "checks": {"use_after_free": {"enabled": False}},
                    }
                    for path in LISTING_READS
                ),
            ],
        }
    )
    schema = schemathesis.openapi.from_dict(with_room(document(), room, person), config=config)
    schema.config.update(base_url=base_url)
    schema.hook("after_call")(after_call)
    outcome = Outcome(role)
    labels: set[str] = set()
    deal_cases: Counter[int] = Counter()
    people_cases: Counter[int] = Counter()
    for event in from_schema(schema).execute():
        if isinstance(event, events.ScenarioFinished):
            labels.add(event.recorder.label)
            outcome.cases += len(event.recorder.cases)
            for case_id, node in event.recorder.cases.items():
                route = (node.value.method.lower(), node.value.path)
                answer = event.recorder.find_response(case_id=case_id)
                if answer is not None and route in DEAL_ROUTES:
                    deal_cases[answer.status_code] += 1
                    outcome.deal_answers[(*route, event.phase.name, answer.status_code)] += 1
                if answer is not None and route in PEOPLE_ROUTES:
                    people_cases[answer.status_code] += 1
            for case_id, checks in event.recorder.checks.items():
                for check in checks:
                    if check.failure_info is None:
                        continue
                    failure = check.failure_info.failure
                    found = (event.recorder.label, check.name, failure.title)
                    outcome.failures[found] += 1
                    if found not in outcome.examples:
                        interaction = event.recorder.interactions.get(case_id)
                        answer = interaction.response if interaction else None
                        outcome.examples[found] = (
                            f"{failure.message[:400]} | {event.phase}"
                            f" | {answer.status_code if answer else None}"
                            f" {answer.content[:300]!r}"
                            if answer
                            else failure.message[:400]
                        )
        elif isinstance(event, events.FatalError) or (
            isinstance(event, events.NonFatalError)
            # Hypothesis's own notes on its generators (flaky shrinking, a large repr) are
            # about the fuzzer, not the API.
            and not isinstance(event.value, (FlakyFailure, HypothesisWarning))
        ):
            outcome.errors.append(repr(event)[:500])
    outcome.operations = len(labels)
    outcome.deal_statuses = dict(sorted(deal_cases.items()))
    outcome.people_statuses = dict(sorted(people_cases.items()))
    return outcome


@pytest.mark.timeout(1500)
async def test_every_role_against_the_document(settings: Settings) -> None:
    # Loopback only; a rate limit the fuzzer does not reach (429 stays documented everywhere).
    fast = dataclasses.replace(settings, api_rate_per_s=100000.0, api_rate_burst=100000)
    partners = {role: await register(fast, role, f"Fuzz {role}") for role in ROLES}
    buyer = await register(fast, "sme", "Fuzz buyer")
    group = f"test.projector.{uuid.uuid4().hex[:8]}"
    async with (
        running_api(fast, create_service, projector_group=group) as client,
        consumer_running(fast, "deals", deals.TOPICS, deals.DealRooms) as deals_group,
        ReadModels(
            fast, {group: projector.TOPICS, deals_group: tuple(deals.TOPICS)}
        ) as read_models,
    ):
        base_url = str(client.make_url("")).rstrip("/")
        assert base_url.startswith("http://127.0.0.1:")
        # A deal room for the SME (the seller) and the logistics firm (the awarded carrier).
        match_id, job_id = await confirmed_match(fast, partners["sme"], buyer)
        # The award after its job is stored, as an auction's would come (the projector keeps an
        # award that arrives before its job's row as no award).
        await read_models.wait()
        await award(fast, match_id, job_id, partners["logistics"])
        await read_models.wait()
        for role in ("sme", "logistics"):
            r = await client.get(f"/v1/matches/{match_id}/messages", headers=partners[role].auth)
            assert r.status == 200, await r.text()
        rooms = {"sme": match_id, "logistics": match_id}
        # A person of each organisation (the operator's key has none: its id stays unknown).
        conn = await connect(fast)
        try:
            people = {
                role: (
                    await accounts.create_person(
                        conn,
                        partner_id=partners[role].partner_id,
                        email=f"fuzz-{uuid.uuid4().hex[:10]}@example.org",
                        display_name=f"Fuzz {role}",
                        role="member",
                    )
                ).person_id
                if role != "operator"
                else str(uuid.uuid4())
                for role in ROLES
            }
        finally:
            await conn.close()
        after_call = read_models.after_a_write(asyncio.get_running_loop())
        outcomes = [
            await asyncio.to_thread(
                fuzz,
                base_url,
                partners[role],
                role,
                after_call,
                rooms.get(role),
                people[role],
            )
            for role in ROLES
        ]
    report = []
    for o in outcomes:
        report.append(
            f"{o.role}: {o.operations} operations, {o.cases} cases;"
            f" deal-room answers by status {o.deal_statuses};"
            f" people's preferences by status {o.people_statuses}"
        )
        report += [f"  {n} x {k}: {o.examples[k]}" for k, n in sorted(o.failures.items())]
        report += [
            f"  deal room {method.upper()} {path} in {phase}: {status} x {n}"
            for (method, path, phase, status), n in sorted(o.deal_answers.items())
            if method == "post" and o.role in ("sme", "logistics")
        ]
        report += [f"  error: {e}" for e in o.errors]
    waits = sorted(read_models.waits)
    if waits:
        report.append(
            f"waits for the read models after a 202: {len(waits)}, median"
            f" {waits[len(waits) // 2]:.3f} s, longest {waits[-1]:.3f} s"
        )
    print("\n".join(report))
    assert all(o.operations > 0 for o in outcomes)
    assert not [k for o in outcomes for k in o.failures], "\n".join(report)
    assert not [o for o in outcomes if o.errors], "\n".join(report)
    # The fuzzer reached the room it was given: posted to it and read it.
    for o in outcomes[:2]:
        assert o.deal_statuses.get(202, 0) > 0, report
        assert o.deal_statuses.get(200, 0) > 0, report
    # It read and replaced the preferences of its own organisation's person.
    assert outcomes[0].people_statuses.get(200, 0) > 0, report
