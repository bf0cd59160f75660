"""Saved searches of the open market (#19): a person keeps the market's filters under a name and
runs them again from the list, or deletes them, and marks those of which they want to be told of
new listings (consumers/alerts.py tells them through their notifications). A saved search is the
person's own (PostgreSQL, `saved_searches`, erased with the account and given in its export),
never the organisation's and never an event: another person, of the same organisation or not,
does not see it (404)."""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import urlencode

import orjson
from aiohttp import web

from marketplace.core.search_alerts import KIND as ALERT
from marketplace.reference import list_of_waste
from producers.api.context import POOL
from producers.web.common import form_of, gettext_of, person_of, render, see_other
from producers.web.session import PREFIX
from producers.web.sme import market_filters

HOME = PREFIX + "/market/searches"
# Enough for anyone's habits; a bound, so one account cannot fill the table.
MOST = 50
NAME_LONGEST = 80
# The person's latest alerts the page shows.
LATEST = 20


def run_link(kind: str, q: str, region: str) -> str:
    """The market page with the search's filters (those that are set)."""
    query = {k: v for k, v in (("q", q), ("kind", kind), ("region", region)) if v}
    return f"{PREFIX}/market" + (f"?{urlencode(query)}" if query else "")


async def _saved(request: web.Request) -> list[dict[str, Any]]:
    rows = await request.app[POOL].fetch(
        "SELECT search_id, name, kind, q, region, alerts_since IS NOT NULL AS alerts, created_at"
        " FROM saved_searches"
        " WHERE person_id = $1 ORDER BY created_at, search_id",
        person_of(request).person_id,
    )
    return [
        {
            "id": str(r["search_id"]),
            "name": r["name"],
            "kind": r["kind"],
            "q": r["q"],
            "region": r["region"],
            "alerts": r["alerts"],
            "run": run_link(r["kind"], r["q"], r["region"]),
        }
        for r in rows
    ]


async def _alerts(request: web.Request, names: dict[str, str]) -> list[dict[str, Any]]:
    """The person's latest alerts of new listings (the organisation's notifications that the
    alerts consumer sent for this person), newest first: what the market shows of each
    listing, never its owner."""
    person = person_of(request)
    if person.partner_id is None:
        return []
    rows = await request.app[POOL].fetch(
        "SELECT n.body, n.issued_at FROM notifications n WHERE n.partner_id = $1"
        " AND n.kind = $2 AND n.notification_id IN (SELECT notification_id"
        " FROM search_alerts_sent WHERE person_id = $3::uuid)"
        " ORDER BY n.seq DESC LIMIT $4",
        person.partner_id,
        ALERT,
        str(person.person_id),
        LATEST,
    )
    taxonomy = list_of_waste()
    found = []
    for r in rows:
        data = orjson.loads(r["body"]).get("data", {})
        code = str(data.get("material_code", ""))
        entry = taxonomy.get(code)
        quantity = data.get("quantity") or {}
        window = data.get("window") or {}
        found.append(
            {
                "at": r["issued_at"].strftime("%Y-%m-%d %H:%M UTC"),
                "kind": data.get("listing_kind", ""),
                "code": code,
                "title": entry.description if entry is not None else "",
                "amount": quantity.get("amount"),
                "unit": quantity.get("unit", ""),
                "region": data.get("region") or "",
                "start": str(window.get("start", ""))[:10],
                "end": str(window.get("end", ""))[:10],
                "search": names.get(str(data.get("search_id", "")), ""),
            }
        )
    return found


async def _page(
    request: web.Request,
    *,
    status: int = 200,
    errors: dict[str, str] | None = None,
    form: dict[str, str] | None = None,
) -> web.Response:
    saved = await _saved(request)
    return render(
        request,
        "market_searches.html",
        status=status,
        searches=saved,
        alerts=await _alerts(request, {s["id"]: s["name"] for s in saved}),
        errors=errors or {},
        form=form or {},
        notice=next((n for n in ("saved", "deleted", "alerts") if n in request.query), ""),
    )


async def searches(request: web.Request) -> web.Response:
    return await _page(request)


async def save(request: web.Request) -> web.StreamResponse:
    """Saves the market's filters sent with the form under the name given."""
    form = await form_of(request)
    _ = gettext_of(request)
    person = person_of(request)
    name = " ".join(form.get("name", "").split())
    filters = market_filters(form)
    errors: dict[str, str] = {}
    if not name:
        errors["name"] = _("Fill this in.")
    elif len(name) > NAME_LONGEST:
        errors["name"] = _("This is too long.")
    if filters is None:
        errors["body"] = _("These filters cannot be saved: search again on the market.")
    pool = request.app[POOL]
    if not errors and filters is not None:
        kind, q, region = filters
        async with pool.acquire() as conn, conn.transaction():
            # One person's saves one after the other: the count and the insert agree.
            await conn.execute(
                "SELECT pg_advisory_xact_lock(hashtext('saved_searches/' || $1::text))",
                person.person_id,
            )
            count = await conn.fetchval(
                "SELECT count(*) FROM saved_searches WHERE person_id = $1", person.person_id
            )
            if count >= MOST:
                errors["body"] = _(
                    "You have %(n)s saved searches, the most there may be: delete one first."
                ) % {"n": MOST}
            else:
                search_id = uuid.uuid4()
                inserted = await conn.fetchval(
                    "INSERT INTO saved_searches (search_id, person_id, name, kind, q, region,"
                    " alerts_since) VALUES ($1, $2, $3, $4, $5, $6,"
                    " CASE WHEN $7::bool THEN now() END)"
                    " ON CONFLICT (person_id, name) DO NOTHING RETURNING search_id",
                    search_id,
                    person.person_id,
                    name,
                    kind,
                    q,
                    region,
                    form.get("alerts") == "on",
                )
                if inserted is None:
                    errors["name"] = _("You have a saved search of this name already.")
    if errors:
        return await _page(request, status=422, errors=errors, form=form)
    return see_other(f"{HOME}?saved=1")


async def delete(request: web.Request) -> web.StreamResponse:
    await form_of(request)
    try:
        search_id = uuid.UUID(request.match_info["id"])
    except ValueError:
        raise web.HTTPNotFound(text="no such saved search of yours") from None
    gone = await request.app[POOL].fetchval(
        "DELETE FROM saved_searches WHERE search_id = $1 AND person_id = $2 RETURNING search_id",
        search_id,
        person_of(request).person_id,
    )
    if gone is None:
        raise web.HTTPNotFound(text="no such saved search of yours")
    return see_other(f"{HOME}?deleted=1")


async def alerts(request: web.Request) -> web.StreamResponse:
    """Marks the person's saved search for alerts of new listings (the box ticked: listings
    from now on) or not."""
    form = await form_of(request)
    try:
        search_id = uuid.UUID(request.match_info["id"])
    except ValueError:
        raise web.HTTPNotFound(text="no such saved search of yours") from None
    found = await request.app[POOL].fetchval(
        "UPDATE saved_searches"
        " SET alerts_since = CASE WHEN $3::bool THEN coalesce(alerts_since, now()) END"
        " WHERE search_id = $1 AND person_id = $2 RETURNING search_id",
        search_id,
        person_of(request).person_id,
        form.get("alerts") == "on",
    )
    if found is None:
        raise web.HTTPNotFound(text="no such saved search of yours")
    return see_other(f"{HOME}?alerts=1#search-{search_id}")


def add_routes(app: web.Application) -> None:
    r = app.router
    r.add_get(HOME, searches)
    r.add_post(HOME, save)
    r.add_post(HOME + "/{id}/delete", delete)
    r.add_post(HOME + "/{id}/alerts", alerts)
