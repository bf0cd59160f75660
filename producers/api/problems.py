"""RFC 9457 problem details: every error the API gives is application/problem+json."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import msgspec
import orjson
from aiohttp import web

from marketplace.db import UNREACHABLE
from marketplace.logs import get_logger

log = get_logger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

TITLES = {
    400: "Bad request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    413: "Payload too large",
    415: "Unsupported media type",
    422: "Unprocessable content",
    429: "Too many requests",
    500: "Internal server error",
    503: "Service unavailable",
}


class Problem(Exception):
    def __init__(
        self,
        status: int,
        detail: str,
        *,
        field: str | None = None,
        headers: dict[str, str] | None = None,
        kind: str | None = None,
        errors: Sequence[tuple[str, str]] = (),
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.field = field
        # Several fields at once, each (field, reason); `field` alone gives one with `detail`.
        self.errors = list(errors) or ([(field, detail)] if field is not None else [])
        self.headers = headers or {}
        self.kind = kind or TITLES.get(status, "error").lower().replace(" ", "-")

    def response(self, instance: str) -> web.Response:
        body: dict[str, Any] = {
            "type": f"https://circular-exchange.example/problems/{self.kind}",
            "title": TITLES.get(self.status, "Error"),
            "status": self.status,
            "detail": self.detail,
            "instance": instance,
        }
        if self.errors:
            body["errors"] = [{"field": f, "reason": r} for f, r in self.errors]
        return web.Response(
            status=self.status,
            body=orjson.dumps(body),
            content_type="application/problem+json",
            headers=self.headers,
        )


_RULE = re.compile(r"^[a-z_]+: ")
_AT = re.compile(r"^(?P<reason>.*?)(?: - at `\$\.?(?P<field>[^`]*)`)?$", re.S)


def from_validation(exc: msgspec.ValidationError) -> Problem:
    """A msgspec validation error as a 422 naming the field, e.g. `terms.quantity.amount`."""
    m = _AT.match(str(exc))
    reason = m.group("reason") if m else str(exc)
    field = (m.group("field") if m else None) or None
    # A rule of our own (a __post_init__ check: "window: ends before it starts") refuses what
    # the schema allows: a business rule, not a schema violation (the OpenAPI document says so).
    rule = _RULE.match(reason) is not None
    if field is None:
        # Our own __post_init__ checks say "field: reason".
        head, sep, rest = reason.partition(": ")
        if sep and re.fullmatch(r"[a-z_.]+", head):
            field, reason = head, rest
    return Problem(
        422, reason, field=field or "body", kind="unprocessable-content" if rule else "validation"
    )


@web.middleware
async def problem_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        # PostgreSQL text cannot hold NUL: refused here rather than failing in a query (500).
        if "\x00" in request.path or "\x00" in request.query_string:
            raise Problem(400, "the path or query holds a NUL character", kind="validation")
        return await handler(request)
    except Problem as problem:
        return problem.response(request.path)
    except web.HTTPRequestEntityTooLarge as exc:
        return Problem(413, f"body too large: {exc.text}").response(request.path)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        headers = {k: v for k, v in exc.headers.items() if k.lower() == "allow"}
        return Problem(exc.status, exc.reason, headers=headers).response(request.path)
    except OverflowError:
        # A period at the calendar's edge (year 1 minus 30 days, year 9999 by the minute).
        return Problem(422, "a time out of the range the exchange can compute with").response(
            request.path
        )
    except UNREACHABLE as exc:
        # The database is away (restarting, failing over): nothing was written; try again.
        log.warning("database_unreachable", path=request.path, error=type(exc).__name__)
        return Problem(
            503,
            "the exchange's database cannot be reached right now; nothing was stored, try again",
            headers={"Retry-After": "5"},
            kind="database-unavailable",
        ).response(request.path)
    except Exception:
        log.exception("request_failed", path=request.path, method=request.method)
        return Problem(500, "the request failed; it has been logged").response(request.path)
