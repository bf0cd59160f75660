"""The transport auction of one job. Pure: `step(auction, command, config)` returns the new
auction and the events it decides; time comes from the commands, nothing else.

The rules (the README's "For logistics firms" states them for partners):

- A quote counts when it arrives while the auction is open and before the bidding deadline,
  from a firm whose declared coverage fits the job (both ends covered, one load within its
  capacity, a permit for hazardous waste: `carriers.unfit_reasons`), for a vehicle type the
  firm declared, with a pickup time inside the job's pickup window, in the job's currency, at a
  price that is not negative. Anything else is refused with a reason code and a sentence.
- One live quote per firm and job. The firm revises it by sending the same quote id again and
  may withdraw it, both only before the deadline; a withdrawn quote stays withdrawn. A second
  quote id from a firm that has a live quote is refused as a duplicate.
- At the deadline the job goes to the lowest price among the live quotes within the reserve
  (the lowest of the job's own reserve and the caps the seller and the buyer set); ties go to
  the lower CO2e of the quoted vehicle, then to the earlier arrival of the quote's latest version.
- With no such quote the auction fails. The first failure reopens bidding until
  `deadline + reopen_after` (live quotes stay in); the second failure is final.
- Early close (`early_close_quotes` = N > 0): the auction is decided as soon as N live quotes
  within the reserve are in, without waiting for the deadline.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Literal

from marketplace.core.carriers import Coverage, JobNeeds, unfit_reasons
from marketplace.core.economics import TransportModel

Status = Literal["open", "awarded", "failed"]
Action = Literal["submission", "withdrawal"]

# Every reason code a refusal may carry.
REASON_CODES = (
    "unknown_job",  # no such job (yet) on this partition
    "closed",  # the auction was already decided
    "late",  # arrived at or after the bidding deadline
    "not_yours",  # the quote id belongs to another firm
    "withdrawn",  # the quote was withdrawn before
    "unknown_quote",  # withdrawing a quote that does not exist
    "duplicate",  # a second live quote from one firm
    "no_capabilities",  # the quote carries no declared coverage
    "unfit",  # coverage, capacity or hazardous permit do not fit the job
    "vehicle",  # a vehicle type the firm did not declare
    "pickup_window",  # pickup time outside the job's pickup window
    "currency",  # not the job's currency
    "price",  # a negative price
)


@dataclass(frozen=True, slots=True)
class AuctionConfig:
    reopen_after: timedelta = timedelta(hours=24)
    # 0: off; N > 0: decide as soon as N live quotes within the reserve are in.
    early_close_quotes: int = 0


@dataclass(frozen=True, slots=True)
class Job:
    job_id: str
    match_id: str
    needs: JobNeeds
    pickup_start: datetime
    pickup_end: datetime
    deadline: datetime
    currency: str | None = None
    reserve: float | None = None
    # The seller and buyer, who may cap the price; empty: the job does not say.
    parties: tuple[str, ...] = ()
    # The operator's estimate for the whole trip, carried through to the award.
    estimated_price: float | None = None
    estimated_co2e_kg: float | None = None


@dataclass(frozen=True, slots=True)
class Quote:
    quote_id: str
    carrier_id: str
    price: float
    currency: str
    vehicle: str
    co2e_kg: float
    pickup_at: datetime
    # Arrival order of this version within the job: the last tie-break.
    seq: int = 0

    def rank(self) -> tuple[float, float, int]:
        return (self.price, self.co2e_kg, self.seq)


@dataclass(frozen=True, slots=True)
class Auction:
    job: Job
    deadline: datetime
    status: Status = "open"
    reopened: bool = False
    currency: str | None = None
    quotes: tuple[Quote, ...] = ()
    withdrawn: tuple[str, ...] = ()
    # (party, cap) per party that set one.
    reserves: tuple[tuple[str, float], ...] = ()
    # Firms with a quote that counted at some point, in order of their first one.
    bidders: tuple[str, ...] = ()
    winner: str | None = None
    seq: int = 0
    # Ids of the events already applied, so a repeated one changes nothing.
    seen: tuple[str, ...] = ()

    def reserve(self) -> float | None:
        caps = [c for _, c in self.reserves]
        if self.job.reserve is not None:
            caps.append(self.job.reserve)
        return min(caps) if caps else None

    def eligible(self) -> list[Quote]:
        cap = self.reserve()
        return [q for q in self.quotes if cap is None or q.price <= cap]

    def live(self, quote_id: str) -> Quote | None:
        return next((q for q in self.quotes if q.quote_id == quote_id), None)


# Commands ----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Open:
    event_id: str
    at: datetime
    job: Job


@dataclass(frozen=True, slots=True)
class Submit:
    event_id: str
    at: datetime
    job_id: str
    quote_id: str
    carrier_id: str
    price: float
    currency: str
    vehicle: str
    co2e_kg: float
    pickup_at: datetime
    coverage: Coverage | None


@dataclass(frozen=True, slots=True)
class Withdraw:
    event_id: str
    at: datetime
    job_id: str
    quote_id: str
    carrier_id: str


@dataclass(frozen=True, slots=True)
class SetReserve:
    event_id: str
    at: datetime
    job_id: str
    partner_id: str
    # None lifts the party's cap.
    price: float | None
    currency: str | None


@dataclass(frozen=True, slots=True)
class DeadlineDue:
    event_id: str
    job_id: str
    due: datetime


Command = Open | Submit | Withdraw | SetReserve | DeadlineDue


# Events ------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Rejected:
    job_id: str
    quote_id: str
    carrier_id: str
    action: Action
    submission_id: str
    code: str
    reason: str
    previous_stands: bool = False


@dataclass(frozen=True, slots=True)
class Awarded:
    job: Job
    quote: Quote
    bidders: tuple[str, ...]
    at: datetime


@dataclass(frozen=True, slots=True)
class Failed:
    job: Job
    reason: str
    reopened_until: datetime | None
    bidders: tuple[str, ...]
    at: datetime


@dataclass(frozen=True, slots=True)
class DeadlineSet:
    """Ask for a DeadlineDue at `due` (the shell turns this into a timer)."""

    job_id: str
    due: datetime


Event = Rejected | Awarded | Failed | DeadlineSet


# The step ----------------------------------------------------------------------------------------


def step(
    auction: Auction | None, command: Command, config: AuctionConfig
) -> tuple[Auction | None, list[Event]]:
    out: list[Event] = []
    if isinstance(command, Open):
        if auction is not None:
            return auction, out  # the job was opened before
        job = command.job
        currency = job.currency
        opened = Auction(
            job=job, deadline=job.deadline, currency=currency, seen=(command.event_id,)
        )
        out.append(DeadlineSet(job.job_id, job.deadline))
        return opened, out
    if auction is None:
        if isinstance(command, Submit | Withdraw):
            out.append(_refuse(command, "unknown_job", f"no transport job {command.job_id}"))
        return auction, out
    if command.event_id in auction.seen:
        return auction, out
    auction = replace(auction, seen=(*auction.seen, command.event_id))
    match command:
        case Submit():
            auction = _submit(auction, command, config, out)
        case Withdraw():
            auction = _withdraw(auction, command, out)
        case SetReserve():
            auction = _set_reserve(auction, command)
        case DeadlineDue():
            if auction.status == "open" and command.due >= auction.deadline:
                auction = _close(auction, command.due, config, out)
    return auction, out


def _refuse(
    command: Submit | Withdraw, code: str, reason: str, previous_stands: bool = False
) -> Rejected:
    return Rejected(
        job_id=command.job_id,
        quote_id=command.quote_id,
        carrier_id=command.carrier_id,
        action="submission" if isinstance(command, Submit) else "withdrawal",
        submission_id=command.event_id,
        code=code,
        reason=reason,
        previous_stands=previous_stands,
    )


def _closed_or_late(a: Auction, at: datetime) -> tuple[str, str] | None:
    if a.status != "open":
        return "closed", f"the auction of job {a.job.job_id} is already {a.status}"
    if at >= a.deadline:
        return "late", f"arrived at {at.isoformat()}, after the deadline {a.deadline.isoformat()}"
    return None


def submit_refusal(a: Auction, s: Submit) -> tuple[str, str] | None:
    """Why this submission does not count, or None when it does."""
    shut = _closed_or_late(a, s.at)
    if shut is not None:
        return shut
    current = a.live(s.quote_id)
    if current is not None and current.carrier_id != s.carrier_id:
        return "not_yours", f"quote {s.quote_id} belongs to another firm"
    if s.quote_id in a.withdrawn:
        return "withdrawn", f"quote {s.quote_id} was withdrawn; send a new quote instead"
    if current is None:
        mine = next((q for q in a.quotes if q.carrier_id == s.carrier_id), None)
        if mine is not None:
            return (
                "duplicate",
                f"you already have quote {mine.quote_id} on this job; revise it (send its "
                "quote_id) or withdraw it first",
            )
    if s.coverage is None:
        return "no_capabilities", "declare your coverage and capabilities before quoting"
    unfit = unfit_reasons(a.job.needs, s.coverage)
    if unfit:
        return "unfit", "; ".join(unfit)
    if s.vehicle not in s.coverage.vehicle_types:
        return "vehicle", f"{s.vehicle} is not among your declared vehicle types"
    if not a.job.pickup_start <= s.pickup_at <= a.job.pickup_end:
        return (
            "pickup_window",
            f"pickup at {s.pickup_at.isoformat()} is outside the pickup window "
            f"{a.job.pickup_start.isoformat()} to {a.job.pickup_end.isoformat()}",
        )
    if a.currency is not None and s.currency != a.currency:
        return "currency", f"quote in {a.currency}, the job's currency, not {s.currency}"
    if s.price < 0:
        return "price", "a transport price cannot be negative"
    return None


def _submit(a: Auction, s: Submit, config: AuctionConfig, out: list[Event]) -> Auction:
    refusal = submit_refusal(a, s)
    if refusal is not None:
        current = a.live(s.quote_id)
        stands = current is not None and current.carrier_id == s.carrier_id
        out.append(_refuse(s, *refusal, previous_stands=stands))
        return a
    quote = Quote(
        quote_id=s.quote_id,
        carrier_id=s.carrier_id,
        price=s.price,
        currency=s.currency,
        vehicle=s.vehicle,
        co2e_kg=s.co2e_kg,
        pickup_at=s.pickup_at,
        seq=a.seq,
    )
    others = tuple(q for q in a.quotes if q.quote_id != s.quote_id)
    bidders = a.bidders if s.carrier_id in a.bidders else (*a.bidders, s.carrier_id)
    a = replace(
        a,
        quotes=(*others, quote),
        seq=a.seq + 1,
        bidders=bidders,
        currency=a.currency or s.currency,
    )
    if 0 < config.early_close_quotes <= len(a.eligible()):
        return _close(a, s.at, config, out)
    return a


def _withdraw(a: Auction, w: Withdraw, out: list[Event]) -> Auction:
    current = a.live(w.quote_id)
    mine = current is not None and current.carrier_id == w.carrier_id
    shut = _closed_or_late(a, w.at)
    if shut is not None:
        out.append(_refuse(w, *shut, previous_stands=mine))
        return a
    if current is None:
        if w.quote_id in a.withdrawn:
            out.append(_refuse(w, "withdrawn", f"quote {w.quote_id} is already withdrawn"))
        else:
            out.append(_refuse(w, "unknown_quote", f"no quote {w.quote_id} on this job"))
        return a
    if not mine:
        out.append(_refuse(w, "not_yours", f"quote {w.quote_id} belongs to another firm"))
        return a
    return replace(
        a,
        quotes=tuple(q for q in a.quotes if q.quote_id != w.quote_id),
        withdrawn=(*a.withdrawn, w.quote_id),
    )


def _set_reserve(a: Auction, r: SetReserve) -> Auction:
    # The API checks these with a clear answer; a setting that still fails them changes nothing.
    if _closed_or_late(a, r.at) is not None:
        return a
    if a.job.parties and r.partner_id not in a.job.parties:
        return a
    if r.price is not None and a.currency is not None and r.currency != a.currency:
        return a
    others = tuple((p, c) for p, c in a.reserves if p != r.partner_id)
    caps = others if r.price is None else (*others, (r.partner_id, r.price))
    return replace(a, reserves=caps, currency=a.currency or r.currency)


def _close(a: Auction, at: datetime, config: AuctionConfig, out: list[Event]) -> Auction:
    eligible = a.eligible()
    if eligible:
        best = min(eligible, key=Quote.rank)
        out.append(Awarded(a.job, best, a.bidders, at))
        return replace(a, status="awarded", winner=best.quote_id)
    if not a.quotes:
        reason = "no quotes"
    else:
        unit = f" {a.currency}" if a.currency else ""
        reason = f"no quote at or below the reserve price of {a.reserve():g}{unit}"
    if not a.reopened:
        until = a.deadline + config.reopen_after
        out.append(Failed(a.job, f"{reason}; bidding reopened", until, a.bidders, at))
        out.append(DeadlineSet(a.job.job_id, until))
        return replace(a, reopened=True, deadline=until)
    out.append(Failed(a.job, f"{reason} after reopening", None, a.bidders, at))
    return replace(a, status="failed")


def transport_estimate(
    needs: JobNeeds, model: TransportModel, currency: str
) -> tuple[float, float] | None:
    """The operator's estimate for a whole job, (price, kg CO2e), by the matcher's model: road
    distance (great circle × detour) × tonnes × the per-tonne-km cost and emission factor.
    None when the model has no cost for the currency."""
    cost = model.cost_per_tkm.get(currency)
    if cost is None:
        return None
    tkm = needs.pickup.km_to(needs.delivery) * model.detour_factor * needs.weight_t
    return round(tkm * cost, 2), round(tkm * model.kgco2e_per_tkm, 3)
