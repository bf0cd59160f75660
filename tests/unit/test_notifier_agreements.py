"""The notifier on standing agreements: the proposal says the rhythm, each period's delivery is
told to both SMEs, and the end of an agreement reaches the remembered parties."""

from __future__ import annotations

from datetime import date

import msgspec

from marketplace.core.notifications import KINDS, Known
from marketplace.translate.notifications import plan
from schemas.common import Agreement, Location, Money, Quantity, Window
from schemas.matches import AgreementEnded, DeliveryScheduled
from tests.unit.test_notifier_plan import NOW, proposed

MONTHLY = Agreement(period="month", quantity=Quantity(amount=8, unit="t"), starts=date(2026, 12, 1))


def test_a_proposed_agreement_says_its_rhythm() -> None:
    notes = plan(msgspec.structs.replace(proposed("m1", "s", "b"), agreement=MONTHLY), Known())
    assert all("every month from 2026-12-01" in n.summary for n in notes)
    assert notes[0].data["agreement"]["period"] == "month"
    one_off = plan(proposed("m2", "s", "b"), Known())
    assert all("every" not in n.summary for n in one_off)
    assert one_off[0].data["agreement"] is None


def test_each_delivery_is_told_to_both_smes_under_its_own_id() -> None:
    here = Location(lat=60.0, lon=17.0)
    due = DeliveryScheduled(
        delivery_id="d-2026-12",
        match_id="m1",
        offer_id="o",
        request_id="r",
        seller_id="s",
        buyer_id="b",
        material_code="020702",
        hazardous=False,
        period_key="2026-12",
        quantity=Quantity(amount=8, unit="t"),
        weight_t=8,
        pickup=here,
        delivery=here,
        pickup_window=Window(start=NOW, end=NOW.replace(month=12, day=31)),
        delivery_window=Window(start=NOW, end=NOW.replace(month=12, day=31)),
        delivered_price=Money(amount=20, currency="EUR"),
    )
    notes = plan(due, Known())
    assert [(n.partner_id, n.kind, n.subject_id) for n in notes] == [
        ("s", "delivery.scheduled", "d-2026-12"),
        ("b", "delivery.scheduled", "d-2026-12"),
    ]
    assert notes[1].data["your_side"] == "buyer"
    assert "2026-12" in notes[0].summary


def test_the_end_of_an_agreement_reaches_the_remembered_parties_only() -> None:
    ended = AgreementEnded(
        match_id="m1", material_code="020702", reason="offer_withdrawn", last_period_key="2026-12"
    )
    assert plan(ended, Known()) == []
    notes = plan(ended, Known(parties=("s", "b")))
    assert [(n.partner_id, n.kind) for n in notes] == [
        ("s", "agreement.ended"),
        ("b", "agreement.ended"),
    ]
    assert {"delivery.scheduled", "agreement.ended"} <= set(KINDS)
