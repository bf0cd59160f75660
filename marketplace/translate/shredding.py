"""Crypto-shredding (#21 item 8): the personal fields of events sealed with a data key per
organisation, which erasure destroys.

An event on Kafka and in the audit log cannot be changed, so a personal field it carries in
clear could never be erased. Every field that can hold a person's data (`FIELDS`: an
organisation's name, which for a sole trader is a person's; its legal name and address;
listing descriptions and notes; the free texts people write) is therefore encrypted by the
producer with the data key of the organisation it belongs to, and the event carries "" in the
field and the ciphertext in `sealed` (schemas/common.py `Sealed`: the subject `partner:<id>` and
a Fernet token of the JSON object {field path: value}). `partners.legal.declared.v1` requires its
fields, so its sealed form is a new type, `partners.legal.declared.v2`, read as v1 once opened.

The data keys are Fernet keys, one per subject, created on first use and stored in PostgreSQL
(`data_keys`, migration 0029) encrypted under the operator's key ring (marketplace/secretbox.py,
the file that also seals webhook secrets and second factors): a copy of the database alone opens
nothing. `marketplace webhooks rotate-key` re-encrypts them with the ring's new key (`reseal`),
and `marketplace keys restore` checks that the restored ring opens every one (`unreadable`).

Consumers that keep or pass on these fields (the projector, the mailer, the webhook inbox) open
the events of a batch with the keys they find, each read `FOR SHARE` so that an erasure waits
for the batch that uses the key; a field whose key is gone reads `ERASED`, and opening never
fails. Erasing an organisation deletes its key (`destroy`) and overwrites what the read models
keep of its sealed fields, deleting e-mail and webhook deliveries that copied its texts
(`scrub`); the records on Kafka and in the audit log keep their ciphertext, so every chain
still verifies. docs/operators/personal-data-in-events.md is the inventory of these fields."""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import msgspec
import orjson
from cryptography.fernet import Fernet, InvalidToken

from marketplace.db import Conn
from marketplace.events import Decoded
from marketplace.secretbox import KeyRing, SecretKeyError, key_file
from marketplace.secretbox import Sealed as Resealed
from marketplace.settings import Settings
from schemas import common
from schemas.base import Event
from schemas.deals import TransportConfirmed
from schemas.facilitators import ConsentGranted, ConsentRevoked, ListingNudged
from schemas.feedback import FeedbackGiven, MatchDelivered
from schemas.listings import (
    MatchDeclined,
    OfferPosted,
    OfferWithdrawn,
    RequestPosted,
    RequestWithdrawn,
)
from schemas.partners import (
    LegalDataDeclared,
    LegalDataDeclaredV2,
    NotificationIssued,
    PartnerRegistered,
    PartnerUpdated,
)

T = TypeVar("T")
# What a reader shows in a sealed field whose key was destroyed.
ERASED = "[erased]"
PARTNER = "partner:"

_LISTING = ("material.description", "material.quality_notes")
_LEGAL = ("legal_name", "street", "postcode", "city", "vat_number", "peppol_id")
# Every event type with fields that can hold personal data, and those fields (dotted paths).
FIELDS: dict[type[Event], tuple[str, ...]] = {
    PartnerRegistered: ("name",),
    PartnerUpdated: ("name",),
    LegalDataDeclared: _LEGAL,
    OfferPosted: _LISTING,
    RequestPosted: _LISTING,
    OfferWithdrawn: ("reason",),
    RequestWithdrawn: ("reason",),
    MatchDeclined: ("reason",),
    MatchDelivered: ("note",),
    FeedbackGiven: ("comment",),
    ConsentGranted: ("note",),
    ConsentRevoked: ("reason",),
    ListingNudged: ("message",),
    TransportConfirmed: ("note",),
}
# The texts a notification copies from its cause (core/notifications.py): a nudge's message, a
# consent's note or reason. The notification carries the cause's `sealed` and "" in these.
NOTIFICATION_TEXTS = ("message", "note", "reason")
_NOTIFYING = (ListingNudged, ConsentGranted, ConsentRevoked)


class ShreddingError(ValueError):
    """An event cannot be sealed (no data key can be made: the operator's key ring is missing
    or unusable). Never raised by opening."""


def subject_of(event: Event) -> str:
    """Whose data key seals the event: the organisation that owns the data (the listing's
    owner, the organisation named), or, for a text someone writes, the organisation that
    acted (`actor_id`)."""
    if isinstance(event, OfferPosted | RequestPosted):
        return PARTNER + event.owner_id
    if isinstance(event, PartnerRegistered | PartnerUpdated | LegalDataDeclared):
        return PARTNER + event.partner_id
    if isinstance(event, TransportConfirmed):
        return PARTNER + event.carrier_id
    actor: str = getattr(event, "actor_id")  # noqa: B009 - every other one has it
    return PARTNER + actor


def _get(obj: Any, path: str) -> Any:
    for part in path.split("."):
        obj = getattr(obj, part)
    return obj


def _put(obj: Any, path: str, value: Any) -> Any:
    head, _, rest = path.partition(".")
    if rest:
        return msgspec.structs.replace(obj, **{head: _put(getattr(obj, head), rest, value)})
    return msgspec.structs.replace(obj, **{head: value})


# --- the sealing format (pure: a key in, an event out) ----------------------------------------


def seal(event: Event, key: bytes) -> Event:
    """The event with its personal fields sealed under `key` (the data key of
    `subject_of(event)`); the same event when it has none, or none filled in."""
    if not needs_sealing(event):
        return event
    fields = FIELDS[type(event)]
    values = {path: _get(event, path) for path in fields}
    token = Fernet(key).encrypt(orjson.dumps(values)).decode()
    sealed = common.Sealed(subject=subject_of(event), token=token)
    if isinstance(event, LegalDataDeclared):
        return LegalDataDeclaredV2(
            partner_id=event.partner_id,
            actor_id=event.actor_id,
            person_id=event.person_id,
            country=event.country,
            sealed=sealed,
        )
    for path in fields:
        event = _put(event, path, "")
    return msgspec.structs.replace(event, sealed=sealed)


def _opened(sealed: common.Sealed, keys: Mapping[str, bytes]) -> dict[str, Any] | None:
    """The sealed values, or None when the subject's key is gone (or does not open them)."""
    key = keys.get(sealed.subject)
    if key is None:
        return None
    try:
        values = orjson.loads(Fernet(key).decrypt(sealed.token.encode()))
    except (InvalidToken, orjson.JSONDecodeError):
        return None
    return values if isinstance(values, dict) else None


def open_event(event: Event, keys: Mapping[str, bytes]) -> Event:
    """The event with its sealed fields back in clear from `keys` (subject -> data key), or
    reading ERASED where the key is not there; `sealed` dropped. Never raises."""
    sealed = getattr(event, "sealed", None)
    if sealed is None:
        return event
    values = _opened(sealed, keys)
    if isinstance(event, LegalDataDeclaredV2):
        got = values or {}

        def text(name: str) -> str:
            value = got.get(name) if values is not None else ERASED
            return value if isinstance(value, str) else ERASED

        def maybe(name: str) -> str | None:
            if values is None:
                return None
            value = got.get(name)
            return value if isinstance(value, str) else None

        return LegalDataDeclared(
            partner_id=event.partner_id,
            actor_id=event.actor_id,
            person_id=event.person_id,
            legal_name=text("legal_name"),
            street=text("street"),
            postcode=text("postcode"),
            city=text("city"),
            country=event.country,
            vat_number=maybe("vat_number"),
            peppol_id=maybe("peppol_id"),
        )
    if isinstance(event, NotificationIssued):
        data = dict(event.data)
        for name in NOTIFICATION_TEXTS:
            if name in data:
                data[name] = ERASED if values is None else values.get(name, data[name])
        return msgspec.structs.replace(event, data=data, sealed=None)
    for path in FIELDS.get(type(event), ()):
        value = ERASED if values is None else values.get(path, "")
        event = _put(event, path, value if isinstance(value, str) else ERASED)
    return msgspec.structs.replace(event, sealed=None)


def notification_sealed(cause: Event) -> common.Sealed | None:
    """What a notification caused by `cause` carries sealed: the cause's own `sealed` when the
    notification copies its texts (a nudge, a consent), else None."""
    return cause.sealed if isinstance(cause, _NOTIFYING) else None


# --- the data keys in PostgreSQL ---------------------------------------------------------------


async def data_key(conn: Conn, ring: KeyRing, subject: str) -> bytes:
    """The subject's data key, made (and stored sealed under the ring) on first use."""
    stored = await conn.fetchval("SELECT sealed_key FROM data_keys WHERE subject = $1", subject)
    if stored is None:
        await conn.execute(
            "INSERT INTO data_keys (subject, sealed_key) VALUES ($1, $2)"
            " ON CONFLICT (subject) DO NOTHING",
            subject,
            ring.encrypt(Fernet.generate_key().decode()),
        )
        stored = await conn.fetchval("SELECT sealed_key FROM data_keys WHERE subject = $1", subject)
    if stored is None:
        raise ShreddingError(f"the data key of {subject} was erased while it was being made")
    try:
        return ring.decrypt(stored).encode()
    except SecretKeyError as exc:
        raise ShreddingError(f"the data key of {subject} cannot be read: {exc}") from None


def needs_sealing(event: Event) -> bool:
    """Whether the event has a personal field filled in (else `seal` leaves it as it is)."""
    fields = FIELDS.get(type(event))
    return fields is not None and any(_get(event, p) not in ("", None) for p in fields)


async def seal_event(conn: Conn, ring: KeyRing, event: Event) -> Event:
    """`seal` with the subject's data key (made when it has none yet)."""
    if not needs_sealing(event):
        return event
    return seal(event, await data_key(conn, ring, subject_of(event)))


async def keys_for(
    conn: Conn, ring: KeyRing, subjects: Iterable[str], *, share: bool = False
) -> dict[str, bytes]:
    """The data keys of the subjects that still have one. With `share`, each row is locked
    FOR SHARE until the caller's transaction ends, so that an erasure (which deletes it)
    waits until what the caller writes with the key is committed, and then scrubs it."""
    wanted = sorted(set(subjects))
    if not wanted:
        return {}
    sql = "SELECT subject, sealed_key FROM data_keys WHERE subject = ANY($1::text[])"
    rows = await conn.fetch(sql + " FOR SHARE" if share else sql, wanted)
    found: dict[str, bytes] = {}
    for r in rows:
        try:
            found[r["subject"]] = ring.decrypt(r["sealed_key"]).encode()
        except SecretKeyError:
            continue  # read as erased; `marketplace keys restore` names such rows
    return found


def sealed_subjects(events: Iterable[Event]) -> set[str]:
    out = set()
    for event in events:
        sealed = getattr(event, "sealed", None)
        if sealed is not None:
            out.add(sealed.subject)
    return out


async def open_batch(conn: Conn, ring: KeyRing | None, batch: Sequence[Decoded]) -> list[Decoded]:
    """The batch with every event opened (see `open_event`), the keys read FOR SHARE in the
    caller's transaction. `ring` None (no key file): every sealed field reads ERASED."""
    subjects = sealed_subjects(d.event for d in batch)
    if not subjects:
        return list(batch)
    keys = await keys_for(conn, ring, subjects, share=True) if ring is not None else {}
    out = []
    for d in batch:
        sealed = getattr(d.event, "sealed", None)
        out.append(d if sealed is None else Decoded(d.envelope, open_event(d.event, keys)))
    return out


@functools.cache
def _operator_keys() -> Path:
    return Settings.from_env().webhook_keys_path


def operator_ring(path: Path | None = None) -> KeyRing:
    """The operator's key ring (MARKETPLACE_WEBHOOK_SECRET_KEYS, or `path`), re-read when the
    file changes; raises SecretKeyError naming the file when it is missing or unusable."""
    return key_file(path or _operator_keys()).ring()


async def open_notifications(
    conn: Conn, ring: KeyRing, found: Sequence[tuple[NotificationIssued, T]]
) -> list[tuple[NotificationIssued, T]]:
    """Notifications (each with what goes along) with their sealed texts opened, for those who
    deliver them (the mailer, the webhook inbox); the keys read FOR SHARE as in `open_batch`."""
    subjects = sealed_subjects(n for n, _ in found)
    if not subjects:
        return list(found)
    keys = await keys_for(conn, ring, subjects, share=True)
    out = []
    for n, extra in found:
        opened = open_event(n, keys)
        out.append((opened if isinstance(opened, NotificationIssued) else n, extra))
    return out


async def destroy(conn: Conn, subjects: Sequence[str]) -> int:
    """Deletes the subjects' data keys: what they sealed can no longer be read by anyone."""
    status = await conn.execute(
        "DELETE FROM data_keys WHERE subject = ANY($1::text[])", list(subjects)
    )
    return int(status.rsplit(" ", 1)[-1])


async def scrub(conn: Conn, partner_id: str) -> dict[str, int]:
    """Overwrites with ERASED what the read models keep of the organisation's sealed fields
    (inside the caller's transaction, after `destroy`): its name, legal data, its listings'
    descriptions and notes, the texts it wrote (consent notes, nudges, delivery notes, feedback
    comments) and those texts where a notification to another organisation copied them."""
    steps = (
        ("partners", "UPDATE partners SET name = $2 WHERE partner_id = $1 AND name <> $2"),
        (
            "partner_legal",
            "UPDATE partner_legal SET legal_name = $2, street = $2, postcode = $2, city = $2,"
            " vat_number = NULL, peppol_id = NULL WHERE partner_id = $1 AND legal_name <> $2",
        ),
        (
            "listings",
            "UPDATE listings SET body = jsonb_set(jsonb_set(body, '{material,description}',"
            " to_jsonb($2::text)), '{material,quality_notes}', to_jsonb($2::text))"
            " WHERE owner_id = $1 AND body ? 'material'"
            " AND body #>> '{material,description}' IS DISTINCT FROM $2",
        ),
        (
            "consents",
            "UPDATE consents SET note = $2 WHERE partner_id = $1 AND note <> '' AND note <> $2",
        ),
        (
            "nudges",
            "UPDATE nudges SET message = $2"
            " WHERE facilitator_id = $1 AND message <> '' AND message <> $2",
        ),
        (
            "deliveries",
            "UPDATE deliveries SET note = $2 WHERE confirmed_by = $1 AND note <> '' AND note <> $2",
        ),
        (
            "feedback",
            "UPDATE feedback SET comment = $2"
            " WHERE partner_id = $1 AND comment <> '' AND comment <> $2",
        ),
    )
    done: dict[str, int] = {}
    for table, sql in steps:
        status = await conn.execute(sql, partner_id, ERASED)
        done[table] = int(status.rsplit(" ", 1)[-1])
    # Its texts that notifications to other organisations copied (a consent's note or reason
    # told to the facilitator, a nudge's message told to the SME), and what the mailer and the
    # webhook inbox made of those notifications.
    copied = [
        r["notification_id"]
        for r in await conn.fetch(
            "SELECT notification_id FROM notifications"
            " WHERE (kind LIKE 'consent.%' AND subject_id = $1)"
            "    OR (kind = 'listing.nudged' AND body #>> '{data,facilitator_id}' = $1)"
            " UNION SELECT notification_id FROM mail_digest_items"
            " WHERE (kind LIKE 'consent.%' AND data ->> 'partner_id' = $1)"
            "    OR (kind = 'listing.nudged' AND data ->> 'facilitator_id' = $1)"
            " UNION SELECT notification_id FROM webhook_deliveries"
            " WHERE (kind LIKE 'consent.%'"
            "        AND convert_from(body, 'UTF8')::jsonb #>> '{data,subject_id}' = $1)"
            "    OR (kind = 'listing.nudged'"
            "        AND convert_from(body, 'UTF8')::jsonb #>> '{data,data,facilitator_id}' = $1)",
            partner_id,
        )
    ]
    texts = list(NOTIFICATION_TEXTS)
    copies = (
        (
            "notifications",
            "UPDATE notifications SET body = jsonb_set(body, '{data}', (body -> 'data')"
            " || (SELECT coalesce(jsonb_object_agg(k, to_jsonb($2::text)), '{}'::jsonb)"
            "     FROM jsonb_each_text(body -> 'data') AS e(k, v)"
            "     WHERE k = ANY($3::text[]) AND v <> ''))"
            " WHERE notification_id = ANY($1::text[])",
        ),
        (
            "mail_digest_items",
            "UPDATE mail_digest_items SET data = data"
            " || (SELECT coalesce(jsonb_object_agg(k, to_jsonb($2::text)), '{}'::jsonb)"
            "     FROM jsonb_each_text(data) AS e(k, v) WHERE k = ANY($3::text[]) AND v <> '')"
            " WHERE notification_id = ANY($1::text[])",
        ),
        (
            # Rendered e-mail (sent, or waiting) holding the text: deleted, digests included.
            "mail_deliveries",
            "DELETE FROM mail_deliveries WHERE notification_id = ANY($1::text[])"
            " OR message_id IN (SELECT digest_id FROM mail_digest_items"
            "  WHERE notification_id = ANY($1::text[]) AND digest_id IS NOT NULL)",
        ),
        (
            "webhook_deliveries",
            "DELETE FROM webhook_deliveries WHERE notification_id = ANY($1::text[])",
        ),
    )
    for table, sql in copies:
        args: tuple[Any, ...] = (copied,) if "$2" not in sql else (copied, ERASED, texts)
        status = await conn.execute(sql, *args)
        done[table] = int(status.rsplit(" ", 1)[-1])
    return done


async def reseal(conn: Conn, ring: KeyRing, batch: int = 500) -> Resealed:
    """Re-encrypts every data key that is not under the ring's current key (a key rotation);
    a row is changed only if it still holds what was read (an erasure meanwhile wins)."""
    done = Resealed()
    current = f"fernet:{ring.current_id}:%"
    while True:
        rows = await conn.fetch(
            "SELECT subject, sealed_key FROM data_keys WHERE sealed_key NOT LIKE $1"
            " AND NOT subject = ANY($2::text[]) ORDER BY subject LIMIT $3",
            current,
            done.unreadable,
            batch,
        )
        if not rows:
            return done
        subjects, old, new = [], [], []
        for r in rows:
            try:
                key = ring.decrypt(r["sealed_key"])
            except SecretKeyError:
                done.unreadable.append(r["subject"])
                continue
            subjects.append(r["subject"])
            old.append(r["sealed_key"])
            new.append(ring.encrypt(key))
        status = await conn.execute(
            "UPDATE data_keys d SET sealed_key = u.new, resealed_at = now()"
            " FROM unnest($1::text[], $2::text[], $3::text[]) AS u(subject, old, new)"
            " WHERE d.subject = u.subject AND d.sealed_key = u.old",
            subjects,
            old,
            new,
        )
        done.sealed += int(status.rsplit(" ", 1)[-1])


async def unreadable(conn: Conn, ring: KeyRing) -> tuple[int, list[str]]:
    """How many data keys the ring opens, and the subjects of those it does not."""
    opened, bad = 0, []
    for r in await conn.fetch("SELECT subject, sealed_key FROM data_keys ORDER BY subject"):
        try:
            ring.decrypt(r["sealed_key"])
            opened += 1
        except SecretKeyError:
            bad.append(r["subject"])
    return opened, bad
