"""Alerts of saved searches (#19): `marketplace run alerts`.

Reads `market.listings` and `market.matches` on the exactly-once runtime. For each posting, and
each change of an offer's or a request's terms, it asks the pure core
(marketplace/core/search_alerts.py) which people with a saved search marked for alerts must be
told of the listing as it now stands, and emits one notification per person (kind
`search.new_listing`, with the person's pseudonymous id) on `partners.notifications`, so the
mailer (that person only, per their preferences), the webhooks and the pages get it by the
notifications' own path. The notification never names the listing's owner. A one-off listing
that confirmed one-off matches have fully taken (their weight against its quantity, as the
matcher counts it) is no longer open: a change of its terms, or a search marked later, sends
nothing of it.

What a change lacks (the kind, the owner, the region, the material's mass per unit) is kept per
consumer group in `search_alert_listings`; who was told of which listing in `search_alerts_sent`
(infra/migrations/0028_search_alerts.sql); what each confirmed match took of a listing in
`search_alert_taken` (0031_search_alert_taken.sql). Once: an alert's id derives from the listing
and the person, and it is emitted only by the transaction whose insert of its row wins, so a
replay, a second instance or a later change of the listing sends nothing twice. The saved
searches themselves are read as they are when the event is processed (they are a person's,
never events); a listing is alerted only against searches marked at or before its event's time,
so what was posted before a person marked a search (or a new group reading an old log) sends
nothing."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import msgspec

from marketplace.core import search_alerts as core
from marketplace.db import Conn
from marketplace.events import to_message
from marketplace.logs import get_logger
from marketplace.reference import list_of_waste
from marketplace.runtime import Transaction
from marketplace.runtime.batching import columns
from marketplace.runtime.decoding import decode_or_dead_letter
from schemas import topics
from schemas.listings import (
    OfferPosted,
    OfferUpdated,
    OfferWithdrawn,
    RequestPosted,
    RequestUpdated,
    RequestWithdrawn,
)
from schemas.matches import MatchConfirmed
from schemas.partners import NotificationIssued

GROUP = "alerts"
TOPICS = (topics.LISTINGS, topics.MATCHES)
SOURCE = "/consumers/alerts"
log = get_logger(__name__)

_SEARCHES = """
SELECT s.search_id, s.person_id, p.partner_id, s.kind, s.q, s.region, s.alerts_since
FROM saved_searches s JOIN people p ON p.person_id = s.person_id
WHERE s.alerts_since IS NOT NULL AND p.disabled_at IS NULL AND p.partner_id IS NOT NULL
ORDER BY s.person_id, s.search_id
"""


def _plain(value: Any) -> Any:
    return msgspec.to_builtins(value)


class Alerts:
    """Stateless between batches: what it keeps lives in its group's tables."""

    def __init__(self, group_id: str = GROUP) -> None:
        self.group_id = group_id
        self.source = f"{SOURCE}/{group_id}"
        self.taxonomy = list_of_waste()

    async def load(self, conn: Conn, topic: str, partition: int) -> None:  # noqa: ARG002
        return None

    def _title(self, code: str) -> str:
        entry = self.taxonomy.get(code)
        return entry.description if entry is not None else ""

    async def process(self, tx: Transaction, state: None, records: Sequence[Any]) -> None:
        events = []
        for record in records:
            d = decode_or_dead_letter(tx, self.group_id, record)
            if d is not None:
                events.append(d)
        await self._taken(tx.conn, [d.event for d in events])
        ids = {i for d in events if (i := _listing_id(d.event)) is not None}
        if not ids:
            return state
        known, masses = await self._known(tx.conn, ids)
        # The listings as each event leaves them, and the event after which to alert of each.
        touched: dict[str, tuple[core.Listing, str, datetime]] = {}
        for d in events:
            e = d.event
            match e:
                case OfferPosted() | RequestPosted():
                    lid = e.offer_id if isinstance(e, OfferPosted) else e.request_id
                    if lid in known:
                        continue  # a posting seen again: the first one stands
                    listing, masses[lid] = posted(e, self._title(e.material.code))
                case OfferUpdated() | RequestUpdated():
                    lid = e.offer_id if isinstance(e, OfferUpdated) else e.request_id
                    before = known.get(lid)
                    if before is None:
                        continue  # posted before this group's log began: nothing to go on
                    window = e.terms.available if isinstance(e, OfferUpdated) else e.terms.wanted
                    listing = core.Listing(
                        listing_id=lid,
                        kind=before.kind,
                        owner_id=before.owner_id,
                        material_code=e.material_code,
                        title=self._title(e.material_code),
                        region=before.region,
                        open=before.open,
                        quantity=_plain(e.terms.quantity),
                        window=_plain(window),
                        base_quantity=_base(e.terms, masses.get(lid, (None, None))),
                        taken=before.taken,
                    )
                case OfferWithdrawn() | RequestWithdrawn():
                    lid = e.offer_id if isinstance(e, OfferWithdrawn) else e.request_id
                    before = known.get(lid)
                    if before is None:
                        continue
                    listing = core.Listing(
                        listing_id=lid,
                        kind=before.kind,
                        owner_id=before.owner_id,
                        material_code=before.material_code,
                        title=before.title,
                        region=before.region,
                        open=False,
                        base_quantity=before.base_quantity,
                        taken=before.taken,
                    )
                case _:
                    continue
            known[lid] = listing
            touched[lid] = (listing, d.envelope.id, d.envelope.time)
        if not touched:
            return state
        await self._keep(tx.conn, [t[0] for t in touched.values()], masses)
        await self._alert(tx, touched)
        return state

    async def _alert(
        self, tx: Transaction, touched: dict[str, tuple[core.Listing, str, datetime]]
    ) -> None:
        if not any(core.is_open(listing) for listing, _, _ in touched.values()):
            return
        searches = [
            core.Search(
                search_id=str(r["search_id"]),
                person_id=str(r["person_id"]),
                partner_id=r["partner_id"],
                kind=r["kind"],
                q=r["q"],
                region=r["region"],
                since=r["alerts_since"],
            )
            for r in await tx.conn.fetch(_SEARCHES)
        ]
        if not searches:
            return
        told: dict[str, set[str]] = {}
        for r in await tx.conn.fetch(
            "SELECT listing_id, person_id FROM search_alerts_sent"
            " WHERE group_id = $1 AND listing_id = ANY($2::text[])",
            self.group_id,
            sorted(touched),
        ):
            told.setdefault(r["listing_id"], set()).add(str(r["person_id"]))
        due: list[tuple[core.Alert, str, datetime]] = []
        for lid in sorted(touched):
            listing, cause, at = touched[lid]
            due += [(a, cause, at) for a in core.plan(listing, at, searches, told.get(lid, set()))]
        if not due:
            return
        won = await tx.conn.fetch(
            "INSERT INTO search_alerts_sent (group_id, listing_id, person_id, notification_id)"
            " SELECT $1, u.l, u.p, u.n FROM unnest($2::text[], $3::uuid[], $4::text[])"
            " AS u(l, p, n) ON CONFLICT DO NOTHING RETURNING notification_id",
            self.group_id,
            [a.listing_id for a, _, _ in due],
            [uuid.UUID(a.person_id) for a, _, _ in due],
            [a.notification_id for a, _, _ in due],
        )
        sent = {w["notification_id"] for w in won}
        for alert, cause, at in due:
            if alert.notification_id not in sent:
                continue
            event = NotificationIssued(
                notification_id=alert.notification_id,
                partner_id=alert.partner_id,
                kind=core.KIND,
                subject_id=alert.listing_id,
                cause_event_id=cause,
                summary=alert.summary,
                data=alert.data,
                person_id=alert.person_id,
            )
            tx.emit(
                to_message(
                    event,
                    event_id=alert.notification_id,
                    source=self.source,
                    time=at,
                    subject=alert.partner_id,
                )
            )
            log.info("search_alert_sent", listing_id=alert.listing_id, search_id=alert.search_id)

    async def _taken(self, conn: Conn, events: list[Any]) -> None:
        """What each confirmed one-off match took of its offer and its request (a standing
        agreement takes per period, from recurring listings: not counted)."""
        rows = [
            (lid, e.match_id, e.weight_t)
            for e in events
            if isinstance(e, MatchConfirmed) and e.agreement is None
            for lid in (e.offer_id, e.request_id)
        ]
        if not rows:
            return
        await conn.execute(
            "INSERT INTO search_alert_taken (group_id, listing_id, match_id, taken)"
            " SELECT $1, u.l, u.m, u.t FROM unnest($2::text[], $3::text[], $4::float8[])"
            " AS u(l, m, t) ON CONFLICT DO NOTHING",
            self.group_id,
            [r[0] for r in rows],
            [r[1] for r in rows],
            [r[2] for r in rows],
        )

    async def _known(
        self, conn: Conn, ids: set[str]
    ) -> tuple[dict[str, core.Listing], dict[str, _Mass]]:
        rows = await conn.fetch(
            "SELECT l.listing_id, l.kind, l.owner_id, l.material_code, l.region, l.open,"
            " l.base_quantity, l.density_t_per_m3, l.mass_per_piece_t,"
            " (SELECT coalesce(sum(t.taken), 0) FROM search_alert_taken t"
            "  WHERE t.group_id = l.group_id AND t.listing_id = l.listing_id) AS taken"
            " FROM search_alert_listings l"
            " WHERE l.group_id = $1 AND l.listing_id = ANY($2::text[])",
            self.group_id,
            sorted(ids),
        )
        known = {
            r["listing_id"]: core.Listing(
                listing_id=r["listing_id"],
                kind=r["kind"],
                owner_id=r["owner_id"],
                material_code=r["material_code"],
                title=self._title(r["material_code"]),
                region=r["region"],
                open=r["open"],
                base_quantity=r["base_quantity"],
                taken=r["taken"],
            )
            for r in rows
        }
        masses = {r["listing_id"]: (r["density_t_per_m3"], r["mass_per_piece_t"]) for r in rows}
        return known, masses

    async def _keep(
        self, conn: Conn, listings: list[core.Listing], masses: dict[str, _Mass]
    ) -> None:
        none: _Mass = (None, None)
        rows = [kept_row(self.group_id, x, masses.get(x.listing_id, none)) for x in listings]
        await conn.execute(KEEP_LISTINGS, self.group_id, *columns(rows)[1:])


# The material's mass per unit as posted: (t per m3, t per piece).
_Mass = tuple[float | None, float | None]


def posted(e: OfferPosted | RequestPosted, title: str) -> tuple[core.Listing, _Mass]:
    """A posted listing as the core sees it, and its material's mass per unit."""
    is_offer = isinstance(e, OfferPosted)
    terms = e.terms
    window = e.terms.available if isinstance(e, OfferPosted) else e.terms.wanted
    mass = (e.material.density_t_per_m3, e.material.mass_per_piece_t)
    listing = core.Listing(
        listing_id=e.offer_id if isinstance(e, OfferPosted) else e.request_id,
        kind="offer" if is_offer else "request",
        owner_id=e.owner_id,
        material_code=e.material.code,
        title=title,
        region=e.location.region or "",
        quantity=_plain(terms.quantity),
        window=_plain(window),
        base_quantity=_base(terms, mass),
    )
    return listing, mass


def kept_row(group_id: str, listing: core.Listing, mass: _Mass) -> tuple[Any, ...]:
    """A listing's row of `search_alert_listings`, in the order of `KEPT_COLUMNS`."""
    return (
        group_id,
        listing.listing_id,
        listing.kind,
        listing.owner_id,
        listing.material_code,
        listing.region,
        listing.open,
        listing.base_quantity,
        mass[0],
        mass[1],
    )


# What `_keep` writes: $1 the group, then the columns of `kept_row`'s rows after the group.
KEEP_LISTINGS = (
    "INSERT INTO search_alert_listings (group_id, listing_id, kind, owner_id,"
    " material_code, region, open, base_quantity, density_t_per_m3, mass_per_piece_t)"
    " SELECT $1, u.l, u.k, u.o, u.c, u.r, u.x, u.q, u.d, u.m FROM unnest($2::text[],"
    " $3::text[], $4::text[], $5::text[], $6::text[], $7::bool[], $8::float8[],"
    " $9::float8[], $10::float8[]) AS u(l, k, o, c, r, x, q, d, m)"
    " ON CONFLICT (group_id, listing_id) DO UPDATE"
    " SET material_code = EXCLUDED.material_code, open = EXCLUDED.open,"
    " base_quantity = EXCLUDED.base_quantity"
)
KEPT_COLUMNS = (
    "group_id",
    "listing_id",
    "kind",
    "owner_id",
    "material_code",
    "region",
    "open",
    "base_quantity",
    "density_t_per_m3",
    "mass_per_piece_t",
)


def _base(terms: Any, mass: _Mass) -> float | None:
    q = terms.quantity
    return core.base_amount(
        q.amount,
        q.unit,
        density_t_per_m3=mass[0],
        mass_per_piece_t=mass[1],
        recurring=terms.recurrence is not None,
    )


def _listing_id(event: Any) -> str | None:
    match event:
        case OfferPosted() | OfferUpdated() | OfferWithdrawn():
            return event.offer_id
        case RequestPosted() | RequestUpdated() | RequestWithdrawn():
            return event.request_id
        case _:
            return None
