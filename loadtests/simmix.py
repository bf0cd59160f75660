"""The market simulator's mix as the matcher's core commands, without Kafka or a database.

`producers/simulator/market.py` gives the actions (API bodies for offers and requests, and
withdrawals of a firm's open listings); each becomes the event the API would publish (the body
decoded by the API's own types, as `loadtests/loadgen.py` does) and then the core's command the
way the matcher makes it (`marketplace.translate.matching.to_command`). The partners answer the
proposals the way the simulator's driver does (`Market.answers`: the seller first, then the
buyer if the seller accepted, each after its seeded delay). All of it goes into one book, as if
every material family were in one partition (the worst case for a partition's size).

`extras` (for the equivalence test) adds what the simulator does not do on its own: changes of
terms, proposals left to run out (deadlines), and recurring agreements' period timers."""

from __future__ import annotations

import heapq
import random
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec

from marketplace.cloudevents import Envelope
from marketplace.core.book import Book
from marketplace.core.matching import (
    Answer,
    Command,
    Confirmed,
    DeadlineDue,
    DeliveryDue,
    Event,
    MarketConfig,
    PeriodDue,
    Proposed,
    Update,
)
from marketplace.events import Decoded
from marketplace.settings import Settings
from marketplace.translate.matching import market_config, to_command
from producers.api.bodies import OfferIn, RequestIn
from producers.simulator.market import Action, Market
from schemas import listings as ls
from schemas.registry import type_name

START = datetime(2026, 12, 1, tzinfo=UTC)


def config() -> MarketConfig:
    """The matcher's configuration with the default settings and the reference data."""
    return market_config(Settings.from_env({}))


@dataclass(order=True)
class _Due:
    at_s: float
    n: int
    make: Callable[[], Command | None] = field(compare=False)


class SimMix:
    """An endless stream of the core's commands; tell it what each command decided
    (`observe`) so that partners can answer their proposals."""

    def __init__(
        self, seed: int, *, smes: int = 400, rate: float = 50.0, extras: bool = False
    ) -> None:
        self.market = Market(seed, smes=smes, carriers=0)
        self.actions = self.market.actions(rate, START)
        self.rng = random.Random(seed * 31 + 5)
        self.extras = extras
        self.now_s = 0.0
        self.n = 0
        self.due: list[_Due] = []
        self.pending: Action | None = None
        self.open: dict[int, list[tuple[str, str, str]]] = {}  # firm -> [(kind, id, code)]
        self.bodies: dict[str, tuple[int, str, dict[str, Any]]] = {}  # id -> firm, kind, body
        self.counts: dict[str, int] = {}
        self._empty = Book()

    def owner(self, firm: int) -> str:
        return f"sme-{firm:05d}"

    def _id(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def _at(self, at_s: float) -> datetime:
        return START + timedelta(seconds=at_s)

    def _decoded(self, event: Any, at_s: float, subject: str) -> Decoded:
        envelope = Envelope(
            id=self._id(),
            type=type_name(type(event)),
            source="/api",
            time=self._at(at_s),
            subject=subject,
        )
        return Decoded(envelope, event)

    def _later(self, at_s: float, make: Callable[[], Command | None]) -> None:
        self.n += 1
        heapq.heappush(self.due, _Due(at_s, self.n, make))

    def __iter__(self) -> Iterator[Command]:
        return self

    def __next__(self) -> Command:
        while True:
            if self.pending is None:
                self.pending = next(self.actions)
            action = self.pending
            command: Command | None
            if self.due and self.due[0].at_s <= action.at_s:
                due = heapq.heappop(self.due)
                self.now_s = due.at_s
                command = due.make()
            else:
                self.pending = None
                self.now_s = action.at_s
                command = self._from_action(action)
            if command is not None:
                name = type(command).__name__
                self.counts[name] = self.counts.get(name, 0) + 1
                return command

    def _from_action(self, action: Action) -> Command | None:
        owner = self.owner(action.firm)
        event: Any
        if action.kind == "withdraw":
            listings = self.open.get(action.firm)
            if not listings:
                return None
            kind, listing_id, code = listings.pop(int(action.pick * len(listings)))
            self.bodies.pop(listing_id, None)
            if kind == "offer":
                event = ls.OfferWithdrawn(
                    offer_id=listing_id, owner_id=owner, actor_id=owner, material_code=code
                )
            else:
                event = ls.RequestWithdrawn(
                    request_id=listing_id, owner_id=owner, actor_id=owner, material_code=code
                )
            return to_command(self._decoded(event, action.at_s, listing_id), self._empty)
        raw = msgspec.json.encode(action.body)
        listing_id = self._id()
        if action.kind == "offer":
            offer = msgspec.json.decode(raw, type=OfferIn)
            event = ls.OfferPosted(
                offer_id=listing_id,
                owner_id=owner,
                actor_id=owner,
                material=offer.material,
                location=offer.location,
                terms=offer.terms,
                certifications=offer.certifications,
            )
            code = offer.material.code
        else:
            request = msgspec.json.decode(raw, type=RequestIn)
            event = ls.RequestPosted(
                request_id=listing_id,
                owner_id=owner,
                actor_id=owner,
                material=request.material,
                accepts_codes=request.accepts_codes,
                location=request.location,
                hazardous_permit=request.hazardous_permit,
                terms=request.terms,
            )
            code = request.material.code
        self.open.setdefault(action.firm, []).append((action.kind, listing_id, code))
        self.bodies[listing_id] = (action.firm, action.kind, action.body)
        if self.extras and self.rng.random() < 0.1:
            self._later(action.at_s + self.rng.uniform(1, 600), self._update_of(listing_id))
        return to_command(self._decoded(event, action.at_s, listing_id), self._empty)

    def _update_of(self, listing_id: str) -> Callable[[], Command | None]:
        def make() -> Command | None:
            held = self.bodies.get(listing_id)
            if held is None:
                return None
            firm, kind, body = held
            owner = self.owner(firm)
            terms = dict(body["terms"])
            quantity = dict(terms["quantity"])
            quantity["amount"] = round(quantity["amount"] * self.rng.uniform(0.5, 1.5), 2)
            terms["quantity"] = quantity
            if "min_lot" in terms:
                terms.pop("min_lot")
            priced = "price" if kind == "offer" else "max_price"
            money = dict(terms[priced])
            money["amount"] = round(money["amount"] * self.rng.uniform(0.8, 1.2), 2)
            terms[priced] = money
            raw = msgspec.json.encode(terms)
            event: Any
            if kind == "offer":
                event = ls.OfferUpdated(
                    offer_id=listing_id,
                    owner_id=owner,
                    actor_id=owner,
                    material_code=body["material"]["code"],
                    terms=msgspec.json.decode(raw, type=ls.OfferTerms),
                )
            else:
                event = ls.RequestUpdated(
                    request_id=listing_id,
                    owner_id=owner,
                    actor_id=owner,
                    material_code=body["material"]["code"],
                    terms=msgspec.json.decode(raw, type=ls.RequestTerms),
                )
            command = to_command(self._decoded(event, self.now_s, listing_id), self._empty)
            assert isinstance(command, Update)
            return command

        return make

    def observe(self, events: list[Event]) -> None:
        """What the last command decided: the partners answer its proposals in time."""
        for e in events:
            if isinstance(e, Proposed):
                p = e.proposal
                if self.extras and self.rng.random() < 0.15:
                    # Nobody answers: the deadline comes (a little early for some, which the
                    # core must ignore).
                    early = self.rng.random() < 0.2
                    at = p.expires_at - timedelta(seconds=1 if early else 0)
                    self._later(self.now_s + 5, self._deadline(p.match_id, at))
                    continue
                self._answer_later(p.match_id, p.seller, p.buyer, self.now_s)
            elif isinstance(e, Confirmed) and e.first_period and self.extras:
                key, _ = e.first_period
                self._later(self.now_s + 2, self._period(e.proposal.match_id, key))
            elif isinstance(e, DeliveryDue) and self.extras and self.rng.random() < 0.7:
                key, _ = e.next_period
                self._later(self.now_s + 2, self._period(e.standing.proposal.match_id, key))

    def _answer_later(self, match_id: str, seller: str, buyer: str, now_s: float) -> None:
        accept, delay = self.market.answers(match_id, seller)
        at_s = now_s + delay
        self._later(at_s, self._answer(match_id, seller, accept))
        if accept:
            accept_b, delay_b = self.market.answers(match_id, buyer)
            self._later(at_s + delay_b, self._answer(match_id, buyer, accept_b))

    def _answer(self, match_id: str, partner: str, accept: bool) -> Callable[[], Command]:
        def make() -> Command:
            event_id = self._id()
            return Answer(event_id, self._at(self.now_s), match_id, partner, accept)

        return make

    def _deadline(self, match_id: str, at: datetime) -> Callable[[], Command]:
        return lambda: DeadlineDue(self._id(), at, match_id)

    def _period(self, match_id: str, key: str) -> Callable[[], Command]:
        return lambda: PeriodDue(self._id(), self._at(self.now_s), match_id, key)
