"""PostgreSQL's log read back for `make profile --slow-ms`: the statements that ran at least
so long, and the autovacuum and autoanalyze runs, each placed in the measured window, so the
slowest reports can be lined up against what PostgreSQL was busy with at that moment."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

# The default log_line_prefix, '%m [%p] ': "2026-12-06 12:10:14.568 UTC [10607] LOG:  …"
_ENTRY = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+) UTC \[(\d+)\] (\w+):  (.*)$")
_DURATION = re.compile(r"^duration: ([\d.]+) ms  (?:statement|(?:execute|bind|parse) [^:]*): (.*)$")
_AUTO = re.compile(r'^automatic (vacuum|analyze) of table "([^"]+)"')
_ELAPSED = re.compile(r"elapsed: ([\d.]+) s")


@dataclass(frozen=True)
class Busy:
    """Something PostgreSQL did for `ms` milliseconds, started `at` (Unix time)."""

    at: float
    ms: float
    pid: int
    what: str


def entries(text: str) -> list[tuple[float, int, str, str]]:
    """(Unix time logged, pid, level, message with its continuation lines joined)."""
    out: list[tuple[float, int, str, str]] = []
    for line in text.splitlines():
        m = _ENTRY.match(line)
        if m:
            at = datetime.fromisoformat(m[1] + "+00:00").timestamp()
            out.append((at, int(m[2]), m[3], m[4]))
        elif out and line[:1].isspace():
            at, pid, level, message = out[-1]
            out[-1] = (at, pid, level, message + " " + line.strip())
    return out


def busy(text: str, min_ms: float) -> list[Busy]:
    """The statements logged with their duration (log_min_duration_statement) of at least
    `min_ms`, and every autovacuum and autoanalyze run (log_autovacuum_min_duration),
    each from when it started (PostgreSQL logs them as they end), in that order."""
    found: list[Busy] = []
    for at, pid, level, message in entries(text):
        if level != "LOG":
            continue
        if m := _DURATION.match(message):
            ms = float(m[1])
            if ms >= min_ms:
                found.append(Busy(at - ms / 1000, ms, pid, " ".join(m[2].split())))
        elif m := _AUTO.match(message):
            elapsed = _ELAPSED.search(message)
            ms = float(elapsed[1]) * 1000 if elapsed else 0.0
            found.append(Busy(at - ms / 1000, ms, pid, f"autovacuum: {m[1]} {m[2]}"))
    return sorted(found, key=lambda b: b.at)


def window_lines(found: list[Busy], origin: float, length: float, width: int = 100) -> list[str]:
    """What of `found` overlaps the window [origin, origin + length], as seconds into it."""
    lines = []
    for b in found:
        if b.at + b.ms / 1000 < origin or b.at > origin + length:
            continue
        lines.append(f"    {b.at - origin:6.2f}  {b.ms:7.1f} ms  [{b.pid}] {b.what[:width]}")
    return lines
