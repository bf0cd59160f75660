from __future__ import annotations

import pytest

from marketplace.settings import Settings


@pytest.fixture
def settings() -> Settings:
    return Settings.from_env()
