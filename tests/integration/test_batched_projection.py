"""The projector and the analytics consumer apply a batch with a few set-based statements
(marketplace/runtime/batching.py); they must leave every read model and fact exactly as the
per-record path did (kept in legacy_projection.py). A seeded stream of every event type they
handle, over small pools of ids so that keys repeat (a withdrawal after a post, answers, awards
after jobs and quotes, repeats of the same id, refusals that name a later submission, ...), goes
through both paths in the same transactions, each on a new scratch database; every table is
compared row by row, and so are the live-push notifications each transaction sent."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import msgspec
import pytest

from consumers import analytics, projector
from loadtests.scratch import scratch_database
from marketplace.cloudevents import Envelope
from marketplace.db import NOTIFY_CHANNEL, connect
from marketplace.events import Decoded
from marketplace.settings import Settings
from schemas import facilitators as fc
from schemas import feedback as fb
from schemas import listings as ls
from schemas import logistics as lg
from schemas import matches as ms
from schemas import partners as ps
from schemas.registry import type_name
from tests.integration import legacy_projection as legacy

# Every table the two consumers write, with the columns that order its rows.
TABLES = {
    "partners": "partner_id",
    "carriers": "partner_id",
    "listings": "listing_id",
    "notifications": "notification_id",
    "consents": "partner_id, facilitator_id",
    "nudges": "event_id",
    "deliveries": "delivery_key",
    "feedback": "feedback_id",
    "matches": "match_id",
    "jobs": "job_id",
    "quotes": "quote_id",
    "analytics_partners": "partner_id",
    "analytics_listings": "listing_id",
    "analytics_matches": "match_id",
    "analytics_scheduled": "delivery_id",
    "analytics_jobs": "job_id",
    "analytics_quotes": "quote_id",
    "analytics_awards": "job_id",
    "analytics_deliveries": "delivery_key",
    "analytics_feedback": "feedback_id",
}
CODES = ("150102", "170201", "020304")
T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)


class Stream:
    """A seeded stream of events over small pools of ids."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        r = self.rng
        self.partners = [f"p{i}" for i in range(6)]
        self.listings = [f"l{i}" for i in range(40)]
        self.matches = [f"m{i}" for i in range(12)]
        self.jobs = [f"j{i}" for i in range(8)]
        self.quotes = [f"q{i}" for i in range(16)]
        self.submissions = [f"s{i}" for i in range(6)]  # event ids that refusals name
        self.owner = {lid: r.choice(self.partners) for lid in self.listings}
        self.sides = {m: tuple(r.sample(self.partners, 2)) for m in self.matches}
        self.match_of = {j: r.choice(self.matches) for j in self.jobs}
        self.job_of = {q: r.choice(self.jobs) for q in self.quotes}
        self.carrier_of = {q: r.choice(self.partners) for q in self.quotes}
        self.n = 0

    def pick(self, mapping: dict[str, str], key: str, pool: Sequence[str]) -> str:
        return mapping[key] if self.rng.random() < 0.85 else self.rng.choice(pool)

    def events(self, count: int) -> list[Decoded]:
        makers = [m for m in dir(self) if m.startswith("e_")]
        out = []
        for _ in range(count):
            self.n += 1
            data = getattr(self, self.rng.choice(makers))()
            event = msgspec.convert(data[1], data[0])
            at = T0 + timedelta(seconds=self.n * 7 + self.rng.choice((0, 0, -3)))
            eid = self.rng.choice(self.submissions) if self.rng.random() < 0.2 else f"e{self.n}"
            envelope = Envelope(id=eid, type=type_name(type(event)), source="/test", time=at)
            out.append(Decoded(envelope, event))
        return out

    # Value makers.
    def at(self, days: float = 0) -> str:
        return (T0 + timedelta(days=days, seconds=self.n)).isoformat()

    def money(self) -> dict[str, Any]:
        r = self.rng
        return {"amount": round(r.uniform(-20, 400), 2), "currency": r.choice(("EUR", "SEK"))}

    def quantity(self) -> dict[str, Any]:
        r = self.rng
        return {"amount": r.uniform(0.2, 80), "unit": r.choice(("t", "kg", "m3", "pieces"))}

    def place(self) -> dict[str, Any]:
        r = self.rng
        return {"lat": r.uniform(58, 61), "lon": r.uniform(13, 18), "region": "SE312"}

    def window(self) -> dict[str, Any]:
        return {"start": self.at(1), "end": self.at(30)}

    def material(self) -> dict[str, Any]:
        r = self.rng
        m: dict[str, Any] = {"code": r.choice(CODES), "description": "test material"}
        if r.random() < 0.5:
            m["density_t_per_m3"] = r.uniform(0.1, 2)
        return m

    def shipment(self, match: str) -> dict[str, Any]:
        seller, buyer = self.sides[match]
        return {
            "match_id": match,
            "offer_id": self.rng.choice(self.listings),
            "request_id": self.rng.choice(self.listings),
            "seller_id": seller,
            "buyer_id": buyer,
            "material_code": self.rng.choice(CODES),
            "hazardous": False,
            "quantity": self.quantity(),
            "weight_t": self.rng.uniform(1, 30),
            "pickup": self.place(),
            "delivery": self.place(),
            "pickup_window": self.window(),
            "delivery_window": self.window(),
            "delivered_price": self.money(),
        }

    # One maker per event type: (class, fields).
    def e_partner_registered(self) -> tuple[type, dict[str, Any]]:
        p = self.rng.choice(self.partners)
        return ps.PartnerRegistered, {
            "partner_id": p,
            "name": f"Firm {self.n}",
            "role": self.rng.choice(("sme", "logistics", "facilitator")),
            "country": "SE",
            "region": self.rng.choice((None, "SE312")),
            "sector": self.rng.choice((None, "20.1")),
            "registered_by": p,
        }

    def e_partner_updated(self) -> tuple[type, dict[str, Any]]:
        p = self.rng.choice(self.partners)
        return ps.PartnerUpdated, {
            "partner_id": p,
            "name": f"Firm {self.n}",
            "region": self.rng.choice((None, "SE311")),
            "active": self.rng.random() < 0.8,
            "updated_by": p,
        }

    def e_carrier(self) -> tuple[type, dict[str, Any]]:
        p = self.rng.choice(self.partners)
        return ps.CarrierCapabilitiesDeclared, {
            "partner_id": p,
            "actor_id": p,
            "capacity_t": self.rng.uniform(1, 40),
            "vehicle_types": ["rigid_truck"],
            "regions": ["SE312"],
        }

    def e_posted(self) -> tuple[type, dict[str, Any]]:
        lid = self.rng.choice(self.listings)
        base = {
            "owner_id": self.owner[lid],
            "actor_id": self.owner[lid],
            "material": self.material(),
            "location": self.place(),
        }
        if self.rng.random() < 0.5:
            terms: dict[str, Any] = {
                "quantity": self.quantity(),
                "price": self.money(),
                "available": self.window(),
            }
            return ls.OfferPosted, base | {"offer_id": lid, "terms": terms}
        terms = {
            "quantity": self.quantity(),
            "max_price": self.money(),
            "wanted": self.window(),
            "max_distance_km": 200.0,
        }
        return ls.RequestPosted, base | {"request_id": lid, "terms": terms}

    def e_updated(self) -> tuple[type, dict[str, Any]]:
        lid = self.rng.choice(self.listings)
        owner = self.pick(self.owner, lid, self.partners)
        base = {"owner_id": owner, "actor_id": owner, "material_code": "150102"}
        if self.rng.random() < 0.5:
            terms: dict[str, Any] = {
                "quantity": self.quantity(),
                "price": self.money(),
                "available": self.window(),
            }
            return ls.OfferUpdated, base | {"offer_id": lid, "terms": terms}
        terms = {
            "quantity": self.quantity(),
            "max_price": self.money(),
            "wanted": self.window(),
            "max_distance_km": 90.0,
        }
        return ls.RequestUpdated, base | {"request_id": lid, "terms": terms}

    def e_withdrawn(self) -> tuple[type, dict[str, Any]]:
        lid = self.rng.choice(self.listings)
        owner = self.pick(self.owner, lid, self.partners)
        base = {"owner_id": owner, "actor_id": owner, "material_code": "150102"}
        if self.rng.random() < 0.5:
            return ls.OfferWithdrawn, base | {"offer_id": lid}
        return ls.RequestWithdrawn, base | {"request_id": lid}

    def e_answer(self) -> tuple[type, dict[str, Any]]:
        m = self.rng.choice(self.matches)
        p = self.rng.choice(self.sides[m]) if self.rng.random() < 0.85 else "p9"
        cls = self.rng.choice((ls.MatchAccepted, ls.MatchDeclined))
        return cls, {"match_id": m, "partner_id": p, "actor_id": p, "material_code": "150102"}

    def e_proposed(self) -> tuple[type, dict[str, Any]]:
        m = self.rng.choice(self.matches)
        seller, buyer = self.sides[m]
        return ms.MatchProposed, {
            "match_id": m,
            "offer_id": self.rng.choice(self.listings),
            "request_id": self.rng.choice(self.listings),
            "seller_id": seller,
            "buyer_id": buyer,
            "material_code": self.rng.choice(CODES),
            "quantity": self.quantity(),
            "delivered_price": {"amount": self.rng.uniform(10, 300), "currency": "EUR"},
            "distance_km": self.rng.uniform(1, 300),
            "transport_co2e_kg": self.rng.uniform(0, 500),
            "co2e_saved_kg": self.rng.uniform(-100, 5000),
            "score": self.rng.random(),
            "reasons": [],
            "expires_at": self.at(2),
            "co2e_known": self.rng.random() < 0.7,
        }

    def e_outcome(self) -> tuple[type, dict[str, Any]]:
        m = self.rng.choice(self.matches)
        kind = self.rng.choice(("confirmed", "expired", "cancelled", "ended"))
        if kind == "confirmed":
            return ms.MatchConfirmed, self.shipment(m)
        if kind == "expired":
            return ms.MatchExpired, {"match_id": m, "material_code": "150102"}
        if kind == "cancelled":
            return ms.MatchCancelled, {
                "match_id": m,
                "material_code": "150102",
                "reason": "declined",
            }
        return ms.AgreementEnded, {"match_id": m, "material_code": "150102", "reason": "term_over"}

    def e_scheduled(self) -> tuple[type, dict[str, Any]]:
        m = self.rng.choice(self.matches)
        fields = self.shipment(m)
        fields.pop("hazardous")
        return ms.DeliveryScheduled, fields | {
            "delivery_id": f"d{self.rng.randrange(4)}",
            "hazardous": False,
            "period_key": "2026-03",
        }

    def e_delivered(self) -> tuple[type, dict[str, Any]]:
        m = self.rng.choice(self.matches)
        seller, buyer = self.sides[m]
        return fb.MatchDelivered, {
            "match_id": m,
            "material_code": "150102",
            "delivery_id": self.rng.choice((None, "d0", "d1")),
            "partner_id": buyer,
            "actor_id": buyer,
            "confirmed_as": "buyer",
            "seller_id": seller,
            "buyer_id": buyer,
            "carrier_id": self.rng.choice((None, "p5", seller)),
            "note": f"note {self.n}",
        }

    def e_feedback(self) -> tuple[type, dict[str, Any]]:
        m = self.rng.choice(self.matches)
        p = self.rng.choice(self.sides[m])
        return fb.FeedbackGiven, {
            "feedback_id": f"f{self.rng.randrange(8)}",
            "match_id": m,
            "material_code": "150102",
            "delivery_id": self.rng.choice((None, "d0")),
            "partner_id": p,
            "actor_id": p,
            "side": self.rng.choice(("seller", "buyer")),
            "rating": self.rng.randint(1, 5),
            "reason": "price",
            "comment": f"comment {self.n}",
        }

    def e_consent(self) -> tuple[type, dict[str, Any]]:
        p, f = self.rng.choice(self.partners), self.rng.choice(("fa", "fb"))
        cls = self.rng.choice((fc.ConsentGranted, fc.ConsentRevoked))
        fields = {"partner_id": p, "facilitator_id": f, "actor_id": p}
        return cls, fields | ({"note": f"n{self.n}"} if cls is fc.ConsentGranted else {})

    def e_nudge(self) -> tuple[type, dict[str, Any]]:
        lid = self.rng.choice(self.listings)
        return fc.ListingNudged, {
            "partner_id": self.owner[lid],
            "facilitator_id": "fa",
            "actor_id": "fa",
            "listing_id": lid,
            "kind": "offer",
            "material_code": "150102",
            "days_unchanged": self.rng.randrange(40),
            "message": f"m{self.n}",
        }

    def e_notification(self) -> tuple[type, dict[str, Any]]:
        return ps.NotificationIssued, {
            "notification_id": f"n{self.rng.randrange(12)}",
            "partner_id": self.rng.choice(self.partners),
            "kind": "match.proposed",
            "subject_id": self.rng.choice(self.matches),
            "cause_event_id": f"c{self.n}",
            "summary": f"summary {self.n}",
        }

    def e_job(self) -> tuple[type, dict[str, Any]]:
        j = self.rng.choice(self.jobs)
        fields = self.shipment(self.pick(self.match_of, j, self.matches))
        for name in ("offer_id", "request_id", "delivered_price"):
            fields.pop(name)
        estimate = {"estimated_price": self.money()} if self.rng.random() < 0.7 else {}
        return lg.TransportJobRequested, fields | estimate | {
            "job_id": j,
            "bidding_deadline": self.at(1),
            "estimated_co2e_kg": self.rng.uniform(0, 90),
        }

    def e_quote(self) -> tuple[type, dict[str, Any]]:
        q = self.rng.choice(self.quotes)
        c = self.pick(self.carrier_of, q, self.partners)
        return lg.QuoteSubmitted, {
            "quote_id": q,
            "job_id": self.pick(self.job_of, q, self.jobs),
            "carrier_id": c,
            "actor_id": c,
            "price": self.money(),
            "vehicle": "rigid_truck",
            "co2e_kg": self.rng.uniform(0, 90),
            "pickup_at": self.at(1),
            "coverage": {"capacity_t": 20.0},
        }

    def e_quote_withdrawn(self) -> tuple[type, dict[str, Any]]:
        q = self.rng.choice(self.quotes)
        c = self.pick(self.carrier_of, q, self.partners)
        return lg.QuoteWithdrawn, {
            "quote_id": q,
            "job_id": self.job_of[q],
            "carrier_id": c,
            "actor_id": c,
        }

    def e_quote_rejected(self) -> tuple[type, dict[str, Any]]:
        q = self.rng.choice(self.quotes)
        return lg.QuoteRejected, {
            "quote_id": q,
            "job_id": self.pick(self.job_of, q, self.jobs),
            "carrier_id": self.pick(self.carrier_of, q, self.partners),
            "action": self.rng.choice(("submission", "withdrawal")),
            "submission_id": self.rng.choice(self.submissions),
            "reason_code": "not_covered",
            "reason": f"reason {self.n}",
            "previous_stands": self.rng.random() < 0.5,
        }

    def e_reserve(self) -> tuple[type, dict[str, Any]]:
        j = self.rng.choice(self.jobs)
        m = self.pick(self.match_of, j, self.matches)
        p = self.rng.choice(self.sides[m])
        price = {"price": self.money()} if self.rng.random() < 0.8 else {}
        return lg.ReservePriceSet, price | {
            "job_id": j,
            "match_id": m,
            "partner_id": p,
            "actor_id": p,
        }

    def e_award(self) -> tuple[type, dict[str, Any]]:
        j = self.rng.choice(self.jobs)
        q = self.rng.choice([q for q in self.quotes if self.job_of[q] == j] or self.quotes)
        estimate = {"amount": self.rng.uniform(50, 900), "currency": "EUR"}
        return lg.TransportAwarded, {
            "job_id": j,
            "match_id": self.pick(self.match_of, j, self.matches),
            "quote_id": q,
            "carrier_id": self.carrier_of[q],
            "price": {"amount": self.rng.uniform(50, 900), "currency": "EUR"},
            "co2e_kg": self.rng.uniform(0, 90),
            "bidders": [self.carrier_of[q]],
            "vehicle": "rigid_truck",
            "pickup_at": self.rng.choice((None, self.at(1))),
            "weight_t": self.rng.choice((None, self.rng.uniform(1, 30))),
            "estimated_price": self.rng.choice((None, estimate)),
            "estimated_co2e_kg": self.rng.uniform(0, 90),
        }

    def e_auction_failed(self) -> tuple[type, dict[str, Any]]:
        j = self.rng.choice(self.jobs)
        return lg.AuctionFailed, {
            "job_id": j,
            "match_id": self.pick(self.match_of, j, self.matches),
            "reason": f"no quotes {self.n}",
            "reopened_until": self.rng.choice((None, self.at(2))),
        }


Apply = Callable[[asyncpg.Connection, Sequence[Decoded]], Awaitable[None]]


async def _one_by_one(conn: asyncpg.Connection, batch: Sequence[Decoded]) -> None:
    for decoded in batch:
        await legacy.project(conn, decoded)
        await legacy.record_fact(conn, decoded)


async def _batched(conn: asyncpg.Connection, batch: Sequence[Decoded]) -> None:
    await projector.project(conn, batch)
    await analytics.record_facts(conn, batch)


async def _run(
    db: Settings, apply: Apply, batches: list[list[Decoded]]
) -> tuple[dict[str, list[dict[str, Any]]], list[str]]:
    """Applies the batches (one transaction each); the tables afterwards and the partner ids
    the live push was told about, in order."""
    conn, listener = await connect(db), await connect(db)
    heard: list[str] = []
    await listener.add_listener(NOTIFY_CHANNEL, lambda *args: heard.append(args[3]))
    try:
        for batch in batches:
            async with conn.transaction():
                await apply(conn, batch)
        tables = {
            table: [dict(r) for r in await conn.fetch(f"SELECT * FROM {table} ORDER BY {key}")]
            for table, key in TABLES.items()
        }
        await asyncio.sleep(0.2)  # notifications arrive after the commits
        return tables, heard
    finally:
        await listener.close()
        await conn.close()


def _split(rng: random.Random, events: list[Decoded]) -> list[list[Decoded]]:
    out, i = [], 0
    while i < len(events):
        size = rng.choice((1, 2, 5, 20, 60, 200))
        out.append(events[i : i + size])
        i += size
    return out


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_batched_path_leaves_every_row_as_one_by_one(settings: Settings, seed: int) -> None:
    events = Stream(seed).events(1500)
    batches = _split(random.Random(seed), events)
    async with scratch_database(settings, "one_by_one") as scratch:
        old, old_heard = await _run(scratch, _one_by_one, batches)
    async with scratch_database(settings, "batched") as scratch:
        new, new_heard = await _run(scratch, _batched, batches)
    assert sum(len(rows) for rows in old.values()) > 200  # the stream reaches every table
    for table in TABLES:
        assert old[table], f"{table}: the stream left it empty"
        assert new[table] == old[table], table
    assert new_heard == old_heard
    # The stream exercises what order decides: withdrawn and still open listings, updated
    # terms, answers, refused and won quotes, awarded matches.
    statuses = {r["status"] for r in old["listings"]}
    assert statuses == {"open", "withdrawn"}
    assert {r["status"] for r in old["quotes"]} >= {"active", "withdrawn", "rejected"}
    assert {r["outcome"] for r in old["quotes"]} >= {"won", "lost"}
    assert any(r["answers"] != "{}" for r in old["matches"])
    assert any(r["transport"] and '"awarded"' in r["transport"] for r in old["matches"])
