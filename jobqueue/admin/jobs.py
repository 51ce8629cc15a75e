"""The jobs: the list (filters, search, actions on the selected rows or on everything matching)
and a job's own page (arguments, result, errors, timeline, progress, logs)."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from django.contrib import admin, messages
from django.contrib.admin.utils import label_for_field, unquote
from django.core.exceptions import PermissionDenied
from django.db.models import Q, TextField
from django.db.models.functions import Cast, Length, Substr
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html

from ..conf import get_engine
from ..engine import codec
from ..engine.errors import InvalidJob, JobNotFound, JobqueueError
from ..engine.job import CANCELABLE_STATES, RETRYABLE_STATES
from ..live.state import TIMES
from ..live.state import shown as shown_changes
from ..mirror.rows import row_from_job
from ..models import Job, JobTransition, Queue
from . import actions
from .base import (
    EstimatedPaginator,
    MirrorAdmin,
    attempts_words,
    badge,
    live_config,
    pretty,
    progress_bar,
    short_job_id,
    words_since,
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
        from ..discovery import autodiscover
        from ..engine import default_registry

        autodiscover()
        names = list(default_registry.names())
        short = [name.rsplit(".", 1)[-1] for name in names]
        # A task's own name, or its whole path where two modules use the same name.
        return [(n, s if short.count(s) == 1 else n) for n, s in zip(names, short, strict=True)]

    def queryset(self, request: HttpRequest, queryset: Any) -> Any:
        return queryset.filter(task=self.value()) if self.value() else queryset


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
        return format_html(
            '<code title="{}" data-job="{}" data-v="{}">{}</code>',
            obj.id,
            obj.id,
            obj.version,
            short_job_id(obj.id),
        )

    @admin.display(description="status", ordering="status")
    def status_badge(self, obj: Job) -> str:
        return badge(obj.status)

    @admin.display(description="task", ordering="task")
    def task_name(self, obj: Job) -> str:
        return format_html('<span title="{}">{}</span>', obj.task, obj.task.rsplit(".", 1)[-1])

    @admin.display(description="attempts")
    def tries(self, obj: Job) -> str:
        return attempts_words(obj, short=True)

    @admin.display(description="age", ordering="enqueued_at")
    def age(self, obj: Job) -> str:
        return words_since(obj.enqueued_at)

    @admin.display(description="duration")
    def took(self, obj: Job) -> str:
        seconds = obj.duration
        return "" if seconds is None else f"{seconds:.3f} s"

    @admin.display(description="progress")
    def progress_display(self, obj: Job) -> str:
        return progress_bar(obj.progress)

    def get_queryset(self, request: HttpRequest) -> Any:
        return super().get_queryset(request).defer(*PAYLOAD)

    def get_search_results(self, request: HttpRequest, queryset: Any, search_term: str) -> Any:
        term = search_term.strip()
        if not term:
            return queryset, False
        if ":" in term and " " not in term:  # a job id, whole or its beginning
            # A range, not LIKE: it walks the primary key's index on every database.
            return queryset.filter(id__gte=term, id__lt=term + "\U0010ffff"), False

        return queryset.filter(Q(task__icontains=term) | Q(arguments_text__icontains=term)), False

    # -- actions on selected rows and on everything matching -------------------------------

    @admin.action(description="Retry selected jobs", permissions=["retry"])
    def retry_selected(self, request: HttpRequest, queryset: Any) -> HttpResponse:
        return actions.confirm_jobs(self, request, "retry", queryset)

    @admin.action(description="Cancel selected jobs", permissions=["cancel"])
    def cancel_selected(self, request: HttpRequest, queryset: Any) -> HttpResponse:
        return actions.confirm_jobs(self, request, "cancel", queryset)

    @admin.action(description="Delete selected jobs (from Redis)", permissions=["purge"])
    def delete_selected_jobs(self, request: HttpRequest, queryset: Any) -> HttpResponse:
        return actions.confirm_jobs(self, request, "delete", queryset)

    def act_view(self, request: HttpRequest, **kwargs: Any) -> HttpResponse:
        return actions.job_action_view(self, request, kwargs["action"])

    def changelist_view(self, request: HttpRequest, extra_context: Any = None) -> HttpResponse:
        extra = {
            "can_retry": self.has_retry_permission(request),
            "can_cancel": self.has_cancel_permission(request),
            "can_purge": self.has_purge_permission(request),
            "filters_query": request.GET.urlencode(),
            "live": live_config(
                "jobs",
                filters={
                    k: request.GET[k] for k in ("status", "queue", "task") if k in request.GET
                },
                # New jobs go on top only where the newest are: the default order, the first
                # page, no search or date to judge them by.
                insert=not (set(request.GET) - {"status", "queue", "task", "_facets"}),
                # When its rows were read from the mirror: the live page asks for the jobs
                # created since, which the mirror may not have written yet.
                since=int(time.time() * 1000),
                per_page=self.list_per_page,
                # To build the table when the list was empty and a first job arrives.
                columns=[
                    [name, str(label_for_field(name, Job, self))]
                    for name in self.get_list_display(request)
                ],
                checkbox=bool(self.get_actions(request)),
                name=str(self.opts.verbose_name),
                name_plural=str(self.opts.verbose_name_plural),
            ),
        }
        return super().changelist_view(request, {**(extra_context or {}), **extra})

    # -- the detail page -------------------------------------------------------------------

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: Any = None
    ) -> HttpResponse:
        if request.method != "GET":
            return HttpResponseNotAllowed(["GET"])
        return job_detail_view(self, request, object_id)


def moment(when: datetime) -> str:
    """A moment as a person reads it, to the millisecond, in the site's time zone."""
    local = timezone.localtime(when) if timezone.is_aware(when) else when
    return local.strftime("%Y-%m-%d %H:%M:%S.") + f"{local.microsecond // 1000:03d}"


def timeline(job_id: str) -> list[dict[str, Any]]:
    """The job's transitions, oldest first: its state changes, not its progress ticks (those
    move the progress bar), each with its time and the fields it changed, readable."""
    rows = []
    for t in JobTransition.objects.filter(job_id=job_id).order_by("version"):
        changes = t.changes if isinstance(t.changes, dict) else {}
        if set(changes) == {"progress"}:
            continue
        shown = []
        for name, value in shown_changes(changes).items():
            if name in TIMES and str(value).isdigit():
                value = moment(datetime.fromtimestamp(int(value) / 1000, tz=UTC))
            shown.append((name, value))
        rows.append(
            {"version": t.version, "status": t.status, "at": moment(t.at), "changes": shown}
        )
    return rows


PREVIEW = 10_000  # characters of a result or an argument list shown on a job's page at most
PREVIEWED = ("args", "kwargs", "result")
# Columns the list does not show: never read for it (a row may hold megabytes of them).
PAYLOAD = ("args", "kwargs", "arguments_text", "result", "errors", "error_traceback")


def row_with_previews(object_id: str) -> Job | None:
    """The job's row with its arguments and result cut to PREVIEW characters of JSON text
    (``<column>_preview``; ``<column>_chars``: the whole length), so that a 40 MiB result is
    neither read whole nor sent."""
    annotations: dict[str, Any] = {}
    for column in PREVIEWED:
        as_text = Cast(column, TextField())
        annotations[f"{column}_chars"] = Length(as_text)
        annotations[f"{column}_preview"] = Substr(as_text, 1, PREVIEW)
    return Job.objects.filter(pk=object_id).defer(*PREVIEWED).annotate(**annotations).first()


def shown_json(job: Any, column: str) -> tuple[str, str]:
    """A JSON column as the page shows it (indented, or the first PREVIEW characters of a big
    one) and, when cut, a sentence saying so."""
    chars = getattr(job, f"{column}_chars", None)
    if chars is None:  # a row built from Redis: its value is whole, or was not read (None)
        value = getattr(job, column)
        return ("", "") if value is None else (pretty(value), "")
    preview = getattr(job, f"{column}_preview")
    if chars <= PREVIEW:
        return pretty(codec.loads(preview)), ""
    return preview, f"The first {PREVIEW:,} of {chars:,} characters."


def moments(job: Any) -> dict[str, str]:
    names = ("enqueued_at", "scheduled_for", "started_at", "finished_at")
    return {name: moment(getattr(job, name)) if getattr(job, name) else "—" for name in names}


def job_detail_view(model_admin: Any, request: HttpRequest, object_id: str) -> HttpResponse:
    if not model_admin.has_view_permission(request):
        raise PermissionDenied
    object_id = unquote(object_id)  # the admin quotes primary keys in URLs (':' -> '_3A')
    engine = get_engine()
    live, live_error = None, ""
    try:
        live, _ = engine.head(object_id)
    except (JobNotFound, InvalidJob):
        live_error = "Redis no longer holds this job (finished jobs expire; the row stays)."
    except JobqueueError as exc:
        live_error = f"Redis could not be read: {exc}"
    job: Any = row_with_previews(object_id)
    if job is None:
        if live is None:
            # What the admin says of a missing object: a message on the list, not a 404.
            messages.warning(
                request,
                f"No job with id “{object_id}”: it was never mirrored, or was deleted.",
            )
            return HttpResponseRedirect(reverse("admin:jobqueue_job_changelist"))
        job = row_from_job(live)  # not mirrored yet: show what Redis holds
    try:
        logs = engine.logs.read(object_id)
    except (JobqueueError, InvalidJob):
        logs = []
    status = live.state.value if live is not None else job.status
    args_json, args_cut = shown_json(job, "args")
    kwargs_json, kwargs_cut = shown_json(job, "kwargs")
    result_json, result_cut = shown_json(job, "result")
    context = {
        **model_admin.admin_site.each_context(request),
        "title": f"Job {job.id}",
        "job": job,
        "status": status,
        "attempts": attempts_words(job),
        "live": live,
        "live_error": live_error,
        "logs": logs,
        "opts": model_admin.opts,
        "times": moments(job),
        "args_json": args_json or "[]",
        "kwargs_json": kwargs_json or "{}",
        "arguments_cut": " ".join(filter(None, [args_cut, kwargs_cut])),
        "result_json": result_json,
        "result_cut": result_cut,
        "errors": [e for e in (job.errors or []) if isinstance(e, dict)],
        "transitions": timeline(job.id),
        "can_retry": status in RETRYABLE_STATES and model_admin.has_retry_permission(request),
        "can_cancel": status in CANCELABLE_STATES and model_admin.has_cancel_permission(request),
        "can_delete": model_admin.has_purge_permission(request),
        "act_url": reverse("admin:jobqueue_job_act", args=["__action__"]),
        "live_config": live_config("job", id=job.id, logs=len(logs)),
    }
    return TemplateResponse(request, "jobqueue/job_detail.html", context)
