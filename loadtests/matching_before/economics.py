"""What moving a tonne costs and what reusing it saves. Pure: factors come in as data
(marketplace/reference.py reads them from marketplace/core/data with their sources)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class MaterialFactor:
    """kg CO2e per tonne: making it new, reusing it instead, and the disposal it escapes."""

    virgin: float
    reuse: float
    disposal: float

    @property
    def saved_per_t(self) -> float:
        # Reuse stands in for virgin material on the buyer's side and for disposal on the
        # seller's side, and costs its own processing.
        return self.virgin + self.disposal - self.reuse


@dataclass(frozen=True, slots=True)
class TransportModel:
    # The operator's estimate per tonne-km, by currency; a currency without one is not matched.
    cost_per_tkm: Mapping[str, float]
    kgco2e_per_tkm: float
    # Road distance is longer than the great circle; 1.3 is a common rule of thumb.
    detour_factor: float = 1.3


@dataclass(frozen=True, slots=True)
class Estimate:
    road_km: float
    transport_cost_per_t: float
    transport_co2e_kg: float
    # None when the material has no sourced factor: the saving is unknown, never invented.
    saved_co2e_kg: float | None

    @property
    def net_co2e_kg(self) -> float | None:
        if self.saved_co2e_kg is None:
            return None
        return self.saved_co2e_kg - self.transport_co2e_kg


def estimate(
    *,
    distance_km: float,
    tonnes: float,
    factor: MaterialFactor | None,
    transport: TransportModel,
    currency: str,
) -> Estimate | None:
    cost = transport.cost_per_tkm.get(currency)
    if cost is None:
        return None
    road_km = distance_km * transport.detour_factor
    return Estimate(
        road_km=road_km,
        transport_cost_per_t=road_km * cost,
        transport_co2e_kg=tonnes * road_km * transport.kgco2e_per_tkm,
        saved_co2e_kg=None if factor is None else tonnes * factor.saved_per_t,
    )


def factor_for(code: str, factors: Mapping[str, MaterialFactor]) -> MaterialFactor | None:
    return factors.get(code)
