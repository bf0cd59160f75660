"""The exchange's impact KPIs, read from the analytics facts (consumers/analytics.py), for any
period, sliced by day, region, material chapter or sector, for everyone or for one SME.

The same queries serve the dashboard and the API (live facts) and `marketplace report` (facts
rebuilt from the audit log in temporary tables of the same names, which PostgreSQL reads first).

Definitions:
- offers, requests: listings posted in the period; tonnes offered: their mass.
- proposals: matches proposed in the period.
- confirmed, tonnes exchanged (= diverted from disposal), CO2e saved: matches confirmed in the
  period; CO2e saved is the saving by reuse (virgin material and disposal avoided) minus the
  transport's CO2e, the winning carrier's figure when the job was awarded, else the estimate.
  A standing agreement (#11) counts as one confirmed match; its tonnes and CO2e count per
  delivery, in the period each delivery is scheduled (with that delivery's job's award).
- acceptance rate: confirmed / (confirmed + declined + expired + cancelled) among the proposals
  resolved in the period.
- time to first proposal / to confirmation: median seconds from a listing's posting (listings
  posted in the period) to its first proposal / its first confirmed match.
- jobs, bids, awarded, failed: transport jobs posted in the period, live quotes on them, and
  their auctions' outcomes.
- deliveries, response rate (#11): deliveries confirmed in the period, and the share of the
  parties asked for feedback on them (seller, buyer, carrier) who answered before the period's
  end. Sliced like matches: the offer's region, the seller's sector.
- feedback answers, mean rating, low ratings (#11): answers given in the period, their mean
  rating (1-5) and how many rated 1 or 2. Sliced by the answering partner's own region and
  sector; for one SME, its own answers only (what others said of it stays with the association).
Only facts dated before the period's end count, so the figures for a closed period never change.
Times are event times: a proposal made the moment a listing arrives is 0 s after it."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from marketplace.db import Conn

Slice = Literal["total", "minute", "hour", "day", "month", "region", "chapter", "sector"]
SLICES: tuple[Slice, ...] = (
    "total",
    "minute",
    "hour",
    "day",
    "month",
    "region",
    "chapter",
    "sector",
)


def _slice(kind: Slice, time: str, region: str, code: str, sector: str) -> str:
    """A whitelisted SQL expression for the slice, over the given column expressions."""
    return {
        "total": "'all'",
        "minute": f"to_char({time} AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI')",
        "hour": f"to_char({time} AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24')",
        "day": f"to_char({time} AT TIME ZONE 'UTC', 'YYYY-MM-DD')",
        "month": f"to_char({time} AT TIME ZONE 'UTC', 'YYYY-MM')",
        "region": f"coalesce({region}, 'unknown')",
        "chapter": f"left({code}, 2)",
        "sector": f"coalesce({sector}, 'unknown')",
    }[kind]


def _listings_sql(kind: Slice) -> str:
    s = _slice(kind, "l.posted_at", "l.region", "l.code", "p.sector")
    return f"""
SELECT {s} AS slice,
       count(*) FILTER (WHERE l.kind = 'offer') AS offers,
       count(*) FILTER (WHERE l.kind = 'request') AS requests,
       coalesce(sum(l.tonnes) FILTER (WHERE l.kind = 'offer'), 0) AS tonnes_offered,
       percentile_cont(0.5) WITHIN GROUP
           (ORDER BY extract(epoch FROM f.first_proposal - l.posted_at))
           AS median_s_to_first_proposal,
       percentile_cont(0.5) WITHIN GROUP
           (ORDER BY extract(epoch FROM f.first_confirmed - l.posted_at))
           AS median_s_to_confirmation
FROM analytics_listings l
LEFT JOIN analytics_partners p ON p.partner_id = l.owner_id
CROSS JOIN LATERAL (
    SELECT min(m.proposed_at) AS first_proposal,
           min(m.resolved_at) FILTER (WHERE m.status = 'confirmed' AND m.resolved_at < $2)
               AS first_confirmed
    FROM analytics_matches m
    WHERE ((l.kind = 'offer' AND m.offer_id = l.listing_id)
        OR (l.kind = 'request' AND m.request_id = l.listing_id))
      AND m.proposed_at < $2
) f
WHERE l.posted_at >= $1 AND l.posted_at < $2 AND ($3::text IS NULL OR l.owner_id = $3)
GROUP BY 1 ORDER BY 1"""  # noqa: S608 - the slice comes from the whitelist above


# The matches, and each scheduled delivery of a standing agreement as a row of its own dated
# when it was scheduled, with its share of the agreement's per-period figures and its own job.
_OUTCOMES = """(
    SELECT x.match_id, x.offer_id, x.seller_id, x.buyer_id, x.code, x.status, x.resolved_at,
           x.tonnes, x.saved_kg, x.est_transport_kg, NULL::text AS job_id, false AS delivery,
           x.status = 'confirmed' AND NOT x.standing AS counts
    FROM analytics_matches x
    UNION ALL
    SELECT x.match_id, x.offer_id, x.seller_id, x.buyer_id, x.code, x.status, d.scheduled_at,
           d.tonnes, x.saved_kg * d.tonnes / x.tonnes, x.est_transport_kg * d.tonnes / x.tonnes,
           d.job_id, true, true
    FROM analytics_scheduled d JOIN analytics_matches x ON x.match_id = d.match_id
    WHERE x.tonnes > 0
)"""


def _matches_sql(kind: Slice, by: Literal["proposed_at", "resolved_at"]) -> str:
    s = _slice(kind, f"m.{by}", "o.region", "m.code", "p.sector")
    if by == "proposed_at":
        measures = "count(*) AS proposals"
        source = "(SELECT x.*, NULL::text AS job_id FROM analytics_matches x)"
    else:
        # Confirmed and resolved count matches; tonnes and CO2e count one-off matches at their
        # confirmation and a standing agreement's deliveries as they are scheduled.
        measures = """count(*) FILTER (WHERE m.status = 'confirmed' AND NOT m.delivery)
           AS confirmed,
       count(*) FILTER (WHERE NOT m.delivery) AS resolved,
       coalesce(sum(m.tonnes) FILTER (WHERE m.counts), 0) AS tonnes_exchanged,
       coalesce(sum(m.saved_kg - coalesce(a.co2e_kg, m.est_transport_kg))
           FILTER (WHERE m.counts), 0) AS co2e_saved_kg,
       count(a.co2e_kg) FILTER (WHERE m.counts) AS with_actual_transport,
       count(*) FILTER (WHERE m.counts AND m.saved_kg IS NULL) AS co2e_unknown"""
        source = _OUTCOMES
    return f"""
SELECT {s} AS slice, {measures}
FROM {source} m
LEFT JOIN analytics_listings o ON o.listing_id = m.offer_id
LEFT JOIN analytics_partners p ON p.partner_id = m.seller_id
LEFT JOIN LATERAL (
    SELECT aw.co2e_kg FROM analytics_jobs j
    JOIN analytics_awards aw ON aw.job_id = j.job_id AND NOT aw.failed AND aw.decided_at < $2
    WHERE j.match_id = m.match_id AND (m.job_id IS NULL OR j.job_id = m.job_id)
    ORDER BY aw.decided_at LIMIT 1
) a ON true
WHERE m.{by} >= $1 AND m.{by} < $2
  AND ($3::text IS NULL OR m.seller_id = $3 OR m.buyer_id = $3)
GROUP BY 1 ORDER BY 1"""  # noqa: S608 - slice and column come from the whitelists above


def _jobs_sql(kind: Slice) -> str:
    s = _slice(kind, "j.posted_at", "o.region", "m.code", "p.sector")
    return f"""
SELECT {s} AS slice,
       count(*) AS jobs,
       coalesce(sum(q.bids), 0) AS bids,
       count(*) FILTER (WHERE aw.failed = false) AS awarded,
       count(*) FILTER (WHERE aw.failed) AS failed
FROM analytics_jobs j
LEFT JOIN analytics_matches m ON m.match_id = j.match_id
LEFT JOIN analytics_listings o ON o.listing_id = m.offer_id
LEFT JOIN analytics_partners p ON p.partner_id = m.seller_id
LEFT JOIN analytics_awards aw ON aw.job_id = j.job_id AND aw.decided_at < $2
CROSS JOIN LATERAL (
    SELECT count(*) AS bids FROM analytics_quotes qq
    WHERE qq.job_id = j.job_id AND qq.submitted_at < $2
      AND (qq.withdrawn_at IS NULL OR qq.withdrawn_at >= $2)
) q
WHERE j.posted_at >= $1 AND j.posted_at < $2
  AND ($3::text IS NULL OR m.seller_id = $3 OR m.buyer_id = $3)
GROUP BY 1 ORDER BY 1"""  # noqa: S608 - the slice comes from the whitelist above


def _deliveries_sql(kind: Slice) -> str:
    s = _slice(kind, "d.delivered_at", "o.region", "coalesce(m.code, 'un')", "p.sector")
    return f"""
SELECT {s} AS slice,
       count(*) AS deliveries,
       coalesce(sum(d.parties), 0) AS feedback_asked,
       coalesce(sum(a.answered), 0) AS feedback_answered
FROM analytics_deliveries d
LEFT JOIN analytics_matches m ON m.match_id = d.match_id
LEFT JOIN analytics_listings o ON o.listing_id = m.offer_id
LEFT JOIN analytics_partners p ON p.partner_id = m.seller_id
CROSS JOIN LATERAL (
    SELECT count(*) AS answered FROM analytics_feedback f
    WHERE f.delivery_key = d.delivery_key AND f.given_at < $2
) a
WHERE d.delivered_at >= $1 AND d.delivered_at < $2
  AND ($3::text IS NULL OR m.seller_id = $3 OR m.buyer_id = $3)
GROUP BY 1 ORDER BY 1"""  # noqa: S608 - the slice comes from the whitelist above


def _feedback_sql(kind: Slice) -> str:
    s = _slice(kind, "f.given_at", "p.region", "coalesce(m.code, 'un')", "p.sector")
    return f"""
SELECT {s} AS slice,
       count(*) AS feedback_answers,
       avg(f.rating) AS mean_rating,
       count(*) FILTER (WHERE f.rating <= 2) AS low_ratings
FROM analytics_feedback f
LEFT JOIN analytics_partners p ON p.partner_id = f.partner_id
LEFT JOIN analytics_matches m ON m.match_id = f.match_id
WHERE f.given_at >= $1 AND f.given_at < $2 AND ($3::text IS NULL OR f.partner_id = $3)
GROUP BY 1 ORDER BY 1"""  # noqa: S608 - the slice comes from the whitelist above


def _rows(records: list[Any]) -> list[dict[str, Any]]:
    """Plain rows; sums rounded to 6 decimals, so that the order in which PostgreSQL adds the
    same numbers (live tables or the report's) never shows in the last bit."""
    out = []
    for r in records:
        row = dict(r)
        for k, v in row.items():
            if v is not None and not isinstance(v, str | int):
                row[k] = round(float(v), 6)
        out.append(row)
    return out


async def kpis(
    conn: Conn,
    since: datetime,
    until: datetime,
    kind: Slice = "total",
    partner_id: str | None = None,
) -> dict[str, list[dict[str, Any]]]:
    """Every KPI table for [since, until), one row per slice value."""
    if kind not in SLICES:
        raise ValueError(f"slice {kind!r}: one of {', '.join(SLICES)}")
    args = (since, until, partner_id)
    return {
        "listings": _rows(await conn.fetch(_listings_sql(kind), *args)),
        "proposals": _rows(await conn.fetch(_matches_sql(kind, "proposed_at"), *args)),
        "outcomes": _rows(await conn.fetch(_matches_sql(kind, "resolved_at"), *args)),
        "jobs": _rows(await conn.fetch(_jobs_sql(kind), *args)),
        **await feedback_kpis(conn, since, until, kind, partner_id),
    }


async def feedback_kpis(
    conn: Conn,
    since: datetime,
    until: datetime,
    kind: Slice = "total",
    partner_id: str | None = None,
) -> dict[str, list[dict[str, Any]]]:
    """The two feedback tables (#11) of `kpis`: deliveries and feedback answers."""
    if kind not in SLICES:
        raise ValueError(f"slice {kind!r}: one of {', '.join(SLICES)}")
    args = (since, until, partner_id)
    return {
        "deliveries": _rows(await conn.fetch(_deliveries_sql(kind), *args)),
        "feedback": _rows(await conn.fetch(_feedback_sql(kind), *args)),
    }


async def feedback_reasons(
    conn: Conn, since: datetime, until: datetime, partner_id: str | None = None
) -> list[dict[str, Any]]:
    """Feedback given in [since, until) by the reason that mattered most: answers, mean rating,
    low ratings (1 or 2)."""
    return _rows(
        await conn.fetch(
            "SELECT f.reason, count(*) AS answers, avg(f.rating) AS mean_rating,"
            " count(*) FILTER (WHERE f.rating <= 2) AS low_ratings FROM analytics_feedback f"
            " WHERE f.given_at >= $1 AND f.given_at < $2"
            " AND ($3::text IS NULL OR f.partner_id = $3) GROUP BY 1 ORDER BY 1",
            since,
            until,
            partner_id,
        )
    )


HEADLINES = (
    "offers",
    "requests",
    "tonnes_offered",
    "proposals",
    "confirmed",
    "acceptance_rate",
    "tonnes_exchanged",
    "co2e_saved_kg",
    "co2e_unknown",
    "median_s_to_first_proposal",
    "median_s_to_confirmation",
    "jobs",
    "bids",
    "awarded",
    "failed",
    "deliveries",
    "response_rate",
    "feedback_answers",
    "mean_rating",
    "low_ratings",
)


def headline(tables: dict[str, list[dict[str, Any]]]) -> dict[str, float | None]:
    """The 'total' slice's tables as one flat set of figures (with the acceptance rate)."""
    flat: dict[str, Any] = {}
    for rows in tables.values():
        for row in rows:
            flat.update({k: v for k, v in row.items() if k != "slice"})
    resolved = flat.get("resolved") or 0
    flat["acceptance_rate"] = (flat.get("confirmed", 0) / resolved) if resolved else None
    asked = flat.get("feedback_asked") or 0
    flat["response_rate"] = (flat.get("feedback_answered", 0) / asked) if asked else None
    return {k: flat.get(k, 0 if k not in _MAYBE else None) for k in HEADLINES}


_MAYBE = {
    "acceptance_rate",
    "median_s_to_first_proposal",
    "median_s_to_confirmation",
    "response_rate",
    "mean_rating",
}


async def flows(
    conn: Conn, since: datetime, until: datetime, partner_id: str | None = None, limit: int = 500
) -> list[dict[str, Any]]:
    """Confirmed matches in the period with where the material went from and to, for the map."""
    rows = await conn.fetch(
        "SELECT m.match_id, m.code, m.tonnes, m.resolved_at, o.lat AS from_lat,"
        " o.lon AS from_lon, o.region AS from_region, r.lat AS to_lat, r.lon AS to_lon,"
        " r.region AS to_region FROM analytics_matches m"
        " JOIN analytics_listings o ON o.listing_id = m.offer_id"
        " JOIN analytics_listings r ON r.listing_id = m.request_id"
        " WHERE m.status = 'confirmed' AND m.resolved_at >= $1 AND m.resolved_at < $2"
        " AND ($3::text IS NULL OR m.seller_id = $3 OR m.buyer_id = $3)"
        " ORDER BY m.resolved_at DESC LIMIT $4",
        since,
        until,
        partner_id,
        limit,
    )
    return [{**dict(r), "resolved_at": r["resolved_at"].isoformat()} for r in rows]
