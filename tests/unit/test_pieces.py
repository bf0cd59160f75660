"""Pieces (pallets, crates) have a mass when the material says what one piece weighs: they
convert to tonnes, so they are matched like any other quantity."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from marketplace.cloudevents import Envelope
from marketplace.core.book import Book
from marketplace.core.matching import Post
from marketplace.core.units import IncompatibleUnits, to_tonnes
from marketplace.events import Decoded
from marketplace.translate.matching import to_command
from schemas import common
from schemas import listings as ls


def test_pieces_convert_only_with_the_mass_of_one_piece() -> None:
    assert to_tonnes(200, "pieces", mass_per_piece_t=0.025) == pytest.approx(5.0)
    with pytest.raises(IncompatibleUnits, match="mass of one piece"):
        to_tonnes(200, "pieces")


def offer(mass_per_piece: float | None) -> Decoded:
    event = ls.OfferPosted(
        offer_id=str(uuid.uuid4()),
        owner_id="o",
        actor_id="o",
        material=common.Material(
            code="150103",
            description="EUR pallets",
            form="pallets",
            mass_per_piece_t=mass_per_piece,
        ),
        location=common.Location(lat=61.3, lon=17.06, region="SE313"),
        terms=ls.OfferTerms(
            quantity=common.Quantity(amount=200, unit="pieces"),
            price=common.Money(amount=2.5, currency="SEK"),
            available=common.Window(
                start=datetime(2026, 12, 1, tzinfo=UTC), end=datetime(2027, 1, 1, tzinfo=UTC)
            ),
            min_lot=common.Quantity(amount=40, unit="pieces"),
        ),
    )
    envelope = Envelope(
        id="e1", type="market.offer.posted.v1", source="/t", time=datetime(2026, 11, 23, tzinfo=UTC)
    )
    return Decoded(envelope, event)


def test_an_offer_in_pieces_is_matched_in_tonnes_when_a_piece_has_a_mass() -> None:
    command = to_command(offer(0.025), Book())
    assert isinstance(command, Post)
    assert command.terms.unit == "t"
    assert command.terms.quantity == pytest.approx(5.0)
    assert command.terms.price == pytest.approx(2.5 / 0.025)  # per tonne
    assert command.terms.min_lot == pytest.approx(1.0)
    assert command.mass_per_piece == 0.025
    # Without it the quantity stays in pieces, which the core never matches with tonnes.
    plain = to_command(offer(None), Book())
    assert isinstance(plain, Post)
    assert plain.terms.unit == "pieces"
