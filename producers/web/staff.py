"""The association's pages (#19): its staff (people with the role operator, no organisation)
register organisations with their first admin and see the impact figures and the period report;
auditors (people of an organisation whose partner role is auditor) verify the audit log and
download an export of it from the browser.

Staff see what an operator's API key sees (the partner registry, figures summed over the
exchange, the consumers' lag), never an SME's listings or proposals. The figures come from the
API's own reads (producers/api/impact.py), registration from the CLI's (marketplace/partners.py
register_partner), verification and export from the auditor's (marketplace/audit)."""

from __future__ import annotations

import asyncio
import contextlib
import io
import secrets
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, Literal, cast

import msgspec
from aiohttp import web
from aiokafka.errors import KafkaError

from marketplace import accounts
from marketplace.accounts import AccountError, Person
from marketplace.audit.bundle import export_bundle
from marketplace.audit.progress import Progress
from marketplace.audit.signing import SigningKeyError, load_key, public_bytes
from marketplace.audit.verify import verify_database
from marketplace.db import connect
from marketplace.kpis import (
    COLUMNS,
    HEADLINES,
    REPORT_SLICES,
    PeriodReport,
    fill_report,
    fmt,
    to_pdf,
)
from marketplace.partners import register_partner
from marketplace.pdf import FontMissing, font_files
from marketplace.secretbox import key_file
from marketplace.settings import Settings
from producers.api.context import POOL, PRODUCER, SETTINGS
from producers.api.impact import consumer_lag, impact_figures
from producers.web.common import form_of, gettext_of, of_organisation, person_of, render
from producers.web.session import PREFIX
from schemas.common import Role
from schemas.partners import PartnerRegistered

ROLES = ("sme", "logistics", "facilitator", "auditor", "operator")
# The longest period the pages report on at once (the report verifies the period's log too).
MAX_PERIOD = timedelta(days=366)
# Audit jobs: at most this many running at once on the process, one per organisation; a
# finished job (and its export file) is kept this long.
MAX_RUNNING = 2
KEEP_S = 3600.0
# An export of more records than this is refused: the auditor narrows the range (or uses the
# CLI, which has no such bound).
MAX_EXPORT_RECORDS = 2_000_000


# --- who may see what ----------------------------------------------------------------------


def staff_only(request: web.Request) -> Person:
    person = person_of(request)
    if person.role != "operator":
        raise web.HTTPForbidden(text="only the association's staff see this page")
    return person


# --- organisations ---------------------------------------------------------------------------


def _role_names(_: Any) -> dict[str, str]:
    return {
        "sme": _("SME"),
        "logistics": _("logistics firm"),
        "facilitator": _("facilitator"),
        "auditor": _("auditor"),
        "operator": _("operator"),
    }


async def _organisations(request: web.Request, query: str) -> list[Any]:
    return list(
        await request.app[POOL].fetch(
            "SELECT partner_id, name, role, country, region, sector, active, registered_at"
            " FROM partners WHERE ($1 = '' OR name ILIKE '%' || $1 || '%')"
            " ORDER BY registered_at DESC, partner_id LIMIT 100",
            query,
        )
    )


async def organisations(request: web.Request) -> web.Response:
    staff_only(request)
    return await _organisations_page(request, form={}, errors={}, created=None)


async def _organisations_page(
    request: web.Request,
    *,
    form: dict[str, str],
    errors: dict[str, str],
    created: dict[str, str] | None,
    status: int = 200,
) -> web.Response:
    query = request.query.get("q", "").strip()[:100]
    rows = await _organisations(request, query)
    _ = gettext_of(request)
    return render(
        request,
        "staff_organisations.html",
        status=status,
        rows=rows,
        query=query,
        form=form,
        errors=errors,
        created=created,
        role_names=_role_names(_),
        roles=ROLES,
    )


def _partner_errors(exc: msgspec.ValidationError, _: Any) -> dict[str, str]:
    text = str(exc)
    sentences = {
        "name": _("Enter the organisation's name (1 to 200 characters)."),
        "role": _("Choose one of the options."),
        "country": _("Enter the country as two capital letters, e.g. BG or SE."),
        "region": _("Enter a NUTS code, e.g. BG411 or SE121, or leave it empty."),
        "sector": _("Enter a NACE division or class, e.g. 13 or 13.92, or leave it empty."),
    }
    for name, sentence in sentences.items():
        if f"`$.{name}`" in text:
            return {name: sentence}
    return {"body": text}


async def register(request: web.Request) -> web.Response:
    """Registers an organisation (PartnerRegistered, its first API key, as `marketplace partners
    add` does) and creates its first admin, whose one-time invitation link is shown once."""
    staff = staff_only(request)
    form = await form_of(request)
    _ = gettext_of(request)
    fields = {
        "name": form.get("name", "").strip(),
        "role": form.get("role", ""),
        "country": form.get("country", "").strip().upper(),
        "region": form.get("region", "").strip().upper() or None,
        "sector": form.get("sector", "").strip() or None,
    }
    errors: dict[str, str] = {}
    try:
        # The contract checks the registration before anything is published (as the CLI does).
        msgspec.convert(
            {
                "type": "partners.partner.registered.v1",
                "partner_id": "x",
                "registered_by": "x",
                **fields,
            },
            PartnerRegistered,
        )
    except msgspec.ValidationError as exc:
        errors = _partner_errors(exc, _)
    if not fields["name"]:
        errors.setdefault("name", _("Enter the organisation's name (1 to 200 characters)."))
    admin_name = form.get("admin_name", "").strip()
    if not 1 <= len(admin_name) <= 200:
        errors.setdefault("admin_name", _("Enter a name of 1 to 200 characters."))
    try:
        address = accounts.normal_email(form.get("admin_email", ""))
    except AccountError:
        errors.setdefault("admin_email", _("This is not an e-mail address."))
    if errors:
        return await _organisations_page(
            request, form=form, errors=errors, created=None, status=422
        )
    taken = _("A person with this e-mail already has an account.")
    locale = form.get("admin_locale", "en")
    if locale not in accounts.LOCALES:
        locale = "en"
    async with request.app[POOL].acquire() as conn, conn.transaction():
        # One registration per e-mail address at a time: a form sent twice registers once.
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", address)
        if await conn.fetchval("SELECT EXISTS (SELECT 1 FROM people WHERE email = $1)", address):
            return await _organisations_page(
                request, form=form, errors={"admin_email": taken}, created=None, status=422
            )
        producer = request.app[PRODUCER].producer
        if producer is None:
            raise web.HTTPServiceUnavailable(text="the exchange is connecting to Kafka")
        try:
            partner_id, key = await register_partner(
                conn,
                producer,
                name=fields["name"] or "",
                role=cast(Role, fields["role"]),  # checked by the contract above
                country=fields["country"] or "",
                region=fields["region"],
                sector=fields["sector"],
                registered_by=f"person:{staff.person_id}",
                source="/app/staff/organisations",
                ring=key_file(request.app[SETTINGS].webhook_keys_path).ring(),
            )
        except KafkaError:
            raise web.HTTPServiceUnavailable(text="Kafka does not answer; try again") from None
        admin = await accounts.create_person(
            conn,
            partner_id=partner_id,
            email=address,
            display_name=admin_name,
            role="admin",
            locale=locale,
        )
        token = await accounts.issue_link(conn, admin.person_id, "invite")
        await accounts.record(conn, staff.person_id, "registered-an-organisation")
    created = {
        "partner_id": partner_id,
        "name": fields["name"] or "",
        "api_key": key,
        "admin": admin.display_name,
        # Until e-mail is sent (#20), the staff hand the one-time link over.
        "link": f"{request.app[SETTINGS].web_base_url}{PREFIX}/invite/{token}",
    }
    return await _organisations_page(request, form={}, errors={}, created=created)


# --- impact and the period report ------------------------------------------------------------


def _day(raw: str | None, default: date) -> date:
    if not raw:
        return default
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise web.HTTPUnprocessableEntity(text="write a date as YYYY-MM-DD") from None


def period(request: web.Request) -> tuple[datetime, datetime, date, date]:
    """The period asked for by `from` and `to` (days, both included; default: the last 30)."""
    today = datetime.now(UTC).date()
    last = _day(request.query.get("to"), today)
    first = _day(request.query.get("from"), last - timedelta(days=29))
    since = datetime.combine(first, datetime.min.time(), UTC)
    until = datetime.combine(last + timedelta(days=1), datetime.min.time(), UTC)
    if since >= until:
        raise web.HTTPUnprocessableEntity(text="the period's first day comes after its last")
    if until - since > MAX_PERIOD:
        raise web.HTTPUnprocessableEntity(text="a period of at most a year")
    return since, until, first, last


def _labels(_: Any) -> dict[str, str]:
    return {
        "offers": _("Offers posted"),
        "requests": _("Requests posted"),
        "tonnes_offered": _("Tonnes offered"),
        "proposals": _("Match proposals"),
        "confirmed": _("Matches confirmed"),
        "acceptance_rate": _("Acceptance rate"),
        "tonnes_exchanged": _("Tonnes exchanged (diverted from disposal)"),
        "co2e_saved_kg": _("CO2e saved, net of transport (kg)"),
        "co2e_unknown": _("Trades whose CO2e is unknown"),
        "median_s_to_first_proposal": _("Median time to first proposal (s)"),
        "median_s_to_confirmation": _("Median time to confirmation (s)"),
        "jobs": _("Transport jobs"),
        "bids": _("Bids on them"),
        "awarded": _("Jobs awarded"),
        "failed": _("Auctions failed"),
        "deliveries": _("Deliveries confirmed"),
        "response_rate": _("Feedback response rate"),
        "feedback_answers": _("Feedback answers"),
        "mean_rating": _("Mean rating (1-5)"),
        "low_ratings": _("Low ratings (1 or 2)"),
    }


def _slice_names(_: Any) -> dict[str, str]:
    return {
        "day": _("day"),
        "region": _("region"),
        "chapter": _("List of Waste chapter"),
        "sector": _("sector"),
    }


def _merged(tables: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """One row per slice value, the KPI tables merged (as the period report does)."""
    rows: dict[str, dict[str, Any]] = {}
    for table in tables.values():
        for row in table:
            rows.setdefault(str(row["slice"]), {}).update(row)
    return [rows[k] for k in sorted(rows)]


async def impact(request: web.Request) -> web.Response:
    staff_only(request)
    since, until, first, last = period(request)
    raw = request.query.get("slice", "region")
    kind = next((k for k in REPORT_SLICES if k == raw), None)
    if kind is None:
        raise web.HTTPUnprocessableEntity(text=f"one of {', '.join(REPORT_SLICES)}")
    async with request.app[POOL].acquire() as conn:
        figures = await impact_figures(conn, since, until, kind, None)
    lag = await consumer_lag(request.app)
    _ = gettext_of(request)
    labels = _labels(_)
    return render(
        request,
        "staff_impact.html",
        first=first.isoformat(),
        last=last.isoformat(),
        kind=kind,
        slices=_slice_names(_),
        headline=[(labels[k], fmt(k, figures["headline"].get(k))) for k in HEADLINES],
        columns=[(c, labels[c]) for c in COLUMNS],
        rows=[
            (str(r["slice"]), [fmt(c, r.get(c)) for c in COLUMNS])
            for r in _merged(figures["tables"])
        ],
        lag=lag,
    )


async def report_pdf(request: web.Request) -> web.StreamResponse:
    """The period report (marketplace/kpis.py to_pdf, as `marketplace report` writes it) from
    the live figures, with the period's audit log verified."""
    staff_only(request)
    since, until, first, last = period(request)
    try:
        font_files(request.app[SETTINGS].pdf_font_dir)
    except FontMissing:
        raise web.HTTPServiceUnavailable(text="the PDF font is not installed here") from None
    report = PeriodReport(since, until, rebuilt=False)
    async with request.app[POOL].acquire() as conn:
        check = await verify_database(conn, since=since, until=until, group_id=None, progress=False)
        report.audit_intact, report.audit_findings = check.ok, len(check.findings)
        report.events = check.records
        await fill_report(conn, report)
    data = await asyncio.get_running_loop().run_in_executor(None, to_pdf, report)
    name = f"report-{first.isoformat()}-{last.isoformat()}.pdf"
    return web.Response(
        body=data,
        content_type="application/pdf",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


# --- the auditor's verification and export ----------------------------------------------------


@dataclass
class Job:
    job_id: str
    kind: Literal["verify", "export"]
    partner_id: str
    since: datetime | None
    until: datetime | None
    progress: Progress
    first: str | None = None  # the days asked for, as the auditor wrote them
    last: str | None = None
    state: Literal["running", "done", "failed"] = "running"
    started: float = field(default_factory=time.monotonic)
    finished: float | None = None
    result: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None
    task: asyncio.Task[None] | None = None

    @property
    def share(self) -> int:
        total = self.progress.total or 0
        return min(100, int(self.progress.done * 100 / total)) if total else 0


@dataclass
class Jobs:
    by_id: dict[str, Job] = field(default_factory=dict)
    folder: Path | None = None

    def prune(self) -> None:
        now = time.monotonic()
        for job in list(self.by_id.values()):
            if job.finished is not None and now - job.finished > KEEP_S:
                self.drop(job)

    def drop(self, job: Job) -> None:
        self.by_id.pop(job.job_id, None)
        if job.path is not None:
            job.path.unlink(missing_ok=True)

    def running(self) -> list[Job]:
        return [j for j in self.by_id.values() if j.state == "running"]

    def where(self) -> Path:
        if self.folder is None:
            self.folder = Path(tempfile.mkdtemp(prefix="marketplace-audit-"))
        return self.folder


JOBS = web.AppKey("audit_jobs", Jobs)


def _trusted(settings: Settings) -> set[bytes]:
    # As `marketplace audit verify` without --public-key: the exchange's own key, when present.
    with contextlib.suppress(SigningKeyError):
        return {public_bytes(load_key(settings.audit_key_path))}
    return set()


async def _run(settings: Settings, job: Job) -> None:
    conn = await connect(settings)
    try:
        if job.kind == "verify":
            report = await verify_database(
                conn,
                since=job.since,
                until=job.until,
                trusted_keys=_trusted(settings),
                group_id="auditor",
                progress=job.progress,
            )
            job.result = {
                "records": report.records,
                "chains": report.chains,
                "checkpoints": report.checkpoints,
                "findings": [str(f) for f in report.findings[:100]],
                "more_findings": max(0, len(report.findings) - 100),
                "intact": report.ok,
            }
        else:
            try:
                key = load_key(settings.audit_key_path)
            except SigningKeyError:
                key = None
            assert job.path is not None
            job.result = await export_bundle(
                conn, job.path, since=job.since, until=job.until, key=key, progress=job.progress
            )
        job.state = "done"
    except Exception as exc:  # noqa: BLE001 - any failure is the job's outcome, shown on its page
        job.state = "failed"
        job.result = {"error": type(exc).__name__}
    finally:
        job.finished = time.monotonic()
        await conn.close()


def _moment(raw: str | None, end: bool) -> datetime | None:
    if not raw:
        return None
    try:
        day = date.fromisoformat(raw)
    except ValueError:
        raise web.HTTPUnprocessableEntity(text="write a date as YYYY-MM-DD") from None
    return datetime.combine(day + timedelta(days=1) if end else day, datetime.min.time(), UTC)


async def audit_page(request: web.Request) -> web.Response:
    person = await of_organisation(request, "auditor")
    jobs = request.app[JOBS]
    jobs.prune()
    mine = sorted(
        (j for j in jobs.by_id.values() if j.partner_id == person.partner_id),
        key=lambda j: -j.started,
    )
    return render(request, "audit_index.html", jobs=mine, errors={}, form={})


async def start_job(request: web.Request) -> web.StreamResponse:
    person = await of_organisation(request, "auditor")
    kind: Literal["verify", "export"] = (
        "export" if request.match_info["kind"] == "export" else "verify"
    )
    form = await form_of(request)
    since, until = _moment(form.get("from"), False), _moment(form.get("to"), True)
    _ = gettext_of(request)
    jobs = request.app[JOBS]
    jobs.prune()
    assert person.partner_id is not None
    errors: dict[str, str] = {}
    if since is not None and until is not None and since >= until:
        errors["to"] = _("The last day comes before the first.")
    elif any(j.partner_id == person.partner_id for j in jobs.running()):
        errors["body"] = _("Your organisation already has a job running. Wait for it to end.")
    elif len(jobs.running()) >= MAX_RUNNING:
        errors["body"] = _("The exchange is busy with other audit jobs. Try again in a minute.")
    elif kind == "export":
        records = await request.app[POOL].fetchval(
            "SELECT count(*) FROM audit_log WHERE ($1::timestamptz IS NULL OR recorded_at >= $1)"
            " AND ($2::timestamptz IS NULL OR recorded_at <= $2)",
            since,
            until,
        )
        if records > MAX_EXPORT_RECORDS:
            errors["from"] = _(
                "The range holds %(n)s records, more than %(max)s: choose a shorter range."
            ) % {"n": f"{records:,}", "max": f"{MAX_EXPORT_RECORDS:,}"}
    if errors:
        mine = [j for j in jobs.by_id.values() if j.partner_id == person.partner_id]
        status = 429 if "body" in errors else 422
        return render(
            request, "audit_index.html", status=status, jobs=mine, errors=errors, form=form
        )
    job = Job(
        job_id=secrets.token_urlsafe(12),
        kind=kind,
        partner_id=person.partner_id,
        since=since,
        until=until,
        # Counted, never drawn: the page reads done and total.
        progress=Progress(kind, None, stream=io.StringIO()),
        first=since.date().isoformat() if since else None,
        last=form.get("to") if until else None,
    )
    if kind == "export":
        job.path = jobs.where() / f"{job.job_id}.jsonl"
    jobs.by_id[job.job_id] = job
    job.task = asyncio.create_task(_run(request.app[SETTINGS], job))
    await _note(request, person, f"started-an-audit-{kind}")
    raise web.HTTPSeeOther(f"{PREFIX}/audit/jobs/{job.job_id}")


async def _note(request: web.Request, person: Person, what: str) -> None:
    async with request.app[POOL].acquire() as conn:
        await accounts.record(conn, person.person_id, what)


async def _job_of(request: web.Request) -> Job:
    person = await of_organisation(request, "auditor")
    request.app[JOBS].prune()
    job = request.app[JOBS].by_id.get(request.match_info["id"])
    if job is None or job.partner_id != person.partner_id:
        raise web.HTTPNotFound(text="no such job of your organisation")
    return job


async def job_page(request: web.Request) -> web.Response:
    job = await _job_of(request)
    return render(request, "audit_job.html", job=job)


async def job_status(request: web.Request) -> web.Response:
    """The job's state as a fragment, for htmx to poll while the job runs."""
    job = await _job_of(request)
    return render(request, "audit_job_status.html", job=job)


async def bundle(request: web.Request) -> web.StreamResponse:
    job = await _job_of(request)
    if job.kind != "export" or job.state != "done" or job.path is None:
        raise web.HTTPNotFound(text="this job has no bundle")
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return web.FileResponse(
        job.path,
        headers={
            "Content-Type": "application/jsonl",
            "Content-Disposition": f'attachment; filename="audit-export-{stamp}.jsonl"',
        },
    )


async def _stop_jobs(app: web.Application) -> None:
    jobs = app[JOBS]
    for job in jobs.running():
        if job.task is not None:
            job.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await job.task
    if jobs.folder is not None:
        shutil.rmtree(jobs.folder, ignore_errors=True)


def add_routes(app: web.Application) -> None:
    """The staff's and auditors' pages."""
    app[JOBS] = Jobs()
    app.on_cleanup.append(_stop_jobs)
    r = app.router
    r.add_get(PREFIX + "/staff/organisations", organisations)
    r.add_post(PREFIX + "/staff/organisations", register)
    r.add_get(PREFIX + "/staff/impact", impact)
    r.add_get(PREFIX + "/staff/report.pdf", report_pdf)
    r.add_get(PREFIX + "/audit", audit_page)
    r.add_post(PREFIX + "/audit/{kind:verify|export}", start_job)
    r.add_get(PREFIX + "/audit/jobs/{id}", job_page)
    r.add_get(PREFIX + "/audit/jobs/{id}/status", job_status)
    r.add_get(PREFIX + "/audit/jobs/{id}/bundle", bundle)
