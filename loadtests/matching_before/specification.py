"""A buyer's specification checked against what an offer states. Pure.

Hard criteria (minimum recycled content, maximum contamination, certifications the seller must
hold, maximum transport distance) decide whether a pair may be proposed at all; the buyer's
weights between price and CO2e then rank the pairs that pass (matching.py). An offer that does
not state a figure does not meet a criterion on it: a procurer cannot verify what was not
declared."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Criterion = Literal[
    "min_recycled_content_pct", "max_contamination_pct", "certification", "max_distance_km"
]


@dataclass(frozen=True, slots=True)
class Spec:
    """The hard criteria of a request (weights live in the request's terms)."""

    min_recycled_pct: float | None = None
    max_contamination_pct: float | None = None
    certifications: tuple[str, ...] = ()

    @property
    def empty(self) -> bool:
        return (
            self.min_recycled_pct is None
            and self.max_contamination_pct is None
            and not self.certifications
        )


@dataclass(frozen=True, slots=True)
class Stated:
    """What an offer declares about its material and its seller."""

    recycled_pct: float | None = None
    contamination_pct: float | None = None
    certifications: tuple[str, ...] = ()


NO_SPEC = Spec()
NOTHING_STATED = Stated()


@dataclass(frozen=True, slots=True)
class Check:
    criterion: Criterion
    required: str
    offered: str
    met: bool


def _pct(value: float | None) -> str:
    return "not stated" if value is None else f"{value:g} %"


def _norm(name: str) -> str:
    return " ".join(name.split()).casefold()


def check(
    spec: Spec, stated: Stated, distance_km: float | None, max_distance_km: float | None
) -> tuple[Check, ...]:
    """Every criterion the buyer set, in a fixed order, each with whether the offer meets it."""
    out: list[Check] = []
    if max_distance_km is not None and distance_km is not None:
        out.append(
            Check(
                "max_distance_km",
                f"at most {max_distance_km:g} km",
                f"{distance_km:.1f} km",
                distance_km <= max_distance_km,
            )
        )
    if spec.min_recycled_pct is not None:
        have = stated.recycled_pct
        out.append(
            Check(
                "min_recycled_content_pct",
                f"at least {spec.min_recycled_pct:g} %",
                _pct(have),
                have is not None and have >= spec.min_recycled_pct,
            )
        )
    if spec.max_contamination_pct is not None:
        have = stated.contamination_pct
        out.append(
            Check(
                "max_contamination_pct",
                f"at most {spec.max_contamination_pct:g} %",
                _pct(have),
                have is not None and have <= spec.max_contamination_pct,
            )
        )
    held = {_norm(c) for c in stated.certifications}
    out.extend(
        Check("certification", wanted, "held" if ok else "not held", ok)
        for wanted in spec.certifications
        for ok in (_norm(wanted) in held,)
    )
    return tuple(out)


def meets(spec: Spec, stated: Stated) -> bool:
    """The material criteria alone (distance is checked where the pair is evaluated)."""
    if spec.empty:
        return True
    return all(c.met for c in check(spec, stated, None, None))
