"""The deal room of a match (#22) on `market.deals` (key: match id, so that every message and
receipt of one room is in order on one partition).

A message's text and its attachments' bytes are personal data (decision 12): they never travel
in an event. The API stores them in erasable PostgreSQL tables in the same request, before it
publishes the event, and the event carries only their SHA-256 (and each attachment's name, media
type and size), so that the content is checked against the log whenever it is read, and an
erasure leaves the audit chains whole."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Literal

import msgspec

from schemas.base import Event
from schemas.common import Id, LongText, Sealed

# A SHA-256 digest in lowercase hex.
Sha256 = Annotated[str, msgspec.Meta(pattern=r"^[0-9a-f]{64}$")]
# The media types a deal room accepts, recognised by their magic bytes (never by the name).
MediaType = Literal["image/jpeg", "image/png", "application/pdf"]
FileName = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
Side = Literal["seller", "buyer", "carrier", "facilitator"]


class Attachment(msgspec.Struct, frozen=True, kw_only=True):
    attachment_id: Id
    name: FileName
    media_type: MediaType
    size: Annotated[int, msgspec.Meta(ge=1, le=50_000_000)]
    sha256: Sha256


class MessagePosted(Event, frozen=True, kw_only=True, tag="market.deal.message_posted.v1"):
    """A message in the deal room of a match: who wrote it (the organisation, and the person by
    pseudonymous id), the SHA-256 of its text (UTF-8) and its attachments. The room's parties
    at that moment are named so that the read model can tell each of them."""

    message_id: Id
    match_id: Id
    author_id: Id  # the partner (organisation) that wrote it
    side: Side
    # A facilitator writing for a consenting SME: that SME.
    on_behalf_of: Id | None = None
    # The person who wrote it, by pseudonymous id, when a person did (the pages).
    person_id: Id | None = None
    text_sha256: Sha256
    text_length: Annotated[int, msgspec.Meta(ge=0, le=100_000)] = 0
    attachments: tuple[Attachment, ...] = ()
    seller_id: Id
    buyer_id: Id
    carrier_id: Id | None = None


class MessageRead(Event, frozen=True, kw_only=True, tag="market.deal.message_read.v1"):
    """A read receipt: `partner_id` has read message `message_id` of the room, and every
    earlier one."""

    match_id: Id
    message_id: Id
    partner_id: Id
    person_id: Id | None = None
    seller_id: Id
    buyer_id: Id
    carrier_id: Id | None = None


# The documents of a deal (marketplace/core/documents.py) and the transport stages a carrier
# confirms.
DocumentKind = Literal["order", "transport", "delivery"]
Stage = Literal["pickup", "delivery"]


class TransportConfirmed(
    Event, frozen=True, kw_only=True, tag="market.deal.transport_confirmed.v1"
):
    """The awarded carrier took the material over (`pickup`) or handed it to the consignee
    (`delivery`), with the weight it measured then. A later confirmation of the same stage
    corrects the earlier one; the transport document and the delivery report follow."""

    match_id: Id
    job_id: Id
    carrier_id: Id
    person_id: Id | None = None
    stage: Stage
    weight_t: Annotated[float, msgspec.Meta(gt=0, le=100_000)]
    # When it happened, as the carrier says (the API's clock when it says nothing).
    at: Annotated[datetime, msgspec.Meta(tz=True)]
    note: LongText = ""
    seller_id: Id
    buyer_id: Id
    # The carrier's note, sealed with its organisation's data key (#21 item 8); `note` then holds
    # "". None: a confirmation from before sealing, or one without a note.
    sealed: Sealed | None = None


class DocumentApproved(Event, frozen=True, kw_only=True, tag="market.deal.document_approved.v1"):
    """The party that issues a document of the deal approved one version of it: the content
    whose SHA-256 is named here (stored by the exchange, checked against this on every
    download), built from the events `sources`."""

    match_id: Id
    kind: DocumentKind
    version: Annotated[int, msgspec.Meta(ge=1, le=100_000)]
    sha256: Sha256
    issuer_id: Id
    side: Literal["buyer", "carrier"]
    # The organisation that approved it: the issuer, or a facilitator acting for the buyer.
    actor_id: Id | None = None
    person_id: Id | None = None
    sources: tuple[Id, ...] = ()
    seller_id: Id
    buyer_id: Id
    carrier_id: Id | None = None
    # A document of one delivery period of a standing agreement (its scheduled delivery's id,
    # #22 item 3); None for the match's own documents.
    delivery_id: Id | None = None


# The invoices of a deal (marketplace/core/deal_invoices.py): the material's and the transport's.
InvoiceKind = Literal["material", "transport"]


class InvoiceIssued(Event, frozen=True, kw_only=True, tag="market.deal.invoice_issued.v1"):
    """The party that is paid issued the deal's invoice of `kind`: an EN 16931 invoice in UBL
    (Peppol BIS Billing 3.0) under its `number`, stored by the exchange as the XML whose SHA-256
    is named here (checked against this on every download). The material invoice is issued by
    the seller (a price above zero) or the buyer (below zero) once the delivery report is
    approved; the transport invoice by the carrier, to the seller, once it confirmed the
    delivery. Issued once: a number is never taken back."""

    match_id: Id
    kind: InvoiceKind
    number: Annotated[str, msgspec.Meta(pattern=r"^\d{10}$")]
    issue_date: date
    issuer_id: Id
    customer_id: Id
    side: Literal["seller", "buyer", "carrier"]
    # The organisation that issued it: the issuer, or a facilitator acting for it.
    actor_id: Id | None = None
    person_id: Id | None = None
    sha256: Sha256
    # The events it was built from: the delivery report's approval, the carrier's delivery.
    sources: tuple[Id, ...] = ()
    seller_id: Id
    buyer_id: Id
    carrier_id: Id | None = None
    # The invoice of one delivery period of a standing agreement (its scheduled delivery's id,
    # #22 item 3), numbered in the issuer's one sequence; None for a one-off match's.
    delivery_id: Id | None = None


DealEvent = MessagePosted | MessageRead | TransportConfirmed | DocumentApproved | InvoiceIssued
