"""What a command prints: text for people on stdout, or one JSON document for scripts (``--json``); progress on
stderr.

Exit codes (the same for every command, so scripts can tell them apart):

| code | meaning |
|---|---|
| 0 | done, every record fine |
| 1 | done, but some records are invalid, were rejected or failed (the output says which) |
| 2 | bad input: arguments, unknown entity, unreadable file, a fix that cannot be loaded or raised |
| 3 | nothing to do: the queue or bucket holds nothing for this entity |
| 4 | AWS or configuration error: a call failed, the stack or a setting is missing |
| 130 | interrupted (Ctrl-C or SIGTERM); ``backfill`` resumes from its checkpoint |
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass, field
from typing import Any, TextIO

OK = 0
PROBLEMS = 1
BAD_INPUT = 2
NOTHING_TO_DO = 3
AWS_ERROR = 4
INTERRUPTED = 130


@dataclass
class Output:
    """Where a command's text, JSON document and progress go."""

    as_json: bool = False
    stdout: TextIO = field(default_factory=lambda: sys.stdout)
    stderr: TextIO = field(default_factory=lambda: sys.stderr)

    def line(self, text: str = "") -> None:
        """A line for people; nothing with ``--json`` (the document says it all)."""
        if not self.as_json:
            print(text, file=self.stdout, flush=True)

    def document(self, value: dict[str, Any]) -> None:
        """The JSON document of the command (only with ``--json``)."""
        if self.as_json:
            print(json.dumps(value, indent=2, ensure_ascii=False, default=str), file=self.stdout, flush=True)

    def error(self, text: str) -> None:
        print(f"error: {text}", file=self.stderr, flush=True)

    def note(self, text: str) -> None:
        print(text, file=self.stderr, flush=True)


class Progress:
    """A one-line progress display on stderr: done/total, records/s and ETA.

    On a terminal the line is redrawn in place at most every 0.2 s; otherwise (a log, CI) one line is printed
    every ``interval_s`` seconds, and nothing at all when ``enabled`` is False.
    """

    def __init__(self, label: str, total: int | None, stream: TextIO, *, enabled: bool, interval_s: float = 5.0):
        self.label = label
        self.total = total
        self.stream = stream
        self.enabled = enabled
        self.tty = enabled and stream.isatty()
        self.interval_s = 0.2 if self.tty else interval_s
        self.started = time.monotonic()
        self._last_shown = 0.0
        self.done = 0

    def advance(self, count: int, **figures: int) -> None:
        self.done += count
        now = time.monotonic()
        if self.enabled and now - self._last_shown >= self.interval_s:
            self._last_shown = now
            self._show(now, figures)

    def finish(self, **figures: int) -> None:
        if self.enabled:
            self._show(time.monotonic(), figures)
            if self.tty:
                self.stream.write("\n")
                self.stream.flush()

    def rate(self) -> float:
        elapsed = time.monotonic() - self.started
        return self.done / elapsed if elapsed > 0 else 0.0

    def _show(self, now: float, figures: dict[str, int]) -> None:
        rate = self.rate()
        parts = [f"{self.label}: {self.done:,}" + (f"/{self.total:,}" if self.total else "") + " rows"]
        if self.total:
            parts[0] += f" ({min(100.0, 100.0 * self.done / self.total):.0f}%)"
        parts.append(f"{rate:,.0f} records/s")
        if self.total and rate > 0 and self.done < self.total:
            parts.append(f"ETA {_duration((self.total - self.done) / rate)}")
        parts.extend(f"{name} {value:,}" for name, value in figures.items())
        text = " | ".join(parts)
        if self.tty:
            self.stream.write("\r\033[K" + text)
        else:
            self.stream.write(text + "\n")
        self.stream.flush()


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{(seconds % 3600) // 60:02d}m"
