"""The OpenAPI 3.1 document of the partner API, built from the routes' body types.

Served at /openapi.json and checked in as schemas/openapi.json (written by
`python -m marketplace.app.generate`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, get_args

import msgspec
import msgspec.inspect as mi

from marketplace.core.deal_invoices import INVOICE_KINDS
from marketplace.core.documents import KINDS
from marketplace.core.eligibility import FindingCode
from marketplace.reference import list_of_waste
from producers.api.bodies import (
    DATE_PATTERN,
    DATE_TIME_PATTERN,
    AnswerIn,
    CapabilitiesIn,
    OfferIn,
    OfferTermsIn,
    QuoteIn,
    RequestIn,
    RequestTermsIn,
    ReserveIn,
    WithdrawIn,
)
from producers.api.deals import MAX_FILES, MAX_TEXT, MEDIA_TYPES, TEXT_EXAMPLE, MessageIn
from producers.api.documents import TransportIn
from producers.api.facilitators import ConsentIn, NudgeIn, RevokeIn
from producers.api.feedback import DeliveredIn, FeedbackIn
from producers.api.legal import LegalIn
from producers.api.people import READERS, WRITERS, MailPreferencesIn
from producers.api.webhooks import EndpointIn, RotateIn
from schemas.deals import Stage

WASTE_CODE_PATTERN = "^[0-9]{6}$"


@dataclass(frozen=True)
class Refusal:
    """An answer other than success that a route gives, with its problem types (the last part
    of the problem's `type` URI) and when."""

    status: int
    kinds: tuple[str, ...]
    why: str


@dataclass(frozen=True)
class Query:
    name: str
    schema: dict[str, Any]
    description: str


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    summary: str
    roles: tuple[str, ...] = ()
    body: type | None = None
    write: bool = False
    content_type: str = "application/json"
    # The success status of a route that is not a 202 write.
    status: int = 200
    # The refusals of this route beyond those every route of its kind gives (see `document`):
    # the business rules a schema cannot express (ownership, state, windows in order, ...).
    refusals: tuple[Refusal, ...] = ()
    query: tuple[Query, ...] = ()
    # The body may be left out (an empty body is `{}`).
    optional_body: bool = False
    # A multipart/form-data body the route takes beside the JSON one (its schema).
    form: dict[str, Any] | None = None
    # The success's media types, when there are several (else `content_type`).
    content_types: tuple[str, ...] = ()
    # Other successes of a write than its 202: (status, what it means).
    also: tuple[tuple[int, str], ...] = ()
    # Whether a write's Idempotency-Key can be in progress (409) or reused (422): not for a write
    # whose key only derives its ids, nor one that needs no key at all.
    key_in_progress: bool = True
    key_reused: bool = True
    # What a 202's Location names (eventually readable there), if it gives one.
    location: str | None = None
    # Path parameters whose values differ from those of the same name elsewhere (name, schema).
    path_params: tuple[tuple[str, dict[str, Any]], ...] = ()
    # The success's JSON schema, a name in components/schemas, where the document gives one.
    response: str | None = None


# Listings are written by their SME, or by a facilitator for an SME that consented (#11).
_WRITERS = ("sme", "facilitator")


def _r(status: int, *kinds: str, why: str) -> Refusal:
    return Refusal(status, kinds, why)


# Query parameters shared by several routes.
_TIME = {"type": "string", "format": "date-time", "pattern": DATE_TIME_PATTERN}
_FROM = Query("from", _TIME, "start of the period (default: 30 days before `to`); before `to`")
_TO = Query("to", _TIME, "end of the period (default: now)")
_SLICE = Query(
    "slice",
    {"enum": ["total", "minute", "hour", "day", "month", "region", "chapter", "sector"]},
    "how the figures are broken down (default total)",
)
# Text in a path or a query: anything but the NUL character, which every route refuses (400).
_NO_NUL = "^[^\\u0000]*$"
# An id in a path: whatever it is, one that is not yours is 404.
_ID_SCHEMA: dict[str, Any] = {"type": "string", "minLength": 1, "pattern": _NO_NUL}
# The path parameters that are not ids: each with the values it takes (any other is 404).
_PATH_SCHEMAS: dict[str, dict[str, Any]] = {
    "kind": {"enum": list(KINDS), "description": "the document"},
    "version": {
        "type": "integer",
        "minimum": 1,
        "maximum": 999_999,
        "description": "a version of the document, from 1",
    },
    "fmt": {"enum": ["pdf", "json"], "description": "the PDF for people, the JSON for systems"},
    "stage": {"enum": list(get_args(Stage)), "description": "what the carrier confirms"},
}
# A partner named in a query (an SME: ignored, or refused when not its own).
_PARTNER_SCHEMA: dict[str, Any] = {"type": "string", "pattern": _NO_NUL}
_ON_BEHALF_Q = Query(
    "on_behalf_of", _PARTNER_SCHEMA, "a facilitator: the SME whose listings (required for one)"
)
_PAGING = (
    Query("status", {"enum": ["open", "withdrawn"]}, "only listings with this status"),
    Query("limit", {"type": "integer", "minimum": 1, "maximum": 200}, "page size (default 50)"),
    Query(
        "offset",
        {"type": "integer", "minimum": 0, "maximum": 1_000_000},
        "listings to skip (default 0)",
    ),
    _ON_BEHALF_Q,
)
_PERIOD_REFUSED = _r(
    422,
    "unprocessable-content",
    why="`from` is not before `to`, or a period at the calendar's edge (year 1, year 9999)",
)
_ON_BEHALF_REFUSED = (
    _r(
        403,
        "forbidden",
        why="an SME sets on_behalf_of to another partner (only a facilitator acts for another)",
    ),
    _r(
        404,
        "no-consent",
        why="on_behalf_of names no SME that has consented to you (as for one that does not exist)",
    ),
    _r(
        422,
        "on-behalf-of-required",
        why="a facilitator leaves out on_behalf_of",
    ),
)
# A match's proposal is answered, and read, by its SME or a facilitator for it (#11).
_MATCH_ROLES = ("sme", "facilitator")
_ON_BEHALF_MATCHES = Query(
    "on_behalf_of", _PARTNER_SCHEMA, "a facilitator: the SME whose matches (required for one)"
)
# The same refusals as _ON_BEHALF_REFUSED for a query: a facilitator without it is 400.
_ON_BEHALF_Q_REFUSED = (
    _r(400, "on-behalf-of-required", why="a facilitator leaves out ?on_behalf_of"),
    *_ON_BEHALF_REFUSED[:2],
)
_CODES_REFUSED = _r(
    422,
    "unknown-waste-code",
    why="a code that matches the pattern but is not an entry of the List of Waste (the"
    " WasteCode enum lists them)",
)
_OTHER_FAMILY = _r(
    422,
    "accepts-other-family",
    why="accepts_codes holds a code of another material family than material.code (plastics,"
    " paper, wood, glass, metals, textiles, organics, aggregates; else the sub-chapter): such"
    " listings meet on other partitions, so the exchange cannot match them",
)
_RULES = _r(
    422,
    "unprocessable-content",
    why="a rule the schema cannot express: a window or recurrence that ends before it starts,"
    " times without a time zone, a min_lot larger than the quantity",
)
_RETIRED = _r(
    422,
    "retired-currency",
    why="a price in a retired currency (BGN: Bulgaria has used the euro since 1 January 2026)",
)
_NOT_OPEN = _r(409, "not-open", why="it is not open any more (withdrawn, answered, closed)")
_ANSWER_REFUSALS = (
    _NOT_OPEN,
    _r(409, "already-answered", why="you (or the SME you act for) have answered it already"),
)
_NO_CAPS = _r(
    409,
    "no-capabilities",
    why="you have not declared your coverage yet (PUT /v1/carrier/capabilities)",
)
_BIDDING_CLOSED = _r(409, "bidding-closed", why="the job's bidding is closed")
# The roles that may have a place in a deal room.
_DEALERS = ("sme", "logistics", "facilitator")
_NO_ROOM = _r(404, "not-found", why="no match with this id, or you have no place in its deal room")
_NO_PERIOD = _r(
    404,
    "not-found",
    why="no match with this id or no place in its deal room; no delivery period of it with this"
    " id; the carrier of another period",
)

# Refusals shared by a deal's documents and a delivery period's.
_APPROVAL_REFUSALS = (
    _r(403, "not-issuer", why="you do not issue this document"),
    _r(409, "not-yet", why="the document does not exist yet (its events have not come)"),
    _r(409, "superseded", why="a newer version exists: approve that one"),
    _r(
        409,
        "legal-data-missing",
        why="a party's legal data that the document needs is not declared yet (PUT"
        " /v1/partners/{id}/legal)",
    ),
)
_DOCUMENT_ALTERED = _r(
    409,
    "document-altered",
    why="the stored copy no longer matches the SHA-256 it was stored or approved"
    " under: the exchange will not hand it out",
)
_INVOICE_ALTERED = _r(
    409,
    "document-altered",
    why="the stored XML no longer matches the SHA-256 it was issued with: the exchange"
    " will not hand it out",
)

# Organisations that are parties to deals, and the operator (auditors take no part in deals).
_LEGAL_ROLES = ("sme", "logistics", "facilitator", "operator")

ROUTES: tuple[Route, ...] = (
    Route("get", "/healthz", "Liveness: the process is up"),
    Route("get", "/readyz", "Readiness: PostgreSQL and Kafka answer"),
    Route(
        "get",
        "/dashboard",
        "The association's dashboard (HTML; data needs a key)",
        content_type="text/html",
    ),
    Route(
        "get",
        "/audit/public-key",
        "The Ed25519 key that signs the audit log's checkpoints",
        refusals=(_r(404, "not-found", why="this exchange has no audit signing key"),),
    ),
    Route("get", "/v1/me", "The calling partner's profile", ("any",)),
    Route(
        "get",
        "/v1/impact",
        "Impact KPIs (?from&to&slice=total|minute|hour|day|month|region|chapter|sector"
        "&partner); an SME gets its own",
        ("sme", "operator", "auditor", "facilitator"),
        refusals=(
            _r(403, "forbidden", why="an SME asks for another partner's figures"),
            _PERIOD_REFUSED,
        ),
        query=(
            _FROM,
            _TO,
            _SLICE,
            Query("partner", _PARTNER_SCHEMA, "one partner's figures (an SME: only its own)"),
        ),
    ),
    Route(
        "get",
        "/v1/impact/flows",
        "Confirmed matches with their pickup and delivery places (?from&to&partner)",
        ("sme", "operator", "auditor", "facilitator"),
        refusals=(
            _r(403, "forbidden", why="an SME asks for another partner's flows"),
            _PERIOD_REFUSED,
        ),
        query=(
            _FROM,
            _TO,
            Query("partner", _PARTNER_SCHEMA, "one partner's flows (an SME: only its own)"),
        ),
    ),
    Route(
        "get",
        "/v1/ops/consumers",
        "Each consumer group's lag behind the topics' ends",
        ("operator", "auditor", "facilitator"),
    ),
    Route(
        "post",
        "/v1/offers",
        "Post an offer (a facilitator sets on_behalf_of to an SME that consented)",
        _WRITERS,
        OfferIn,
        True,
        refusals=(*_ON_BEHALF_REFUSED, _CODES_REFUSED, _RETIRED, _RULES),
        location="the new offer, readable there once the projector has its event",
    ),
    Route(
        "get",
        "/v1/offers",
        "List your offers (?status=open|withdrawn&limit&offset; a facilitator adds"
        " ?on_behalf_of=<SME>)",
        _WRITERS,
        refusals=(
            _r(400, "on-behalf-of-required", why="a facilitator leaves out ?on_behalf_of"),
            _ON_BEHALF_REFUSED[1],
        ),
        query=_PAGING,
    ),
    Route("get", "/v1/offers/{id}", "Read one of your offers", _WRITERS),
    Route(
        "put",
        "/v1/offers/{id}",
        "Replace an offer's terms",
        _WRITERS,
        OfferTermsIn,
        True,
        refusals=(_NOT_OPEN, _RETIRED, _RULES),
        location="the offer, with the new terms once the projector has its event",
    ),
    Route(
        "delete",
        "/v1/offers/{id}",
        "Withdraw an offer: a withdrawal, not a removal. It stays yours to read at the same"
        " address, with status withdrawn (once the projector has the event), and no longer"
        " matches; changing or withdrawing it again is 409 not-open",
        _WRITERS,
        WithdrawIn,
        True,
        refusals=(_NOT_OPEN,),
        optional_body=True,
        location="the offer, which stays readable there with status withdrawn",
    ),
    Route(
        "post",
        "/v1/requests",
        "Post a request (a facilitator sets on_behalf_of to an SME that consented)",
        _WRITERS,
        RequestIn,
        True,
        refusals=(*_ON_BEHALF_REFUSED, _CODES_REFUSED, _OTHER_FAMILY, _RETIRED, _RULES),
        location="the new request, readable there once the projector has its event",
    ),
    Route(
        "post",
        "/v1/requests/preview",
        "Preview a draft request: the open offers its specification would meet, criterion by"
        " criterion, and why the others would not. Publishes nothing",
        ("sme", "facilitator", "operator"),
        RequestIn,
        refusals=(
            *_ON_BEHALF_REFUSED,
            _CODES_REFUSED,
            _OTHER_FAMILY,
            _RULES,
            _r(
                422,
                "unit-not-convertible",
                why="the quantity does not convert to tonnes (m3 without"
                " material.density_t_per_m3, pieces without material.mass_per_piece_t)",
            ),
        ),
    ),
    Route(
        "get",
        "/v1/requests",
        "List your requests (facilitator: ?on_behalf_of)",
        _WRITERS,
        refusals=(
            _r(400, "on-behalf-of-required", why="a facilitator leaves out ?on_behalf_of"),
            _ON_BEHALF_REFUSED[1],
        ),
        query=_PAGING,
    ),
    Route("get", "/v1/requests/{id}", "Read one of your requests", _WRITERS),
    Route(
        "put",
        "/v1/requests/{id}",
        "Replace a request's terms",
        _WRITERS,
        RequestTermsIn,
        True,
        refusals=(_NOT_OPEN, _RETIRED, _RULES),
        location="the request, with the new terms once the projector has its event",
    ),
    Route(
        "delete",
        "/v1/requests/{id}",
        "Withdraw a request: a withdrawal, not a removal. It stays yours to read at the same"
        " address, with status withdrawn (once the projector has the event), and no longer"
        " matches; changing or withdrawing it again is 409 not-open",
        _WRITERS,
        WithdrawIn,
        True,
        refusals=(_NOT_OPEN,),
        optional_body=True,
        location="the request, which stays readable there with status withdrawn",
    ),
    Route(
        "get",
        "/v1/consents",
        "The facilitators you let act for you, current and revoked",
        ("sme",),
    ),
    Route(
        "post",
        "/v1/consents/{facilitator_id}",
        "Let a facilitator of the association act for you: post, change and withdraw your"
        " listings, answer your proposals, give your feedback",
        ("sme",),
        ConsentIn,
        True,
        refusals=(
            _r(404, "not-found", why="no facilitator has this id"),
            _r(409, "already-granted", why="the facilitator already has your consent"),
        ),
        optional_body=True,
    ),
    Route(
        "delete",
        "/v1/consents/{facilitator_id}",
        "Revoke a facilitator's consent; from then on it can do nothing for you",
        ("sme",),
        RevokeIn,
        True,
        refusals=(_r(404, "not-found", why="the facilitator has no current consent of yours"),),
        optional_body=True,
    ),
    Route(
        "get",
        "/v1/facilitator/smes",
        "The SMEs that consented to you, with their open listings and how stale they are"
        " (?stale_days, default 30)",
        ("facilitator",),
        query=(
            Query(
                "stale_days",
                {"type": "integer", "minimum": 1, "maximum": 3650},
                "a listing unchanged this many days is stale (default 30)",
            ),
        ),
    ),
    Route(
        "post",
        "/v1/offers/{id}/nudge",
        "Remind the SME of its offer (once a day at most); the SME is notified",
        ("facilitator",),
        NudgeIn,
        True,
        refusals=(
            _NOT_OPEN,
            _r(409, "recently-nudged", why="it was nudged less than a day ago"),
        ),
        optional_body=True,
    ),
    Route(
        "post",
        "/v1/requests/{id}/nudge",
        "Remind the SME of its request (once a day at most); the SME is notified",
        ("facilitator",),
        NudgeIn,
        True,
        refusals=(
            _NOT_OPEN,
            _r(409, "recently-nudged", why="it was nudged less than a day ago"),
        ),
        optional_body=True,
    ),
    Route(
        "put",
        "/v1/carrier/capabilities",
        "Declare coverage and fleet",
        ("logistics",),
        CapabilitiesIn,
        True,
        refusals=(
            _r(422, "unprocessable-content", why="neither a depot nor a region is declared"),
        ),
    ),
    Route(
        "get",
        "/v1/carrier/capabilities",
        "Your declared capabilities",
        ("logistics",),
        refusals=(_r(404, "not-found", why="none declared yet"),),
    ),
    Route(
        "put",
        "/v1/partners/{id}/legal",
        "Declare an organisation's legal data (legal name, address, VAT number, Peppol id) for"
        " the documents of its deals: your own, or any as the operator",
        _LEGAL_ROLES,
        LegalIn,
        True,
        refusals=(
            _r(404, "not-found", why="not your organisation (and you are not the operator)"),
            _r(
                422,
                "validation",
                why="a field is refused, each named: a VAT number not of its member state's"
                " form, a Peppol id that is not iso6523-actorid-upis::ICD:identifier with an ICD"
                " of Peppol's code list, a postal code or country not of its form",
            ),
        ),
    ),
    Route(
        "get",
        "/v1/partners/{id}/legal",
        "An organisation's legal data: your own, or any as the operator",
        _LEGAL_ROLES,
        refusals=(
            _r(404, "not-found", why="not your organisation, or no legal data declared yet"),
        ),
    ),
    # People and their e-mail preferences (producers/api/people.py).
    Route(
        "get",
        "/v1/people",
        "Your organisation's people (enabled ones): their pseudonymous id, role in the"
        " organisation (admin, member, read-only) and language; never a name or an e-mail"
        " address",
        READERS,
    ),
    Route(
        "get",
        "/v1/people/{person_id}/mail-preferences",
        "One person's e-mail preferences, as on their preferences page: for every notification"
        " kind immediate mail, the daily digest or nothing (with the default), the digest's hour"
        " and time zone (null: the organisation's country's, `time_zone_in_effect`), their"
        " language, and whether their address is confirmed (only a confirmed one gets mail)",
        READERS,
        refusals=(
            _r(
                404,
                "not-found",
                why="no enabled person of your organisation has this id (another organisation's"
                " is not found alike)",
            ),
        ),
    ),
    Route(
        "put",
        "/v1/people/{person_id}/mail-preferences",
        "Replace one person's e-mail preferences (a kind left out of `kinds` gets its default,"
        " as do digest_hour and time_zone; `language` left out stays). Answers 200 with what is"
        " stored, as the GET gives it; recorded in the person's account history",
        WRITERS,
        MailPreferencesIn,
        refusals=(
            _r(
                404,
                "not-found",
                why="no enabled person of your organisation has this id (another organisation's"
                " is not found alike)",
            ),
            _r(422, "unprocessable-content", why="a kind named twice in `kinds`"),
        ),
    ),
    Route(
        "get",
        "/v1/matches",
        "Match proposals where you are seller or buyer (a facilitator adds ?on_behalf_of=<SME>:"
        " the SME's, as the SME sees them)",
        _MATCH_ROLES,
        refusals=_ON_BEHALF_Q_REFUSED,
        query=(_ON_BEHALF_MATCHES,),
        response="Matches",
    ),
    Route(
        "get",
        "/v1/matches/{id}",
        "One of your match proposals (a facilitator: one of the SME's, ?on_behalf_of=<SME>)",
        _MATCH_ROLES,
        refusals=_ON_BEHALF_Q_REFUSED,
        query=(_ON_BEHALF_MATCHES,),
        response="Match",
    ),
    Route(
        "post",
        "/v1/matches/{id}/accept",
        "Accept a proposal (a facilitator sets on_behalf_of to the SME it answers for)",
        _MATCH_ROLES,
        AnswerIn,
        True,
        refusals=(*_ON_BEHALF_REFUSED, *_ANSWER_REFUSALS),
        optional_body=True,
    ),
    Route(
        "post",
        "/v1/matches/{id}/decline",
        "Decline a proposal (a facilitator sets on_behalf_of to the SME it answers for)",
        _MATCH_ROLES,
        AnswerIn,
        True,
        refusals=(*_ON_BEHALF_REFUSED, *_ANSWER_REFUSALS),
        optional_body=True,
    ),
    Route(
        "put",
        "/v1/matches/{id}/transport-reserve",
        "Cap the transport price of a confirmed match's job (null lifts your cap)",
        ("sme",),
        ReserveIn,
        True,
        refusals=(
            _r(409, "no-transport-job", why="the match has no transport job (yet)"),
            _BIDDING_CLOSED,
            _r(422, "currency", why="the price is not in the job's currency"),
        ),
    ),
    Route(
        "post",
        "/v1/matches/{id}/delivered",
        "Confirm that a confirmed match's material arrived (its buyer, or the carrier that won"
        " its job; delivery_id for one period of a standing agreement); the parties are asked"
        " for feedback",
        ("sme", "logistics"),
        DeliveredIn,
        True,
        refusals=(
            _r(403, "forbidden", why="the seller cannot confirm a delivery"),
            _r(404, "not-found", why="not your match, or no such delivery of it"),
            _r(409, "not-confirmed", why="the match is not confirmed"),
            _r(409, "already-delivered", why="the delivery was confirmed already"),
            _r(
                422,
                "unprocessable-content",
                why="delivery_id is needed (a standing agreement) or unexpected (a one-off)",
            ),
        ),
        optional_body=True,
    ),
    Route(
        "post",
        "/v1/matches/{id}/feedback",
        "Your feedback on a delivery (seller, buyer or carrier; once per delivery): rating 1-5,"
        " the reason that mattered most, an optional comment. A facilitator gives an SME's,"
        " with on_behalf_of",
        ("sme", "logistics", "facilitator"),
        FeedbackIn,
        True,
        refusals=(
            *_ON_BEHALF_REFUSED,
            _r(404, "not-found", why="not a party to this match or delivery"),
            _r(409, "not-confirmed", why="the match is not confirmed"),
            _r(409, "not-delivered", why="the delivery has not been confirmed yet"),
            _r(409, "already-given", why="you have given feedback on this delivery already"),
        ),
    ),
    Route(
        "get",
        "/v1/matches/{id}/feedback",
        "A match's deliveries and feedback: a party's own answers; the association's view of all",
        ("sme", "logistics", "operator", "auditor", "facilitator"),
    ),
    # The deal room of a match (producers/api/deals.py).
    Route(
        "post",
        "/v1/matches/{id}/messages",
        "Post a message to a match's deal room: text, and up to"
        f" {MAX_FILES} JPEG, PNG or PDF attachments as multipart/form-data (a JSON body carries"
        " text only). The seller, the buyer, the carrier that won the match's transport and the"
        " facilitators of a consenting SME have a place in the room; for anyone else it does not"
        " exist (404). The text and the files are stored at once; the message shows in the room"
        " once the deals consumer has its event",
        _DEALERS,
        MessageIn,
        True,
        refusals=(
            _r(
                404,
                "not-found",
                why="no match with this id, or you have no place in its deal room",
            ),
            _r(
                422,
                "attachment-refused",
                why="an attachment that is empty, larger than 5 MB, not a JPEG, PNG or PDF by"
                " its first bytes (the name and the declared type are not trusted), with a name"
                " over 200 characters, or refused by the operator's virus scanner; `errors`"
                " names it (attachments[i])",
            ),
            _r(
                422,
                "unprocessable-content",
                why="neither text (other than spaces) nor an attachment, or text holding the NUL"
                " character",
            ),
            _r(
                400,
                "malformed-body",
                why="a multipart/form-data body that is not what its Content-Type says",
            ),
        ),
        form={
            "type": "object",
            "description": "other fields are ignored",
            "properties": {
                "text": {"type": "string", "maxLength": MAX_TEXT, "examples": [TEXT_EXAMPLE]},
                "attachment": {
                    "type": "array",
                    "maxItems": MAX_FILES,
                    "items": {"type": "string", "contentMediaType": "application/octet-stream"},
                },
            },
        },
        key_in_progress=False,
    ),
    Route(
        "get",
        "/v1/matches/{id}/messages",
        "A match's deal room: the parties, every message in order with its text (checked"
        " against the SHA-256 its event recorded: `text_status` ok, altered or erased), its"
        " attachments (with links) and who has read it",
        _DEALERS,
        refusals=(
            _r(404, "not-found", why="no match with this id, or you have no place in its room"),
        ),
    ),
    Route(
        "get",
        "/v1/matches/{id}/messages/{message_id}/attachments/{attachment_id}",
        "An attachment of a message, as posted (its bytes match the SHA-256 its event recorded)",
        _DEALERS,
        content_types=MEDIA_TYPES,
        refusals=(
            _r(
                404,
                "not-found",
                why="no such match, message or attachment in a room you have a place in",
            ),
            _r(404, "erased", why="the attachment was erased with its author's personal data"),
            _r(
                409,
                "attachment-altered",
                why="the stored copy no longer matches the SHA-256 its event recorded",
            ),
        ),
    ),
    Route(
        "post",
        "/v1/matches/{id}/messages/{message_id}/read",
        "A read receipt for a message (and the ones before it): 202 when it is new, 200 when"
        " you had read it already or wrote it. Once per message and partner, whatever"
        " Idempotency-Key is sent",
        _DEALERS,
        None,
        True,
        refusals=(
            _r(
                404,
                "not-found",
                why="no match or message with this id in a room you have a place in",
            ),
        ),
        also=((200, "you had read it already, or wrote it: nothing published"),),
        key_in_progress=False,
        key_reused=False,
    ),
    # The documents of a deal (producers/api/documents.py).
    Route(
        "get",
        "/v1/matches/{id}/documents",
        "A deal's documents (order, transport document, delivery report): for each, its current"
        " version (built from the deal's events when listed; a changed content is stored as the"
        " next version), who issues it, whether it is approved, the legal data it lacks, links to"
        " its PDF and JSON and its earlier versions, or why it does not exist yet; the"
        " carrier's pickup and delivery confirmations; and the deal's invoices (material,"
        " transport): issued (number, date, amount due, links to the UBL XML and the PDF), ready,"
        " incomplete (the legal data field missing) or not yet (why)",
        _DEALERS,
        refusals=(_NO_ROOM,),
    ),
    Route(
        "get",
        "/v1/matches/{id}/documents/{kind}/{version}.{fmt}",
        "One version of a deal's document: the PDF for people or the JSON for systems (its"
        " content, SHA-256 and approval). The stored content is checked against the SHA-256 it"
        " was stored and approved under",
        _DEALERS,
        content_types=("application/pdf", "application/json"),
        refusals=(
            _r(
                404,
                "not-found",
                why="no match with this id or no place in its deal room; no such document"
                " kind; no such version",
            ),
            _DOCUMENT_ALTERED,
        ),
    ),
    Route(
        "get",
        "/v1/matches/{id}/invoices/{kind}.{fmt}",
        "An issued invoice of a deal: its UBL XML (EN 16931) or a PDF rendering of it. The stored"
        " XML is checked against the SHA-256 it was issued with. Invoices are issued on the pages",
        _DEALERS,
        content_types=("application/xml", "application/pdf"),
        refusals=(
            _r(
                404,
                "not-found",
                why="no match with this id or no place in its deal room; no such invoice kind;"
                " not issued yet",
            ),
            _INVOICE_ALTERED,
        ),
        path_params=(
            ("kind", {"enum": list(INVOICE_KINDS), "description": "the invoice"}),
            ("fmt", {"enum": ["xml", "pdf"], "description": "the UBL XML or its PDF"}),
        ),
    ),
    Route(
        "post",
        "/v1/matches/{id}/documents/{kind}/{version}/approve",
        "Approve the current version of a document as its issuer (the buyer, or a facilitator"
        " acting for it, the order and the delivery report; the awarded carrier the transport"
        " document): 202 when the approval is published, 200 when that version was approved"
        " already. Once per version, whatever Idempotency-Key is sent",
        _DEALERS,
        None,
        True,
        refusals=(
            _r(
                404,
                "not-found",
                why="no match with this id or no place in its deal room; no such document"
                " kind; no such version",
            ),
            *_APPROVAL_REFUSALS,
        ),
        also=((200, "that version was approved already: nothing published"),),
        key_in_progress=False,
        key_reused=False,
    ),
    Route(
        "post",
        "/v1/matches/{id}/transport/{stage}",
        "The carrier that won the transport confirms the pickup or the delivery with the weight"
        " it measured (a delivery after a pickup; a second confirmation of a stage corrects the"
        " first); the transport document and the delivery report are built from them",
        _DEALERS,
        TransportIn,
        True,
        refusals=(
            _NO_ROOM,
            _r(404, "not-found", why="no such stage"),
            _r(403, "not-carrier", why="you are not the carrier in the deal room"),
            _r(
                409,
                "not-awarded",
                why="the deal's events do not (yet) say the transport is awarded to you",
            ),
            _r(
                409,
                "per-period",
                why="a standing agreement's transport is confirmed per delivery period (POST"
                " /v1/matches/{id}/deliveries/{delivery_id}/transport/{stage})",
            ),
            _r(409, "not-picked-up", why="a delivery confirmed before the pickup"),
            _r(422, "unprocessable-content", why="`at` of the delivery is before the pickup's"),
        ),
    ),
    # A standing agreement's document set per delivery period (producers/api/periods.py).
    Route(
        "get",
        "/v1/matches/{id}/deliveries",
        "A standing agreement's delivery periods as the deals consumer has them, oldest first:"
        " each with its delivery id, period key, quantity, windows, transport job and the path of"
        " its documents (a carrier sees the periods it carries only; a one-off match has none)",
        _DEALERS,
        refusals=(_NO_ROOM,),
    ),
    Route(
        "get",
        "/v1/matches/{id}/deliveries/{delivery_id}/documents",
        "One delivery period's documents as GET /v1/matches/{id}/documents lists a match's: its"
        " order (the period's quantity, price and windows), the transport document of its job's"
        " carrier, its delivery report, the carrier's confirmations and its invoices",
        _DEALERS,
        refusals=(_NO_PERIOD,),
    ),
    Route(
        "get",
        "/v1/matches/{id}/deliveries/{delivery_id}/documents/{kind}/{version}.{fmt}",
        "One version of a delivery period's document: the PDF or the JSON, checked against its"
        " SHA-256 as a match's",
        _DEALERS,
        content_types=("application/pdf", "application/json"),
        refusals=(
            _NO_PERIOD,
            _r(404, "not-found", why="no such document kind; no such version"),
            _DOCUMENT_ALTERED,
        ),
    ),
    Route(
        "post",
        "/v1/matches/{id}/deliveries/{delivery_id}/documents/{kind}/{version}/approve",
        "Approve the current version of a delivery period's document as its issuer (as for a"
        " match's): 202 when the approval is published, 200 when approved already",
        _DEALERS,
        None,
        True,
        refusals=(
            _NO_PERIOD,
            _r(404, "not-found", why="no such document kind; no such version"),
            *_APPROVAL_REFUSALS,
        ),
        also=((200, "that version was approved already: nothing published"),),
        key_in_progress=False,
        key_reused=False,
    ),
    Route(
        "post",
        "/v1/matches/{id}/deliveries/{delivery_id}/transport/{stage}",
        "The carrier that won a delivery period's transport job confirms its pickup or delivery"
        " with the weight it measured; the period's transport document and delivery report are"
        " built from them, and the delivered weight counts in the KPIs",
        _DEALERS,
        TransportIn,
        True,
        refusals=(
            _NO_PERIOD,
            _r(404, "not-found", why="no such stage"),
            _r(403, "not-carrier", why="you are not the period's carrier"),
            _r(409, "not-awarded", why="the period's transport is not (yet) awarded to you"),
            _r(409, "not-picked-up", why="a delivery confirmed before the pickup"),
            _r(422, "unprocessable-content", why="`at` of the delivery is before the pickup's"),
        ),
    ),
    Route(
        "get",
        "/v1/matches/{id}/deliveries/{delivery_id}/invoices/{kind}.{fmt}",
        "An issued invoice of a delivery period: its UBL XML (EN 16931) or a PDF rendering of"
        " it, checked against its SHA-256. Invoices are issued on the pages",
        _DEALERS,
        content_types=("application/xml", "application/pdf"),
        refusals=(
            _NO_PERIOD,
            _r(404, "not-found", why="no such invoice kind; not issued yet"),
            _INVOICE_ALTERED,
        ),
        path_params=(
            ("kind", {"enum": list(INVOICE_KINDS), "description": "the invoice"}),
            ("fmt", {"enum": ["xml", "pdf"], "description": "the UBL XML or its PDF"}),
        ),
    ),
    Route(
        "get",
        "/v1/feedback",
        "Every feedback answer in the period, newest first, with who gave it (?from&to&limit)",
        ("operator", "auditor", "facilitator"),
        refusals=(_PERIOD_REFUSED,),
        query=(
            _FROM,
            _TO,
            Query("limit", {"type": "integer", "minimum": 1, "maximum": 1000}, "default 200"),
        ),
    ),
    Route(
        "get",
        "/v1/feedback/summary",
        "Feedback KPIs (deliveries, response rate, answers, mean rating, low ratings) by"
        " ?slice=total|minute|hour|day|month|region|chapter|sector, and by reason (?from&to)",
        ("operator", "auditor", "facilitator"),
        refusals=(_PERIOD_REFUSED,),
        query=(_FROM, _TO, _SLICE),
    ),
    Route(
        "get",
        "/v1/jobs",
        "Open transport jobs that fit your coverage",
        ("logistics",),
        refusals=(_NO_CAPS,),
    ),
    Route(
        "get",
        "/v1/jobs/{id}",
        "One transport job offered to you",
        ("logistics",),
        refusals=(_NO_CAPS,),
    ),
    Route(
        "get",
        "/v1/jobs/{id}/quotes",
        "Your quotes on a job",
        ("logistics",),
        refusals=(_NO_CAPS,),
    ),
    Route(
        "post",
        "/v1/jobs/{id}/quotes",
        "Submit a quote, or revise one by quote_id",
        ("logistics",),
        QuoteIn,
        True,
        refusals=(
            _NO_CAPS,
            _BIDDING_CLOSED,
            _r(409, "not-open", why="the quote to revise is withdrawn or closed"),
            _r(404, "not-found", why="quote_id names no quote of yours on this job"),
            _r(
                422,
                "unprocessable-content",
                why="the vehicle is not among your declared vehicle types, or pickup_at falls"
                " outside the job's pickup window",
            ),
        ),
    ),
    Route(
        "delete",
        "/v1/jobs/{id}/quotes/{quote_id}",
        "Withdraw your quote",
        ("logistics",),
        None,
        True,
        refusals=(
            _NO_CAPS,
            _BIDDING_CLOSED,
            _r(409, "not-open", why="the quote is withdrawn already"),
        ),
    ),
    Route(
        "post",
        "/v1/webhooks",
        "Register a webhook endpoint; the answer (201) shows its signing secret once",
        ("any",),
        EndpointIn,
        status=201,
        refusals=(
            _r(
                422,
                "unprocessable-content",
                why="an unknown notification kind, or a URL that cannot receive webhooks (not"
                " http(s), or an address outside the networks the operator allows)",
            ),
            _r(409, "too-many", why="you have the most endpoints a partner may have"),
            _r(503, "service-unavailable", why="the operator's secret keys are unusable"),
        ),
    ),
    Route("get", "/v1/webhooks", "Your webhook endpoints", ("any",)),
    Route("get", "/v1/webhooks/{id}", "One of your webhook endpoints", ("any",)),
    Route(
        "post",
        "/v1/webhooks/{id}/rotate-secret",
        "A new signing secret (shown once); the old one signs beside it for overlap_s",
        ("any",),
        RotateIn,
        refusals=(_r(503, "service-unavailable", why="the operator's secret keys are unusable"),),
        optional_body=True,
    ),
    Route("delete", "/v1/webhooks/{id}", "Delete an endpoint (204)", ("any",), status=204),
    Route(
        "get", "/v1/webhooks/dead-letters", "Your deliveries that failed every attempt", ("any",)
    ),
    Route(
        "post",
        "/v1/webhooks/dead-letters/{id}/redeliver",
        "Send a dead-lettered delivery again, attempts from zero",
        ("any",),
    ),
    Route(
        "get",
        "/v1/notifications",
        "Your notifications, oldest first (?after=<notification id>&limit)",
        ("any",),
        refusals=(_r(404, "not-found", why="`after` names no notification of yours"),),
        query=(
            Query(
                "after", {"type": "string", "pattern": _NO_NUL}, "resume after this notification id"
            ),
            Query("limit", {"type": "integer", "minimum": 1, "maximum": 500}, "default 100"),
        ),
    ),
    Route(
        "get",
        "/v1/notifications/stream",
        "Your notifications as Server-Sent Events; resumes after Last-Event-ID or ?after",
        ("any",),
        content_type="text/event-stream",
        refusals=(_r(404, "not-found", why="`after` names no notification of yours"),),
        query=(
            Query(
                "after", {"type": "string", "pattern": _NO_NUL}, "resume after this notification id"
            ),
        ),
    ),
    Route(
        "get",
        "/v1/notifications/ws",
        "Your notifications over a WebSocket (key in Authorization or a first message "
        '{"type":"auth","api_key":...,"after":...})',
        status=101,
    ),
    Route(
        "get",
        "/sme",
        "The SME web page: listings, live proposals, accept or decline (HTML; data needs a key)",
        content_type="text/html",
    ),
)

PROBLEM_BASE = "https://circular-exchange.example/problems/"

PROBLEM: dict[str, Any] = {
    "type": "object",
    "description": "RFC 9457 problem details. The last part of `type` names the problem: each"
    " response of an operation lists the ones it may be. `validation`: the request breaks this"
    " document (a field of the wrong type or value, an unknown field, a missing one);"
    " `unprocessable-content` and the named kinds: a request this document allows that a rule"
    " of the exchange refuses.",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {"type": "string", "format": "uri"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "instance": {"type": "string"},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"field": {"type": "string"}, "reason": {"type": "string"}},
            },
        },
    },
}

# A match as GET /v1/matches(/{id}) gives it: the MatchProposed's fields (the AsyncAPI document
# describes them) and the read model's. Only what the fields' meaning needs is written out.
_ROUGH = (
    " Until the match is confirmed this is rounded (to 5 km below 50 km, to 10 km above) and"
    " `distance_exact` is false: the exact figure would narrow the other firm's rounded place"
    " to a ring. Once confirmed (status confirmed, or ended) it is the matcher's exact figure."
)
MATCH: dict[str, Any] = {
    "type": "object",
    "description": "A match proposal as its firms see it. The event on Kafka keeps the exact"
    " distance; this read says it roughly until the match is confirmed.",
    "required": ["match_id", "status", "your_side", "distance_km", "distance_exact"],
    "properties": {
        "match_id": {"type": "string"},
        "status": {"enum": ["proposed", "confirmed", "ended", "expired", "cancelled"]},
        "your_side": {"enum": ["seller", "buyer"]},
        "distance_km": {
            "type": "number",
            "minimum": 0,
            "description": "great-circle distance between the two firms' places, km." + _ROUGH,
        },
        "distance_exact": {
            "type": "boolean",
            "description": "whether `distance_km` (and the `distance_km` reason and the"
            " `max_distance_km` criterion) are exact: true once the match is confirmed",
        },
        "reasons": {
            "type": "array",
            "description": "why this pair; the `distance_km` factor's value is rounded like"
            " `distance_km` until the match is confirmed",
            "items": {
                "type": "object",
                "required": ["factor", "value"],
                "properties": {
                    "factor": {"type": "string"},
                    "value": {"type": "number"},
                    "note": {"type": "string"},
                },
            },
        },
        "criteria": {
            "type": "array",
            "description": "the buyer's specification, criterion by criterion; the"
            " `max_distance_km` criterion's `offered` says the distance roughly (\"about 40"
            ' km") until the match is confirmed',
            "items": {"type": "object"},
        },
    },
}
EVENTUAL = (
    " Reads come from read models that the projector keeps from the events: a read right after"
    " a 202 may not show the write yet (eventually consistent, normally within a second)."
)


def _problem(status: int, refusals: list[Refusal]) -> dict[str, Any]:
    kinds = sorted({k for r in refusals for k in r.kinds})
    why = "; ".join(dict.fromkeys(r.why for r in refusals))
    return {
        "description": f"{why} (problem type: {', '.join(kinds)})",
        "content": {
            "application/problem+json": {
                "schema": {
                    "allOf": [
                        {"$ref": "#/components/schemas/Problem"},
                        {
                            "properties": {
                                "status": {"const": status},
                                "type": {"enum": [PROBLEM_BASE + k for k in kinds]},
                            }
                        },
                    ]
                }
            }
        },
    }


def refusals(r: Route) -> list[Refusal]:
    """Every refusal of the route: those of every route of its kind, then its own."""
    out: list[Refusal] = [_r(400, "validation", why="a NUL character in the path or query")]
    if r.roles:
        out += [
            _r(401, "unauthorized", why="no API key, or one that is not valid"),
            _r(429, "too-many-requests", why="the key's rate limit; see Retry-After"),
            _r(
                503,
                "database-unavailable",
                why="the database cannot be reached; nothing was stored, see Retry-After",
            ),
        ]
        if r.roles != ("any",):
            out.append(_r(403, "forbidden", why=f"your role is not {' or '.join(r.roles)}"))
    if "{" in r.path:
        out.append(_r(404, "not-found", why="not found among your own resources"))
    if r.body is not None:
        out += [
            _r(400, "malformed-json", why="the body is not JSON"),
            _r(413, "payload-too-large", why="the body is too large"),
            _r(
                422,
                "validation",
                why="the body breaks its schema; `errors` names every field at fault",
            ),
            _r(
                422,
                "unprocessable-content",
                why="text (a value or a key) holding the NUL character (U+0000), which the"
                " exchange cannot store",
            ),
        ]
        if not r.optional_body:
            out.append(_r(415, "unsupported-media-type", why="the body is not application/json"))
    if r.write:
        out.append(_r(400, "bad-request", why="an Idempotency-Key that is empty or too long"))
        if r.key_in_progress:
            out.append(
                _r(
                    409,
                    "idempotency-key-in-progress",
                    why="a request with this Idempotency-Key is still being answered"
                    " (see Retry-After)",
                )
            )
        if r.key_reused:
            out.append(
                _r(
                    422,
                    "idempotency-key-reused",
                    why="this Idempotency-Key was used for a different request",
                )
            )
        out += [
            _r(
                503,
                "service-unavailable",
                why="Kafka cannot take the event now; nothing was published, see Retry-After",
            ),
        ]
    if r.query:
        listing = r.path in ("/v1/offers", "/v1/requests")
        out.append(
            _r(400 if listing else 422, "validation", why="a query parameter breaks its schema")
        )
    return [*out, *r.refusals]


def _waste_codes() -> list[str]:
    return sorted(e.code for e in list_of_waste().entries())


def _times(kinds: list[type], schemas: dict[str, Any]) -> None:
    """msgspec describes a datetime or a date as a bare string: each such field of a body
    schema gets its format and the pattern the decoder takes."""
    seen: set[str] = set()

    def fmt(t: mi.Type) -> dict[str, Any] | None:
        while isinstance(t, mi.Metadata):
            t = t.type
        if isinstance(t, mi.DateTimeType):
            return {"type": "string", "format": "date-time", "pattern": DATE_TIME_PATTERN}
        if isinstance(t, mi.DateType):
            return {"type": "string", "format": "date", "pattern": DATE_PATTERN}
        return None

    def walk(t: mi.Type) -> None:
        while isinstance(t, mi.Metadata):
            t = t.type
        if isinstance(t, mi.UnionType):
            for member in t.types:
                walk(member)
        elif isinstance(t, (mi.CollectionType,)):
            walk(t.item_type)
        elif isinstance(t, mi.StructType) and t.cls.__name__ not in seen:
            seen.add(t.cls.__name__)
            props = schemas.get(t.cls.__name__, {}).get("properties", {})
            for f in t.fields:
                inner = f.type
                while isinstance(inner, mi.Metadata):
                    inner = inner.type
                members = inner.types if isinstance(inner, mi.UnionType) else (inner,)
                for m in members:
                    found = fmt(m)
                    if found is not None and f.encode_name in props:
                        prop = props[f.encode_name]
                        if "anyOf" in prop:
                            prop["anyOf"] = [
                                found if a == {"type": "string"} else a for a in prop["anyOf"]
                            ]
                        else:
                            props[f.encode_name] = {**prop, **found}
                walk(f.type)

    for kind in kinds:
        walk(mi.type_info(kind))


def _exact(node: Any) -> Any:
    """The body schemas as the API reads them: every `WasteCode` (msgspec writes its pattern
    inline) a reference to one schema with the List of Waste's entries; every time and date
    with the pattern the decoder takes."""
    if isinstance(node, dict):
        if node.get("type") == "string" and node.get("pattern") == WASTE_CODE_PATTERN:
            return {"$ref": "#/components/schemas/WasteCode"}
        if node.get("type") == "string" and node.get("format") == "date-time":
            return {**node, "pattern": DATE_TIME_PATTERN}
        if node.get("type") == "string" and node.get("format") == "date":
            return {**node, "pattern": DATE_PATTERN}
        return {k: _exact(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_exact(v) for v in node]
    return node


def document() -> dict[str, Any]:
    bodies = sorted({r.body for r in ROUTES if r.body is not None}, key=lambda t: t.__name__)
    _, schemas = msgspec.json.schema_components(bodies, ref_template="#/components/schemas/{name}")
    # The API refuses unknown fields at every level of a body (producers/api/bodies.py), though
    # the same shapes in events stay open: here every object says so.
    for schema in schemas.values():
        if schema.get("type") == "object":
            schema["additionalProperties"] = False
    _times(bodies, schemas)
    schemas = _exact(schemas)
    schemas["WasteCode"] = {
        "type": "string",
        "pattern": WASTE_CODE_PATTERN,
        "description": "an entry of the European List of Waste (Commission Decision"
        " 2000/532/EC), six digits; a code of the pattern that is no entry is refused 422"
        " unknown-waste-code",
        "enum": _waste_codes(),
    }
    schemas["Problem"] = PROBLEM
    schemas["Accepted"] = {
        "type": "object",
        "description": "The write is an event on Kafka; what it changes shows in the reads once"
        " the projector has it (eventually consistent).",
        "required": ["status", "event_id"],
        "properties": {
            "status": {"const": "accepted"},
            "event_id": {"type": "string", "description": "the CloudEvent id on Kafka"},
            "matchable": {
                "type": "boolean",
                "description": "offers and requests: whether it can be matched now",
            },
            "findings": {
                "type": "array",
                "description": "offers and requests: what stands between it and a match",
                "items": {"$ref": "#/components/schemas/Finding"},
            },
            "attachment_ids": {
                "type": "array",
                "description": "a deal-room message: the ids of its attachments, in order",
                "items": {"type": "string"},
            },
        },
        # Ids of what was made; a consent's answer adds `in_effect` (a boolean).
        "additionalProperties": {"type": ["string", "boolean"]},
    }
    schemas["Match"] = MATCH
    schemas["Matches"] = {
        "type": "object",
        "required": ["items"],
        "properties": {
            "items": {
                "type": "array",
                "description": "newest first, at most 200",
                "items": {"$ref": "#/components/schemas/Match"},
            }
        },
    }
    schemas["Finding"] = {
        "type": "object",
        "required": ["code", "blocking", "detail"],
        "properties": {
            "code": {"enum": list(get_args(FindingCode))},
            "blocking": {"type": "boolean", "description": "no match can form while it holds"},
            "detail": {"type": "string"},
        },
    }
    paths: dict[str, dict[str, Any]] = {}
    for r in ROUTES:
        op: dict[str, Any] = {"summary": r.summary, "responses": {}}
        notes = []
        if r.roles:
            op["security"] = [{"apiKey": []}]
            if r.roles != ("any",):
                notes.append(f"Role: {', '.join(r.roles)}.")
        else:
            op["security"] = []
        if r.write:
            notes.append(
                "A command: answered 202 once the event is on Kafka; a read of what it"
                " changes may not show it at once." + EVENTUAL
            )
        elif r.method == "get" and r.roles:
            notes.append(EVENTUAL.strip())
        if notes:
            op["description"] = " ".join(notes)
        names = [
            n
            for n in (
                "id",
                "quote_id",
                "facilitator_id",
                "message_id",
                "attachment_id",
                "person_id",
                "delivery_id",
                *_PATH_SCHEMAS,
            )
            if "{" + n + "}" in r.path
        ]
        params: list[dict[str, Any]] = [
            {
                "name": n,
                "in": "path",
                "required": True,
                "schema": dict(r.path_params).get(n, _PATH_SCHEMAS.get(n, _ID_SCHEMA)),
            }
            for n in names
        ]
        params += [
            {
                "name": q.name,
                "in": "query",
                "required": False,
                "schema": q.schema,
                "description": q.description,
            }
            for q in r.query
        ]
        if r.body is not None:
            op["requestBody"] = {
                "required": not r.optional_body,
                "content": {
                    "application/json": {
                        "schema": {"$ref": f"#/components/schemas/{r.body.__name__}"}
                    }
                },
            }
            if r.form is not None:
                op["requestBody"]["content"]["multipart/form-data"] = {"schema": r.form}
        if r.write:
            params.append(
                {
                    "name": "Idempotency-Key",
                    "in": "header",
                    "required": False,
                    "schema": {"type": "string", "minLength": 1, "maxLength": 200},
                    "description": "requests with the same key, one after the other or at"
                    " once, publish once and all get the first answer (a different request"
                    " with a used key: 422 idempotency-key-reused)",
                },
            )
            op["responses"]["202"] = {
                "description": "accepted: the event is on Kafka (reads follow eventually)",
                "content": {
                    "application/json": {"schema": {"$ref": "#/components/schemas/Accepted"}}
                },
            }
            if r.location is not None:
                op["responses"]["202"]["description"] += f"; {r.location}"
                op["responses"]["202"]["headers"] = {
                    "Location": {
                        "description": r.location,
                        "schema": {"type": "string", "format": "uri-reference"},
                    }
                }
            for status, meaning in r.also:
                op["responses"][str(status)] = {
                    "description": meaning,
                    "content": {"application/json": {}},
                }
        elif r.status in (101, 204):
            op["responses"][str(r.status)] = {"description": "OK"}
        elif r.response is not None:
            op["responses"][str(r.status)] = {
                "description": "OK",
                "content": {
                    "application/json": {"schema": {"$ref": f"#/components/schemas/{r.response}"}}
                },
            }
        else:
            types = r.content_types or (r.content_type,)
            op["responses"][str(r.status)] = {
                "description": "OK",
                "content": {t: {} for t in types},
            }
        if r.path == "/readyz":
            op["responses"]["503"] = {
                "description": "not ready: `checks` says which dependency is not",
                "content": {"application/json": {}},
            }
        if params:
            op["parameters"] = params
        by_status: dict[int, list[Refusal]] = {}
        for refusal in refusals(r):
            by_status.setdefault(refusal.status, []).append(refusal)
        for status in sorted(by_status):
            op["responses"][str(status)] = _problem(status, by_status[status])
        paths.setdefault(r.path, {})[r.method] = op
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Circular materials exchange: partner API",
            "version": "1",
            "description": "Writes are commands answered 202 with the event id; reads come "
            "from read models, eventually consistent with the writes. Every refusal an "
            "operation can give is listed with its status and problem types. Generated by "
            "`python -m marketplace.app.generate`; do not edit.",
        },
        "servers": [{"url": "http://127.0.0.1:8080"}],
        "components": {
            "schemas": schemas,
            "securitySchemes": {"apiKey": {"type": "http", "scheme": "bearer"}},
        },
        "paths": paths,
    }
