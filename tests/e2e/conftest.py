"""End-to-end tests need the same running services as the integration tests."""

from tests.integration.conftest import _services_are_up, pool

__all__ = ["_services_are_up", "pool"]
