"""Whether a listing can be matched now, and why not (marketplace/core/eligibility.py)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from marketplace.core.book import Listing, Terms
from marketplace.core.eligibility import findings, matchable
from marketplace.core.geo import Place

T0 = datetime(2026, 12, 1, tzinfo=UTC)
COSTS = {"EUR": 0.12, "SEK": 1.35}
FACTORS = {"150102"}
HAZARDOUS = {"170503", "160601"}


def listing(kind: str = "offer", code: str = "150102", **kw: object) -> Listing:
    terms = Terms(
        quantity=5, unit="t", price=20, currency="EUR", start=T0, end=T0 + timedelta(days=30)
    )
    base = Listing(
        id="l1",
        kind=kind,  # type: ignore[arg-type]
        owner="o",
        code=code,
        place=Place(59.86, 17.64, "SE121"),
        terms=terms,
        seq=0,
    )
    return replace(base, **kw)  # type: ignore[arg-type]


def codes(item: Listing) -> list[str]:
    return [
        f.code
        for f in findings(item, cost_per_tkm=COSTS, factors=FACTORS, hazardous_codes=HAZARDOUS)
    ]


def test_a_plain_offer_with_a_factor_has_nothing_against_it() -> None:
    found = findings(listing(), cost_per_tkm=COSTS, factors=FACTORS, hazardous_codes=HAZARDOUS)
    assert found == ()
    assert matchable(found)


def test_each_rule_has_its_code_and_blocking_ones_come_first() -> None:
    m3 = listing(terms=replace(listing().terms, unit="m3"))
    assert codes(m3) == ["unit-not-convertible"]
    pieces = listing(terms=replace(listing().terms, unit="pieces"))
    assert codes(pieces) == ["unit-not-convertible"]
    bgn = listing(code="020304", terms=replace(listing().terms, currency="BGN"))
    assert codes(bgn) == ["no-transport-cost", "co2e-unknown"]
    assert codes(listing(code="170503", hazardous=True)) == [
        "hazardous-buyers-need-permit",
        "co2e-unknown",
    ]
    assert codes(listing("request", code="170503")) == ["hazardous-needs-permit", "co2e-unknown"]
    assert codes(listing("request", code="170503", hazardous_permit=True)) == ["co2e-unknown"]
    # A request that also takes a harmless code can be matched with that code's offers.
    assert "hazardous-needs-permit" not in codes(
        listing("request", code="170503", accepts=("150102",))
    )


def test_only_blocking_findings_make_a_listing_unmatchable() -> None:
    def judged(item: Listing) -> bool:
        return matchable(
            findings(item, cost_per_tkm=COSTS, factors=FACTORS, hazardous_codes=HAZARDOUS)
        )

    assert judged(listing(code="020304"))  # CO2e unknown: matched all the same
    assert judged(listing(code="170503", hazardous=True))  # permitted buyers only
    assert not judged(listing(terms=replace(listing().terms, unit="m3")))
    assert not judged(listing(terms=replace(listing().terms, currency="USD")))
    assert not judged(listing("request", code="160601"))
