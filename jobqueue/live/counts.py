"""The job list's counts, live: its filter sidebar (with the counts per choice when the list
shows them) and its number of jobs, as the admin renders them, from the mirror's rows.

Counting reads the database, so it is shared and rationed: one rendering per distinct list
(its query string) at a time in a process, reused for ``COUNTS_EVERY`` seconds by every page
that shows the same list. A page asks again while jobs change, and once more ``MIRROR_LAG``
after the last change, so that the counts settle on what the mirror wrote last.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from channels.db import database_sync_to_async
from django.contrib.admin.options import IncorrectLookupParameters
from django.contrib.admin.sites import all_sites
from django.core.exceptions import FieldError, ValidationError
from django.http import HttpRequest, QueryDict
from django.template.loader import render_to_string

logger = logging.getLogger("jobqueue.live")
COUNTS_EVERY = 2.0  # seconds between two renderings of one list's counts, at least
MIRROR_LAG = 1.5  # seconds after a change by which the mirror has written it (p99 < 1 s)
MAX_QUERY = 2_000  # characters of a list's query string


def job_admin() -> Any:
    """The ModelAdmin of jobs, on whichever admin site registers it."""
    from ..models import Job

    for site in all_sites:
        if site.is_registered(Job):
            return site.get_model_admin(Job)
    return None


def render_counts(user: Any, query: str) -> dict[str, Any] | None:
    """The list's sidebar and count for this user, or None when the list cannot be built
    (a query the admin itself refuses)."""
    model_admin = job_admin()
    if model_admin is None:
        return None
    request = HttpRequest()
    request.method = "GET"
    request.GET = QueryDict(query)
    request.user = user
    try:
        changelist = model_admin.get_changelist_instance(request)
    except (IncorrectLookupParameters, FieldError, ValidationError, ValueError):
        return None
    count = changelist.result_count
    opts = model_admin.opts
    return {
        "type": "counts",
        "count": count,
        "count_text": f"{count} {opts.verbose_name if count == 1 else opts.verbose_name_plural}",
        "filters": render_to_string(
            "jobqueue/admin/list_filters.html", {"cl": changelist}, request=request
        )
        if changelist.has_filters
        else "",
    }


class CountsCache:
    """Counts per list, shared by the pages of one process: (when, the rendering task).
    Every page asking has the permission to view jobs, and nothing else of the user changes
    what the list counts, so one rendering serves them all."""

    def __init__(self) -> None:
        self.lists: dict[str, tuple[float, asyncio.Task]] = {}

    def get(self, user: Any, query: str) -> asyncio.Task:
        now = time.monotonic()
        known = self.lists.get(query)
        if known is not None and now - known[0] < COUNTS_EVERY:
            return known[1]
        task = asyncio.ensure_future(database_sync_to_async(render_counts)(user, query))
        self.lists[query] = (now, task)
        for stale in [q for q, (at, _) in self.lists.items() if now - at > 10 * COUNTS_EVERY]:
            del self.lists[stale]
        return task


cache = CountsCache()


class ListCounts:
    """One page's counts: sent when they change, while the jobs change and until the mirror
    has caught up with the last change."""

    def __init__(self, user: Any, query: str, send: Any) -> None:
        self.user = user
        self.query = query
        self.send = send
        self.changed_at: float | None = None
        self.counted_at = 0.0
        self.last: dict[str, Any] | None = None
        self.running: asyncio.Task | None = None

    def changed(self) -> None:
        """Jobs changed: count again soon."""
        self.changed_at = time.monotonic()

    def due(self) -> None:
        """Called at every flush: start counting when it is time (in the background, so
        the other pages' flushes do not wait for the database)."""
        now = time.monotonic()
        if self.changed_at is None or now - self.counted_at < COUNTS_EVERY:
            return
        if self.running is not None and not self.running.done():
            return
        self.counted_at = now
        if now - self.changed_at >= MIRROR_LAG:
            self.changed_at = None  # this count sees the last change
        self.running = asyncio.ensure_future(self._count())

    async def _count(self) -> None:
        try:
            message = await cache.get(self.user, self.query)
        except Exception:  # the database failed: the next change asks again
            logger.exception("live_counts_failed query=%s", self.query)
            return
        if message is not None and message != self.last:
            self.last = message
            await self.send(message)

    def stop(self) -> None:
        if self.running is not None:
            self.running.cancel()
