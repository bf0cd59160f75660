"""`marketplace up` twice is safe, `status` tells what runs where, and `down` leaves no process.

This starts a second, throw-away Kafka and PostgreSQL on other ports and folders, so the stack
the rest of the suite uses is not disturbed."""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from marketplace.db import load_migrations
from marketplace.settings import ROOT, Settings

pytestmark = pytest.mark.integration

KAFKA_PORT, CONTROLLER_PORT, PG_PORT = 29092, 29093, 25432
MIGRATIONS = len(load_migrations(Settings.from_env({}).migrations_dir))


def port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) == 0


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is gone in every way that matters here.
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().split(")")[-1].split()[0] == "Z")


@pytest.fixture
def stack_dir(settings: Settings) -> Iterator[Path]:
    path = ROOT / ".local" / f"stack-test-{uuid.uuid4().hex[:8]}"
    yield path
    env = stack_env(settings, path)
    subprocess.run([sys.executable, "-m", "marketplace.app.cli", "down"], env=env, check=False)
    shutil.rmtree(path, ignore_errors=True)


def stack_env(settings: Settings, path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MARKETPLACE_")}
    env.update(
        MARKETPLACE_LOCAL_DIR=str(path),
        MARKETPLACE_KAFKA_LIBS=str(settings.local_dir / "kafka" / "libs"),
        MARKETPLACE_KAFKA_PORT=str(KAFKA_PORT),
        MARKETPLACE_KAFKA_CONTROLLER_PORT=str(CONTROLLER_PORT),
        MARKETPLACE_KAFKA_HEAP="512m",
        MARKETPLACE_PG_PORT=str(PG_PORT),
        MARKETPLACE_TOPIC_PARTITIONS="2",
        MARKETPLACE_LOG_FORMAT="json",
    )
    return env


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "marketplace.app.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )


@pytest.mark.timeout(400)
def test_up_twice_status_and_down(settings: Settings, stack_dir: Path) -> None:
    assert not port_open(KAFKA_PORT), f"port {KAFKA_PORT} is taken; free it for this test"
    assert not port_open(PG_PORT), f"port {PG_PORT} is taken; free it for this test"
    env = stack_env(settings, stack_dir)

    first = cli(env, "up")
    assert first.returncode == 0, first.stderr
    assert "market.listings" in first.stdout
    assert "(created)" in first.stdout
    assert f"{MIGRATIONS} applied now" in first.stdout
    kafka_pid = int((stack_dir / "kafka" / "kafka.pid").read_text())
    # infra/postgres.sh keeps the cluster in the stack's folder, or, when the postgres user
    # cannot enter that folder, in /var/lib/postgresql under a hash of the folder's path.
    fallback = Path("/var/lib/postgresql") / (
        "marketplace-" + hashlib.sha256(str(stack_dir).encode()).hexdigest()[:12]
    )
    pg_pid_file = next(stack_dir.rglob("postmaster.pid"), None) or fallback / "data/postmaster.pid"
    pg_pid = int(pg_pid_file.read_text().split()[0])
    assert alive(kafka_pid)
    assert alive(pg_pid)

    second = cli(env, "up")
    assert second.returncode == 0, second.stderr
    assert "already running" in second.stderr
    assert "(created)" not in second.stdout
    assert "0 applied now" in second.stdout
    assert int((stack_dir / "kafka" / "kafka.pid").read_text()) == kafka_pid

    status = cli(env, "status")
    assert status.returncode == 0, status.stdout + status.stderr
    assert f"kafka: running pid {kafka_pid}, bootstrap 127.0.0.1:{KAFKA_PORT}" in status.stdout
    assert f"postgres: running on 127.0.0.1:{PG_PORT}" in status.stdout
    assert f"postgres: reachable, {MIGRATIONS} migrations applied" in status.stdout

    down = cli(env, "down")
    assert down.returncode == 0, down.stderr
    assert not alive(kafka_pid), "Kafka still running after down"
    assert not alive(pg_pid), "PostgreSQL still running after down"
    assert not port_open(KAFKA_PORT)
    assert not port_open(CONTROLLER_PORT)
    assert not port_open(PG_PORT)

    after = cli(env, "status")
    assert after.returncode == 3
    assert "kafka: stopped" in after.stdout
    assert "postgres: stopped" in after.stdout
