"""Which events travel on which topic, and the key each is sent under (decision 2)."""

from __future__ import annotations

from typing import Any, get_args

from marketplace.core.families import family_of
from schemas import topics
from schemas.base import Event
from schemas.cells import CellEvent
from schemas.deals import DealEvent
from schemas.facilitators import FacilitatorEvent
from schemas.feedback import FeedbackEvent
from schemas.listings import ListingEvent, OfferPosted, RequestPosted
from schemas.logistics import AwardEvent, JobEvent
from schemas.matches import MatchEvent
from schemas.partners import NotificationEvent, RegistryEvent
from schemas.reminders import ReminderEvent

# One union per topic; a consumer decodes a topic's records with its union and dispatches by type.
TOPIC_EVENTS: dict[str, Any] = {
    topics.LISTINGS: ListingEvent,
    topics.MATCHES: MatchEvent | FeedbackEvent,
    topics.JOBS: JobEvent,
    topics.AWARDS: AwardEvent,
    topics.REGISTRY: RegistryEvent | FacilitatorEvent,
    topics.NOTIFICATIONS: NotificationEvent,
    topics.DEALS: DealEvent,
    topics.REMINDERS: ReminderEvent,
    # A split family's listings, answers and timers travel on market.cells too (forwarded by
    # the matcher under their cell's key), next to the cells' own events.
    topics.CELLS: ListingEvent | CellEvent,
}


def members(union: Any) -> tuple[type[Event], ...]:
    args = get_args(union)
    return args if args else (union,)


def type_name(cls: type[Event]) -> str:
    tag = cls.__struct_config__.tag
    if not isinstance(tag, str):
        raise TypeError(f"{cls.__name__} has no string tag")
    return tag


# An event's home topic: the first that carries it (market.listings' events also travel,
# forwarded, on market.cells).
EVENT_TOPIC: dict[type[Event], str] = {}
for _topic, _union in TOPIC_EVENTS.items():
    for _cls in members(_union):
        EVENT_TOPIC.setdefault(_cls, _topic)
EVENT_TYPES: dict[str, type[Event]] = {type_name(cls): cls for cls in EVENT_TOPIC}


def topic_of(event: Event) -> str:
    return EVENT_TOPIC[type(event)]


def market_key(code: str) -> str:
    """The partition key of the market topics: the material family of the List of Waste code
    (marketplace/core/families.py), e.g. "plastics" for 150102 and 200139, "1501" for mixed
    packaging. Every pair that can trade shares it, so one partition decides them all."""
    return family_of(code)


def key_of(event: Event) -> str:
    """The Kafka key, so that every event one decision depends on lands on one partition."""
    topic = topic_of(event)
    if isinstance(event, OfferPosted | RequestPosted):
        return market_key(event.material.code)
    if topic in (topics.LISTINGS, topics.MATCHES, topics.REMINDERS):
        return market_key(getattr(event, "material_code"))  # noqa: B009 - every such event has it
    if topic == topics.CELLS:
        return str(getattr(event, "to_key"))  # noqa: B009 - every such event has it
    if topic == topics.DEALS:
        return str(getattr(event, "match_id"))  # noqa: B009 - every such event has it
    if topic in (topics.JOBS, topics.AWARDS):
        return str(getattr(event, "job_id"))  # noqa: B009 - every such event has it
    return str(getattr(event, "partner_id"))  # noqa: B009 - every such event has it
