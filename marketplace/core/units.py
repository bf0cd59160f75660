"""Quantities and their conversions. Pure."""

from __future__ import annotations

from typing import Literal

Unit = Literal["t", "kg", "m3", "pieces"]
_TONNES_PER: dict[str, float] = {"t": 1.0, "kg": 0.001}


class IncompatibleUnits(ValueError):
    pass


def to_tonnes(
    amount: float,
    unit: Unit,
    density_t_per_m3: float | None = None,
    mass_per_piece_t: float | None = None,
) -> float:
    """Mass in tonnes: direct for t and kg, through the density for m3, through the mass of one
    piece for pieces (pallets, crates); without those, m3 and pieces have no mass."""
    if unit in _TONNES_PER:
        return amount * _TONNES_PER[unit]
    if unit == "m3":
        if density_t_per_m3 is None:
            raise IncompatibleUnits("m3 converts to tonnes only with a density")
        return amount * density_t_per_m3
    if mass_per_piece_t is None:
        raise IncompatibleUnits("pieces convert to a mass only with the mass of one piece")
    return amount * mass_per_piece_t


def convert(amount: float, unit: Unit, to: Unit, density_t_per_m3: float | None = None) -> float:
    """`amount` of `unit` expressed in `to`; m3 and mass convert through the density."""
    if unit == to:
        return amount
    if "pieces" in (unit, to):
        raise IncompatibleUnits("pieces convert to nothing but pieces")
    tonnes = to_tonnes(amount, unit, density_t_per_m3)
    if to == "m3":
        if density_t_per_m3 is None:
            raise IncompatibleUnits("tonnes convert to m3 only with a density")
        return tonnes / density_t_per_m3
    return tonnes / _TONNES_PER[to]
