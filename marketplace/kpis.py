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
  Once the carrier has confirmed the delivery of a one-off match (#22, before the period's end),
  its tonnes are the weight delivered (the latest confirmation), not the planned, and its
  saving by reuse is scaled to that weight.
  A standing agreement (#11) counts as one confirmed match; its tonnes and CO2e count per
  delivery, in the period each delivery is scheduled (with that delivery's job's award); once
  the carrier of a delivery's job has confirmed it (#22 item 3, before the period's end), its
  tonnes are the weight delivered and its saving by reuse is scaled to it, as for a one-off.
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

import csv
import html
import io
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from marketplace.db import Conn
from marketplace.pdf import Document

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
           coalesce(dv.weight_t, x.tonnes) AS tonnes,
           CASE WHEN dv.weight_t IS NOT NULL AND x.tonnes > 0
                THEN x.saved_kg * dv.weight_t / x.tonnes ELSE x.saved_kg END AS saved_kg,
           x.est_transport_kg, NULL::text AS job_id, false AS delivery,
           x.status = 'confirmed' AND NOT x.standing AS counts
    FROM analytics_matches x
    LEFT JOIN LATERAL (
        SELECT d.weight_t FROM analytics_delivered d
        WHERE d.match_id = x.match_id AND d.delivered_at < $2
        ORDER BY d.delivered_at DESC, d.event_id DESC LIMIT 1
    ) dv ON NOT x.standing
    UNION ALL
    SELECT x.match_id, x.offer_id, x.seller_id, x.buyer_id, x.code, x.status, d.scheduled_at,
           coalesce(dv.weight_t, d.tonnes), x.saved_kg * coalesce(dv.weight_t, d.tonnes) / x.tonnes,
           x.est_transport_kg * d.tonnes / x.tonnes, d.job_id, true, true
    FROM analytics_scheduled d JOIN analytics_matches x ON x.match_id = d.match_id
    LEFT JOIN LATERAL (
        SELECT v.weight_t FROM analytics_delivered v
        WHERE v.job_id = d.job_id AND v.delivered_at < $2
        ORDER BY v.delivered_at DESC, v.event_id DESC LIMIT 1
    ) dv ON true
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


# --- the period report: its figures as CSV, HTML or PDF ------------------------------------
# `marketplace report` fills it from facts rebuilt from the audit log (marketplace/app/report.py);
# the association's pages from the live facts (rebuilt=False).

REPORT_SLICES: tuple[Slice, ...] = ("day", "region", "chapter", "sector")
LABELS = {
    "offers": "Offers posted",
    "requests": "Requests posted",
    "tonnes_offered": "Tonnes offered",
    "proposals": "Match proposals",
    "confirmed": "Matches confirmed",
    "acceptance_rate": "Acceptance rate",
    "tonnes_exchanged": "Tonnes exchanged (diverted from disposal)",
    "co2e_saved_kg": "CO2e saved, net of transport (kg)",
    "co2e_unknown": "Trades whose CO2e is unknown (no sourced factor; not in the CO2e figure)",
    "median_s_to_first_proposal": "Median time to first proposal (s)",
    "median_s_to_confirmation": "Median time to confirmation (s)",
    "jobs": "Transport jobs",
    "bids": "Bids on them",
    "awarded": "Jobs awarded",
    "failed": "Auctions failed",
    "deliveries": "Deliveries confirmed",
    "response_rate": "Feedback response rate",
    "feedback_answers": "Feedback answers",
    "mean_rating": "Mean rating (1-5)",
    "low_ratings": "Low ratings (1 or 2)",
}
# Partner feedback (#11) by region and by sector: of the answering partner, see marketplace/kpis.
FEEDBACK_SLICES: tuple[Slice, ...] = ("region", "sector")
FEEDBACK_COLUMNS = ("deliveries", "feedback_answers", "mean_rating", "low_ratings")


@dataclass
class PeriodReport:
    since: datetime
    until: datetime
    events: int = 0
    audit_intact: bool = True
    audit_findings: int = 0
    headline: dict[str, float | None] = field(default_factory=dict)
    slices: dict[str, dict[str, list[dict[str, Any]]]] = field(default_factory=dict)
    reasons: list[dict[str, Any]] = field(default_factory=list)
    # False: the live figures of the analytics read model, not facts rebuilt from the log.
    rebuilt: bool = True


def fmt(key: str, value: float | None) -> str:
    if value is None:
        return "n/a"
    if key in ("acceptance_rate", "response_rate"):
        return f"{value:.0%}"
    if key == "mean_rating":
        return f"{value:.2f}"
    if key.startswith(("tonnes", "co2e")):
        return f"{value:,.1f}"
    if key.startswith("median_s"):
        return f"{value:,.0f}"
    return f"{value:,.0f}"


def _by_slice(report: PeriodReport, kind: str) -> list[dict[str, Any]]:
    """One row per slice value, the four KPI tables merged."""
    merged: dict[str, dict[str, Any]] = {}
    for rows in report.slices[kind].values():
        for row in rows:
            merged.setdefault(str(row["slice"]), {}).update(row)
    return [merged[k] for k in sorted(merged)]


COLUMNS = (
    "offers",
    "requests",
    "proposals",
    "confirmed",
    "tonnes_exchanged",
    "co2e_saved_kg",
    "jobs",
)


def to_csv(report: PeriodReport) -> bytes:
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(["section", "slice", "metric", "value"])
    for key in HEADLINES:
        value = report.headline.get(key)
        w.writerow(["headline", "all", key, "" if value is None else round(float(value), 6)])
    for kind in REPORT_SLICES:
        for row in _by_slice(report, kind):
            for key in COLUMNS + FEEDBACK_COLUMNS:
                if key in row and row[key] is not None:
                    w.writerow([kind, row["slice"], key, round(float(row[key]), 6)])
    for row in report.reasons:
        for key in ("answers", "mean_rating", "low_ratings"):
            w.writerow(["feedback_reason", row["reason"], key, round(float(row[key]), 6)])
    return out.getvalue().encode()


def _feedback_rows(report: PeriodReport, kind: str) -> list[dict[str, Any]]:
    """The slice's rows that have deliveries or feedback."""
    return [
        r
        for r in _by_slice(report, kind)
        if r.get("deliveries") is not None or r.get("feedback_answers") is not None
    ]


def _title(report: PeriodReport) -> str:
    return (
        f"Circular materials exchange: report for {report.since.date().isoformat()}"
        f" to {report.until.date().isoformat()}"
    )


def _provenance(report: PeriodReport) -> str:
    state = (
        "verified intact"
        if report.audit_intact
        else f"NOT intact ({report.audit_findings} problems: run `marketplace audit verify`)"
    )
    source = (
        f"Rebuilt from {report.events:,} audited events"
        if report.rebuilt
        else f"From the exchange's live figures ({report.events:,} audited events in the period)"
    )
    return (
        f"{source}; the audit log for the period is {state}. "
        f"Generated {datetime.now(UTC).replace(microsecond=0).isoformat()}."
    )


def _svg_bars(rows: list[tuple[str, float]], unit: str) -> str:
    top = max((v for _, v in rows), default=0.0) or 1.0
    parts = []
    for i, (label, value) in enumerate(rows):
        y = 6 + i * 22
        w = max(0.0, value) / top * 320
        parts.append(
            f'<text x="0" y="{y + 13}">{html.escape(label)}</text>'
            f'<rect x="140" y="{y}" width="{w:.1f}" height="16" fill="#2a7"/>'
            f'<text x="{146 + w:.1f}" y="{y + 13}">{value:,.1f} {html.escape(unit)}</text>'
        )
    height = 12 + len(rows) * 22
    return f'<svg width="620" height="{height}" font-size="12">{"".join(parts)}</svg>'


def to_html(report: PeriodReport) -> bytes:
    h = html.escape
    head = "".join(
        f"<tr><th>{h(LABELS[k])}</th><td>{fmt(k, report.headline.get(k))}</td></tr>"
        for k in HEADLINES
    )
    sections = []
    for kind in REPORT_SLICES:
        rows = _by_slice(report, kind)
        body = "".join(
            "<tr><td>"
            + h(str(r["slice"]))
            + "</td>"
            + "".join(f"<td>{fmt(c, r.get(c))}</td>" for c in COLUMNS)
            + "</tr>"
            for r in rows
        )
        chart = _svg_bars(
            [(str(r["slice"]), float(r.get("tonnes_exchanged") or 0)) for r in rows], "t"
        )
        sections.append(
            f"<h2>By {h(kind)}</h2><table><tr><th>{h(kind)}</th>"
            + "".join(f"<th>{h(LABELS[c])}</th>" for c in COLUMNS)
            + f"</tr>{body}</table><p>Tonnes exchanged by {h(kind)}:</p>{chart}"
        )
    feedback = []
    for kind in FEEDBACK_SLICES:
        body = "".join(
            "<tr><td>"
            + h(str(r["slice"]))
            + "</td>"
            + "".join(f"<td>{fmt(c, r.get(c))}</td>" for c in FEEDBACK_COLUMNS)
            + "</tr>"
            for r in _feedback_rows(report, kind)
        )
        feedback.append(
            f"<h3>By {h(kind)}</h3><table><tr><th>{h(kind)}</th>"
            + "".join(f"<th>{h(LABELS[c])}</th>" for c in FEEDBACK_COLUMNS)
            + f"</tr>{body}</table>"
        )
    reasons = "".join(
        f"<tr><td>{h(r['reason'])}</td><td>{fmt('answers', r['answers'])}</td>"
        f"<td>{fmt('mean_rating', r['mean_rating'])}</td>"
        f"<td>{fmt('low_ratings', r['low_ratings'])}</td></tr>"
        for r in report.reasons
    )
    sections.append(
        "<h2>Partner feedback</h2><p>After each delivery the seller, the buyer and the carrier"
        " rate it 1-5 and name the reason that mattered most. By region and sector of the"
        f" partner who answered.</p>{''.join(feedback)}<h3>By reason</h3><table><tr>"
        "<th>reason</th><th>Answers</th><th>Mean rating (1-5)</th><th>Low ratings (1 or 2)</th>"
        f"</tr>{reasons}</table>"
    )
    return (
        "<!doctype html><html lang=en><meta charset=utf-8>"
        f"<title>{h(_title(report))}</title>"
        "<style>body{font-family:sans-serif;max-width:60em;margin:2em auto}"
        "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;"
        "text-align:right}th:first-child,td:first-child{text-align:left}</style>"
        f"<h1>{h(_title(report))}</h1><p>{h(_provenance(report))}</p>"
        f"<h2>Key figures</h2><table>{head}</table>{''.join(sections)}</html>"
    ).encode()


def to_pdf(report: PeriodReport) -> bytes:
    # Dated by the period's end, so the same report gives the same file.
    doc = Document(created=report.until, title=_title(report))
    doc.paragraph(_title(report), 14, bold=True)
    doc.paragraph(_provenance(report), 8, grey=True)
    doc.gap()
    doc.line("Key figures", 12, bold=True)
    for key in HEADLINES:
        doc.row([LABELS[key], fmt(key, report.headline.get(key))], [320, 100])
    widths = [125, 50, 55, 55, 55, 55, 65, 35]
    for kind in REPORT_SLICES:
        rows = _by_slice(report, kind)
        doc.gap()
        doc.line(f"By {kind}", 12, bold=True)
        doc.header(
            [kind, "offers", "requests", "proposals", "confirmed", "tonnes", "CO2e kg", "jobs"],
            widths,
        )
        for r in rows:
            doc.row([str(r["slice"])] + [fmt(c, r.get(c)) for c in COLUMNS], widths, 8)
        doc.gap(4)
        doc.line(f"Tonnes exchanged by {kind}", 9, bold=True)
        doc.bars([(str(r["slice"]), float(r.get("tonnes_exchanged") or 0)) for r in rows], "t")
    doc.gap()
    doc.line("Partner feedback", 12, bold=True)
    doc.paragraph(
        "After each delivery the seller, the buyer and the carrier rate it 1-5 and name the"
        " reason that mattered most. By region and sector of the partner who answered.",
        8,
    )
    widths = [125, 80, 80, 80, 80]
    for kind in FEEDBACK_SLICES:
        doc.gap(4)
        doc.header([kind, "deliveries", "answers", "mean rating", "low ratings"], widths)
        for r in _feedback_rows(report, kind):
            doc.row([str(r["slice"])] + [fmt(c, r.get(c)) for c in FEEDBACK_COLUMNS], widths, 8)
    doc.gap(4)
    doc.header(["reason", "answers", "mean rating", "low ratings"], widths[:4])
    for r in report.reasons:
        doc.row(
            [str(r["reason"])] + [fmt(k, r[k]) for k in ("answers", "mean_rating", "low_ratings")],
            widths[:4],
            8,
        )
    return doc.render()


FORMATS = {"csv": to_csv, "html": to_html, "pdf": to_pdf}


async def fill_report(
    conn: Conn, report: PeriodReport, partner_id: str | None = None
) -> PeriodReport:
    """The report's figures from the facts the connection reads (the live ones, or the
    report's rebuilt temporary tables)."""
    since, until = report.since, report.until
    report.headline = headline(await kpis(conn, since, until, "total", partner_id))
    for kind in REPORT_SLICES:
        report.slices[kind] = await kpis(conn, since, until, kind, partner_id)
    report.reasons = await feedback_reasons(conn, since, until, partner_id)
    return report
