"""The event loop the services run on: uvloop (libuv) by default, the standard library's when
`MARKETPLACE_EVENT_LOOP=asyncio` (issue #18: the consumers and the API spend much of their time
in the loop's socket and callback handling, which uvloop does in C)."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

from marketplace.settings import Settings

T = TypeVar("T")


def run(main: Coroutine[Any, Any, T], settings: Settings) -> T:
    if settings.event_loop == "uvloop":
        import uvloop

        return uvloop.run(main)
    return asyncio.run(main)
