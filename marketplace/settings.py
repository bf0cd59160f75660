"""One typed settings object, read from MARKETPLACE_* environment variables.

Every field's environment variable is ``MARKETPLACE_`` + the field name in upper case. The defaults
match the local stack started by ``marketplace up`` (infra/kafka.sh, infra/postgres.sh), so a laptop
needs no configuration; a deployment sets MARKETPLACE_KAFKA_BOOTSTRAP, MARKETPLACE_DATABASE_URL (the
services' role) and MARKETPLACE_MIGRATE_DATABASE_URL (the role that owns the tables).
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Literal, get_args, get_origin
from urllib.parse import urlsplit, urlunsplit

from marketplace.core.shards import parse_plan
from marketplace.core.webhooks import parse_networks

PREFIX = "MARKETPLACE_"
ROOT = Path(__file__).resolve().parent.parent

LogFormat = Literal["auto", "json", "console"]
LogLevel = Literal["debug", "info", "warning", "error"]
MailSecurity = Literal["none", "starttls", "tls"]


class SettingsError(ValueError):
    """An environment variable holds a value the exchange cannot use."""


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Settings:
    # Where the runtime files of the local stack go (git-ignored).
    local_dir: Path = ROOT / ".local"
    # Local servers started by `marketplace up` (ignored when the URL/bootstrap below is set).
    kafka_port: int = 19092
    kafka_controller_port: int = 19093
    pg_port: int = 15432
    db_name: str = "marketplace"
    # Two roles (docs/operators/security.md): db_user owns the tables and runs the migrations;
    # the services connect as db_app_user, which owns nothing and may only read and write rows.
    db_user: str = "marketplace"
    db_password: str = "marketplace"  # noqa: S105 - loopback-only dev server; set it elsewhere
    db_app_user: str = "marketplace_app"
    db_app_password: str = "marketplace_app"  # noqa: S105 - loopback-only dev server, as above
    # Set these to use servers you already run; `up` then starts nothing of its own.
    # database_url is the services' (application) role; migrate_database_url the owner role that
    # `marketplace migrate` uses (empty: database_url, one role for both, as before).
    kafka_bootstrap: str = ""
    database_url: str = ""
    migrate_database_url: str = ""
    # Topic layout (decision 1): one broker locally; 3 and 2 on a production cluster.
    topic_partitions: int = 6
    topic_replication: int = 1
    topic_min_insync: int = 1
    # Consumer runtime (decision 4).
    consumer_max_batch: int = 500
    consumer_poll_ms: int = 200
    consumer_session_timeout_ms: int = 10000
    consumer_max_retries: int = 5
    # How many partitions' batches of one fetch a consumer applies side by side, each in its own
    # transaction on its own connection (1: one after another). On a 2-core machine that also
    # runs PostgreSQL, 1 was faster for every consumer measured (loadtests/reports/
    # consumers-20261130T091935Z.json); more pays where PostgreSQL has cores to spare or is far.
    consumer_partition_concurrency: int = 1
    # Whether the consumers' connections plan every statement for its parameters
    # (plan_cache_mode = force_custom_plan) instead of reusing a generic plan. On: a generic
    # plan made while the outbox was nearly empty deleted each batch's published rows by
    # scanning the whole table, dead rows and all (issue #18; docs/operators/capacity.md).
    consumer_custom_plans: bool = True
    outbox_sweep_interval_s: float = 5.0
    outbox_sweep_min_age_s: float = 10.0
    db_pool_max: int = 10
    scheduler_interval_s: float = 0.5
    # Kafka clients (issue #18): how long a consumer's fetch may wait at the broker for data to
    # arrive, and how many bytes make the broker answer at once. aiokafka's default wait of
    # 500 ms delays a busy consumer at every hop: a partition whose batch it has just applied is
    # fetched again only after the node's fetch in flight (for its other partitions) returns. A
    # lower wait costs idle consumers more empty fetches: 10 idle consumers on 24 partitions cost
    # the broker 0.06-0.07 CPU seconds per second at 10-25 ms and 0.04-0.08 at 100-500 ms, within
    # the noise of a shared machine (loadtests/reports/idle-fetch-20261130T092951Z.json), so the
    # default is 25 ms (a fetch that waits is answered as soon as a record arrives, so the wait
    # only bounds an idle consumer's empty fetches). How long a producer lingers to fill a batch
    # before sending it: 0 sends a lone record at once, and records sent while a request is in
    # flight still go out together in the next one. A linger holds every record on the way to a
    # webhook for that long at each of the matcher's and the notifier's outboxes (and the API's
    # 202), and the runtime waits for the acks before its next batch: at 20 listings/s, 0 instead
    # of 5 took the notifier's hop from 36 to 21 ms p50 (21 to 16 in a second run) and the next
    # from 45 to 18 (21 to 14) with the same CPU per listing (loadtests/reports/
    # pipeline-latency-20261130T233221Z and T234723Z, A/B runs on a loaded machine); so 0.
    consumer_fetch_max_wait_ms: int = 25
    consumer_fetch_min_bytes: int = 1
    producer_linger_ms: int = 0
    # The services' event loop: "uvloop" (libuv, in C) or "asyncio" (the standard library's).
    event_loop: str = "uvloop"
    # The services' garbage collector (issue #18): whether the objects made while the process
    # started (modules, classes, the settings) are frozen out of every later collection
    # (gc.freeze), and how many new container objects start a young collection (CPython's
    # default is 700). With CPython's defaults the services' full collections took 50-590 ms of
    # wall time under load, the matcher's the longest, and each held up every record behind it.
    # At 95 listings/s through the API, frozen with 20,000: webhook p99 175 and 188 ms against
    # 324 and 207, the matcher's hop 77-78 against 95-195, CPU per listing within 1 %
    # (loadtests/reports/pipeline-latency-20261201T112156Z; docs/operators/capacity.md has two
    # more runs). The higher threshold alone did not shorten the tail.
    gc_freeze: bool = True
    gc_threshold0: int = 20000
    # Matching (ARCHITECTURE "The domain"): how long partners have to answer a proposal, the
    # vehicle whose emission factor estimates transport, and the operator's estimate of
    # transport cost per tonne-km by currency ("EUR=0.12,SEK=1.35"); a currency without an
    # estimate is not matched. Real figures replace the estimate once a carrier wins the job.
    match_answer_period_s: float = 48 * 3600
    estimate_vehicle: str = "articulated_truck"
    transport_cost_per_tkm: str = "EUR=0.12,SEK=1.35,BGN=0.23"
    # Busy material families split into geographic cells (#17, marketplace/core/shards.py):
    # the families ("plastics,organics"; empty: none), and the latitude and longitude cuts of
    # the grid in degrees ("50"; "20,26"). A split family's records go from the matcher to
    # market.cells, where the cells consumer matches them, cell by cell. Split a family before
    # its first listing: one with listings on the family key needs a rebuild (not built yet).
    split_families: str = ""
    split_lat_cuts: str = "50"
    split_lon_cuts: str = ""
    # Transport auctions (marketplace/core/auction.py): how long carriers may bid on a new job,
    # how much later a failed auction's one reopening closes, and the early close (0: off; N:
    # decide as soon as N quotes within the reserve are in).
    auction_bidding_period_s: float = 24 * 3600
    auction_reopen_period_s: float = 24 * 3600
    auction_early_close_quotes: int = 0
    # Webhooks (decision 7): attempts and backoff (doubling from the base up to the cap, with
    # jitter), the time one attempt may take, how many attempts run at once in all and per
    # endpoint (so a slow endpoint never holds up the others), how long a rotated secret still
    # signs, and the networks the operator allows as targets although they are private, loopback
    # or link-local (comma-separated CIDRs, e.g. "127.0.0.0/8,::1/128"; empty: public only).
    webhook_max_attempts: int = 8
    webhook_retry_base_s: float = 10.0
    webhook_retry_cap_s: float = 3600.0
    webhook_timeout_s: float = 10.0
    webhook_max_in_flight: int = 64
    webhook_endpoint_concurrency: int = 2
    webhook_secret_overlap_s: float = 24 * 3600
    webhook_allow_networks: str = ""
    # Whether the webhook worker's transactions (the inbox's delivery rows with its offsets, the
    # dispatcher's leases and outcomes) wait for their WAL to be flushed to disk before they count
    # as committed (PostgreSQL's synchronous_commit). Off by default: delivery is at least once,
    # and what a PostgreSQL crash can lose (the last few hundred ms of these commits) is only sent
    # again, with the same webhook-id: the inbox reads its records again from its stored offset,
    # which the lost rows' transaction had not moved yet. Off saves two disk flushes on the way to
    # each webhook (the inbox's commit and the dispatcher's lease): at 20 listings/s the hop from
    # the inbox's transaction to the receiver went from 43 to 26 ms p50 (22 to 19 in a second
    # run; the linger at 0 too, reports as for producer_linger_ms). The consumers whose decisions
    # are the record of the exchange (matcher, notifier, ...) always flush.
    webhook_synchronous_commit: bool = False
    # Whether the inbox hands a new delivery straight to its own process's dispatcher when that
    # has a free slot for the endpoint: written already leased, sent once the batch commits,
    # with no claim, no NOTIFY and no wake-up (issue #18). Off: every delivery goes through
    # PostgreSQL's claim, as retries always do.
    webhook_hand_over: bool = True
    # The operator's keys that encrypt webhook signing secrets at rest (a file of Fernet keys,
    # newest first; default <local_dir>/webhooks/secret-keys, created by `marketplace up` when
    # missing; `marketplace webhooks rotate-key` replaces the key and re-encrypts every secret).
    webhook_secret_keys: str = ""
    # HTTP services.
    http_host: str = "127.0.0.1"
    http_port: int = 8080
    # Every service process serves /metrics, /healthz and /readyz here (the next free port up
    # when several instances share a host).
    metrics_port: int = 9464
    api_max_body_bytes: int = 65536
    # Per API key: a steady rate and a burst on top of it; beyond that, 429 with Retry-After.
    api_rate_per_s: float = 20.0
    api_rate_burst: int = 40
    # The pages for people (#19): htmx and axe-core as npm ships them (infra/web.sh installs
    # them); session cookies carry Secure unless this is false (plain http on a laptop, where
    # browsers treat 127.0.0.1 and localhost as secure anyway).
    web_assets_dir: Path = ROOT / "infra" / "web" / "node_modules"
    web_secure_cookies: bool = True
    # The address in links sent to people (invitations, password resets).
    web_base_url: str = "http://127.0.0.1:8080"
    # Logging: auto = readable on a terminal, JSON lines otherwise.
    log_format: LogFormat = "auto"
    log_level: LogLevel = "info"
    migrations_dir: Path = ROOT / "infra" / "migrations"
    # The audit log (decision 8): the operator's Ed25519 signing key (PKCS#8 PEM; default
    # <local_dir>/audit/signing-key.pem, created by `marketplace up` when missing) and how often
    # the auditor signs a checkpoint of the chain heads.
    audit_signing_key: str = ""
    audit_checkpoint_interval_s: float = 60.0
    # Retention (#21): how many days personal data is kept after it stops being needed;
    # `marketplace people retention` deletes what is older (run it daily, e.g. from cron).
    # Sessions after they ended or expired; failed sign-ins; an account's security events;
    # one-time and verification links after they expired or were used; e-mail as sent (and
    # digest items once sent); webhook deliveries once delivered or dead; deal-room texts and
    # attachments after they were posted (commercial correspondence: ten years by default);
    # accounts disabled this long are erased as `marketplace people erase` does.
    retention_sessions_days: int = 30
    retention_login_failures_days: int = 30
    retention_account_events_days: int = 365
    retention_links_days: int = 30
    retention_mail_days: int = 90
    retention_webhook_deliveries_days: int = 30
    retention_deal_room_days: int = 3650
    retention_disabled_accounts_days: int = 730
    # The folder with DejaVuSans.ttf and DejaVuSans-Bold.ttf, embedded in the PDF period reports
    # (Debian's fonts-dejavu-core, installed by infra/fonts.sh, which `make setup` runs).
    pdf_font_dir: Path = Path("/usr/share/fonts/truetype/dejavu")
    # E-mail to people (#20): the SMTP relay the mailer sends through (security: none, starttls
    # or tls; username and password empty: no login), the sender, and how often a message is
    # tried when the relay is away before it is dead-lettered (backoff doubling from base to cap).
    # The defaults suit the local sink that `make run` starts (docs/operators/mail.md).
    mail_smtp_host: str = "127.0.0.1"
    mail_smtp_port: int = 8025
    mail_smtp_security: MailSecurity = "none"
    mail_smtp_username: str = ""
    mail_smtp_password: str = ""
    mail_smtp_timeout_s: float = 30.0
    mail_from: str = "Circular materials exchange <noreply@exchange.localhost>"
    mail_max_attempts: int = 8
    mail_retry_base_s: float = 30.0
    mail_retry_cap_s: float = 3600.0
    mail_max_in_flight: int = 4
    # DKIM (RFC 6376): the private key (PEM file) and selector the mailer signs with, for the
    # domain of mail_from unless mail_dkim_domain names another; no key: messages go unsigned.
    mail_dkim_key: str = ""
    mail_dkim_selector: str = "exchange"
    mail_dkim_domain: str = ""
    # The key (a file of random bytes; default <local_dir>/mail/link-key, made when missing) that
    # signs the one-click unsubscribe links in every message.
    mail_link_key: str = ""
    # A local SMTP sink for a laptop (`make run` turns it on; never in production): `marketplace
    # run all` then also listens on mail_smtp_host:mail_smtp_port (loopback only) and writes every
    # message it receives as a file to mail_sink_dir (default <local_dir>/mail/inbox).
    mail_sink: bool = False
    mail_sink_dir: str = ""

    @property
    def kafka_servers(self) -> str:
        return self.kafka_bootstrap or f"127.0.0.1:{self.kafka_port}"

    @property
    def dsn(self) -> str:
        """Where the services connect: the application role."""
        if self.database_url:
            return self.database_url
        return (
            f"postgresql://{self.db_app_user}:{self.db_app_password}"
            f"@127.0.0.1:{self.pg_port}/{self.db_name}"
        )

    @property
    def migrate_dsn(self) -> str:
        """Where `marketplace migrate` connects: the role that owns the tables."""
        if self.migrate_database_url:
            return self.migrate_database_url
        if self.database_url:
            return self.database_url
        return (
            f"postgresql://{self.db_user}:{self.db_password}"
            f"@127.0.0.1:{self.pg_port}/{self.db_name}"
        )

    @property
    def audit_key_path(self) -> Path:
        return (
            Path(self.audit_signing_key)
            if self.audit_signing_key
            else (self.local_dir / "audit" / "signing-key.pem")
        )

    @property
    def webhook_keys_path(self) -> Path:
        return (
            Path(self.webhook_secret_keys)
            if self.webhook_secret_keys
            else (self.local_dir / "webhooks" / "secret-keys")
        )

    @property
    def mail_sink_path(self) -> Path:
        return (
            Path(self.mail_sink_dir) if self.mail_sink_dir else (self.local_dir / "mail" / "inbox")
        )

    @property
    def mail_link_key_path(self) -> Path:
        return (
            Path(self.mail_link_key)
            if self.mail_link_key
            else (self.local_dir / "mail" / "link-key")
        )

    @property
    def uses_local_kafka(self) -> bool:
        return not self.kafka_bootstrap

    @property
    def uses_local_postgres(self) -> bool:
        return not self.database_url

    def redacted(self) -> dict[str, str]:
        """The settings as text, with passwords hidden, safe for logs and `status`."""
        out: dict[str, str] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name in ("db_password", "db_app_password", "mail_smtp_password"):
                value = "***"
            elif f.name in ("database_url", "migrate_database_url") and value:
                value = redact_url(value)
            out[f.name] = str(value)
        out["dsn"] = redact_url(self.dsn)
        out["migrate_dsn"] = redact_url(self.migrate_dsn)
        out["kafka_servers"] = self.kafka_servers
        return out

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        hints = typing.get_type_hints(cls)
        values: dict[str, object] = {}
        for f in dataclasses.fields(cls):
            name = PREFIX + f.name.upper()
            raw = env.get(name)
            if raw is None or raw == "":
                continue
            values[f.name] = _convert(name, raw.strip(), hints[f.name])
        settings = cls(**values)  # type: ignore[arg-type]
        settings._check()
        return settings

    def _check(self) -> None:
        for name in ("kafka_port", "kafka_controller_port", "pg_port", "http_port", "metrics_port"):
            port = getattr(self, name)
            if not 0 < port < 65536:
                raise SettingsError(f"{PREFIX}{name.upper()}={port}: not a TCP port (1-65535)")
        positive = (
            "topic_partitions",
            "topic_replication",
            "topic_min_insync",
            "consumer_max_batch",
            "consumer_partition_concurrency",
            "consumer_poll_ms",
            "consumer_session_timeout_ms",
            "consumer_fetch_min_bytes",
            "db_pool_max",
            "api_max_body_bytes",
            "api_rate_burst",
            "gc_threshold0",  # 0 would turn automatic collection off
            *(f.name for f in dataclasses.fields(self) if f.name.startswith("retention_")),
        )
        for name in positive:
            if getattr(self, name) < 1:
                raise SettingsError(f"{PREFIX}{name.upper()} must be at least 1")
        if self.event_loop not in ("uvloop", "asyncio"):
            raise SettingsError(f"{PREFIX}EVENT_LOOP={self.event_loop!r}: choose uvloop or asyncio")
        try:
            parse_plan(self.split_families, self.split_lat_cuts, self.split_lon_cuts)
        except ValueError as exc:
            raise SettingsError(f"{PREFIX}SPLIT_FAMILIES / _LAT_CUTS / _LON_CUTS: {exc}") from None
        for name in ("auction_bidding_period_s", "auction_reopen_period_s"):
            if getattr(self, name) <= 0:
                raise SettingsError(f"{PREFIX}{name.upper()} must be positive")
        for name in (
            "webhook_max_attempts",
            "webhook_max_in_flight",
            "webhook_endpoint_concurrency",
        ):
            if getattr(self, name) < 1:
                raise SettingsError(f"{PREFIX}{name.upper()} must be at least 1")
        for name in ("webhook_retry_base_s", "webhook_timeout_s"):
            if getattr(self, name) <= 0:
                raise SettingsError(f"{PREFIX}{name.upper()} must be positive")
        if self.webhook_retry_cap_s < self.webhook_retry_base_s:
            raise SettingsError(
                f"{PREFIX}WEBHOOK_RETRY_CAP_S cannot be below {PREFIX}WEBHOOK_RETRY_BASE_S"
            )
        if self.webhook_secret_overlap_s < 0:
            raise SettingsError(f"{PREFIX}WEBHOOK_SECRET_OVERLAP_S cannot be negative")
        try:
            parse_networks(self.webhook_allow_networks)
        except ValueError as exc:
            raise SettingsError(f"{PREFIX}WEBHOOK_ALLOW_NETWORKS: {exc}") from None
        for name in ("consumer_fetch_max_wait_ms", "producer_linger_ms"):
            if getattr(self, name) < 0:
                raise SettingsError(f"{PREFIX}{name.upper()} cannot be negative")
        if self.auction_early_close_quotes < 0:
            raise SettingsError(f"{PREFIX}AUCTION_EARLY_CLOSE_QUOTES must be 0 (off) or more")
        if self.api_rate_per_s <= 0:
            raise SettingsError(f"{PREFIX}API_RATE_PER_S must be positive")
        if self.topic_min_insync > self.topic_replication:
            raise SettingsError(
                f"{PREFIX}TOPIC_MIN_INSYNC ({self.topic_min_insync}) cannot exceed "
                f"{PREFIX}TOPIC_REPLICATION ({self.topic_replication})"
            )
        for name in ("database_url", "migrate_database_url"):
            url = getattr(self, name)
            if url and urlsplit(url).scheme not in ("postgres", "postgresql"):
                raise SettingsError(f"{PREFIX}{name.upper()} must be a postgresql:// URL")
        if self.migrate_database_url and not self.database_url:
            raise SettingsError(
                f"{PREFIX}MIGRATE_DATABASE_URL needs {PREFIX}DATABASE_URL (the services' role)"
            )
        for name in ("mail_max_attempts", "mail_max_in_flight", "mail_smtp_port"):
            if getattr(self, name) < 1:
                raise SettingsError(f"{PREFIX}{name.upper()} must be at least 1")
        if not 0 < self.mail_retry_base_s <= self.mail_retry_cap_s:
            raise SettingsError(
                f"{PREFIX}MAIL_RETRY_BASE_S must be positive and at most {PREFIX}MAIL_RETRY_CAP_S"
            )
        if "@" not in self.mail_from:
            raise SettingsError(f"{PREFIX}MAIL_FROM must hold an e-mail address")
        if self.mail_sink and not is_loopback(self.mail_smtp_host):
            raise SettingsError(
                f"{PREFIX}MAIL_SINK listens on loopback only: {PREFIX}MAIL_SMTP_HOST is"
                f" {self.mail_smtp_host!r} (a relay of yours: turn the sink off)"
            )


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def redact_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def _convert(name: str, raw: str, hint: object) -> object:
    if isinstance(hint, types.UnionType):
        hint = next(a for a in get_args(hint) if a is not type(None))
    if get_origin(hint) is Literal:
        allowed = [str(a) for a in get_args(hint)]
        if raw.lower() not in allowed:
            raise SettingsError(f"{name}={raw!r}: expected one of {', '.join(allowed)}")
        return raw.lower()
    try:
        if hint is int:
            return int(raw)
        if hint is float:
            return float(raw)
        if hint is bool:
            if raw.lower() in ("1", "true", "yes", "on"):
                return True
            if raw.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError(raw)
    except ValueError:
        kind = getattr(hint, "__name__", str(hint))
        raise SettingsError(f"{name}={raw!r}: expected {kind}") from None
    if hint is Path:
        return Path(raw)
    return raw
