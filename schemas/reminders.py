"""The reminders' timers (#20 item 3) on `market.reminders` (key: the material family, like the
market topics, of the subject's List of Waste code).

The reminders consumer (consumers/reminders.py) decides from the log which reminders fall due
(marketplace/core/reminders.py) and asks the scheduler for a timer at each moment one may; the
scheduler publishes this event then, and the consumer decides again with that time. The
reminders themselves go out as notifications on `partners.notifications` (kinds
`reminder.proposal_expiring`, `reminder.listing_unmatched`, `reminder.delivery_upcoming`,
`reminder.feedback_missing`)."""

from __future__ import annotations

from datetime import datetime

from schemas.base import Event
from schemas.common import Id, WasteCode


class ReminderDue(Event, frozen=True, kw_only=True, tag="market.reminder.due.v1"):
    """Timer: a reminder of the subject (a proposal, a listing, a standing agreement or a
    delivery, by its id) may be due at `due` (published by the scheduler)."""

    subject_id: Id
    material_code: WasteCode
    due: datetime


ReminderEvent = ReminderDue
