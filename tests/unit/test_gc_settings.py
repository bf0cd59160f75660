"""The services' garbage-collector settings: applied as a service starts, and checked."""

from __future__ import annotations

import dataclasses
import gc
from collections.abc import Iterator

import pytest

from marketplace.runtime.loop import tune_gc
from marketplace.settings import Settings, SettingsError


@pytest.fixture
def restored_gc() -> Iterator[None]:
    threshold = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)


def test_the_defaults_freeze_what_was_made_at_start_and_raise_the_young_threshold(
    restored_gc: None,
) -> None:
    gc.unfreeze()
    before = gc.get_threshold()
    tune_gc(Settings())
    assert gc.get_threshold() == (20000, *before[1:])
    assert gc.get_freeze_count() > 0


def test_cpythons_own_behaviour_can_be_chosen(restored_gc: None) -> None:
    gc.unfreeze()
    gc.set_threshold(700, 10, 10)
    tune_gc(dataclasses.replace(Settings(), gc_freeze=False, gc_threshold0=700))
    assert gc.get_threshold() == (700, 10, 10)
    assert gc.get_freeze_count() == 0


def test_a_threshold_that_would_turn_collection_off_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MARKETPLACE_GC_THRESHOLD0", "0")
    with pytest.raises(SettingsError, match="MARKETPLACE_GC_THRESHOLD0 must be at least 1"):
        Settings.from_env()
