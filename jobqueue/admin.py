"""jobqueue in the Django admin: jobs, queues, workers and schedules.

Every row here is a copy the mirror keeps; the admin never writes one. Actions (retry, cancel,
delete, purge, pause, run now) go through the engine (``admin_actions``), ask for confirmation
on a page (GET), act on POST with CSRF, need their permission, and are logged in LogEntry.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.core.paginator import Paginator
from django.db import connection
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed
from django.urls import reverse
from django.utils import timezone
from django.utils.functional import cached_property
from django.utils.html import format_html
from django.utils.timesince import timesince, timeuntil

from . import admin_actions, admin_dashboard
from .models import Job, Queue, Schedule, Worker

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
                    [Job._meta.db_table],
                )
                row = cursor.fetchone()
            if row and row[0] > ESTIMATE_ABOVE:
                return int(row[0])
        capped = object_list.values("pk")[: ESTIMATE_ABOVE + 1]
        return capped.count()


def badge(status: str) -> str:
    return format_html('<span class="jq-badge jq-{}">{}</span>', status, status)


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


class QueueFilter(admin.SimpleListFilter):
    title = "queue"
    parameter_name = "queue"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [(q, q) for q in Queue.objects.values_list("name", flat=True)]

    def queryset(self, request: HttpRequest, queryset: Any) -> Any:
        return queryset.filter(queue=self.value()) if self.value() else queryset


class TaskFilter(admin.SimpleListFilter):
    """Choices from the registry of known tasks: no DISTINCT over millions of rows."""

    title = "task"
    parameter_name = "task"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        from .discovery import autodiscover
        from .engine import default_registry

        autodiscover()
        return [(name, name.rsplit(".", 1)[-1]) for name in default_registry.names()]

    def queryset(self, request: HttpRequest, queryset: Any) -> Any:
        return queryset.filter(task=self.value()) if self.value() else queryset


class MirrorAdmin(admin.ModelAdmin):
    """Read-only: the rows are the mirror's copy of Redis. Changes (retry, delete, pause...)
    go through the engine, behind their own permissions."""

    class Media:
        css = {"all": ["jobqueue/admin.css"]}

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Job)
class JobAdmin(MirrorAdmin):
    list_display = [
        "short_id",
        "status_badge",
        "queue",
        "task_name",
        "tries",
        "age",
        "took",
        "progress_display",
    ]
    list_filter = ["status", QueueFilter, TaskFilter, "enqueued_at"]
    search_fields = ["id"]
    search_help_text = "A job id, a task name, or text from the arguments."
    date_hierarchy = "enqueued_at"
    ordering = ["-enqueued_at"]
    list_per_page = 50
    show_full_result_count = False
    paginator = EstimatedPaginator
    actions = ["retry_selected", "cancel_selected", "delete_selected_jobs"]
    change_list_template = "jobqueue/admin/job_change_list.html"

    def has_retry_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("jobqueue.retry_job")

    def has_cancel_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("jobqueue.cancel_job")

    def has_purge_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("jobqueue.delete_job")

    # -- the list --------------------------------------------------------------------------

    @admin.display(description="job", ordering="id")
    def short_id(self, obj: Job) -> str:
        return format_html('<code title="{}">{}…</code>', obj.id, obj.id[: obj.id.find(":") + 9])

    @admin.display(description="status", ordering="status")
    def status_badge(self, obj: Job) -> str:
        return badge(obj.status)

    @admin.display(description="task", ordering="task")
    def task_name(self, obj: Job) -> str:
        return format_html('<span title="{}">{}</span>', obj.task, obj.task.rsplit(".", 1)[-1])

    @admin.display(description="attempts")
    def tries(self, obj: Job) -> str:
        return f"{obj.attempts}/{obj.max_attempts}"

    @admin.display(description="age", ordering="enqueued_at")
    def age(self, obj: Job) -> str:
        return timesince(obj.enqueued_at) if obj.enqueued_at else ""

    @admin.display(description="duration")
    def took(self, obj: Job) -> str:
        seconds = obj.duration
        return "" if seconds is None else f"{seconds:.3f} s"

    @admin.display(description="progress")
    def progress_display(self, obj: Job) -> str:
        return progress_bar(obj.progress)

    def get_search_results(self, request: HttpRequest, queryset: Any, search_term: str) -> Any:
        term = search_term.strip()
        if not term:
            return queryset, False
        if ":" in term and " " not in term:  # a job id, whole or its beginning
            # A range, not LIKE: it walks the primary key's index on every database.
            return queryset.filter(id__gte=term, id__lt=term + "\U0010ffff"), False
        from django.db.models import Q

        return queryset.filter(Q(task__icontains=term) | Q(arguments_text__icontains=term)), False

    # -- actions on selected rows and on everything matching -------------------------------

    @admin.action(description="Retry selected jobs", permissions=["retry"])
    def retry_selected(self, request: HttpRequest, queryset: Any) -> HttpResponse:
        return admin_actions.redirect_to_confirm(request, "retry", queryset)

    @admin.action(description="Cancel selected jobs", permissions=["cancel"])
    def cancel_selected(self, request: HttpRequest, queryset: Any) -> HttpResponse:
        return admin_actions.redirect_to_confirm(request, "cancel", queryset)

    @admin.action(description="Delete selected jobs (from Redis)", permissions=["purge"])
    def delete_selected_jobs(self, request: HttpRequest, queryset: Any) -> HttpResponse:
        return admin_actions.redirect_to_confirm(request, "delete", queryset)

    def get_urls(self) -> list:
        from django.urls import path

        view = self.admin_site.admin_view
        return [
            path("act/<str:action>/", view(self.confirm_view), name="jobqueue_job_act"),
            *super().get_urls(),
        ]

    def confirm_view(self, request: HttpRequest, action: str) -> HttpResponse:
        return admin_actions.job_action_view(self, request, action)

    def changelist_view(self, request: HttpRequest, extra_context: Any = None) -> HttpResponse:
        extra = {
            "can_retry": self.has_retry_permission(request),
            "can_cancel": self.has_cancel_permission(request),
            "can_purge": self.has_purge_permission(request),
            "filters_query": request.GET.urlencode(),
        }
        return super().changelist_view(request, {**(extra_context or {}), **extra})

    # -- the detail page -------------------------------------------------------------------

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: Any = None
    ) -> HttpResponse:
        if request.method != "GET":
            return HttpResponseNotAllowed(["GET"])
        return admin_actions.job_detail_view(self, request, object_id)


@admin.register(Queue)
class QueueAdmin(MirrorAdmin):
    """The queues dashboard: counts, charts, workers, pause/resume, purge."""

    change_list_template = "jobqueue/admin/queues.html"

    def get_urls(self) -> list:
        from django.urls import path

        view = self.admin_site.admin_view
        return [
            path(
                "<str:name>/<str:action>/", view(self.queue_action_view), name="jobqueue_queue_act"
            ),
            *super().get_urls(),
        ]

    def changelist_view(self, request: HttpRequest, extra_context: Any = None) -> HttpResponse:
        if not self.has_view_permission(request):
            from django.core.exceptions import PermissionDenied

            raise PermissionDenied
        return admin_dashboard.dashboard_view(self, request)

    def queue_action_view(self, request: HttpRequest, name: str, action: str) -> HttpResponse:
        return admin_actions.queue_action_view(self, request, name, action)


@admin.register(Worker)
class WorkerAdmin(MirrorAdmin):
    list_display = [
        "name",
        "liveness",
        "state",
        "hostname",
        "pid",
        "queue_list",
        "heartbeat",
        "current",
        "successful",
        "failed",
        "busy_for",
    ]
    list_filter = ["alive", "state"]
    search_fields = ["name", "hostname"]

    @admin.display(description="alive", ordering="alive")
    def liveness(self, obj: Worker) -> str:
        return badge("alive" if obj.alive else "dead")

    @admin.display(description="queues")
    def queue_list(self, obj: Worker) -> str:
        return ", ".join(obj.queues)

    @admin.display(description="last heartbeat", ordering="last_heartbeat")
    def heartbeat(self, obj: Worker) -> str:
        return f"{timesince(obj.last_heartbeat)} ago" if obj.last_heartbeat else ""

    @admin.display(description="current jobs")
    def current(self, obj: Worker) -> str:
        links = [
            format_html(
                '<a href="{}"><code>{}</code></a>',
                reverse("admin:jobqueue_job_change", args=[job_id]),
                job_id,
            )
            for job_id in obj.current_jobs
        ]
        return format_html("{}", ", ".join(links)) if links else "—"

    @admin.display(description="working time")
    def busy_for(self, obj: Worker) -> str:
        return f"{obj.working_time:.1f} s"


@admin.register(Schedule)
class ScheduleAdmin(MirrorAdmin):
    list_display = ["name", "task", "when", "state", "next", "last", "last_job_link"]
    actions = ["pause_schedules", "resume_schedules", "run_schedules_now"]

    def has_run_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("jobqueue.run_schedule")

    @admin.display(description="when")
    def when(self, obj: Schedule) -> str:
        return obj.cron if obj.cron else f"every {obj.every:g} s"

    @admin.display(description="state", ordering="paused")
    def state(self, obj: Schedule) -> str:
        return badge("paused" if obj.paused else "active")

    @admin.display(description="next run", ordering="next_run")
    def next(self, obj: Schedule) -> str:
        if obj.paused or not obj.next_run:
            return "—"
        if obj.next_run <= timezone.now():
            return "now"
        return f"in {timeuntil(obj.next_run)}"

    @admin.display(description="last run", ordering="last_tick")
    def last(self, obj: Schedule) -> str:
        return f"{timesince(obj.last_tick)} ago" if obj.last_tick else "never"

    @admin.display(description="last job")
    def last_job_link(self, obj: Schedule) -> str:
        if not obj.last_job:
            return "—"
        return format_html(
            '<a href="{}"><code>{}</code></a>',
            reverse("admin:jobqueue_job_change", args=[obj.last_job]),
            obj.last_job,
        )

    @admin.action(description="Pause selected schedules", permissions=["run"])
    def pause_schedules(self, request: HttpRequest, queryset: Any) -> HttpResponse:
        return admin_actions.redirect_to_confirm(request, "pause", queryset, model="schedule")

    @admin.action(description="Resume selected schedules", permissions=["run"])
    def resume_schedules(self, request: HttpRequest, queryset: Any) -> HttpResponse:
        return admin_actions.redirect_to_confirm(request, "resume", queryset, model="schedule")

    @admin.action(description="Run selected schedules now", permissions=["run"])
    def run_schedules_now(self, request: HttpRequest, queryset: Any) -> HttpResponse:
        return admin_actions.redirect_to_confirm(request, "run", queryset, model="schedule")

    def get_urls(self) -> list:
        from django.urls import path

        view = self.admin_site.admin_view
        return [
            path("act/<str:action>/", view(self.confirm_view), name="jobqueue_schedule_act"),
            *super().get_urls(),
        ]

    def confirm_view(self, request: HttpRequest, action: str) -> HttpResponse:
        return admin_actions.schedule_action_view(self, request, action)
