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
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Step:
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
    for step in steps:
        level = 0
        for token in step.writes:
            last = written.get(token)
            if last is not None:
                wave, kind = last
                same = step.first_wins and kind == step.kind
                level = max(level, wave if same else wave + 1)
            level = max(level, read.get(token, -1) + 1)
        for token in step.reads:
            last = written.get(token)
            if last is not None:
                level = max(level, last[0] + 1)
        for token in step.writes:
            written[token] = (level, step.kind)
        for token in step.reads:
            read[token] = max(read.get(token, -1), level)
        while len(out) <= level:
            out.append({})
        out[level].setdefault(step.kind, []).append(step.row)
    return out


def columns(rows: list[tuple[Any, ...]]) -> list[list[Any]]:
    """The rows as one list per column, for `unnest($1::type[], $2::type[], ...)`."""
    return [list(column) for column in zip(*rows, strict=True)]
