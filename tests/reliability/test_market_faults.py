"""The fault suite (issue #10): one simulated market under a sequence of faults on a private
stack (infra/faults.sh: a three-node Kafka cluster, RF 3, min ISR 2, and a PostgreSQL of its
own), then checks from the audit log, the read models and the dead-letter topic:

- every command the API accepted (each 202) is exactly one event on the log, and the read models
  hold what the log says, no more and no less;
- every decision was made once: the audit replay of matching and auctions agrees with what was
  recorded, a decision published twice is the very same record, every confirmed match got one
  transport job;
- every notification reached the partner's webhook receiver at least once;
- every poison record is in ops.deadletters, from every group that reads its topic, with its
  reason, and nothing else is; the audit log recorded it as it was.

The faults and their order are in tests/reliability/market.py; the run happens once for the
module and each test checks one guarantee."""

from __future__ import annotations

import asyncio
import fcntl
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.reliability.market import (
    INPUT_TOPICS,
    POISON_KINDS,
    REASONS,
    Result,
    readers,
    run_market,
    short,
)
from tests.reliability.stack import (
    CLUSTER,
    CONSUMERS,
    MARKETPLACE,
    Stack,
    faults,
    private_env,
    script,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(1200)]

# Faster timers and retries than production, so that auctions close, proposals expire and
# sweeps run within the run; webhooks may go to the test's receiver on loopback.
RUN_SETTINGS = {
    "MARKETPLACE_MATCH_ANSWER_PERIOD_S": "30",
    "MARKETPLACE_AUCTION_BIDDING_PERIOD_S": "15",
    "MARKETPLACE_AUCTION_REOPEN_PERIOD_S": "15",
    "MARKETPLACE_WEBHOOK_ALLOW_NETWORKS": "127.0.0.0/8",
    "MARKETPLACE_WEBHOOK_TIMEOUT_S": "3",
    "MARKETPLACE_WEBHOOK_RETRY_BASE_S": "1",
    "MARKETPLACE_WEBHOOK_RETRY_CAP_S": "5",
    "MARKETPLACE_WEBHOOK_MAX_ATTEMPTS": "100",
    "MARKETPLACE_OUTBOX_SWEEP_INTERVAL_S": "2",
    "MARKETPLACE_OUTBOX_SWEEP_MIN_AGE_S": "3",
    "MARKETPLACE_AUDIT_CHECKPOINT_INTERVAL_S": "2",
    "MARKETPLACE_LOG_FORMAT": "json",
    "MARKETPLACE_API_RATE_PER_S": "50",
    "MARKETPLACE_API_RATE_BURST": "100",
}


@pytest.fixture(scope="module")
def run() -> Iterator[Result]:
    env = private_env() | RUN_SETTINGS
    local = Path(env["MARKETPLACE_LOCAL_DIR"])
    (local / "logs").mkdir(parents=True, exist_ok=True)
    # One run of this suite at a time on this machine (other sessions may run it too).
    with (local.parent / "faults.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        stack = Stack(env=env, logs=local / "logs")
        faults("wipe")
        try:
            up = subprocess.run(
                [CLUSTER, "up"], env=env, capture_output=True, text=True, check=False, timeout=300
            )
            if up.returncode != 0:
                # Three JVMs starting on a busy 2-core machine have lost a node once: the
                # cluster gets one clean second start (it is the stage, not the thing tested).
                sys.stderr.write(f"first cluster start failed:\n{up.stderr}\n")
                stack.cluster("wipe")
                stack.cluster("up")
            # The project's own start-up: private PostgreSQL, migrations, topics (RF 3), audit key.
            script(env, MARKETPLACE, "up")
            result = asyncio.run(run_market(stack))
            sys.stderr.write(summary(result) + "\n")
            yield result
        finally:
            stack.stop_all()
            faults("wipe")


def summary(r: Result) -> str:
    return (
        f"fault suite: {r.seconds:.0f} s, {r.records} records on the log, "
        f"{len(r.accepted)} commands accepted, {len(r.faults)} faults "
        f"({'; '.join(r.faults)}), {len(r.poison)} poison records, "
        f"{len(r.dead_letters)} dead letters, {len(r.log_ids.get('notification', ()))} "
        f"notifications, {r.refused_while_kafka_down} writes refused while Kafka was away, "
        f"statuses {dict(r.statuses)}"
    )


def test_every_fault_was_injected(run: Result) -> None:
    for service in CONSUMERS:
        assert f"SIGKILL {service}" in run.faults
        assert any(f.startswith("SIGKILL together") and service in f for f in run.faults)
    for fault in (
        "every group scaled 1 -> 3",
        "every group scaled 3 -> 1 (SIGTERM)",
        "PostgreSQL stopped",
        "PostgreSQL started",
        "broker 1 SIGKILLed",
        "broker 1 started",
        "broker 2 SIGKILLed",
        "broker 2 started",
        "all brokers SIGKILLed",
        "all brokers started",
    ):
        assert fault in run.faults
    # While no broker was up the API refused writes (503 + Retry-After) instead of taking them.
    assert run.refused_while_kafka_down > 0


def test_every_accepted_command_is_exactly_one_event(run: Result) -> None:
    assert len(run.accepted) >= 100
    missing = [a for a in run.accepted if a.event_id not in run.audit_counts]
    twice = {i: n for i, n in run.audit_counts.items() if n != 1}
    assert not missing, f"{len(missing)} accepted commands not on the log, e.g. {missing[:3]}"
    assert not twice, f"accepted commands on the log more than once: {list(twice.items())[:5]}"
    # The read models hold exactly the listings on the log, every accepted one among them.
    posted = {
        str(a.body.get("offer_id") or a.body.get("request_id"))
        for a in run.accepted
        if a.method == "POST" and a.path in ("/v1/offers", "/v1/requests")
    }
    on_log = run.log_ids["offer"] | run.log_ids["request"]
    assert posted <= on_log
    assert run.read_ids["listing"] == on_log
    assert run.read_ids["analytics_listing"] == on_log
    withdrawn = {a.path.rsplit("/", 1)[1] for a in run.accepted if a.method == "DELETE"}
    assert withdrawn
    assert withdrawn <= run.read_ids["withdrawn"]
    assert withdrawn <= run.read_ids["analytics_withdrawn"]


def test_every_decision_is_made_once_and_replay_agrees(run: Result) -> None:
    assert run.replay is not None
    assert run.replay.identical, run.replay.differences[:10]
    assert run.replay.by_stage["matching"] > 0
    assert run.replay.by_stage["auction"] > 0
    assert not run.duplicates_differ, (
        f"republished records that differ: {run.duplicates_differ[:5]}"
    )
    log, read = run.log_ids, run.read_ids
    assert log["proposed"]
    assert log["confirmed"]
    assert log["awarded"]
    # One transport job per one-off confirmed match and per scheduled delivery of a standing
    # agreement, and the read models agree with the log.
    assert log["confirmed_one_off"] <= log["job_match"]
    assert len(log["job"]) == len(log["confirmed_one_off"]) + len(log["delivery"])
    assert read["match"] == log["proposed"] == read["analytics_match"]
    assert read["confirmed"] <= log["confirmed"]
    assert read["job"] == log["job"] == read["analytics_job"]
    assert read["awarded"] == log["awarded"]
    assert run.outbox_left == 0
    assert run.verify is not None
    assert run.verify.ok, run.verify.findings[:5]


def test_every_notification_is_delivered_at_least_once(run: Result) -> None:
    notifications = run.log_ids["notification"]
    assert len(notifications) >= 50
    undelivered = notifications - set(run.received)
    assert not undelivered, f"{len(undelivered)} notifications never reached the receiver"
    assert run.read_ids["notification"] == notifications
    assert run.read_ids["delivered"] == notifications
    assert set(run.deliveries) == {"delivered"}


def test_every_poison_record_is_dead_lettered_with_its_reason_and_nothing_else_is(
    run: Result,
) -> None:
    assert {(p.topic, p.kind) for p in run.poison} == {
        (t, k) for t in INPUT_TOPICS for k in POISON_KINDS
    }
    letters = {
        (d.group, d.source_topic, d.source_partition, d.source_offset): d for d in run.dead_letters
    }
    expected = {
        (group, p.topic, p.partition, p.offset): p for p in run.poison for group in readers(p.topic)
    }
    assert len(expected) > len(run.poison)
    for where, p in expected.items():
        letter = letters.get(where)
        assert letter is not None, f"{p.kind} poison on {where[1:]} not dead-lettered by {where[0]}"
        assert REASONS[p.kind] in letter.reason, (p.kind, short(letter))
        assert letter.value == p.value
    unexpected = [short(d) for w, d in letters.items() if w not in expected]
    assert not unexpected, f"dead letters that are not poison: {unexpected[:5]}"
    # The auditor records every record as it came, poison included.
    assert {(p.topic, p.partition, p.offset) for p in run.poison} <= run.audited_poison
