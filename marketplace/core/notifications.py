"""Notifications: the kinds a partner can be told about."""

from __future__ import annotations

# Every kind a partner can be told about (webhook endpoints subscribe to some of them).
KINDS = (
    "match.proposed",
    "match.confirmed",
    "match.expired",
    "match.cancelled",
    "job.requested",
    "job.reopened",
    "quote.rejected",
    "award.won",
    "award.lost",
    "auction.failed",
    "transport.awarded",
    "listing.nudged",
    "consent.granted",
    "consent.revoked",
    "feedback.requested",
    "delivery.scheduled",
    "agreement.ended",
)
