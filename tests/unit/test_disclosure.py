"""What a proposal tells its firms of their distance (#19, marketplace/core/disclosure.py): the
rounding, which statuses see the exact figure, and a proposal's JSON as it may be shown."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from marketplace.core.disclosure import about_km, disclosed, said_km, said_proposal


@pytest.mark.parametrize(
    ("km", "said"), [(0, 0), (1.2, 5), (12.4, 10), (47.6, 50), (52, 50), (137.9, 140)]
)
def test_about_km_rounds_as_people_say_distances(km: float, said: int) -> None:
    assert about_km(km) == said


@given(st.floats(min_value=0.001, max_value=20_000))
def test_a_rough_distance_is_a_step_of_5_or_10_km_within_half_a_step(km: float) -> None:
    rough = about_km(km)
    step = 5 if km < 50 else 10
    assert rough % step == 0
    assert rough > 0
    assert abs(rough - km) <= step / 2 or rough == step


@pytest.mark.parametrize(
    ("status", "exact"),
    [
        ("proposed", False),
        ("expired", False),
        ("cancelled", False),
        ("confirmed", True),
        ("ended", True),
    ],
)
def test_only_a_confirmed_match_or_its_ended_agreement_is_exact(status: str, exact: bool) -> None:
    assert disclosed(status) is exact
    assert said_km(42.37, exact) == (42.37 if exact else 40.0)


def proposal() -> dict[str, Any]:
    return {
        "match_id": "m-1",
        "distance_km": 42.37,
        "transport_co2e_kg": 26.0,
        "reasons": [
            {"factor": "distance_km", "value": 42.37, "note": "within the buyer's 100 km"},
            {"factor": "quantity_fit", "value": 0.8, "note": "4 t of the 5 t wanted"},
        ],
        "criteria": [
            {
                "criterion": "max_distance_km",
                "required": "at most 100 km",
                "offered": "42.4 km",
                "met": True,
            },
            {"criterion": "certification", "required": "EN 643", "offered": "EN 643", "met": True},
        ],
    }


def test_before_confirmation_every_place_that_repeats_the_distance_is_rounded() -> None:
    body = proposal()
    said = said_proposal(body, exact=False)
    assert said["distance_exact"] is False
    assert said["distance_km"] == 40.0
    assert said["reasons"][0] == {
        "factor": "distance_km",
        "value": 40.0,
        "note": "within the buyer's 100 km",
    }
    assert said["reasons"][1] == body["reasons"][1]
    assert said["criteria"][0]["offered"] == "about 40 km"
    assert said["criteria"][0]["met"] is True
    assert said["criteria"][1] == body["criteria"][1]
    assert said["transport_co2e_kg"] == 26.0
    assert "42" not in repr({k: v for k, v in said.items() if k != "transport_co2e_kg"})
    assert body == proposal(), "the proposal given is left as it was"


def test_once_confirmed_the_proposal_is_told_as_it_is() -> None:
    assert said_proposal(proposal(), exact=True) == proposal() | {"distance_exact": True}


def test_a_part_of_a_proposal_without_reasons_is_rounded_too() -> None:
    said = said_proposal({"distance_km": 7.4, "criteria": []}, exact=False)
    assert said == {"distance_km": 5.0, "criteria": [], "distance_exact": False}
