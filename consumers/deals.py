"""The deal rooms (#22): the read model of every room's messages and read receipts, kept from
`market.deals` exactly once (decision 4), and one notice per participant that wakes their pages.

A message's text and attachments are not in the event (decision 12): the API stored them in
`deal_texts` and `deal_files` before publishing. This consumer keeps what the log says (who
posted what, with which SHA-256, and who has read up to where), which the API checks the stored
content against on every read. Each batch is three statements: the messages, the receipts (a
receipt for a message covers every earlier message of the room not written by the reader), and
the notices for the seller, the buyer, the carrier named in the event, the author, and the
facilitators the two SMEs consented to; their partner ids are NOTIFYed at commit, which wakes the
API's live hub (producers/api/live.py).

The documents of a deal (#22 item 2) are built from its events: this consumer also reads
`market.matches` and `logistics.awards` and keeps, in `deal_events`, each confirmed match,
award and confirmation of delivery, and from `market.deals` the carrier's pickup and delivery
confirmations; it keeps the issuers' approvals of documents in `deal_approvals` and tells the
deal's parties of both (notices of kind `transport` and `document`), and of each invoice issued
(`market.deal.invoice_issued.v1`, a notice of kind `document`).

A standing agreement's documents are per delivery period (#22 item 3): the consumer keeps each
period's scheduled delivery (market.delivery.scheduled.v1) among the deal's events, and an
approval of a period's document under the period's delivery id."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgspec
import orjson

from marketplace.db import NOTIFY_CHANNEL, Conn
from marketplace.runtime import Transaction
from marketplace.runtime.batching import columns
from marketplace.runtime.decoding import decode_or_dead_letter
from schemas.deals import (
    DocumentApproved,
    InvoiceIssued,
    MessagePosted,
    MessageRead,
    TransportConfirmed,
)
from schemas.feedback import MatchDelivered
from schemas.logistics import TransportAwarded
from schemas.matches import DeliveryScheduled, MatchConfirmed
from schemas.topics import AWARDS, DEALS, MATCHES

GROUP = "deals"
# market.matches and logistics.awards for the events the documents of a deal are built from.
TOPICS = [DEALS, MATCHES, AWARDS]
_json = msgspec.json.Encoder()
# The events a deal's documents are built from (marketplace/core/documents.py), kept as they are.
# A standing agreement's scheduled deliveries are the sources of each period's documents (#22
# item 3).
SOURCES = (MatchConfirmed, TransportAwarded, MatchDelivered, TransportConfirmed, DeliveryScheduled)


def _parties(event: MessagePosted | MessageRead, extra: str) -> list[str]:
    named = [event.seller_id, event.buyer_id, event.carrier_id, extra]
    return sorted({p for p in named if p})


class DealRooms:
    def __init__(self, group_id: str = GROUP) -> None:
        self.group_id = group_id

    async def load(self, conn: Conn, topic: str, partition: int) -> None:  # noqa: ARG002
        return None

    async def process(self, tx: Transaction, state: None, records: Sequence[Any]) -> None:
        posted: list[tuple[Any, ...]] = []
        reads: list[tuple[Any, ...]] = []
        notices: list[tuple[Any, ...]] = []
        sources: list[tuple[Any, ...]] = []
        approvals: list[tuple[Any, ...]] = []
        for record in records:
            decoded = decode_or_dead_letter(tx, self.group_id, record)
            if decoded is None:
                continue
            event, envelope = decoded.event, decoded.envelope
            if isinstance(event, SOURCES):
                sources.append(
                    (
                        envelope.id,
                        event.match_id,
                        type(event).__struct_config__.tag,
                        _json.encode(event).decode(),
                        envelope.time,
                    )
                )
            if isinstance(event, TransportConfirmed | DocumentApproved | InvoiceIssued):
                if isinstance(event, InvoiceIssued):
                    # The invoice itself is in `invoices` (the API records it before it
                    # publishes); the parties' pages are told, as for a document.
                    kind, ref, carrier = "document", f"invoice/{event.kind}", event.carrier_id
                elif isinstance(event, DocumentApproved):
                    approvals.append(
                        (
                            # A period's document is kept under its delivery's id.
                            event.delivery_id or event.match_id,
                            event.kind,
                            event.version,
                            event.sha256,
                            event.issuer_id,
                            event.person_id,
                            envelope.id,
                            envelope.time,
                        )
                    )
                    kind, ref = "document", f"{event.kind}/{event.version}"
                    carrier = event.carrier_id
                else:
                    kind, ref, carrier = "transport", event.stage, event.carrier_id
                notices.extend(
                    (envelope.id, partner, event.match_id, kind, ref, envelope.time)
                    for partner in sorted(
                        {p for p in (event.seller_id, event.buyer_id, carrier) if p}
                    )
                )
                continue
            if isinstance(event, MessagePosted):
                attachments = [
                    {
                        "attachment_id": a.attachment_id,
                        "name": a.name,
                        "media_type": a.media_type,
                        "size": a.size,
                        "sha256": a.sha256,
                    }
                    for a in event.attachments
                ]
                posted.append(
                    (
                        event.message_id,
                        event.match_id,
                        event.author_id,
                        event.side,
                        event.on_behalf_of,
                        event.person_id,
                        event.text_sha256,
                        orjson.dumps(attachments).decode(),
                        envelope.id,
                        envelope.time,
                    )
                )
                kind, message_id, by = "message", event.message_id, event.author_id
            elif isinstance(event, MessageRead):
                reads.append(
                    (
                        event.message_id,
                        event.match_id,
                        event.partner_id,
                        event.person_id,
                        envelope.time,
                    )
                )
                kind, message_id, by = "read", event.message_id, event.partner_id
            else:
                continue
            notices.extend(
                (envelope.id, partner, event.match_id, kind, message_id, envelope.time)
                for partner in _parties(event, by)
            )
            # The facilitators acting for either SME (a current consent) are told too.
            notices.append(
                (
                    envelope.id,
                    f"consents:{event.seller_id}:{event.buyer_id}",
                    event.match_id,
                    kind,
                    message_id,
                    envelope.time,
                )
            )
        conn = tx.conn
        if sources:
            await conn.execute(
                "INSERT INTO deal_events (event_id, match_id, type, body, at)"
                " SELECT id, match, type, body::jsonb, at FROM unnest($1::text[], $2::text[],"
                " $3::text[], $4::text[], $5::timestamptz[]) WITH ORDINALITY"
                " AS u(id, match, type, body, at, n) ORDER BY n"
                " ON CONFLICT (event_id) DO NOTHING",
                *columns(sources),
            )
        if approvals:
            await conn.execute(
                "INSERT INTO deal_approvals (match_id, kind, version, sha256, issuer_id,"
                " person_id, event_id, approved_at)"
                " SELECT * FROM unnest($1::text[], $2::text[], $3::int[], $4::text[], $5::text[],"
                " $6::text[], $7::text[], $8::timestamptz[])"
                # The first approval of a version counts (a retry publishes the same again).
                " ON CONFLICT (match_id, kind, version) DO NOTHING",
                *columns(approvals),
            )
        if posted:
            await conn.execute(
                "INSERT INTO deal_messages (message_id, match_id, author_id, side, on_behalf_of,"
                " person_id, text_sha256, attachments, event_id, posted_at)"
                " SELECT id, match, author, side, behalf, person, sha, files::jsonb, event, at"
                " FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[],"
                " $6::text[], $7::text[], $8::text[], $9::text[], $10::timestamptz[])"
                " WITH ORDINALITY AS u(id, match, author, side, behalf, person, sha, files,"
                " event, at, n) ORDER BY n"
                # The same message published twice (an API retry) is one message.
                " ON CONFLICT (message_id) DO NOTHING",
                *columns(posted),
            )
        if reads:
            await conn.execute(
                "INSERT INTO deal_receipts (message_id, partner_id, match_id, person_id, read_at)"
                " SELECT m.message_id, u.reader, m.match_id, u.person, u.at"
                " FROM unnest($1::text[], $2::text[], $3::text[], $4::text[],"
                " $5::timestamptz[]) AS u(id, match, reader, person, at)"
                " JOIN deal_messages upto ON upto.message_id = u.id AND upto.match_id = u.match"
                " JOIN deal_messages m ON m.match_id = u.match AND m.seq <= upto.seq"
                " AND m.author_id <> u.reader"
                " ON CONFLICT (message_id, partner_id) DO NOTHING",
                *columns(reads),
            )
        if notices:
            await _notify(conn, notices)
        return state


async def _notify(conn: Conn, notices: list[tuple[Any, ...]]) -> None:
    """Stores the notices (a placeholder `consents:<seller>:<buyer>` stands for the facilitators
    of a current consent of either SME) and NOTIFYs each partner that got one, at commit."""
    await conn.execute(
        "WITH u AS (SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[],"
        " $5::text[], $6::timestamptz[]) WITH ORDINALITY"
        " AS u(event, partner, match, kind, message, at, n)),"
        " expanded AS ("
        "  SELECT event, partner, match, kind, message, at, n FROM u"
        "  WHERE partner NOT LIKE 'consents:%'"
        "  UNION ALL"
        "  SELECT u.event, c.facilitator_id, u.match, u.kind, u.message, u.at, u.n FROM u"
        "  JOIN consents c ON c.status = 'granted' AND c.partner_id IN"
        "  (split_part(u.partner, ':', 2), split_part(u.partner, ':', 3))"
        "  WHERE u.partner LIKE 'consents:%'),"
        " stored AS (INSERT INTO deal_notices (event_id, partner_id, match_id, kind, message_id,"
        "  issued_at) SELECT DISTINCT ON (event, partner) event, partner, match, kind, message, at"
        "  FROM expanded ORDER BY event, partner"
        "  ON CONFLICT (event_id, partner_id) DO NOTHING RETURNING partner_id)"
        " SELECT pg_notify($7, partner_id) FROM (SELECT DISTINCT partner_id FROM stored) s",
        *columns(notices),
        NOTIFY_CHANNEL,
    )
