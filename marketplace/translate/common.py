"""The shapes every domain translates alike: places, money, quantities and windows."""

from __future__ import annotations

from typing import Any

from marketplace.core.geo import Place
from schemas import common


def place_of(loc: common.Location) -> Place:
    return Place(loc.lat, loc.lon, loc.region)


def location_of(p: Place) -> common.Location:
    return common.Location(lat=p.lat, lon=p.lon, region=p.region)


def money(amount: float, currency: str) -> common.Money:
    """An amount as a contract states it: to the cent."""
    return common.Money(amount=round(amount, 2), currency=currency)


def tonnes(amount: float) -> common.Quantity:
    """A mass in tonnes as a contract states it: to the gram."""
    return common.Quantity(amount=round(amount, 6), unit="t")


def window_of(w: tuple[Any, Any]) -> common.Window:
    return common.Window(start=w[0], end=w[1])
