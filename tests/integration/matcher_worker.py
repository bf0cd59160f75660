"""A matcher process for the scaling test: `python -m tests.integration.matcher_worker GROUP`.

The test may stop an instance that is still starting (the work can be done before a late one is
up): a SIGTERM from the process's first moment ends it cleanly, as it would a running one."""

from __future__ import annotations

import signal
import sys

_stop_requested = False


def _early_stop(signum: int, frame: object) -> None:
    global _stop_requested
    _stop_requested = True


signal.signal(signal.SIGTERM, _early_stop)

import asyncio  # noqa: E402
import dataclasses  # noqa: E402

from consumers.matcher import TOPIC, Matcher  # noqa: E402
from marketplace.logs import configure_logging  # noqa: E402
from marketplace.runtime.service import run_consumer  # noqa: E402
from marketplace.settings import Settings  # noqa: E402
from marketplace.translate.matching import market_config  # noqa: E402


async def main(group: str) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if _stop_requested:
        return
    settings = dataclasses.replace(
        Settings.from_env(), consumer_session_timeout_ms=6000, consumer_max_batch=50
    )
    configure_logging(settings)
    await run_consumer(
        settings,
        group_id=group,
        topics=[TOPIC],
        processor=Matcher(market_config(settings), group),
        stop=stop,
    )


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
