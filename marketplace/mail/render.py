"""The messages, in the recipient's language: a plain-text part and an HTML part rendered from
templates (marketplace/mail/templates), with the headers a mailbox needs. A message is rendered
once and stored (mail_deliveries), so a resend carries the same bytes: its Message-ID is derived
from the notification (or digest, or link) and the person, and its Date is the notification's
time, not the moment of rendering."""

from __future__ import annotations

import email.policy
import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from email.headerregistry import BaseHeader, HeaderRegistry
from email.message import EmailMessage
from email.utils import format_datetime, formataddr, parseaddr
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import jinja2

from marketplace.core.ids import derived_id
from marketplace.mail.i18n import M, translator
from marketplace.mail.links import unsubscribe_token
from marketplace.settings import Settings

TEMPLATES = Path(__file__).resolve().parent / "templates"


class _Headers(HeaderRegistry):
    """The standard library's header classes, each made once: its registry makes a new class
    every time a header is set or read (`type(...)` per call), which was a quarter of a
    message's rendering (consumers-20261201T185435Z's profile of the mail inbox: 0.52 ms of
    2.3 ms per notification). The classes, and so the bytes, are the same."""

    @functools.cache  # noqa: B019 - one registry for the process's life; the names are few
    def __getitem__(self, name: str) -> type[BaseHeader]:
        made: type[BaseHeader] = super().__getitem__(name)
        return made


# CRLF, and headers folded at whitespace only up to SMTP's line limit: a long List-Unsubscribe
# link must stay one <URL>, never become encoded words.
POLICY = email.policy.SMTP.clone(max_line_length=998, header_factory=_Headers())

GENERIC = M("News from the exchange")
HEADLINES = {
    "match.proposed": M("A new proposal for your organisation"),
    "match.confirmed": M("A proposal was confirmed"),
    "match.expired": M("A proposal expired unanswered"),
    "match.cancelled": M("A proposal was cancelled"),
    "job.requested": M("A transport job that fits your coverage"),
    "job.reopened": M("A transport job was reopened"),
    "quote.rejected": M("Your quote was refused"),
    "award.won": M("You won a transport job"),
    "award.lost": M("Another firm won a transport job"),
    "auction.failed": M("No transport was found"),
    "transport.awarded": M("Transport was booked"),
    "listing.nudged": M("Is your listing still current?"),
    "consent.granted": M("An SME lets you act for it"),
    "consent.revoked": M("An SME withdrew its consent"),
    "feedback.requested": M("How did the delivery go?"),
    "delivery.scheduled": M("A delivery is scheduled"),
    "agreement.ended": M("A standing agreement ended"),
    "reminder.proposal_expiring": M("Reminder: a proposal expires in 24 hours"),
    "reminder.listing_unmatched": M("Reminder: your listing has had no proposal for 14 days"),
    "reminder.delivery_upcoming": M("Reminder: a delivery in two days"),
    "reminder.feedback_missing": M("Reminder: your feedback on a delivery is missing"),
    "search.new_listing": M("A new listing fits your saved search"),
}
# What a reminder asks of its reader, under the headline.
ADVICE = {
    "reminder.proposal_expiring": M(
        "Your organisation has not answered this proposal yet. Accept or decline it before it"
        " expires; unanswered, it lapses and the quantity goes back to the market."
    ),
    "reminder.listing_unmatched": M(
        "No proposal has come for this listing yet. Check that its terms are still right"
        " (quantity, price, dates, distance) and change them, or withdraw the listing if it is"
        " no longer current."
    ),
    "reminder.delivery_upcoming": M(
        "The next delivery under your standing agreement is due soon: have the material (or"
        " room for it) ready from the first day of pickup."
    ),
    "search.new_listing": M(
        "A listing that fits one of your saved searches was posted or changed on the open"
        " market. Run the search to see it; you can turn these messages off on the saved"
        " searches page."
    ),
    "reminder.feedback_missing": M(
        "Tell the exchange how the delivery went: a rating from 1 to 5 and the main reason take"
        " a minute and help every member choose partners."
    ),
}
# The parts of a notification's data a message shows, in this order.
LABELS = {
    "material_code": M("Material (List of Waste code)"),
    "quantity": M("Quantity"),
    "weight_t": M("Weight"),
    "region": M("Region"),
    "delivered_price": M("Price delivered"),
    "price": M("Price"),
    "winning_price": M("Winning price"),
    "distance_km": M("Distance"),
    "co2e_saved_kg": M("CO2e saved"),
    "expires_at": M("Answer by"),
    "bidding_deadline": M("Bids until"),
    "reopened_until": M("Bids until"),
    "period_key": M("Period"),
    "pickup_from": M("Pickup from"),
    "delivered_at": M("Delivered"),
    "days_open": M("Days without a proposal"),
    "reason": M("Reason"),
    "message": M("Message from the facilitator"),
    "on_behalf_of": M("For the SME"),
}
ACCOUNT = {
    "account.invite": (
        M("Your invitation to the circular materials exchange"),
        M("You are invited to your organisation's account on the exchange."),
        M("Choose your password"),
    ),
    "account.reset": (
        M("Choose a new password"),
        M("Someone, probably you, asked to choose a new password for your account."),
        M("Choose a new password"),
    ),
    "account.verify": (
        M("Confirm your e-mail address"),
        M("Confirm that this address is yours, so that the exchange may send you e-mail."),
        M("Confirm the address"),
    ),
}


@functools.cache
def _env() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=jinja2.select_autoescape(["html"]),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
    )


def domain_of(settings: Settings) -> str:
    return parseaddr(settings.mail_from)[1].rpartition("@")[2] or "exchange.localhost"


def sender_of(settings: Settings) -> str:
    return parseaddr(settings.mail_from)[1]


def message_id(settings: Settings, cause: str, person_id: str) -> str:
    """The Message-ID (without brackets) of what `cause` (a notification id, a digest's day, a
    link) says to the person: the same whenever and however often it is rendered."""
    return f"{derived_id(f'mail/{cause}/{person_id}')}@{domain_of(settings)}"


def page_of(kind: str, data: Mapping[str, Any] | None = None) -> str:
    if data is not None and data.get("on_behalf_of"):
        return "/app/facilitation"  # a facilitator's, of an SME that consented
    if kind == "reminder.listing_unmatched":
        return "/app/"
    if kind.startswith("reminder."):
        return "/app/proposals"
    if kind.startswith("search."):
        return "/app/market/searches"
    if kind.startswith(("job.", "award.", "quote.")):
        return "/app/logistics/jobs"
    if kind.startswith(("match.", "transport.", "delivery.", "agreement.", "auction.")):
        return "/app/proposals"
    return "/app/"


@dataclass(frozen=True, slots=True)
class Recipient:
    person_id: str
    email: str
    name: str
    locale: str
    zone: str


def _when(value: str, zone: str) -> str:
    try:
        at = datetime.fromisoformat(value)
    except ValueError:
        return value
    if at.tzinfo is None:
        return value
    return at.astimezone(ZoneInfo(zone)).strftime("%Y-%m-%d %H:%M %Z")


def _value(key: str, value: Any, zone: str, exact: bool = True) -> str:
    if isinstance(value, Mapping) and "amount" in value:
        unit = value.get("unit") or value.get("currency") or ""
        amount = value["amount"]
        shown = f"{amount:.2f}" if "currency" in value else f"{amount:g}"
        return f"{shown} {unit}".strip()
    if key == "distance_km":
        # Rough until the match is confirmed (marketplace/core/disclosure.py): "≈" says so in
        # every language of the mail.
        return f"{float(value):.0f} km" if exact else f"≈ {float(value):.0f} km"
    if key == "weight_t":
        return f"{float(value):g} t"
    if key == "co2e_saved_kg":
        return f"{float(value):,.0f} kg".replace(",", " ")
    if key in ("expires_at", "bidding_deadline", "reopened_until", "pickup_from", "delivered_at"):
        return _when(str(value), zone)
    return str(value).replace("_", " ") if key == "reason" else str(value)


def details(data: Mapping[str, Any], zone: str, t: Callable[[str], str]) -> list[tuple[str, str]]:
    return [
        (t(label), _value(key, data[key], zone, exact=data.get("distance_exact") is not False))
        for key, label in LABELS.items()
        if data.get(key) not in (None, "", {})
    ]


def _message(
    settings: Settings,
    to: Recipient,
    subject: str,
    mid: str,
    date: datetime,
    text: str,
    html: str,
    unsubscribe: str | None,
) -> bytes:
    msg = EmailMessage(policy=POLICY)
    msg["From"] = settings.mail_from
    msg["To"] = formataddr((to.name, to.email))
    msg["Subject"] = subject
    msg["Date"] = format_datetime(date)
    msg["Message-ID"] = f"<{mid}>"
    msg["Auto-Submitted"] = "auto-generated"
    if unsubscribe is not None:
        # RFC 2369 and RFC 8058: a mail client unsubscribes with one POST, no sign-in.
        msg["List-Unsubscribe"] = f"<{unsubscribe}>"
        msg["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    msg.set_content(text)
    msg.add_alternative(html, subtype="html")
    msg.set_boundary(f"=={mid.partition('@')[0]}==")  # not random: a resend is the same bytes
    msg["Content-Language"] = to.locale  # after the parts: set_content drops Content-* headers
    return msg.as_bytes()


def _links(settings: Settings, key: bytes, to: Recipient, kind: str) -> dict[str, str]:
    base = settings.web_base_url.rstrip("/")
    return {
        "preferences": f"{base}/app/preferences",
        "unsubscribe": f"{base}/app/mail/unsubscribe/{unsubscribe_token(key, to.person_id, kind)}",
    }


def notification(
    settings: Settings,
    key: bytes,
    to: Recipient,
    *,
    notification_id: str,
    kind: str,
    data: Mapping[str, Any],
    issued_at: datetime,
) -> tuple[str, bytes]:
    """(message_id, message) of one notification to one person."""
    t = translator(to.locale)
    headline = t(HEADLINES.get(kind, GENERIC))
    code = data.get("material_code")
    subject = f"{headline}: {code}" if code else headline
    if data.get("on_behalf_of"):  # to a facilitator, of an SME that consented
        subject = f"{subject} ({data['on_behalf_of']})"
    links = _links(settings, key, to, kind)
    values = {
        "t": t,
        "name": to.name,
        "headline": headline,
        "advice": t(ADVICE[kind]) if kind in ADVICE else "",
        "details": details(data, to.zone, t),
        "page": settings.web_base_url.rstrip("/") + page_of(kind, data),
        **links,
    }
    mid = message_id(settings, notification_id, to.person_id)
    text = _env().get_template("notification.txt").render(values)
    html = _env().get_template("notification.html").render(values)
    return mid, _message(settings, to, subject, mid, issued_at, text, html, links["unsubscribe"])


@dataclass(frozen=True, slots=True)
class Item:
    kind: str
    data: Mapping[str, Any]
    issued_at: datetime


def digest(
    settings: Settings, key: bytes, to: Recipient, *, day: str, items: Sequence[Item], at: datetime
) -> tuple[str, bytes]:
    """(message_id, message) of a person's digest of `day` (their local date)."""
    t = translator(to.locale)
    groups: dict[str, list[dict[str, Any]]] = {}
    for item in sorted(items, key=lambda i: i.issued_at):
        headline = t(HEADLINES.get(item.kind, GENERIC))
        groups.setdefault(headline, []).append(
            {
                "when": item.issued_at.astimezone(ZoneInfo(to.zone)).strftime("%H:%M"),
                "details": details(item.data, to.zone, t),
                "page": settings.web_base_url.rstrip("/") + page_of(item.kind, item.data),
            }
        )
    subject = t("Your daily summary of %(day)s: %(count)d notifications") % {
        "day": day,
        "count": len(items),
    }
    links = _links(settings, key, to, "digest")
    values = {"t": t, "name": to.name, "day": day, "groups": groups, **links}
    mid = message_id(settings, f"digest/{day}", to.person_id)
    text = _env().get_template("digest.txt").render(values)
    html = _env().get_template("digest.html").render(values)
    return mid, _message(settings, to, subject, mid, at, text, html, links["unsubscribe"])


def account(
    settings: Settings, to: Recipient, *, purpose: str, link: str, cause: str, at: datetime
) -> tuple[str, bytes]:
    """(message_id, message) of an invitation, a reset or a verification link; `cause` is what
    makes its Message-ID (the link's token digest)."""
    t = translator(to.locale)
    subject, sentence, action = (t(m) for m in ACCOUNT[purpose])
    values = {"t": t, "name": to.name, "sentence": sentence, "action": action, "link": link}
    mid = message_id(settings, f"{purpose}/{cause}", to.person_id)
    text = _env().get_template("account.txt").render(values)
    html = _env().get_template("account.html").render(values)
    return mid, _message(settings, to, subject, mid, at, text, html, None)
