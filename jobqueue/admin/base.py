"""What every jobqueue admin page shares: the read-only ModelAdmin over the mirror's rows, with
a confirmation page per action, the paginator that never counts a million rows, and small
renderers (a state badge, a progress bar, JSON shown to a person)."""

from __future__ import annotations

import json
from typing import Any

from django.contrib import admin
from django.contrib.admin.models import LogEntry
from django.core.paginator import Paginator
from django.db import connection
from django.http import HttpRequest, HttpResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.functional import cached_property
from django.utils.html import format_html
from django.utils.timesince import timesince

ESTIMATE_ABOVE = 10_000


class EstimatedPaginator(Paginator):
    """Counts exactly up to 10,000 rows; beyond that (or for the whole table) estimates, so
    a page of a million-row table never waits for COUNT(*)."""

    @cached_property
    def count(self) -> int:  # type: ignore[override]
        object_list: Any = self.object_list
        query = object_list.query
        if not query.where and connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT reltuples::bigint FROM pg_class WHERE relname = %s",
                    [object_list.model._meta.db_table],
                )
                row = cursor.fetchone()
            if row and row[0] > ESTIMATE_ABOVE:
                return int(row[0])
        capped = object_list.values("pk")[: ESTIMATE_ABOVE + 1]
        return capped.count()


def live_config(page: str, **extra: Any) -> dict[str, Any]:
    """What a page's scripts need to follow it live (``jobqueue/live.js``, ``live-pages.js``):
    the websocket's path (None: not live) and what the page shows."""
    from django.conf import settings

    from ..conf import jobqueue_settings

    return {
        "ws": jobqueue_settings.LIVE_PATH,
        "page": page,
        "tz": settings.TIME_ZONE if settings.USE_TZ else None,
        "change_url": reverse("admin:jobqueue_job_change", args=["__id__"]),
        **extra,
    }


class MirrorAdmin(admin.ModelAdmin):
    """Read-only: the rows are the mirror's copy of Redis. Changes (retry, delete, pause...)
    go through the engine, behind their own permissions, each confirmed on a page served at
    ``act_route`` by :meth:`act_view` (URL name ``jobqueue_<model>_act``)."""

    act_route = "act/<str:action>/"

    class Media:
        css = {"all": ["jobqueue/admin.css"]}
        js = ["jobqueue/live-pages.js", "jobqueue/live.js"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def get_urls(self) -> list:
        name = f"jobqueue_{self.opts.model_name}_act"
        act = path(self.act_route, self.admin_site.admin_view(self.act_view), name=name)
        return [act, *super().get_urls()]

    def act_view(self, request: HttpRequest, **kwargs: Any) -> HttpResponse:
        raise NotImplementedError


def short_job_id(job_id: str) -> str:
    """A job's id as a list shows it, its queue being in a column of its own (or known):
    the first 8 characters of its local id."""
    return job_id[job_id.find(":") + 1 :][:8]


def badge(status: str) -> str:
    return format_html('<span class="jq-badge jq-{}">{}</span>', status, status)


def since(when: Any) -> str:
    """How long ago, in words: seconds under a minute, else as Django's timesince says it."""
    seconds = int((timezone.now() - when).total_seconds())
    if 0 <= seconds < 60:
        return f"{seconds}\u00a0second{'' if seconds == 1 else 's'}"
    return timesince(when)


def words_since(when: Any) -> str:
    """How long ago, in words, kept current by the live script (``data-since``: ms)."""
    if when is None:
        return ""
    return format_html(
        '<span data-since="{}">{}</span>', int(when.timestamp() * 1000), since(when)
    )


def progress_bar(progress: Any) -> str:
    if not isinstance(progress, dict) or not progress.get("total"):
        return ""
    try:
        percent = max(0, min(100, round(100 * float(progress["done"]) / float(progress["total"]))))
    except (TypeError, ValueError, ZeroDivisionError):
        return ""
    return format_html(
        '<span class="jq-progress" title="{}"><span style="width:{}%"></span></span> {}%',
        progress.get("message", ""),
        percent,
        percent,
    )


def attempts_words(job: Any, short: bool = False) -> str:
    """Attempts as max_attempts counts them, since the last manual retry ("1/4"), and all
    of them when the job was retried by hand ("1/4 · 5 in all"): never "5 of 4"."""
    run = f"{job.attempts_this_run}{'/' if short else ' of '}{job.max_attempts}"
    if not job.attempts_before_retry:
        return run
    return format_html(
        '{}<span class="jq-quiet" title="retried by hand after {} attempts"> · {} in all</span>',
        run,
        job.attempts_before_retry,
        job.attempts,
    )


def log_actions(request: HttpRequest, queryset: Any, flag: int, message: str) -> None:
    """The admin's history (LogEntry) of an action on these rows."""
    LogEntry.objects.log_actions(request.user.pk or 0, queryset, flag, message)


def pretty(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, default=str)
