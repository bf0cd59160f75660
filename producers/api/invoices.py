"""The invoices of a deal (#22 item 2) in its room: the material invoice, issued by the party
that is paid once the buyer has approved the delivery report, and the carrier's transport
invoice to the seller once the carrier confirmed the delivery (who and at what price:
marketplace/core/deal_invoices.py). Each is numbered without gaps per issuer and recorded with
its UBL XML (marketplace.partners.issue_invoice, table `invoices`), then announced by
`market.deal.invoice_issued.v1` on `market.deals`, keyed by the match, so it is in the audit
log with the documents' approvals. Downloaded as the XML or as a PDF rendering of it, by the
deal room's participants only (producers/api/deals.py `room_of`: anyone else gets 404); every
download checks the stored XML against the SHA-256 it was recorded with.

The pages call these (producers/web/invoices.py). The partner API lists them with the deal's
documents and serves their files; they are issued on the pages only for now:

    GET /v1/matches/{id}/documents                   the documents and the invoices
    GET /v1/matches/{id}/invoices/{kind}.xml|.pdf    an issued invoice: the UBL XML or its PDF"""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, date, datetime
from typing import Any, cast

from aiohttp import web

from marketplace.core import deal_invoices as core
from marketplace.core import documents as documents_core
from marketplace.core.invoice import InvoiceError, invoice_number
from marketplace.partners import InvoiceRace, issue_invoice
from marketplace.reference import national_currencies, vat_rates
from producers.api import invoice_pdf
from producers.api.auth import require_role
from producers.api.context import POOL, principal
from producers.api.deals import ROLES, Room, room_of
from producers.api.documents import (
    base_of,
    deal_of,
    documents_json,
    file_response,
    parties_of,
)
from producers.api.problems import Problem
from producers.api.writes import publish
from schemas.deals import InvoiceIssued

_INVOICE = uuid.UUID("6f2b8a34-0d7e-4c5a-9a1e-57c2d4e8b913")
WAITING = {
    "material": "the delivery report is not approved yet",
    "transport": "the carrier has not confirmed the delivery yet",
}


def _kind(raw: str) -> core.InvoiceKind:
    for kind in core.INVOICE_KINDS:
        if raw == kind:
            return kind
    raise Problem(404, f"no invoice {raw!r} (material, transport)", kind="not-found")


def _may_issue(room: Room, side: core.Role, issuer_id: str) -> bool:
    if side == "carrier":
        return room.side == "carrier" and room.carrier_id == issuer_id
    if room.side == side:
        return True
    # A facilitator acting for the SME that issues it.
    return room.side == "facilitator" and room.on_behalf_of == issuer_id


async def _plan(
    conn: Any, kind: core.InvoiceKind, deal: documents_core.Deal
) -> tuple[core.Plan, list[str]]:
    """Who invoices whom and for what, with the events it is built from; Problem 409 when the
    deal is not there yet, InvoiceError when the parties' data do not allow it."""
    c = deal.confirmed
    if c is None:
        raise Problem(409, "no invoice yet: the match is not confirmed", kind="not-yet")
    if c.period is not None and c.delivery_id is None:
        raise Problem(
            409,
            "no invoice yet: a standing agreement is invoiced per delivery period",
            kind="not-yet",
        )
    ids = [c.seller_id, c.buyer_id] + ([deal.awarded.carrier_id] if deal.awarded else [])
    parties = await parties_of(conn, ids)
    rates, currencies = vat_rates(), national_currencies()
    if kind == "transport":
        if deal.awarded is None or deal.delivery is None:
            raise Problem(409, f"no invoice yet: {WAITING[kind]}", kind="not-yet")
        plan = core.transport_plan(deal, parties, rates=rates, currencies=currencies)
        return plan, [deal.awarded.event_id, deal.delivery.event_id]
    if core.issuer_of_material(deal) is None:
        raise Problem(409, "a price of zero has nothing to invoice", kind="nothing-to-invoice")
    # The buyer's latest approved delivery report: what it approved is what is billed, even
    # when a later correction of the carrier's awaits its approval.
    row = await conn.fetchrow(
        "SELECT d.content->>'delivered_weight_t' AS delivered,"
        " d.content->'delivered'->>'at' AS delivered_at, a.event_id"
        " FROM deal_documents d JOIN deal_approvals a ON a.match_id = d.match_id"
        " AND a.kind = d.kind AND a.version = d.version AND a.sha256 = d.sha256"
        " WHERE d.match_id = $1 AND d.kind = 'delivery' ORDER BY d.version DESC LIMIT 1",
        c.subject,
    )
    if row is None or row["delivered"] is None or row["delivered_at"] is None:
        raise Problem(409, f"no invoice yet: {WAITING[kind]}", kind="not-yet")
    plan = core.material_plan(
        deal,
        parties,
        delivered_t=float(row["delivered"]),
        delivered_on=datetime.fromisoformat(row["delivered_at"]).astimezone(UTC).date(),
        rates=rates,
        currencies=currencies,
    )
    return plan, [row["event_id"]]


def _reference(deal: documents_core.Deal) -> str:
    """The buyer's reference (BT-10) the invoice carries: the match, and for a standing
    agreement's period the period too ("<match id> 2026-12")."""
    c = deal.confirmed
    if c is None:
        return ""
    return c.match_id + (f" {c.period_key}" if c.period_key else "")


def _issue_date(xml: bytes) -> date:
    return date.fromisoformat(invoice_pdf.summary(xml).issue_date)


async def invoices_json(request: web.Request, room: Room) -> list[dict[str, Any]]:
    """The deal's two invoices as the room lists them, each with its `state`: `issued` (its
    number, date, amount due), `ready` (its issuer may issue it), `incomplete` (the `field` of
    legal data it still needs and why) or `not-yet` (the `reason`); `issuer` is the side that
    issues it (None while the deal does not say), `you_issue` whether the caller does."""
    pool = request.app[POOL]
    out: list[dict[str, Any]] = []
    async with pool.acquire() as conn:
        deal = await deal_of(conn, room.match_id, room.delivery_id)
        rows = await conn.fetch(
            "SELECT kind, issuer_id, xml, sha256 FROM invoices WHERE match_id = $1",
            room.subject,
        )
        issued = {r["kind"]: r for r in rows}
        for kind in core.INVOICE_KINDS:
            side: core.Role | None = "carrier" if kind == "transport" else None
            if kind == "material":
                side = core.issuer_of_material(deal)
            entry: dict[str, Any] = {
                "kind": kind,
                "state": "not-yet",
                "issuer": side,
                "you_issue": side is not None and _may_issue(room, side, _id_of(deal, side)),
                "reason": None,
                "field": None,
                "number": None,
                "issue_date": None,
                "payable": None,
                "currency": None,
                "sha256": None,
            }
            row = issued.get(kind)
            if row is not None:
                s = invoice_pdf.summary(row["xml"])
                entry |= {
                    "state": "issued",
                    "issuer": _side_of(room, row["issuer_id"]),
                    "you_issue": False,
                    "number": s.number,
                    "issue_date": s.issue_date,
                    "payable": s.payable,
                    "currency": s.currency,
                    "sha256": row["sha256"],
                }
            else:
                try:
                    plan, _sources = await _plan(conn, kind, deal)
                    # Built once with a placeholder number, to name what it lacks before anyone
                    # takes a number for it.
                    core.build_checked(plan, 1, plan.delivery_date, _reference(deal))
                    entry["state"] = "ready"
                except Problem as problem:
                    entry |= {"state": "not-yet", "reason": problem.detail, "you_issue": False}
                except InvoiceError as error:
                    entry |= {"state": "incomplete", "field": error.field, "reason": error.reason}
            out.append(entry)
    return out


def _id_of(deal: documents_core.Deal, side: core.Role | None) -> str:
    c = deal.confirmed
    if c is None or side is None:
        return ""
    if side == "carrier":
        return deal.awarded.carrier_id if deal.awarded else ""
    return c.seller_id if side == "seller" else c.buyer_id


def _side_of(room: Room, partner_id: str) -> str:
    if partner_id == room.seller_id:
        return "seller"
    if partner_id == room.buyer_id:
        return "buyer"
    return "carrier"


async def room_documents(request: web.Request, room: Room) -> dict[str, Any]:
    """The room's documents (producers/api/documents.py) with its invoices."""
    listed = await documents_json(request, room)
    return listed | {"invoices": await invoices_json(request, room)}


async def issue_command(request: web.Request, room: Room, kind_raw: str) -> dict[str, Any]:
    """The party that is paid issues the deal's invoice of `kind`: numbered and recorded in one
    transaction, then announced on `market.deals`. Issuing it again returns the one recorded
    (its number is never taken again) and announces it again under the same event id, in case
    the first announcement failed after the invoice was recorded."""
    kind = _kind(kind_raw)
    pool = request.app[POOL]
    async with pool.acquire() as conn:
        deal = await deal_of(conn, room.match_id, room.delivery_id)
        try:
            plan, sources = await _plan(conn, kind, deal)
        except InvoiceError as error:
            raise _refused(error) from None
        if not _may_issue(room, plan.issuer, plan.issuer_id):
            raise Problem(
                403, f"the {plan.issuer} issues the {kind} invoice of this deal", kind="not-issuer"
            )

        def build(number: int) -> bytes:
            # The day it is issued, read while the issuer's numbers are locked: an invoice
            # with a higher number never bears an earlier date.
            today = datetime.now(UTC).date()
            return core.build_checked(plan, number, today, _reference(deal))

        try:
            issued = await issue_invoice(
                conn,
                issuer_id=plan.issuer_id,
                customer_id=plan.customer_id,
                match_id=room.subject,
                kind=kind,
                build=build,
            )
        except InvoiceError as error:
            raise _refused(error) from None
        except InvoiceRace:
            raise Problem(
                409,
                "the invoice was issued at the same moment by another request; reload",
                kind="conflict",
            ) from None
    who = principal(request)
    event_id = str(uuid.uuid5(_INVOICE, f"{room.subject}/{kind}"))
    event = InvoiceIssued(
        match_id=room.match_id,
        delivery_id=room.delivery_id,
        kind=kind,
        number=invoice_number(issued.number),
        issue_date=_issue_date(issued.xml),
        issuer_id=plan.issuer_id,
        customer_id=plan.customer_id,
        side=plan.issuer,
        actor_id=who.partner_id,
        person_id=who.person_id,
        sha256=issued.sha256,
        sources=tuple(sources),
        seller_id=room.seller_id,
        buyer_id=room.buyer_id,
        carrier_id=deal.awarded.carrier_id if deal.awarded else None,
    )
    await publish(request, event, event_id=event_id, subject=room.match_id)
    return {
        "status": "accepted" if issued.new else "already-issued",
        "event_id": event_id,
        "kind": kind,
        "number": invoice_number(issued.number),
    }


def _refused(error: InvoiceError) -> Problem:
    return Problem(
        409,
        f"the invoice cannot be built: {error.field}: {error.reason} (each organisation declares"
        " its own legal data under PUT /v1/partners/{id}/legal or on its page)",
        field=error.field,
        errors=[(error.field, error.reason)],
        kind="invoice-data-missing",
    )


async def invoice_file(
    request: web.Request, room: Room, kind_raw: str, fmt: str
) -> tuple[bytes, str, str]:
    """(bytes, media type, file name) of the deal's issued invoice of `kind`: the UBL XML, or
    its PDF rendering. 409 when the stored XML no longer matches its SHA-256."""
    kind = _kind(kind_raw)
    row = await request.app[POOL].fetchrow(
        "SELECT number, xml, sha256, issued_at FROM invoices WHERE match_id = $1 AND kind = $2",
        room.subject,
        kind,
    )
    if row is None:
        raise Problem(404, f"no {kind} invoice of this deal yet", kind="not-found")
    xml = cast(bytes, row["xml"])
    sha = hashlib.sha256(xml).hexdigest()
    if sha != row["sha256"]:
        raise Problem(
            409,
            f"the {kind} invoice does not match the SHA-256 it was issued with: the stored copy"
            " was altered, so the exchange will not hand it out",
            kind="document-altered",
        )
    name = f"invoice-{invoice_number(row['number'])}-{kind}"
    if fmt == "xml":
        return xml, "application/xml", name + ".xml"
    pdf = invoice_pdf.render(kind, xml, sha, created=row["issued_at"].astimezone(UTC))
    return pdf, "application/pdf", name + ".pdf"


# The routes -------------------------------------------------------------------------------------


async def list_documents(request: web.Request) -> web.StreamResponse:
    """The deal's documents (producers/api/documents.py) and its invoices, each issued one with
    the links to its files."""
    require_role(request, *ROLES)
    room = await room_of(request, request.match_info["id"])
    listed = await room_documents(request, room)
    base = f"{base_of(room)}/invoices"
    for entry in listed["invoices"]:
        issued = entry["state"] == "issued"
        entry["xml"] = f"{base}/{entry['kind']}.xml" if issued else None
        entry["pdf"] = f"{base}/{entry['kind']}.pdf" if issued else None
    return web.json_response(listed)


async def download(request: web.Request) -> web.StreamResponse:
    require_role(request, *ROLES)
    room = await room_of(request, request.match_info["id"])
    data, media_type, name = await invoice_file(
        request, room, request.match_info["kind"], request.match_info["fmt"]
    )
    return file_response(data, media_type, name)


def add_routes(app: web.Application) -> None:
    r = app.router
    r.add_get("/v1/matches/{id}/documents", list_documents)
    r.add_get("/v1/matches/{id}/invoices/{kind}.{fmt:xml|pdf}", download)
