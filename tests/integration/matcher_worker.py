"""A matcher process for the scaling test: `python -m tests.integration.matcher_worker GROUP`."""

from __future__ import annotations

import asyncio
import dataclasses
import sys

from consumers.matcher import TOPIC, Matcher
from marketplace.logs import configure_logging
from marketplace.runtime.service import run_consumer
from marketplace.settings import Settings
from marketplace.translate.matching import market_config


async def main(group: str) -> None:
    settings = dataclasses.replace(
        Settings.from_env(), consumer_session_timeout_ms=6000, consumer_max_batch=50
    )
    configure_logging(settings)
    await run_consumer(
        settings, group_id=group, topics=[TOPIC], processor=Matcher(market_config(settings), group)
    )


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
