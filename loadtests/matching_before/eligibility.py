"""Whether a listing can be matched now, and if not why: the rules the matcher applies to one
listing on its own, each with a code a page can translate. Pure.

The matcher's pair rules (`matching.assess`) call the same predicates, so what a listing's answer
says and what the matcher does cannot drift apart. A finding is blocking when no pair can form
while it holds; the others say what a trade will lack (its CO2e saving, say)."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Literal

from loadtests.matching_before.book import Listing

FindingCode = Literal[
    "unit-not-convertible",  # the quantity does not convert to tonnes
    "no-transport-cost",  # the operator has no transport cost for the listing's currency
    "hazardous-needs-permit",  # a request for hazardous material without a permit
    "hazardous-buyers-need-permit",  # an offer of hazardous material: only permitted buyers
    "co2e-unknown",  # no sourced carbon factor: matched, its CO2e saving unknown
]
BLOCKING: frozenset[FindingCode] = frozenset(
    {"unit-not-convertible", "no-transport-cost", "hazardous-needs-permit"}
)


@dataclass(frozen=True, slots=True)
class Finding:
    code: FindingCode
    detail: str

    @property
    def blocking(self) -> bool:
        return self.code in BLOCKING


def in_tonnes(listing: Listing) -> bool:
    """Matching works in tonnes: m3 need the material's density, pieces its mass per piece."""
    return listing.terms.unit == "t"


def priced(currency: str, cost_per_tkm: Mapping[str, float]) -> bool:
    """Transport is estimated per tonne-km in the listing's currency, or not at all."""
    return currency in cost_per_tkm


def permitted(offer_hazardous: bool, request_permit: bool) -> bool:
    """Hazardous material goes only to a receiver with a permit."""
    return request_permit or not offer_hazardous


def findings(
    listing: Listing,
    *,
    cost_per_tkm: Mapping[str, float],
    factors: Collection[str],
    hazardous_codes: Collection[str],
) -> tuple[Finding, ...]:
    """What stands between the listing and a match now, blocking findings first. `factors`:
    the codes with a sourced carbon factor; `hazardous_codes`: the List of Waste's hazardous
    entries."""
    out: list[Finding] = []
    if not in_tonnes(listing):
        unit = listing.terms.unit
        need = "its density (t per m3)" if unit == "m3" else "its mass per piece (t)"
        out.append(
            Finding(
                "unit-not-convertible",
                f"quantities in {unit} are matched in tonnes: give the material's {need}",
            )
        )
    if not priced(listing.terms.currency, cost_per_tkm):
        out.append(
            Finding(
                "no-transport-cost",
                f"no transport cost is set for {listing.terms.currency}; "
                f"the exchange estimates transport in {', '.join(sorted(cost_per_tkm))}",
            )
        )
    if listing.kind == "request":
        takes = (listing.code, *listing.accepts)
        if not listing.hazardous_permit and all(c in hazardous_codes for c in takes):
            out.append(
                Finding(
                    "hazardous-needs-permit",
                    f"{listing.code} is hazardous: only a receiver with a permit can take it",
                )
            )
    elif listing.hazardous:
        out.append(
            Finding(
                "hazardous-buyers-need-permit",
                f"{listing.code} is hazardous: only buyers with a permit are matched",
            )
        )
    # For an offer its own code's factor counts; a request is matched with offers of the codes
    # it takes, and the answer speaks of the code it asks for.
    if listing.code not in factors:
        out.append(
            Finding(
                "co2e-unknown",
                f"no sourced carbon factor for {listing.code}: it is matched, and the CO2e "
                "its trades save is shown as unknown",
            )
        )
    return tuple(sorted(out, key=lambda f: not f.blocking))


def matchable(found: tuple[Finding, ...]) -> bool:
    return not any(f.blocking for f in found)
