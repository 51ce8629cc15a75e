"""The job list's date hierarchy, without DISTINCT over millions of rows.

Django's own tag asks the database for the distinct years, months or days of every matching row.
On a big mirror table that scans it all. This one asks for the first and last dates (two index
lookups), then skips from period to period: "the first matching date at or after the next
period's start", one indexed ORDER BY … LIMIT 1 per period that has rows, instead of one full
scan. It returns what
Django's tag returns, so Django's ``admin/date_hierarchy.html`` renders it.
"""

from __future__ import annotations

import datetime
from typing import Any

from django import template
from django.contrib.admin.templatetags.admin_list import date_hierarchy
from django.utils import formats, timezone
from django.utils.text import capfirst
from django.utils.translation import gettext as _

register = template.Library()


def _bound(queryset: Any, field: str, last: bool) -> Any:
    value = queryset.order_by(f"-{field}" if last else field).values_list(field, flat=True)[:1]
    found = list(value)
    if not found or found[0] is None:
        return None
    return timezone.localtime(found[0]) if timezone.is_aware(found[0]) else found[0]


def _start(year: int, month: int = 1, day: int = 1) -> datetime.datetime:
    moment = datetime.datetime(year, month, day)
    return timezone.make_aware(moment) if timezone.is_aware(timezone.now()) else moment


def _next_month(year: int, month: int) -> tuple[int, int]:
    return (year + 1, 1) if month == 12 else (year, month + 1)


def _period(moment: datetime.datetime, unit: str) -> tuple[datetime.datetime, datetime.datetime]:
    """The year, month or day holding ``moment``: (its start, the next one's start)."""
    if unit == "year":
        return _start(moment.year), _start(moment.year + 1)
    if unit == "month":
        return _start(moment.year, moment.month), _start(*_next_month(moment.year, moment.month))
    day = _start(moment.year, moment.month, moment.day)
    return day, _start(*(day + datetime.timedelta(days=1)).timetuple()[:3])


def _periods(queryset: Any, field: str, first: datetime.datetime, unit: str) -> list:
    """Starts of the periods holding at least one row: a skip scan, one indexed
    ``ORDER BY … LIMIT 1`` per period found."""
    found: list[datetime.datetime] = []
    current: datetime.datetime | None = first
    while current is not None and len(found) < 400:
        start, following = _period(current, unit)
        found.append(start)
        current = _bound(queryset.filter(**{f"{field}__gte": following}), field, False)
    return found


@register.inclusion_tag("admin/date_hierarchy.html")
def jobqueue_date_hierarchy(cl: Any) -> dict[str, Any]:
    field = cl.date_hierarchy
    if not field:
        return {"show": False}
    year_field, month_field, day_field = (f"{field}__{p}" for p in ("year", "month", "day"))
    year, month, day = (cl.params.get(f) for f in (year_field, month_field, day_field))
    year, month, day = (v[-1] if isinstance(v, list) else v for v in (year, month, day))
    if year and month and day:
        return date_hierarchy(cl) or {"show": False}  # one day: no query in Django's tag

    def link(filters: dict) -> str:
        return cl.get_query_string(filters, [f"{field}__"])

    queryset = cl.queryset
    first, last = _bound(queryset, field, False), _bound(queryset, field, True)
    if first is None or last is None:
        return {"show": True, "back": None, "choices": []}
    if not year and first.year == last.year:
        year = first.year
        if first.month == last.month:
            month = first.month
    if year and month:
        y, m = int(year), int(month)
        days = _periods(queryset, field, first, "day")
        return {
            "show": True,
            "back": {"link": link({year_field: y}), "title": str(y)},
            "choices": [
                {
                    "link": link({year_field: y, month_field: m, day_field: d.day}),
                    "title": capfirst(formats.date_format(d, "MONTH_DAY_FORMAT")),
                }
                for d in days
            ],
        }
    if year:
        y = int(year)
        return {
            "show": True,
            "back": {"link": link({}), "title": _("All dates")},
            "choices": [
                {
                    "link": link({year_field: y, month_field: d.month}),
                    "title": capfirst(formats.date_format(d, "YEAR_MONTH_FORMAT")),
                }
                for d in _periods(queryset, field, first, "month")
            ],
        }
    return {
        "show": True,
        "back": None,
        "choices": [
            {"link": link({year_field: str(d.year)}), "title": str(d.year)}
            for d in _periods(queryset, field, first, "year")
        ],
    }
