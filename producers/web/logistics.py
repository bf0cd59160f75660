"""A logistics firm's pages: its coverage (depots, regions, fleet, permits), the transport jobs
that fit it arriving live, quoting, revising and withdrawing before the deadline, and the awards
it won and lost.

Each page calls the API's own command or read (producers/api/partners.py
`capabilities_command`; producers/api/jobs.py `fitting_job`, `quote_command`,
`withdraw_quote_command`, `outcome_of`) with the person's organisation as the principal, so the
coverage rule, the checks and the events are the API's (decision 10). Only people of a logistics
firm reach them (403 otherwise); a job outside the firm's coverage is not there for it (404), and
a firm sees its own quotes only."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import aiohttp_jinja2
import orjson
from aiohttp import web

from marketplace.core.carriers import Coverage, unfit_reasons
from marketplace.partners import Principal
from marketplace.reference import list_of_waste
from producers.api.bodies import CapabilitiesIn, QuoteIn
from producers.api.context import POOL, PRINCIPAL
from producers.api.jobs import (
    coverage,
    fitting_job,
    needs,
    outcome_of,
    quote_command,
    withdraw_quote_command,
)
from producers.api.partners import capabilities_command
from producers.api.problems import Problem
from producers.api.writes import idempotent_answer
from producers.web.common import (
    ACTING,
    acting_principal,
    form_of,
    gettext_of,
    live_fragment,
    new_key,
    person_of,
    render,
    see_other,
)
from producers.web.forms import decode, say
from producers.web.session import PREFIX, base_context

HOME = PREFIX + "/logistics"
VEHICLES = ("van", "rigid_truck", "articulated_truck", "tanker", "tipper", "rail", "barge")
# How long a form's answer waits for the projector to show what it sent, so that the page it
# leads to shows it too (a read model trails the log by a moment); then it goes on regardless.
SETTLE_S = 5.0


# --- who may come here -----------------------------------------------------------------------


def _as_principal(partner_id: str, role: str, person_id: str) -> Principal:
    return Principal(
        partner_id=partner_id, role=role, key_id=f"person:{person_id}", person_id=person_id
    )


async def firm(request: web.Request) -> Principal:
    """The person's organisation as the API's principal, when it is a logistics firm (403
    otherwise). Read-only members come in too: they see, and change nothing."""
    person = person_of(request)
    if person.partner_id is None:
        raise web.HTTPForbidden(text="these pages are for logistics firms")
    role = await request.app[POOL].fetchval(
        "SELECT role FROM partners WHERE partner_id = $1 AND active", person.partner_id
    )
    if role != "logistics":
        raise web.HTTPForbidden(text="these pages are for logistics firms")
    found = _as_principal(person.partner_id, role, person.person_id)
    request[PRINCIPAL] = found
    return found


async def acting_firm(request: web.Request) -> Principal:
    """As `firm`, for a change: 403 for read-only members."""
    await firm(request)
    return await acting_principal(request)


def refused(problem: Problem) -> web.HTTPException:
    """An API refusal that is no field's business, as the page's refusal."""
    if problem.status == 404:
        return web.HTTPNotFound(text=problem.detail)
    if problem.status == 403:
        return web.HTTPForbidden(text=problem.detail)
    if problem.status == 409:
        return web.HTTPConflict(text=problem.detail)
    if problem.status == 503:
        return web.HTTPServiceUnavailable(text=problem.detail)
    return web.HTTPUnprocessableEntity(text=problem.detail)


# --- how things are shown --------------------------------------------------------------------


def vehicle_names(_: Callable[[str], str]) -> dict[str, str]:
    return {
        "van": _("van"),
        "rigid_truck": _("rigid truck"),
        "articulated_truck": _("articulated truck"),
        "tanker": _("tanker"),
        "tipper": _("tipper"),
        "rail": _("rail"),
        "barge": _("barge"),
    }


def when(value: str | datetime | None) -> str:
    """A moment as the pages show it: in UTC, to the minute."""
    if value is None:
        return ""
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def local_input(value: str | datetime) -> str:
    """A moment as an <input type=datetime-local> holds it (UTC, to the minute)."""
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M")


def where(location: dict[str, Any]) -> str:
    spot = f"{location.get('lat', 0):.2f}, {location.get('lon', 0):.2f}"
    region = location.get("region")
    return f"{region} ({spot})" if region else spot


def money(price: dict[str, Any] | None) -> str:
    if not price:
        return ""
    return f"{price.get('amount', 0):.2f} {price.get('currency', '')}"


def job_view(row: Any) -> dict[str, Any]:
    """A row of the jobs read model as the templates show it."""
    body = orjson.loads(row["body"])
    entry = list_of_waste().get(body.get("material_code", ""))
    quantity = body.get("quantity", {})
    return {
        "id": row["job_id"],
        "code": body.get("material_code", ""),
        "title": entry.description if entry is not None else "",
        "hazardous": body.get("hazardous", False),
        # The listing's own quantity, when it is not counted in tonnes.
        "quantity": ""
        if quantity.get("unit", "t") == "t"
        else f"{quantity.get('amount', 0):g} {quantity.get('unit', '')}",
        "weight_t": f"{body.get('weight_t', 0):g}",
        "pickup": where(body.get("pickup", {})),
        "delivery": where(body.get("delivery", {})),
        "pickup_window": (when(body["pickup_window"]["start"]), when(body["pickup_window"]["end"])),
        "delivery_window": (
            when(body["delivery_window"]["start"]),
            when(body["delivery_window"]["end"]),
        ),
        "deadline": when(row["bidding_deadline"]),
        "currency": body.get("currency") or "EUR",
        "estimated_price": money(body.get("estimated_price")),
        "reserve_price": money(body.get("reserve_price")),
        "status": row["status"],
        "open": row["status"] == "open" and row["bidding_deadline"] > datetime.now(UTC),
        "body": body,
    }


def quote_view(row: Any) -> dict[str, Any]:
    body = orjson.loads(row["body"])
    refusal = orjson.loads(row["refusal"]) if row["refusal"] else None
    return {
        "id": row["quote_id"],
        "price": money(body.get("price")),
        "amount": body.get("price", {}).get("amount"),
        "vehicle": body.get("vehicle", ""),
        "co2e_kg": body.get("co2e_kg"),
        "pickup_at": when(body.get("pickup_at")),
        "pickup_input": local_input(body["pickup_at"]) if body.get("pickup_at") else "",
        "status": row["status"],
        "refusal": refusal.get("reason") if refusal else None,
        "outcome": row["outcome"],
        "updated_at": when(row["updated_at"]),
    }


# --- the translation of a refusal to the field it concerns -----------------------------------


def _field_name(path: str) -> str:
    """A body's JSON path as the form's field name: `depots[0].radius_km` is the field
    `depots.0.radius_km`; an item of a plain list is the list's field (`regions[1]`)."""
    path = re.sub(r"\[(\d+)\](?=\.)", r".\1", path)
    return re.sub(r"\[\d+\]$", "", path)


def errors_of(
    problem: Problem, _: Callable[[str], str], rows: list[int] | None = None
) -> dict[str, str]:
    """The problem's complaints by form field, in the person's language; `body` when the
    problem names no field. `rows`: the depot rows of the form that were sent, in the order of
    the body's `depots` (an empty row is left out of the body)."""
    out: dict[str, str] = {}
    for raw_field, reason in problem.errors or [(problem.field or "body", problem.detail)]:
        name = _field_name(raw_field or "body")
        if name == "Idempotency-Key":
            # The same form sent again with other values (after going back a page).
            out.setdefault(
                "body", _("This form was sent already. Reload the page to send it again.")
            )
            continue
        missing = re.search(r"missing required field `(\w+)`", reason)
        if missing is not None:
            name = missing.group(1) if name == "body" else f"{name}.{missing.group(1)}"
        depot = re.match(r"depots\.(\d+)(\..*)?$", name)
        if depot is not None and rows is not None and int(depot.group(1)) < len(rows):
            name = f"depots.{rows[int(depot.group(1))]}{depot.group(2) or ''}"
        out.setdefault(name, _sentence(reason, _))
    return out


def _sentence(reason: str, _: Callable[[str], str]) -> str:
    if "among your declared vehicle types" in reason:
        return _("Choose a vehicle type your firm has declared on the coverage page.")
    if "within the job's pickup window" in reason:
        return _("Choose a time within the job's pickup window.")
    if "at least one depot with a radius or one region" in reason:
        return _("Declare at least one depot with a radius, or one region.")
    if "Expected `array` of length >= 1" in reason:
        return _("Choose at least one.")
    return str(say(reason, _))


# --- coverage --------------------------------------------------------------------------------


async def declared(request: web.Request, partner_id: str) -> dict[str, Any] | None:
    raw = await request.app[POOL].fetchval(
        "SELECT capabilities FROM carriers WHERE partner_id = $1", partner_id
    )
    return orjson.loads(raw) if raw is not None else None


def coverage_form(caps: dict[str, Any] | None) -> dict[str, str]:
    """The declared coverage as the form's fields."""
    if caps is None:
        return {}
    form: dict[str, str] = {
        "regions": " ".join(caps.get("regions", [])),
        "capacity_t": f"{caps.get('capacity_t', 0):g}",
    }
    if caps.get("hazardous_permit"):
        form["hazardous_permit"] = "on"
    for vehicle in caps.get("vehicle_types", []):
        form[f"vehicle_types.{vehicle}"] = "on"
    for i, depot in enumerate(caps.get("depots", [])):
        form[f"depots.{i}.location.lat"] = f"{depot['location']['lat']:g}"
        form[f"depots.{i}.location.lon"] = f"{depot['location']['lon']:g}"
        form[f"depots.{i}.location.region"] = depot["location"].get("region") or ""
        form[f"depots.{i}.radius_km"] = f"{depot['radius_km']:g}"
    return form


DEPOT_FIELDS = ("location.lat", "location.lon", "location.region", "radius_km")
MAX_DEPOTS = 20


def depot_rows(form: dict[str, str]) -> int:
    """How many depot rows the form shows: those filled in and one empty row to add another."""
    used = [
        int(m.group(1))
        for name, value in form.items()
        if value.strip() and (m := re.match(r"depots\.(\d+)\.", name)) is not None
    ]
    return min(max(used, default=-1) + 2, MAX_DEPOTS)


def coverage_document(form: dict[str, str]) -> tuple[dict[str, Any], list[int]]:
    """The body of PUT /v1/carrier/capabilities from the form, and which form row each depot
    of the body came from. Empty fields are left out (the body's defaults apply)."""
    doc: dict[str, Any] = {}
    depots, rows = [], []
    for i in range(MAX_DEPOTS):
        values = {f: form.get(f"depots.{i}.{f}", "").strip() for f in DEPOT_FIELDS}
        if not any(values.values()):
            continue
        location = {
            k.split(".")[1]: v for k, v in values.items() if k.startswith("location.") and v
        }
        depot: dict[str, Any] = {"location": location}
        if values["radius_km"]:
            depot["radius_km"] = values["radius_km"]
        depots.append(depot)
        rows.append(i)
    if depots:
        doc["depots"] = depots
    regions = [r for r in re.split(r"[,\s]+", form.get("regions", "").strip().upper()) if r]
    if regions:
        doc["regions"] = regions
    if form.get("capacity_t", "").strip():
        doc["capacity_t"] = form["capacity_t"].strip()
    doc["hazardous_permit"] = bool(form.get("hazardous_permit"))
    doc["vehicle_types"] = [v for v in VEHICLES if form.get(f"vehicle_types.{v}")]
    return doc, rows


async def coverage_page(request: web.Request) -> web.Response:
    who = await firm(request)
    caps = await declared(request, who.partner_id)
    form = coverage_form(caps)
    return render(
        request,
        "logistics_coverage.html",
        form=form,
        errors={},
        rows=depot_rows(form),
        declared=caps is not None,
        vehicles=VEHICLES,
        vehicle_names=vehicle_names(gettext_of(request)),
        key=new_key(),
        can_act=person_of(request).role in ACTING,
        saved="saved" in request.query,
    )


async def declare(request: web.Request) -> web.StreamResponse:
    form = await form_of(request)
    who = await acting_firm(request)
    _ = gettext_of(request)
    rows: list[int] = []
    before = datetime.now(UTC)
    try:
        doc, rows = coverage_document(form)
        body = decode(doc, CapabilitiesIn)
        write = capabilities_command(request, body)
        await idempotent_answer(request, write, form.get("key"))
    except Problem as problem:
        if problem.status >= 500:
            errors = {"body": _("The exchange cannot store this right now. Try again shortly.")}
        elif problem.status == 422:
            errors = errors_of(problem, _, rows)
        else:
            raise refused(problem) from None
        return render(
            request,
            "logistics_coverage.html",
            status=422,
            form=form,
            errors=errors,
            rows=depot_rows(form),
            declared=await declared(request, who.partner_id) is not None,
            vehicles=VEHICLES,
            vehicle_names=vehicle_names(_),
            key=form.get("key") or new_key(),
            can_act=True,
            saved=False,
        )

    async def stored() -> bool:
        at = await request.app[POOL].fetchval(
            "SELECT updated_at FROM carriers WHERE partner_id = $1", who.partner_id
        )
        return at is not None and at >= before

    await settled(stored)
    return see_other(f"{HOME}/coverage?saved")


async def settled(check: Callable[[], Awaitable[bool]]) -> bool:
    """Waits up to SETTLE_S for the read model to show a write (True when it does)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + SETTLE_S
    while not await check():
        if loop.time() >= deadline:
            return False
        await asyncio.sleep(0.1)
    return True


# --- the jobs that fit -----------------------------------------------------------------------


async def job_rows(request: web.Request, partner_id: str) -> list[dict[str, Any]] | None:
    """The open jobs that fit the firm's declared coverage, by deadline, with the firm's own
    active quote on each (GET /v1/jobs's rule); None before the firm declared its coverage."""
    caps = await declared(request, partner_id)
    if caps is None:
        return None
    cov = coverage(caps)
    pool = request.app[POOL]
    rows = await pool.fetch(
        "SELECT job_id, body, status, bidding_deadline, outcome_reason FROM jobs"
        " WHERE status = 'open' AND bidding_deadline > $1 ORDER BY bidding_deadline, job_id",
        datetime.now(UTC),
    )
    fitting = [r for r in rows if not unfit_reasons(needs(orjson.loads(r["body"])), cov)]
    quoted: dict[str, str] = {}
    if fitting:
        for q in await pool.fetch(
            "SELECT job_id, body FROM quotes WHERE carrier_id = $1 AND status = 'active'"
            " AND job_id = ANY($2::text[]) ORDER BY updated_at",
            partner_id,
            [r["job_id"] for r in fitting],
        ):
            quoted[q["job_id"]] = money(orjson.loads(q["body"]).get("price"))
    return [job_view(r) | {"your_quote": quoted.get(r["job_id"])} for r in fitting]


async def jobs(request: web.Request) -> web.Response:
    who = await firm(request)
    rows = await job_rows(request, who.partner_id)
    return render(request, "logistics_jobs.html", jobs=rows)


# --- one job, and quoting on it --------------------------------------------------------------


async def own_quotes(request: web.Request, job_id: str, partner_id: str) -> list[dict[str, Any]]:
    rows = await request.app[POOL].fetch(
        "SELECT quote_id, body, status, refusal, outcome, updated_at FROM quotes"
        " WHERE job_id = $1 AND carrier_id = $2 ORDER BY updated_at, quote_id",
        job_id,
        partner_id,
    )
    return [quote_view(r) for r in rows]


async def the_job(request: web.Request) -> tuple[Any, Coverage]:
    """The job of the path and the firm's coverage, if the job fits it (404 otherwise)."""
    try:
        return await fitting_job(request, request.match_info["id"])
    except Problem as problem:
        if problem.kind == "no-capabilities":
            raise web.HTTPNotFound(text="declare your coverage first") from None
        raise refused(problem) from None


async def job_page(
    request: web.Request,
    row: Any,
    who: Principal,
    *,
    form: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    status: int = 200,
) -> web.Response:
    job = job_view(row)
    quotes = await own_quotes(request, row["job_id"], who.partner_id)
    active = [q for q in quotes if q["status"] == "active"]
    caps = await declared(request, who.partner_id) or {}
    vehicles = [v for v in VEHICLES if v in caps.get("vehicle_types", [])]
    names = vehicle_names(gettext_of(request))
    if form is None:
        # A revision of the firm's active quote, or a new one starting at the pickup window.
        latest = active[-1] if active else None
        form = {
            "quote_id": latest["id"] if latest else "",
            "price.amount": f"{latest['amount']:g}" if latest else "",
            "vehicle": latest["vehicle"] if latest else (vehicles[0] if vehicles else ""),
            "co2e_kg": f"{latest['co2e_kg']:g}" if latest else "",
            "pickup_at": latest["pickup_input"]
            if latest
            else local_input(job["body"]["pickup_window"]["start"]),
        }
    outcome = outcome_of(
        row["status"],
        row["winner_id"],
        who.partner_id,
        any(q["status"] != "rejected" for q in quotes),
    )
    return render(
        request,
        "logistics_job.html",
        status=status,
        job=job,
        quotes=quotes,
        outcome=outcome,
        reason=row["outcome_reason"],
        form=form,
        errors=errors or {},
        vehicles=vehicles,
        vehicle_names=names,
        vehicles_named=[(v, names[v]) for v in vehicles],
        window_min=local_input(job["body"]["pickup_window"]["start"]),
        window_max=local_input(job["body"]["pickup_window"]["end"]),
        key=new_key(),
        can_act=person_of(request).role in ACTING,
        notice=request.query.get("done", ""),
    )


async def job(request: web.Request) -> web.Response:
    who = await firm(request)
    row, _ = await the_job(request)
    return await job_page(request, row, who)


def quote_document(form: dict[str, str], currency: str) -> dict[str, Any]:
    """The body of POST /v1/jobs/{id}/quotes from the form; empty fields are left out (the
    refusal then names them). The time typed is UTC, as the page says."""
    doc: dict[str, Any] = {}
    if form.get("quote_id", "").strip():
        doc["quote_id"] = form["quote_id"].strip()
    amount = form.get("price.amount", "").strip()
    if amount:
        doc["price"] = {"amount": amount, "currency": currency}
    for name in ("vehicle", "co2e_kg"):
        if form.get(name, "").strip():
            doc[name] = form[name].strip()
    pickup = form.get("pickup_at", "").strip()
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}", pickup):
        pickup += ":00Z"
    elif re.fullmatch(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}", pickup):
        pickup += "Z"
    if pickup:
        doc["pickup_at"] = pickup
    return doc


async def send_quote(request: web.Request) -> web.StreamResponse:
    form = await form_of(request)
    who = await acting_firm(request)
    row, cov = await the_job(request)
    _ = gettext_of(request)
    body = orjson.loads(row["body"])
    before = datetime.now(UTC)
    try:
        quote = decode(quote_document(form, body.get("currency") or "EUR"), QuoteIn)
        write = await quote_command(request, row, cov, quote)
        _status, answer, _headers = await idempotent_answer(request, write, form.get("key"))
    except Problem as problem:
        if problem.status >= 500:
            errors = {"body": _("The exchange cannot store this right now. Try again shortly.")}
        elif problem.status == 422:
            errors = errors_of(problem, _)
        else:
            raise refused(problem) from None
        return await job_page(request, row, who, form=form, errors=errors, status=422)
    quote_id = orjson.loads(answer)["quote_id"]

    async def stored() -> bool:
        at = await request.app[POOL].fetchval(
            "SELECT updated_at FROM quotes WHERE quote_id = $1 AND carrier_id = $2",
            quote_id,
            who.partner_id,
        )
        return at is not None and at >= before

    await settled(stored)
    return see_other(f"{HOME}/jobs/{row['job_id']}?done=sent")


async def withdraw_quote(request: web.Request) -> web.StreamResponse:
    form = await form_of(request)
    who = await acting_firm(request)
    row, _ = await the_job(request)
    quote_id = request.match_info["quote_id"]
    try:
        write = await withdraw_quote_command(request, row, quote_id)
        _status, answer, _headers = await idempotent_answer(request, write, form.get("key"))
    except Problem as problem:
        raise refused(problem) from None
    event_id = orjson.loads(answer)["event_id"]

    async def stored() -> bool:
        found = await request.app[POOL].fetchrow(
            "SELECT status, refusal FROM quotes WHERE quote_id = $1 AND carrier_id = $2",
            quote_id,
            who.partner_id,
        )
        if found is None:
            return False
        refusal = orjson.loads(found["refusal"]) if found["refusal"] else {}
        return bool(found["status"] == "withdrawn" or refusal.get("submission_id") == event_id)

    await settled(stored)
    return see_other(f"{HOME}/jobs/{row['job_id']}?done=withdrawn")


# --- awards ----------------------------------------------------------------------------------


async def award_rows(request: web.Request, partner_id: str) -> list[dict[str, Any]]:
    """The decided jobs the firm bid on or won, newest first, with its outcome (the API's
    `your_outcome`); the winning price only when the firm won."""
    # The price won is the award's, as the match carries it (the winner's own quote row may
    # hold a later refusal of a revision), else the quote marked won.
    rows = await request.app[POOL].fetch(
        "SELECT j.job_id, j.body, j.status, j.bidding_deadline, j.outcome_reason, j.winner_id,"
        " j.updated_at, CASE WHEN j.winner_id = $1 THEN COALESCE(m.transport->'price',"
        "   (SELECT w.body->'price' FROM quotes w WHERE w.job_id = j.job_id"
        "     AND w.carrier_id = $1 AND w.outcome = 'won' LIMIT 1)) END AS won_price,"
        " EXISTS (SELECT 1 FROM quotes b WHERE b.job_id = j.job_id AND b.carrier_id = $1"
        "   AND b.status <> 'rejected') AS quoted"
        " FROM jobs j LEFT JOIN matches m ON m.match_id = j.match_id"
        "   AND m.transport->>'job_id' = j.job_id"
        " WHERE j.status IN ('awarded', 'failed') AND (j.winner_id = $1 OR j.job_id IN"
        "   (SELECT job_id FROM quotes WHERE carrier_id = $1 AND status <> 'rejected'))"
        " ORDER BY j.updated_at DESC, j.job_id LIMIT 100",
        partner_id,
    )
    out = []
    for r in rows:
        outcome = outcome_of(r["status"], r["winner_id"], partner_id, r["quoted"])
        if outcome is None:
            continue
        price = orjson.loads(r["won_price"]) if r["won_price"] and outcome == "won" else None
        out.append(
            job_view(r)
            | {"outcome": outcome, "won_price": money(price), "at": when(r["updated_at"])}
        )
    return out


async def awards(request: web.Request) -> web.Response:
    who = await firm(request)
    return render(
        request, "logistics_awards.html", awards=await award_rows(request, who.partner_id)
    )


# --- live ------------------------------------------------------------------------------------

LISTS = {"jobs": "logistics_jobs_list.html", "awards": "logistics_awards_list.html"}


async def live(request: web.Request) -> web.StreamResponse:
    """The firm's fitting jobs (?list=jobs) or awards (?list=awards) as they change, for htmx's
    SSE extension to swap in: sent on connecting, again whenever a notification for the firm is
    stored (a job offered to it, an award; the API's live hub, woken by PostgreSQL NOTIFY), and
    at least every IDLE_S (a job whose deadline passed leaves the list)."""
    who = await firm(request)
    which = request.query.get("list", "jobs")
    if which not in LISTS:
        raise web.HTTPNotFound(text="no such list")
    partner_id = who.partner_id

    async def fragment() -> str:
        if which == "jobs":
            values: dict[str, Any] = {"jobs": await job_rows(request, partner_id)}
        else:
            values = {"awards": await award_rows(request, partner_id)}
        return aiohttp_jinja2.render_string(LISTS[which], request, base_context(request, **values))

    return await live_fragment(request, partner_id, which, fragment)


async def start(_request: web.Request) -> web.StreamResponse:
    return see_other(f"{HOME}/jobs")


def add_routes(app: web.Application) -> None:
    r = app.router
    r.add_get(HOME, start)
    r.add_get(HOME + "/jobs", jobs)
    r.add_get(HOME + "/jobs/{id}", job)
    r.add_post(HOME + "/jobs/{id}/quotes", send_quote)
    r.add_post(HOME + "/jobs/{id}/quotes/{quote_id}/withdraw", withdraw_quote)
    r.add_get(HOME + "/coverage", coverage_page)
    r.add_post(HOME + "/coverage", declare)
    r.add_get(HOME + "/awards", awards)
    r.add_get(HOME + "/live", live)
