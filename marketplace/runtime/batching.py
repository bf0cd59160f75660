"""Applying a batch with a few set-based statements instead of one or more per record, with the
same result as applying its records one by one in order.

A processor turns each record into a `Step`: the kind of statement it needs, that statement's row
of arguments, and the rows of the database it touches, named by tokens (("listing", id), ...):
`writes` for rows it changes or whose state decides what it does, `reads` for tokens it only
needs to stay clear of another step's exclusive `writes` (a statement that changes a whole group
of rows takes the group's token as a write; each member's steps take it as a read).

`waves` puts every step in the earliest wave after every earlier step it conflicts with (the two
share a token and at least one writes it). So two steps in the same wave never touch the same row,
and applying a wave's steps grouped by kind, one statement per kind, in any order of kinds, is
the same as applying them one by one; the waves run in order, so every pair of steps that touch
a common row still runs in the order of the log. One exception, `first_wins`: steps of one kind
whose statement is an `INSERT ... ON CONFLICT DO NOTHING` (and nothing else) may share a wave
with an earlier step of the same kind on the same token, as the statement inserts its rows in
the order given (`WITH ORDINALITY ... ORDER BY`), so the first one wins as it would one by one
(and identity columns are drawn in the same order, repeats included).

With a stream of distinct keys (new listings) a batch is one wave: one statement per kind."""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from typing import Any

import msgspec


class Step(msgspec.Struct, frozen=True, gc=False):
    """A struct rather than a frozen dataclass: one is made per record, and a struct is made
    several times faster (issue #18); never in a reference cycle (its fields are a kind, a row
    of values and tokens), so the collector need not track it."""

    kind: str
    row: tuple[Any, ...]
    writes: tuple[Hashable, ...]
    reads: tuple[Hashable, ...] = ()
    first_wins: bool = False


Wave = dict[str, list[tuple[Any, ...]]]


def waves(steps: Iterable[Step]) -> list[Wave]:
    """The steps in waves: each wave maps a kind to its rows, in the order of the log."""
    written: dict[Hashable, tuple[int, str]] = {}  # token -> (wave, kind) of its last writer
    read: dict[Hashable, int] = {}  # token -> last wave that read it
    out: list[Wave] = []
    last_writer, last_reader = written.get, read.get  # once, not per token (a hot loop)
    for step in steps:
        kind, writes, reads = step.kind, step.writes, step.reads
        level = 0
        for token in writes:
            last = last_writer(token)
            if last is not None:
                wave = last[0]
                if step.first_wins and last[1] == kind:
                    level = max(level, wave)
                else:
                    level = max(level, wave + 1)
            reader = last_reader(token)
            if reader is not None:
                level = max(level, reader + 1)
        for token in reads:
            last = last_writer(token)
            if last is not None:
                level = max(level, last[0] + 1)
        mark = (level, kind)
        for token in writes:
            written[token] = mark
        for token in reads:
            if last_reader(token, -1) < level:
                read[token] = level
        while len(out) <= level:
            out.append({})
        rows = out[level].get(kind)
        if rows is None:
            out[level][kind] = [step.row]
        else:
            rows.append(step.row)
    return out


def columns(rows: list[tuple[Any, ...]]) -> list[list[Any]]:
    """The rows as one list per column, for `unnest($1::type[], $2::type[], ...)`."""
    return [list(column) for column in zip(*rows, strict=True)]
