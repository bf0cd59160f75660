"""The exactly-once consumer runtime (ARCHITECTURE.md decision 4); see README.md here."""

from marketplace.runtime.consumer import ConsumerStats, ExactlyOnceConsumer, Processor, Transaction
from marketplace.runtime.outbox import OutboxMessage, OutboxPublisher

__all__ = [
    "ConsumerStats",
    "ExactlyOnceConsumer",
    "OutboxMessage",
    "OutboxPublisher",
    "Processor",
    "Transaction",
]
