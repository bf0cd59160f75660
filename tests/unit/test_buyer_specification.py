"""Buyer specifications in the matching core: hard criteria decide, weights rank, and every
proposal says criterion by criterion what the offer meets."""

from __future__ import annotations

from dataclasses import replace

from marketplace.core.book import Book, Listing
from marketplace.core.matching import Post, Proposed, assess, step
from marketplace.core.specification import Spec, Stated, check
from tests.unit.test_matching import CONFIG, offer, request


def spec_request(i: str, spec: Spec, weight_price: float = 0.5, weight_co2e: float = 0.5) -> Post:
    post = request(i, "buyer", 10, 200)
    terms = replace(post.terms, spec=spec, weight_price=weight_price, weight_co2e=weight_co2e)
    return replace(post, terms=terms)


def proposed(book: Book, *posts: Post) -> list[Proposed]:
    out: list[Proposed] = []
    for post in posts:
        book, events = step(book, post, CONFIG)
        out.extend(e for e in events if isinstance(e, Proposed))
    return out


def test_criteria_report_each_requirement_and_what_the_offer_states() -> None:
    spec = Spec(min_recycled_pct=50, max_contamination_pct=2, certifications=("EN 15343",))
    checks = check(spec, Stated(60, 3.5, ("en  15343",)), 42.0, 100)
    assert [(c.criterion, c.offered, c.met) for c in checks] == [
        ("max_distance_km", "42.0 km", True),
        ("min_recycled_content_pct", "60 %", True),
        ("max_contamination_pct", "3.5 %", False),
        ("certification", "held", True),  # names compare without case or extra spaces
    ]
    unstated = check(spec, Stated(), None, None)
    assert [c.met for c in unstated] == [False, False, False]
    assert unstated[0].offered == "not stated"


def test_hard_criteria_exclude_offers_that_miss_or_do_not_state_them() -> None:
    spec = Spec(min_recycled_pct=50, certifications=("ISCC PLUS",))
    good = replace(offer("good", "s1", 10, 10), stated=Stated(80, None, ("ISCC PLUS",)))
    low = replace(offer("low", "s2", 10, 10), stated=Stated(30, None, ("ISCC PLUS",)))
    silent = offer("silent", "s3", 10, 10)
    uncertified = replace(offer("uncert", "s4", 10, 10), stated=Stated(90, None, ()))
    book = Book()
    got = proposed(book, good, low, silent, uncertified, spec_request("r", spec))
    assert [p.proposal.offer_id for p in got] == ["good"]
    assert [c.criterion for c in got[0].criteria] == [
        "max_distance_km",
        "min_recycled_content_pct",
        "certification",
    ]
    assert all(c.met for c in got[0].criteria)


def test_the_buyers_weights_rank_price_against_co2e() -> None:
    # Cheap but farther (more transport CO2e) against dearer and nearer.
    near = _listing(offer("near", "s1", 10, 60))
    far = replace(offer("far", "s2", 10, 5), place=replace(near.place, lat=near.place.lat - 0.5))
    winners = {}
    for name, weights in {"price": (1.0, 0.0), "co2e": (0.0, 1.0)}.items():
        book = Book()
        r = spec_request("r", Spec(), weight_price=weights[0], weight_co2e=weights[1])
        r = replace(r, terms=replace(r.terms, quantity=10))
        got = proposed(book, offer("near", "s1", 10, 60), far, r)
        winners[name] = got[0].proposal.offer_id
    assert winners == {"price": "far", "co2e": "near"}


def test_assess_names_the_rule_that_refuses_a_pair() -> None:
    spec = Spec(max_contamination_pct=1)
    o = _listing(replace(offer("o", "s", 10, 10), stated=Stated(None, 4.0, ())))
    r = _listing(spec_request("r", spec))
    why: list[str] = []
    assert assess(o, r, CONFIG, why=why) is None
    assert why == ["does not meet the buyer's specification"]
    ok = _listing(replace(offer("o", "s", 10, 10), stated=Stated(None, 0.5, ())))
    candidate = assess(ok, r, CONFIG)
    assert candidate is not None
    assert all(c.met for c in candidate.criteria())


def _listing(post: Post) -> Listing:
    return Listing(
        id=post.id,
        kind=post.kind,
        owner=post.owner,
        code=post.code,
        place=post.place,
        terms=post.terms,
        seq=1,
        stated=post.stated,
    )
