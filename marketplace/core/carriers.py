"""Which transport jobs a logistics firm can carry. Pure; used by the API's job list, the
notifier (who to tell about a job) and the auctioneer (whose quotes count)."""

from __future__ import annotations

from dataclasses import dataclass

from marketplace.core.geo import Place, in_region

__all__ = ["Coverage", "Depot", "JobNeeds", "Place", "unfit_reasons"]


@dataclass(frozen=True, slots=True)
class Depot:
    place: Place
    radius_km: float


@dataclass(frozen=True, slots=True)
class Coverage:
    depots: tuple[Depot, ...]
    regions: tuple[str, ...]
    capacity_t: float
    hazardous_permit: bool
    vehicle_types: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class JobNeeds:
    pickup: Place
    delivery: Place
    weight_t: float
    hazardous: bool


def _covered(place: Place, coverage: Coverage) -> bool:
    if any(in_region(place.region, r) for r in coverage.regions):
        return True
    return any(d.place.km_to(place) <= d.radius_km for d in coverage.depots)


def unfit_reasons(job: JobNeeds, coverage: Coverage) -> list[str]:
    """Why this carrier cannot take the job; empty when it can.

    Rule: both ends of the trip lie in the carrier's coverage (a declared region, or within a
    depot's radius), one load fits its capacity, and hazardous waste needs its permit."""
    reasons = []
    if not _covered(job.pickup, coverage):
        reasons.append("pickup is outside your coverage")
    if not _covered(job.delivery, coverage):
        reasons.append("delivery is outside your coverage")
    if job.weight_t > coverage.capacity_t:
        reasons.append(f"{job.weight_t:g} t exceeds your capacity of {coverage.capacity_t:g} t")
    if job.hazardous and not coverage.hazardous_permit:
        reasons.append("hazardous waste needs a hazardous-waste permit")
    return reasons
