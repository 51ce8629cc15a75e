"""Cron expressions: ``minute hour day-of-month month day-of-week``.

Each field takes ``*``, a number, a range ``a-b``, a step ``*/n`` or ``a-b/n``, and lists of those
separated by commas; months and weekdays also take names (``jan``, ``mon``). Day of week runs
from 0 (Sunday) to 6, and 7 is Sunday too. As in Vixie cron, when both day fields are
restricted, a day matches if either matches. Macros: ``@yearly``, ``@monthly``, ``@weekly``,
``@daily`` (``@midnight``), ``@hourly``.
"""

from __future__ import annotations

from datetime import datetime, timedelta

MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
MONTHS = {
    m: i
    for i, m in enumerate(
        ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"], 1
    )
}
DAYS = {d: i for i, d in enumerate(["sun", "mon", "tue", "wed", "thu", "fri", "sat"])}
FIELDS: tuple[tuple[str, int, int, dict[str, int]], ...] = (
    ("minute", 0, 59, {}),
    ("hour", 0, 23, {}),
    ("day of month", 1, 31, {}),
    ("month", 1, 12, MONTHS),
    ("day of week", 0, 7, DAYS),
)


class CronError(ValueError):
    """A cron expression is malformed; the message names the field and the bad part."""


def _number(text: str, names: dict[str, int], field: str, expr: str) -> int:
    text = text.lower()
    if text in names:
        return names[text]
    if not text.isdigit():
        raise CronError(f"Cron expression {expr!r}: {text!r} is not a valid {field}.")
    return int(text)


def _parse_field(text: str, field: str, low: int, high: int, names: dict, expr: str) -> set[int]:
    values: set[int] = set()
    for part in text.split(","):
        base, _, step_text = part.partition("/")
        step = 1
        if step_text:
            if not step_text.isdigit() or int(step_text) == 0:
                raise CronError(
                    f"Cron expression {expr!r}: step {step_text!r} in the {field} "
                    "field must be a whole number above 0."
                )
            step = int(step_text)
        if base == "*":
            start, end = low, high
        elif "-" in base:
            a, _, b = base.partition("-")
            start, end = _number(a, names, field, expr), _number(b, names, field, expr)
        else:
            start = _number(base, names, field, expr)
            end = high if step_text else start
        if not (low <= start <= high and low <= end <= high and start <= end):
            raise CronError(
                f"Cron expression {expr!r}: {part!r} is outside the {field} range {low}-{high}."
            )
        values.update(range(start, end + 1, step))
    return values


class Cron:
    def __init__(self, expression: str) -> None:
        if not isinstance(expression, str):
            raise CronError(f"A cron expression must be a string, not {expression!r}.")
        self.expression = expression
        text = MACROS.get(expression.strip().lower(), expression)
        parts = text.split()
        if len(parts) != 5:
            raise CronError(
                f"Cron expression {expression!r} must have 5 fields (minute hour "
                f"day-of-month month day-of-week), not {len(parts)}."
            )
        fields = [
            _parse_field(p, name, low, high, names, expression)
            for p, (name, low, high, names) in zip(parts, FIELDS, strict=True)
        ]
        self.minutes, self.hours, self.days, self.months, weekdays = fields
        self.weekdays = {0 if d == 7 else d for d in weekdays}
        self.any_day = parts[2] == "*"
        self.any_weekday = parts[4] == "*"

    def _day_matches(self, dt: datetime) -> bool:
        dom = dt.day in self.days
        dow = (dt.isoweekday() % 7) in self.weekdays
        if self.any_day or self.any_weekday:
            return dom and dow
        return dom or dow

    def next_after(self, moment: datetime) -> datetime:
        """The first time strictly after ``moment`` that matches (same tzinfo)."""
        dt = moment.replace(second=0, microsecond=0) + timedelta(minutes=1)
        for _ in range(100000):  # a match exists within a few years for any valid expression
            if dt.month not in self.months:
                dt = (dt.replace(day=1, hour=0, minute=0) + timedelta(days=32)).replace(day=1)
                continue
            if not self._day_matches(dt):
                dt = dt.replace(hour=0, minute=0) + timedelta(days=1)
                continue
            if dt.hour not in self.hours:
                dt = dt.replace(minute=0) + timedelta(hours=1)
                continue
            if dt.minute not in self.minutes:
                dt += timedelta(minutes=1)
                continue
            return dt
        raise CronError(f"Cron expression {self.expression!r} never matches.")

    def __repr__(self) -> str:
        return f"Cron({self.expression!r})"
