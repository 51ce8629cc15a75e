"""The periodic schedules: when each runs next and last ran, its last job; pause, resume, run
now."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.contrib.admin.utils import quote
from django.db.models import OuterRef, Subquery
from django.http import HttpRequest, HttpResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.timesince import timesince, timeuntil

from ..models import Job, Schedule
from . import actions
from .base import MirrorAdmin, badge, live_config, short_job_id


def with_last_run(queryset: Any) -> Any:
    """The schedules with when their last job was enqueued (``last_run``), in the same query.
    The state's "last" (last_tick) is not a run: a scheduler sets it when it first sees a
    schedule and on each tick skipped while paused, and "run now" does not set it."""
    enqueued = Job.objects.filter(pk=OuterRef("last_job")).values("enqueued_at")[:1]
    return queryset.annotate(last_run=Subquery(enqueued))


def every_words(seconds: float | None) -> str:
    """An interval as a person says it: "every 2 hours", "every 90 seconds"."""
    if not seconds:
        return "—"
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size and seconds % size == 0:
            n = int(seconds // size)
            return f"every {unit}" if n == 1 else f"every {n} {unit}s"
    return "every second" if seconds == 1 else f"every {seconds:g} seconds"


def next_run_words(obj: Schedule) -> str:
    if obj.paused or not obj.next_run:
        return "—"
    if obj.next_run <= timezone.now():
        return "now"
    return f"in {timeuntil(obj.next_run)}"


def last_run_words(obj: Any) -> str:
    if not obj.last_job:
        return "never"
    when = getattr(obj, "last_run", None)
    # No row for that job: not mirrored yet (it was just enqueued), or pruned long since.
    return f"{timesince(when)} ago" if when else "—"


def live_rows() -> list[dict[str, str]]:
    """Each schedule as its row says it now (the live page sends them again when they change:
    the next run comes nearer, a run happens, a schedule is paused)."""
    return [
        {
            "name": obj.name,
            "state": "paused" if obj.paused else "active",
            "next": next_run_words(obj),
            "last": last_run_words(obj),
            "last_job": obj.last_job,
        }
        for obj in with_last_run(Schedule.objects.order_by("name"))
    ]


@admin.register(Schedule)
class ScheduleAdmin(MirrorAdmin):
    list_display = ["schedule_name", "task", "when", "state", "next", "last", "last_job_link"]
    actions = ["pause_schedules", "resume_schedules", "run_schedules_now"]
    change_list_template = "jobqueue/admin/schedule_change_list.html"

    @admin.display(description="name", ordering="name")
    def schedule_name(self, obj: Schedule) -> str:
        return format_html('<span data-schedule="{}">{}</span>', obj.name, obj.name)

    def has_run_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("jobqueue.run_schedule")

    @admin.display(description="when")
    def when(self, obj: Schedule) -> str:
        return obj.cron if obj.cron else every_words(obj.every)

    @admin.display(description="state", ordering="paused")
    def state(self, obj: Schedule) -> str:
        return badge("paused" if obj.paused else "active")

    @admin.display(description="next run", ordering="next_run")
    def next(self, obj: Schedule) -> str:
        return next_run_words(obj)

    def get_queryset(self, request: HttpRequest) -> Any:
        return with_last_run(super().get_queryset(request))

    @admin.display(description="last run", ordering="last_run")
    def last(self, obj: Schedule) -> str:
        return last_run_words(obj)

    @admin.display(description="last job")
    def last_job_link(self, obj: Schedule) -> str:
        if not obj.last_job:
            return "—"
        return format_html(
            '<a href="{}" title="{}"><code>{}</code></a>',
            reverse("admin:jobqueue_job_change", args=[quote(obj.last_job)]),
            obj.last_job,
            short_job_id(obj.last_job),
        )

    def changelist_view(self, request: HttpRequest, extra_context: Any = None) -> HttpResponse:
        extra = {"live": live_config("schedules")}
        return super().changelist_view(request, {**(extra_context or {}), **extra})

    @admin.action(description="Pause selected schedules", permissions=["run"])
    def pause_schedules(self, request: HttpRequest, queryset: Any) -> HttpResponse:
        return actions.confirm_schedules(self, request, "pause", queryset)

    @admin.action(description="Resume selected schedules", permissions=["run"])
    def resume_schedules(self, request: HttpRequest, queryset: Any) -> HttpResponse:
        return actions.confirm_schedules(self, request, "resume", queryset)

    @admin.action(description="Run selected schedules now", permissions=["run"])
    def run_schedules_now(self, request: HttpRequest, queryset: Any) -> HttpResponse:
        return actions.confirm_schedules(self, request, "run", queryset)

    def act_view(self, request: HttpRequest, **kwargs: Any) -> HttpResponse:
        return actions.schedule_action_view(self, request, kwargs["action"])
