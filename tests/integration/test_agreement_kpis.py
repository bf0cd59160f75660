"""A standing agreement in the KPIs (#11): one confirmed match, whose tonnes and CO2e count once
per scheduled delivery, in the month each delivery is scheduled. The facts go through the
analytics consumer's own `record_fact` into session tables on the real PostgreSQL (as the period
report does), so the test sees only its own facts."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from consumers.analytics import record_fact
from marketplace.app.report import FACTS
from marketplace.cloudevents import Envelope
from marketplace.core.ids import derived_id
from marketplace.db import connect
from marketplace.events import Decoded
from marketplace.kpis import headline, kpis
from marketplace.settings import Settings
from schemas.base import Event
from schemas.common import Agreement, Location, Money, Quantity, Reason, Window
from schemas.matches import DeliveryScheduled, MatchConfirmed, MatchProposed
from schemas.registry import type_name

pytestmark = pytest.mark.integration

DEC = datetime(2026, 12, 1, tzinfo=UTC)
JAN = datetime(2027, 1, 1, tzinfo=UTC)
HERE = Location(lat=60.6, lon=15.6, region="SE312")


def _decoded(event: Event, at: datetime, n: int) -> Decoded:
    return Decoded(
        Envelope(id=derived_id("kpi-test", n), type=type_name(type(event)), source="/t", time=at),
        event,
    )


def _proposed(match_id: str, tonnes: float, agreement: Agreement | None) -> MatchProposed:
    return MatchProposed(
        match_id=match_id,
        offer_id=f"{match_id}-o",
        request_id=f"{match_id}-r",
        seller_id="s",
        buyer_id="b",
        material_code="020702",
        quantity=Quantity(amount=tonnes, unit="t"),
        delivered_price=Money(amount=20, currency="EUR"),
        distance_km=30,
        transport_co2e_kg=10 * tonnes,
        co2e_saved_kg=100 * tonnes,
        score=0.7,
        reasons=(Reason(factor="distance_km", value=30),),
        expires_at=DEC + timedelta(days=2),
        agreement=agreement,
    )


def _confirmed(p: MatchProposed) -> MatchConfirmed:
    window = Window(start=DEC, end=DEC + timedelta(days=60))
    return MatchConfirmed(
        match_id=p.match_id,
        offer_id=p.offer_id,
        request_id=p.request_id,
        seller_id="s",
        buyer_id="b",
        material_code=p.material_code,
        hazardous=False,
        quantity=p.quantity,
        weight_t=p.quantity.amount,
        pickup=HERE,
        delivery=HERE,
        pickup_window=window,
        delivery_window=window,
        delivered_price=p.delivered_price,
        agreement=p.agreement,
    )


def _delivery(p: MatchProposed, key: str, start: datetime) -> DeliveryScheduled:
    window = Window(start=start, end=start + timedelta(days=28))
    return DeliveryScheduled(
        delivery_id=f"{p.match_id}/{key}",
        match_id=p.match_id,
        offer_id=p.offer_id,
        request_id=p.request_id,
        seller_id="s",
        buyer_id="b",
        material_code=p.material_code,
        hazardous=False,
        period_key=key,
        quantity=p.quantity,
        weight_t=p.quantity.amount,
        pickup=HERE,
        delivery=HERE,
        pickup_window=window,
        delivery_window=window,
        delivered_price=p.delivered_price,
    )


async def test_an_agreement_counts_once_as_a_match_and_per_delivery_in_tonnes(
    settings: Settings,
) -> None:
    monthly = Agreement(
        period="month", quantity=Quantity(amount=8, unit="t"), starts=date(2026, 12, 1)
    )
    standing = _proposed("standing-1", 8, monthly)
    one_off = _proposed("one-off-1", 3, None)
    events: list[tuple[Event, datetime]] = [
        (standing, DEC + timedelta(hours=1)),
        (one_off, DEC + timedelta(hours=1)),
        (_confirmed(standing), DEC + timedelta(hours=2)),
        (_confirmed(one_off), DEC + timedelta(hours=2)),
        (_delivery(standing, "2026-12", DEC), DEC + timedelta(hours=3)),
        (_delivery(standing, "2027-01", JAN), JAN),
        (_delivery(standing, "2027-01", JAN), JAN),  # a repeated record changes nothing
    ]
    conn = await connect(settings)
    try:
        async with conn.transaction():
            for table in FACTS:
                await conn.execute(
                    f"CREATE TEMP TABLE {table} (LIKE public.{table} INCLUDING ALL) ON COMMIT DROP"
                )
            for n, (event, at) in enumerate(events):
                await record_fact(conn, _decoded(event, at, n))
            december = headline(await kpis(conn, DEC, JAN))
            january = headline(await kpis(conn, JAN, JAN + timedelta(days=31)))
            both = headline(await kpis(conn, DEC, JAN + timedelta(days=31)))
            months = await kpis(conn, DEC, JAN + timedelta(days=31), "month")
    finally:
        await conn.close()
    # December: two matches confirmed; 3 t one-off + the agreement's first 8 t delivery.
    assert december["confirmed"] == 2
    assert december["tonnes_exchanged"] == 11
    assert december["co2e_saved_kg"] == pytest.approx(90 * 11)
    # January: no new match, the agreement's second delivery.
    assert january["confirmed"] == 0
    assert january["tonnes_exchanged"] == 8
    assert both["tonnes_exchanged"] == 19
    by_month = {r["slice"]: r["tonnes_exchanged"] for r in months["outcomes"]}
    assert by_month == {"2026-12": 11, "2027-01": 8}
