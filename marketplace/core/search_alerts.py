"""Alerts of saved searches (#19), pure: which people must be told of a listing.

A person keeps searches of the open market (kind, words or a code, the start of a region's code:
producers/web/searches.py) and marks some for alerts. `plan(listing, at, searches, told)` takes
one open listing as it stands after an event of time `at`, the marked searches and the people
already told of it, and answers one alert per person with a search the listing fits and marked
at or before `at` (what came before the mark is not news to send): the first such search (by id)
names it. The listing's own organisation is never alerted, and the alert never says who owns the
listing (the open market does not show it either). A search fits as the market page finds: the
same kind (or any), the code starting with the digits given or the material's title holding
every word given, the region starting with the code given.

A one-off listing that confirmed deals have fully taken is no longer open for alerts, though its
owner has not withdrawn it: `taken(listing)` compares what the confirmed one-off matches took
(their weight, in the matcher's base unit) with the listing's quantity in that unit
(`base_amount`, as the matcher converts it). A recurring listing renews each period and is never
taken for good."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from marketplace.core.ids import derived_id
from marketplace.core.units import IncompatibleUnits, Unit, to_tonnes

KIND = "search.new_listing"
KINDS = (KIND,)

# A value already in JSON form (a quantity, a window).
JSON = Any


@dataclass(frozen=True, slots=True)
class Listing:
    listing_id: str
    kind: str  # "offer" or "request"
    owner_id: str
    material_code: str
    title: str  # the List of Waste's title of the code ("" when unknown)
    region: str  # "" when the listing has none
    open: bool = True
    quantity: JSON = None  # {"amount", "unit"}
    window: JSON = None  # {"start", "end"}
    # The quantity in the matcher's base unit (None: a recurring listing), and what confirmed
    # one-off deals took of it in that unit.
    base_quantity: float | None = None
    taken: float = 0.0


@dataclass(frozen=True, slots=True)
class Search:
    search_id: str
    person_id: str
    partner_id: str  # the person's organisation
    kind: str  # "", "offer" or "request"
    q: str
    region: str
    since: datetime  # when the person marked it for alerts


@dataclass(frozen=True, slots=True)
class Alert:
    notification_id: str
    person_id: str
    partner_id: str
    search_id: str
    listing_id: str
    summary: str
    data: dict[str, Any] = field(default_factory=dict)


def base_amount(
    amount: float,
    unit: Unit,
    *,
    density_t_per_m3: float | None = None,
    mass_per_piece_t: float | None = None,
    recurring: bool = False,
) -> float | None:
    """A listing's quantity as the matcher counts it: in tonnes when the material's mass is
    known, else in its own unit; None for a recurring listing (its quantity is per period)."""
    if recurring:
        return None
    try:
        return amount * to_tonnes(1.0, unit, density_t_per_m3, mass_per_piece_t)
    except IncompatibleUnits:
        return amount


# What confirmed deals may leave of a listing and still call it taken (rounding of the weights).
_TAKEN_SLACK = 1e-6


def taken(listing: Listing) -> bool:
    """Whether confirmed one-off deals have taken all of the listing."""
    q = listing.base_quantity
    return q is not None and listing.taken >= q - _TAKEN_SLACK


def is_open(listing: Listing) -> bool:
    """Open for alerts: not withdrawn and not fully taken."""
    return listing.open and not taken(listing)


def alert_id(listing_id: str, person_id: str) -> str:
    """One id per listing and person, whatever event or search brought the alert."""
    return derived_id(f"search-alert/{listing_id}/{person_id}")


def fits(listing: Listing, search: Search) -> bool:
    """Whether the open market would show the listing under the search's filters."""
    if search.kind and search.kind != listing.kind:
        return False
    words = search.q.strip()
    if words:
        digits = words.replace(" ", "")
        by_code = digits.isdigit() and listing.material_code.startswith(digits)
        title = listing.title.lower()
        if not by_code and not all(w in title for w in words.lower().split()):
            return False
    region = search.region.strip().upper()
    return not region or listing.region.upper().startswith(region)


def plan(
    listing: Listing, at: datetime, searches: Iterable[Search], told: Iterable[str] = ()
) -> list[Alert]:
    """The alerts to send about `listing` after an event of time `at`: one per person not yet
    told (`told`: person ids), not of the listing's organisation, with a search it fits that was
    marked at or before `at`. A listing withdrawn or fully taken gets none."""
    if not is_open(listing):
        return []
    done = set(told)
    alerts = []
    for search in sorted(searches, key=lambda s: (s.person_id, s.search_id)):
        if search.person_id in done or search.partner_id == listing.owner_id:
            continue
        if search.since > at:
            continue
        if not fits(listing, search):
            continue
        done.add(search.person_id)
        alerts.append(
            Alert(
                notification_id=alert_id(listing.listing_id, search.person_id),
                person_id=search.person_id,
                partner_id=search.partner_id,
                search_id=search.search_id,
                listing_id=listing.listing_id,
                summary=_summary(listing),
                data={
                    "listing_id": listing.listing_id,
                    "listing_kind": listing.kind,
                    "material_code": listing.material_code,
                    "quantity": listing.quantity,
                    "region": listing.region,
                    "window": listing.window,
                    "search_id": search.search_id,
                },
            )
        )
    return alerts


def _summary(listing: Listing) -> str:
    what = "offer" if listing.kind == "offer" else "request"
    q = listing.quantity
    amount = f"{q['amount']:g} {q['unit']} of " if isinstance(q, dict) and q else ""
    where = f" in {listing.region}" if listing.region else ""
    return f"New {what} on the market: {amount}{listing.material_code}{where}"[:200]
