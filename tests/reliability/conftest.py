"""Reliability tests need PostgreSQL like the integration tests; they start their own Kafka
cluster (infra/kafka-cluster.sh) and never touch the one the other tests use."""

from tests.integration.conftest import _services_are_up, pool

__all__ = ["_services_are_up", "pool"]
