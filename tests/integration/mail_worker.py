"""The mailer as a process of its own, so a test can SIGKILL it for real.

    python -m tests.integration.mail_worker GROUP

Settings come from MARKETPLACE_* variables as for `marketplace run mailer`."""

from __future__ import annotations

import asyncio
import signal
import sys

from consumers.mailer import run_mailer
from marketplace.logs import configure_logging
from marketplace.settings import Settings


async def main(group: str) -> None:
    settings = Settings.from_env()
    configure_logging(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await run_mailer(settings, stop, group, poll_s=0.2)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
