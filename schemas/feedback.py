"""The voice of the user (#11) on `market.matches` (key: material family, like the match, so
that a delivery and its feedback follow the match's confirmation on its partition).

The buyer or the awarded carrier confirms that a confirmed match (or one period's delivery under
a standing agreement) arrived; the notifier then asks the parties named in that event for
feedback. Each party answers once per delivery with a rating, the main reason for it from a fixed
list, and an optional comment. Both events come from the API (`ce_source` /api), not from the
matcher, so the audit replay of matching does not count them among its decisions."""

from __future__ import annotations

from typing import Annotated, Literal, get_args

import msgspec

from schemas.base import Event
from schemas.common import Id, LongText, Sealed, WasteCode

# What mattered most for the rating (good or bad): a fixed list, so that answers can be counted.
FeedbackReason = Literal[
    "material_quality",
    "quantity",
    "timeliness",
    "communication",
    "price",
    "transport",
    "paperwork",
    "other",
]
FEEDBACK_REASONS: tuple[str, ...] = get_args(FeedbackReason)
Side = Literal["seller", "buyer", "carrier"]


class MatchDelivered(Event, frozen=True, kw_only=True, tag="market.match.delivered.v1"):
    """The material of a confirmed match arrived, as its buyer or its carrier confirms; the
    parties named here are asked for feedback."""

    match_id: Id
    material_code: WasteCode
    # One period's delivery under a standing agreement; None for a one-off match.
    delivery_id: Id | None = None
    partner_id: Id  # who confirmed
    actor_id: Id
    # The person who acted, by pseudonymous id, when a person did (the pages; #19).
    person_id: Id | None = None
    confirmed_as: Literal["buyer", "carrier"]
    seller_id: Id
    buyer_id: Id
    # The logistics firm that won the transport job, when there was one.
    carrier_id: Id | None = None
    note: LongText = ""
    # The personal fields, sealed with the organisation's data key (#21 item 8); those fields
    # then hold "". None: an event from before sealing, or one with nothing to seal.
    sealed: Sealed | None = None


class FeedbackGiven(Event, frozen=True, kw_only=True, tag="market.feedback.given.v1"):
    """One party's feedback on one delivery: a rating from 1 (bad) to 5 (very good) and the
    reason that mattered most."""

    # Derived from the delivery and the party: one answer per party and delivery.
    feedback_id: Id
    match_id: Id
    material_code: WasteCode
    delivery_id: Id | None = None
    partner_id: Id  # who answers
    actor_id: Id
    # The person who acted, by pseudonymous id, when a person did (the pages; #19).
    person_id: Id | None = None
    side: Side
    rating: Annotated[int, msgspec.Meta(ge=1, le=5)]
    reason: FeedbackReason
    comment: LongText = ""
    # The personal fields, sealed with the organisation's data key (#21 item 8); those fields
    # then hold "". None: an event from before sealing, or one with nothing to seal.
    sealed: Sealed | None = None


FeedbackEvent = MatchDelivered | FeedbackGiven
