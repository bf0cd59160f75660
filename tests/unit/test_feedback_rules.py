"""The delivery-confirmation and feedback rules of marketplace/core/feedback.py, each refusal and
each accepted side."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from marketplace.core.feedback import (
    MatchState,
    Refused,
    delivery_key,
    may_confirm_delivery,
    may_give_feedback,
)

AT = datetime(2026, 11, 30, 12, tzinfo=UTC)
ONE_OFF = MatchState("m1", seller_id="S", buyer_id="B", status="confirmed", standing=False)
STANDING = MatchState("m2", seller_id="S", buyer_id="B", status="confirmed", standing=True)


def confirm(match: MatchState = ONE_OFF, who: str = "B", **kw: object) -> object:
    args: dict[str, object] = {
        "is_logistics": False,
        "carrier_id": "C",
        "delivery_id": None,
        "delivery_known": False,
        "delivered_at": None,
    }
    args.update(kw)
    return may_confirm_delivery(match, who, **args)  # type: ignore[arg-type]


def code(result: object) -> str:
    assert isinstance(result, Refused), result
    return result.code


def test_the_buyer_and_the_winning_carrier_confirm() -> None:
    assert confirm(who="B") == "buyer"
    assert confirm(who="C", is_logistics=True) == "carrier"
    assert confirm(STANDING, who="B", delivery_id="d1", delivery_known=True) == "buyer"


@pytest.mark.parametrize(
    ("match", "who", "kw", "expected"),
    [
        (ONE_OFF, "S", {}, "seller-cannot-confirm"),
        (ONE_OFF, "X", {}, "not-yours"),
        (ONE_OFF, "C", {"is_logistics": False}, "not-yours"),  # the carrier id, but not a firm
        (ONE_OFF, "C", {"is_logistics": True, "carrier_id": None}, "not-yours"),
        (
            MatchState("m3", seller_id="S", buyer_id="B", status="proposed", standing=False),
            "B",
            {},
            "not-confirmed",
        ),
        (STANDING, "B", {}, "delivery-id-needed"),
        (ONE_OFF, "B", {"delivery_id": "d1"}, "delivery-id-unexpected"),
        (STANDING, "B", {"delivery_id": "d9", "delivery_known": False}, "unknown-delivery"),
        (ONE_OFF, "B", {"delivered_at": AT}, "already-delivered"),
    ],
)
def test_confirmation_refusals(
    match: MatchState, who: str, kw: dict[str, object], expected: str
) -> None:
    assert code(confirm(match, who, **kw)) == expected


def test_a_refusal_names_the_field_where_one_is_at_fault() -> None:
    refused = confirm(STANDING, "B")
    assert isinstance(refused, Refused)
    assert refused.field == "delivery_id"


def test_each_party_of_a_delivery_rates_it_once() -> None:
    parties = ("S", "B", "C")
    assert may_give_feedback(ONE_OFF, "S", delivery_parties=parties, given_at=None) == "seller"
    assert may_give_feedback(ONE_OFF, "B", delivery_parties=parties, given_at=None) == "buyer"
    assert may_give_feedback(ONE_OFF, "C", delivery_parties=parties, given_at=None) == "carrier"
    assert code(may_give_feedback(ONE_OFF, "B", delivery_parties=parties, given_at=AT)) == (
        "already-given"
    )
    assert code(may_give_feedback(ONE_OFF, "X", delivery_parties=parties, given_at=None)) == (
        "not-yours"
    )
    no_carrier = ("S", "B", None)
    assert code(may_give_feedback(ONE_OFF, "C", delivery_parties=no_carrier, given_at=None)) == (
        "not-yours"
    )


def test_feedback_before_the_delivery_is_refused_to_the_smes_and_hidden_from_others() -> None:
    assert code(may_give_feedback(ONE_OFF, "B", delivery_parties=None, given_at=None)) == (
        "not-delivered"
    )
    assert code(may_give_feedback(ONE_OFF, "C", delivery_parties=None, given_at=None)) == (
        "not-yours"
    )


def test_a_delivery_is_the_period_under_an_agreement_and_the_match_otherwise() -> None:
    assert delivery_key("m1", None) == "m1"
    assert delivery_key("m2", "d1") == "d1"
