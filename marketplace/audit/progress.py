"""A progress bar on stderr for long audit runs (only when stderr is a terminal); a caller that
shows progress elsewhere (the auditor's page) passes a Progress of its own and reads `done` and
`total`."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
    def __init__(self, label: str, total: int | None, stream: TextIO | None = None) -> None:
        self.label = label
        self.total = total
        self.done = 0
        self.stream = stream or sys.stderr
        self.live = self.stream.isatty()
        self._start = time.monotonic()
        self._shown = 0.0

    def advance(self, n: int = 1) -> None:
        self.done += n
        now = time.monotonic()
        if self.live and now - self._shown >= 0.1:
            self._shown = now
            self._draw(now)

    def _draw(self, now: float) -> None:
        rate = self.done / max(now - self._start, 1e-6)
        if self.total:
            share = min(self.done / self.total, 1.0)
            bar = "#" * int(share * 30)
            text = f"{self.label} [{bar:<30}] {self.done:,}/{self.total:,} ({share:.0%})"
        else:
            text = f"{self.label} {self.done:,}"
        self.stream.write(f"\r{text} {rate:,.0f}/s ")
        self.stream.flush()

    def close(self) -> None:
        if self.live:
            self._draw(time.monotonic())
            self.stream.write("\n")
            self.stream.flush()


def bar_of(progress: bool | Progress, label: str, total: int) -> Progress | None:
    """The run's progress: the caller's own (its total set here), a bar on stderr, or none."""
    if isinstance(progress, Progress):
        progress.total = total
        return progress
    return Progress(label, total) if progress else None
