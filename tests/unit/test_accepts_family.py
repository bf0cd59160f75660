"""A request accepts codes of its own material family only (#17 item 2): the API's check names
each field and the families, and the preview's and the matcher's views of a request agree."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pytest

from marketplace.core.book import Book
from marketplace.settings import Settings
from marketplace.translate.matching import listing_of, market_config
from producers.api.listings import check_accepts
from producers.api.problems import Problem
from schemas.common import Location, Material, Money, Quantity, Window
from schemas.listings import RequestTerms

START = datetime(2026, 12, 1, tzinfo=UTC)


def test_codes_of_the_requests_own_family_pass() -> None:
    check_accepts("200139", ())
    check_accepts("200139", ("150102", "020104", "191204"))
    check_accepts("020106", ("020304", "020501", "200108"))


def test_a_code_of_another_family_is_refused_naming_the_field_and_the_families() -> None:
    with pytest.raises(Problem) as caught:
        check_accepts("200139", ("150102", "150101", "170405"))
    problem = caught.value
    assert problem.status == 422
    assert problem.kind == "accepts-other-family"
    assert "plastics" in problem.detail
    assert "metals, paper" in problem.detail
    assert [f for f, _ in problem.errors] == ["accepts_codes[1]", "accepts_codes[2]"]
    assert "paper" in problem.errors[0][1]
    assert "metals" in problem.errors[1][1]
    body = orjson.loads(problem.response("/v1/requests").body)  # type: ignore[arg-type]
    assert body["type"].endswith("/accepts-other-family")
    assert body["errors"][0]["field"] == "accepts_codes[1]"


def test_a_request_posted_before_the_rule_is_matched_within_its_family() -> None:
    terms = RequestTerms(
        quantity=Quantity(amount=5, unit="t"),
        max_price=Money(amount=50, currency="EUR"),
        wanted=Window(start=START, end=datetime(2027, 2, 1, tzinfo=UTC)),
        max_distance_km=100,
    )
    listing = listing_of(
        "r-1",
        "buyer",
        Material(code="200139", description="plastics"),
        Location(lat=59.0, lon=18.0),
        terms,
        accepts=("150102", "150101"),
    )
    assert listing.accepts == ("150102",)
    codes = Book().request_codes(listing, market_config(Settings()).substitutions)
    assert codes == ["150102", "200139"]
