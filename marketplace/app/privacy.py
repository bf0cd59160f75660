"""An organisation's data (#21 item 8): everything the exchange holds about it, exported as JSON
(its right of access) and its personal data erased; and the retention periods applied.

What an organisation's export holds is found, not listed: every table of the exchange with a
column that names a partner (`PARTNER_COLUMNS`) gives its rows that name this one, so a table a
later migration adds joins the export by itself; secrets and their hashes are withheld
(`WITHHELD`). Then the people of the organisation (each as `marketplace people export` gives
them) and the events of the audit log that name it.

Erasing an organisation erases each of its people (marketplace/accounts.py `erase_person_rows`:
account, sessions, links, mail, the deal-room texts and files they wrote), the deal-room texts
and files the organisation posted with an API key, its webhook endpoints (addresses, sealed
secrets) and their deliveries, its notifications, and revokes its API keys; it destroys the
organisation's data key (crypto-shredding, marketplace/translate/shredding.py), so that its
name, legal data, listing texts and the texts it wrote, sealed in the events, cannot be read
any more, and overwrites the read models' copies of them; then (`withdraw_listings`,
`revoke_and_deactivate`) it withdraws the organisation's open listings, revokes the consents it
gave or was given, and deactivates it, with the ordinary events. What stays is the trading
record (listings, matches, jobs, invoices, and the events on the log, which carry no personal
data in clear: people by a pseudonymous id, message texts and files by their SHA-256 only,
the rest sealed), so every chain of the audit log still verifies."""

from __future__ import annotations

import base64
import json
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
from aiokafka import AIOKafkaProducer

from marketplace import accounts
from marketplace.core.ids import derived_id
from marketplace.db import Conn
from marketplace.events import to_message
from marketplace.kafka import publish
from marketplace.secretbox import KeyRing
from marketplace.settings import Settings
from marketplace.translate import shredding
from schemas.base import Event
from schemas.facilitators import ConsentRevoked
from schemas.listings import OfferWithdrawn, RequestWithdrawn
from schemas.partners import PartnerUpdated
from schemas.registry import EVENT_TYPES

# Who acts in the events an erasure publishes (withdrawals, revocations, the deactivation).
ERASURE_ACTOR = "operator-erasure"
# Columns that name a partner, in any table.
PARTNER_COLUMNS = (
    "partner_id",
    "owner_id",
    "seller_id",
    "buyer_id",
    "carrier_id",
    "author_id",
    "winner_id",
    "facilitator_id",
    "issuer_id",
    "customer_id",
    "on_behalf_of",
    "confirmed_by",
)
# Columns never exported: secrets and their hashes.
WITHHELD = frozenset(
    {
        "secret_hash",
        "password_hash",
        "totp_sealed",
        "secret",
        "previous_secret",
        "token_hash",
        "csrf_token",
        "request_hash",
    }
)
# Tables read otherwise (people, the audit log) or holding nothing of anyone's (the runtime's).
NOT_SCANNED = frozenset(
    {"people", "audit_log", "audit_checkpoints", "schema_migrations", "consumer_offsets", "outbox"}
)


def _ident(name: str) -> str:
    """A table or column name from PostgreSQL's catalogue, quoted for SQL."""
    return '"' + name.replace('"', '""') + '"'


def _plain(value: Any) -> Any:
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode()
    if isinstance(value, uuid.UUID):
        return str(value)
    return value


async def _tables(conn: Conn) -> dict[str, list[tuple[str, str]]]:
    """Every table of schema public with its columns (name, type), in the catalogue's order;
    the audit log's monthly partitions are reached through `audit_log`."""
    rows = await conn.fetch(
        "SELECT c.table_name, c.column_name, c.data_type FROM information_schema.columns c"
        " JOIN information_schema.tables t USING (table_schema, table_name)"
        " WHERE c.table_schema = 'public' AND t.table_type = 'BASE TABLE'"
        " AND c.table_name !~ '^audit_log_[0-9]{4}_[0-9]{2}$'"
        " ORDER BY c.table_name, c.ordinal_position"
    )
    out: dict[str, list[tuple[str, str]]] = {}
    for r in rows:
        out.setdefault(r["table_name"], []).append((r["column_name"], r["data_type"]))
    return out


async def export_organisation(
    conn: Conn, partner_id: str, ring: KeyRing | None = None
) -> dict[str, Any] | None:
    """Everything the exchange holds about the organisation, or None when it has none of it.
    With the operator's key `ring`, the audit log's events have their sealed fields opened
    (crypto-shredding: the organisation's own data, in clear as it gave it, or "[erased]")."""
    partner = await conn.fetchrow("SELECT * FROM partners WHERE partner_id = $1", partner_id)
    tables: dict[str, list[dict[str, Any]]] = {}
    for table, columns in (await _tables(conn)).items():
        names = [c for c, _ in columns]
        naming = [c for c in names if c in PARTNER_COLUMNS]
        if table in NOT_SCANNED or not naming:
            continue
        shown = ", ".join(_ident(c) for c in names if c not in WITHHELD)
        where = " OR ".join(f"{_ident(c)} = $1" for c in naming)
        # Names from the catalogue, quoted; the partner id is a parameter.
        sql = f"SELECT {shown} FROM {_ident(table)} WHERE {where}"  # noqa: S608
        rows = await conn.fetch(sql, partner_id)
        if rows:
            tables[table] = [
                {k: _json_value(k, v, dict(columns)) for k, v in dict(r).items()} for r in rows
            ]
    people = []
    for email in await conn.fetch(
        "SELECT email FROM people WHERE partner_id = $1 ORDER BY created_at", partner_id
    ):
        found = await accounts.export(conn, email["email"])
        if found is not None:
            people.append(found)
    events = await conn.fetch(
        "SELECT topic, partition, kafka_offset, ce_id, ce_type, ce_time, data FROM audit_log"
        " WHERE refs @> ARRAY[$1::text] ORDER BY recorded_at, topic, partition, kafka_offset",
        partner_id,
    )
    if partner is None and not tables and not people and not events:
        return None
    return {
        "partner_id": partner_id,
        "exported_from": "the circular materials exchange",
        "tables": tables,
        "people": people,
        "events": await _opened_events(conn, ring, [dict(e) for e in events]),
    }


async def _opened_events(
    conn: Conn, ring: KeyRing | None, events: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """The audit log's records as JSON, each sealed event opened when `ring` is given."""
    out = [{k: (json.loads(v) if k == "data" and v else v) for k, v in e.items()} for e in events]
    sealed = [e for e in out if isinstance(e["data"], dict) and e["data"].get("sealed") is not None]
    if ring is None or not sealed:
        return out
    keys = await shredding.keys_for(
        conn, ring, {str(e["data"]["sealed"].get("subject")) for e in sealed}
    )
    for e in sealed:
        kind = EVENT_TYPES.get(e["ce_type"])
        if kind is None:
            continue
        try:
            event = msgspec.convert(e["data"], type=kind)
        except msgspec.ValidationError:
            continue  # shown as the log has it
        e["data"] = msgspec.to_builtins(shredding.open_event(event, keys))
    return out


def _json_value(name: str, value: Any, types: dict[str, str]) -> Any:
    if types.get(name) == "jsonb" and isinstance(value, str):
        return json.loads(value)
    return _plain(value)


@dataclass
class Erased:
    """What an erasure deleted (or revoked), by table."""

    partner_id: str
    counts: dict[str, int] = field(default_factory=dict)
    person_ids: list[str] = field(default_factory=list)


def _count(status: str) -> int:
    """The row count of an asyncpg status tag such as 'DELETE 3' or 'UPDATE 1'."""
    return int(status.rsplit(" ", 1)[-1])


async def erase_organisation(conn: Conn, partner_id: str) -> Erased | None:
    """Erases the organisation's personal data (see the module's docstring) in one transaction;
    None when the exchange knows no such organisation."""
    done = Erased(partner_id)
    async with conn.transaction():
        known = await conn.fetchval(
            "SELECT EXISTS (SELECT 1 FROM partners WHERE partner_id = $1)"
            " OR EXISTS (SELECT 1 FROM api_keys WHERE partner_id = $1)"
            " OR EXISTS (SELECT 1 FROM people WHERE partner_id = $1)",
            partner_id,
        )
        if not known:
            return None
        # Crypto-shredding: the organisation's data key goes first, so that its name, legal data,
        # listing texts and the texts it wrote, sealed on Kafka and in the audit log, can no
        # longer be read. Deleting the row waits for a consumer's batch that holds the key (FOR
        # SHARE); taken before any other lock here, so that such a batch never waits for us.
        done.counts["data keys"] = await shredding.destroy(conn, [shredding.PARTNER + partner_id])
        people = await conn.fetch(
            "SELECT person_id, email FROM people WHERE partner_id = $1 FOR UPDATE", partner_id
        )
        for person in people:
            await conn.execute(
                "DELETE FROM login_failures WHERE subject = $1",
                f"account:{person['email'].lower()}",
            )
            await accounts.erase_person_rows(conn, person["person_id"])
            done.person_ids.append(str(person["person_id"]))
        done.counts["people"] = len(people)
        steps = (
            (
                "deal_files",
                "DELETE FROM deal_files WHERE message_id IN"
                " (SELECT message_id FROM deal_texts WHERE author_id = $1)",
            ),
            ("deal_texts", "DELETE FROM deal_texts WHERE author_id = $1"),
            ("webhook_deliveries", "DELETE FROM webhook_deliveries WHERE partner_id = $1"),
            ("webhook_endpoints", "DELETE FROM webhook_endpoints WHERE partner_id = $1"),
            ("notifications", "DELETE FROM notifications WHERE partner_id = $1"),
            ("deal_notices", "DELETE FROM deal_notices WHERE partner_id = $1"),
            (
                "api_keys revoked",
                "UPDATE api_keys SET revoked_at = now()"
                " WHERE partner_id = $1 AND revoked_at IS NULL",
            ),
        )
        for name, sql in steps:
            done.counts[name] = _count(await conn.execute(sql, partner_id))
        # The read models' copies of its sealed fields, overwritten in the same transaction.
        for table, n in (await shredding.scrub(conn, partner_id)).items():
            done.counts[f"{table} scrubbed"] = n
    return done


async def withdraw_listings(
    conn: Conn, producer: AIOKafkaProducer, partner_id: str, *, source: str
) -> list[str]:
    """Publishes the ordinary withdrawal of each listing of the organisation still open in the
    read model, so that the matchers stop proposing it; the ids of those withdrawn. Each
    withdrawal's event id is derived from the listing, so running it again (the projector not
    having caught up yet) repeats the same event, which changes nothing a second time."""
    rows = await conn.fetch(
        "SELECT listing_id, kind, material_code FROM listings"
        " WHERE owner_id = $1 AND status = 'open' ORDER BY listing_id",
        partner_id,
    )
    now = datetime.now(UTC)
    for r in rows:
        event: OfferWithdrawn | RequestWithdrawn
        if r["kind"] == "offer":
            event = OfferWithdrawn(
                offer_id=r["listing_id"],
                owner_id=partner_id,
                actor_id=ERASURE_ACTOR,
                material_code=r["material_code"],
            )
        else:
            event = RequestWithdrawn(
                request_id=r["listing_id"],
                owner_id=partner_id,
                actor_id=ERASURE_ACTOR,
                material_code=r["material_code"],
            )
        message = to_message(
            event,
            event_id=derived_id(f"{r['listing_id']}/withdrawn-at-erasure"),
            source=source,
            time=now,
            subject=r["listing_id"],
        )
        await publish(
            producer, message.topic, message.value, key=message.key, headers=message.headers
        )
    return [r["listing_id"] for r in rows]


@dataclass
class Withdrawn:
    """What an erasure published beyond its listings: consents revoked, the deactivation."""

    consents: list[tuple[str, str]] = field(default_factory=list)  # (SME, facilitator)
    deactivated: bool = False


async def revoke_and_deactivate(
    conn: Conn, producer: AIOKafkaProducer, partner_id: str, *, source: str
) -> Withdrawn:
    """Publishes, with the ordinary events, the revocation of every consent still granted by
    the organisation (as an SME) or to it (as a facilitator), so that no facilitator acts in its
    name any more, and its deactivation (`partners.partner.updated.v1`, active false, named
    "[erased]"), so that the notifier no longer counts it among the carriers. Only what the read
    model still shows as granted or active: running it again publishes nothing new."""
    done = Withdrawn()
    now = datetime.now(UTC)
    events: list[tuple[Event, str]] = []
    for r in await conn.fetch(
        "SELECT partner_id, facilitator_id FROM consents WHERE status = 'granted'"
        " AND (partner_id = $1 OR facilitator_id = $1) ORDER BY partner_id, facilitator_id",
        partner_id,
    ):
        revoked = ConsentRevoked(
            partner_id=r["partner_id"],
            facilitator_id=r["facilitator_id"],
            actor_id=ERASURE_ACTOR,
        )
        events.append((revoked, f"{r['partner_id']}/{r['facilitator_id']}/revoked-at-erasure"))
        done.consents.append((r["partner_id"], r["facilitator_id"]))
    row = await conn.fetchrow(
        "SELECT region, sector FROM partners WHERE partner_id = $1 AND active", partner_id
    )
    if row is not None:
        update = PartnerUpdated(
            partner_id=partner_id,
            name=shredding.ERASED,
            region=row["region"],
            sector=row["sector"],
            active=False,
            updated_by=ERASURE_ACTOR,
        )
        events.append((update, f"{partner_id}/deactivated-at-erasure"))
        done.deactivated = True
    for published, cause in events:
        message = to_message(
            published,
            event_id=derived_id(cause),
            source=source,
            time=now,
            subject=str(getattr(published, "partner_id")),  # noqa: B009 - both kinds have it
        )
        await publish(
            producer, message.topic, message.value, key=message.key, headers=message.headers
        )
    return done


# --- retention ----------------------------------------------------------------------------------


def retention_rules(settings: Settings) -> tuple[tuple[str, int, str], ...]:
    """(what, days, DELETE taking the cut-off instant as $1) for each retention period."""
    return (
        (
            "web_sessions",
            settings.retention_sessions_days,
            "DELETE FROM web_sessions WHERE coalesce(revoked_at, expires_at) < $1",
        ),
        (
            "login_failures",
            settings.retention_login_failures_days,
            "DELETE FROM login_failures WHERE failed_at < $1",
        ),
        (
            "account_events",
            settings.retention_account_events_days,
            "DELETE FROM account_events WHERE at < $1",
        ),
        (
            "one_time_links",
            settings.retention_links_days,
            "DELETE FROM one_time_links WHERE coalesce(used_at, expires_at) < $1",
        ),
        (
            "mail_verify_links",
            settings.retention_links_days,
            "DELETE FROM mail_verify_links WHERE coalesce(used_at, expires_at) < $1",
        ),
        (
            "mail_deliveries",
            settings.retention_mail_days,
            "DELETE FROM mail_deliveries WHERE status IN ('sent', 'dead')"
            " AND coalesce(sent_at, dead_at, created_at) < $1",
        ),
        (
            "mail_digest_items",
            settings.retention_mail_days,
            "DELETE FROM mail_digest_items WHERE digest_id IS NOT NULL AND issued_at < $1",
        ),
        (
            "webhook_deliveries",
            settings.retention_webhook_deliveries_days,
            "DELETE FROM webhook_deliveries WHERE status IN ('delivered', 'dead', 'cancelled')"
            " AND coalesce(delivered_at, dead_at, created_at) < $1",
        ),
        (
            "deal_files",
            settings.retention_deal_room_days,
            "DELETE FROM deal_files WHERE stored_at < $1",
        ),
        (
            "deal_texts",
            settings.retention_deal_room_days,
            "DELETE FROM deal_texts WHERE stored_at < $1",
        ),
    )


async def apply_retention(
    conn: Conn, settings: Settings, now: datetime, *, dry_run: bool = False
) -> dict[str, int]:
    """Deletes what is older than its retention period (or, with `dry_run`, only counts it):
    rows by table, and `people` for accounts disabled longer than their period (erased as
    `marketplace people erase` does). One transaction."""
    counts: dict[str, int] = {}
    async with conn.transaction():
        for what, days, sql in retention_rules(settings):
            cutoff = now - timedelta(days=days)
            if dry_run:
                # The same condition, counted: the DELETE's WHERE as a SELECT's.
                where = sql.split(" WHERE ", 1)[1]
                table = sql.split(" ", 3)[2]
                counts[what] = await conn.fetchval(
                    f"SELECT count(*) FROM {table} WHERE {where}",  # noqa: S608 - constants above
                    cutoff,
                )
            else:
                counts[what] = _count(await conn.execute(sql, cutoff))
        cutoff = now - timedelta(days=settings.retention_disabled_accounts_days)
        gone = await conn.fetch(
            "SELECT person_id, email FROM people WHERE disabled_at < $1 FOR UPDATE", cutoff
        )
        if not dry_run:
            for person in gone:
                await conn.execute(
                    "DELETE FROM login_failures WHERE subject = $1",
                    f"account:{person['email'].lower()}",
                )
                await accounts.erase_person_rows(conn, person["person_id"])
        counts["people (disabled)"] = len(gone)
    return counts
