"""The OpenAPI 3.1 document of the partner API, built from the routes' body types.

Served at /openapi.json and checked in as schemas/openapi.json (written by
`python -m marketplace.app.generate`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, get_args

import msgspec

from marketplace.core.eligibility import FindingCode
from producers.api.bodies import (
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
from producers.api.facilitators import ConsentIn, NudgeIn, RevokeIn
from producers.api.feedback import DeliveredIn, FeedbackIn
from producers.api.webhooks import EndpointIn, RotateIn


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


# Listings are written by their SME, or by a facilitator for an SME that consented (#11).
_WRITERS = ("sme", "facilitator")
# Routes whose body or query may name the SME a facilitator acts for (`on_behalf_of`).
_ON_BEHALF = ("/v1/offers", "/v1/requests", "/v1/requests/preview")

ROUTES: tuple[Route, ...] = (
    Route("get", "/healthz", "Liveness: the process is up"),
    Route("get", "/readyz", "Readiness: PostgreSQL and Kafka answer"),
    Route(
        "get",
        "/dashboard",
        "The association's dashboard (HTML; data needs a key)",
        content_type="text/html",
    ),
    Route("get", "/audit/public-key", "The Ed25519 key that signs the audit log's checkpoints"),
    Route("get", "/v1/me", "The calling partner's profile", ("any",)),
    Route(
        "get",
        "/v1/impact",
        "Impact KPIs (?from&to&slice=total|minute|hour|day|month|region|chapter|sector"
        "&partner); an SME gets its own",
        ("sme", "operator", "auditor", "facilitator"),
    ),
    Route(
        "get",
        "/v1/impact/flows",
        "Confirmed matches with their pickup and delivery places (?from&to&partner)",
        ("sme", "operator", "auditor", "facilitator"),
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
    ),
    Route(
        "get",
        "/v1/offers",
        "List your offers (?status=open|withdrawn&limit&offset; a facilitator adds"
        " ?on_behalf_of=<SME>)",
        _WRITERS,
    ),
    Route("get", "/v1/offers/{id}", "Read one of your offers", _WRITERS),
    Route("put", "/v1/offers/{id}", "Replace an offer's terms", _WRITERS, OfferTermsIn, True),
    Route("delete", "/v1/offers/{id}", "Withdraw an offer", _WRITERS, WithdrawIn, True),
    Route(
        "post",
        "/v1/requests",
        "Post a request (a facilitator sets on_behalf_of to an SME that consented)",
        _WRITERS,
        RequestIn,
        True,
    ),
    Route(
        "post",
        "/v1/requests/preview",
        "Preview a draft request: the open offers its specification would meet, criterion by"
        " criterion, and why the others would not. Publishes nothing",
        ("sme", "facilitator", "operator"),
        RequestIn,
    ),
    Route("get", "/v1/requests", "List your requests (facilitator: ?on_behalf_of)", _WRITERS),
    Route("get", "/v1/requests/{id}", "Read one of your requests", _WRITERS),
    Route("put", "/v1/requests/{id}", "Replace a request's terms", _WRITERS, RequestTermsIn, True),
    Route("delete", "/v1/requests/{id}", "Withdraw a request", _WRITERS, WithdrawIn, True),
    Route(
        "get",
        "/v1/consents",
        "The facilitators you let act for you, current and revoked",
        ("sme",),
    ),
    Route(
        "post",
        "/v1/consents/{facilitator_id}",
        "Let a facilitator of the association post, change and withdraw your listings",
        ("sme",),
        ConsentIn,
        True,
    ),
    Route(
        "delete",
        "/v1/consents/{facilitator_id}",
        "Revoke a facilitator's consent; from then on it can do nothing for you",
        ("sme",),
        RevokeIn,
        True,
    ),
    Route(
        "get",
        "/v1/facilitator/smes",
        "The SMEs that consented to you, with their open listings and how stale they are"
        " (?stale_days, default 30)",
        ("facilitator",),
    ),
    Route(
        "post",
        "/v1/offers/{id}/nudge",
        "Remind the SME of its offer (once a day at most); the SME is notified",
        ("facilitator",),
        NudgeIn,
        True,
    ),
    Route(
        "post",
        "/v1/requests/{id}/nudge",
        "Remind the SME of its request (once a day at most); the SME is notified",
        ("facilitator",),
        NudgeIn,
        True,
    ),
    Route(
        "put",
        "/v1/carrier/capabilities",
        "Declare coverage and fleet",
        ("logistics",),
        CapabilitiesIn,
        True,
    ),
    Route("get", "/v1/carrier/capabilities", "Your declared capabilities", ("logistics",)),
    Route("get", "/v1/matches", "Match proposals where you are seller or buyer", ("sme",)),
    Route("get", "/v1/matches/{id}", "One of your match proposals", ("sme",)),
    Route("post", "/v1/matches/{id}/accept", "Accept a proposal", ("sme",), AnswerIn, True),
    Route("post", "/v1/matches/{id}/decline", "Decline a proposal", ("sme",), AnswerIn, True),
    Route(
        "put",
        "/v1/matches/{id}/transport-reserve",
        "Cap the transport price of a confirmed match's job (null lifts your cap)",
        ("sme",),
        ReserveIn,
        True,
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
    ),
    Route(
        "post",
        "/v1/matches/{id}/feedback",
        "Your feedback on a delivery (seller, buyer or carrier; once per delivery): rating 1-5,"
        " the reason that mattered most, an optional comment",
        ("sme", "logistics"),
        FeedbackIn,
        True,
    ),
    Route(
        "get",
        "/v1/matches/{id}/feedback",
        "A match's deliveries and feedback: a party's own answers; the association's view of all",
        ("sme", "logistics", "operator", "auditor", "facilitator"),
    ),
    Route(
        "get",
        "/v1/feedback",
        "Every feedback answer in the period, newest first, with who gave it (?from&to&limit)",
        ("operator", "auditor", "facilitator"),
    ),
    Route(
        "get",
        "/v1/feedback/summary",
        "Feedback KPIs (deliveries, response rate, answers, mean rating, low ratings) by"
        " ?slice=total|minute|hour|day|month|region|chapter|sector, and by reason (?from&to)",
        ("operator", "auditor", "facilitator"),
    ),
    Route("get", "/v1/jobs", "Open transport jobs that fit your coverage", ("logistics",)),
    Route("get", "/v1/jobs/{id}", "One transport job offered to you", ("logistics",)),
    Route("get", "/v1/jobs/{id}/quotes", "Your quotes on a job", ("logistics",)),
    Route(
        "post",
        "/v1/jobs/{id}/quotes",
        "Submit a quote, or revise one by quote_id",
        ("logistics",),
        QuoteIn,
        True,
    ),
    Route(
        "delete",
        "/v1/jobs/{id}/quotes/{quote_id}",
        "Withdraw your quote",
        ("logistics",),
        None,
        True,
    ),
    Route(
        "post",
        "/v1/webhooks",
        "Register a webhook endpoint; the answer (201) shows its signing secret once",
        ("any",),
        EndpointIn,
        status=201,
    ),
    Route("get", "/v1/webhooks", "Your webhook endpoints", ("any",)),
    Route("get", "/v1/webhooks/{id}", "One of your webhook endpoints", ("any",)),
    Route(
        "post",
        "/v1/webhooks/{id}/rotate-secret",
        "A new signing secret (shown once); the old one signs beside it for overlap_s",
        ("any",),
        RotateIn,
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
    ),
    Route(
        "get",
        "/v1/notifications/stream",
        "Your notifications as Server-Sent Events; resumes after Last-Event-ID or ?after",
        ("any",),
        content_type="text/event-stream",
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

PROBLEM: dict[str, Any] = {
    "type": "object",
    "description": "RFC 9457 problem details",
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


def _problem(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {
            "application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}
        },
    }


def document() -> dict[str, Any]:
    bodies = sorted({r.body for r in ROUTES if r.body is not None}, key=lambda t: t.__name__)
    _, schemas = msgspec.json.schema_components(bodies, ref_template="#/components/schemas/{name}")
    # The API refuses unknown fields at every level of a body (producers/api/bodies.py), though
    # the same shapes in events stay open: here every object says so.
    for schema in schemas.values():
        if schema.get("type") == "object":
            schema["additionalProperties"] = False
    schemas["Problem"] = PROBLEM
    schemas["Accepted"] = {
        "type": "object",
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
        },
        # Ids of what was made; a consent's answer adds `in_effect` (a boolean).
        "additionalProperties": {"type": ["string", "boolean"]},
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
        if r.roles:
            op["security"] = [{"apiKey": []}]
            if r.roles != ("any",):
                op["description"] = f"Role: {', '.join(r.roles)}."
            op["responses"]["401"] = _problem("no valid API key")
            op["responses"]["429"] = _problem("rate limit; see Retry-After")
        else:
            op["security"] = []
        names = [n for n in ("id", "quote_id", "facilitator_id") if "{" + n + "}" in r.path]
        if names:
            op["parameters"] = [
                {"name": n, "in": "path", "required": True, "schema": {"type": "string"}}
                for n in names
            ]
            op["responses"]["404"] = _problem("not found among your own resources")
        if "facilitator" in r.roles and r.path in _ON_BEHALF:
            op["responses"]["404"] = _problem(
                "on_behalf_of names no SME that has consented to you (as for one that is not)"
            )
        if r.body is not None:
            op["requestBody"] = {
                "required": r.method != "delete",
                "content": {
                    "application/json": {
                        "schema": {"$ref": f"#/components/schemas/{r.body.__name__}"}
                    }
                },
            }
        if r.write:
            op["parameters"] = [
                *op.get("parameters", []),
                {
                    "name": "Idempotency-Key",
                    "in": "header",
                    "required": False,
                    "schema": {"type": "string", "maxLength": 200},
                    "description": "requests with the same key, one after the other or at"
                    " once, publish once and all get the first answer (a different request"
                    " with a used key: 422 idempotency-key-reused)",
                },
            ]
            op["responses"]["202"] = {
                "description": "accepted: the event is on Kafka",
                "content": {
                    "application/json": {"schema": {"$ref": "#/components/schemas/Accepted"}}
                },
            }
            op["responses"]["400"] = _problem("malformed JSON")
            op["responses"]["403"] = _problem("your role cannot do this")
            op["responses"]["413"] = _problem("body too large")
            op["responses"]["422"] = _problem("invalid field; `errors` names it")
            busy = "idempotency-key-in-progress: a request with this Idempotency-Key is still"
            busy += " being answered (see Retry-After)"
            if (
                r.method in ("put", "delete")
                or r.path.endswith(
                    ("/accept", "/decline", "/quotes", "/nudge", "/delivered", "/feedback")
                )
                or r.path.startswith("/v1/consents/")
            ):
                op["responses"]["409"] = _problem(f"not open any more; or {busy}")
            else:
                op["responses"]["409"] = _problem(busy)
        else:
            op["responses"][str(r.status)] = {
                "description": "OK",
                "content": {r.content_type: {}} if r.status not in (101, 204) else {},
            }
        paths.setdefault(r.path, {})[r.method] = op
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Circular materials exchange: partner API",
            "version": "1",
            "description": "Writes are commands answered 202 with the event id; reads come "
            "from read models. Generated by `python -m marketplace.app.generate`; do not edit.",
        },
        "servers": [{"url": "http://127.0.0.1:8080"}],
        "components": {
            "schemas": schemas,
            "securitySchemes": {"apiKey": {"type": "http", "scheme": "bearer"}},
        },
        "paths": paths,
    }
