"""The event loop the services run on: uvloop (libuv) by default, the standard library's when
`MARKETPLACE_EVENT_LOOP=asyncio` (issue #18: the consumers and the API spend much of their time
in the loop's socket and callback handling, which uvloop does in C)."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Coroutine
from typing import Any, TypeVar

from marketplace.settings import Settings

T = TypeVar("T")


def tune_gc(settings: Settings) -> None:
    """Applies the garbage collector's settings to this process (`gc_freeze`, `gc_threshold0`
    in settings.py, with the figures that chose them): called as a service starts, after its
    imports, so the modules' objects are the ones frozen."""
    if settings.gc_threshold0 != gc.get_threshold()[0]:
        gc.set_threshold(settings.gc_threshold0, *gc.get_threshold()[1:])
    if settings.gc_freeze:
        gc.collect()
        gc.freeze()


def run(main: Coroutine[Any, Any, T], settings: Settings) -> T:
    tune_gc(settings)
    if settings.event_loop == "uvloop":
        import uvloop

        return uvloop.run(main)
    return asyncio.run(main)
