"""`marketplace people ...`: the association's staff manage people's accounts from the shell.
Invitation and reset links are printed here, for the operator to hand over (and sent by e-mail
with --mail); they work once, invitations for 7 days and resets for an hour.

Also here: a person's export and erasure, the retention periods applied (`people retention`),
and an organisation's export and erasure (`marketplace partners export|erase`, whose parsers
`add_organisation_actions` adds to `marketplace partners`)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

from marketplace.settings import Settings


def add_parser(sub: Any) -> None:
    people = sub.add_parser("people", help="people's accounts: invite, reset, list, disable")
    actions = people.add_subparsers(dest="action", required=True)
    invite = actions.add_parser(
        "invite", help="create a person in an organisation and print their invitation link"
    )
    invite.add_argument("email")
    invite.add_argument("--name", required=True, help="the person's name as pages show it")
    invite.add_argument("--partner", required=True, help="the organisation's partner id")
    invite.add_argument("--role", choices=("admin", "member", "read-only"), default="member")
    invite.add_argument("--locale", choices=("en", "bg", "sv"), default="en")
    invite.add_argument(
        "--mail", action="store_true", help="also send the link by e-mail (the mailer service)"
    )
    staff = actions.add_parser(
        "operator", help="create an account for the association's staff and print its link"
    )
    staff.add_argument("email")
    staff.add_argument("--name", required=True)
    staff.add_argument("--locale", choices=("en", "bg", "sv"), default="en")
    reset = actions.add_parser("reset-link", help="print a one-time password reset link")
    reset.add_argument("email")
    listing = actions.add_parser("list", help="the members of an organisation")
    listing.add_argument("--partner", required=True)
    disable = actions.add_parser("disable", help="stop a person signing in; ends their sessions")
    disable.add_argument("email")
    exported = actions.add_parser(
        "export", help="print as JSON everything the exchange holds about a person"
    )
    exported.add_argument("email")
    erased = actions.add_parser(
        "erase", help="erase a person's account and data (events keep only a pseudonymous id)"
    )
    erased.add_argument("email")
    kept = actions.add_parser(
        "retention",
        help="delete personal data older than its retention period (MARKETPLACE_RETENTION_*)",
    )
    kept.add_argument(
        "--dry-run", action="store_true", help="count what would be deleted, delete nothing"
    )


def add_organisation_actions(actions: Any) -> None:
    """`marketplace partners export|erase`: an organisation's data."""
    exported = actions.add_parser(
        "export", help="print as JSON everything the exchange holds about an organisation"
    )
    exported.add_argument("partner_id")
    erased = actions.add_parser(
        "erase",
        help="erase an organisation's personal data: its people, deal-room texts and files,"
        " webhooks, notifications, its data key (name and texts sealed in events); revoke its"
        " keys, withdraw its open listings, revoke its consents and deactivate it (the trading"
        " record stays)",
    )
    erased.add_argument("partner_id")
    erased.add_argument("--yes", action="store_true", help="do it (without: say what it would do)")


def organisation_command(settings: Settings, args: argparse.Namespace) -> int:
    return asyncio.run(_organisation(settings, args))


async def _organisation(settings: Settings, args: argparse.Namespace) -> int:
    import orjson

    from marketplace.app import privacy
    from marketplace.db import connect
    from marketplace.kafka import make_producer
    from marketplace.secretbox import KeyRing, SecretKeyError, load_ring

    conn = await connect(settings)
    try:
        if args.action == "export":
            try:
                ring: KeyRing | None = load_ring(settings.webhook_keys_path)
            except SecretKeyError:
                ring = None  # the events' sealed fields stay sealed in the export
            found = await privacy.export_organisation(conn, args.partner_id, ring)
            if found is None:
                print(f"marketplace partners: no organisation {args.partner_id}", file=sys.stderr)
                return 1
            print(orjson.dumps(found, option=orjson.OPT_INDENT_2).decode())
            return 0
        if not args.yes:
            people = await conn.fetchval(
                "SELECT count(*) FROM people WHERE partner_id = $1", args.partner_id
            )
            print(
                f"marketplace partners erase {args.partner_id} would erase {people} person(s)"
                " with their accounts, mail and deal-room messages, the organisation's deal-room"
                " texts and files, webhook endpoints and notifications, revoke its API keys,"
                " destroy its data key (its name and texts in the events become unreadable),"
                " withdraw its open listings, revoke its consents and deactivate it."
                " Export first (marketplace partners export), then add --yes.",
                file=sys.stderr,
            )
            return 2
        erased = await privacy.erase_organisation(conn, args.partner_id)
        if erased is None:
            print(f"marketplace partners: no organisation {args.partner_id}", file=sys.stderr)
            return 1
        counts = ", ".join(f"{k} {v}" for k, v in erased.counts.items())
        print(f"{args.partner_id}: erased ({counts})")
        producer = make_producer(settings, client_id="marketplace-cli")
        await producer.start()
        try:
            withdrawn = await privacy.withdraw_listings(
                conn, producer, args.partner_id, source="/cli/partners/erase"
            )
            stopped = await privacy.revoke_and_deactivate(
                conn, producer, args.partner_id, source="/cli/partners/erase"
            )
        finally:
            await producer.stop()
        print(f"{args.partner_id}: {len(withdrawn)} open listing(s) withdrawn")
        print(f"{args.partner_id}: {len(stopped.consents)} consent(s) revoked")
        if stopped.deactivated:
            print(f"{args.partner_id}: deactivated")
        return 0
    finally:
        await conn.close()


def command(settings: Settings, args: argparse.Namespace) -> int:
    from marketplace.accounts import AccountError

    try:
        return asyncio.run(_run(settings, args))
    except AccountError as exc:
        print(f"marketplace people {args.action}: {exc}", file=sys.stderr)
        return 2


async def _run(settings: Settings, args: argparse.Namespace) -> int:
    import orjson

    from marketplace import accounts
    from marketplace.db import connect

    base = settings.web_base_url.rstrip("/") + "/app"
    missing = f"marketplace people: no account with the e-mail {getattr(args, 'email', '')}"
    conn = await connect(settings)
    try:
        if args.action in ("invite", "operator"):
            operator = args.action == "operator"
            person = await accounts.create_person(
                conn,
                partner_id=None if operator else args.partner,
                email=args.email,
                display_name=args.name,
                role="operator" if operator else args.role,
                locale=args.locale,
            )
            token = await accounts.issue_link(conn, person.person_id, "invite")
            if getattr(args, "mail", False):
                from marketplace.mail.outbox import queue_account_mail

                await queue_account_mail(
                    conn,
                    settings,
                    person_id=person.person_id,
                    purpose="account.invite",
                    token=token,
                )
            print(f"{person.email} ({person.role}): {base}/invite/{token}")
            return 0
        if args.action == "reset-link":
            found = await accounts.reset_request(conn, args.email)
            if found is None:
                print(missing, file=sys.stderr)
                return 1
            print(f"{found[0].email}: {base}/reset/{found[1]}")
            return 0
        if args.action == "list":
            for p in await accounts.members(conn, args.partner):
                print(f"{p.email}\t{p.role}\t{p.display_name}")
            return 0
        if args.action == "disable":
            ended = await accounts.disable(conn, args.email)
            if ended is None:
                print(missing, file=sys.stderr)
                return 1
            print(f"{args.email}: disabled, {ended} session(s) ended")
            return 0
        if args.action == "export":
            found_data = await accounts.export(conn, args.email)
            if found_data is None:
                print(missing, file=sys.stderr)
                return 1
            print(orjson.dumps(found_data, option=orjson.OPT_INDENT_2).decode())
            return 0
        if args.action == "retention":
            from datetime import UTC, datetime

            from marketplace.app.privacy import apply_retention

            counts = await apply_retention(conn, settings, datetime.now(UTC), dry_run=args.dry_run)
            verb = "would delete" if args.dry_run else "deleted"
            for what, n in counts.items():
                print(f"{verb} {n}\t{what}")
            return 0
        if args.action == "erase":
            erased = await accounts.erase(conn, args.email)
            if erased is None:
                print(missing, file=sys.stderr)
                return 1
            print(f"{args.email}: erased; events name the person only as {erased}")
            return 0
        raise AssertionError(args.action)
    finally:
        await conn.close()
