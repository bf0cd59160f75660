"""What a draft request would meet, before it is published. Pure.

A procurer drafts a specification and sees which open offers would qualify, criterion by
criterion, and why the others would not. The same rules as matching decide (`assess`), but
nothing is reserved and other proposals are not taken into account: quantities are as listed."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from marketplace.core.book import Listing
from marketplace.core.matching import Candidate, MarketConfig, assess
from marketplace.core.specification import Check, check


@dataclass(frozen=True, slots=True)
class Row:
    offer: Listing
    distance_km: float
    criteria: tuple[Check, ...]
    refused_because: tuple[str, ...]
    candidate: Candidate | None

    @property
    def eligible(self) -> bool:
        return self.candidate is not None


@dataclass(frozen=True, slots=True)
class Preview:
    rows: tuple[Row, ...]  # the best `limit` of those within the buyer's distance
    within_distance: int
    eligible: int
    beyond_distance: int  # offers of the codes taken that lie farther than the buyer's limit


def preview(
    request: Listing, offers: Iterable[Listing], config: MarketConfig, limit: int = 50
) -> Preview:
    """The offers within the buyer's distance, eligible ones first (best score first), then the
    others with the rules that refuse them; at most `limit` rows."""
    rows: list[Row] = []
    beyond = 0
    max_km = request.terms.max_distance_km
    for offer in offers:
        if offer.owner == request.owner:
            continue
        distance = offer.place.km_to(request.place)
        if max_km is None or distance > max_km:
            beyond += 1
            continue
        why: list[str] = []
        candidate = assess(offer, request, config, distance, why)
        criteria = check(request.terms.spec, offer.stated, distance, max_km)
        rows.append(Row(offer, distance, criteria, tuple(why), candidate))
    rows.sort(
        key=lambda r: (
            not r.eligible,
            -(r.candidate.score if r.candidate else 0.0),
            -sum(c.met for c in r.criteria),
            round(r.distance_km, 6),
            r.offer.id,
        )
    )
    eligible = sum(1 for r in rows if r.eligible)
    return Preview(tuple(rows[:limit]), len(rows), eligible, beyond)
