"""One consumer instance for the benchmarks: `python -m loadtests.consumer_worker KIND GROUP
[TOPIC,...]`. Settings come from the environment (the benchmark points it at a scratch database);
the optional third argument names the topics to read instead of the consumer's own (copies of
them, `schemas.topics.copy_name`, which carry their contract). On a clean stop it prints one JSON
line: records applied, events emitted, batches."""

from __future__ import annotations

import json
import sys
from typing import Any

from marketplace.logs import configure_logging
from marketplace.runtime import loop as event_loop
from marketplace.runtime.service import run_consumer
from marketplace.settings import Settings

KINDS = (
    "matcher",
    "projector",
    "auditor",
    "analytics",
    "auctioneer",
    "notifier",
    "alerts",
    "reminders",
    "deals",
    "webhooks",
    "mailer",
)


def consumer(kind: str, group: str, settings: Settings) -> tuple[list[str], Any]:
    if kind == "matcher":
        from consumers.matcher import TOPIC, Matcher
        from marketplace.translate.matching import market_config

        return [TOPIC], Matcher(market_config(settings), group)
    if kind == "projector":
        from consumers.projector import TOPICS, Projector

        return list(TOPICS), Projector(group)
    if kind == "auditor":
        from consumers.auditor import TOPICS as AUDITED
        from consumers.auditor import Auditor

        return list(AUDITED), Auditor()
    if kind == "analytics":
        from consumers.analytics import TOPICS as FACTS
        from consumers.analytics import Analytics

        return list(FACTS), Analytics(group)
    if kind == "auctioneer":
        from consumers.auctioneer import TOPIC as JOBS
        from consumers.auctioneer import Auctioneer
        from marketplace.translate.auction import auction_config

        return [JOBS], Auctioneer(auction_config(settings), group)
    if kind == "notifier":
        from consumers.notifier import TOPICS as NOTIFIED
        from consumers.notifier import Notifier

        return list(NOTIFIED), Notifier(group)
    if kind == "alerts":
        from consumers.alerts import TOPICS as WATCHED
        from consumers.alerts import Alerts

        return list(WATCHED), Alerts(group)
    if kind == "reminders":
        from consumers.reminders import TOPICS as REMINDED
        from consumers.reminders import Reminders

        return list(REMINDED), Reminders(settings, group)
    if kind == "deals":
        from consumers.deals import TOPICS as DEALT
        from consumers.deals import DealRooms

        return list(DEALT), DealRooms(group)
    if kind == "webhooks":  # the inbox, without a dispatcher: every delivery waits for a claim
        from consumers.webhooks import TOPIC as HOOKED
        from consumers.webhooks import WebhookInbox

        return [HOOKED], WebhookInbox(group, settings.webhook_keys_path)
    if kind == "mailer":  # the inbox: messages rendered and stored, none sent
        from consumers.mailer import TOPIC as MAILED
        from consumers.mailer import MailInbox

        return [MAILED], MailInbox(settings, group)
    raise SystemExit(f"unknown consumer {kind!r}: one of {', '.join(KINDS)}")


def durable(kind: str, settings: Settings) -> bool:
    """Whether `kind`'s commits wait for the disk, as its service's do: the webhook inbox's
    follow `webhook_synchronous_commit` (`consumers.webhooks.run_webhooks`), the others' do."""
    return settings.webhook_synchronous_commit if kind == "webhooks" else True


def main() -> None:
    kind, group = sys.argv[1], sys.argv[2]
    settings = Settings.from_env()
    configure_logging(settings)
    topics, processor = consumer(kind, group, settings)
    if len(sys.argv) > 3:
        topics = sys.argv[3].split(",")
    stats = event_loop.run(
        run_consumer(
            settings,
            group_id=group,
            topics=topics,
            processor=processor,
            synchronous_commit=durable(kind, settings),
        ),
        settings,
    )
    print(
        json.dumps({"records": stats.records, "emitted": stats.emitted, "batches": stats.batches}),
        flush=True,
    )


if __name__ == "__main__":
    main()
