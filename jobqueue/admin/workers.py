"""The workers: each one's state, host, queues, heartbeat, current jobs and counters."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.contrib.admin.utils import quote
from django.http import HttpRequest, HttpResponse
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from ..models import Worker
from .base import MirrorAdmin, badge, live_config, short_job_id, words_since


def job_links(job_ids: list[str]) -> str:
    """Links to these jobs' pages (or a dash)."""
    if not job_ids:
        return "—"
    return format_html_join(
        ", ",
        '<a href="{}" title="{}"><code>{}</code></a>',
        (
            (reverse("admin:jobqueue_job_change", args=[quote(j)]), j, short_job_id(j))
            for j in job_ids
        ),
    )


@admin.register(Worker)
class WorkerAdmin(MirrorAdmin):
    list_display = [
        "worker_name",
        "liveness",
        "host",
        "queue_list",
        "heartbeat",
        "current",
        "jobs_done",
        "busy_for",
    ]
    list_filter = ["alive", "state"]
    search_fields = ["name", "hostname"]
    change_list_template = "jobqueue/admin/worker_change_list.html"

    @admin.display(description="name", ordering="name")
    def worker_name(self, obj: Worker) -> str:
        return format_html('<span data-worker="{}">{}</span>', obj.name, obj.name)

    @admin.display(description="state", ordering="alive")
    def liveness(self, obj: Worker) -> str:
        if not obj.alive:
            return badge("dead")
        return format_html('{} <span class="jq-quiet">{}</span>', badge("alive"), obj.state)

    @admin.display(description="jobs done", ordering="successful")
    def jobs_done(self, obj: Worker) -> str:
        return format_html(
            '{} ok<span class="jq-quiet"> · </span>{} failed', obj.successful, obj.failed
        )

    @admin.display(description="host", ordering="hostname")
    def host(self, obj: Worker) -> str:
        return format_html('{}<span class="jq-quiet"> · pid {}</span>', obj.hostname, obj.pid)

    @admin.display(description="queues")
    def queue_list(self, obj: Worker) -> str:
        return ", ".join(obj.queues)

    @admin.display(description="last heartbeat", ordering="last_heartbeat")
    def heartbeat(self, obj: Worker) -> str:
        return format_html("{} ago", words_since(obj.last_heartbeat)) if obj.last_heartbeat else ""

    @admin.display(description="current jobs")
    def current(self, obj: Worker) -> str:
        return job_links(obj.current_jobs)

    @admin.display(description="busy for")
    def busy_for(self, obj: Worker) -> str:
        return f"{obj.working_time:.1f} s"

    def changelist_view(self, request: HttpRequest, extra_context: Any = None) -> HttpResponse:
        extra = {"live": live_config("workers")}
        return super().changelist_view(request, {**(extra_context or {}), **extra})
