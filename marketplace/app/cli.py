"""`marketplace`: the one command for operating the exchange (decision 9)."""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from marketplace.app import audit_cli, keys_cli, people_cli
from marketplace.logs import configure_logging, get_logger
from marketplace.runtime import loop as event_loop
from marketplace.settings import ROOT, Settings, SettingsError

if TYPE_CHECKING:
    from marketplace.db import Migration

log = get_logger(__name__)


def _script_env(settings: Settings) -> dict[str, str]:
    """The shell scripts read the same MARKETPLACE_* variables; hand them the resolved values."""
    env = dict(os.environ)
    env.update(
        MARKETPLACE_LOCAL_DIR=str(settings.local_dir),
        MARKETPLACE_KAFKA_PORT=str(settings.kafka_port),
        MARKETPLACE_KAFKA_CONTROLLER_PORT=str(settings.kafka_controller_port),
        MARKETPLACE_PG_PORT=str(settings.pg_port),
        MARKETPLACE_DB_NAME=settings.db_name,
        MARKETPLACE_DB_USER=settings.db_user,
        MARKETPLACE_DB_PASSWORD=settings.db_password,
        MARKETPLACE_DB_APP_USER=settings.db_app_user,
        MARKETPLACE_DB_APP_PASSWORD=settings.db_app_password,
        MARKETPLACE_KAFKA_BOOTSTRAP=settings.kafka_bootstrap,
        MARKETPLACE_DATABASE_URL=settings.database_url,
        MARKETPLACE_MIGRATE_DATABASE_URL=settings.migrate_database_url,
    )
    return env


def _script(settings: Settings, name: str, action: str, *, check: bool = True) -> int:
    path = ROOT / "infra" / name
    proc = subprocess.run([str(path), action], env=_script_env(settings), check=False)  # noqa: S603
    if check and proc.returncode != 0:
        raise SystemExit(f"{name} {action} failed with exit code {proc.returncode}")
    return proc.returncode


async def _migrate(settings: Settings) -> list[Migration]:
    """The SQL migrations and the application role's grants (marketplace/db.py), then every
    webhook secret still stored in clear (from before encryption came in) encrypted with the
    operator's key (docs/operators/security.md)."""
    from marketplace import webhooks
    from marketplace.db import connect, migrate_database
    from marketplace.secretbox import SecretKeyError, load_ring

    applied = await migrate_database(settings)
    conn = await connect(settings, dsn=settings.migrate_dsn)
    try:
        clear = await webhooks.count_unsealed(conn)
        if clear:
            try:
                ring = load_ring(settings.webhook_keys_path)
            except SecretKeyError as exc:
                raise SystemExit(
                    f"migrate: {clear} webhook secret(s) stored in clear; {exc}"
                ) from None
            sealed = await webhooks.seal_secrets(conn, ring)
            print(
                f"webhooks: encrypted {sealed.sealed} stored secret(s) with key {ring.current_id}"
            )
    finally:
        await conn.close()
    return applied


async def _prepare(settings: Settings) -> None:
    from marketplace.kafka import ensure_topics, wait_for_kafka

    applied = await _migrate(settings)
    print(f"postgres: migrations up to date ({len(applied)} applied now)")
    await wait_for_kafka(settings)
    for topic in await ensure_topics(settings):
        print(
            f"kafka: topic {topic.name:<24} {topic.partitions} partitions"
            + (" (created)" if topic.created else "")
        )


def _ensure_audit_key(settings: Settings) -> None:
    """The auditor signs checkpoints with the operator's key; a local stack gets its own."""
    from marketplace.audit.signing import create_key, fingerprint, public_bytes

    path = settings.audit_key_path
    if not path.exists():
        key = create_key(path)
        print(f"audit: created signing key {path} (key {fingerprint(public_bytes(key))})")


def _ensure_webhook_keys(settings: Settings) -> None:
    """Webhook secrets are stored encrypted with the operator's keys; a stack gets its own."""
    from marketplace.secretbox import create_ring

    path = settings.webhook_keys_path
    if not path.exists():
        ring = create_ring(path)
        print(f"webhooks: created secret key file {path} (key {ring.current_id})")


def cmd_up(settings: Settings, _args: argparse.Namespace) -> int:
    _script(settings, "kafka.sh", "up")
    _script(settings, "postgres.sh", "up")
    _ensure_webhook_keys(settings)
    asyncio.run(_prepare(settings))
    _ensure_audit_key(settings)
    print("up: Kafka", settings.kafka_servers, "· PostgreSQL", settings.redacted()["dsn"])
    return 0


def cmd_down(settings: Settings, _args: argparse.Namespace) -> int:
    rc_kafka = _script(settings, "kafka.sh", "down", check=False)
    rc_pg = _script(settings, "postgres.sh", "down", check=False)
    return 1 if rc_kafka or rc_pg else 0


async def _status_checks(settings: Settings) -> list[str]:
    from marketplace.db import connect
    from marketplace.kafka import make_admin

    lines = []
    try:
        # The migration ledger is the owner's (the services' role cannot read it).
        conn = await asyncio.wait_for(
            connect(settings, timeout_s=2, dsn=settings.migrate_dsn), timeout=5
        )
        try:
            rows = (
                await conn.fetch("SELECT version, name FROM schema_migrations ORDER BY version")
                if await conn.fetchval("SELECT to_regclass('schema_migrations') IS NOT NULL")
                else []
            )
        finally:
            await conn.close()
        lines.append(f"postgres: reachable, {len(rows)} migrations applied")
    except (OSError, TimeoutError) as exc:
        lines.append(f"postgres: not reachable ({exc})")
    admin = make_admin(settings)
    try:
        await asyncio.wait_for(admin.start(), timeout=5)
        topics = sorted(t for t in await admin.list_topics() if not t.startswith("__"))
        lines.append(f"kafka: reachable at {settings.kafka_servers}, {len(topics)} topics")
    except Exception as exc:  # noqa: BLE001 - status reports any failure instead of raising
        lines.append(f"kafka: not reachable at {settings.kafka_servers} ({type(exc).__name__})")
    finally:
        await admin.close()
    return lines


def cmd_status(settings: Settings, _args: argparse.Namespace) -> int:
    rc = _script(settings, "kafka.sh", "status", check=False)
    rc |= _script(settings, "postgres.sh", "status", check=False)
    for line in asyncio.run(_status_checks(settings)):
        print(line)
    return 0 if rc == 0 else 3


def cmd_migrate(settings: Settings, _args: argparse.Namespace) -> int:
    applied = asyncio.run(_migrate(settings))
    print(f"applied {len(applied)} migrations: {[f'{m.version:04d}_{m.name}' for m in applied]}")
    return 0


def cmd_topics(settings: Settings, _args: argparse.Namespace) -> int:
    from marketplace.kafka import ensure_topics

    for t in asyncio.run(ensure_topics(settings)):
        print(f"{t.name}\t{t.partitions}\t{'created' if t.created else 'exists'}")
    return 0


def cmd_run(settings: Settings, args: argparse.Namespace) -> int:
    from marketplace.app.services import SERVICES, local_extras, run_services, simulator

    every = args.service == "all"
    names = sorted(SERVICES) if every else [args.service]
    extra = local_extras(settings) if every else {}
    if args.simulate:
        extra["simulator"] = simulator(args.simulate)
    event_loop.run(run_services(settings, names, extra), settings)
    return 0


def cmd_report(settings: Settings, args: argparse.Namespace) -> int:
    from marketplace.app.report import FORMATS, build
    from marketplace.db import connect

    async def make() -> bytes:
        conn = await connect(settings)
        try:
            report = await build(conn, args.since, args.until, partner_id=args.partner)
        finally:
            await conn.close()
        return FORMATS[args.format](report)

    if args.until <= args.since:
        print("report: --to must come after --from", file=sys.stderr)
        return 2
    if args.format == "pdf":  # before the rebuild, which can take a while
        from marketplace.pdf import FontMissing, font_files

        try:
            font_files(settings.pdf_font_dir)
        except FontMissing as exc:
            print(f"report: {exc}", file=sys.stderr)
            return 1
    data = asyncio.run(make())
    out = args.out or Path(
        f"report-{args.since.date().isoformat()}-{args.until.date().isoformat()}.{args.format}"
    )
    out.write_bytes(data)
    print(f"report: wrote {out} ({len(data):,} bytes)")
    return 0


def cmd_dlq(settings: Settings, args: argparse.Namespace) -> int:
    from datetime import UTC, datetime

    from marketplace import dlq

    async def run() -> int:
        if args.action == "list":
            letters = await dlq.read(settings, args.group, args.limit)
            for d in letters:
                when = datetime.fromtimestamp(d.timestamp_ms / 1000, UTC).isoformat(
                    timespec="seconds"
                )
                print(
                    f"{d.id:<10} {when}  {d.group:<24} {d.source_topic}/{d.source_partition}"
                    f"@{d.source_offset}  {d.reason[:100]}"
                )
            print(f"dlq: {len(letters)} dead letter(s)", file=sys.stderr)
            return 0
        letter = await dlq.find(settings, args.id)
        if letter is None:
            print(f"dlq: no dead letter {args.id}", file=sys.stderr)
            return 1
        if args.action == "show":
            print(f"id:      {letter.id}")
            print(f"group:   {letter.group}")
            print(
                f"from:    {letter.source_topic}/{letter.source_partition}@{letter.source_offset}"
            )
            print(f"reason:  {letter.reason}")
            key = letter.key.decode("utf-8", errors="replace") if letter.key else None
            print(f"key:     {key}")
            for name, value in letter.headers:
                print(f"header:  {name}={value.decode('utf-8', errors='replace')}")
            print(f"value:   {letter.value.decode('utf-8', errors='replace')}")
            return 0
        topic, partition, offset = await dlq.replay(settings, letter)
        print(f"dlq: replayed {letter.id} to {topic}/{partition}@{offset}")
        return 0

    try:
        return asyncio.run(run())
    except ValueError as exc:
        print(f"dlq: {exc}", file=sys.stderr)
        return 2


def _webhook_keys(settings: Settings, args: argparse.Namespace) -> int:
    """keygen, rotate-key, seal: the keys that encrypt webhook secrets at rest."""
    from marketplace import accounts, webhooks
    from marketplace.db import connect
    from marketplace.secretbox import create_ring, load_ring
    from marketplace.translate import shredding

    path = settings.webhook_keys_path
    if args.action == "keygen":
        if path.exists():
            print(f"keygen: {path} exists already (current key {load_ring(path).current_id})")
        else:
            print(f"keygen: wrote {path} (key {create_ring(path).current_id})")
        return 0

    async def run() -> int:
        conn = await connect(settings)
        try:
            if args.action == "seal":
                ring = load_ring(path)
                done = await webhooks.seal_secrets(conn, ring)
                print(f"seal: {done.sealed} secret(s) now under key {ring.current_id}")
                bad = done.unreadable
            else:
                rotation = await webhooks.rotate_key(
                    conn,
                    path,
                    grace_s=args.grace_s,
                    others=(accounts.seal_totp, shredding.reseal),
                )
                print(
                    f"rotate-key: key {rotation.new_id} replaces {', '.join(rotation.old_ids)};"
                    f" {rotation.sealed} secret(s) re-encrypted"
                )
                bad = list(rotation.unreadable)
            if bad:
                print(
                    f"webhooks: {len(bad)} endpoint(s) hold a secret no key reads: "
                    f"{', '.join(bad)} (the old keys stay in {path})",
                    file=sys.stderr,
                )
                return 1
            return 0
        finally:
            await conn.close()

    return asyncio.run(run())


def cmd_webhooks(settings: Settings, args: argparse.Namespace) -> int:
    from marketplace import webhooks
    from marketplace.db import connect
    from marketplace.secretbox import SecretKeyError

    if args.action in ("keygen", "rotate-key", "seal"):
        try:
            return _webhook_keys(settings, args)
        except SecretKeyError as exc:
            print(f"webhooks: {exc}", file=sys.stderr)
            return 2

    async def run() -> int:
        conn = await connect(settings)
        try:
            if args.action == "dead-letters":
                letters = await webhooks.dead_letters(conn, args.partner, args.limit)
                for d in letters:
                    print(
                        f"{d['delivery_id']}  {d['dead_at']}  partner {d['partner_id']}"
                        f"  endpoint {d['endpoint_id']}  {d['kind']}  {d['attempts']} attempts"
                        f"  {(d['last_error'] or '')[:80]}"
                    )
                print(f"webhooks: {len(letters)} dead letter(s)", file=sys.stderr)
                return 0
            if await webhooks.redeliver(conn, args.delivery_id):
                print(f"webhooks: {args.delivery_id} is pending again")
                return 0
            print(
                f"webhooks: no dead letter {args.delivery_id} to a current endpoint",
                file=sys.stderr,
            )
            return 1
        finally:
            await conn.close()

    return asyncio.run(run())


def cmd_mail(settings: Settings, args: argparse.Namespace) -> int:
    from marketplace.db import connect
    from marketplace.mail import outbox as mail_outbox

    async def run() -> int:
        conn = await connect(settings)
        try:
            if args.action == "dead-letters":
                letters = await mail_outbox.dead_mail(conn, args.limit)
                for d in letters:
                    print(
                        f"{d['message_id']}  {d['dead_at']}  person {d['person_id']}"
                        f"  {d['kind']}  {d['attempts']} attempts  {(d['last_error'] or '')[:80]}"
                    )
                print(f"mail: {len(letters)} dead letter(s)", file=sys.stderr)
                return 0
            if args.all:
                n = await mail_outbox.resend_all(conn)
                print(f"mail: {n} dead message(s) pending again (account e-mails left)")
                return 0
            try:
                await mail_outbox.resend(conn, args.message_id)
            except mail_outbox.ResendRefused as exc:
                print(f"mail: {exc}", file=sys.stderr)
                return 1
            print(f"mail: {args.message_id} is pending again")
            return 0
        finally:
            await conn.close()

    return asyncio.run(run())


def cmd_simulate(settings: Settings, args: argparse.Namespace) -> int:
    from producers.simulator.driver import NotLoopback, simulate

    api = args.api or f"http://{settings.http_host}:{settings.http_port}"
    try:
        stats = asyncio.run(
            simulate(
                settings,
                api_url=api,
                rate=args.rate,
                duration_s=args.duration,
                seed=args.seed,
                smes=args.smes,
                carriers=args.carriers,
                max_actions=args.max_actions,
            )
        )
    except (NotLoopback, ValueError) as exc:
        print(f"simulate: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 1 if stats.counts["failed"] else 0


async def _partners(settings: Settings, args: argparse.Namespace) -> int:
    from marketplace.db import connect
    from marketplace.kafka import make_producer
    from marketplace.partners import register_partner, revoke_keys, rotate_key
    from marketplace.secretbox import key_file

    conn = await connect(settings)
    try:
        if args.action == "add":
            producer = make_producer(settings, client_id="marketplace-cli")
            await producer.start()
            try:
                partner_id, key = await register_partner(
                    conn,
                    producer,
                    name=args.name,
                    role=args.role,
                    country=args.country,
                    region=args.region,
                    sector=args.sector,
                    registered_by="operator-cli",
                    source="/cli/partners",
                    ring=key_file(settings.webhook_keys_path).ring(),
                )
            finally:
                await producer.stop()
            print(f"partner_id: {partner_id}")
            print(f"api_key:    {key}")
            print("The key is shown once; store it now.", file=sys.stderr)
        elif args.action == "rotate-key":
            key = await rotate_key(conn, args.partner_id)
            print(f"api_key:    {key}")
            print("Older keys of this partner are revoked. The key is shown once.", file=sys.stderr)
        else:
            count = await revoke_keys(conn, args.partner_id, args.key_id)
            print(f"revoked {count} key(s)")
    finally:
        await conn.close()
    return 0


def cmd_partners(settings: Settings, args: argparse.Namespace) -> int:
    import msgspec

    from schemas.partners import PartnerRegistered

    if args.action in ("export", "erase"):
        return people_cli.organisation_command(settings, args)
    if args.action == "add":
        # Validate with the contract before anything is published.
        try:
            msgspec.convert(
                {
                    "type": "partners.partner.registered.v1",
                    "partner_id": "x",
                    "name": args.name,
                    "role": args.role,
                    "country": args.country,
                    "region": args.region,
                    "sector": args.sector,
                    "registered_by": "operator-cli",
                },
                PartnerRegistered,
            )
        except msgspec.ValidationError as exc:
            print(f"marketplace partners add: {exc}", file=sys.stderr)
            return 2
    try:
        return asyncio.run(_partners(settings, args))
    except LookupError as exc:
        print(f"marketplace partners: {exc}", file=sys.stderr)
        return 1


def cmd_rebuild(settings: Settings, args: argparse.Namespace) -> int:
    if args.action == "split":
        from marketplace.app import split

        return split.command(settings, args)
    from marketplace.app import rekey

    return rekey.command(settings, args)


def cmd_settings(settings: Settings, _args: argparse.Namespace) -> int:
    for key, value in settings.redacted().items():
        print(f"{key}={value}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from marketplace.app.services import SERVICES

    parser = argparse.ArgumentParser(
        prog="marketplace", description="Operate the circular materials exchange."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser(
        "up", help="install if needed and start Kafka and PostgreSQL, migrate, create topics"
    )
    sub.add_parser("down", help="stop the local Kafka and PostgreSQL")
    sub.add_parser("status", help="say what runs where")
    sub.add_parser("migrate", help="apply pending SQL migrations")
    sub.add_parser("topics", help="create missing topics")
    sub.add_parser("settings", help="print the effective settings (passwords hidden)")
    partners = sub.add_parser("partners", help="register partners and manage their API keys")
    actions = partners.add_subparsers(dest="action", required=True)
    add = actions.add_parser("add", help="register a partner and print its first API key")
    add.add_argument("--name", required=True)
    add.add_argument(
        "--role", required=True, choices=["sme", "logistics", "auditor", "facilitator", "operator"]
    )
    add.add_argument("--country", required=True, help="ISO 3166 alpha-2, e.g. BG or SE")
    add.add_argument("--region", help="NUTS code, e.g. BG411")
    add.add_argument("--sector", help="NACE division or class, e.g. 13 or 13.92")
    rotate = actions.add_parser("rotate-key", help="issue a new key and revoke the others")
    rotate.add_argument("partner_id")
    revoke = actions.add_parser("revoke", help="revoke a partner's keys (or one of them)")
    revoke.add_argument("partner_id")
    revoke.add_argument("--key-id")
    people_cli.add_organisation_actions(actions)
    run = sub.add_parser("run", help="run a service in the foreground until SIGTERM/Ctrl-C")
    run.add_argument("service", choices=[*sorted(SERVICES), "all"])
    run.add_argument(
        "--simulate",
        type=float,
        metavar="RATE",
        default=0.0,
        help="also drive the API with the market simulator at RATE actions per second",
    )
    dlq = sub.add_parser("dlq", help="dead letters: list, show and replay them")
    dlq_actions = dlq.add_subparsers(dest="action", required=True)
    dlq_list = dlq_actions.add_parser("list", help="the dead letters, oldest first")
    dlq_list.add_argument("--group", help="only those of this consumer group")
    dlq_list.add_argument("--limit", type=int, default=1000, help="the newest N (default 1000)")
    for name, text in (
        ("show", "one dead letter: reason, origin, headers, bytes"),
        ("replay", "publish the original record again to its topic (every group sees it)"),
    ):
        action = dlq_actions.add_parser(name, help=text)
        action.add_argument("id", help="PARTITION:OFFSET on ops.deadletters, from `dlq list`")
    hooks = sub.add_parser(
        "webhooks", help="webhook deliveries (dead letters, redelivery) and the secrets' keys"
    )
    hooks_actions = hooks.add_subparsers(dest="action", required=True)
    hooks_dead = hooks_actions.add_parser(
        "dead-letters", help="deliveries that failed every attempt, newest first"
    )
    hooks_dead.add_argument("--partner", help="only this partner's")
    hooks_dead.add_argument("--limit", type=int, default=200)
    hooks_again = hooks_actions.add_parser(
        "redeliver", help="send a dead-lettered delivery again (attempts from zero)"
    )
    hooks_again.add_argument("delivery_id")
    hooks_actions.add_parser(
        "keygen", help="create the key file that encrypts webhook secrets, if it does not exist"
    )
    hooks_rotate = hooks_actions.add_parser(
        "rotate-key",
        help="a new key for webhook secrets: re-encrypt every stored secret, then drop the old",
    )
    hooks_rotate.add_argument(
        "--grace-s",
        type=float,
        default=5.0,
        help="wait between the passes for processes still encrypting with the old key (5)",
    )
    hooks_actions.add_parser(
        "seal", help="re-encrypt every stored webhook secret with the key file's first key"
    )
    mail = sub.add_parser("mail", help="e-mail the mailer gave up on: list it, send it again")
    mail_actions = mail.add_subparsers(dest="action", required=True)
    mail_dead = mail_actions.add_parser(
        "dead-letters", help="messages that failed every attempt, newest first"
    )
    mail_dead.add_argument("--limit", type=int, default=200)
    mail_again = mail_actions.add_parser(
        "resend", help="send a dead message again (attempts from zero; not account e-mails)"
    )
    which = mail_again.add_mutually_exclusive_group(required=True)
    which.add_argument("message_id", nargs="?", help="its Message-ID, from `mail dead-letters`")
    which.add_argument("--all", action="store_true", help="every dead message")
    report = sub.add_parser(
        "report", help="the period report for a funding authority, rebuilt from the audit log"
    )
    report.add_argument("--from", dest="since", type=audit_cli.when, required=True)
    report.add_argument("--to", dest="until", type=audit_cli.when, required=True)
    report.add_argument("--format", choices=["csv", "html", "pdf"], default="html")
    report.add_argument("--out", type=Path, help="default: report-FROM-TO.FORMAT")
    report.add_argument("--partner", help="one SME's own figures")
    sim = sub.add_parser(
        "simulate", help="drive the running API with a seeded market of SMEs and carriers"
    )
    sim.add_argument("--rate", type=float, default=1.0, help="actions per second (default 1)")
    sim.add_argument(
        "--duration", type=float, default=300.0, help="seconds (default 300; 0: until Ctrl-C)"
    )
    sim.add_argument("--max-actions", type=int, default=100_000, help="stop after this many")
    sim.add_argument("--seed", type=int, default=1, help="same seed, same market")
    sim.add_argument("--smes", type=int, default=60)
    sim.add_argument("--carriers", type=int, default=6)
    sim.add_argument("--api", help="the API's URL, loopback only (default: from settings)")
    rebuild = sub.add_parser("rebuild", help="rebuild consumer state for a new routing")
    rebuilds = rebuild.add_subparsers(dest="action", required=True)
    rekey = rebuilds.add_parser(
        "rekey", help="move the matcher's books from the sub-chapter key to the family key"
    )
    rekey.add_argument("--dry-run", action="store_true", help="check and report; change nothing")
    rekey.add_argument("--group", default="matcher", help="the matcher's consumer group")
    rekey.add_argument(
        "--follower",
        action="append",
        help="a group that must have read the market topics to their end first (repeatable;"
        " default: projector, analytics, notifier, auditor, job-creator)",
    )
    split = rebuilds.add_parser(
        "split",
        help="move the families MARKETPLACE_SPLIT_FAMILIES names from the matcher's book into"
        " their geographic cells",
    )
    split.add_argument("--dry-run", action="store_true", help="do it all and roll it back")
    split.add_argument("--group", default="matcher", help="the matcher's consumer group")
    split.add_argument("--cells-group", default="cells", help="the cells consumer's group")
    split.add_argument(
        "--follower",
        action="append",
        help="a group that must have read the market topics to their end first (repeatable;"
        " default: projector, analytics, notifier, auditor, job-creator)",
    )
    audit_cli.add_parser(sub)
    people_cli.add_parser(sub)
    keys_cli.add_parser(sub)
    return parser


COMMANDS = {
    "up": cmd_up,
    "down": cmd_down,
    "status": cmd_status,
    "migrate": cmd_migrate,
    "topics": cmd_topics,
    "run": cmd_run,
    "settings": cmd_settings,
    "partners": cmd_partners,
    "audit": audit_cli.command,
    "people": people_cli.command,
    "keys": keys_cli.command,
    "simulate": cmd_simulate,
    "report": cmd_report,
    "rebuild": cmd_rebuild,
    "dlq": cmd_dlq,
    "webhooks": cmd_webhooks,
    "mail": cmd_mail,
}


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        print(f"marketplace: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings)
    return COMMANDS[args.command](settings, args)


if __name__ == "__main__":
    sys.exit(main())
