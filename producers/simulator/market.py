"""The simulated market, as data and a seeded generator (no I/O, no clock of its own).

Firms sit in the places the associations serve: Bulgarian cities, and the small towns of Norra
Mellansverige (Gävleborg, Dalarna, Värmland). Each SME belongs to a sector with the by-products it
offers and the secondary materials it buys; logistics firms cover a radius around their depots.
The same seed gives the same firms and the same sequence of actions, relative to the start time
the driver passes in. The mix holds the seed regions' food and farm by-products (brewers' spent
grain, fruit and vegetable residues, bakery returns, straw, manure, whey) beside textiles,
plastics, pallets and packaging, and the towns' own flows: what municipal collection and
recycling centres gather separately (paper, plastics, wood, textiles), the sorted grades of
sorting plants and the sludge of sewage works, each with buyers (recyclers, wipers makers and
textile sorters, composters). A code without a sourced carbon factor is traded all the same,
its CO2e shown as unknown. Each sector's number of SMEs follows its weight; the seed decides
which firm is which and where it sits."""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from marketplace.core.geo import distance_km


@dataclass(frozen=True, slots=True)
class Town:
    name: str
    country: str
    region: str  # NUTS 3
    lat: float
    lon: float

    @property
    def currency(self) -> str:
        return "SEK" if self.country == "SE" else "EUR"  # Bulgaria uses the euro since 2026


TOWNS: tuple[Town, ...] = (
    Town("Sofia", "BG", "BG411", 42.698, 23.322),
    Town("Plovdiv", "BG", "BG421", 42.142, 24.750),
    Town("Varna", "BG", "BG331", 43.214, 27.915),
    Town("Burgas", "BG", "BG341", 42.504, 27.463),
    Town("Ruse", "BG", "BG323", 43.849, 25.954),
    Town("Stara Zagora", "BG", "BG344", 42.425, 25.634),
    Town("Pleven", "BG", "BG314", 43.417, 24.606),
    Town("Gabrovo", "BG", "BG322", 42.874, 25.318),
    Town("Veliko Tarnovo", "BG", "BG321", 43.081, 25.629),
    Town("Sliven", "BG", "BG342", 42.682, 26.322),
    Town("Söderhamn", "SE", "SE313", 61.304, 17.059),
    Town("Bollnäs", "SE", "SE313", 61.348, 16.394),
    Town("Hudiksvall", "SE", "SE313", 61.729, 17.104),
    Town("Rättvik", "SE", "SE312", 60.886, 15.117),
    Town("Leksand", "SE", "SE312", 60.731, 14.999),
    Town("Ludvika", "SE", "SE312", 60.149, 15.187),
    Town("Arvika", "SE", "SE311", 59.654, 12.591),
    Town("Torsby", "SE", "SE311", 60.136, 13.000),
)

# SEK per EUR, to keep Swedish prices plausible next to Bulgarian ones.
SEK_PER_EUR = 11.5


@dataclass(frozen=True, slots=True)
class Material:
    code: str
    description: str
    form: str
    qty_t: tuple[float, float]  # a lot's size range, tonnes
    price_eur_t: tuple[float, float]  # offer price (negative: the holder pays a gate fee)


@dataclass(frozen=True, slots=True)
class Need:
    code: str
    description: str
    qty_t: tuple[float, float]
    max_price_eur_t: tuple[float, float]
    max_km: tuple[float, float]
    accepts: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Sector:
    key: str
    nace: str
    name: str
    word: dict[str, str]  # a word for firm names, by country
    offers: tuple[Material, ...] = ()
    needs: tuple[Need, ...] = ()
    weight: float = 1.0


_FILM = Material("150102", "PE stretch film, baled", "bales", (0.5, 6), (-10, 60))
_CARDBOARD = Material("150101", "Corrugated cardboard, baled", "bales", (1, 10), (20, 90))
_PALLETS = Material("150103", "Used wooden pallets and crates", "pallets", (0.5, 5), (0, 40))

SECTORS: tuple[Sector, ...] = (
    Sector(
        "textiles",
        "13",
        "textiles",
        {"BG": "Tekstil", "SE": "Textil"},
        offers=(
            Material(
                "040222", "Cotton and polyester cutting offcuts", "bales", (0.3, 5), (10, 120)
            ),
            Material("040221", "Unprocessed wool and fibre waste", "bales", (0.2, 3), (30, 150)),
            _FILM,
        ),
        needs=(
            Need(
                "040222",
                "Textile offcuts for insulation batts",
                (1, 8),
                (80, 200),
                (80, 300),
                accepts=("040221", "191208", "200111"),
            ),
        ),
        weight=1.4,
    ),
    Sector(
        "plastics",
        "22",
        "plastics and packaging",
        {"BG": "Plast", "SE": "Plast"},
        offers=(
            Material("070213", "PP and PE production scrap, regrind", "flakes", (1, 15), (80, 300)),
            _CARDBOARD,
        ),
        needs=(
            Need(
                "150102",
                "PE film for regranulation",
                (2, 20),
                (40, 160),
                (100, 400),
                accepts=("200139", "020104", "191204"),
            ),
            Need("070213", "Clean PP regrind", (1, 10), (150, 400), (100, 400)),
        ),
        weight=1.3,
    ),
    Sector(
        "agrifood",
        "10",
        "agriculture and food",
        {"BG": "Agro", "SE": "Lantbruk"},
        offers=(
            Material(
                "020104",
                "Used agricultural film (silage, greenhouse)",
                "bales",
                (0.5, 5),
                (-40, 20),
            ),
            _PALLETS,
            _CARDBOARD,
        ),
        needs=(
            Need("150103", "Pallets for reuse in the packing house", (0.5, 4), (20, 80), (30, 150)),
        ),
        weight=1.3,
    ),
    Sector(
        "food",
        "10.8",
        "food processing, bakeries and dairies",
        {"BG": "Hrani", "SE": "Livs"},
        offers=(
            Material(
                "020304",
                "Fruit and vegetable residues from processing",
                "loose",
                (1, 12),
                (-20, 10),
            ),
            Material("020601", "Bakery returns and unsold bread", "other", (0.2, 3), (-5, 30)),
            Material("020501", "Whey from cheese making", "liquid", (1, 10), (-15, 10)),
            _CARDBOARD,
        ),
        weight=1.2,
    ),
    Sector(
        "beverages",
        "11",
        "breweries and beverages",
        {"BG": "Pivovar", "SE": "Bryggeri"},
        offers=(Material("020799", "Brewers' spent grain, wet", "loose", (2, 15), (-10, 20)),),
        weight=0.7,
    ),
    Sector(
        "farming",
        "01",
        "farming",
        {"BG": "Ferma", "SE": "Gård"},
        offers=(
            Material("020103", "Wheat and barley straw, baled", "bales", (2, 20), (10, 60)),
            Material("020106", "Cattle manure with straw bedding", "loose", (5, 30), (-10, 5)),
        ),
        needs=(
            Need(
                "020799",
                "Spent grain and bakery returns for cattle feed",
                (2, 20),
                (0, 40),
                (20, 120),
                accepts=("020601",),
            ),
            Need("020103", "Straw for animal bedding", (2, 15), (30, 80), (30, 150)),
        ),
        weight=1.1,
    ),
    Sector(
        "biogas",
        "35.21",
        "biogas and composting",
        {"BG": "Biogaz", "SE": "Biogas"},
        needs=(
            Need(
                "020106",
                "Manure and food residues for anaerobic digestion",
                (5, 40),
                (-10, 15),
                (20, 100),
                accepts=("020304", "020501"),
            ),
        ),
        weight=0.6,
    ),
    Sector(
        "retail",
        "47",
        "retail",
        {"BG": "Market", "SE": "Handel"},
        offers=(_CARDBOARD, _FILM, _PALLETS),
        weight=1.2,
    ),
    Sector(
        "events",
        "82.3",
        "events",
        {"BG": "Events", "SE": "Event"},
        offers=(
            Material(
                "200111", "Banner fabric and textile decor after fairs", "rolls", (0.1, 2), (0, 60)
            ),
            _PALLETS,
            _FILM,
        ),
        weight=0.7,
    ),
    Sector(
        "accommodation",
        "55",
        "accommodation",
        {"BG": "Hotel", "SE": "Hotell"},
        offers=(
            Material("200111", "Worn bed linen and towels", "bales", (0.1, 1.5), (0, 80)),
            Material("150107", "Glass bottles, sorted by colour", "loose", (0.5, 4), (10, 50)),
        ),
        weight=0.8,
    ),
    Sector(
        "construction",
        "43",
        "construction",
        {"BG": "Stroy", "SE": "Bygg"},
        offers=(
            Material(
                "170201", "Clean timber offcuts from building sites", "loose", (1, 12), (-20, 30)
            ),
            Material("170405", "Reinforcement steel offcuts", "loose", (0.5, 8), (120, 260)),
            Material("170107", "Crushed concrete and brick", "loose", (5, 40), (-5, 10)),
        ),
        needs=(Need("170107", "Crushed concrete for sub-base fill", (10, 60), (5, 25), (20, 80)),),
        weight=1.0,
    ),
    Sector(
        "wood",
        "16",
        "wood products",
        {"BG": "Darvo", "SE": "Trä"},
        needs=(
            Need(
                "150103",
                "Wood for chipboard",
                (2, 20),
                (10, 60),
                (80, 300),
                accepts=("170201", "200138", "191207"),
            ),
        ),
        weight=0.8,
    ),
    Sector(
        "recycling",
        "38",
        "recycling and scrap",
        {"BG": "Recycling", "SE": "Återvinning"},
        needs=(
            Need("170405", "Steel scrap", (1, 20), (150, 300), (100, 400), accepts=("150104",)),
            Need("150107", "Glass cullet", (2, 20), (20, 70), (100, 400), accepts=("200102",)),
            Need(
                "150101",
                "Cardboard for pulping",
                (3, 25),
                (40, 110),
                (100, 400),
                accepts=("200101", "191201"),
            ),
        ),
        weight=0.9,
    ),
    # The seeds' chapter 19 and 20 flows: what a town collects separately, what a sorting plant
    # and a sewage works put out, and who takes it (wipers makers, textile sorters, composters;
    # the paper, plastics and wood buyers above accept the collected and sorted grades of their
    # material, each of their own code's family).
    Sector(
        "municipal",
        "38.11",
        "municipal collection and recycling centres",
        {"BG": "Komunalni", "SE": "Renhållning"},
        offers=(
            Material(
                "200101", "Paper and cardboard from kerbside collection", "bales", (2, 15), (10, 70)
            ),
            Material(
                "200139",
                "Mixed plastics from the recycling centre, baled",
                "bales",
                (1, 8),
                (-30, 40),
            ),
            Material(
                "200138", "Untreated wood from the recycling centre", "loose", (2, 20), (-25, 15)
            ),
            Material(
                "200111",
                "Clothes and household textiles from collection bins",
                "bales",
                (0.5, 6),
                (0, 120),
            ),
        ),
        weight=0.4,
    ),
    Sector(
        "sorting",
        "38.32",
        "sorting plants",
        {"BG": "Sortirane", "SE": "Sortering"},
        offers=(
            Material(
                "191204", "PE and PP from the sorting line, baled", "bales", (2, 15), (20, 150)
            ),
            Material(
                "191201", "Paper and cardboard from the sorting line", "bales", (3, 20), (15, 80)
            ),
            Material(
                "191207", "Wood from sorting, untreated, shredded", "loose", (3, 25), (-20, 20)
            ),
        ),
        weight=0.3,
    ),
    Sector(
        "textile_recovery",
        "13.99",
        "textile sorting and wiping cloths",
        {"BG": "Rekotekstil", "SE": "Textilsortering"},
        offers=(
            Material(
                "191208", "Textile fibres from sorting, unfit for reuse", "bales", (0.5, 5), (0, 60)
            ),
        ),
        needs=(
            Need(
                "200111",
                "Used clothes and linen for sorting and resale",
                (1, 10),
                (40, 200),
                (80, 400),
                accepts=("200110",),
            ),
            Need(
                "200111",
                "Cotton linen and towels for wiping cloths",
                (0.3, 4),
                (30, 150),
                (50, 250),
            ),
        ),
        weight=0.4,
    ),
    Sector(
        "water",
        "37",
        "water and sewage works",
        {"BG": "ViK", "SE": "Vatten"},
        offers=(
            Material("190805", "Digested sewage sludge, dewatered", "sludge", (5, 30), (-35, -5)),
        ),
        weight=0.25,
    ),
    Sector(
        "composting",
        "38.21",
        "composting and soil making",
        {"BG": "Kompost", "SE": "Kompost"},
        needs=(
            Need("190805", "Sewage sludge for composting into soil", (5, 40), (-40, 0), (20, 120)),
        ),
        weight=0.25,
    ),
)

Role = Literal["sme", "logistics"]


def allot(smes: int) -> list[int]:
    """How many of `smes` SMEs each sector of SECTORS gets, in proportion to its weight (largest
    remainders; a tie goes to the sector listed first)."""
    total = sum(s.weight for s in SECTORS)
    shares = [smes * s.weight / total for s in SECTORS]
    counts = [int(x) for x in shares]
    order = sorted(range(len(SECTORS)), key=lambda i: (counts[i] - shares[i], i))
    for i in order[: smes - sum(counts)]:
        counts[i] += 1
    return counts


@dataclass(frozen=True, slots=True)
class Firm:
    index: int
    name: str
    role: Role
    town: Town
    sector: Sector | None = None
    # Logistics firms: the radius around their depot, capacity and fleet.
    radius_km: float = 0.0
    capacity_t: float = 0.0
    vehicles: tuple[str, ...] = ()


_SUFFIX = {"BG": ("OOD", "EOOD", "AD"), "SE": ("AB", "AB", "HB")}
_FAMILY = {
    "BG": ("Petrov", "Ivanova", "Dimitrov", "Georgieva", "Nikolov", "Stoyanov", "Todorova"),
    "SE": ("Berg", "Lind", "Holm", "Ek", "Sjö", "Dahl", "Strand"),
}


@dataclass(frozen=True, slots=True)
class Action:
    """One thing a firm does, `at_s` seconds after the start."""

    at_s: float
    kind: Literal["offer", "request", "withdraw"]
    firm: int
    body: dict[str, Any] = field(default_factory=dict)
    pick: float = 0.0  # for withdrawals: which of the firm's open listings (0..1)


class Market:
    def __init__(self, seed: int, smes: int = 60, carriers: int = 6) -> None:
        if not 2 <= smes <= 100_000 or not 0 <= carriers <= 1000:
            raise ValueError("smes must be 2..100000 and carriers 0..1000")
        self.seed = seed
        rng = random.Random(seed)
        # Each sector's count of SMEs follows its weight (the draw decides only who sits where),
        # so that the mix of flows is the same at every seed.
        sectors = [s for s, n in zip(SECTORS, allot(smes), strict=True) for _ in range(n)]
        rng.shuffle(sectors)
        firms: list[Firm] = []
        for i, sector in enumerate(sectors):
            town = rng.choice(TOWNS)
            name = (
                f"{town.name} {sector.word[town.country]} {rng.choice(_FAMILY[town.country])} "
                f"{rng.choice(_SUFFIX[town.country])}"
            )
            firms.append(Firm(i, name, "sme", town, sector))
        for j in range(carriers):
            town = TOWNS[(j * 7 + seed) % len(TOWNS)]
            firms.append(
                Firm(
                    smes + j,
                    f"{town.name} {'Transport' if town.country == 'BG' else 'Åkeri'} "
                    f"{rng.choice(_FAMILY[town.country])} {rng.choice(_SUFFIX[town.country])}",
                    "logistics",
                    town,
                    radius_km=rng.choice((250.0, 350.0, 450.0)),
                    capacity_t=rng.choice((12.0, 24.0, 40.0)),
                    vehicles=rng.choice(
                        (
                            ("rigid_truck",),
                            ("articulated_truck",),
                            ("rigid_truck", "articulated_truck"),
                        )
                    ),
                )
            )
        self.firms = firms
        self.sellers = [f for f in firms if f.sector and f.sector.offers]
        self.buyers = [f for f in firms if f.sector and f.sector.needs]
        if not self.sellers or not self.buyers:
            raise ValueError("too few SMEs for both sellers and buyers; raise --smes")

    def actions(self, rate: float, start: datetime) -> Iterator[Action]:
        """An endless Poisson stream of actions at `rate` per second (the caller bounds it)."""
        if rate <= 0:
            raise ValueError("rate must be positive")
        rng = random.Random(self.seed * 7919 + 1)
        at = 0.0
        while True:
            at += rng.expovariate(rate)
            roll = rng.random()
            if roll < 0.45:
                firm = rng.choice(self.sellers)
                yield Action(at, "offer", firm.index, self._offer(rng, firm, start, at))
            elif roll < 0.92:
                firm = rng.choice(self.buyers)
                yield Action(at, "request", firm.index, self._request(rng, firm, start, at))
            else:
                firm = rng.choice(self.sellers + self.buyers)
                yield Action(at, "withdraw", firm.index, pick=rng.random())

    def _price(self, town: Town, eur: float) -> float:
        return round(eur * (SEK_PER_EUR if town.currency == "SEK" else 1.0), 2)

    def _spot(self, rng: random.Random, town: Town) -> dict[str, Any]:
        # Within a few km of the town centre.
        return {
            "lat": round(town.lat + rng.uniform(-0.04, 0.04), 5),
            "lon": round(town.lon + rng.uniform(-0.06, 0.06), 5),
            "region": town.region,
        }

    def _offer(self, rng: random.Random, firm: Firm, start: datetime, at: float) -> dict[str, Any]:
        assert firm.sector is not None
        m = rng.choice(firm.sector.offers)
        begins = start + timedelta(seconds=at) + timedelta(days=rng.randint(0, 7))
        qty = round(rng.uniform(*m.qty_t), 2)
        terms: dict[str, Any] = {
            "quantity": {"amount": qty, "unit": "t"},
            "price": {
                "amount": self._price(firm.town, rng.uniform(*m.price_eur_t)),
                "currency": firm.town.currency,
            },
            "available": {
                "start": _iso(begins),
                "end": _iso(begins + timedelta(days=rng.randint(30, 90))),
            },
        }
        if qty > 2 and rng.random() < 0.3:
            terms["min_lot"] = {"amount": round(qty / 4, 2), "unit": "t"}
        material: dict[str, Any] = {"code": m.code, "description": m.description, "form": m.form}
        body: dict[str, Any] = {
            "material": material,
            "location": self._spot(rng, firm.town),
            "terms": terms,
        }
        # Recurring flows and stated qualities (#11) from a stream of their own, so that the
        # main stream, and every market built before they existed, stays as it was.
        extra = random.Random(f"{self.seed}/offer/{at!r}")
        if extra.random() < 0.2:
            terms["recurrence"] = _recurrence(extra, begins)
        if extra.random() < 0.4:
            material["recycled_content_pct"] = round(extra.uniform(20, 100))
            material["contamination_pct"] = round(extra.uniform(0, 8), 1)
        if extra.random() < 0.25:
            body["certifications"] = [extra.choice(CERTIFICATIONS)]
        return body

    def _request(
        self, rng: random.Random, firm: Firm, start: datetime, at: float
    ) -> dict[str, Any]:
        assert firm.sector is not None
        n = rng.choice(firm.sector.needs)
        begins = start + timedelta(seconds=at) + timedelta(days=rng.randint(3, 14))
        body: dict[str, Any] = {
            "material": {"code": n.code, "description": n.description},
            "location": self._spot(rng, firm.town),
            "terms": {
                "quantity": {"amount": round(rng.uniform(*n.qty_t), 2), "unit": "t"},
                "max_price": {
                    "amount": self._price(firm.town, rng.uniform(*n.max_price_eur_t)),
                    "currency": firm.town.currency,
                },
                "wanted": {
                    "start": _iso(begins),
                    "end": _iso(begins + timedelta(days=rng.randint(30, 120))),
                },
                "max_distance_km": round(rng.uniform(*n.max_km)),
            },
        }
        if n.accepts:
            body["accepts_codes"] = list(n.accepts)
        extra = random.Random(f"{self.seed}/request/{at!r}")
        if extra.random() < 0.15:
            body["terms"]["recurrence"] = _recurrence(extra, begins)
        if extra.random() < 0.15:
            # A procurer's specification: a floor on recycled content or a certificate, and
            # weights leaning to price or to CO2e.
            weight = round(extra.uniform(0.2, 0.8), 2)
            spec: dict[str, Any] = {"weight_price": weight, "weight_co2e": round(1 - weight, 2)}
            if extra.random() < 0.5:
                spec["min_recycled_content_pct"] = extra.choice((30, 50, 70))
            else:
                spec["certifications"] = [extra.choice(CERTIFICATIONS)]
            body["terms"]["specification"] = spec
        return body

    def answers(self, match_id: str, partner_id: str) -> tuple[bool, float]:
        """Whether this partner accepts this proposal, and after how many seconds (seeded)."""
        digest = hashlib.sha256(f"{self.seed}/{match_id}/{partner_id}".encode()).digest()
        roll = int.from_bytes(digest[:4], "big") / 2**32
        delay = 0.5 + int.from_bytes(digest[4:6], "big") / 2**16 * 3.5
        return roll < 0.8, delay

    def capabilities(self, firm: Firm) -> dict[str, Any]:
        return {
            "depots": [
                {
                    "location": {
                        "lat": firm.town.lat,
                        "lon": firm.town.lon,
                        "region": firm.town.region,
                    },
                    "radius_km": firm.radius_km,
                }
            ],
            "capacity_t": firm.capacity_t,
            "vehicle_types": list(firm.vehicles),
        }

    def quote(
        self, firm: Firm, job: dict[str, Any], kg_per_tkm: dict[str, float], per_tkm_eur: float
    ) -> dict[str, Any] | None:
        """The carrier's bid on a job it can carry, or None when the job does not fit it."""
        pickup, delivery = job["pickup"], job["delivery"]
        weight = float(job["weight_t"])
        if weight > firm.capacity_t:
            return None
        for end in (pickup, delivery):
            if distance_km(firm.town.lat, firm.town.lon, end["lat"], end["lon"]) > firm.radius_km:
                return None  # both ends must lie in its coverage
        km = distance_km(pickup["lat"], pickup["lon"], delivery["lat"], delivery["lon"]) * 1.25
        digest = hashlib.sha256(f"{self.seed}/{job['job_id']}/{firm.index}".encode()).digest()
        markup = 0.8 + digest[0] / 255 * 0.7
        vehicle = firm.vehicles[digest[1] % len(firm.vehicles)]
        currency = "SEK" if str(pickup.get("region") or "").startswith("SE") else "EUR"
        rate = per_tkm_eur * (SEK_PER_EUR if currency == "SEK" else 1.0)
        return {
            "price": {
                "amount": round(max(km, 5) * weight * rate * markup + 25, 2),
                "currency": currency,
            },
            "vehicle": vehicle,
            "co2e_kg": round(km * weight * kg_per_tkm.get(vehicle, 0.1), 3),
            "pickup_at": job["pickup_window"]["start"],
        }


CERTIFICATIONS = ("EN 15343", "ISCC PLUS", "ISO 14001", "RecyClass")


def _recurrence(rng: random.Random, begins: datetime) -> dict[str, Any]:
    period = rng.choice(("week", "week", "month", "quarter"))
    out: dict[str, Any] = {"period": period, "starts": begins.date().isoformat()}
    if rng.random() < 0.5:
        out["ends"] = (begins + timedelta(days=rng.randint(60, 365))).date().isoformat()
    return out


def _iso(t: datetime) -> str:
    return t.replace(microsecond=0).isoformat().replace("+00:00", "Z")
