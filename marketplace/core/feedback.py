"""Deliveries and feedback (#11), the rules: who may confirm that a match's material arrived, who
may rate a delivery, and the identities that make each count once. Pure: the API looks up what
the rules need and maps a refusal to its HTTP problem."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from marketplace.core.ids import derived_id

Side = Literal["seller", "buyer", "carrier"]
Confirmer = Literal["buyer", "carrier"]
RefusalCode = Literal[
    "not-yours",  # the partner is no party of the match (or of the delivery): said as not found
    "seller-cannot-confirm",
    "not-confirmed",
    "delivery-id-needed",
    "delivery-id-unexpected",
    "unknown-delivery",
    "already-delivered",
    "not-delivered",
    "already-given",
]


@dataclass(frozen=True, slots=True)
class Refused:
    code: RefusalCode
    detail: str
    field: str | None = None


@dataclass(frozen=True, slots=True)
class MatchState:
    match_id: str
    seller_id: str
    buyer_id: str
    status: str  # the read model's: proposed, confirmed, ended, ...
    standing: bool  # a standing agreement, whose deliveries are confirmed one by one


def delivery_key(match_id: str, delivery_id: str | None) -> str:
    """A delivery's identity: one period's delivery id under a standing agreement, or the match's
    id for a one-off match."""
    return delivery_id or match_id


def feedback_id(key: str, partner_id: str) -> str:
    """One answer per party and delivery: a repeat derives the same id."""
    return derived_id(f"{key}/feedback/{partner_id}")


def may_confirm_delivery(
    match: MatchState,
    partner_id: str,
    *,
    is_logistics: bool,
    carrier_id: str | None,
    delivery_id: str | None,
    delivery_known: bool,
    delivered_at: datetime | None,
) -> Confirmer | Refused:
    """The side a partner confirms a delivery as (the buyer, or the firm that won its transport),
    or why it may not. `delivery_known`: a transport job exists for `delivery_id` under the
    match; `delivered_at`: when this delivery was confirmed already, if it was."""
    confirmed_as: Confirmer
    if partner_id == match.buyer_id:
        confirmed_as = "buyer"
    elif partner_id == match.seller_id:
        return Refused(
            "seller-cannot-confirm", "the buyer or the carrier confirms a delivery, not the seller"
        )
    elif is_logistics and carrier_id is not None and partner_id == carrier_id:
        confirmed_as = "carrier"
    else:
        return Refused("not-yours", f"no match {match.match_id} of yours")
    if match.status not in ("confirmed", "ended"):
        return Refused("not-confirmed", f"match {match.match_id} is {match.status}")
    if match.standing and delivery_id is None:
        return Refused(
            "delivery-id-needed",
            "a standing agreement's deliveries are confirmed one by one: name the delivery_id",
            "delivery_id",
        )
    if not match.standing and delivery_id is not None:
        return Refused(
            "delivery-id-unexpected", "a one-off match has no delivery_id", "delivery_id"
        )
    if match.standing and not delivery_known:
        return Refused(
            "unknown-delivery",
            f"no delivery {delivery_id} under match {match.match_id}",
            "delivery_id",
        )
    if delivered_at is not None:
        return Refused(
            "already-delivered", f"delivery confirmed already at {delivered_at.isoformat()}"
        )
    return confirmed_as


def may_give_feedback(
    match: MatchState,
    partner_id: str,
    *,
    delivery_parties: tuple[str, str, str | None] | None,
    given_at: datetime | None,
) -> Side | Refused:
    """The side a partner rates a delivery from, or why it may not. `delivery_parties`: (seller,
    buyer, carrier) of the confirmed delivery, None while it is not confirmed; `given_at`: when
    this partner rated it already, if it did."""
    if delivery_parties is None:
        if partner_id in (match.seller_id, match.buyer_id):
            return Refused(
                "not-delivered", "feedback comes after the delivery: it has not been confirmed yet"
            )
        return Refused("not-yours", f"no match {match.match_id} of yours")
    seller, buyer, carrier = delivery_parties
    sides: dict[str, Side] = {seller: "seller", buyer: "buyer"}
    if carrier:
        sides[carrier] = "carrier"
    side = sides.get(partner_id)
    if side is None:
        return Refused("not-yours", f"no match {match.match_id} of yours")
    if given_at is not None:
        return Refused(
            "already-given",
            f"you gave your feedback on this delivery at {given_at.isoformat()}; it counts once",
        )
    return side
