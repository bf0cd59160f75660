"""HTML forms in and out: a form's dotted field names (`terms.quantity.amount`) are the JSON paths
of the API's bodies, so a form becomes the same body the API decodes, and an API refusal naming a
field lands next to that field, in the person's language."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import msgspec

from producers.api.bodies import unknown_fields
from producers.api.problems import Problem, from_validation

T = TypeVar("T")


def document(
    form: Mapping[str, str],
    fields: tuple[str, ...],
    *,
    moments: tuple[str, ...] = (),
    lists: tuple[str, ...] = (),
    flags: tuple[str, ...] = (),
) -> dict[str, Any]:
    """The nested document of the named fields that were filled in (empty ones are left out,
    so the body's defaults apply). A date in a field of `moments` (<input type=date> for a
    point in time) becomes the day's start, or its end for a field ending `.end`; a field of
    `lists` is split at commas and spaces; a checkbox of `flags` is true when sent."""
    out: dict[str, Any] = {}
    for name in fields:
        raw = form.get(name, "").strip()
        value: Any = raw
        if name in flags:
            value = bool(raw)
            if not value:
                continue
        elif not raw:
            continue
        elif name in lists:
            value = [part for part in re.split(r"[,\s]+", raw) if part]
        elif name in moments and re.fullmatch(r"\d{4}-\d{2}-\d{2}", raw):
            value = f"{raw}T23:59:59Z" if name.endswith(".end") else f"{raw}T00:00:00Z"
        node = out
        *parents, leaf = name.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return out


def decode(doc: dict[str, Any], kind: type[T]) -> T:
    """`doc` as `kind`, with numbers typed as text accepted (a form sends text), or the same
    422 Problem the API gives for that field."""
    unknown = unknown_fields(doc, kind)
    if unknown:
        raise Problem(422, unknown[0][1], field=unknown[0][0])
    try:
        return msgspec.convert(doc, kind, strict=False)
    except msgspec.ValidationError as exc:
        raise from_validation(exc) from None


# Reasons the API gives, as a page says them in the person's language. The API's words stay
# English (they are its contract); a page recognises them and translates. Anything else is shown
# under a general sentence, with the API's words.
_LIMIT = re.compile(r"Expected `(?:int|float)` (>=|>|<=|<) (\S+)$")


def say(reason: str, _: Callable[[str], str]) -> str:
    limit = _LIMIT.search(reason)
    if limit is not None:
        sentence = {
            ">=": _("Enter at least %(n)s."),
            ">": _("Enter more than %(n)s."),
            "<=": _("Enter at most %(n)s."),
            "<": _("Enter less than %(n)s."),
        }[limit.group(1)]
        bound = limit.group(2)
        with contextlib.suppress(ValueError):
            bound = f"{float(bound):g}"  # 90.0 reads 90
        return sentence % {"n": bound}
    if "missing required field" in reason:
        return _("Fill this in.")
    if re.search(r"Expected `(?:float|int|number)`", reason):
        return _("Enter a number.")
    if "Expected `str` of length" in reason:
        return _("This is too long.")
    if "Invalid enum value" in reason:
        return _("Choose one of the options.")
    if "Expected `datetime`" in reason or "RFC3339" in reason:
        return _("Enter a date.")
    if "before it starts" in reason:
        return _("The end is before the start.")
    if "List of Waste" in reason:
        return _("This is not a code of the List of Waste.")
    if "Bulgaria has used the euro" in reason:
        return _("Bulgaria has used the euro since 1 January 2026: price it in EUR.")
    if "matching regex" in reason:
        return _("This is not in the expected format.")
    return _("This value cannot be used: %(reason)s") % {"reason": reason}


def field_errors(problem: Problem, gettext: Callable[[str], str]) -> dict[str, str]:
    """The problem's complaints by form field, in the person's language; `body` when the
    problem names no field. A missing field is named by itself (msgspec names its parent), and
    an item of a list by the list's field (`accepts_codes[1]` -> `accepts_codes`)."""
    errors = problem.errors or [(problem.field or "body", problem.detail)]
    out: dict[str, str] = {}
    for field, reason in errors:
        name = field or "body"
        missing = re.search(r"missing required field `(\w+)`", reason)
        if missing is not None:
            name = f"{name}.{missing.group(1)}" if name != "body" else missing.group(1)
        name = re.sub(r"\[\d+\]$", "", name)
        out.setdefault(name, say(reason, gettext))
    return out
