"""Impact analytics on the real stack: the live KPIs kept by the analytics consumer and the period
report rebuilt from the audit log agree, for everyone and for one SME, in every format."""

from __future__ import annotations

import csv
import dataclasses
import io
from datetime import UTC, datetime

import pytest
from pypdf import PdfReader

from consumers.analytics import TOPICS, Analytics
from consumers.auditor import GROUP as AUDITOR
from marketplace.app.report import build, to_csv, to_html, to_pdf
from marketplace.db import connect
from marketplace.kpis import headline, kpis
from marketplace.settings import Settings
from producers.simulator.driver import simulate
from tests.integration.api_helpers import consumer_running, running_api
from tests.integration.kafka_helpers import caught_up
from tests.integration.test_audit import auditor_running
from tests.integration.test_matcher import matcher_running

pytestmark = pytest.mark.integration


async def test_live_kpis_and_the_audit_log_report_agree(settings: Settings) -> None:
    quick = dataclasses.replace(settings, match_answer_period_s=30.0)
    async with consumer_running(quick, "analytics", TOPICS, Analytics) as group:
        async with running_api(quick) as client, matcher_running(quick):
            since = datetime.now(UTC)
            stats = await simulate(
                quick,
                api_url=str(client.make_url("/")),
                rate=6.0,
                duration_s=8.0,
                seed=21,
                smes=24,
                carriers=2,
            )
            until = datetime.now(UTC)
        async with auditor_running(quick):
            await caught_up(quick, AUDITOR, TOPICS)
        await caught_up(quick, group, TOPICS)

    conn = await connect(quick)
    try:
        live = headline(await kpis(conn, since, until))
        report = await build(conn, since, until, progress=False)
        assert report.audit_intact
        assert report.headline == live
        figures = {k: v or 0 for k, v in live.items()}
        assert figures["offers"] >= stats.counts["offer"] > 0
        assert figures["requests"] >= stats.counts["request"] > 0
        assert figures["proposals"] >= stats.counts["proposed"] > 0
        assert figures["confirmed"] >= stats.counts["confirmed"]
        if live["confirmed"]:
            assert (live["tonnes_exchanged"] or 0) > 0

        # One SME sees its own figures, a part of everyone's.
        # Within the period: the shared database also holds other tests' matches, some of them
        # dated after it (tests that run on a clock of their own).
        seller = await conn.fetchval(
            "SELECT seller_id FROM analytics_matches WHERE proposed_at >= $1 AND proposed_at < $2"
            " ORDER BY proposed_at LIMIT 1",
            since,
            until,
        )
        own = headline(await kpis(conn, since, until, partner_id=seller))
        assert own["proposals"] is not None
        assert 1 <= own["proposals"] <= (live["proposals"] or 0)
        by_region = (await kpis(conn, since, until, "region"))["listings"]
        assert {r["slice"][:2] for r in by_region} <= {"BG", "SE", "un"}
        assert sum(r["offers"] for r in by_region) == live["offers"]
    finally:
        await conn.close()

    rows = list(csv.DictReader(io.StringIO(to_csv(report).decode())))
    offers = next(r for r in rows if r["section"] == "headline" and r["metric"] == "offers")
    assert float(offers["value"]) == live["offers"]
    assert b"Matches confirmed" in to_html(report)
    text = "".join(page.extract_text() for page in PdfReader(io.BytesIO(to_pdf(report))).pages)
    assert "Key figures" in text
    assert f"{live['offers']:,.0f}" in text
