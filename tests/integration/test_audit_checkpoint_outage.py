"""The auditor's checkpoint signer outlives a PostgreSQL outage: it used to die at the first
interval the database did not answer, so an auditor whose database restarted signed no
checkpoint again and failed on SIGTERM (found by the fault suite)."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid

import pytest

from consumers.auditor import checkpoint_forever
from marketplace.settings import Settings
from tests.faults import proxy

pytestmark = pytest.mark.integration


async def test_checkpoints_carry_on_after_the_database_was_away(settings: Settings) -> None:
    group = f"test.checkpoints.{uuid.uuid4().hex[:8]}"  # no chains: nothing gets signed
    async with proxy("127.0.0.1", settings.pg_port) as pg:
        through = dataclasses.replace(
            settings,
            database_url=(
                f"postgresql://{settings.db_app_user}:{settings.db_app_password}"
                f"@127.0.0.1:{pg.port}/{settings.db_name}"
            ),
            audit_checkpoint_interval_s=0.01,
        )
        stop = asyncio.Event()
        signer = asyncio.create_task(checkpoint_forever(through, stop, group))
        await asyncio.sleep(0.5)  # a few intervals with the database there
        # The database drops every connection again and again, so that some drop in the middle
        # of the signer's queries (a restart under load does that).
        for _ in range(100):
            pg.cut()
            await asyncio.sleep(0.01)
            pg.restore()
            await asyncio.sleep(0.04)
            assert not signer.done(), f"the signer stopped: {signer.exception()!r}"
        assert pg.cuts == 100
        await asyncio.sleep(0.5)
        assert not signer.done(), f"the signer stopped: {signer.exception()!r}"
        stop.set()
        await asyncio.wait_for(signer, 30)  # ends cleanly, raising nothing
