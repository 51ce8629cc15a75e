"""How the command line writes things for people and for scripts: times in words ("3 minutes
ago", "in 40 seconds") and in ISO 8601, aligned columns, long values cut with their whole size,
control characters made visible, and JSON.

Text is for people and may be reworded; JSON (``--json``) is for scripts and keeps its keys.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

# Characters of a JSON value or a traceback shown at most, as the admin's job page shows them.
PREVIEW = 10_000
NOTHING = "—"

UNITS = (("day", 86400), ("hour", 3600), ("minute", 60), ("second", 1))
# C0 and C1 control characters but newline and tab: job data must not drive the terminal.
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def span(seconds: float) -> str:
    """A length of time in words, in its largest unit and the next when it is not zero:
    "40 seconds", "3 minutes", "1 hour 5 minutes", "2 days 3 hours"."""
    whole = int(abs(seconds))
    for index, (unit, size) in enumerate(UNITS):
        if whole >= size or unit == "second":
            count, rest = divmod(whole, size)
            words = plural(count, unit)
            if index + 1 < len(UNITS) and unit != "second":
                next_unit, next_size = UNITS[index + 1]
                if rest // next_size:
                    words += " " + plural(rest // next_size, next_unit)
            return words
    raise AssertionError("unreachable")  # pragma: no cover


def ago(when: datetime | None, now: datetime) -> str:
    """How long before ``now`` (both on the Redis clock): "3 minutes ago", "just now"."""
    if when is None:
        return NOTHING
    seconds = (now - when).total_seconds()
    if abs(seconds) < 1:
        return "just now"
    return f"{span(seconds)} ago" if seconds > 0 else f"in {span(seconds)}"


def until(when: datetime | None, now: datetime) -> str:
    """How long after ``now``: "in 40 seconds", "now" (due, or past)."""
    if when is None:
        return NOTHING
    seconds = (when - now).total_seconds()
    return f"in {span(seconds)}" if seconds >= 1 else "now"


def iso(when: datetime | None) -> str | None:
    """An aware time as ISO 8601 in UTC, to the millisecond (JSON's form); None stays None."""
    if when is None:
        return None
    return when.astimezone(UTC).isoformat(timespec="milliseconds")


def stamp(when: datetime | None) -> str:
    """An aware time as ISO 8601 in UTC, to the second, for text: 2025-01-31T09:00:00Z."""
    if when is None:
        return NOTHING
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def precise(when: datetime | None) -> str:
    """An aware time as ISO 8601 in UTC, to the millisecond, for text: ...T09:00:00.123Z."""
    if when is None:
        return NOTHING
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def moment(when: datetime | None, now: datetime) -> str:
    """A past or future time as text shows it: in words, then in ISO 8601."""
    if when is None:
        return NOTHING
    words = ago(when, now) if when <= now else until(when, now)
    return f"{words} ({stamp(when)})"


def ms_datetime(ms: int | float) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def printable(text: Any) -> str:
    """Text from job data as a terminal may show it: control characters (an escape sequence
    planted in an argument or a log line) written as ``\\x1b``, newlines and tabs kept."""
    return CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", str(text))


def cut(text: str, limit: int = PREVIEW) -> tuple[str, str]:
    """``text`` within ``limit`` characters and, when cut, a note saying how much it held."""
    if len(text) <= limit:
        return text, ""
    return text[:limit], f"(the first {limit:,} of {len(text):,} characters)"


def pretty_json(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, default=str)


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]], indent: str = "  ") -> list[str]:
    """Aligned columns: numbers (columns whose every cell is an int) to the right, the rest
    to the left, the last column unpadded."""
    cells = [[printable(c) for c in row] for row in rows]
    widths = [max([len(headers[i]), *(len(row[i]) for row in cells)]) for i in range(len(headers))]
    numeric = [
        bool(rows) and all(isinstance(row[i], int) for row in rows) for i in range(len(headers))
    ]

    def line(values: Sequence[str]) -> str:
        parts = []
        for i, value in enumerate(values):
            last = i == len(values) - 1
            if numeric[i]:
                parts.append(value.rjust(widths[i]))
            else:
                parts.append(value if last else value.ljust(widths[i]))
        return (indent + "  ".join(parts)).rstrip()

    return [line(headers), *(line(row) for row in cells)]
