"""The exchange's Kafka topics: names, keys and configuration, in one place.

Topics are created by `marketplace topics` (and `marketplace up`) through the admin API, never by
auto-creation, which the local broker turns off. Partition counts are fixed once a topic holds keyed
data: adding partitions would move keys between partitions and break per-key ordering (decision 2).
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class TopicSpec:
    name: str
    key: str
    purpose: str
    config: dict[str, str] = field(default_factory=dict)


# Retention "-1": these topics are the exchange's log of record; the audit log keeps a copy too.
LISTINGS = "market.listings"
MATCHES = "market.matches"
JOBS = "logistics.jobs"
AWARDS = "logistics.awards"
REGISTRY = "partners.registry"
NOTIFICATIONS = "partners.notifications"
DEADLETTERS = "ops.deadletters"
DEALS = "market.deals"
REMINDERS = "market.reminders"
CELLS = "market.cells"

_KEEP = {"retention.ms": "-1", "cleanup.policy": "delete"}
_WEEK = {"retention.ms": str(7 * 24 * 3600 * 1000), "cleanup.policy": "delete"}

TOPICS: tuple[TopicSpec, ...] = (
    TopicSpec(
        LISTINGS,
        key="material family (plastics, paper, ...; else the 4-digit List of Waste sub-chapter)",
        purpose="offers, requests, withdrawals, match answers and expiry timers",
        config=_KEEP,
    ),
    TopicSpec(
        MATCHES,
        key="material family",
        purpose="match proposals, confirmations, declines and expiries from the matcher",
        config=_KEEP,
    ),
    TopicSpec(
        JOBS,
        key="transport job id",
        purpose="transport jobs, quotes, withdrawals and auction deadlines",
        config=_KEEP,
    ),
    TopicSpec(
        AWARDS,
        key="transport job id",
        purpose="awards and failed auctions from the auctioneer",
        config=_KEEP,
    ),
    TopicSpec(
        REGISTRY,
        key="partner id",
        purpose="partners registered, updated and their consents",
        config=_KEEP,
    ),
    TopicSpec(
        NOTIFICATIONS,
        key="partner id",
        purpose="one notification per recipient, for webhooks and live push",
        config=_WEEK,
    ),
    TopicSpec(
        DEALS,
        key="match id",
        purpose="deal-room messages (hashes and metadata only, no text) and read receipts",
        config=_KEEP,
    ),
    TopicSpec(
        REMINDERS,
        key="material family",
        purpose="reminder timers for the reminders consumer (published by the scheduler)",
        config=_KEEP,
    ),
    TopicSpec(
        CELLS,
        key="a split family's cell or wide key (plastics@n0e1, plastics@wide)",
        purpose="the listings, answers and timers of families split into geographic cells, and"
        " the loans between their cells (MARKETPLACE_SPLIT_FAMILIES)",
        config=_KEEP,
    ),
    TopicSpec(
        DEADLETTERS,
        key="consumer group",
        purpose="records a consumer could not process, with the reason",
        config=_KEEP,
    ),
)


# A copy of a topic is named after it: "market.listings--p12" is a copy of market.listings (at
# 12 partitions, say) and carries its contract. Copies serve a rebuild into a topic of another
# partition count and the tests that run real consumers at other partition counts.
COPY_SEPARATOR = "--"


def contract_of(name: str) -> str:
    """The topic whose contract the records of topic `name` follow: its own, or for a copy
    ("<topic>--<label>") the copied topic's."""
    base, sep, label = name.partition(COPY_SEPARATOR)
    return base if sep and label else name


def copy_name(name: str, label: str) -> str:
    """The name of a copy of topic `name` (label: letters, digits, dots, dashes, underscores)."""
    if not label or contract_of(name) != name:
        raise ValueError(f"cannot name a copy of {name!r} labelled {label!r}")
    return f"{name}{COPY_SEPARATOR}{label}"


def by_name(name: str) -> TopicSpec:
    for spec in TOPICS:
        if spec.name == name:
            return spec
    raise KeyError(name)
