"""The fault suite's private stack (infra/faults.sh): a three-node Kafka cluster and a PostgreSQL
cluster of its own, and the exchange's services as separate processes on them, which the suite
kills, restarts and scales. Nothing here touches the shared Kafka and PostgreSQL."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

from consumers import analytics, auctioneer, auditor, matcher, notifier, projector, webhooks
from marketplace.kafka import make_admin
from marketplace.settings import ROOT, Settings
from schemas.topics import TOPICS

FAULTS = str(ROOT / "infra" / "faults.sh")
CLUSTER = str(ROOT / "infra" / "kafka-cluster.sh")
POSTGRES = str(ROOT / "infra" / "postgres.sh")
MARKETPLACE = str(Path(sys.executable).parent / "marketplace")

# Consumer groups and the topics each reads, from the consumers themselves (their services run
# them under these group ids).
GROUP_TOPICS: dict[str, tuple[str, ...]] = {
    matcher.GROUP: (matcher.TOPIC,),
    auctioneer.CREATOR_GROUP: (auctioneer.CREATOR_TOPIC,),
    auctioneer.GROUP: (auctioneer.TOPIC,),
    notifier.GROUP: tuple(notifier.TOPICS),
    webhooks.GROUP: (webhooks.TOPIC,),
    projector.GROUP: tuple(projector.TOPICS),
    analytics.GROUP: tuple(analytics.TOPICS),
    auditor.GROUP: tuple(auditor.TOPICS),
}
# The service of each group has the group's name.
CONSUMERS = tuple(GROUP_TOPICS)


def private_env() -> dict[str, str]:
    """The environment that points the project's scripts and services at the private stack."""
    out = subprocess.run([FAULTS, "env"], capture_output=True, text=True, check=True, timeout=30)
    env = dict(os.environ)
    for line in out.stdout.splitlines():
        name, _, value = line.partition("=")
        env[name] = value
    # Never the shared stack: its defaults are 15432 and 19092.
    assert env["MARKETPLACE_PG_PORT"] != "15432"
    assert env["MARKETPLACE_LOCAL_DIR"].endswith("/faults")
    assert env["MARKETPLACE_KAFKA_BOOTSTRAP"]
    return env


def faults(action: str) -> str:
    """infra/faults.sh ACTION, in the caller's own environment (the script derives the private
    one from it)."""
    return script(dict(os.environ), FAULTS, action)


def script(env: dict[str, str], *args: str, timeout: float = 300) -> str:
    done = subprocess.run(
        list(args), env=env, capture_output=True, text=True, check=False, timeout=timeout
    )
    assert done.returncode == 0, f"{' '.join(args)} failed:\n{done.stderr[-3000:]}"
    return done.stdout


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def eventually(
    check: Callable[[], Awaitable[bool]], limit_s: float, what: str, every_s: float = 0.5
) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit_s
    while True:
        with contextlib.suppress(Exception):
            if await check():
                return
        if loop.time() > deadline:
            raise TimeoutError(f"not within {limit_s:.0f} s: {what}")
        await asyncio.sleep(every_s)


@dataclass
class Instance:
    service: str
    n: int
    port: int
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def name(self) -> str:
        return f"{self.service}#{self.n}"


@dataclass
class Stack:
    """The services running on the private stack, as processes the suite controls."""

    env: dict[str, str]
    logs: Path
    instances: dict[tuple[str, int], Instance] = field(default_factory=dict)
    faults: list[str] = field(default_factory=list)
    _started: int = 0

    @property
    def settings(self) -> Settings:
        return Settings.from_env(self.env)

    @property
    def pidfile(self) -> Path:
        return Path(self.env["MARKETPLACE_LOCAL_DIR"]) / "services.pids"

    def start(self, service: str, n: int = 1, extra: dict[str, str] | None = None) -> Instance:
        assert (service, n) not in self.instances, f"{service}#{n} already runs"
        self._started += 1
        port = free_port()
        env = self.env | {"MARKETPLACE_METRICS_PORT": str(port)} | (extra or {})
        log = self.logs / f"{service}-{n}.{self._started}.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                [MARKETPLACE, "run", service],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        with self.pidfile.open("a") as pids:
            pids.write(f"{process.pid}\n")
        instance = Instance(service, n, port, process, log)
        self.instances[(service, n)] = instance
        return instance

    def kill(self, service: str, n: int = 1) -> None:
        """SIGKILL, as a crash or the OOM killer would."""
        instance = self.instances.pop((service, n))
        instance.process.send_signal(signal.SIGKILL)
        instance.process.wait(30)

    async def stop(self, service: str, n: int = 1) -> None:
        """SIGTERM, as an orchestrator scaling down: the instance leaves its group cleanly."""
        instance = self.instances.pop((service, n))
        instance.process.send_signal(signal.SIGTERM)
        try:
            await asyncio.to_thread(instance.process.wait, 60)
        except subprocess.TimeoutExpired:
            instance.process.kill()
            instance.process.wait(30)
            raise AssertionError(f"{instance.name} did not stop within 60 s of SIGTERM") from None
        assert instance.process.returncode == 0, (
            f"{instance.name} exited with {instance.process.returncode}:\n{tail(instance.log)}"
        )

    def stop_all(self) -> None:
        for instance in self.instances.values():
            if instance.process.poll() is None:
                instance.process.send_signal(signal.SIGKILL)
        for instance in self.instances.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                instance.process.wait(30)
        self.instances.clear()

    def dead(self) -> list[str]:
        """Instances that exited although nobody stopped them, with the end of their logs."""
        return [
            f"{i.name} exited with {i.process.returncode}:\n{tail(i.log)}"
            for i in self.instances.values()
            if i.process.poll() is not None
        ]

    async def ready(self, service: str, n: int = 1, limit_s: float = 120) -> None:
        """Until the instance's /readyz says its consumers poll and reach PostgreSQL."""
        instance = self.instances[(service, n)]

        async def check() -> bool:
            assert instance.process.poll() is None, (
                f"{instance.name} exited with {instance.process.returncode}:\n{tail(instance.log)}"
            )
            timeout = aiohttp.ClientTimeout(total=5)
            async with (
                aiohttp.ClientSession(timeout=timeout) as http,
                http.get(f"http://127.0.0.1:{instance.port}/readyz") as r,
            ):
                return r.status == 200

        loop = asyncio.get_running_loop()
        deadline = loop.time() + limit_s
        while True:
            try:
                if await check():
                    return
            except (aiohttp.ClientError, TimeoutError, OSError):
                pass
            if loop.time() > deadline:
                raise TimeoutError(
                    f"{instance.name} not ready in {limit_s:.0f} s:\n{tail(instance.log)}"
                )
            await asyncio.sleep(0.5)

    async def all_ready(self, limit_s: float = 180) -> None:
        await asyncio.gather(*(self.ready(s, n, limit_s) for s, n in list(self.instances)))

    # The infrastructure.
    def cluster(self, *args: str) -> str:
        if args[:1] == ("start",):
            # A broker restarted on a busy 2-core machine has exited once during its start-up
            # (CI, stop 23); the restart is the stage, not the thing tested: one more start,
            # with the first failure kept in the test's output.
            first = subprocess.run(
                [CLUSTER, *args],
                env=self.env,
                capture_output=True,
                text=True,
                check=False,
                timeout=300,
            )
            if first.returncode == 0:
                return first.stdout
            sys.stderr.write(f"{CLUSTER} {' '.join(args)} failed once:\n{first.stderr[-3000:]}\n")
        return script(self.env, CLUSTER, *args)

    def postgres(self, *args: str) -> str:
        return script(self.env, POSTGRES, *args)


def tail(path: Path, lines: int = 25) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError as exc:
        return f"(no log: {exc})"


async def fully_replicated(settings: Settings) -> bool:
    """Every partition of the exchange's topics has all three replicas in sync."""
    admin = make_admin(settings)
    await admin.start()
    try:
        described = await admin.describe_topics([spec.name for spec in TOPICS])
    finally:
        await admin.close()
    return all(
        d.get("partitions") and all(len(p.get("isr", [])) == 3 for p in d["partitions"])
        for d in described
    )
