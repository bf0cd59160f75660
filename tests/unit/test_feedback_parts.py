"""The voice of the user (#11), the pure parts: who is asked for feedback after a delivery, the
contract's limits, where the events travel, and the figures the reports derive."""

from __future__ import annotations

import msgspec
import pytest

from marketplace.app.report import LABELS, fmt
from marketplace.core.feedback import feedback_id
from marketplace.core.notifications import KINDS, Known
from marketplace.kpis import HEADLINES, headline
from marketplace.translate.notifications import plan
from producers.api.feedback import FeedbackIn
from schemas.feedback import FEEDBACK_REASONS, FeedbackGiven, MatchDelivered
from schemas.registry import key_of, topic_of


def delivered(carrier: str | None) -> MatchDelivered:
    return MatchDelivered(
        match_id="m-1",
        material_code="150102",
        partner_id="buyer-1",
        actor_id="buyer-1",
        confirmed_as="buyer",
        seller_id="seller-1",
        buyer_id="buyer-1",
        carrier_id=carrier,
    )


def test_every_party_of_a_delivery_is_asked_once() -> None:
    notes = plan(delivered("carrier-1"), Known())
    assert [(n.partner_id, n.kind, n.data["your_side"]) for n in notes] == [
        ("seller-1", "feedback.requested", "seller"),
        ("buyer-1", "feedback.requested", "buyer"),
        ("carrier-1", "feedback.requested", "carrier"),
    ]
    assert all(n.subject_id == "m-1" for n in notes)
    assert notes[0].data["reasons"] == list(FEEDBACK_REASONS)
    # Without an awarded carrier, the two SMEs only.
    assert [n.partner_id for n in plan(delivered(None), Known())] == ["seller-1", "buyer-1"]
    assert "feedback.requested" in KINDS


def test_feedback_travels_with_its_match_and_keeps_its_limits() -> None:
    given = FeedbackGiven(
        feedback_id="f",
        match_id="m-1",
        material_code="150102",
        partner_id="seller-1",
        actor_id="seller-1",
        side="seller",
        rating=5,
        reason="price",
    )
    for event in (delivered(None), given):
        # The match's own partition: a delivery and its answers follow its confirmation.
        assert (topic_of(event), key_of(event)) == ("market.matches", "plastics")
    for rating in (0, 6):
        with pytest.raises(msgspec.ValidationError, match="rating"):
            msgspec.json.decode(
                msgspec.json.encode({"rating": rating, "reason": "price"}), type=FeedbackIn
            )
    with pytest.raises(msgspec.ValidationError, match="reason"):
        msgspec.json.decode(b'{"rating": 3, "reason": "nice"}', type=FeedbackIn)
    ok = msgspec.json.decode(b'{"rating": 3, "reason": "other"}', type=FeedbackIn)
    assert (ok.comment, ok.delivery_id) == ("", None)


def test_one_answer_id_per_party_and_delivery() -> None:
    assert feedback_id("m-1", "seller-1") == feedback_id("m-1", "seller-1")
    assert len({feedback_id(d, p) for d in ("m-1", "d-2") for p in ("a", "b")}) == 4


def test_response_rate_and_mean_rating_in_the_headline() -> None:
    tables = {
        "deliveries": [
            {"slice": "all", "deliveries": 2, "feedback_asked": 5, "feedback_answered": 4}
        ],
        "feedback": [{"slice": "all", "feedback_answers": 4, "mean_rating": 3.5, "low_ratings": 1}],
    }
    figures = headline(tables)
    assert figures["response_rate"] == 0.8
    assert (figures["deliveries"], figures["mean_rating"], figures["low_ratings"]) == (2, 3.5, 1)
    empty = headline({"deliveries": [], "feedback": []})
    assert (empty["response_rate"], empty["mean_rating"], empty["deliveries"]) == (None, None, 0)
    assert all(k in LABELS for k in HEADLINES)
    assert (fmt("response_rate", 0.8), fmt("mean_rating", 3.5)) == ("80%", "3.50")
