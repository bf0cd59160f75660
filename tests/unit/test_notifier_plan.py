"""The notifier's decision (who is told what), pure: properties over generated events."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import msgspec
from hypothesis import given
from hypothesis import strategies as st

from marketplace.core.disclosure import about_km
from marketplace.core.notifications import KINDS, Known, Note
from marketplace.translate.notifications import notification_id, plan
from schemas.common import CriterionCheck, Money, Quantity, Reason
from schemas.logistics import AuctionFailed, TransportAwarded
from schemas.matches import MatchCancelled, MatchExpired, MatchProposed
from tests.strategies import ids

NOW = datetime(2026, 12, 1, tzinfo=UTC)


def proposed(match_id: str, seller: str, buyer: str) -> MatchProposed:
    return MatchProposed(
        match_id=match_id,
        offer_id="o",
        request_id="r",
        seller_id=seller,
        buyer_id=buyer,
        material_code="150102",
        quantity=Quantity(amount=3, unit="t"),
        delivered_price=Money(amount=12, currency="EUR"),
        distance_km=10,
        transport_co2e_kg=1,
        co2e_saved_kg=100,
        score=0.5,
        reasons=(Reason(factor="distance_km", value=10),),
        expires_at=NOW + timedelta(days=1),
    )


@given(ids, ids, ids)
def test_a_proposal_tells_the_seller_and_the_buyer_each_their_side(
    match_id: str, seller: str, buyer: str
) -> None:
    notes = plan(proposed(match_id, seller, buyer), Known())
    assert [(n.partner_id, n.data["your_side"]) for n in notes] == [
        (seller, "seller"),
        (buyer, "buyer"),
    ]
    assert {n.kind for n in notes} == {"match.proposed"}
    assert {n.subject_id for n in notes} == {match_id}


@given(ids, ids, ids, st.booleans())
def test_an_expiry_or_cancellation_reaches_the_remembered_parties_only(
    match_id: str, seller: str, buyer: str, expired: bool
) -> None:
    event = (
        MatchExpired(match_id=match_id, material_code="150102")
        if expired
        else MatchCancelled(match_id=match_id, material_code="150102", reason="declined")
    )
    assert plan(event, Known()) == []
    told = plan(event, Known(parties=(seller, buyer)))
    assert [n.partner_id for n in told] == [seller, buyer]


@given(ids, st.lists(ids, max_size=6), st.data())
def test_an_award_tells_the_winner_every_other_bidder_and_both_smes_once(
    winner: str, others: list[str], data: st.DataObject
) -> None:
    bidders = tuple(data.draw(st.permutations([winner, *others])))
    parties = data.draw(st.none() | st.tuples(ids, ids))
    event = TransportAwarded(
        job_id="j",
        match_id="m",
        quote_id="q",
        carrier_id=winner,
        price=Money(amount=100, currency="EUR"),
        co2e_kg=5,
        bidders=bidders,
    )
    notes = plan(event, Known(parties=parties))
    assert [n.partner_id for n in notes if n.kind == "award.won"] == [winner]
    assert sorted(n.partner_id for n in notes if n.kind == "award.lost") == sorted(
        set(others) - {winner}
    )
    smes = [n.partner_id for n in notes if n.kind == "transport.awarded"]
    assert smes == (list(parties) if parties else [])


@given(st.lists(ids, max_size=5), st.lists(ids, max_size=5), st.booleans())
def test_a_failed_auction_reopens_to_fitting_firms_that_did_not_bid(
    bidders: list[str], fitting: list[str], reopened: bool
) -> None:
    event = AuctionFailed(
        job_id="j",
        match_id="m",
        reason="no quotes",
        reopened_until=NOW if reopened else None,
        bidders=tuple(bidders),
    )
    notes = plan(event, Known(fitting=tuple(fitting)))
    assert sorted(n.partner_id for n in notes if n.kind == "auction.failed") == sorted(set(bidders))
    again = {n.partner_id for n in notes if n.kind == "job.reopened"}
    assert again == ((set(fitting) - set(bidders)) if reopened else set())


@given(ids, ids, ids, st.sampled_from(KINDS))
def test_notification_ids_follow_cause_kind_and_recipient(
    cause: str, a: str, b: str, kind: str
) -> None:
    first = notification_id(cause, Note(a, kind, "s", "one text"))
    assert first == notification_id(cause, Note(a, kind, "other subject", "another text"))
    if a != b:
        assert first != notification_id(cause, Note(b, kind, "s", ""))
    assert first != notification_id(cause + "x", Note(a, kind, "s", ""))


@given(ids, ids, ids, st.floats(min_value=0.5, max_value=5000))
def test_a_proposal_tells_its_distance_only_roughly(
    match_id: str, seller: str, buyer: str, km: float
) -> None:
    event = msgspec.structs.replace(
        proposed(match_id, seller, buyer),
        distance_km=km,
        criteria=(
            CriterionCheck(
                criterion="max_distance_km",
                required="at most 5000 km",
                offered=f"{km:.1f} km",
                met=True,
            ),
        ),
    )
    rough = about_km(km)
    for note in plan(event, Known()):
        assert note.data["distance_km"] == rough
        assert note.data["distance_exact"] is False
        assert note.data["criteria"][0]["offered"] == f"about {rough} km"
        assert note.summary.endswith(f", about {rough} km")
