"""End-to-end tests need the same running services as the integration tests, and Debian's
Chromium driven by Playwright (tests/e2e/pages.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from playwright.async_api import Browser, Page, async_playwright, expect

from tests.e2e.pages import launch, loopback_page
from tests.integration.conftest import _services_are_up, pool

__all__ = ["_services_are_up", "browser", "page", "pool"]

# The pages wait on the real stack (consumers, matcher) on a shared machine: assertions on a page
# retry for up to 30 s, like its actions, instead of Playwright's 5 s.
expect.set_options(timeout=30_000)


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    """One headless Chromium per test, with a throw-away profile."""
    async with async_playwright() as playwright:
        chromium = await launch(playwright)
        try:
            yield chromium
        finally:
            await chromium.close()


@pytest.fixture
async def page(browser: Browser) -> AsyncIterator[Page]:
    """An English page kept on loopback."""
    async with loopback_page(browser) as opened:
        yield opened
