"""The benchmarks' reports carry what issue #18 (target 5) asks of them, and the statement
statistics they list come from a server that loads pg_stat_statements.

On a private PostgreSQL and a private Kafka broker (loadtests/postgres.sh, loadtests/broker.sh),
so that neither the shared servers' settings nor their traffic are touched: infra/postgres.sh
adds the library to a new and to an existing data directory, once; a server running without it
makes the reports say "pg_stat_statements not loaded"; and `loadtests.bench_consumers --peer`
writes a report with the load average at its start and end, every process's CPU seconds, the
consumers' and the baselines' settings, the top statements, the FastStream peer's rate and rows
next to the projector's, and the exactly-once floors of the projector, the auditor, the notifier
and the auctioneer, each leaving the consumer's rows."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from loadtests import cpu, pgstats
from loadtests.scratch import superuser_sql
from marketplace.settings import ROOT

pytestmark = pytest.mark.integration

PG_SCRIPT = str(ROOT / "loadtests" / "postgres.sh")
BROKER_SCRIPT = str(ROOT / "loadtests" / "broker.sh")


def free_port(pair: bool = False) -> int:
    """A free loopback port (and the one after it, for a broker's controller)."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port >= 65000:
            continue
        if not pair:
            return port
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port + 1)) != 0:
                return port


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        list(args), capture_output=True, text=True, check=False, timeout=300, env=env
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done


def report_of(done: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    """The JSON report a benchmark's run wrote (its path in its last lines), read and removed
    with its HTML page."""
    found = re.search(r"report: (\S+\.json)", done.stdout)
    assert found, done.stdout
    path = Path(found.group(1))
    try:
        report: dict[str, Any] = json.loads(path.read_text())
    finally:
        path.unlink()
        path.with_suffix(".html").unlink()
    return report


@pytest.fixture(scope="module")
def private_servers() -> Iterator[dict[str, str]]:
    """A private PostgreSQL and Kafka broker; the environment that points a benchmark at them."""
    name = f"t18-{uuid.uuid4().hex[:6]}"
    pg_port, kafka_port = free_port(), free_port(pair=True)
    env = {
        "MARKETPLACE_PG_PORT": str(pg_port),
        "MARKETPLACE_PG_LOCAL_DIR": str(ROOT / ".local" / "loadtests" / name),
        "MARKETPLACE_KAFKA_PORT": str(kafka_port),
    }
    data: Path | None = None
    try:
        run(PG_SCRIPT, "up", name, str(pg_port))
        data = data_dir(env)
        yield env | {"name": name}
    finally:
        subprocess.run([PG_SCRIPT, "stop", name, str(pg_port)], check=False, timeout=120)
        subprocess.run([BROKER_SCRIPT, "stop", name], check=False, timeout=120)
        shutil.rmtree(ROOT / ".local" / "loadtests" / name, ignore_errors=True)
        if data is not None and data.name == "data" and "marketplace-" in str(data.parent):
            shutil.rmtree(data.parent, ignore_errors=True)  # the cluster kept outside the checkout


def data_dir(env: dict[str, str]) -> Path:
    """The private cluster's data directory, as infra/postgres.sh reports it: under
    MARKETPLACE_PG_LOCAL_DIR, or (as root, when the postgres user cannot reach the checkout, as
    in a clone under a private temporary folder) a folder under /var/lib/postgresql."""
    pg_env = {k: v for k, v in os.environ.items() if k != "MARKETPLACE_DATABASE_URL"}
    pg_env |= {k: env[k] for k in ("MARKETPLACE_PG_PORT", "MARKETPLACE_PG_LOCAL_DIR")}
    done = subprocess.run(
        [str(ROOT / "infra" / "postgres.sh"), "status"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
        env=pg_env,
    )
    found = re.search(r"data (/\S+?)[,)]", done.stdout)
    assert found, done.stdout + done.stderr
    return Path(found.group(1))


def conf_of(env: dict[str, str]) -> Path:
    conf = data_dir(env) / "postgresql.conf"
    assert conf.is_file(), f"the private cluster's postgresql.conf: {conf}"
    return conf


def preload_lines(env: dict[str, str]) -> list[str]:
    return [
        line
        for line in conf_of(env).read_text().splitlines()
        if re.match(r"\s*shared_preload_libraries\s*=", line)
    ]


def test_pg_stat_statements_is_configured_once_and_reported(
    private_servers: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    env = private_servers
    name, port = env["name"], env["MARKETPLACE_PG_PORT"]
    for key in ("MARKETPLACE_PG_PORT", "MARKETPLACE_PG_LOCAL_DIR"):
        monkeypatch.setenv(key, env[key])
    monkeypatch.delenv("MARKETPLACE_DATABASE_URL", raising=False)
    # A new data directory: the library is configured and loaded.
    assert preload_lines(env) == ["shared_preload_libraries = 'pg_stat_statements'"]
    assert pgstats.loaded()
    assert pgstats.reset()["loaded"] is True
    probe = superuser_sql("postgres", "SELECT count(*) AS t18_probe FROM pg_class WHERE false")
    assert probe.returncode == 0, probe.stderr
    listed = pgstats.top(100)
    assert listed["loaded"] is True
    assert any("t18_probe" in s["query"] for s in listed["statements"]), listed
    assert {"databases", "role", "calls", "total_ms", "mean_ms", "rows", "query"} <= set(
        listed["statements"][0]
    )

    # The server runs without it (a setting that overrides the file): the report says so.
    other = "ALTER SYSTEM SET shared_preload_libraries = 'auto_explain'"
    assert superuser_sql("postgres", other).returncode == 0
    run(PG_SCRIPT, "stop", name, port)
    restarted = run(PG_SCRIPT, "up", name, port)
    assert "not loaded" in restarted.stderr
    absent = pgstats.top()
    assert absent["loaded"] is False
    assert absent["note"] == pgstats.NOT_LOADED == "pg_stat_statements not loaded"
    assert absent["statements"] == []
    assert pgstats.reset()["note"] == pgstats.NOT_LOADED

    # An existing data directory from before the library was configured: `up` adds it, once.
    assert superuser_sql("postgres", "ALTER SYSTEM RESET shared_preload_libraries").returncode == 0
    run(PG_SCRIPT, "stop", name, port)
    conf = conf_of(env)
    conf.write_text(
        "".join(
            line
            for line in conf.read_text().splitlines(keepends=True)
            if "pg_stat_statements" not in line
        )
    )
    assert preload_lines(env) == []
    run(PG_SCRIPT, "up", name, port)
    run(PG_SCRIPT, "up", name, port)  # again, running: nothing more is added
    assert preload_lines(env) == ["shared_preload_libraries = 'pg_stat_statements'"]
    assert pgstats.loaded()

    # The CPU figures count this cluster's processes, found by its port.
    data = str(conf_of(env).parent)
    postmasters = [c for c in map(cpu._cmdline, cpu._pids()) if f"-D {data}" in c]
    assert len(postmasters) == 1, postmasters
    assert cpu._postmaster_port(postmasters[0]) == int(port)
    assert cpu._postmaster_port(postmasters[0].replace(data, "/nonexistent")) is None


@pytest.mark.timeout(900)
def test_consumers_report_has_target_5_fields_and_the_faststream_peer(
    private_servers: dict[str, str],
) -> None:
    env = {k: v for k, v in os.environ.items() if k != "MARKETPLACE_DATABASE_URL"}
    env |= {k: v for k, v in private_servers.items() if k.startswith("MARKETPLACE_")}
    run(BROKER_SCRIPT, "up", private_servers["name"], env["MARKETPLACE_KAFKA_PORT"], env=env)
    done = run(
        sys.executable,
        "-m",
        "loadtests.bench_consumers",
        "--events",
        "400",
        "--instances",
        "1",
        "--consumers",
        "projector,auditor,notifier,auctioneer,alerts,reminders,deals,webhooks,mailer",
        "--peer",
        "message",
        "--floor-decode",
        "--floor-codec",
        "--floor-keep",
        env=env,
    )
    report = report_of(done)
    for when in ("machine_at_start", "machine_at_end"):
        assert report[when]["load_1m"] >= 0
        assert report[when]["cores"] >= 1
    assert report["settings"]["consumers"]["consumer_max_batch"] > 0
    assert report["settings"]["consumers"]["postgres_port"] == int(env["MARKETPLACE_PG_PORT"])
    assert {"aiokafka-consume", "same-work", "kafka-consumer-perf"} <= set(
        report["settings"]["baselines"]
    )
    statements = report["pg_stat_statements"]
    assert statements["loaded"] is True
    assert any("INSERT INTO listings" in s["query"] for s in statements["statements"]), statements
    rows = {r["code"]: r for r in report["consumers"] if r["consumer"] == "projector"}
    assert set(rows) == {"current", "faststream-message"}
    for row in rows.values():
        assert row["records"] == 400
        for sample in row["runs"]:
            assert len(sample["worker_cpu_s"]) == 1
            assert sample["worker_cpu_s"][0] > 0
            assert {"broker_cpu_s", "postgres_cpu_s", "load_generator_cpu_s"} <= set(sample)
            assert sample["read_model"]["listings"][0] == 400
    # The projector's floor (issue #18, target 1): the same rows, at a rate, with its CPU.
    ours = rows["current"]
    assert ours["floor_rows_equal"] is True
    assert ours["floor_per_s"] > 0
    assert ours["floor_runs"][0]["read_model"]["listings"][0] == 400
    assert ours["ratio_to_floor"] == ours["records_per_s"] / ours["floor_per_s"]
    # The floor that decodes and maps every record in its timed part left the same rows.
    assert ours["floor_decoding_rows_equal"] is True
    assert ours["floor_decoding_per_s"] > 0
    assert ours["floor_codec_rows_equal"] is True
    # The auditor's floor: the same chained rows (every record, hash by hash), by digest.
    (auditor,) = [r for r in report["consumers"] if r["consumer"] == "auditor"]
    assert auditor["records"] == 400
    assert auditor["floor_rows_equal"] is True
    assert auditor["floor_runs"][0]["read_model"]["audit_log"][0] == 400
    assert auditor["floor_per_s"] > 0
    # The notifier's floor: each proposal's match and its parties, the notifications through
    # the outbox (emptied once Kafka acknowledged them), by digest.
    (notifier,) = [r for r in report["consumers"] if r["consumer"] == "notifier"]
    assert notifier["records"] > 0  # the matcher's proposals of the 400 listings
    assert notifier["floor_rows_equal"] is True
    notified = notifier["floor_runs"][0]["read_model"]
    assert notified["notifier_parties"][0] == notifier["records"]  # each of a match of its own
    assert notified["outbox"][0] == 0
    assert notifier["emitted_per_record"] > 0
    assert notifier["floor_per_s"] > 0
    assert notifier["ratio_to_floor"] == notifier["records_per_s"] / notifier["floor_per_s"]
    assert notifier["floor_decoding_rows_equal"] is True
    # The floor that codes every record and event again left the same rows (its events are
    # checked to encode to the consumer's bytes before the clock, `codec_structs`).
    assert notifier["floor_codec_rows_equal"] is True
    assert notifier["floor_codec_per_s"] > 0
    # The auctioneer's floor: each job's auction as its last batch left it, and its deadline
    # timer, by digest.
    (auctioneer,) = [r for r in report["consumers"] if r["consumer"] == "auctioneer"]
    assert auctioneer["floor_rows_equal"] is True
    decided = auctioneer["floor_runs"][0]["read_model"]
    assert decided["auctioneer_jobs"][0] == 400 // 5  # `--events / 5` jobs
    assert auctioneer["floor_decoding_rows_equal"] is True
    assert auctioneer["floor_codec_rows_equal"] is True
    assert decided["timers"][0] == 400 // 5
    assert decided["outbox"][0] == 0
    assert auctioneer["floor_per_s"] > 0
    # The consumers added after the issue (target 1 names them too), on the listings: each
    # applied all of them, at a ratio to its own same-work loop.
    for kind in ("alerts", "reminders"):
        (later,) = [r for r in report["consumers"] if r["consumer"] == kind]
        assert later["records"] == 400
        baseline = later["same_work_baseline_per_s"]
        assert later["ratio_to_same_work"] == later["records_per_s"] / baseline
        assert later["runs"][0]["worker_cpu_s"][0] > 0
    # Alerts' floor: what it keeps of each listing, by digest, and so does the bound that codes.
    (alerts,) = [r for r in report["consumers"] if r["consumer"] == "alerts"]
    assert alerts["floor_rows_equal"] is True
    assert alerts["floor_codec_rows_equal"] is True
    assert alerts["floor_keep_rows_equal"] is True  # through alerts' own statement
    assert alerts["floor_runs"][0]["read_model"]["search_alert_listings"][0] == 400
    # Reminders' floor: each listing's facts and the timers its plan asks for, by digest, and so
    # does the floor that codes.
    (reminders,) = [r for r in report["consumers"] if r["consumer"] == "reminders"]
    assert reminders["floor_rows_equal"] is True
    assert reminders["floor_codec_rows_equal"] is True
    reminded = reminders["floor_runs"][0]["read_model"]
    assert reminded["reminder_facts"][0] == 400
    assert reminded["timers"][0] > 0
    assert reminded["outbox"][0] == 0
    # The consumers that tell people, each on a workload of its own, reported by the rows it
    # wrote against what the workload holds (the report counts the records by type).
    (deals,) = [r for r in report["consumers"] if r["consumer"] == "deals"]
    assert deals["records"] == 400
    dealt, types = deals["runs"][0]["read_model"], deals["workload_types"]
    assert dealt["deal_messages"][0] == types["market.deal.message_posted.v1"]
    assert types["market.deal.message_read.v1"] > 0
    assert dealt["deal_receipts"][0] > 0
    assert dealt["deal_notices"][0] >= 2 * deals["records"]  # the seller and the buyer at least
    # The inboxes read the notifications one notifier run issued on the matcher's proposals:
    # every notified firm has one endpoint for every kind and one member with a verified address.
    for kind in ("webhooks", "mailer"):
        (inbox,) = [r for r in report["consumers"] if r["consumer"] == kind]
        assert inbox["records"] == inbox["workload_types"]["partners.notification.issued.v1"] > 0
    (webhooks,) = [r for r in report["consumers"] if r["consumer"] == "webhooks"]
    assert webhooks["runs"][0]["read_model"]["webhook_deliveries"][0] == webhooks["records"]
    (mailer,) = [r for r in report["consumers"] if r["consumer"] == "mailer"]
    mailed = mailer["runs"][0]["read_model"]
    assert mailed["mail_deliveries"][0] > 0
    assert mailed["mail_deliveries"][0] + mailed["mail_digest_items"][0] >= mailer["records"]
    # Their floors wrote the rows a run of theirs wrote, dealt over the records, on a database
    # set up alike: every table's rows equal by digest (ids, clocks and groups left out), and
    # so for the bound that decodes every record too.
    for row in (deals, webhooks, mailer):
        assert row["floor_rows_equal"] is True, row["consumer"]
        assert row["floor_codec_rows_equal"] is True, row["consumer"]
        # The bound that writes through a statement taking repeated ids left the same rows.
        assert row["floor_keep_rows_equal"] is True, row["consumer"]
        assert row["floor_per_s"] > 0
    assert deals["floor_runs"][0]["read_model"]["deal_notices"] == dealt["deal_notices"]
    peer = rows["faststream-message"]["runs"][0]
    assert peer["settings"]["ack_policy"] == "ack"
    assert peer["transactions"] == 400  # one per message
    assert report["peer"]["rows_equal"] is True
    assert report["peer"]["ratios"]["faststream-message"] > 0


def test_mail_render_report_compares_the_registries_on_the_same_bytes() -> None:
    done = run(
        sys.executable, "-m", "loadtests.bench_mail_render", "--messages", "40", "--repeat", "2"
    )
    report = report_of(done)
    assert report["bytes_equal"] is True
    for name in ("cached registry", "standard registry"):
        assert len(report["us_per_message"][name]) == 2
        assert all(x > 0 for x in report["us_per_message"][name])
        assert len(report["process_cpu_s_per_round"][name]) == 2
    medians = report["median_us_per_message"]
    ratio = medians["standard registry"] / medians["cached registry"]
    assert report["rate_ratio_cached_over_standard"] == pytest.approx(ratio)
