"""How far apart a proposal's two firms are, as people and partner systems are told it (#19).

Until a match is confirmed, each firm knows the other's place only as a rounded point with a
circle round it (marketplace/core/sketch_map.py). The exact distance between them would narrow
that circle to a ring, so before confirmation every channel that reaches people (the pages, the
API's match reads, the notifications and so the e-mails, webhooks and live streams) says the
distance only roughly, with `about_km`; once the match is confirmed both firms see it exactly.
The events on Kafka keep the matcher's exact figure: only what is shown changes.

Pure: no I/O, no clock, no randomness."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# The read model's statuses of a match whose firms see each other exactly: confirmed, and a
# standing agreement that ended after being confirmed. A proposal that expired or was cancelled
# was never confirmed.
DISCLOSED = frozenset({"confirmed", "ended"})


def about_km(km: float) -> int:
    """A distance as said roughly: to 5 km below 50 km, to 10 km above (never 0 for >0)."""
    if km <= 0:
        return 0
    step = 5 if km < 50 else 10
    return max(step, round(km / step) * step)


def disclosed(status: str) -> bool:
    """Whether the two firms of a match in this status may know their exact distance."""
    return status in DISCLOSED


def said_km(km: float, exact: bool) -> float:
    """The distance as told: `km` when exact, else rounded by `about_km`."""
    return float(km) if exact else float(about_km(km))


def said_proposal(proposal: Mapping[str, Any], exact: bool) -> dict[str, Any]:
    """A proposal in JSON form (a MatchProposed's fields, or the part of them a notification
    carries) as its firms may be told it: with `distance_exact`, and, unless exact, its
    `distance_km`, the `distance_km` reason's value and the `max_distance_km` criterion's
    offered figure all rounded by `about_km`. Whatever else it holds is kept as it is."""
    out = dict(proposal)
    out["distance_exact"] = exact
    km = proposal.get("distance_km")
    if exact or km is None:
        return out
    rough = about_km(float(km))
    out["distance_km"] = float(rough)
    if "reasons" in proposal:
        out["reasons"] = [
            {**r, "value": said_km(float(r["value"]), exact=False)}
            if r.get("factor") == "distance_km"
            else r
            for r in proposal["reasons"]
        ]
    if "criteria" in proposal:
        out["criteria"] = [
            {**c, "offered": f"about {rough} km"} if c.get("criterion") == "max_distance_km" else c
            for c in proposal["criteria"]
        ]
    return out
